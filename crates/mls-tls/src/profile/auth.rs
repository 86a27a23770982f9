//! Identities and the authentication-service hook (SPEC section 5): who we
//! are, and who we accept as the peer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{BasicCredential, Credential, CredentialType, CredentialWithKey};
use openmls_basic_credential::SignatureKeyPair;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::crypto::signer::IdentitySigner;
use super::group::mls_err;
use super::suite::CipherSuite;
use super::x509;
use crate::error::Error;

/// Identity file with a basic credential.
const IDENTITY_MAGIC: &[u8] = b"MLSTLS-IDENTITY-1\n";
/// Identity file with an X.509 credential: the chain follows the name.
const IDENTITY_X509_MAGIC: &[u8] = b"MLSTLS-IDENTITY-X509-1\n";

/// This party's identity: a signature key pair and a credential for it, for
/// one ciphersuite's signature scheme. The credential is a basic credential
/// naming the key (peers pin the key) or, after
/// [`Identity::with_certificate_chain`], an X.509 certificate chain whose
/// leaf certifies the key (peers check it against their roots).
///
/// ```
/// use mls_tls::profile::auth::Identity;
/// use mls_tls::profile::suite::CipherSuite;
/// let id = Identity::generate("alice", CipherSuite::DEFAULT).unwrap();
/// assert_eq!(id.name(), b"alice");
/// assert!(!id.public_key().is_empty());
/// let restored = Identity::from_bytes(&id.to_bytes().unwrap()).unwrap();
/// assert_eq!(restored.public_key(), id.public_key());
/// ```
pub struct Identity {
    signer: IdentitySigner,
    name: Vec<u8>,
    /// X.509 chain, leaf first; `None` for a basic credential.
    chain: Option<Vec<CertificateDer<'static>>>,
    suite: CipherSuite,
}

impl Identity {
    /// Generates a fresh key pair for `suite` with credential `name`.
    pub fn generate(name: &str, suite: CipherSuite) -> Result<Self, Error> {
        let pair = SignatureKeyPair::new(suite.signature_scheme()).map_err(mls_err)?;
        let signer = IdentitySigner::new(pair).map_err(mls_err)?;
        Ok(Self {
            signer,
            name: name.as_bytes().to_vec(),
            chain: None,
            suite,
        })
    }

    /// Turns this identity's credential into an X.509 credential (RFC 9420
    /// `x509`): `chain` is leaf first, each next certificate the issuer of
    /// the one before, without the root. The leaf must certify exactly
    /// this identity's signature key, and the suite must sign with Ed25519
    /// or ECDSA P-256/P-384 (the schemes certificates are checked for).
    ///
    /// ```
    /// use mls_tls::profile::auth::Identity;
    /// use mls_tls::profile::suite::CipherSuite;
    /// use mls_tls::profile::x509::CertificateDer;
    /// use rcgen::{CertificateParams, CertifiedIssuer, IsCa, KeyPair, BasicConstraints};
    ///
    /// // The MLS key is made first; a CA then certifies its public key.
    /// let id = Identity::generate("node-1.example", CipherSuite::DEFAULT).unwrap();
    /// struct MlsKey<'a>(&'a [u8]);
    /// impl rcgen::PublicKeyData for MlsKey<'_> {
    ///     fn der_bytes(&self) -> &[u8] { self.0 }
    ///     fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm { &rcgen::PKCS_ED25519 }
    /// }
    /// let mut ca = CertificateParams::default();
    /// ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    /// let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    /// let leaf = CertificateParams::new(vec!["node-1.example".into()]).unwrap()
    ///     .signed_by(&MlsKey(id.public_key()), &ca).unwrap();
    /// let id = id
    ///     .with_certificate_chain(vec![CertificateDer::from(leaf.der().to_vec())])
    ///     .unwrap();
    /// assert_eq!(id.certificate_chain().unwrap().len(), 1);
    /// // A chain for another key is refused, naming the reason.
    /// let other = Identity::generate("x", CipherSuite::DEFAULT).unwrap();
    /// let err = other.with_certificate_chain(id.certificate_chain().unwrap().to_vec());
    /// assert!(err.unwrap_err().to_string().contains("does not match"));
    /// ```
    pub fn with_certificate_chain(
        mut self,
        chain: Vec<CertificateDer<'static>>,
    ) -> Result<Self, Error> {
        x509::check_own_chain(&chain, self.public_key()).map_err(Error::InvalidConfig)?;
        self.chain = Some(chain);
        Ok(self)
    }

