//! A session's MLS group lives in a private in-memory SQLite database (the
//! OpenMLS storage) for as long as its connection runs; what the session
//! store keeps is a snapshot of that database, taken inside the transition
//! that changed it (SPEC 10).

use std::sync::OnceLock;

use rusqlite::types::Value;
use rusqlite::{Connection, MAIN_DB};
use zeroize::Zeroizing;

use super::crypto::run_migrations;
use super::store::{store_err, SessionId, SessionStore};
use crate::error::Error;

const MAGIC: &[u8] = b"MLSTLS-GROUP-1";

/// A fresh in-memory database with the OpenMLS schema, for one session.
/// Running the migrations costs about 1 ms and replaying their SQL 0.4 ms,
/// so the empty database is built once per process and copied as an image.
pub(crate) fn private_db() -> Result<Connection, Error> {
    static TEMPLATE: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    let template = TEMPLATE
        .get_or_init(|| {
            let mut db = Connection::open_in_memory().map_err(|e| e.to_string())?;
            // Small pages: the database is a few rows of one session.
            db.execute_batch("PRAGMA page_size = 512;")
                .map_err(|e| e.to_string())?;
            run_migrations(&mut db)?;
            let image = db.serialize(MAIN_DB).map_err(|e| e.to_string())?;
            Ok(image.to_vec())
        })
        .as_ref()
        .map_err(|e| Error::Store(e.clone()))?;
    let mut db = Connection::open_in_memory().map_err(store_err)?;
    db.deserialize_read_exact(MAIN_DB, &template[..], template.len(), false)
        .map_err(store_err)?;
    Ok(db)
}

/// The OpenMLS tables of a private database, by name.
fn tables(db: &Connection) -> Result<Vec<String>, Error> {
    db.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name LIKE 'openmls_%' AND name != 'openmls_sqlite_storage_migrations'
         ORDER BY name",
    )
    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
    .map_err(store_err)
}

/// Every OpenMLS row of a private database as one byte string.
pub(crate) fn snapshot(db: &Connection) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(MAGIC.to_vec());
    for table in tables(db)? {
        let mut select = db
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .map_err(store_err)?;
        let columns = select.column_count();
        let mut rows = select.query([]).map_err(store_err)?;
        while let Some(row) = rows.next().map_err(store_err)? {
            put(&mut out, table.as_bytes());
            out.extend_from_slice(&(columns as u16).to_be_bytes());
            for i in 0..columns {
                match row.get::<_, Value>(i).map_err(store_err)? {
                    Value::Null => out.push(0),
                    Value::Integer(v) => {
                        out.push(1);
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                    Value::Real(v) => {
                        out.push(2);
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                    Value::Text(v) => {
                        out.push(3);
                        put(&mut out, v.as_bytes());
                    }
                    Value::Blob(v) => {
                        out.push(4);
                        put(&mut out, &v);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Loads a [`snapshot`] into a fresh private database. Only the OpenMLS
/// tables that database has are accepted, with their exact column counts.
pub(crate) fn restore(db: &Connection, snapshot: &[u8]) -> Result<(), Error> {
    let bad = |why: &str| Error::Store(format!("damaged group snapshot: {why}"));
    let known = tables(db)?;
    let mut r = snapshot
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("wrong format"))?;
    let tx = db.unchecked_transaction().map_err(store_err)?;
    while !r.is_empty() {
        let name = take_bytes(&mut r).ok_or_else(|| bad("truncated"))?;
        let table = known
            .iter()
            .find(|t| t.as_bytes() == name)
            .ok_or_else(|| bad("unknown table"))?;
        let columns = usize::from(u16::from_be_bytes(
            take(&mut r, 2)
                .ok_or_else(|| bad("truncated"))?
                .try_into()
                .map_err(|_| bad("truncated"))?,
        ));
        let mut values = Vec::with_capacity(columns);
        for _ in 0..columns {
            let tag = take(&mut r, 1).ok_or_else(|| bad("truncated"))?[0];
            let fixed = |r: &mut &[u8]| -> Result<[u8; 8], Error> {
                take(r, 8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("truncated"))
            };
            values.push(match tag {
                0 => Value::Null,
                1 => Value::Integer(i64::from_be_bytes(fixed(&mut r)?)),
                2 => Value::Real(f64::from_be_bytes(fixed(&mut r)?)),
                3 => Value::Text(
                    String::from_utf8(take_bytes(&mut r).ok_or_else(|| bad("truncated"))?.to_vec())
                        .map_err(|_| bad("text is not UTF-8"))?,
                ),
                4 => Value::Blob(take_bytes(&mut r).ok_or_else(|| bad("truncated"))?.to_vec()),
                _ => return Err(bad("unknown value type")),
            });
        }
        let placeholders = vec!["?"; columns].join(", ");
        // A wrong column count fails here, as an error.
        tx.prepare_cached(&format!("INSERT INTO \"{table}\" VALUES ({placeholders})"))
            .and_then(|mut s| s.execute(rusqlite::params_from_iter(values)))
            .map_err(|e| bad(&e.to_string()))?;
    }
    tx.commit().map_err(store_err)
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    // Rows of a two-member group: far below 4 GiB.
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = r.split_at_checked(n)?;
    *r = rest;
    Some(head)
}

fn take_bytes<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(take(r, 4)?.try_into().ok()?);
    take(r, len as usize)
}

/// A session's private database: open while a transition needs it, and
/// otherwise parked: dropped, to be rebuilt from the session store. An open
/// SQLite database costs over 100 KiB, several times an idle session's
/// group state, and the store holds that state anyway.
pub(crate) enum GroupDb {
    Open(Connection),
    Parked,
}

impl GroupDb {
    /// The database, rebuilt from the stored session `id` if parked. The
    /// stored copy must still be `version`: otherwise another connection
    /// has moved the session on ([`Error::Superseded`]).
    pub(crate) fn open(
        &mut self,
        store: &SessionStore,
        id: &SessionId,
        version: u64,
    ) -> Result<&Connection, Error> {
        if let Self::Parked = self {
            let stored = store
                .load(id)?
                .filter(|s| s.meta.version == version)
                .ok_or(Error::Superseded)?;
            let db = private_db()?;
            restore(&db, &stored.group)?;
            *self = Self::Open(db);
        }
        match self {
            Self::Open(db) => Ok(db),
            Self::Parked => unreachable!("opened above"),
        }
    }
}
