//! RFC 9180 HPKE in base mode for the one combination MLS ciphersuite 0x0007
//! uses: KEM DHKEM(P-384, HKDF-SHA384) (0x0011), KDF HKDF-SHA384 (0x0002),
//! AEAD AES-256-GCM (0x0002). openmls_libcrux_crypto has no DHKEM(P-384)
//! and openmls_rust_crypto does not offer suite 0x0007 (its `supports()`
//! leaves it out, although its hpke-rs backend has the KEM; the tests use it
//! as a second opinion), so [`super::crypto::CryptoBackend`] routes 0x0007's
//! HPKE calls here. The primitives (ECDH P-384, HMAC-SHA384, AES-256-GCM)
//! come from aws-lc-rs, which the record layer already uses.
//!
//! Keys use the encodings the other OpenMLS providers use for P-256: a private
//! key is the 48-byte big-endian scalar, a public key (and a KEM output) the
//! 97-byte uncompressed SEC1 point. Only single-shot operations exist, so the
//! AEAD nonce is always the base nonce (sequence number 0).

use aws_lc_rs::{aead, agreement, rand};
use openmls_traits::types::{
    CryptoError, ExporterSecret, HashType, HpkeAeadType, HpkeCiphertext, HpkeConfig, HpkeKdfType,
    HpkeKemType, HpkeKeyPair, KemOutput,
};
use zeroize::Zeroizing;

use super::crypto::awslc;

/// Length of the KEM's shared secret (`Nsecret`).
const N_SECRET: usize = 48;
/// Length of an encoded public key and of the KEM output (`Npk`, `Nenc`).
const N_PK: usize = 97;
/// Length of an encoded private key (`Nsk`).
const N_SK: usize = 48;
/// AES-256-GCM key length (`Nk`).
const N_K: usize = 32;
/// AES-256-GCM nonce length (`Nn`).
const N_N: usize = 12;
/// HKDF-SHA384 output length (`Nh`).
const N_H: usize = 48;

/// `suite_id` of the KEM's labeled KDF calls: "KEM" || I2OSP(kem_id, 2).
const KEM_SUITE_ID: &[u8] = b"KEM\x00\x11";
/// `suite_id` of the key schedule: "HPKE" || kem_id || kdf_id || aead_id.
const HPKE_SUITE_ID: &[u8] = b"HPKE\x00\x11\x00\x02\x00\x02";

/// Key material that is wiped when dropped.
type Secret = Zeroizing<Vec<u8>>;

/// Whether `config` names the KEM this module implements, i.e. whether a
/// provider should hand the call here.
pub(crate) fn handles(config: &HpkeConfig) -> bool {
    config.0 == HpkeKemType::DhKemP384
}

/// Accept only the combination of suite 0x0007.
fn check_config(config: &HpkeConfig) -> Result<(), CryptoError> {
    match config {
        HpkeConfig(HpkeKemType::DhKemP384, HpkeKdfType::HkdfSha384, HpkeAeadType::AesGcm256) => {
            Ok(())
        }
        _ => Err(CryptoError::UnsupportedCiphersuite),
    }
}

/// `SealBase` + single-shot `Seal` with a fresh ephemeral key.
pub(crate) fn seal(
    config: &HpkeConfig,
    pk_r: &[u8],
    info: &[u8],
    aad: &[u8],
    ptxt: &[u8],
) -> Result<HpkeCiphertext, CryptoError> {
    check_config(config)?;
    seal_derand(pk_r, info, aad, ptxt, &random_ikm()?)
}

/// `OpenBase` + single-shot `Open`. Every failure (malformed key or KEM
/// output, wrong key, tampered ciphertext) is `HpkeDecryptionError`.
pub(crate) fn open(
    config: &HpkeConfig,
    input: &HpkeCiphertext,
    sk_r: &[u8],
    info: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    check_config(config)?;
    let ctx = decap(input.kem_output.as_slice(), sk_r)
        .and_then(|shared| Context::new(&shared, info))
        .map_err(|_| CryptoError::HpkeDecryptionError)?;
    ctx.open(aad, input.ciphertext.as_slice())
}

/// `SetupBaseS` followed by `Export(exporter_context, exporter_length)`.
pub(crate) fn setup_sender_and_export(
    config: &HpkeConfig,
    pk_r: &[u8],
    info: &[u8],
    exporter_context: &[u8],
    exporter_length: usize,
) -> Result<(KemOutput, ExporterSecret), CryptoError> {
    check_config(config)?;
    let (shared, enc) = encap(pk_r, &random_ikm()?).map_err(|_| CryptoError::SenderSetupError)?;
    let ctx = Context::new(&shared, info).map_err(|_| CryptoError::SenderSetupError)?;
    let exported = ctx.export(exporter_context, exporter_length)?;
    Ok((enc, exported))
}