    /// Checks that our certificate is valid for `name`, the name initiators
    /// will verify (a server can refuse to start with the wrong
    /// certificate). An error for a basic credential.
    pub fn check_server_name(&self, name: &x509::ServerName<'_>) -> Result<(), Error> {
        let chain = self.chain.as_deref().ok_or_else(|| {
            Error::InvalidConfig("identity has a basic credential, not a certificate".into())
        })?;
        x509::check_name(chain, name).map_err(Error::InvalidConfig)
    }

    /// The X.509 chain (leaf first), if the credential is X.509.
    pub fn certificate_chain(&self) -> Option<&[CertificateDer<'static>]> {
        self.chain.as_deref()
    }

    /// The ciphersuite this identity's key is for.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The name this identity was generated with (for a basic credential,
    /// the credential's identity bytes).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The signature public key: what a peer pins.
    pub fn public_key(&self) -> &[u8] {
        self.signer.key_pair().public()
    }

    /// The identity as bytes, private key included, to keep in a file only
    /// its owner can read: a stored session can only be resumed with the
    /// identity that created it.
    ///
    /// Layout: magic line, suite (u16), name (u16 length), for X.509 the
    /// credential content of RFC 9420 (u32 length; the chain as
    /// `Certificate chain<V>`), then the OpenMLS key pair.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let magic = match self.chain {
            None => IDENTITY_MAGIC,
            Some(_) => IDENTITY_X509_MAGIC,
        };
        let mut out = Zeroizing::new(magic.to_vec());
        out.extend_from_slice(&self.suite.code_point().to_be_bytes());
        let name_len = u16::try_from(self.name.len())
            .map_err(|_| Error::ApiMisuse("identity name longer than 65535 bytes"))?;
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(&self.name);
        if let Some(chain) = &self.chain {
            let content = x509::encode_chain(chain);
            let len = u32::try_from(content.len())
                .map_err(|_| Error::ApiMisuse("certificate chain longer than 4 GiB"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&content);
        }
        let signer = Zeroizing::new(
            self.signer
                .key_pair()
                .tls_serialize_detached()
                .map_err(mls_err)?,
        );
        out.extend_from_slice(&signer);
        Ok(out)
    }

    /// Reads an identity written by [`Identity::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = || Error::ApiMisuse("not an MLS-TLS identity");
        let (x509, rest) = match bytes.strip_prefix(IDENTITY_X509_MAGIC) {
            Some(rest) => (true, rest),
            None => (false, bytes.strip_prefix(IDENTITY_MAGIC).ok_or_else(bad)?),
        };
        let (suite, rest) = rest.split_at_checked(2).ok_or_else(bad)?;
        let suite = CipherSuite::from_code_point(u16::from_be_bytes([suite[0], suite[1]]))
            .ok_or_else(bad)?;
        let (len, rest) = rest.split_at_checked(2).ok_or_else(bad)?;
        let (name, rest) = rest
            .split_at_checked(usize::from(u16::from_be_bytes([len[0], len[1]])))
            .ok_or_else(bad)?;
        let (chain, rest) = if x509 {
            let (len, rest) = rest.split_at_checked(4).ok_or_else(bad)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            let (content, rest) = rest
                .split_at_checked(usize::try_from(len).map_err(|_| bad())?)
                .ok_or_else(bad)?;
            (Some(x509::decode_chain(content).map_err(|_| bad())?), rest)
        } else {
            (None, rest)
        };
        let pair = SignatureKeyPair::tls_deserialize_exact(rest).map_err(|_| bad())?;
        if pair.signature_scheme() != suite.signature_scheme() {
            return Err(Error::ApiMisuse(
                "identity key does not match its ciphersuite",
            ));
        }
        let signer = IdentitySigner::new(pair)
            .map_err(|_| Error::ApiMisuse("identity private key does not match its public key"))?;
        let id = Self {
            signer,
            name: name.to_vec(),
            chain: None,
            suite,
        };
        match chain {
            Some(chain) => id.with_certificate_chain(chain),
            None => Ok(id),
        }
    }

    /// What signs our MLS messages (on aws-lc-rs where it can).
    pub(crate) fn signer(&self) -> &IdentitySigner {
        &self.signer
    }

    pub(crate) fn credential(&self) -> CredentialWithKey {
        let credential = match &self.chain {
            None => BasicCredential::new(self.name.clone()).into(),
            Some(chain) => Credential::new(CredentialType::X509, x509::encode_chain(chain)),
        };
        CredentialWithKey {
            credential,
            signature_key: self.public_key().to_vec().into(),
        }
    }
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("suite", &self.suite)
            .field("x509", &self.chain.is_some())
            .finish_non_exhaustive()
    }
}

