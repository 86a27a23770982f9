//! Our own MLS signatures on aws-lc-rs.
//!
//! An identity's key stays an `openmls_basic_credential::SignatureKeyPair`
//! (it is what identity files and openmls storage hold), but that type signs
//! with portable code (ed25519-dalek, p256, p384). [`IdentitySigner`] parses
//! the same private key once into an aws-lc-rs key and signs with that.
//! Ed25519 signatures are deterministic, so they are the same bytes as
//! before; ECDSA signatures are randomised either way. Schemes aws-lc-rs
//! does not have (ML-DSA) are signed by the key pair itself.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::{CryptoError, SignatureScheme};
use tls_codec::{DeserializeBytes as _, SecretVLBytes, Serialize as _};
use zeroize::Zeroizing;

/// The parsed aws-lc-rs signing key. aws-lc keeps the private key in memory
/// it wipes when freeing (`OPENSSL_free` cleanses).
enum FastKey {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
}

/// A `SignatureKeyPair` that signs with aws-lc-rs when it can.
pub(crate) struct IdentitySigner {
    pair: SignatureKeyPair,
    /// `None` for schemes aws-lc-rs does not implement.
    fast: Option<FastKey>,
}

impl IdentitySigner {
    /// Wraps `pair`. Fails if its private key is malformed or does not match
    /// its public key (a signer whose signatures no peer would accept).
    pub(crate) fn new(pair: SignatureKeyPair) -> Result<Self, CryptoError> {
        let ecdsa = match pair.signature_scheme() {
            SignatureScheme::ED25519 => None,
            SignatureScheme::ECDSA_SECP256R1_SHA256 => {
                Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
            }
            SignatureScheme::ECDSA_SECP384R1_SHA384 => {
                Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING)
            }
            _ => return Ok(Self { pair, fast: None }),
        };
        let private = private_key(&pair)?;
        let bad = |_| CryptoError::CryptoLibraryError;
        let fast = match ecdsa {
            None => FastKey::Ed25519(
                Ed25519KeyPair::from_seed_and_public_key(private.as_slice(), pair.public())
                    .map_err(bad)?,
            ),
            Some(alg) => FastKey::Ecdsa(
                EcdsaKeyPair::from_private_key_and_public_key(
                    alg,
                    private.as_slice(),
                    pair.public(),
                )
                .map_err(bad)?,
            ),
        };
        Ok(Self {
            pair,
            fast: Some(fast),
        })
    }

    /// The key pair (for the public key and for serializing).
    pub(crate) fn key_pair(&self) -> &SignatureKeyPair {
        &self.pair
    }
}

/// The private key bytes of `pair` (Ed25519 seed or ECDSA big-endian
/// scalar). The type has no getter for them, but its TLS encoding, which
/// identity files use, starts with them.
fn private_key(pair: &SignatureKeyPair) -> Result<SecretVLBytes, CryptoError> {
    let encoded = Zeroizing::new(
        pair.tls_serialize_detached()
            .map_err(|_| CryptoError::CryptoLibraryError)?,
    );
    let (private, _) = SecretVLBytes::tls_deserialize_bytes(&encoded)
        .map_err(|_| CryptoError::CryptoLibraryError)?;
    Ok(private)
}

impl Signer for IdentitySigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        let sig = match &self.fast {
            None => return self.pair.sign(payload),
            Some(FastKey::Ed25519(k)) => k.try_sign(payload),
            // aws-lc-rs ignores the RNG argument and uses its own DRBG.
            Some(FastKey::Ecdsa(k)) => k.sign(&SystemRandom::new(), payload),
        };
        sig.map(|s| s.as_ref().to_vec())
            .map_err(|_| SignerError::SigningError)
    }

    fn signature_scheme(&self) -> SignatureScheme {
        self.pair.signature_scheme()
    }
}

impl core::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentitySigner")
            .field("pair", &self.pair)
            .field("aws_lc", &self.fast.is_some())
            .finish()
    }
}

#[cfg(test)]
#[path = "signer_tests.rs"]
mod tests;
