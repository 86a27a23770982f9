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
    /// ca`) certifies the new key for --name (a DNS name or an IP
    /// address), for client and server use. Needs an Ed25519 or ECDSA suite.
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
    /// Print the key as a PEM SubjectPublicKeyInfo instead, for a CA to
    /// certify (e.g. `openssl x509 -new -force_pubkey`); then `mlstls
    /// attach-chain`. Ed25519 and ECDSA suites.
    #[arg(long)]
    pem: bool,
}

/// The line a peer puts in its trust file.
pub(crate) fn public_line(id: &Identity) -> String {
    id.public_line()
}

pub(crate) fn keygen(args: KeygenArgs) -> Result<(), String> {
    if args.x509 {
        // Checked before anything is made.
        pki::check_name(&args.name)?;
    }
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
    let id = load_identity(&args.file)?;
    if args.pem {
        let pem = pki::public_key_pem(&id)?;
        return crate::common::print_line(pem.trim_end());
    }
    crate::common::print_line(&public_line(&id))
}

/// `mlstls suites`: every suite, its code point, whether its key exchange
/// is post-quantum, the default marked.
pub(crate) fn suites() -> Result<(), String> {
    for suite in CipherSuite::ALL {
        let pq = if suite.is_post_quantum() {
            "post-quantum"
        } else {
            "classic"
        };
        let default = if suite == CipherSuite::DEFAULT {
            "  (default)"
        } else {
            ""
        };
        crate::common::print_line(&format!(
            "0x{:04X}  {:<48} {pq}{default}",
            suite.code_point(),
            suite.name()
        ))?;
    }
    Ok(())
}

pub(crate) fn load_identity(path: &Path) -> Result<Identity, String> {
    Identity::load(path).map_err(|e| e.to_string())
}

/// Reads a trust file into the pinned keys it lists.
pub(crate) fn load_trust(path: &Path) -> Result<PinnedKeys, String> {
    PinnedKeys::from_trust_file(path).map_err(|e| e.to_string())
}

/// Reads the PEM roots of a `--ca` file.
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let pem = fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    RootCertStore::from_pem(&pem).map_err(|e| format!("CA file {}: {e}", path.display()))
}
