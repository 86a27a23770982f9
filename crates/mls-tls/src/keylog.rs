//! The opt-in key log (SPEC section 11): one line per installed key set and
//! direction, for debugging and for decrypting captures independently.

use std::fs::File;
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

/// The environment variable [`KeyLogFile::from_env`] reads.
pub const ENV_VAR: &str = "MLSTLS_KEYLOGFILE";

/// A key log appending lines to a file, like `SSLKEYLOGFILE`.
#[derive(Debug)]
pub struct KeyLogFile {
    file: Mutex<File>,
}

impl KeyLogFile {
    /// Opens (appending to) the file at `path`, creating it readable by
    /// its owner only (mode 0600): it holds traffic secrets.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = crate::private_file::open_append(path.as_ref(), "key log")?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// The file named by `MLSTLS_KEYLOGFILE`: `None` if that variable is
    /// not set, else the result of opening it. A file that cannot be opened
    /// is an error the caller must see: silently logging nothing would
    /// leave a capture that cannot be decrypted.
    pub fn from_env() -> Option<std::io::Result<Self>> {
        Self::from_var(std::env::var_os(ENV_VAR))
    }

    fn from_var(path: Option<std::ffi::OsString>) -> Option<std::io::Result<Self>> {
        let path = path?;
        Some(Self::open(&path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{ENV_VAR}={}: {e}", std::path::Path::new(&path).display()),
            )
        }))
    }
}

impl KeyLog for KeyLogFile {
    fn log(&self, label: &str, group_id: &[u8], epoch: u64, secret: &[u8]) {
        let line = format!(
            "{label} {} {epoch} {}\n",
            hex::encode(group_id),
            hex::encode(secret)
        );
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A key log is a debugging aid: a failed write must not break the
        // connection.
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unopenable_key_log_file_is_an_error_naming_it() {
        assert!(KeyLogFile::from_var(None).is_none());
        let path = std::env::temp_dir().join("mlstls-no-such-dir/sub/keys.log");
        let err = KeyLogFile::from_var(Some(path.clone().into_os_string()))
            .expect("variable set")
            .unwrap_err();
        assert!(err.to_string().contains("MLSTLS_KEYLOGFILE="), "{err}");
        assert!(err.to_string().contains("keys.log"), "{err}");
    }
}
