//! X.509 credentials (RFC 9420 credential type `x509`) behind the
//! authentication hook: root stores and the two WebPKI verifiers, one for
//! each side's view of its peer, named like their rustls counterparts.
//!
//! A peer's X.509 credential is accepted when (docs/PROTOCOL.md, "X.509
//! credentials"):
//! - the chain is leaf first, each next certificate the issuer of the one
//!   before (RFC 9420 section 5.3), at most [`MAX_CHAIN_LEN`] certificates;
//! - the leaf's SubjectPublicKeyInfo is exactly the MLS leaf's signature key
//!   (Ed25519, ECDSA P-256 or P-384), so the certificate vouches for the key
//!   that signs the MLS messages;
//! - rustls-webpki builds a path to a configured root, at the time the
//!   engine passes in (or the verifier's [`with_clock`] override), with
//!   extended key usage serverAuth (responder) or clientAuth
//!   (initiator) when the leaf lists any;
//! - for a responder, the leaf is valid for the configured [`ServerName`];
//! - on an update, the new leaf has the same subject and subjectAltNames as
//!   the previous one (a renewed certificate, maybe for a new key).
//!
//! A certificate outside its validity period (expired, or not yet valid)
//! is a [`RejectKind::Expired`] rejection, sent as `certificate_expired`;
//! every other failure is `bad_certificate`.
//!
//! [`with_clock`]: WebPkiServerVerifier::with_clock

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{Credential, CredentialType};
use rustls_pki_types::TrustAnchor;
use webpki::{EndEntityCert, KeyUsage};

use super::{PeerAuth, PeerIdentity, PeerRejected, PeerVerifier, RejectKind, VerifyContext};
use crate::error::Error;

pub use rustls_pki_types as pki_types;
pub use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The longest chain accepted from a peer (leaf and intermediates).
pub const MAX_CHAIN_LEN: usize = 8;

/// Trusted root certificates, like rustls's `RootCertStore`.
///
/// ```
/// use mls_tls::credentials::x509::RootCertStore;
/// let roots = RootCertStore::empty();
/// assert!(roots.is_empty());
/// assert!(RootCertStore::from_pem(b"no certificates here").is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct RootCertStore {
    roots: Vec<TrustAnchor<'static>>,
}

impl RootCertStore {
    /// A store trusting nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Trusts `cert` (DER) as a root.
    pub fn add(&mut self, cert: &CertificateDer<'_>) -> Result<(), Error> {
        let anchor = webpki::anchor_from_trusted_cert(cert)
            .map_err(|e| Error::InvalidConfig(format!("root certificate does not parse: {e}")))?;
        self.roots.push(anchor.to_owned());
        Ok(())
    }

    /// Every `CERTIFICATE` block of a PEM text as roots; an error if there is
    /// none or one does not parse.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        use rustls_pki_types::pem::PemObject as _;
        let mut store = Self::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::InvalidConfig(format!("bad PEM: {e}")))?;
            store.add(&cert)?;
        }
        if store.is_empty() {
            return Err(Error::InvalidConfig(
                "no CERTIFICATE in the PEM text: nobody would be trusted".into(),
            ));
        }
        Ok(store)
    }

    /// Number of roots.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether no root is trusted.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

