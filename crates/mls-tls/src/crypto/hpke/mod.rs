//! RFC 9180 HPKE in base mode on aws-lc-rs, for the DH-based HPKE suites of
//! MLS ciphersuites 0x0001, 0x0003 and 0x0007:
//!
//! | MLS suite | KEM | KDF | AEAD |
//! | --- | --- | --- | --- |
//! | 0x0001 | DHKEM(X25519, HKDF-SHA256) (0x0020) | HKDF-SHA256 (0x0001) | AES-128-GCM (0x0001) |
//! | 0x0003 | DHKEM(X25519, HKDF-SHA256) (0x0020) | HKDF-SHA256 (0x0001) | ChaCha20-Poly1305 (0x0003) |
//! | 0x0007 | DHKEM(P-384, HKDF-SHA384) (0x0011) | HKDF-SHA384 (0x0002) | AES-256-GCM (0x0002) |
//!
//! [`super::crypto::CryptoBackend`] sends every HPKE call for which
//! [`handles`] is true here, whatever the suite's provider, for two reasons:
//!
//! * P-384: openmls_libcrux_crypto has no DHKEM(P-384) and
//!   openmls_rust_crypto does not offer suite 0x0007 (its `supports()` leaves
//!   it out, although its hpke-rs backend has the KEM; the tests use it as a
//!   second opinion).
//! * X25519: profiling put about a third of a key update's CPU in libcrux's
//!   portable X25519 (HACL*) inside hpke-rs, plus some of its portable
//!   SHA-256; aws-lc has assembly for both. The X-Wing and ML-KEM suites
//!   keep the provider's HPKE.
//!
//! The primitives (ECDH P-384, X25519, HMAC, AES-GCM, ChaCha20-Poly1305)
//! come from aws-lc-rs, which the record layer already uses. Keys use the
//! encodings of the OpenMLS providers, so keys and ciphertexts made before
//! this module existed stay valid (the tests cross-check both providers):
//!
//! * P-384: a private key is the 48-byte big-endian scalar, a public key
//!   (and a KEM output) the 97-byte uncompressed SEC1 point.
//! * X25519: a private key is the raw 32 bytes (clamped when used, not when
//!   stored), a public key (and a KEM output) the 32-byte u-coordinate.
//!
//! Only single-shot operations exist, so the AEAD nonce is always the base
//! nonce (sequence number 0).

use aws_lc_rs::{aead, agreement, rand};
use openmls_traits::types::{
    CryptoError, ExporterSecret, HashType, HpkeAeadType, HpkeCiphertext, HpkeConfig, HpkeKdfType,
    HpkeKemType, HpkeKeyPair, KemOutput,
};
use zeroize::Zeroizing;

use super::awslc;

/// Key material that is wiped when dropped.
type Secret = Zeroizing<Vec<u8>>;

/// The Diffie-Hellman group of a DHKEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P384,
    X25519,
}

/// A DH-based KEM (RFC 9180 section 4.1) and the sizes RFC 9180 section 7.1
/// gives it.
#[derive(Debug)]
struct Dhkem {
    /// `kem_id`.
    id: u16,
    curve: Curve,
    /// The hash of the KEM's own HKDF.
    hash: HashType,
    /// `Nsecret`: length of the KEM's shared secret.
    n_secret: usize,
    /// `Nsk`: length of an encoded private key.
    n_sk: usize,
    /// `Npk` = `Nenc`: length of an encoded public key and of a KEM output.
    n_pk: usize,
}

/// One HPKE suite: a KEM, a KDF and an AEAD with their RFC 9180 ids.
#[derive(Debug)]
struct Suite {
    kem: Dhkem,
    /// `kdf_id`.
    kdf_id: u16,
    /// The hash of the key schedule's HKDF (`Nh` is its output length).
    kdf: HashType,
    /// `aead_id`.
    aead_id: u16,
    /// `Nk` and `Nn` are its key and nonce lengths.
    aead: &'static aead::Algorithm,
}