/// The peer as its MLS leaf presents it, and whether the verifier
/// authenticated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The serialized MLS credential.
    pub credential: Vec<u8>,
    /// The credential's identity bytes: for a basic credential its name,
    /// for an X.509 credential the leaf certificate's subject (DER, without
    /// the outer SEQUENCE).
    pub name: Vec<u8>,
    /// The signature public key.
    pub signature_key: Vec<u8>,
    /// Whether the verifier vouched for this identity
    /// ([`PeerAuth::Authenticated`]); `false` for a peer let in anonymously
    /// (optional client authentication, [`AcceptAnyPeer`]). Until the
    /// verifier has run it is `false`.
    pub authenticated: bool,
}

impl PeerIdentity {
    pub(crate) fn from_leaf(credential: &Credential, signature_key: &[u8]) -> Result<Self, Error> {
        let name = match credential.credential_type() {
            CredentialType::X509 => x509::leaf_subject(credential.serialized_content()),
            _ => credential.serialized_content().to_vec(),
        };
        Ok(Self {
            credential: credential.tls_serialize_detached().map_err(mls_err)?,
            name,
            signature_key: signature_key.to_vec(),
            authenticated: false,
        })
    }

    /// Rebuilds a stored peer (its serialized credential and key). A
    /// credential that no longer parses is a damaged store record
    /// ([`Error::Store`]), not the peer's fault: it is refused when the
    /// session is loaded, never turned into an empty name.
    pub(crate) fn from_stored(credential: &[u8], signature_key: &[u8]) -> Result<Self, Error> {
        let credential = Credential::tls_deserialize_exact(credential).map_err(|_| {
            Error::Store("damaged session record: the stored peer credential does not parse".into())
        })?;
        Self::from_leaf(&credential, signature_key)
    }

    /// Runs `verifier` on this identity at time `now`: the identity with
    /// its `authenticated` flag set, or the rejection as an error
    /// (`bad_certificate`, or `certificate_expired` for
    /// [`RejectKind::Expired`]) naming the reason.
    pub(crate) fn verified_by(
        mut self,
        verifier: &dyn PeerVerifier,
        context: VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<Self, Error> {
        let auth = verifier.verify(&self, context, now)?;
        self.authenticated = auth == PeerAuth::Authenticated;
        Ok(self)
    }

    /// A name for logs: a basic credential's name (lossy UTF-8), or an
    /// X.509 leaf's DNS names. Never key material.
    pub(crate) fn display_name(&self) -> String {
        match self.certificate_chain() {
            Some(chain) => x509::leaf_dns_names(&chain).map_or_else(
                || "x509 (unparsable leaf)".into(),
                |n| format!("x509 {n:?}"),
            ),
            None => String::from_utf8_lossy(&self.name).into_owned(),
        }
    }

    /// The MLS credential type (basic, x509, ...), if the credential parses.
    pub fn credential_type(&self) -> Option<CredentialType> {
        Credential::tls_deserialize_exact(&self.credential)
            .ok()
            .map(|c| c.credential_type())
    }

    /// The X.509 chain (leaf first), if the credential is a well-formed
    /// X.509 credential.
    pub fn certificate_chain(&self) -> Option<Vec<CertificateDer<'static>>> {
        let c = Credential::tls_deserialize_exact(&self.credential).ok()?;
        if c.credential_type() != CredentialType::X509 {
            return None;
        }
        x509::decode_chain(c.serialized_content()).ok()
    }
}

