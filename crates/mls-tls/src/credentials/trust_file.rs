//! Trust files and public lines, as `mlstls` writes and reads them.
//!
//! A public line is `mlstls-key <suite> <signature key hex> [name]`
//! ([`Identity::public_line`], printed by `mlstls pubkey`); a trust file
//! holds such lines (and blank lines and `#` comments) for every peer it
//! accepts ([`PinnedKeys::from_trust_file`]).

use std::path::Path;

use super::{Identity, PinnedKeys};
use crate::crypto::CipherSuite;
use crate::error::Error;

/// The first word of a public line.
const TAG: &str = "mlstls-key";

impl Identity {
    /// The line a peer puts in its trust file to accept this identity:
    /// `mlstls-key <suite name> <signature key hex> <name>`.
    ///
    /// ```
    /// use mls_tls::credentials::{Identity, PinnedKeys};
    /// use mls_tls::CipherSuite;
    /// let id = Identity::generate("server", CipherSuite::DEFAULT).unwrap();
    /// let pins = PinnedKeys::from_trust_text(&id.public_line()).unwrap();
    /// assert!(pins.contains(id.public_key()));
    /// ```
    pub fn public_line(&self) -> String {
        format!(
            "{TAG} {} {} {}",
            self.suite().name(),
            hex::encode(self.public_key()),
            String::from_utf8_lossy(self.name())
        )
    }
}

impl PinnedKeys {
    /// Reads a trust file: one public line per accepted peer. Errors
    /// ([`Error::InvalidConfig`]) name the file and the line, and say what
    /// to do; a file with no public line at all is refused (it would
    /// trust nobody), and so is an identity file given by mistake.
    pub fn from_trust_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let named =
            |why: String| Error::InvalidConfig(format!("trust file {}: {why}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| named(e.to_string()))?;
        let mut pins = Self::from_trust_bytes(&bytes).map_err(|e| match e {
            Error::InvalidConfig(why) => named(why),
            other => other,
        })?;
        pins.source = Some(path.display().to_string());
        Ok(pins)
    }

    /// Parses the text of a trust file (see [`Self::from_trust_file`]).
    pub fn from_trust_text(text: &str) -> Result<Self, Error> {
        Self::from_trust_bytes(text.as_bytes())
    }

    fn from_trust_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |why: String| Error::InvalidConfig(why);
        if Identity::is_identity_file(bytes) {
            return Err(bad(
                "this is an identity file (it holds a private key), not a trust file: \
                 put the line that `mlstls pubkey <identity file>` prints into the trust file"
                    .into(),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| bad("not text: expected lines `mlstls-key SUITE KEY [NAME]`".into()))?;
        let mut pins = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: &str| bad(format!("line {}: {why}", n + 1));
            let mut parts = line.splitn(4, char::is_whitespace);
            let (Some(TAG), Some(suite), Some(key)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(at("expected `mlstls-key SUITE KEY [NAME]`"));
            };
            suite
                .parse::<CipherSuite>()
                .map_err(|e| at(&format!("{e}")))?;
            let key = hex::decode(key)
                .ok()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| at("the key is not hex"))?;
            let name = parts.next().map(str::trim).filter(|n| !n.is_empty());
            pins.add_named(key, name.map(str::to_owned));
        }
        if pins.is_empty() {
            return Err(bad(
                "no `mlstls-key` lines, so nobody would be trusted: add the line that \
                 `mlstls pubkey <peer identity file>` prints"
                    .into(),
            ));
        }
        Ok(pins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_lines_round_trip_and_errors_name_the_line_and_the_fix() {
        let a = Identity::generate("alice", CipherSuite::DEFAULT).unwrap();
        let b = Identity::generate("bob smith", CipherSuite::DEFAULT).unwrap();
        let text = format!("# peers\n\n{}\n  {}  \n", a.public_line(), b.public_line());
        let pins = PinnedKeys::from_trust_text(&text).unwrap();
        assert!(pins.contains(a.public_key()) && pins.contains(b.public_key()));
        assert_eq!(pins.name_of(b.public_key()), Some("bob smith"));

        let err = |t: &str| PinnedKeys::from_trust_text(t).unwrap_err().to_string();
        assert!(err("# nothing\n").contains("no `mlstls-key` lines"));
        assert!(err("mlstls-key nosuch 00\n").contains("line 1"));
        assert!(err("\nx y z\n").contains("line 2"));
        assert!(err("mlstls-key 0x004F zz\n").contains("not hex"));
        // An identity file where a trust file belongs: say what to do.
        let id = a.to_bytes().unwrap();
        let e = PinnedKeys::from_trust_bytes(&id).unwrap_err().to_string();
        assert!(
            e.contains("identity file") && e.contains("mlstls pubkey"),
            "{e}"
        );
        assert!(PinnedKeys::from_trust_bytes(&[0xff, 0xfe, 0]).is_err());
    }

    #[test]
    fn a_trust_file_error_names_the_file() {
        let dir = std::env::temp_dir().join(format!("mlstls-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peers.pub");
        std::fs::write(&path, "garbage\n").unwrap();
        let e = PinnedKeys::from_trust_file(&path).unwrap_err().to_string();
        assert!(e.contains("peers.pub") && e.contains("line 1"), "{e}");
        let e = PinnedKeys::from_trust_file(dir.join("missing.pub")).unwrap_err();
        assert!(e.to_string().contains("missing.pub"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