const DHKEM_P384: Dhkem = Dhkem {
    id: 0x0011,
    curve: Curve::P384,
    hash: HashType::Sha2_384,
    n_secret: 48,
    n_sk: 48,
    n_pk: 97,
};

const DHKEM_X25519: Dhkem = Dhkem {
    id: 0x0020,
    curve: Curve::X25519,
    hash: HashType::Sha2_256,
    n_secret: 32,
    n_sk: 32,
    n_pk: 32,
};

/// Suite 0x0007's HPKE.
static P384_SHA384_AES256GCM: Suite = Suite {
    kem: DHKEM_P384,
    kdf_id: 0x0002,
    kdf: HashType::Sha2_384,
    aead_id: 0x0002,
    aead: &aead::AES_256_GCM,
};

/// Suite 0x0001's HPKE (RFC 9180 A.1).
static X25519_SHA256_AES128GCM: Suite = Suite {
    kem: DHKEM_X25519,
    kdf_id: 0x0001,
    kdf: HashType::Sha2_256,
    aead_id: 0x0001,
    aead: &aead::AES_128_GCM,
};

/// Suite 0x0003's HPKE (RFC 9180 A.2).
static X25519_SHA256_CHACHA20POLY1305: Suite = Suite {
    kem: DHKEM_X25519,
    kdf_id: 0x0001,
    kdf: HashType::Sha2_256,
    aead_id: 0x0003,
    aead: &aead::CHACHA20_POLY1305,
};

/// The suite this module implements for `config`, if any.
fn suite(config: &HpkeConfig) -> Option<&'static Suite> {
    use HpkeAeadType as A;
    use HpkeKdfType as K;
    use HpkeKemType as M;
    match config {
        HpkeConfig(M::DhKemP384, K::HkdfSha384, A::AesGcm256) => Some(&P384_SHA384_AES256GCM),
        HpkeConfig(M::DhKem25519, K::HkdfSha256, A::AesGcm128) => Some(&X25519_SHA256_AES128GCM),
        HpkeConfig(M::DhKem25519, K::HkdfSha256, A::ChaCha20Poly1305) => {
            Some(&X25519_SHA256_CHACHA20POLY1305)
        }
        _ => None,
    }
}

/// Whether a provider should hand a call with `config` here: for the three
/// suites of the table above, and for any other DHKEM(P-384) combination,
/// which is then refused (as before X25519 moved here: no provider of ours
/// does DHKEM(P-384)). Other X25519 combinations stay with the provider.
pub(crate) fn handles(config: &HpkeConfig) -> bool {
    config.0 == HpkeKemType::DhKemP384 || suite(config).is_some()
}

/// The suite for `config`, or `UnsupportedCiphersuite`.
fn check_config(config: &HpkeConfig) -> Result<&'static Suite, CryptoError> {
    suite(config).ok_or(CryptoError::UnsupportedCiphersuite)
}

/// `SealBase` + single-shot `Seal` with a fresh ephemeral key.
pub(crate) fn seal(
    config: &HpkeConfig,
    pk_r: &[u8],
    info: &[u8],
    aad: &[u8],
    ptxt: &[u8],
) -> Result<HpkeCiphertext, CryptoError> {
    let suite = check_config(config)?;
    seal_derand(suite, pk_r, info, aad, ptxt, &suite.kem.random_ikm()?)
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
    let suite = check_config(config)?;
    let ctx = suite
        .kem
        .decap(input.kem_output.as_slice(), sk_r)
        .and_then(|shared| Context::new(suite, &shared, info))
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
    let suite = check_config(config)?;
    let (shared, enc) = suite
        .kem
        .encap(pk_r, &suite.kem.random_ikm()?)
        .map_err(|_| CryptoError::SenderSetupError)?;
    let ctx = Context::new(suite, &shared, info).map_err(|_| CryptoError::SenderSetupError)?;
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
    let suite = check_config(config)?;
    let ctx = suite
        .kem
        .decap(enc, sk_r)
        .and_then(|shared| Context::new(suite, &shared, info))
        .map_err(|_| CryptoError::ReceiverSetupError)?;
    ctx.export(exporter_context, exporter_length)
}

