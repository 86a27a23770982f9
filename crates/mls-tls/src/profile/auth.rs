//! Identities and the authentication-service hook (SPEC section 5): who we
//! are, and who we accept as the peer.

use std::collections::HashSet;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{BasicCredential, Credential, CredentialWithKey};
use openmls_basic_credential::SignatureKeyPair;
use zeroize::Zeroizing;

use super::group::mls_err;
use super::suite::CipherSuite;
use crate::error::Error;

const IDENTITY_MAGIC: &[u8] = b"MLSTLS-IDENTITY-1\n";

/// This party's identity: a signature key pair and a basic credential
/// naming it, for one ciphersuite's signature scheme.
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

    /// The identity as bytes, private key included, to keep in a file only
    /// its owner can read: a stored session can only be resumed with the
    /// identity that created it.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut out = Zeroizing::new(IDENTITY_MAGIC.to_vec());
        out.extend_from_slice(&self.suite.code_point().to_be_bytes());
        let name_len = u16::try_from(self.name.len())
            .map_err(|_| Error::ApiMisuse("identity name longer than 65535 bytes"))?;
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(&self.name);
        let signer = Zeroizing::new(self.signer.tls_serialize_detached().map_err(mls_err)?);
        out.extend_from_slice(&signer);
        Ok(out)
    }

    /// Reads an identity written by [`Identity::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = || Error::ApiMisuse("not an MLS-TLS identity");
        let rest = bytes.strip_prefix(IDENTITY_MAGIC).ok_or_else(bad)?;
        let (suite, rest) = rest.split_at_checked(2).ok_or_else(bad)?;
        let suite = CipherSuite::from_code_point(u16::from_be_bytes([suite[0], suite[1]]))
            .ok_or_else(bad)?;
        let (len, rest) = rest.split_at_checked(2).ok_or_else(bad)?;
        let (name, rest) = rest
            .split_at_checked(usize::from(u16::from_be_bytes([len[0], len[1]])))
            .ok_or_else(bad)?;
        let signer = SignatureKeyPair::tls_deserialize_exact(rest).map_err(|_| bad())?;
        if signer.signature_scheme() != suite.signature_scheme() {
            return Err(Error::ApiMisuse(
                "identity key does not match its ciphersuite",
            ));
        }
        Ok(Self {
            signer,
            name: name.to_vec(),
            suite,
        })
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

    #[test]
    fn pinned_keys_refuse_unknown_keys_and_identity_changes() {
        let peer = |name: &[u8], key: &[u8]| PeerIdentity {
            credential: Vec::new(),
            name: name.to_vec(),
            signature_key: key.to_vec(),
        };
        let pins = PinnedKeys::new([vec![1], vec![2]]);
        assert!(pins
            .verify(&peer(b"a", &[1]), VerifyContext::KeyPackage)
            .is_ok());
        assert!(pins
            .verify(&peer(b"a", &[3]), VerifyContext::Welcome)
            .is_err());
        let previous = peer(b"a", &[1]);
        let update = |p| VerifyContext::UpdatePath { previous: p };
        assert!(pins.verify(&peer(b"a", &[2]), update(&previous)).is_ok());
        assert!(pins.verify(&peer(b"b", &[1]), update(&previous)).is_err());
    }
}