/// The MLS credential content of an X.509 credential: the chain as
/// `Certificate chain<V>`, each `opaque cert_data<V>` (RFC 9420 5.3).
pub(crate) fn encode_chain(chain: &[CertificateDer<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for cert in chain {
        write_varint(cert.len(), &mut out);
        out.extend_from_slice(cert);
    }
    out
}

/// RFC 9420 section 2.1.2 variable-size length (certificates are far below
/// the 2^30 limit).
fn write_varint(len: usize, out: &mut Vec<u8>) {
    match len {
        0..=0x3f => out.push(len as u8),
        0x40..=0x3fff => out.extend_from_slice(&(0x4000 | len as u16).to_be_bytes()),
        _ => out.extend_from_slice(&(0x8000_0000 | (len as u32 & 0x3fff_ffff)).to_be_bytes()),
    }
}

/// Reads a variable-size length; `None` if cut short, invalid or not
/// minimally encoded (RFC 9420 requires the shortest form).
fn read_varint(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let first = *bytes.first()?;
    let (size, min) = match first >> 6 {
        0 => (1, 0),
        1 => (2, 0x40),
        2 => (4, 0x4000),
        _ => return None,
    };
    let (head, rest) = bytes.split_at_checked(size)?;
    let value = head[1..]
        .iter()
        .fold(usize::from(first & 0x3f), |v, b| (v << 8) | usize::from(*b));
    (value >= min).then_some((value, rest))
}

/// Parses an X.509 credential's content (peer input: never panics).
pub(crate) fn decode_chain(mut content: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let malformed = || "malformed X.509 credential (not a list of certificates)".to_string();
    let mut chain = Vec::new();
    while !content.is_empty() {
        if chain.len() == MAX_CHAIN_LEN {
            return Err(format!(
                "certificate chain longer than {MAX_CHAIN_LEN} certificates"
            ));
        }
        let (len, rest) = read_varint(content).ok_or_else(malformed)?;
        let (cert, rest) = rest.split_at_checked(len).ok_or_else(malformed)?;
        chain.push(CertificateDer::from(cert.to_vec()));
        content = rest;
    }
    if chain.is_empty() {
        return Err("empty certificate chain".into());
    }
    Ok(chain)
}

/// The leaf's subject (DER contents), or empty if the content is not a
/// parsable chain: it names the peer in [`PeerIdentity::name`].
pub(crate) fn leaf_subject(content: &[u8]) -> Vec<u8> {
    decode_chain(content)
        .ok()
        .and_then(|chain| {
            EndEntityCert::try_from(&chain[0])
                .ok()
                .map(|c| c.subject().to_vec())
        })
        .unwrap_or_default()
}

/// DER `AlgorithmIdentifier`s of the keys an MLS signature key can be
/// compared with: (name, algorithm, key length in bytes).
const KEY_ALGORITHMS: [(&str, &[u8], usize); 3] = [
    // id-Ed25519 (RFC 8410), no parameters.
    ("Ed25519", &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70], 32),
    // id-ecPublicKey with secp256r1; MLS keys are uncompressed SEC1 points.
    (
        "ECDSA P-256",
        &[
            0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
            0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ],
        65,
    ),
    // id-ecPublicKey with secp384r1.
    (
        "ECDSA P-384",
        &[
            0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
            0x81, 0x04, 0x00, 0x22,
        ],
        97,
    ),
];

