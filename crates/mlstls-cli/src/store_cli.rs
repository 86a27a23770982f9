//! Where sessions are kept (`--store PATH|postgres://…`, `--store-key
//! FILE`) and `mlstls store-key new|rotate FILE`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use mls_tls::store::{KeyRing, PostgresBackend, SessionStore, STORE_KEY_ENV};

/// `mlstls store-key` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum StoreKeyCommand {
    /// Create a key file (mode 0600) with one new random key; refuses to
    /// overwrite an existing file.
    New {
        /// The key file to create.
        file: PathBuf,
    },
    /// Add a new key (the next id) to a key file: it seals from now on,
    /// older keys still open what they sealed.
    Rotate {
        /// The key file.
        file: PathBuf,
    },
}

pub(crate) fn run(cmd: StoreKeyCommand) -> Result<(), String> {
    match cmd {
        StoreKeyCommand::New { file } => {
            KeyRing::create_file(&file).map_err(|e| e.to_string())?;
            crate::common::print_line(&format!(
                "created store key file {} (key id 1)",
                file.display()
            ))
        }
        StoreKeyCommand::Rotate { file } => {
            let id = KeyRing::rotate_file(&file).map_err(|e| e.to_string())?;
            crate::common::print_line(&format!(
                "added key id {id} to {}: it seals from now on",
                file.display()
            ))
        }
    }
}

/// Whether `--store` names a PostgreSQL database rather than a file.
pub(crate) fn is_postgres(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// `store` for messages: a URL's password replaced by `***`.
pub(crate) fn display(store: &str) -> String {
    if !is_postgres(store) {
        return store.to_string();
    }
    let (scheme, rest) = store.split_once("://").unwrap_or(("", store));
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => store.to_string(),
    }
}

/// The store key: `--store-key FILE`, else `$MLSTLS_STORE_KEY`, else none.
fn key_ring(key: Option<&Path>) -> Result<Option<KeyRing>, String> {
    match key {
        Some(file) => KeyRing::from_file(file)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => KeyRing::from_env(STORE_KEY_ENV).map_err(|e| e.to_string()),
    }
}

/// Opens the session store of `server` and `client`: PostgreSQL (always
/// sealed: a key is required) or an SQLite file (sealed when a key is
/// given).
pub(crate) fn open(store: &str, key: Option<&Path>) -> Result<SessionStore, String> {
    let keys = key_ring(key)?;
    let shown = display(store);
    if is_postgres(store) {
        let keys = keys.ok_or_else(|| {
            format!(
                "{shown}: a PostgreSQL store is encrypted at rest and needs a store key: \
                 create one with `mlstls store-key new FILE` and give --store-key FILE \
                 (or put its contents in ${STORE_KEY_ENV}); every server sharing the \
                 database needs the same key file"
            )
        })?;
        return SessionStore::open_postgres(store, keys).map_err(|e| format!("{shown}: {e}"));
    }
    match keys {
        Some(keys) => SessionStore::open_sealed(store, keys),
        None => SessionStore::open(store),
    }
    .map_err(|e| format!("{shown}: {e}"))
}

/// Opens a store for `mlstls sessions`, which reads only the index fields
/// (id, peer key, times) and so needs no key.
pub(crate) fn open_index(store: &str) -> Result<SessionStore, String> {
    let shown = display(store);
    if is_postgres(store) {
        return PostgresBackend::connect(store)
            .map(SessionStore::with_backend)
            .map_err(|e| format!("{shown}: {e}"));
    }
    if !Path::new(store).exists() {
        return Err(format!("{shown}: no such session store"));
    }
    SessionStore::open(store).map_err(|e| format!("{shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            display("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(display("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(display("/tmp/x.sessions"), "/tmp/x.sessions");
        assert!(is_postgres("postgresql://h/db") && !is_postgres("./postgres"));
    }
}