/// Where a peer credential is being checked.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum VerifyContext<'a> {
    /// The responder checks a ClientHello's KeyPackage.
    KeyPackage,
    /// The initiator checks the responder's leaf in the Welcome.
    Welcome,
    /// A commit's UpdatePath leaf; `previous` is the identity the session
    /// had until now.
    UpdatePath {
        /// The peer's identity before this commit.
        previous: &'a PeerIdentity,
    },
    /// The peer's current, unchanged leaf is checked again (SPEC 5: every
    /// epoch change re-checks the peer with the current time and trust
    /// configuration; SPEC 8: a stored peer is re-checked before a
    /// resumption sends or delivers anything). The identity was accepted
    /// before; a certificate may have expired or a key been removed from
    /// the trust configuration since.
    Recheck,
}

/// Why a verifier refused a peer: a kind that picks the alert, and a
/// reason for people (it goes into the error message).
///
/// ```
/// use mls_tls::profile::auth::{PeerRejected, RejectKind};
/// let e: PeerRejected = "key not pinned".into();
/// assert_eq!(e.kind, RejectKind::Other);
/// assert_eq!(PeerRejected::expired("certificate expired").kind, RejectKind::Expired);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRejected {
    /// What kind of rejection: decides the alert.
    pub kind: RejectKind,
    /// Why, for the error message.
    pub reason: String,
}

/// The kind of a [`PeerRejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectKind {
    /// The credential is outside its validity period at the time of the
    /// check: expired, or not yet valid (RFC 8446 `certificate_expired`:
    /// "a certificate has expired or is not currently valid"). Sends
    /// `certificate_expired(45)` ([`Error::CertificateExpired`]).
    Expired,
    /// Any other reason (unknown issuer, key not pinned, wrong name, a
    /// changed identity, ...). Sends `bad_certificate(42)`
    /// ([`Error::BadCertificate`]).
    Other,
}

impl PeerRejected {
    /// A rejection of kind [`RejectKind::Other`].
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            kind: RejectKind::Other,
            reason: reason.into(),
        }
    }

    /// A rejection of kind [`RejectKind::Expired`].
    pub fn expired(reason: impl Into<String>) -> Self {
        Self {
            kind: RejectKind::Expired,
            reason: reason.into(),
        }
    }
}

impl From<String> for PeerRejected {
    fn from(reason: String) -> Self {
        Self::new(reason)
    }
}

impl From<&str> for PeerRejected {
    fn from(reason: &str) -> Self {
        Self::new(reason)
    }
}

impl core::fmt::Display for PeerRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PeerRejected {}

impl From<PeerRejected> for Error {
    fn from(r: PeerRejected) -> Self {
        match r.kind {
            RejectKind::Expired => Self::CertificateExpired(r.reason),
            RejectKind::Other => Self::BadCertificate(r.reason),
        }
    }
}

/// What a verifier concluded about an accepted peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAuth {
    /// The credential was checked and vouches for the peer.
    Authenticated,
    /// The peer is let in without being authenticated (e.g. a client
    /// without a certificate under optional client authentication).
    Anonymous,
}

/// The authentication-service hook: decides whether a peer credential is
/// acceptable. Called on the KeyPackage, on the Welcome's other leaf, on
/// every UpdatePath leaf, and on the peer's current leaf at every other
/// epoch change and before a resumption ([`VerifyContext::Recheck`]).
///
/// `now` is the wall-clock time the engine was given for this step (the
/// connection passes it in; tests pass any time they like): a verifier that
/// checks validity periods uses it rather than reading a clock itself.
///
/// ```
/// use std::time::SystemTime;
/// use mls_tls::profile::auth::{PeerAuth, PeerIdentity, PeerRejected, PeerVerifier, VerifyContext};
///
/// /// Accepts one name until a fixed deadline.
/// #[derive(Debug)]
/// struct Until(SystemTime);
///
/// impl PeerVerifier for Until {
///     fn verify(
///         &self,
///         peer: &PeerIdentity,
///         _: VerifyContext<'_>,
///         now: SystemTime,
///     ) -> Result<PeerAuth, PeerRejected> {
///         if peer.name != b"alice" {
///             return Err("not alice".into());
///         }
///         if now > self.0 {
///             return Err(PeerRejected::expired("alice's access expired"));
///         }
///         Ok(PeerAuth::Authenticated)
///     }
/// }
/// # let _ = Until(SystemTime::now());
/// ```
pub trait PeerVerifier: Send + Sync + core::fmt::Debug {
    /// `Ok` to accept (saying whether the peer is authenticated or only
    /// admitted); `Err` rejects: with `certificate_expired` for
    /// [`RejectKind::Expired`], else `bad_certificate`, the reason going
    /// into the error message.
    fn verify(
        &self,
        peer: &PeerIdentity,
        context: VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<PeerAuth, PeerRejected>;
}

/// Accepts peers whose signature key is on an allow-list, like SSH's
/// `known_hosts`. On an update the identity (credential name) must stay the
/// same; the key may change only to another pinned key.
#[derive(Debug, Clone, Default)]
pub struct PinnedKeys {
    keys: HashSet<Vec<u8>>,
}

impl PinnedKeys {
    /// An allow-list of signature public keys.
    pub fn new(keys: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
        }
    }

