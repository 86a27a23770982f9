//! A test PKI from the command line: `mlstls ca` makes a certificate
//! authority, `mlstls keygen --x509` has it certify a new identity's key.
//! Meant for trying X.509 out; a real deployment issues certificates with
//! its own CA tooling for the key `mlstls keygen` creates.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use mls_tls::credentials::x509::CertificateDer;
use mls_tls::credentials::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// Options of `mlstls ca`.
#[derive(Debug, Args)]
pub(crate) struct CaArgs {
    /// Where to write the CA certificate (PEM): the `--ca` file of peers.
    #[arg(long)]
    cert: PathBuf,
    /// Where to write the CA private key (PEM, mode 0600; never overwritten).
    #[arg(long)]
    key: PathBuf,
    /// The CA's common name.
    #[arg(long, default_value = "mlstls test CA")]
    name: String,
    /// Validity in days, from now.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

/// Options of `mlstls attach-chain`.
#[derive(Debug, Args)]
pub(crate) struct AttachArgs {
    /// The identity whose key the certificate is for (from `mlstls keygen`).
    #[arg(long)]
    identity: PathBuf,
    /// PEM certificates, leaf first, each next the issuer of the one before
    /// (the root may be left out).
    #[arg(long)]
    chain: PathBuf,
    /// Where to write the X.509 identity (mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
}

/// Puts a certificate chain issued elsewhere (a real PKI) into a copy of
/// an identity, after checking its leaf certifies the identity's key.
pub(crate) fn attach_chain(args: AttachArgs) -> Result<(), String> {
    use mls_tls::credentials::x509::pki_types::pem::PemObject as _;
    let id = crate::keys::load_identity(&args.identity)?;
    let pem = fs::read(&args.chain).map_err(|e| format!("{}: {e}", args.chain.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(CertificateDer::into_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", args.chain.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no CERTIFICATE in it", args.chain.display()));
    }
    let id = id
        .with_certificate_chain(chain)
        .map_err(|e| format!("{}: {e}", args.chain.display()))?;
    let bytes = id.to_bytes().map_err(|e| e.to_string())?;
    write_new(&args.out, &bytes, true)?;
    crate::common::print_line(&crate::keys::public_line(&id))?;
    Ok(())
}

/// Writes a new file only its owner can read; never overwrites.
pub(crate) fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), String> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("{}: already exists (not overwriting it)", path.display())
        }
        _ => format!("{}: {e}", path.display()),
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn validity(params: &mut CertificateParams, days: i64) -> Result<(), String> {
    if days <= 0 {
        return Err("--days must be at least 1".into());
    }
    let now = OffsetDateTime::now_utc();
    // An hour of slack for clocks that are a little behind.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    Ok(())
}

/// Fails if `path` exists: checked for every output before anything is
/// written, so a refused command leaves no half of its output behind.
fn check_absent(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(format!(
            "{}: already exists (not overwriting it; nothing written)",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub(crate) fn ca(args: CaArgs) -> Result<(), String> {
    check_absent(&args.cert)?;
    check_absent(&args.key)?;
    if args.cert == args.key {
        return Err("--cert and --key name the same file".into());
    }
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, args.name.as_str());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, args.days)?;
    let key = KeyPair::generate().map_err(|e| format!("cannot make a CA key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot make the CA certificate: {e}"))?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    write_new(&args.key, key_pem.as_bytes(), true)?;
    if let Err(e) = write_new(&args.cert, cert.pem().as_bytes(), false) {
        // Created since the check: no orphan key is left behind.
        let _ = fs::remove_file(&args.key);
        return Err(e);
    }
    crate::common::print_line(&format!(
        "CA {:?}: certificate {}, key {}",
        args.name,
        args.cert.display(),
        args.key.display()
    ))
}

/// An MLS signature key as the public key of a certificate.
struct MlsKey<'a>(&'a [u8], &'static SignatureAlgorithm);

impl PublicKeyData for MlsKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.1
    }
}

/// Checks that `name` can name a certificate's subject: a DNS name or an
/// IP address, as clients check them (`--server-name`, `--connect`).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    use mls_tls::credentials::x509::ServerName;
    ServerName::try_from(name).map(|_| ()).map_err(|_| {
        format!(
            "--name {name:?} is not a DNS name or IP address (a certificate's name must be one)"
        )
    })
}

/// The certificate algorithm of an identity's MLS key: Ed25519 raw,
/// ECDSA uncompressed points (told apart by length).
fn key_algorithm(id: &Identity) -> Result<&'static SignatureAlgorithm, String> {
    match id.public_key().len() {
        32 => Ok(&rcgen::PKCS_ED25519),
        65 => Ok(&rcgen::PKCS_ECDSA_P256_SHA256),
        97 => Ok(&rcgen::PKCS_ECDSA_P384_SHA384),
        _ => Err(format!(
            "X.509 needs an Ed25519 or ECDSA ciphersuite; {} signs with ML-DSA, which \
             the certificate verifier does not support",
            id.suite()
        )),
    }
}

/// The identity's signature key as a PEM SubjectPublicKeyInfo (`PUBLIC
/// KEY`), the form CA tools take a key in.
pub(crate) fn public_key_pem(id: &Identity) -> Result<String, String> {
    let spki = MlsKey(id.public_key(), key_algorithm(id)?).subject_public_key_info();
    Ok(pem::encode(&pem::Pem::new("PUBLIC KEY", spki)))
}

/// Has the CA in `ca_cert`/`ca_key` certify `id`'s key for `name` (DNS
/// subjectAltName and common name), for both client and server use.
pub(crate) fn certify(
    id: Identity,
    name: &str,
    ca_cert: &Path,
    ca_key: &Path,
    days: i64,
) -> Result<Identity, String> {
    let read = |p: &Path| fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let key_pem = Zeroizing::new(read(ca_key)?);
    let key =
        KeyPair::from_pem(&key_pem).map_err(|e| format!("CA key {}: {e}", ca_key.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&read(ca_cert)?, key)
        .map_err(|e| format!("CA certificate {}: {e}", ca_cert.display()))?;
    let algorithm = key_algorithm(&id).map_err(|e| format!("--x509: {e}"))?;
    check_name(name)?;
    let mut params = CertificateParams::new(vec![name.to_string()])
        .map_err(|e| format!("--name {name:?} is not a DNS name for a certificate: {e}"))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days)?;
    let cert = params
        .signed_by(&MlsKey(id.public_key(), algorithm), &issuer)
        .map_err(|e| format!("cannot issue the certificate: {e}"))?;
    id.with_certificate_chain(vec![CertificateDer::from(cert.der().to_vec())])
        .map_err(|e| e.to_string())
}