fn der_header(tag: u8, len: usize, out: &mut Vec<u8>) {
    out.push(tag);
    match len {
        0..=127 => out.push(len as u8),
        128..=255 => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// The DER SubjectPublicKeyInfo a certificate for the MLS signature key
/// `key` carries, if `key` has the shape of a supported scheme's key. DER
/// is canonical, so comparing bytes compares keys.
fn spki_for(key: &[u8]) -> Result<Vec<u8>, String> {
    let (_, algorithm, _) = KEY_ALGORITHMS
        .iter()
        .find(|(_, _, len)| *len == key.len())
        .ok_or_else(|| {
            format!(
                "the MLS signature key ({} bytes) is not an Ed25519, ECDSA P-256 or P-384 key: \
                 X.509 credentials are not supported for this ciphersuite (e.g. ML-DSA)",
                key.len()
            )
        })?;
    let mut bits = Vec::new();
    der_header(0x03, key.len() + 1, &mut bits);
    bits.push(0); // no unused bits
    bits.extend_from_slice(key);
    let mut out = Vec::new();
    der_header(0x30, algorithm.len() + bits.len(), &mut out);
    out.extend_from_slice(algorithm);
    out.extend_from_slice(&bits);
    Ok(out)
}

/// Checks the chain's shape and that its leaf certifies `key`: the checks
/// that need no roots (used on our own identity and on a peer's).
fn check_shape(chain: &[CertificateDer<'_>], key: &[u8]) -> Result<(), String> {
    let spki = spki_for(key)?;
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, c)| {
            EndEntityCert::try_from(c).map_err(|e| format!("certificate {i} does not parse: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let Some(leaf) = certs.first() else {
        return Err("empty certificate chain".into());
    };
    if leaf.subject_public_key_info().as_ref() != spki.as_slice() {
        if certs
            .iter()
            .any(|c| c.subject_public_key_info().as_ref() == spki.as_slice())
        {
            return Err(
                "certificate chain in the wrong order: the leaf (the certificate \
                        for the MLS signature key) must come first"
                    .into(),
            );
        }
        return Err("leaf certificate's public key does not match the MLS signature key".into());
    }
    for (i, pair) in certs.windows(2).enumerate() {
        if pair[0].issuer() != pair[1].subject() {
            return Err(format!(
                "certificate chain in the wrong order: certificate {} is not the issuer of \
                 certificate {i}",
                i + 1
            ));
        }
    }
    Ok(())
}

/// Checks our own chain before it is used (leaf first, certifies `key`).
pub(crate) fn check_own_chain(chain: &[CertificateDer<'_>], key: &[u8]) -> Result<(), String> {
    if chain.len() > MAX_CHAIN_LEN {
        return Err(format!(
            "certificate chain longer than {MAX_CHAIN_LEN} certificates"
        ));
    }
    check_shape(chain, key)
}

/// Whether `chain`'s leaf is valid for `name` (subjectAltName).
pub(crate) fn check_name(
    chain: &[CertificateDer<'_>],
    name: &ServerName<'_>,
) -> Result<(), String> {
    let leaf = EndEntityCert::try_from(chain.first().ok_or("empty certificate chain")?)
        .map_err(|e| describe(&e))?;
    leaf.verify_is_valid_for_subject_name(name).map_err(|_| {
        let names: Vec<&str> = leaf.valid_dns_names().collect();
        format!(
            "certificate is not valid for server name {} (it names {names:?})",
            name.to_str()
        )
    })
}

/// A peer's X.509 chain, if its credential is one; `Ok(None)` for another
/// credential type.
fn peer_chain(peer: &PeerIdentity) -> Result<Option<Vec<CertificateDer<'static>>>, String> {
    let credential = Credential::tls_deserialize_exact(&peer.credential)
        .map_err(|_| "peer credential does not parse".to_string())?;
    match credential.credential_type() {
        CredentialType::X509 => decode_chain(credential.serialized_content()).map(Some),
        _ => Ok(None),
    }
}

/// Subject and DNS subjectAltNames of a leaf: what must stay the same when
/// a peer rotates its certificate.
fn leaf_names(chain: &[CertificateDer<'_>]) -> Option<(Vec<u8>, Vec<String>)> {
    let leaf = EndEntityCert::try_from(chain.first()?).ok()?;
    let mut dns: Vec<String> = leaf.valid_dns_names().map(str::to_owned).collect();
    dns.sort();
    Some((leaf.subject().to_vec(), dns))
}

/// A webpki failure as a rejection: outside the validity period (expired
/// or not yet valid) is [`RejectKind::Expired`], anything else
/// [`RejectKind::Other`].
fn rejection(e: &webpki::Error) -> PeerRejected {
    let kind = match e {
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
            RejectKind::Expired
        }
        _ => RejectKind::Other,
    };
    PeerRejected {
        kind,
        reason: describe(e),
    }
}

/// The DNS subjectAltNames of a chain's leaf (for logs).
pub(crate) fn leaf_dns_names(chain: &[CertificateDer<'_>]) -> Option<Vec<String>> {
    leaf_names(chain).map(|(_, dns)| dns)
}

fn describe(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => {
            "certificate chain does not lead to a trusted root (unknown issuer)".into()
        }
        E::CertExpired { .. } => "certificate expired".into(),
        E::CertNotValidYet { .. } => "certificate is not valid yet".into(),
        E::RequiredEkuNotFoundContext(_) => {
            "certificate's extended key usage does not allow this role".into()
        }
        E::CaUsedAsEndEntity => "a CA certificate is used as the leaf".into(),
        other => format!("certificate rejected: {other}"),
    }
}

/// The checks both verifiers share.
#[derive(Debug, Clone)]
struct ChainPolicy {
    roots: Arc<RootCertStore>,
    usage: KeyUsage,
    /// Overrides the time the engine passes in (tests).
    clock: Option<fn() -> UnixTime>,
}

/// `now` as webpki's time (a time before 1970 counts as 1970).
fn unix_time(now: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default())
}

impl ChainPolicy {
    /// Verifies an X.509 `chain` for `peer` at `now` (unless a clock
    /// overrides it): shape, key binding, path, usage, the server name if
    /// given, and on an update that the subject stayed.
    fn verify(
        &self,
        peer: &PeerIdentity,
        chain: &[CertificateDer<'static>],
        context: VerifyContext<'_>,
        server_name: Option<&ServerName<'static>>,
        now: SystemTime,
    ) -> Result<(), PeerRejected> {
        check_shape(chain, &peer.signature_key)?;
        let leaf = EndEntityCert::try_from(&chain[0]).map_err(|e| rejection(&e))?;
        let time = self.clock.map_or_else(|| unix_time(now), |clock| clock());
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.roots.roots,
            &chain[1..],
            time,
            self.usage,
            None,
            None,
        )
        .map_err(|e| rejection(&e))?;
        if let Some(name) = server_name {
            check_name(chain, name)?;
        }
        if let VerifyContext::UpdatePath { previous } = context {
            match peer_chain(previous) {
                Ok(Some(before)) if leaf_names(&before) == leaf_names(chain) => {}
                Ok(Some(_)) => {
                    return Err(
                        "peer changed its identity in an update: the new certificate \
                                names another subject"
                            .into(),
                    )
                }
                _ => {
                    return Err("peer changed its credential type in an update".into());
                }
            }
        }
        Ok(())
    }
}

/// Verifies the responder's X.509 credential, for an initiator
/// (`ClientConfig`), like rustls's `WebPkiServerVerifier`: chain to the
/// roots, serverAuth usage, valid for the server name, checked on the
/// Welcome and on every update.
///
/// ```
/// use std::sync::Arc;
/// use mls_tls::credentials::x509::{RootCertStore, ServerName, WebPkiServerVerifier};
/// let name = ServerName::try_from("node-1.example").unwrap();
/// let verifier = WebPkiServerVerifier::new(Arc::new(RootCertStore::empty()), name);
/// # let _ = verifier;
/// ```
#[derive(Debug, Clone)]
pub struct WebPkiServerVerifier {
    policy: ChainPolicy,
    server_name: ServerName<'static>,
}

impl WebPkiServerVerifier {
    /// Accepts responders whose chain leads to `roots` and whose leaf is
    /// valid for `server_name` (one verifier per server name, as rustls
    /// takes the name per connection).
    pub fn new(roots: Arc<RootCertStore>, server_name: ServerName<'static>) -> Self {
        Self {
            policy: ChainPolicy {
                roots,
                usage: KeyUsage::server_auth(),
                clock: None,
            },
            server_name,
        }
    }

    /// Uses `clock` for validity checks instead of the time the engine
    /// passes to [`PeerVerifier::verify`] (for tests that need a verifier
    /// living at another time than the connection).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> UnixTime) -> Self {
        self.policy.clock = Some(clock);
        self
    }
}

impl PeerVerifier for WebPkiServerVerifier {
    fn verify(
        &self,
        peer: &PeerIdentity,
        context: VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<PeerAuth, PeerRejected> {
        let chain = peer_chain(peer)?
            .ok_or("peer presented a basic credential where an X.509 certificate is required")?;
        self.policy
            .verify(peer, &chain, context, Some(&self.server_name), now)?;
        Ok(PeerAuth::Authenticated)
    }
}

/// Client authentication for a responder. An MLS initiator always presents
/// a credential in its KeyPackage, so "optional" is about the credential's
/// type, not its presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Not checked: any credential is accepted, the client is anonymous.
    Off,
    /// A basic credential is accepted as anonymous; an X.509 credential
    /// must verify (a bad certificate is never ignored). On updates the
    /// credential type may not change.
    Optional,
    /// The client must present an X.509 credential that verifies.
    Required,
}

/// Verifies the initiator's X.509 credential, for a responder
/// (`ServerConfig`), like rustls's `WebPkiClientVerifier`: chain to the
/// roots, clientAuth usage, under a [`ClientAuth`] mode.
///
/// ```
/// use std::sync::Arc;
/// use mls_tls::credentials::x509::{ClientAuth, RootCertStore, WebPkiClientVerifier};
/// # let pem = {
/// #     let mut p = rcgen::CertificateParams::default();
/// #     p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
/// #     p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
/// # };
/// let roots = RootCertStore::from_pem(pem.as_bytes()).unwrap(); // e.g. a ca.pem file
/// // Clients with a certificate are authenticated, others are anonymous.
/// let verifier = WebPkiClientVerifier::new(Arc::new(roots), ClientAuth::Optional);
/// # let _ = verifier;
/// ```
#[derive(Debug, Clone)]
pub struct WebPkiClientVerifier {
    policy: ChainPolicy,
    mode: ClientAuth,
}

impl WebPkiClientVerifier {
    /// Verifies clients against `roots` under `mode`.
    pub fn new(roots: Arc<RootCertStore>, mode: ClientAuth) -> Self {
        Self {
            policy: ChainPolicy {
                roots,
                usage: KeyUsage::client_auth(),
                clock: None,
            },
            mode,
        }
    }

    /// Uses `clock` for validity checks instead of the time the engine
    /// passes to [`PeerVerifier::verify`] (for tests that need a verifier
    /// living at another time than the connection).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> UnixTime) -> Self {
        self.policy.clock = Some(clock);
        self
    }
}

impl PeerVerifier for WebPkiClientVerifier {
    fn verify(
        &self,
        peer: &PeerIdentity,
        context: VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<PeerAuth, PeerRejected> {
        if self.mode == ClientAuth::Off {
            return Ok(PeerAuth::Anonymous);
        }
        match peer_chain(peer)? {
            Some(chain) => {
                self.policy.verify(peer, &chain, context, None, now)?;
                Ok(PeerAuth::Authenticated)
            }
            None if self.mode == ClientAuth::Required => Err(
                "client presented a basic credential, but an X.509 certificate is required".into(),
            ),
            None => match context {
                VerifyContext::UpdatePath { previous }
                    if previous.credential_type() == Some(CredentialType::X509) =>
                {
                    Err("peer changed its credential type in an update".into())
                }
                _ => Ok(PeerAuth::Anonymous),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_encoding_round_trips_and_rejects_garbage() {
        let chain = vec![
            CertificateDer::from(vec![1, 2, 3]),
            CertificateDer::from(vec![4; 300]),
        ];
        assert_eq!(decode_chain(&encode_chain(&chain)).unwrap(), chain);
        assert!(decode_chain(&[]).unwrap_err().contains("empty"));
        assert!(decode_chain(&[0x05, 1]).unwrap_err().contains("malformed"));
        // Cut length, reserved prefix, non-minimal length.
        for bad in [&[0x40][..], &[0xc0, 0, 0, 0, 0, 0, 0, 0], &[0x40, 0x01, 0]] {
            assert!(decode_chain(bad).is_err(), "{bad:?}");
        }
        let long = vec![CertificateDer::from(vec![0]); MAX_CHAIN_LEN + 1];
        assert!(decode_chain(&encode_chain(&long))
            .unwrap_err()
            .contains("longer"));
        assert!(leaf_subject(&[0xff]).is_empty());
    }

    #[test]
    fn spki_encodings_have_the_der_lengths_of_real_keys() {
        // Lengths of DER SPKIs for these key types, as every X.509 tool
        // writes them.
        assert_eq!(spki_for(&[0; 32]).unwrap().len(), 44);
        assert_eq!(spki_for(&[4; 65]).unwrap().len(), 91);
        assert_eq!(spki_for(&[4; 97]).unwrap().len(), 120);
        assert!(spki_for(&[0; 1952]).unwrap_err().contains("ML-DSA"));
    }
}
