//! Persistent sessions (SPEC section 10): the MLS group through OpenMLS's
//! SQLite storage, plus one row of profile state per session, both written in
//! one SQLite transaction per protocol transition.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::crypto::run_migrations;
use super::message::TwoPartyMessageType;
use super::suite::CipherSuite;
use crate::error::Error;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS mlstls_sessions (
    group_id BLOB PRIMARY KEY,
    suite INTEGER NOT NULL,
    initial_role INTEGER NOT NULL,
    state INTEGER NOT NULL,
    pending_commit BLOB,
    pending_type INTEGER,
    last_commit_hash BLOB,
    last_send_epoch INTEGER NOT NULL,
    peer_credential BLOB NOT NULL,
    peer_signature_key BLOB NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    version INTEGER NOT NULL
)";

/// Identifies a stored session: the MLS group id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub Vec<u8>);

impl core::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl core::fmt::Display for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Which role a party had in the session's very first handshake; it decides
/// resumption collisions for the session's whole life (profile section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InitialRole {
    /// Sent the first ClientHello.
    Initiator,
    /// Answered it.
    Responder,
}

/// The persisted profile state of a session (profile section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredState {
    /// No pending commit.
    Synced,
    /// A ConnectionUpdate or ResumptionResponse commit is pending.
    AwaitingEpochKeyUpdate,
    /// A ResumptionRequest commit is pending.
    AwaitingResumptionResponse,
}

/// A commit sent but not yet confirmed, kept to be sent again on resumption.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingCommit {
    /// The serialized `MLSMessage`.
    pub message: Vec<u8>,
    /// The SafeAAD type it was created with (never changed on resend).
    pub typ: TwoPartyMessageType,
}

impl core::fmt::Debug for PendingCommit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingCommit")
            .field("len", &self.message.len())
            .field("typ", &self.typ)
            .finish()
    }
}

/// Everything the profile keeps about a session besides the MLS group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMeta {
    /// The group id.
    pub id: SessionId,
    /// The group's ciphersuite.
    pub suite: CipherSuite,
    /// This party's role in the first handshake.
    pub initial_role: InitialRole,
    /// The profile state.
    pub state: StoredState,
    /// The pending commit, in the two Awaiting states.
    pub pending: Option<PendingCommit>,
    /// SHA-256 of the last commit message this party merged (its own or
    /// the peer's).
    pub last_commit_hash: Option<[u8; 32]>,
    /// Highest epoch whose sending keys this party installed (SPEC 8).
    pub last_send_epoch: u64,
    /// The peer's credential (serialized) as first authenticated.
    pub peer_credential: Vec<u8>,
    /// The peer's signature public key.
    pub peer_signature_key: Vec<u8>,
    /// When the session was established (seconds since the Unix epoch).
    pub created: u64,
    /// When the session last completed a transition.
    pub last_used: u64,
    /// Incremented by every stored transition: a connection whose copy is
    /// older than the store's has been superseded by another connection.
    pub version: u64,
}

/// What [`SessionStore::list`] reports per session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id.
    pub id: SessionId,
    /// The ciphersuite.
    pub suite: CipherSuite,
    /// This party's initial role.
    pub initial_role: InitialRole,
    /// The peer's signature public key.
    pub peer_signature_key: Vec<u8>,
    /// Creation time.
    pub created: SystemTime,
    /// Last use.
    pub last_used: SystemTime,
}

/// Where sessions live: an SQLite file (WAL, `synchronous=FULL`, SPEC 10)
/// or an in-memory database for tests and ephemeral use.
///
/// ```
/// use mls_tls::profile::store::SessionStore;
/// let store = SessionStore::in_memory().unwrap();
/// assert!(store.list().unwrap().is_empty());
/// ```
pub struct SessionStore {
    conn: Mutex<Connection>,
    /// Which connection (by claim number) currently owns each session in
    /// this process, so older connections notice on their data path.
    leases: Mutex<HashMap<SessionId, Arc<AtomicU64>>>,
}

/// A connection's claim on a session; superseded when a newer connection
/// of this process claims the same session.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    current: Arc<AtomicU64>,
    mine: u64,
}