/// `DeriveKeyPair(ikm)` (RFC 9180 section 7.1.3).
pub(crate) fn derive_key_pair(config: &HpkeConfig, ikm: &[u8]) -> Result<HpkeKeyPair, CryptoError> {
    let suite = check_config(config)?;
    let (sk, pk) = suite.kem.derive_key_pair(ikm)?;
    Ok(HpkeKeyPair {
        private: sk.as_slice().into(),
        public: pk,
    })
}

/// [`seal`] with the ephemeral key derived from `ikm_e`, as the RFC's test
/// vectors do.
fn seal_derand(
    suite: &'static Suite,
    pk_r: &[u8],
    info: &[u8],
    aad: &[u8],
    ptxt: &[u8],
    ikm_e: &[u8],
) -> Result<HpkeCiphertext, CryptoError> {
    let (shared, enc) = suite.kem.encap(pk_r, ikm_e)?;
    let ciphertext = Context::new(suite, &shared, info)?.seal(aad, ptxt)?;
    Ok(HpkeCiphertext {
        kem_output: enc.into(),
        ciphertext: ciphertext.into(),
    })
}

// === KEM === //

impl Dhkem {
    /// `suite_id` of the KEM's labeled KDF calls: "KEM" || I2OSP(kem_id, 2).
    fn suite_id(&self) -> [u8; 5] {
        let [hi, lo] = self.id.to_be_bytes();
        [b'K', b'E', b'M', hi, lo]
    }

