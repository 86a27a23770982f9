//! The opt-in key log (SPEC section 11): one line per installed key set and
//! direction, for debugging and for decrypting captures independently.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// Receives every traffic secret a connection installs. Only configure one
/// where exposing the secrets is intended.
pub trait KeyLog: Send + Sync + core::fmt::Debug {
    /// `label` is `MLSTLS_CLIENT_TRAFFIC_SECRET` or
    /// `MLSTLS_SERVER_TRAFFIC_SECRET`.
    fn log(&self, label: &str, group_id: &[u8], epoch: u64, secret: &[u8]);
}

/// A key log appending lines to a file, like `SSLKEYLOGFILE`.
#[derive(Debug)]
pub struct KeyLogFile {
    file: Mutex<File>,
}

impl KeyLogFile {
    /// Opens (appending to) the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// The file named by `MLSTLS_KEYLOGFILE`, if that variable is set.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("MLSTLS_KEYLOGFILE")?;
        Self::open(path).ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyLog for KeyLogFile {
    fn log(&self, label: &str, group_id: &[u8], epoch: u64, secret: &[u8]) {
        let line = format!("{label} {} {epoch} {}\n", hex(group_id), hex(secret));
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A key log is a debugging aid: a failed write must not break the
        // connection.
        let _ = f.write_all(line.as_bytes());
    }
}
