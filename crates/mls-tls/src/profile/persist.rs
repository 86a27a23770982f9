//! Moving a finished initial handshake from its private in-memory database
//! into the session store, in the store's transaction (SPEC 6 and 10:
//! nothing is stored before both sides are Synced).

use rusqlite::types::Value;
use rusqlite::Connection;

use super::store::store_err;
use crate::error::Error;

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
