//! The default backend: one SQLite file, WAL journal, `synchronous=FULL`,
//! one row per session (SPEC 10).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::codec::{role_from_u8, role_to_u8, suite_from_u16};
use super::{from_secs, secs, Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord};
use crate::error::Error;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS mlstls_session_records (
    id BLOB PRIMARY KEY,
    suite INTEGER NOT NULL,
    initial_role INTEGER NOT NULL,
    peer_signature_key BLOB NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    version INTEGER NOT NULL,
    record BLOB NOT NULL
)";

/// A [`SessionBackend`] on an SQLite database: a file (durable; what
/// [`super::SessionStore::open`] uses) or memory.
pub struct SqliteBackend {
    conn: Mutex<Connection>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the store file at `path` with WAL and
    /// `synchronous=FULL`: a saved transition survives a crash or power loss.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        // Owner-only from the start: SQLite gives its -wal and -shm files
        // the database file's mode.
        crate::private_file::create_if_missing(path, "session store")
            .map_err(|e| Error::Store(format!("session store {}: {e}", path.display())))?;
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

    /// An SQLite database in memory (lost when dropped).
    pub fn in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory().map_err(store_err)?)
    }

    fn init(conn: Connection) -> Result<Self, Error> {
        conn.execute_batch(SCHEMA).map_err(store_err)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (an open
        // transaction rolls back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionBackend for SqliteBackend {
    fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let row = self
            .lock()
            .query_row(
                "SELECT suite, initial_role, peer_signature_key, created, last_used, version, record
                 FROM mlstls_session_records WHERE id = ?1",
                [&id.0],
                |r| {
                    Ok((
                        r.get::<_, u16>(0)?,
                        r.get::<_, u8>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        zeroize::Zeroizing::new(r.get::<_, Vec<u8>>(6)?),
                    ))
                },
            )
            .optional()
            .map_err(store_err)?;
        let Some((suite, role, key, created, used, version, data)) = row else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            info: SessionInfo {
                id: id.clone(),
                suite: suite_from_u16(suite)?,
                initial_role: role_from_u8(role)?,
                peer_signature_key: key,
                created: from_secs(created.max(0) as u64),
                last_used: from_secs(used.max(0) as u64),
            },
            version: u64::try_from(version)
                .map_err(|_| Error::Store(format!("record of {id}: negative version")))?,
            data,
        }))
    }

    fn save(&self, record: &SessionRecord, precondition: Precondition) -> Result<bool, Error> {
        let info = &record.info;
        let conn = self.lock();
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
            .map_err(store_err)?;
        let current: Option<i64> = tx
            .query_row(
                "SELECT version FROM mlstls_session_records WHERE id = ?1",
                [&info.id.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(store_err)?;
        let holds = match (precondition, current) {
            (Precondition::Absent, None) => true,
            (Precondition::Version(v), Some(c)) => c as u64 == v,
            _ => false,
        };
        if !holds {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR REPLACE INTO mlstls_session_records
                (id, suite, initial_role, peer_signature_key, created, last_used, version, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                info.id.0,
                info.suite.code_point(),
                role_to_u8(info.initial_role),
                info.peer_signature_key,
                secs(info.created) as i64,
                secs(info.last_used) as i64,
                record.version as i64,
                &record.data[..],
            ],
        )
        .map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Ok(true)
    }

    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        let n = self
            .lock()
            .execute("DELETE FROM mlstls_session_records WHERE id = ?1", [&id.0])
            .map_err(store_err)?;
        Ok(n > 0)
    }

    fn delete_at_version(&self, id: &SessionId, version: u64) -> Result<bool, Error> {
        let version = i64::try_from(version)
            .map_err(|_| Error::Store(format!("record of {id}: version beyond SQLite's range")))?;
        let n = self
            .lock()
            .execute(
                "DELETE FROM mlstls_session_records WHERE id = ?1 AND version = ?2",
                rusqlite::params![&id.0, version],
            )
            .map_err(store_err)?;
        Ok(n > 0)
    }

    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, suite, initial_role, peer_signature_key, created, last_used
                 FROM mlstls_session_records ORDER BY created, id",
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
                suite: suite_from_u16(suite)?,
                initial_role: role_from_u8(role)?,
                peer_signature_key: key,
                created: from_secs(created.max(0) as u64),
                last_used: from_secs(used.max(0) as u64),
            })
        })
        .collect()
    }

    fn delete_unused_since(&self, cutoff: SystemTime) -> Result<usize, Error> {
        self.lock()
            .execute(
                "DELETE FROM mlstls_session_records WHERE last_used < ?1",
                [secs(cutoff) as i64],
            )
            .map_err(store_err)
    }
}

pub(crate) fn store_err(e: rusqlite::Error) -> Error {
    Error::Store(e.to_string())
}
