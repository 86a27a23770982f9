//! Sessions in PostgreSQL (13 or later), shared by every server of a fleet:
//! a connection cut from one server resumes on any other (issue 15).
//!
//! The driver is `tokio-postgres` with a `deadpool-postgres` pool, on a
//! small tokio runtime that the backend owns. [`SessionBackend`] is
//! synchronous and is called both from blocking code and from inside
//! tokio tasks (the tokio adapter); the synchronous `postgres` crate
//! starts a runtime of its own per call and panics inside another
//! runtime, so every call here is sent to the backend's runtime and the
//! caller waits on a plain channel, which works on any thread.
//!
//! Schema (version [`SCHEMA_VERSION`], created and migrated by
//! [`PostgresBackend::connect`] under an advisory lock so that servers
//! starting together do not race): `mlstls_schema_version` holds the
//! version, `mlstls_sessions` one row per session. A save is one
//! statement that checks the precondition: `INSERT .. ON CONFLICT DO
//! NOTHING` for a new session, `UPDATE .. WHERE version = $expected` for
//! an update; each runs in its own transaction with
//! `synchronous_commit=on`, so `Ok(true)` means the commit is durable
//! (SPEC 10). Every failure, including a database that does not answer
//! within the backend's timeout, is an [`Error::Store`].

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tokio_postgres::{NoTls, Row};
use zeroize::Zeroizing;

use super::codec::{role_from_u8, role_to_u8, suite_from_u16};
use super::{from_secs, secs, Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord};
use crate::error::Error;

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Serializes schema migrations of concurrently starting servers
/// (`pg_advisory_xact_lock` key: "mlstls" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d6c_7374_6c73;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = ["CREATE TABLE mlstls_sessions (
        id bytea PRIMARY KEY,
        suite integer NOT NULL,
        initial_role smallint NOT NULL,
        peer_signature_key bytea NOT NULL,
        created bigint NOT NULL,
        last_used bigint NOT NULL,
        version bigint NOT NULL,
        data bytea NOT NULL
    );
    CREATE INDEX mlstls_sessions_last_used ON mlstls_sessions (last_used)"];

/// How a [`PostgresBackend`] connects and waits.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections the pool opens (default 16).
    pub pool_size: usize,
    /// Longest one call waits: for a pooled connection, to connect, and
    /// for the statement (default 10 s). Past it the call is an
    /// [`Error::Store`]; a save that timed out may still commit, which is
    /// the same as a crash after the commit (SPEC 10: nothing was sent).
    pub timeout: Duration,
    /// Threads of the backend's runtime (default 2).
    pub threads: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout: Duration::from_secs(10),
            threads: 2,
        }
    }
}

/// A [`SessionBackend`] on a PostgreSQL database, shareable by many
/// processes. Records are stored as the store gives them: wrap the
/// backend in [`super::Sealed`] (as [`super::SessionStore::open_postgres`]
/// does) to encrypt them at rest.
pub struct PostgresBackend {
    pool: Pool,
    /// `None` only while dropping: the runtime is shut down without
    /// waiting, which is allowed inside another runtime.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    timeout: Duration,
    /// Connections that timed out, closed at their next recycle.
    tainted: Tainted,
}