impl Lease {
    pub(crate) fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire) == self.mine
    }
}

impl core::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionStore").finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Opens (creating if needed) the store file at `path`. Every transition
    /// is on disk before anything that depends on it leaves.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let conn = Connection::open(path).map_err(store_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(store_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Store(format!(
                "could not enable WAL (journal_mode={mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(store_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(store_err)?;
        Self::init(conn)
    }

    /// A store that lives in memory and is lost when dropped.
    pub fn in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory().map_err(store_err)?)
    }

    fn init(mut conn: Connection) -> Result<Self, Error> {
        run_migrations(&mut conn).map_err(Error::Store)?;
        conn.execute_batch(SCHEMA).map_err(store_err)?;
        Ok(Self {
            conn: Mutex::new(conn),
            leases: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `f` as one transaction: committed if `f` succeeds, rolled back
    /// otherwise.
    pub(crate) fn transaction<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let conn = self.lock();
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
            .map_err(store_err)?;
        match f(&tx) {
            Ok(r) => {
                tx.commit().map_err(store_err)?;
                Ok(r)
            }
            Err(e) => {
                // Dropping the transaction rolls back; report the cause.
                drop(tx);
                Err(e)
            }
        }
    }

    /// Claims `id` for a connection, superseding any earlier claim.
    pub(crate) fn claim(&self, id: &SessionId) -> Lease {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let current = leases.entry(id.clone()).or_default().clone();
        let mine = current.fetch_add(1, Ordering::AcqRel) + 1;
        Lease { current, mine }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the open
        // transaction rolls back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// All stored sessions.
    pub fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT group_id, suite, initial_role, peer_signature_key, created, last_used
                 FROM mlstls_sessions ORDER BY created",
            )
            .map_err(store_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u16>(1)?,
                    r.get::<_, u8>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(store_err)?;
        rows.map(|row| {
            let (id, suite, role, key, created, used) = row.map_err(store_err)?;
            Ok(SessionInfo {
                id: SessionId(id),
                suite: decode_suite(suite)?,
                initial_role: decode_role(role)?,
                peer_signature_key: key,
                created: from_secs(created),
                last_used: from_secs(used),
            })
        })
        .collect()
    }

    /// Deletes a session and its MLS group. Returns whether it existed.
    pub fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        self.transaction(|conn| delete_in(conn, id))
    }

    /// Deletes sessions unused for longer than `max_idle` at time `now`;
    /// returns how many.
    pub fn sweep_expired(&self, max_idle: Duration, now: SystemTime) -> Result<usize, Error> {
        let cutoff = secs(now).saturating_sub(max_idle.as_secs());
        self.transaction(|conn| {
            let ids: Vec<Vec<u8>> = conn
                .prepare("SELECT group_id FROM mlstls_sessions WHERE last_used < ?1")
                .and_then(|mut s| {
                    s.query_map([cutoff as i64], |r| r.get(0))?
                        .collect::<Result<_, _>>()
                })
                .map_err(store_err)?;
            for id in &ids {
                delete_in(conn, &SessionId(id.clone()))?;
            }
            Ok(ids.len())
        })
    }
}

/// Deletes the profile row and the MLS group data of `id`.
pub(crate) fn delete_in(conn: &Connection, id: &SessionId) -> Result<bool, Error> {
    let n = conn
        .execute("DELETE FROM mlstls_sessions WHERE group_id = ?1", [&id.0])
        .map_err(store_err)?;
    super::group::delete_group_data(conn, id)?;
    Ok(n > 0)
}

