//! `mlstls keygen` / `mlstls pubkey`, identity files and trust files.
//!
//! A public line is `mlstls-key <suite> <signature key hex> <name>`; a trust
//! file holds such lines (and `#` comments) for every accepted peer. A CA
//! file (`--ca`) holds PEM root certificates instead, for X.509 identities.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;
use mls_tls::credentials::x509::RootCertStore;
use mls_tls::credentials::{Identity, PinnedKeys};
use mls_tls::crypto::CipherSuite;

use crate::pki;

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
    /// Make an X.509 identity: the CA of --ca-cert/--ca-key (see `mlstls
    /// ca`) certifies the new key for --name (a DNS name), for client and
    /// server use. Needs an Ed25519 or ECDSA suite.
    #[arg(long, requires_all = ["ca_cert", "ca_key"])]
    x509: bool,
    /// The issuing CA's certificate (PEM), with --x509.
    #[arg(long, requires = "x509")]
    ca_cert: Option<PathBuf>,
    /// The issuing CA's private key (PEM), with --x509.
    #[arg(long, requires = "x509")]
    ca_key: Option<PathBuf>,
    /// Certificate validity in days, with --x509.
    #[arg(long, default_value_t = 90, requires = "x509")]
    days: i64,
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
    let mut id = Identity::generate(&args.name, args.suite).map_err(|e| e.to_string())?;
    if let (true, Some(cert), Some(key)) = (args.x509, &args.ca_cert, &args.ca_key) {
        id = pki::certify(id, &args.name, cert, key, args.days)?;
    }
    let bytes = id.to_bytes().map_err(|e| e.to_string())?;
    pki::write_new(&args.out, &bytes, true)
        .map_err(|e| e.replace("(not overwriting it)", "(not overwriting an identity)"))?;
    crate::common::print_line(&public_line(&id))?;
    Ok(())
}

pub(crate) fn pubkey(args: PubkeyArgs) -> Result<(), String> {
    crate::common::print_line(&public_line(&load_identity(&args.file)?))
}

pub(crate) fn load_identity(path: &Path) -> Result<Identity, String> {
    let bytes = fs::read(path).map_err(|e| format!("identity {}: {e}", path.display()))?;
    Identity::from_bytes(&bytes).map_err(|e| match e {
        // A readable file whose certificate no longer fits its key.
        mls_tls::Error::InvalidConfig(why) => format!("identity {}: {why}", path.display()),
        _ => format!(
            "identity {}: not an mlstls identity file (make one with `mlstls keygen`)",
            path.display()
        ),
    })
}

/// Parses a trust file into the pinned keys it lists.
pub(crate) fn load_trust(path: &Path) -> Result<PinnedKeys, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("trust file {}: {e}", path.display()))?;
    parse_trust(&text).map_err(|e| format!("trust file {}: {e}", path.display()))
}

/// Reads the PEM roots of a `--ca` file.
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let pem = fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    RootCertStore::from_pem(&pem).map_err(|e| format!("CA file {}: {e}", path.display()))
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