    fn algorithm(&self) -> &'static agreement::Algorithm {
        match self.curve {
            Curve::P384 => &agreement::ECDH_P384,
            Curve::X25519 => &agreement::X25519,
        }
    }

    fn labeled_extract(&self, salt: &[u8], label: &[u8], ikm: &[u8]) -> Secret {
        labeled_extract(self.hash, &self.suite_id(), salt, label, ikm)
    }

    fn labeled_expand(
        &self,
        prk: &[u8],
        label: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Secret, CryptoError> {
        labeled_expand(self.hash, &self.suite_id(), prk, label, info, len)
    }

    /// `Nsk` random bytes to derive an ephemeral key from (what hpke-rs
    /// does too, and what makes the RFC vectors' `ikmE` usable in tests).
    fn random_ikm(&self) -> Result<Secret, CryptoError> {
        let mut ikm = Zeroizing::new(vec![0u8; self.n_sk]);
        rand::fill(&mut ikm).map_err(|_| CryptoError::InsufficientRandomness)?;
        Ok(ikm)
    }

    /// `DeriveKeyPair(ikm)`; returns (sk, pk) encoded.
    ///
    /// X25519: `sk = LabeledExpand(dkp_prk, "sk", "", Nsk)`; every 32-byte
    /// string is a private key (clamping happens inside X25519).
    ///
    /// P-384: rejection sampling over candidates expanded with a counter.
    /// The bitmask of P-384 is 0xff, so candidates are used as is; aws-lc
    /// rejects a scalar that is 0 or not below the group order (the tests
    /// check this), which is exactly the RFC's validity test.
    fn derive_key_pair(&self, ikm: &[u8]) -> Result<(Secret, Vec<u8>), CryptoError> {
        let dkp_prk = self.labeled_extract(b"", b"dkp_prk", ikm);
        match self.curve {
            Curve::X25519 => {
                let sk = self.labeled_expand(&dkp_prk, b"sk", b"", self.n_sk)?;
                let pk = public_key(&self.private_key(&sk)?)?;
                Ok((sk, pk))
            }
            Curve::P384 => {
                for counter in 0..=u8::MAX {
                    let candidate =
                        self.labeled_expand(&dkp_prk, b"candidate", &[counter], self.n_sk)?;
                    if let Ok(sk) = self.private_key(&candidate) {
                        let pk = public_key(&sk)?;
                        return Ok((candidate, pk));
                    }
                }
                // Probability about 2^-48000; the RFC says to fail with
                // DeriveKeyPairError.
                Err(CryptoError::CryptoLibraryError)
            }
        }
    }

    /// `DeserializePrivateKey`: an `Nsk`-byte string (P-384: a big-endian
    /// scalar in [1, n-1]; X25519: any 32 bytes).
    fn private_key(&self, sk: &[u8]) -> Result<agreement::PrivateKey, CryptoError> {
        if sk.len() != self.n_sk {
            return Err(CryptoError::InvalidLength);
        }
        agreement::PrivateKey::from_private_key(self.algorithm(), sk)
            .map_err(|_| CryptoError::InvalidLength)
    }

    /// `DH(sk, DeserializePublicKey(pk))` (RFC 9180 7.1.4).
    ///
    /// aws-lc also parses a DER SubjectPublicKeyInfo, and for P-384 a
    /// compressed or hybrid point, none of which RFC 9180 allows: so only
    /// an `Npk`-byte string is passed on, for P-384 with the uncompressed
    /// prefix. aws-lc rejects P-384 points that are not on the curve, and
    /// fails an X25519 agreement whose result is all zeros (a low-order
    /// public key), as RFC 9180 7.1.4 and RFC 7748 section 6.1 require (the
    /// tests check both); the X25519 result is checked here as well, so
    /// that guarantee does not rest on aws-lc alone.
    fn dh(&self, sk: &agreement::PrivateKey, pk: &[u8]) -> Result<Secret, CryptoError> {
        let well_formed = pk.len() == self.n_pk
            && match self.curve {
                Curve::P384 => pk.first() == Some(&0x04),
                Curve::X25519 => true,
            };
        if !well_formed {
            return Err(CryptoError::InvalidPublicKey);
        }
        let peer = agreement::UnparsedPublicKey::new(self.algorithm(), pk);
        let z = agreement::agree(sk, peer, CryptoError::InvalidPublicKey, |z| {
            Ok(Zeroizing::new(z.to_vec()))
        })?;
        if self.curve == Curve::X25519 && z.iter().fold(0u8, |acc, b| acc | b) == 0 {
            return Err(CryptoError::InvalidPublicKey);
        }
        Ok(z)
    }

    /// `Encap(pkR)` with the ephemeral key pair `DeriveKeyPair(ikm_e)`;
    /// returns (shared_secret, enc).
    fn encap(&self, pk_r: &[u8], ikm_e: &[u8]) -> Result<(Secret, Vec<u8>), CryptoError> {
        let (sk_e, enc) = self.derive_key_pair(ikm_e)?;
        let dh = self.dh(&self.private_key(&sk_e)?, pk_r)?;
        let kem_context = [enc.as_slice(), pk_r].concat();
        let shared = self.extract_and_expand(&dh, &kem_context)?;
        Ok((shared, enc))
    }

    /// `Decap(enc, skR)`; returns the shared secret.
    fn decap(&self, enc: &[u8], sk_r: &[u8]) -> Result<Secret, CryptoError> {
        let sk = self.private_key(sk_r)?;
        let dh = self.dh(&sk, enc)?;
        let kem_context = [enc, public_key(&sk)?.as_slice()].concat();
        self.extract_and_expand(&dh, &kem_context)
    }

    /// The KEM's `ExtractAndExpand(dh, kem_context)`.
    fn extract_and_expand(&self, dh: &[u8], kem_context: &[u8]) -> Result<Secret, CryptoError> {
        let eae_prk = self.labeled_extract(b"", b"eae_prk", dh);
        self.labeled_expand(&eae_prk, b"shared_secret", kem_context, self.n_secret)
    }
}