/// `SetupBaseR` followed by `Export(exporter_context, exporter_length)`.
pub(crate) fn setup_receiver_and_export(
    config: &HpkeConfig,
    enc: &[u8],
    sk_r: &[u8],
    info: &[u8],
    exporter_context: &[u8],
    exporter_length: usize,
) -> Result<ExporterSecret, CryptoError> {
    check_config(config)?;
    let ctx = decap(enc, sk_r)
        .and_then(|shared| Context::new(&shared, info))
        .map_err(|_| CryptoError::ReceiverSetupError)?;
    ctx.export(exporter_context, exporter_length)
}

/// `DeriveKeyPair(ikm)` (RFC 9180 section 7.1.3).
pub(crate) fn derive_key_pair(config: &HpkeConfig, ikm: &[u8]) -> Result<HpkeKeyPair, CryptoError> {
    check_config(config)?;
    let (sk, pk) = derive_p384(ikm)?;
    Ok(HpkeKeyPair {
        private: sk.as_slice().into(),
        public: pk,
    })
}

/// [`seal`] with the ephemeral key derived from `ikm_e`, as the RFC's test
/// vectors do.
fn seal_derand(
    pk_r: &[u8],
    info: &[u8],
    aad: &[u8],
    ptxt: &[u8],
    ikm_e: &[u8],
) -> Result<HpkeCiphertext, CryptoError> {
    let (shared, enc) = encap(pk_r, ikm_e)?;
    let ciphertext = Context::new(&shared, info)?.seal(aad, ptxt)?;
    Ok(HpkeCiphertext {
        kem_output: enc.into(),
        ciphertext: ciphertext.into(),
    })
}

/// `Nsk` random bytes to derive an ephemeral key from (what hpke-rs does for
/// P-256 too, and what makes the RFC vectors' `ikmE` usable in tests).
fn random_ikm() -> Result<Secret, CryptoError> {
    let mut ikm = Zeroizing::new(vec![0u8; N_SK]);
    rand::fill(&mut ikm).map_err(|_| CryptoError::InsufficientRandomness)?;
    Ok(ikm)
}

// === KEM === //

/// `DeriveKeyPair` for P-384: rejection sampling over candidates expanded
/// with a counter. The bitmask of P-384 is 0xff, so candidates are used as
/// is; aws-lc rejects a scalar that is 0 or not below the group order (the
/// tests check this), which is exactly the RFC's validity test.
fn derive_p384(ikm: &[u8]) -> Result<(Secret, Vec<u8>), CryptoError> {
    let dkp_prk = labeled_extract(KEM_SUITE_ID, b"", b"dkp_prk", ikm);
    for counter in 0..=u8::MAX {
        let candidate = labeled_expand(KEM_SUITE_ID, &dkp_prk, b"candidate", &[counter], N_SK)?;
        if let Ok(sk) = agreement::PrivateKey::from_private_key(&agreement::ECDH_P384, &candidate) {
            let pk = public_key(&sk)?;
            return Ok((candidate, pk));
        }
    }
    // Probability about 2^-48000; the RFC says to fail with DeriveKeyPairError.
    Err(CryptoError::CryptoLibraryError)
}

/// Parse a 48-byte big-endian scalar.
fn private_key(sk: &[u8]) -> Result<agreement::PrivateKey, CryptoError> {
    agreement::PrivateKey::from_private_key(&agreement::ECDH_P384, sk)
        .map_err(|_| CryptoError::InvalidLength)
}

/// `SerializePublicKey(pk(sk))`: the uncompressed point.
fn public_key(sk: &agreement::PrivateKey) -> Result<Vec<u8>, CryptoError> {
    let pk = sk
        .compute_public_key()
        .map_err(|_| CryptoError::CryptoLibraryError)?;
    Ok(pk.as_ref().to_vec())
}

/// `DH(sk, DeserializePublicKey(pk))`: the x-coordinate of the shared point.
/// RFC 9180 allows only the uncompressed encoding; aws-lc would also accept
/// compressed points, so the length and prefix are checked first. aws-lc
/// rejects points that are not on the curve.
fn dh(sk: &agreement::PrivateKey, pk: &[u8]) -> Result<Secret, CryptoError> {
    if pk.len() != N_PK || pk.first() != Some(&0x04) {
        return Err(CryptoError::InvalidPublicKey);
    }
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P384, pk);
    agreement::agree(sk, peer, CryptoError::InvalidPublicKey, |z| {
        Ok(Zeroizing::new(z.to_vec()))
    })
}