    /// Adds a key.
    pub fn add(&mut self, key: Vec<u8>) {
        self.keys.insert(key);
    }
}

impl PeerVerifier for PinnedKeys {
    fn verify(
        &self,
        peer: &PeerIdentity,
        context: VerifyContext<'_>,
        _now: SystemTime,
    ) -> Result<PeerAuth, PeerRejected> {
        if !self.keys.contains(&peer.signature_key) {
            return Err("peer signature key is not pinned".into());
        }
        if let VerifyContext::UpdatePath { previous } = context {
            if previous.name != peer.name {
                return Err("peer changed its identity in an update".into());
            }
        }
        Ok(PeerAuth::Authenticated)
    }
}

/// Accepts every peer. Only for tests and for trying things out: it gives
/// no authentication at all (every peer is [`PeerAuth::Anonymous`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAnyPeer;

impl PeerVerifier for AcceptAnyPeer {
    fn verify(
        &self,
        _: &PeerIdentity,
        _: VerifyContext<'_>,
        _: SystemTime,
    ) -> Result<PeerAuth, PeerRejected> {
        Ok(PeerAuth::Anonymous)
    }
}

/// Accepts a peer that either of two verifiers accepts, asking `first`
/// first: e.g. pinned keys for known devices next to an X.509 PKI. On an
/// update the verifier that accepts must accept the change, so a peer
/// cannot move from one trust model to the other mid-session unless one
/// verifier alone allows it.
///
/// ```
/// use std::sync::Arc;
/// use mls_tls::profile::auth::{EitherVerifier, PinnedKeys};
/// use mls_tls::profile::x509::{ClientAuth, RootCertStore, WebPkiClientVerifier};
/// let pins = PinnedKeys::new([vec![7u8; 32]]);
/// let pki = WebPkiClientVerifier::new(Arc::new(RootCertStore::empty()), ClientAuth::Required);
/// let either = EitherVerifier::new(Arc::new(pins), Arc::new(pki));
/// # let _ = either;
/// ```
#[derive(Debug, Clone)]
pub struct EitherVerifier {
    first: Arc<dyn PeerVerifier>,
    second: Arc<dyn PeerVerifier>,
}

impl EitherVerifier {
    /// Accepts what `first` or `second` accepts.
    pub fn new(first: Arc<dyn PeerVerifier>, second: Arc<dyn PeerVerifier>) -> Self {
        Self { first, second }
    }
}

