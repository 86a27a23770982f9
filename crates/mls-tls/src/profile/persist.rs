//! Moving a finished initial handshake from its private in-memory database
//! into the session store, in the store's transaction (SPEC 6 and 10:
//! nothing is stored before both sides are Synced).

use std::sync::OnceLock;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::crypto::run_migrations;
use super::store::store_err;
use crate::error::Error;

/// A fresh in-memory database with the OpenMLS schema, for one initial
/// handshake. Running the migrations costs about 1 ms, so the schema they
/// produce is captured once per process and replayed.
pub(crate) fn private_db() -> Result<Connection, Error> {
    static SCHEMA: OnceLock<Result<String, String>> = OnceLock::new();
    let schema = SCHEMA
        .get_or_init(|| {
            let mut db = Connection::open_in_memory().map_err(|e| e.to_string())?;
            run_migrations(&mut db)?;
            let statements: Vec<String> = db
                .prepare(
                    "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name LIKE 'openmls_%'",
                )
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(|e| e.to_string())?;
            Ok(statements.join(";\n"))
        })
        .as_ref()
        .map_err(|e| Error::Store(e.clone()))?;
    let db = Connection::open_in_memory().map_err(store_err)?;
    db.execute_batch(schema).map_err(store_err)?;
    Ok(db)
}

/// Copies every OpenMLS row of `src` (a database holding one handshake's
/// state) into `dst`. The caller runs this inside a `dst` transaction.
pub(crate) fn copy_private_db(src: &Connection, dst: &Connection) -> Result<(), Error> {
    let tables: Vec<String> = src
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name LIKE 'openmls_%' AND name != 'openmls_sqlite_storage_migrations'",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(store_err)?;
    for table in tables {
        let mut select = src
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .map_err(store_err)?;
        let columns = select.column_count();
        if columns == 0 {
            continue;
        }
        let placeholders = vec!["?"; columns].join(", ");
        let mut insert = dst
            .prepare(&format!(
                "INSERT OR REPLACE INTO \"{table}\" VALUES ({placeholders})"
            ))
            .map_err(store_err)?;
        let mut rows = select.query([]).map_err(store_err)?;
        while let Some(row) = rows.next().map_err(store_err)? {
            let values: Vec<Value> = (0..columns)
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<_, _>>()
                .map_err(store_err)?;
            insert
                .execute(rusqlite::params_from_iter(values))
                .map_err(store_err)?;
        }
    }
    Ok(())
}
