//! Identities and the authentication-service hook (SPEC section 5): who we
//! are, and who we accept as the peer.

use std::collections::HashSet;

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{BasicCredential, Credential, CredentialWithKey};
use openmls_basic_credential::SignatureKeyPair;

use super::group::mls_err;
use super::suite::CipherSuite;
use crate::error::Error;

/// This party's identity: a signature key pair and a basic credential
/// naming it, for one ciphersuite's signature scheme.
///
/// ```
/// use mls_tls::profile::auth::Identity;
/// use mls_tls::profile::suite::CipherSuite;
/// let id = Identity::generate("alice", CipherSuite::DEFAULT).unwrap();
/// assert_eq!(id.name(), b"alice");
/// assert!(!id.public_key().is_empty());
/// ```
pub struct Identity {
    signer: SignatureKeyPair,
    name: Vec<u8>,
    suite: CipherSuite,
}

impl Identity {
    /// Generates a fresh key pair for `suite` with credential `name`.
    pub fn generate(name: &str, suite: CipherSuite) -> Result<Self, Error> {
        let signer = SignatureKeyPair::new(suite.signature_scheme()).map_err(mls_err)?;
        Ok(Self {
            signer,
            name: name.as_bytes().to_vec(),
            suite,
        })
    }

    /// The ciphersuite this identity's key is for.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The credential's identity bytes.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The signature public key: what a peer pins.
    pub fn public_key(&self) -> &[u8] {
        self.signer.public()
    }

    pub(crate) fn signer(&self) -> &SignatureKeyPair {
        &self.signer
    }

    pub(crate) fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.name.clone()).into(),
            signature_key: self.signer.to_public_vec().into(),
        }
    }
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// The peer as its MLS leaf presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The serialized MLS credential.
    pub credential: Vec<u8>,
    /// The credential's identity bytes (for a basic credential, its name).
    pub name: Vec<u8>,
    /// The signature public key.
    pub signature_key: Vec<u8>,
}

impl PeerIdentity {
    pub(crate) fn from_leaf(credential: &Credential, signature_key: &[u8]) -> Result<Self, Error> {
        Ok(Self {
            credential: credential.tls_serialize_detached().map_err(mls_err)?,
            name: credential.serialized_content().to_vec(),
            signature_key: signature_key.to_vec(),
        })
    }
}

/// Where a peer credential is being checked.
#[derive(Debug, Clone, Copy)]
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
}

/// The authentication-service hook: decides whether a peer credential is
/// acceptable. Called on the KeyPackage, on the Welcome's other leaf and on
/// every UpdatePath leaf.
pub trait PeerVerifier: Send + Sync + core::fmt::Debug {
    /// `Ok` to accept; `Err(reason)` rejects with `bad_certificate`.
    fn verify(&self, peer: &PeerIdentity, context: VerifyContext<'_>) -> Result<(), String>;
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
    fn verify(&self, peer: &PeerIdentity, context: VerifyContext<'_>) -> Result<(), String> {
        if !self.keys.contains(&peer.signature_key) {
            return Err("peer signature key is not pinned".into());
        }
        if let VerifyContext::UpdatePath { previous } = context {
            if previous.name != peer.name {
                return Err("peer changed its identity in an update".into());
            }
        }
        Ok(())
    }
}

/// Accepts every peer. Only for tests and for trying things out: it gives
/// no authentication at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAnyPeer;

impl PeerVerifier for AcceptAnyPeer {
    fn verify(&self, _: &PeerIdentity, _: VerifyContext<'_>) -> Result<(), String> {
        Ok(())
    }
}