/// `SerializePublicKey(pk(sk))`: the uncompressed point (P-384) or the
/// u-coordinate (X25519).
fn public_key(sk: &agreement::PrivateKey) -> Result<Vec<u8>, CryptoError> {
    let pk = sk
        .compute_public_key()
        .map_err(|_| CryptoError::CryptoLibraryError)?;
    Ok(pk.as_ref().to_vec())
}

// === Key schedule and AEAD === //

impl Suite {
    /// `suite_id` of the key schedule: "HPKE" || kem_id || kdf_id || aead_id.
    fn suite_id(&self) -> [u8; 10] {
        let [k0, k1] = self.kem.id.to_be_bytes();
        let [f0, f1] = self.kdf_id.to_be_bytes();
        let [a0, a1] = self.aead_id.to_be_bytes();
        [b'H', b'P', b'K', b'E', k0, k1, f0, f1, a0, a1]
    }

    /// `Nh`: the KDF's output length.
    fn n_h(&self) -> usize {
        awslc::hash_len(self.kdf)
    }

    fn labeled_extract(&self, salt: &[u8], label: &[u8], ikm: &[u8]) -> Secret {
        labeled_extract(self.kdf, &self.suite_id(), salt, label, ikm)
    }

    fn labeled_expand(
        &self,
        prk: &[u8],
        label: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Secret, CryptoError> {
        labeled_expand(self.kdf, &self.suite_id(), prk, label, info, len)
    }
}

/// The base-mode encryption context after `KeyScheduleS`/`KeyScheduleR`.
struct Context {
    suite: &'static Suite,
    key: Secret,
    base_nonce: Secret,
    exporter_secret: Secret,
}

impl Context {
    /// `KeySchedule(mode_base, shared_secret, info, psk = "", psk_id = "")`.
    fn new(suite: &'static Suite, shared_secret: &[u8], info: &[u8]) -> Result<Self, CryptoError> {
        let psk_id_hash = suite.labeled_extract(b"", b"psk_id_hash", b"");
        let info_hash = suite.labeled_extract(b"", b"info_hash", info);
        // mode_base = 0x00
        let context = [&[0x00][..], &psk_id_hash, &info_hash].concat();
        let secret = suite.labeled_extract(shared_secret, b"secret", b"");
        let expand = |label: &[u8], len| suite.labeled_expand(&secret, label, &context, len);
        Ok(Self {
            suite,
            key: expand(b"key", suite.aead.key_len())?,
            base_nonce: expand(b"base_nonce", suite.aead.nonce_len())?,
            exporter_secret: expand(b"exp", suite.n_h())?,
        })
    }

    fn aead_key(&self) -> Result<(aead::LessSafeKey, aead::Nonce), CryptoError> {
        let key = aead::UnboundKey::new(self.suite.aead, &self.key)
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
        let out = self
            .suite
            .labeled_expand(&self.exporter_secret, b"sec", exporter_context, len)
            .map_err(|_| CryptoError::ExporterError)?;
        Ok(out.to_vec().into())
    }
}

// === KDF === //

/// RFC 9180's `LabeledExtract(salt, label, ikm)` with HKDF over `hash`.
fn labeled_extract(
    hash: HashType,
    suite_id: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> Secret {
    let labeled_ikm = Zeroizing::new([b"HPKE-v1", suite_id, label, ikm].concat());
    awslc::hkdf_extract(hash, salt, &labeled_ikm)
}

/// RFC 9180's `LabeledExpand(prk, label, info, L)` with HKDF over `hash`;
/// `L` at most 255 * Nh.
fn labeled_expand(
    hash: HashType,
    suite_id: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Secret, CryptoError> {
    let len16 = u16::try_from(len).map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
    let labeled_info = [&len16.to_be_bytes()[..], b"HPKE-v1", suite_id, label, info].concat();
    awslc::hkdf_expand(hash, prk, &labeled_info, len)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod x25519_tests;
