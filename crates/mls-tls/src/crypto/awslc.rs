//! The hot symmetric primitives and signature verification on aws-lc-rs,
//! whichever provider a suite otherwise uses.
//!
//! Profiling showed a handshake or key update spending a third of its CPU
//! in the providers' portable Ed25519 and SHA-2 code; aws-lc has assembly
//! for both (the record layer and X.509 checks use it already). Only
//! primitives whose output is fixed by their standards move here, so the
//! results are the same bytes the providers give (see the cross-checks in
//! the tests): SHA-2, HMAC (RFC 2104), HKDF (RFC 5869), and verification of
//! Ed25519 (RFC 8032) and ECDSA P-256/P-384 (DER signatures, SEC1 keys).
//! AEAD, signing keys and randomness stay with the provider; HPKE for the
//! DHKEM suites is built on these helpers in `crypto::hpke`.

use aws_lc_rs::{digest, hmac, signature};
use openmls_traits::types::{CryptoError, HashType, SignatureScheme};
use zeroize::Zeroizing;

/// Key material that is wiped when dropped.
pub(crate) type Secret = Zeroizing<Vec<u8>>;

fn digest_alg(hash: HashType) -> &'static digest::Algorithm {
    match hash {
        HashType::Sha2_256 => &digest::SHA256,
        HashType::Sha2_384 => &digest::SHA384,
        HashType::Sha2_512 => &digest::SHA512,
    }
}

fn hmac_alg(hash: HashType) -> hmac::Algorithm {
    match hash {
        HashType::Sha2_256 => hmac::HMAC_SHA256,
        HashType::Sha2_384 => hmac::HMAC_SHA384,
        HashType::Sha2_512 => hmac::HMAC_SHA512,
    }
}

/// The output length of `hash` (HKDF's `HashLen`).
pub(crate) fn hash_len(hash: HashType) -> usize {
    digest_alg(hash).output_len()
}

/// SHA-256/384/512 of `data`.
pub(crate) fn hash(hash: HashType, data: &[u8]) -> Vec<u8> {
    digest::digest(digest_alg(hash), data).as_ref().to_vec()
}

/// HMAC of `message` under `key` (any length; longer than a block is hashed
/// first, as RFC 2104 says).
pub(crate) fn hmac(hash: HashType, key: &[u8], message: &[u8]) -> Secret {
    let key = hmac::Key::new(hmac_alg(hash), key);
    // aws-lc-rs' `Tag` is a plain stack array it does not wipe; the copy we
    // keep is.
    Zeroizing::new(hmac::sign(&key, message).as_ref().to_vec())
}

/// HKDF-Extract (RFC 5869 2.2): HMAC with the salt as key. An empty salt is
/// an empty HMAC key, which HMAC zero-pads to the same block as the RFC's
/// `HashLen` zero bytes.
pub(crate) fn hkdf_extract(hash: HashType, salt: &[u8], ikm: &[u8]) -> Secret {
    hmac(hash, salt, ikm)
}

/// HKDF-Expand (RFC 5869 2.3). Written on HMAC rather than aws-lc-rs'
/// `hkdf::Prk`, which panics on a PRK longer than 64 bytes and keeps an
/// unwiped copy of it. Like both providers, a PRK shorter than `HashLen`
/// is refused (`InvalidLength`); more than 255 * `HashLen` bytes of output
/// is `HkdfOutputLengthInvalid`.
pub(crate) fn hkdf_expand(
    hash: HashType,
    prk: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Secret, CryptoError> {
    let n = hash_len(hash);
    if prk.len() < n {
        return Err(CryptoError::InvalidLength);
    }
    if len > 255 * n {
        return Err(CryptoError::HkdfOutputLengthInvalid);
    }
    let key = hmac::Key::new(hmac_alg(hash), prk);
    // Room for the last whole block, so the vector never reallocates (which
    // would leave an unwiped copy behind).
    let mut okm = Zeroizing::new(Vec::with_capacity(len + n));
    let mut counter = 1u8;
    while okm.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        // T(i) = HMAC(PRK, T(i-1) | info | i); T(i-1) is the last block of okm.
        ctx.update(&okm[okm.len().saturating_sub(n)..]);
        ctx.update(info);
        ctx.update(&[counter]);
        okm.extend_from_slice(ctx.sign().as_ref());
        // At most 255 blocks (checked above), so this never wraps.
        counter = counter.wrapping_add(1);
    }
    okm.truncate(len);
    Ok(okm)
}

/// Verifies `sig` over `data` with public key `pk`, or `None` if `scheme`
/// is not one done here (the caller asks its provider). Any malformed key
/// or signature is `InvalidSignature`.
pub(crate) fn verify_signature(
    scheme: SignatureScheme,
    data: &[u8],
    pk: &[u8],
    sig: &[u8],
) -> Option<Result<(), CryptoError>> {
    let alg: &'static dyn signature::VerificationAlgorithm = match scheme {
        SignatureScheme::ED25519 => &signature::ED25519,
        SignatureScheme::ECDSA_SECP256R1_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::ECDSA_SECP384R1_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return None,
    };
    Some(
        signature::UnparsedPublicKey::new(alg, pk)
            .verify(data, sig)
            .map_err(|_| CryptoError::InvalidSignature),
    )
}
