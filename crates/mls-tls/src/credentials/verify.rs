//! Who we accept as the peer (SPEC section 5): the peer's identity as its
//! MLS leaf presents it, and the authentication-service hook
//! ([`PeerVerifier`]) with the verifiers the crate ships.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{Credential, CredentialType};
use rustls_pki_types::CertificateDer;

use super::x509;
use crate::error::mls_err;
use crate::error::Error;

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

    /// A name to show: a basic credential's name (lossy UTF-8), or an
    /// X.509 leaf's DNS names. Never key material.
    pub fn display_name(&self) -> String {
        match self.certificate_chain() {
            Some(chain) => x509::leaf_dns_names(&chain).map_or_else(
                || "x509 (unparsable leaf)".into(),
                |n| format!("x509 {n:?}"),
            ),
            None => String::from_utf8_lossy(&self.name).into_owned(),
        }
    }

    /// The first 8 bytes of the signature public key in hex, then `…`:
    /// enough to match the key's line in a trust file by eye.
    pub fn key_fingerprint(&self) -> String {
        let hex = hex::encode(&self.signature_key);
        format!("{}\u{2026}", hex.get(..16).unwrap_or(&hex))
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
/// use mls_tls::credentials::{PeerRejected, RejectKind};
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
/// use mls_tls::credentials::{PeerAuth, PeerIdentity, PeerRejected, PeerVerifier, VerifyContext};
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
    /// Each pinned key, with the name its trust file line gave it.
    keys: HashMap<Vec<u8>, Option<String>>,
    /// Where the keys came from (a trust file's path), for error messages.
    pub(super) source: Option<String>,
}

impl PinnedKeys {
    /// An allow-list of signature public keys.
    pub fn new(keys: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k, None)).collect(),
            source: None,
        }
    }

    /// Adds a key.
    pub fn add(&mut self, key: Vec<u8>) {
        self.keys.insert(key, None);
    }

    /// Adds a key with the name a trust file gives it (for messages only:
    /// the key alone decides).
    pub fn add_named(&mut self, key: Vec<u8>, name: Option<String>) {
        self.keys.insert(key, name);
    }

    /// Whether `key` is pinned.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    /// The name a trust file gave `key`, if any.
    pub fn name_of(&self, key: &[u8]) -> Option<&str> {
        self.keys.get(key).and_then(|n| n.as_deref())
    }

    /// How many keys are pinned.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is pinned (nobody is accepted).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl PeerVerifier for PinnedKeys {
    fn verify(
        &self,
        peer: &PeerIdentity,
        context: VerifyContext<'_>,
        _now: SystemTime,
    ) -> Result<PeerAuth, PeerRejected> {
        if !self.keys.contains_key(&peer.signature_key) {
            let list = self.source.as_deref().unwrap_or("the pinned keys");
            return Err(format!(
                "the peer's key {} (name '{}') is not in {list}",
                peer.key_fingerprint(),
                String::from_utf8_lossy(&peer.name)
            )
            .into());
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
/// use mls_tls::credentials::{EitherVerifier, PinnedKeys};
/// use mls_tls::credentials::x509::{ClientAuth, RootCertStore, WebPkiClientVerifier};
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