/// Loads one session's profile row.
pub(crate) fn load_meta(conn: &Connection, id: &SessionId) -> Result<Option<SessionMeta>, Error> {
    conn.query_row(
        "SELECT suite, initial_role, state, pending_commit, pending_type, last_commit_hash,
                last_send_epoch, peer_credential, peer_signature_key, created, last_used, version
         FROM mlstls_sessions WHERE group_id = ?1",
        [&id.0],
        |r| {
            Ok((
                r.get::<_, u16>(0)?,
                r.get::<_, u8>(1)?,
                r.get::<_, u8>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Option<u8>>(4)?,
                r.get::<_, Option<Vec<u8>>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Vec<u8>>(7)?,
                r.get::<_, Vec<u8>>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
            ))
        },
    )
    .optional()
    .map_err(store_err)?
    .map(
        |(suite, role, state, pc, pt, hash, lse, cred, key, created, used, version)| {
            let pending = match (pc, pt) {
                (Some(message), Some(t)) => Some(PendingCommit {
                    message,
                    typ: TwoPartyMessageType::from_u8(t)
                        .ok_or_else(|| Error::Store("bad pending type".into()))?,
                }),
                (None, None) => None,
                _ => return Err(Error::Store("inconsistent pending commit".into())),
            };
            let last_commit_hash = match hash {
                Some(h) => Some(
                    <[u8; 32]>::try_from(h.as_slice())
                        .map_err(|_| Error::Store("bad commit hash".into()))?,
                ),
                None => None,
            };
            Ok(SessionMeta {
                id: id.clone(),
                suite: decode_suite(suite)?,
                initial_role: decode_role(role)?,
                state: match state {
                    0 => StoredState::Synced,
                    1 => StoredState::AwaitingEpochKeyUpdate,
                    2 => StoredState::AwaitingResumptionResponse,
                    _ => return Err(Error::Store("bad state".into())),
                },
                pending,
                last_commit_hash,
                last_send_epoch: lse as u64,
                peer_credential: cred,
                peer_signature_key: key,
                created: created as u64,
                last_used: used as u64,
                version: version as u64,
            })
        },
    )
    .transpose()
}

/// Writes one session's profile row (insert or replace).
pub(crate) fn save_meta(conn: &Connection, m: &SessionMeta) -> Result<(), Error> {
    let state: u8 = match m.state {
        StoredState::Synced => 0,
        StoredState::AwaitingEpochKeyUpdate => 1,
        StoredState::AwaitingResumptionResponse => 2,
    };
    conn.execute(
        "INSERT OR REPLACE INTO mlstls_sessions (group_id, suite, initial_role, state,
            pending_commit, pending_type, last_commit_hash, last_send_epoch, peer_credential,
            peer_signature_key, created, last_used, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            m.id.0,
            m.suite.code_point(),
            matches!(m.initial_role, InitialRole::Responder) as u8,
            state,
            m.pending.as_ref().map(|p| &p.message),
            m.pending.as_ref().map(|p| p.typ.to_u8()),
            m.last_commit_hash.as_ref().map(|h| &h[..]),
            m.last_send_epoch as i64,
            m.peer_credential,
            m.peer_signature_key,
            m.created as i64,
            m.last_used as i64,
            m.version as i64,
        ],
    )
    .map_err(store_err)?;
    Ok(())
}

/// The stored version of a session, if it exists.
pub(crate) fn stored_version(conn: &Connection, id: &SessionId) -> Result<Option<u64>, Error> {
    conn.query_row(
        "SELECT version FROM mlstls_sessions WHERE group_id = ?1",
        [&id.0],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(|v| v as u64))
    .map_err(store_err)
}

/// Whether a session row exists for `id`.
pub(crate) fn exists(conn: &Connection, id: &SessionId) -> Result<bool, Error> {
    conn.query_row(
        "SELECT 1 FROM mlstls_sessions WHERE group_id = ?1",
        [&id.0],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
    .map_err(store_err)
}

fn decode_suite(v: u16) -> Result<CipherSuite, Error> {
    CipherSuite::from_code_point(v).ok_or_else(|| Error::Store(format!("unknown suite {v:#06x}")))
}

fn decode_role(v: u8) -> Result<InitialRole, Error> {
    match v {
        0 => Ok(InitialRole::Initiator),
        1 => Ok(InitialRole::Responder),
        _ => Err(Error::Store("bad initial role".into())),
    }
}

pub(crate) fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_secs(s: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s.max(0) as u64)
}

pub(crate) fn store_err(e: rusqlite::Error) -> Error {
    Error::Store(e.to_string())
}