/// `Encap(pkR)` with the ephemeral key pair `DeriveKeyPair(ikm_e)`; returns
/// (shared_secret, enc).
fn encap(pk_r: &[u8], ikm_e: &[u8]) -> Result<(Secret, Vec<u8>), CryptoError> {
    let (sk_e, enc) = derive_p384(ikm_e)?;
    let dh = dh(&private_key(&sk_e)?, pk_r)?;
    let kem_context = [enc.as_slice(), pk_r].concat();
    let shared = extract_and_expand(&dh, &kem_context)?;
    Ok((shared, enc))
}

/// `Decap(enc, skR)`; returns the shared secret.
fn decap(enc: &[u8], sk_r: &[u8]) -> Result<Secret, CryptoError> {
    let sk = private_key(sk_r)?;
    let dh = dh(&sk, enc)?;
    let kem_context = [enc, public_key(&sk)?.as_slice()].concat();
    extract_and_expand(&dh, &kem_context)
}

/// The KEM's `ExtractAndExpand(dh, kem_context)`.
fn extract_and_expand(dh: &[u8], kem_context: &[u8]) -> Result<Secret, CryptoError> {
    let eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh);
    labeled_expand(
        KEM_SUITE_ID,
        &eae_prk,
        b"shared_secret",
        kem_context,
        N_SECRET,
    )
}

// === Key schedule and AEAD === //

/// The base-mode encryption context after `KeyScheduleS`/`KeyScheduleR`.
struct Context {
    key: Secret,
    base_nonce: Secret,
    exporter_secret: Secret,
}

impl Context {
    /// `KeySchedule(mode_base, shared_secret, info, psk = "", psk_id = "")`.
    fn new(shared_secret: &[u8], info: &[u8]) -> Result<Self, CryptoError> {
        let psk_id_hash = labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b"");
        let info_hash = labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", info);
        // mode_base = 0x00
        let context = [&[0x00][..], &psk_id_hash, &info_hash].concat();
        let secret = labeled_extract(HPKE_SUITE_ID, shared_secret, b"secret", b"");
        let expand =
            |label: &[u8], len| labeled_expand(HPKE_SUITE_ID, &secret, label, &context, len);
        Ok(Self {
            key: expand(b"key", N_K)?,
            base_nonce: expand(b"base_nonce", N_N)?,
            exporter_secret: expand(b"exp", N_H)?,
        })
    }

    fn aead_key(&self) -> Result<(aead::LessSafeKey, aead::Nonce), CryptoError> {
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, &self.key)
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        let nonce = aead::Nonce::try_assume_unique_for_key(&self.base_nonce)
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        Ok((aead::LessSafeKey::new(key), nonce))
    }

    /// `Seal(aad, pt)` with sequence number 0.
    fn seal(&self, aad: &[u8], ptxt: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (key, nonce) = self.aead_key()?;
        let mut buf = ptxt.to_vec();
        key.seal_in_place_append_tag(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::HpkeEncryptionError)?;
        Ok(buf)
    }

    /// `Open(aad, ct)` with sequence number 0.
    fn open(&self, aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (key, nonce) = self.aead_key()?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let pt = key
            .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::HpkeDecryptionError)?;
        Ok(pt.to_vec())
    }

    /// `Export(exporter_context, L)`; L is at most 255 * Nh.
    fn export(&self, exporter_context: &[u8], len: usize) -> Result<ExporterSecret, CryptoError> {
        let out = labeled_expand(
            HPKE_SUITE_ID,
            &self.exporter_secret,
            b"sec",
            exporter_context,
            len,
        )
        .map_err(|_| CryptoError::ExporterError)?;
        Ok(out.to_vec().into())
    }
}

// === KDF === //

/// RFC 9180's `LabeledExtract(salt, label, ikm)` with HKDF-SHA384.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Secret {
    let labeled_ikm = Zeroizing::new([b"HPKE-v1", suite_id, label, ikm].concat());
    hkdf_extract(salt, &labeled_ikm)
}

/// RFC 9180's `LabeledExpand(prk, label, info, L)` with HKDF-SHA384.
fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Secret, CryptoError> {
    let len16 = u16::try_from(len).map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
    let labeled_info = [&len16.to_be_bytes()[..], b"HPKE-v1", suite_id, label, info].concat();
    hkdf_expand(prk, &labeled_info, len)
}

/// HKDF-Extract (RFC 5869) with SHA-384.
fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Secret {
    awslc::hkdf_extract(HashType::Sha2_384, salt, ikm)
}

/// HKDF-Expand (RFC 5869) with SHA-384; `len` at most 255 * Nh.
fn hkdf_expand(prk: &[u8], info: &[u8], len: usize) -> Result<Secret, CryptoError> {
    awslc::hkdf_expand(HashType::Sha2_384, prk, info, len)
}

#[cfg(test)]
mod tests;