impl core::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects to `url` (`postgres://user@host:port/db`, or libpq's
    /// `key=value` form) with default [`PostgresOptions`], and creates or
    /// migrates the schema.
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, PostgresOptions::default())
    }

    /// [`PostgresBackend::connect`] with options.
    pub fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, Error> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            // The URL may hold a password: not repeated in the message.
            Error::Store(format!("PostgreSQL URL: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("mlstls");
        }
        // Durable commits whatever the server's default (SPEC 10). The
        // server cancels a statement after half the caller's wait, so one
        // that reached it in the first half cannot commit after the caller
        // gave up (a save of unknown outcome the engine would have to
        // resolve; see PROTOCOL.md, "in doubt").
        let startup = format!(
            "{} -c synchronous_commit=on -c statement_timeout={}",
            config.get_options().unwrap_or(""),
            (options.timeout.as_millis() / 2).max(1)
        );
        config.options(startup.trim());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads.max(1))
            .thread_name("mlstls-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Store(format!("PostgreSQL backend runtime: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A connection whose socket closed (a restarted or lost
                // database) is replaced before use.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let tainted = Tainted::default();
        let discard = tainted.clone();
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            // A connection whose statement timed out is closed, not reused.
            .pre_recycle(Hook::sync_fn(move |_, metrics| {
                if discard.take(metrics.created) {
                    Err(HookError::message("its last statement timed out"))
                } else {
                    Ok(())
                }
            }))
            .build()
            .map_err(|e| Error::Store(format!("PostgreSQL pool: {e}")))?;
        let backend = Self {
            pool,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            timeout: options.timeout,
            tainted,
        };
        backend.run("schema migration", migrate)?;
        Ok(backend)
    }

    /// Runs `f` with a pooled connection on the backend's runtime and
    /// waits for it on the calling thread (any thread, in a runtime or not).
    fn run<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let pool = self.pool.clone();
        let timeout = self.timeout;
        let tainted = self.tainted.clone();
        self.handle.spawn(async move {
            // Which connection the work drew, to close it if it times out.
            let drawn = Arc::new(Mutex::new(None));
            let record = drawn.clone();
            let work = async move {
                let client = pool.get().await.map_err(|e| match e {
                    deadpool_postgres::PoolError::Backend(e) => Error::Store(format!(
                        "PostgreSQL {what}: cannot connect: {}",
                        describe(&e)
                    )),
                    e => Error::Store(format!("PostgreSQL {what}: no connection: {e}")),
                })?;
                *lock(&record) = Some(Object::metrics(&client).created);
                f(client).await
            };
            let result = match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => {
                    // The link may be half dead and the statement may still
                    // run: the connection's state is unknown.
                    if let Some(created) = lock(&drawn).take() {
                        tainted.add(created);
                    }
                    Err(Error::Store(format!(
                        "PostgreSQL {what}: no answer within {timeout:?}"
                    )))
                }
            };
            let _ = tx.send(result);
        });
        let wait = || rx.recv();
        // On a worker of a multi-thread runtime, let the runtime hand this
        // worker's other tasks to another thread while we wait (the wait
        // is a network round trip; a blocked worker would stall them).
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        answer.map_err(|_| {
            Error::Store(format!(
                "PostgreSQL {what}: the backend's runtime has stopped"
            ))
        })?
    }

    /// The pool's size and idle connections, for monitoring and tests.
    pub fn pool_status(&self) -> (usize, usize) {
        let s = self.pool.status();
        (s.size, s.available)
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Creates the schema or brings it to [`SCHEMA_VERSION`], in one
/// transaction under an advisory lock.
async fn migrate(mut client: deadpool_postgres::Object) -> Result<(), Error> {
    let what = "schema migration";
    let tx = client.transaction().await.map_err(|e| pg_err(what, &e))?;
    // Saves' statement timeout (half the caller's wait) is for one-row
    // statements; the schema's DDL, or waiting on another server's
    // migration, is bounded by the caller's wait alone.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(|e| pg_err(what, &e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| pg_err(what, &e))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mlstls_schema_version (version integer NOT NULL)")
        .await
        .map_err(|e| pg_err(what, &e))?;
    let current: Option<i32> = tx
        .query_one("SELECT max(version) FROM mlstls_schema_version", &[])
        .await
        .map_err(|e| pg_err(what, &e))?
        .try_get(0)
        .map_err(|e| pg_err(what, &e))?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(Error::Store(format!(
            "PostgreSQL schema is at version {current}, newer than this build reads \
             ({SCHEMA_VERSION}): upgrade mlstls"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.batch_execute(sql).await.map_err(|e| {
            Error::Store(format!(
                "PostgreSQL schema migration to version {}: {}",
                from + 1,
                describe(&e)
            ))
        })?;
    }
    if current < SCHEMA_VERSION {
        tx.execute("DELETE FROM mlstls_schema_version", &[])
            .await
            .map_err(|e| pg_err(what, &e))?;
        tx.execute(
            "INSERT INTO mlstls_schema_version (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(|e| pg_err(what, &e))?;
    }
    tx.commit().await.map_err(|e| pg_err(what, &e))
}

/// A database error as a store error that says what failed and why.
fn pg_err(what: &str, e: &tokio_postgres::Error) -> Error {
    Error::Store(format!("PostgreSQL {what}: {}", describe(e)))
}

fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!(
            "{} {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
    }
    // Connection errors name their cause only in the source chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn to_i64(what: &str, v: u64) -> Result<i64, Error> {
    i64::try_from(v)
        .map_err(|_| Error::Store(format!("{what} {v} does not fit PostgreSQL's bigint")))
}

fn from_i64(id: &SessionId, what: &str, v: i64) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::Store(format!("record of {id}: negative {what} {v}")))
}

/// Reads the index columns of a row (`id, suite, initial_role,
/// peer_signature_key, created, last_used` at 0..6).
fn info_from_row(row: &Row) -> Result<SessionInfo, Error> {
    let what = "read";
    let id = SessionId(row.try_get(0).map_err(|e| pg_err(what, &e))?);
    let suite: i32 = row.try_get(1).map_err(|e| pg_err(what, &e))?;
    let role: i16 = row.try_get(2).map_err(|e| pg_err(what, &e))?;
    let created: i64 = row.try_get(4).map_err(|e| pg_err(what, &e))?;
    let used: i64 = row.try_get(5).map_err(|e| pg_err(what, &e))?;
    let bad = |f: &str| Error::Store(format!("record of {id}: {f} out of range"));
    Ok(SessionInfo {
        suite: suite_from_u16(u16::try_from(suite).map_err(|_| bad("suite"))?)?,
        initial_role: role_from_u8(u8::try_from(role).map_err(|_| bad("initial_role"))?)?,
        peer_signature_key: row.try_get(3).map_err(|e| pg_err(what, &e))?,
        created: from_secs(from_i64(&id, "created", created)?),
        last_used: from_secs(from_i64(&id, "last_used", used)?),
        id,
    })
}

/// Connections whose statement timed out, by creation time
/// (`Metrics::created`): a half-dead link would otherwise be drawn again
/// and again, each call waiting out the timeout, until the kernel gives
/// up on it (many minutes). Two connections created at the same instant
/// only cost a reconnect. At most [`MAX_TAINTED`] are remembered.
#[derive(Clone, Default)]
struct Tainted(Arc<Mutex<HashSet<Instant>>>);

const MAX_TAINTED: usize = 1024;

impl Tainted {
    fn add(&self, created: Instant) {
        let mut set = lock(&self.0);
        if set.len() >= MAX_TAINTED {
            set.clear();
        }
        set.insert(created);
    }

    /// Whether `created` was tainted (and forgets it).
    fn take(&self, created: Instant) -> bool {
        lock(&self.0).remove(&created)
    }
}

/// A mutex that a panicked holder left poisoned still holds valid data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionBackend for PostgresBackend {
    fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let key = id.0.clone();
        self.run("load", move |client| async move {
            let row = client
                .query_opt(
                    "SELECT id, suite, initial_role, peer_signature_key, created, last_used,
                            version, data
                     FROM mlstls_sessions WHERE id = $1",
                    &[&key],
                )
                .await
                .map_err(|e| pg_err("load", &e))?;
            let Some(row) = row else {
                return Ok(None);
            };
            let info = info_from_row(&row)?;
            let version: i64 = row.try_get(6).map_err(|e| pg_err("load", &e))?;
            let data: Vec<u8> = row.try_get(7).map_err(|e| pg_err("load", &e))?;
            Ok(Some(SessionRecord {
                version: from_i64(&info.id, "version", version)?,
                info,
                data: Zeroizing::new(data),
            }))
        })
    }

    fn save(&self, record: &SessionRecord, precondition: Precondition) -> Result<bool, Error> {
        let info = &record.info;
        let id = info.id.0.clone();
        let suite = i32::from(info.suite.code_point());
        let role = i16::from(role_to_u8(info.initial_role));
        let key = info.peer_signature_key.clone();
        let created = to_i64("created", secs(info.created))?;
        let used = to_i64("last_used", secs(info.last_used))?;
        let version = to_i64("version", record.version)?;
        let expected = match precondition {
            Precondition::Absent => None,
            Precondition::Version(v) => Some(to_i64("version", v)?),
        };
        let data = record.data.clone();
        self.run("save", move |client| async move {
            let data: &[u8] = &data;
            let n = match expected {
                None => {
                    client
                        .execute(
                            "INSERT INTO mlstls_sessions
                                (id, suite, initial_role, peer_signature_key, created,
                                 last_used, version, data)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                             ON CONFLICT (id) DO NOTHING",
                            &[&id, &suite, &role, &key, &created, &used, &version, &data],
                        )
                        .await
                }
                Some(expected) => {
                    client
                        .execute(
                            "UPDATE mlstls_sessions SET suite = $2, initial_role = $3,
                                peer_signature_key = $4, created = $5, last_used = $6,
                                version = $7, data = $8
                             WHERE id = $1 AND version = $9",
                            &[
                                &id, &suite, &role, &key, &created, &used, &version, &data,
                                &expected,
                            ],
                        )
                        .await
                }
            }
            .map_err(|e| pg_err("save", &e))?;
            Ok(n == 1)
        })
    }

    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        let key = id.0.clone();
        self.run("delete", move |client| async move {
            let n = client
                .execute("DELETE FROM mlstls_sessions WHERE id = $1", &[&key])
                .await
                .map_err(|e| pg_err("delete", &e))?;
            Ok(n > 0)
        })
    }

    fn delete_at_version(&self, id: &SessionId, version: u64) -> Result<bool, Error> {
        let key = id.0.clone();
        let version = to_i64("version", version)?;
        self.run("delete", move |client| async move {
            let n = client
                .execute(
                    "DELETE FROM mlstls_sessions WHERE id = $1 AND version = $2",
                    &[&key, &version],
                )
                .await
                .map_err(|e| pg_err("delete", &e))?;
            Ok(n > 0)
        })
    }

    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        self.run("list", move |client| async move {
            client
                .query(
                    "SELECT id, suite, initial_role, peer_signature_key, created, last_used
                     FROM mlstls_sessions ORDER BY created, id",
                    &[],
                )
                .await
                .map_err(|e| pg_err("list", &e))?
                .iter()
                .map(info_from_row)
                .collect()
        })
    }

    fn delete_unused_since(&self, cutoff: SystemTime) -> Result<usize, Error> {
        let cutoff = to_i64("cutoff", secs(cutoff))?;
        self.run("sweep", move |client| async move {
            let n = client
                .execute(
                    "DELETE FROM mlstls_sessions WHERE last_used < $1",
                    &[&cutoff],
                )
                .await
                .map_err(|e| pg_err("sweep", &e))?;
            usize::try_from(n).map_err(|_| Error::Store("sweep: count overflows".into()))
        })
    }
}
