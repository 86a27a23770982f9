//! Files that hold secrets (the session store with its SQLite side files,
//! the key log): created readable and writable by their owner only (mode
//! 0600 on Unix), with a warning naming the fix when an existing one is
//! open to others.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` for appending, creating it owner-only if missing.
pub(crate) fn open_append(path: &Path, what: &str) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    owner_only(&mut options);
    let file = options.open(path)?;
    warn_if_shared(path, what);
    Ok(file)
}

/// Creates `path` empty and owner-only if it does not exist yet.
pub(crate) fn create_if_missing(path: &Path, what: &str) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    owner_only(&mut options);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            warn_if_shared(path, what);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn owner_only(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt as _;
    options.mode(0o600);
}

#[cfg(not(unix))]
fn owner_only(_: &mut OpenOptions) {}

/// Logs a warning when others may read or write `path`.
#[cfg(unix)]
fn warn_if_shared(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "the {what} holds secrets but others may read it: chmod 600 {}",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path, _: &str) {}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use crate::keylog::KeyLogFile;
    use crate::store::{conformance, Precondition, SessionBackend, SqliteBackend};

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The session store (with the WAL and shared-memory files SQLite
    /// makes beside it) and the key log hold secrets: owner-only, whatever
    /// the process umask allows.
    #[test]
    fn files_with_secrets_are_created_owner_only() {
        let dir = std::env::temp_dir().join(format!("mlstls-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("sessions.db");
        let backend = SqliteBackend::open(&db).unwrap();
        backend
            .save(&conformance::record(1, 1, 100), Precondition::Absent)
            .unwrap();
        let mut files = vec![db.clone()];
        for side in ["sessions.db-wal", "sessions.db-shm"] {
            let p = dir.join(side);
            assert!(p.exists(), "{side} exists while the store is open");
            files.push(p);
        }
        let log = dir.join("keys.log");
        let _keylog = KeyLogFile::open(&log).unwrap();
        files.push(log);
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        drop(backend);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
