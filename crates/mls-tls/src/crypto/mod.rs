//! The openmls provider MLS-TLS runs on: a crypto backend chosen at run time
//! from the [`CipherSuite`], plus a session's in-memory storage.
//!
//! `OpenMlsRand` has a const-generic method (`random_array::<N>`), so it is
//! not dyn-compatible and the backend cannot be a `Box<dyn ...>`. Instead
//! `CryptoBackend` is an enum that delegates every trait method to the
//! provider inside, which keeps one concrete provider type for the library.
//! Hashing, HMAC, HKDF and Ed25519/ECDSA verification skip the provider and
//! run on aws-lc-rs for every suite (`awslc`), and so does HPKE with
//! DHKEM(X25519) or DHKEM(P-384) (suites 0x0001, 0x0003, 0x0007: `hpke`).

use std::fmt;

use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::types::{
    AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeCiphertext, HpkeConfig,
    HpkeKeyPair, KemOutput, SignatureScheme,
};
use tls_codec::SecretVLBytes;

pub(crate) mod awslc;
pub(crate) mod hpke;
pub(crate) mod signer;
mod suite;

pub(crate) use suite::Backend;
pub use suite::CipherSuite;

/// The crypto (and randomness) provider for one suite, picked at run time by
/// [`CryptoBackend::for_suite`]. Implements `OpenMlsCrypto` and
/// `OpenMlsRand` by delegating every method to the wrapped provider.
// The RustCrypto variant is ~350 bytes (its RNG state) vs ~80: irrelevant for a
// value created once per session and only ever borrowed, so no Box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum CryptoBackend {
    /// `openmls_libcrux_crypto`: suites 0x0001, 0x0003, 0x004D, 0x004E, 0x004F.
    Libcrux(openmls_libcrux_crypto::CryptoProvider),
    /// `openmls_rust_crypto`: suites 0x0002, 0x0042, 0x0051, 0x0052.
    RustCrypto(openmls_rust_crypto::RustCrypto),
    /// Suite 0x0007, which neither provider offers: `openmls_rust_crypto` for
    /// everything except HPKE with DHKEM(P-384), which goes to MLS-TLS's own
    /// RFC 9180 code on aws-lc-rs ([`hpke`]), as the HPKE of 0x0001 and
    /// 0x0003 does on the libcrux backend.
    RustCryptoP384(openmls_rust_crypto::RustCrypto),
}

/// The ciphersuite only [`CryptoBackend::RustCryptoP384`] adds to rust_crypto.
const P384_SUITE: Ciphersuite = Ciphersuite::MLS_256_DHKEMP384_AES256GCM_SHA384_P384;

/// Run `$body` with `$c` bound to the provider inside a [`CryptoBackend`].
macro_rules! dispatch {
    ($backend:expr, $c:ident => $body:expr) => {
        match $backend {
            CryptoBackend::Libcrux($c) => $body,
            CryptoBackend::RustCrypto($c) | CryptoBackend::RustCryptoP384($c) => $body,
        }
    };
}

impl CryptoBackend {
    /// A freshly seeded provider of the backend that implements `suite`
    /// (see [`CipherSuite::backend`]). Fails if the OS entropy source is
    /// unavailable (libcrux seeds its DRBG here) or if the backend reports the
    /// suite as unsupported.
    pub(crate) fn for_suite(suite: CipherSuite) -> Result<Self, CryptoError> {
        let backend = match suite.backend() {
            Backend::Libcrux => Self::Libcrux(openmls_libcrux_crypto::CryptoProvider::new()?),
            Backend::RustCrypto => Self::RustCrypto(openmls_rust_crypto::RustCrypto::default()),
            Backend::RustCryptoP384 => {
                Self::RustCryptoP384(openmls_rust_crypto::RustCrypto::default())
            }
        };
        // Only a sanity check: libcrux's `supports()` ignores the KEM, which
        // is why `CipherSuite::backend` is an explicit list.
        backend.supports(suite.mls())?;
        Ok(backend)
    }
}

impl fmt::Debug for CryptoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Libcrux(_) => "CryptoBackend::Libcrux",
            Self::RustCrypto(_) => "CryptoBackend::RustCrypto",
            Self::RustCryptoP384(_) => "CryptoBackend::RustCryptoP384",
        })
    }
}