impl PeerVerifier for EitherVerifier {
    /// When both reject, the reasons are joined and the kind is
    /// [`RejectKind::Expired`] if either said so (only a verifier that
    /// would otherwise accept gets as far as checking validity), else
    /// [`RejectKind::Other`].
    fn verify(
        &self,
        peer: &PeerIdentity,
        context: VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<PeerAuth, PeerRejected> {
        let first = match self.first.verify(peer, context, now) {
            Ok(auth) => return Ok(auth),
            Err(e) => e,
        };
        self.second.verify(peer, context, now).map_err(|second| {
            let kind = if first.kind == RejectKind::Expired || second.kind == RejectKind::Expired {
                RejectKind::Expired
            } else {
                RejectKind::Other
            };
            PeerRejected {
                kind,
                reason: format!("{first}; and {second}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_bytes_round_trip_and_reject_damage() {
        for suite in [
            CipherSuite::DEFAULT,
            CipherSuite::MlKem768Aes256GcmSha384MlDsa65,
        ] {
            let id = Identity::generate("node-1", suite).unwrap();
            let bytes = id.to_bytes().unwrap();
            let back = Identity::from_bytes(&bytes).unwrap();
            assert_eq!(back.public_key(), id.public_key());
            assert_eq!(back.name(), b"node-1");
            assert_eq!(back.suite(), suite);
            for cut in [0, 5, IDENTITY_MAGIC.len() + 3, bytes.len() - 1] {
                assert!(Identity::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut extra = bytes.to_vec();
            extra.push(0);
            assert!(Identity::from_bytes(&extra).is_err());
        }
    }

    /// Identity files as written before signing moved to aws-lc-rs (fixed
    /// keys: RFC 8032 test 1, RFC 6979 A.2.5) still load, sign for their
    /// public key, and are written back byte for byte.
    #[test]
    fn identity_files_from_before_awslc_still_load() {
        use openmls_traits::signatures::Signer as _;
        use openmls_traits::types::SignatureScheme;
        let ed_pk = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let p256_pk = "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6\
                       7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
        let files = [
            (
                // suite 0x0001, name "alice", key pair: seed<V> pk<V> ed25519
                "0001 0005 616c696365 \
                 20 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60 \
                 20 d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a 0807",
                ed_pk,
                SignatureScheme::ED25519,
            ),
            (
                // suite 0x0002, name "alice", key pair: scalar<V> point<V> p256
                "0002 0005 616c696365 \
                 20 c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721 \
                 4041 0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6\
                 7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299 0403",
                p256_pk,
                SignatureScheme::ECDSA_SECP256R1_SHA256,
            ),
        ];
        for (body, pk, scheme) in files {
            let body = hex::decode(body.replace(' ', "")).unwrap();
            let file = [IDENTITY_MAGIC, &body].concat();
            let id = Identity::from_bytes(&file).unwrap();
            assert_eq!(id.public_key(), hex::decode(pk).unwrap());
            assert_eq!(id.name(), b"alice");
            assert_eq!(*id.to_bytes().unwrap(), file);
            let sig = id.signer().sign(b"msg").unwrap();
            assert_eq!(
                super::super::crypto::awslc::verify_signature(
                    scheme,
                    b"msg",
                    id.public_key(),
                    &sig
                ),
                Some(Ok(()))
            );
        }
    }

    #[test]
    fn identity_with_mismatched_key_pair_is_refused() {
        let a = Identity::generate("a", CipherSuite::DEFAULT).unwrap();
        let b = Identity::generate("b", CipherSuite::DEFAULT).unwrap();
        let mut file = a.to_bytes().unwrap().to_vec();
        // The key pair ends with pk<V> (0x20 + 32 bytes) and the scheme (2).
        let at = file.len() - 34;
        file[at..at + 32].copy_from_slice(b.public_key());
        let err = Identity::from_bytes(&file).unwrap_err();
        assert!(
            err.to_string().contains("does not match its public key"),
            "{err}"
        );
    }

    #[test]
    fn pinned_keys_refuse_unknown_keys_and_identity_changes() {
        let peer = |name: &[u8], key: &[u8]| PeerIdentity {
            credential: Vec::new(),
            name: name.to_vec(),
            signature_key: key.to_vec(),
            authenticated: false,
        };
        let pins = PinnedKeys::new([vec![1], vec![2]]);
        let now = SystemTime::UNIX_EPOCH;
        assert!(pins
            .verify(&peer(b"a", &[1]), VerifyContext::KeyPackage, now)
            .is_ok());
        assert_eq!(
            pins.verify(&peer(b"a", &[3]), VerifyContext::Welcome, now),
            Err(PeerRejected::new("peer signature key is not pinned"))
        );
        let previous = peer(b"a", &[1]);
        let update = |p| VerifyContext::UpdatePath { previous: p };
        assert!(pins
            .verify(&peer(b"a", &[2]), update(&previous), now)
            .is_ok());
        assert!(pins
            .verify(&peer(b"b", &[1]), update(&previous), now)
            .is_err());
        assert!(pins
            .verify(&peer(b"a", &[1]), VerifyContext::Recheck, now)
            .is_ok());
    }
}
