//! `mlstls keygen` / `mlstls pubkey`, identity files and trust files.
//!
//! A public line is `mlstls-key <suite> <signature key hex> <name>`; a trust
//! file holds such lines (and `#` comments) for every accepted peer.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use mls_tls::profile::auth::{Identity, PinnedKeys};
use mls_tls::profile::suite::CipherSuite;

/// Options of `mlstls keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the identity (created with mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// The name in the credential.
    #[arg(long, default_value = "mlstls")]
    name: String,
    /// Ciphersuite the key is for.
    #[arg(long, default_value_t = CipherSuite::DEFAULT)]
    suite: CipherSuite,
}

/// Options of `mlstls pubkey`.
#[derive(Debug, Args)]
pub(crate) struct PubkeyArgs {
    /// The identity file.
    file: PathBuf,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The line a peer puts in its trust file.
pub(crate) fn public_line(id: &Identity) -> String {
    format!(
        "mlstls-key {} {} {}",
        id.suite().name(),
        hex(id.public_key()),
        String::from_utf8_lossy(id.name())
    )
}

pub(crate) fn keygen(args: KeygenArgs) -> Result<(), String> {
    let id = Identity::generate(&args.name, args.suite).map_err(|e| e.to_string())?;
    let bytes = id.to_bytes().map_err(|e| e.to_string())?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&args.out).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!(
                "{}: already exists (not overwriting an identity)",
                args.out.display()
            )
        }
        _ => format!("{}: {e}", args.out.display()),
    })?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!("{}", public_line(&id));
    Ok(())
}

pub(crate) fn pubkey(args: PubkeyArgs) -> Result<(), String> {
    println!("{}", public_line(&load_identity(&args.file)?));
    Ok(())
}

pub(crate) fn load_identity(path: &Path) -> Result<Identity, String> {
    let bytes = fs::read(path).map_err(|e| format!("identity {}: {e}", path.display()))?;
    Identity::from_bytes(&bytes).map_err(|_| {
        format!(
            "identity {}: not an mlstls identity file (make one with `mlstls keygen`)",
            path.display()
        )
    })
}

/// Parses a trust file into the pinned keys it lists.
pub(crate) fn load_trust(path: &Path) -> Result<PinnedKeys, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("trust file {}: {e}", path.display()))?;
    parse_trust(&text).map_err(|e| format!("trust file {}: {e}", path.display()))
}

fn parse_trust(text: &str) -> Result<PinnedKeys, String> {
    let mut pins = PinnedKeys::default();
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some("mlstls-key"), Some(suite), Some(key)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "line {}: expected `mlstls-key SUITE KEY [NAME]`",
                n + 1
            ));
        };
        suite
            .parse::<CipherSuite>()
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        let key = unhex(key).ok_or_else(|| format!("line {}: key is not hex", n + 1))?;
        pins.add(key);
        count += 1;
    }
    if count == 0 {
        return Err("no `mlstls-key` lines: nobody would be trusted".into());
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_lines_parse_and_errors_name_the_line() {
        let id = Identity::generate("a", CipherSuite::DEFAULT).unwrap();
        let text = format!("# peers\n\n{}\n", public_line(&id));
        assert!(parse_trust(&text).is_ok());
        assert!(parse_trust("# nothing\n")
            .unwrap_err()
            .contains("no `mlstls-key`"));
        assert!(parse_trust("mlstls-key nosuch 00\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(parse_trust("x y z\n").unwrap_err().contains("line 1"));
    }
}