impl OpenMlsCrypto for CryptoBackend {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        match self {
            Self::RustCryptoP384(_) if ciphersuite == P384_SUITE => Ok(()),
            _ => dispatch!(self, c => c.supports(ciphersuite)),
        }
    }

    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        let mut suites = dispatch!(self, c => c.supported_ciphersuites());
        if matches!(self, Self::RustCryptoP384(_)) && !suites.contains(&P384_SUITE) {
            suites.push(P384_SUITE);
        }
        suites
    }

    fn hkdf_extract(
        &self,
        hash_type: HashType,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        Ok(take(awslc::hkdf_extract(hash_type, salt, ikm)))
    }

    fn hmac(
        &self,
        hash_type: HashType,
        key: &[u8],
        message: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        Ok(take(awslc::hmac(hash_type, key, message)))
    }

    fn hkdf_expand(
        &self,
        hash_type: HashType,
        prk: &[u8],
        info: &[u8],
        okm_len: usize,
    ) -> Result<SecretVLBytes, CryptoError> {
        // MLS only ever expands HashLen-byte secrets. Other PRK lengths keep
        // the provider's answer, so no output changes: libcrux uses only the
        // first HashLen bytes of a longer PRK, where RFC 5869 uses all of it.
        if prk.len() == awslc::hash_len(hash_type) {
            awslc::hkdf_expand(hash_type, prk, info, okm_len).map(take)
        } else {
            dispatch!(self, c => c.hkdf_expand(hash_type, prk, info, okm_len))
        }
    }

    fn hash(&self, hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(awslc::hash(hash_type, data))
    }

    fn aead_encrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        data: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        dispatch!(self, c => c.aead_encrypt(alg, key, data, nonce, aad))
    }

    fn aead_decrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        ct_tag: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        dispatch!(self, c => c.aead_decrypt(alg, key, ct_tag, nonce, aad))
    }

    // Key generation and signing stay with the provider: openmls never calls
    // them (it signs through a `Signer`; ours is `signer::IdentitySigner`).
    fn signature_key_gen(&self, alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        dispatch!(self, c => c.signature_key_gen(alg))
    }

    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        awslc::verify_signature(alg, data, pk, signature)
            .unwrap_or_else(|| dispatch!(self, c => c.verify_signature(alg, data, pk, signature)))
    }

    fn sign(&self, alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        dispatch!(self, c => c.sign(alg, data, key))
    }

    fn hpke_seal(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ptxt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        if hpke::handles(&config) {
            hpke::seal(&config, pk_r, info, aad, ptxt)
        } else {
            dispatch!(self, c => c.hpke_seal(config, pk_r, info, aad, ptxt))
        }
    }

    fn hpke_open(
        &self,
        config: HpkeConfig,
        input: &HpkeCiphertext,
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if hpke::handles(&config) {
            hpke::open(&config, input, sk_r, info, aad)
        } else {
            dispatch!(self, c => c.hpke_open(config, input, sk_r, info, aad))
        }
    }

    fn hpke_setup_sender_and_export(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<(KemOutput, ExporterSecret), CryptoError> {
        if hpke::handles(&config) {
            hpke::setup_sender_and_export(&config, pk_r, info, exporter_context, exporter_length)
        } else {
            dispatch!(self, c => c.hpke_setup_sender_and_export(
                config,
                pk_r,
                info,
                exporter_context,
                exporter_length,
            ))
        }
    }

    fn hpke_setup_receiver_and_export(
        &self,
        config: HpkeConfig,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        if hpke::handles(&config) {
            hpke::setup_receiver_and_export(
                &config,
                enc,
                sk_r,
                info,
                exporter_context,
                exporter_length,
            )
        } else {
            dispatch!(self, c => c.hpke_setup_receiver_and_export(
                config,
                enc,
                sk_r,
                info,
                exporter_context,
                exporter_length,
            ))
        }
    }

    fn derive_hpke_keypair(
        &self,
        config: HpkeConfig,
        ikm: &[u8],
    ) -> Result<HpkeKeyPair, CryptoError> {
        if hpke::handles(&config) {
            hpke::derive_key_pair(&config, ikm)
        } else {
            dispatch!(self, c => c.derive_hpke_keypair(config, ikm))
        }
    }
    // The trait's other methods (`hpke_open_psk`, `hpke_seal_psk_resolved_aad`,
    // `ff1_aes128_*`) only exist with openmls_traits' `targeted-messages-draft`
    // / `virtual-clients-draft` features, which MLS-TLS does not enable. Enabling
    // either would make this impl fail to compile until they are delegated too.
}

/// Error of [`CryptoBackend`]'s `OpenMlsRand` impl: the two providers have
/// distinct error types, so this keeps whichever one failed (as `source()`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RandError {
    /// libcrux's DRBG failed.
    Libcrux(openmls_libcrux_crypto::RandError),
    /// rust_crypto's ChaCha20 RNG failed (poisoned lock or no randomness).
    RustCrypto(openmls_rust_crypto::RandError),
}

impl fmt::Display for RandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Libcrux(e) => write!(f, "libcrux randomness error: {e}"),
            Self::RustCrypto(e) => write!(f, "rust_crypto randomness error: {e}"),
        }
    }
}

impl std::error::Error for RandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Libcrux(e) => Some(e),
            Self::RustCrypto(e) => Some(e),
        }
    }
}

impl OpenMlsRand for CryptoBackend {
    type Error = RandError;

    fn random_array<const N: usize>(&self) -> Result<[u8; N], Self::Error> {
        match self {
            Self::Libcrux(c) => c.random_array::<N>().map_err(RandError::Libcrux),
            Self::RustCrypto(c) | Self::RustCryptoP384(c) => {
                c.random_array::<N>().map_err(RandError::RustCrypto)
            }
        }
    }

    fn random_vec(&self, len: usize) -> Result<Vec<u8>, Self::Error> {
        match self {
            Self::Libcrux(c) => c.random_vec(len).map_err(RandError::Libcrux),
            Self::RustCrypto(c) | Self::RustCryptoP384(c) => {
                c.random_vec(len).map_err(RandError::RustCrypto)
            }
        }
    }
}

/// Moves a wiped-on-drop buffer into the `SecretVLBytes` openmls wants
/// (which wipes too) without copying it.
fn take(mut secret: awslc::Secret) -> SecretVLBytes {
    SecretVLBytes::from(std::mem::take(&mut *secret))
}

#[cfg(test)]
mod awslc_tests;
#[cfg(test)]
mod tests;
