//! The MLS ciphersuites MLS-TLS supports and what each one implies for the
//! record layer (hash, AEAD), the credential (signature scheme) and the
//! crypto backend that implements it.

use std::fmt;
use std::str::FromStr;

use openmls::prelude::Ciphersuite;
use openmls_traits::types::SignatureScheme;

use crate::schedule::{AeadAlgorithm, HashAlgorithm};

/// An MLS ciphersuite supported by MLS-TLS.
///
/// This is the allow-list of suites that run end to end (KeyPackage, Welcome,
/// commits with an UpdatePath, exporter) with openmls 0.9.2 and one of its
/// two crypto providers (the HPKE of 0x0001, 0x0003 and 0x0007 is MLS-TLS's
/// own, see `crypto::hpke`); see `CipherSuite::backend`. Code points and
/// algorithm names are those of `openmls_traits::types::Ciphersuite` (RFC 9420
/// for 0x0001-0x0003, provisional draft-ietf-mls-pq-ciphersuites code points
/// for the others, so the post-quantum suites may change with the draft).
///
/// Deliberately absent:
/// * 0x0004-0x0006 (X448 / P-521): no provider and no signer for them.
/// * 0x0050, 0x0906, 0x0907, 0xF042: work on rust_crypto but are not part of
///   the MLS-TLS profile (0xF042 fails on libcrux although libcrux's
///   `supports()` claims it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// 0x0001 `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`:
    /// KEM DHKEM(X25519), AEAD AES-128-GCM, hash SHA-256, signature Ed25519.
    X25519Aes128GcmSha256Ed25519,
    /// 0x0002 `MLS_128_DHKEMP256_AES128GCM_SHA256_P256`:
    /// KEM DHKEM(P-256), AEAD AES-128-GCM, hash SHA-256, signature ECDSA P-256/SHA-256.
    P256Aes128GcmSha256P256,
    /// 0x0003 `MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519`:
    /// KEM DHKEM(X25519), AEAD ChaCha20-Poly1305, hash SHA-256, signature Ed25519.
    X25519ChaCha20Poly1305Sha256Ed25519,
    /// 0x0007 `MLS_256_DHKEMP384_AES256GCM_SHA384_P384`:
    /// KEM DHKEM(P-384), AEAD AES-256-GCM, hash SHA-384, signature ECDSA P-384/SHA-384.
    P384Aes256GcmSha384P384,
    /// 0x0042 `MLS_192_MLKEM1024_AES256GCM_SHA384_P384` (post-quantum):
    /// KEM ML-KEM-1024, AEAD AES-256-GCM, hash SHA-384, signature ECDSA P-384/SHA-384.
    MlKem1024Aes256GcmSha384P384,
    /// 0x004D `MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519` (post-quantum hybrid):
    /// KEM X-Wing (ML-KEM-768 + X25519), AEAD ChaCha20-Poly1305, hash SHA-256,
    /// signature Ed25519.
    XWingChaCha20Poly1305Sha256Ed25519,
    /// 0x004E `MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519` (post-quantum hybrid):
    /// KEM ML-KEM-768 + X25519 (X-Wing), AEAD AES-256-GCM, hash SHA-384, signature Ed25519.
    MlKem768X25519Aes256GcmSha384Ed25519,
    /// 0x004F `MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519` (post-quantum hybrid,
    /// the MLS-TLS default): KEM ML-KEM-768 + X25519 (X-Wing), AEAD AES-128-GCM,
    /// hash SHA-256, signature Ed25519.
    MlKem768X25519Aes128GcmSha256Ed25519,
    /// 0x0051 `MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65` (post-quantum):
    /// KEM ML-KEM-768, AEAD AES-256-GCM, hash SHA-384, signature ML-DSA-65.
    MlKem768Aes256GcmSha384MlDsa65,
    /// 0x0052 `MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44` (post-quantum
    /// hybrid): KEM ML-KEM-768 + X25519 (X-Wing), AEAD ChaCha20-Poly1305, hash SHA-384,
    /// signature ML-DSA-44.
    MlKem768X25519ChaCha20Poly1305Sha384MlDsa44,
}

/// Which crypto provider implements a suite (see [`CipherSuite::backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Backend {
    /// `openmls_libcrux_crypto` (formally verified primitives where available).
    Libcrux,
    /// `openmls_rust_crypto` (RustCrypto crates; the only one with P-256,
    /// P-384, pure ML-KEM and ML-DSA).
    RustCrypto,
    /// `openmls_rust_crypto` plus MLS-TLS's own HPKE with DHKEM(P-384)
    /// (`crypto::hpke`): suite 0x0007, which neither provider offers.
    RustCryptoP384,
}

impl CipherSuite {
    /// The suite used when none is configured: 0x004F, post-quantum hybrid
    /// KEM with the same AEAD/hash/signature as the classic 0x0001.
    pub const DEFAULT: Self = Self::MlKem768X25519Aes128GcmSha256Ed25519;

    /// Every supported suite, in code-point order (for CLI help, negotiation
    /// lists and exhaustive tests).
    pub const ALL: [Self; 10] = [
        Self::X25519Aes128GcmSha256Ed25519,
        Self::P256Aes128GcmSha256P256,
        Self::X25519ChaCha20Poly1305Sha256Ed25519,
        Self::P384Aes256GcmSha384P384,
        Self::MlKem1024Aes256GcmSha384P384,
        Self::XWingChaCha20Poly1305Sha256Ed25519,
        Self::MlKem768X25519Aes256GcmSha384Ed25519,
        Self::MlKem768X25519Aes128GcmSha256Ed25519,
        Self::MlKem768Aes256GcmSha384MlDsa65,
        Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44,
    ];

    /// The suite's 16-bit MLS code point (as carried in KeyPackages and the
    /// GroupContext).
    pub const fn code_point(self) -> u16 {
        match self {
            Self::X25519Aes128GcmSha256Ed25519 => 0x0001,
            Self::P256Aes128GcmSha256P256 => 0x0002,
            Self::X25519ChaCha20Poly1305Sha256Ed25519 => 0x0003,
            Self::P384Aes256GcmSha384P384 => 0x0007,
            Self::MlKem1024Aes256GcmSha384P384 => 0x0042,
            Self::XWingChaCha20Poly1305Sha256Ed25519 => 0x004D,
            Self::MlKem768X25519Aes256GcmSha384Ed25519 => 0x004E,
            Self::MlKem768X25519Aes128GcmSha256Ed25519 => 0x004F,
            Self::MlKem768Aes256GcmSha384MlDsa65 => 0x0051,
            Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44 => 0x0052,
        }
    }

    /// The supported suite with this MLS code point, or `None` if MLS-TLS does
    /// not support it (including valid MLS suites such as 0x0004).
    pub fn from_code_point(code_point: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code_point() == code_point)
    }

    /// Short, stable, lower-case name for configuration files and the CLI,
    /// `kem-aead-hash-signature`, e.g. `"x25519-aes128gcm-sha256-ed25519"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::X25519Aes128GcmSha256Ed25519 => "x25519-aes128gcm-sha256-ed25519",
            Self::P256Aes128GcmSha256P256 => "p256-aes128gcm-sha256-p256",
            Self::X25519ChaCha20Poly1305Sha256Ed25519 => "x25519-chacha20poly1305-sha256-ed25519",
            Self::P384Aes256GcmSha384P384 => "p384-aes256gcm-sha384-p384",
            Self::MlKem1024Aes256GcmSha384P384 => "mlkem1024-aes256gcm-sha384-p384",
            Self::XWingChaCha20Poly1305Sha256Ed25519 => "xwing-chacha20poly1305-sha256-ed25519",
            Self::MlKem768X25519Aes256GcmSha384Ed25519 => "mlkem768x25519-aes256gcm-sha384-ed25519",
            Self::MlKem768X25519Aes128GcmSha256Ed25519 => "mlkem768x25519-aes128gcm-sha256-ed25519",
            Self::MlKem768Aes256GcmSha384MlDsa65 => "mlkem768-aes256gcm-sha384-mldsa65",
            Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44 => {
                "mlkem768x25519-chacha20poly1305-sha384-mldsa44"
            }
        }
    }

    /// The openmls ciphersuite to build groups and KeyPackages with.
    pub(crate) const fn mls(self) -> Ciphersuite {
        match self {
            Self::X25519Aes128GcmSha256Ed25519 => {
                Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
            }
            Self::P256Aes128GcmSha256P256 => Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256,
            Self::X25519ChaCha20Poly1305Sha256Ed25519 => {
                Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
            }
            Self::P384Aes256GcmSha384P384 => Ciphersuite::MLS_256_DHKEMP384_AES256GCM_SHA384_P384,
            Self::MlKem1024Aes256GcmSha384P384 => {
                Ciphersuite::MLS_192_MLKEM1024_AES256GCM_SHA384_P384
            }
            Self::XWingChaCha20Poly1305Sha256Ed25519 => {
                Ciphersuite::MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519
            }
            Self::MlKem768X25519Aes256GcmSha384Ed25519 => {
                Ciphersuite::MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519
            }
            Self::MlKem768X25519Aes128GcmSha256Ed25519 => {
                Ciphersuite::MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519
            }
            Self::MlKem768Aes256GcmSha384MlDsa65 => {
                Ciphersuite::MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65
            }
            Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44 => {
                Ciphersuite::MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44
            }
        }
    }

    /// The suite's hash, which MLS-TLS also uses for the record-layer key
    /// schedule (exporter output length = hash output length).
    pub const fn hash(self) -> HashAlgorithm {
        match self {
            Self::X25519Aes128GcmSha256Ed25519
            | Self::P256Aes128GcmSha256P256
            | Self::X25519ChaCha20Poly1305Sha256Ed25519
            | Self::XWingChaCha20Poly1305Sha256Ed25519
            | Self::MlKem768X25519Aes128GcmSha256Ed25519 => HashAlgorithm::Sha256,
            Self::P384Aes256GcmSha384P384
            | Self::MlKem1024Aes256GcmSha384P384
            | Self::MlKem768X25519Aes256GcmSha384Ed25519
            | Self::MlKem768Aes256GcmSha384MlDsa65
            | Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44 => HashAlgorithm::Sha384,
        }
    }

    /// The suite's AEAD, which MLS-TLS also uses to protect records.
    pub const fn aead(self) -> AeadAlgorithm {
        match self {
            Self::X25519Aes128GcmSha256Ed25519
            | Self::P256Aes128GcmSha256P256
            | Self::MlKem768X25519Aes128GcmSha256Ed25519 => AeadAlgorithm::Aes128Gcm,
            Self::P384Aes256GcmSha384P384
            | Self::MlKem1024Aes256GcmSha384P384
            | Self::MlKem768X25519Aes256GcmSha384Ed25519
            | Self::MlKem768Aes256GcmSha384MlDsa65 => AeadAlgorithm::Aes256Gcm,
            Self::X25519ChaCha20Poly1305Sha256Ed25519
            | Self::XWingChaCha20Poly1305Sha256Ed25519
            | Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44 => AeadAlgorithm::ChaCha20Poly1305,
        }
    }

    /// The signature scheme of the suite: the credential key pair must be of
    /// this scheme (`SignatureKeyPair::new(suite.signature_scheme())`).
    pub const fn signature_scheme(self) -> SignatureScheme {
        match self {
            Self::X25519Aes128GcmSha256Ed25519
            | Self::X25519ChaCha20Poly1305Sha256Ed25519
            | Self::XWingChaCha20Poly1305Sha256Ed25519
            | Self::MlKem768X25519Aes256GcmSha384Ed25519
            | Self::MlKem768X25519Aes128GcmSha256Ed25519 => SignatureScheme::ED25519,
            Self::P256Aes128GcmSha256P256 => SignatureScheme::ECDSA_SECP256R1_SHA256,
            Self::P384Aes256GcmSha384P384 | Self::MlKem1024Aes256GcmSha384P384 => {
                SignatureScheme::ECDSA_SECP384R1_SHA384
            }
            Self::MlKem768Aes256GcmSha384MlDsa65 => SignatureScheme::MLDSA65,
            Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44 => SignatureScheme::MLDSA44,
        }
    }

    /// Whether the key exchange resists a quantum adversary (the KEM is or
    /// includes ML-KEM, e.g. X-Wing). Says nothing about the signature.
    pub const fn is_post_quantum(self) -> bool {
        match self {
            Self::X25519Aes128GcmSha256Ed25519
            | Self::P256Aes128GcmSha256P256
            | Self::X25519ChaCha20Poly1305Sha256Ed25519
            | Self::P384Aes256GcmSha384P384 => false,
            Self::MlKem1024Aes256GcmSha384P384
            | Self::XWingChaCha20Poly1305Sha256Ed25519
            | Self::MlKem768X25519Aes256GcmSha384Ed25519
            | Self::MlKem768X25519Aes128GcmSha256Ed25519
            | Self::MlKem768Aes256GcmSha384MlDsa65
            | Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44 => true,
        }
    }

    /// The crypto provider that implements this suite. An explicit list,
    /// because libcrux's `supports()` ignores the KEM: libcrux for the X25519
    /// and X-Wing suites, rust_crypto for P-256/P-384, pure ML-KEM and ML-DSA,
    /// rust_crypto with our own P-384 HPKE for DHKEM(P-384).
    pub(crate) const fn backend(self) -> Backend {
        match self {
            Self::X25519Aes128GcmSha256Ed25519
            | Self::X25519ChaCha20Poly1305Sha256Ed25519
            | Self::XWingChaCha20Poly1305Sha256Ed25519
            | Self::MlKem768X25519Aes256GcmSha384Ed25519
            | Self::MlKem768X25519Aes128GcmSha256Ed25519 => Backend::Libcrux,
            Self::P256Aes128GcmSha256P256
            | Self::MlKem1024Aes256GcmSha384P384
            | Self::MlKem768Aes256GcmSha384MlDsa65
            | Self::MlKem768X25519ChaCha20Poly1305Sha384MlDsa44 => Backend::RustCrypto,
            Self::P384Aes256GcmSha384P384 => Backend::RustCryptoP384,
        }
    }
}

impl Default for CipherSuite {
    /// [`CipherSuite::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for CipherSuite {
    /// `name (0xNNNN)`, e.g. `mlkem768x25519-aes128gcm-sha256-ed25519 (0x004F)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:04X})", self.name(), self.code_point())
    }
}

impl FromStr for CipherSuite {
    type Err = UnknownCipherSuite;

    /// Parses a [`CipherSuite::name`] (case-insensitive) or a code point in
    /// hex with a `0x` prefix (`0x004f`, `0x4F`) or in decimal (`79`), or
    /// the `Display` form `name (0x004F)`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = match t.split_once(" (") {
            Some((name, rest)) if rest.ends_with(')') => name,
            _ => t,
        };
        let code_point = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            u16::from_str_radix(hex, 16).ok()
        } else if t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse::<u16>().ok()
        } else {
            None
        };
        code_point
            .and_then(Self::from_code_point)
            .or_else(|| {
                Self::ALL
                    .into_iter()
                    .find(|c| c.name().eq_ignore_ascii_case(t))
            })
            .ok_or_else(|| UnknownCipherSuite(s.to_owned()))
    }
}

/// Error of [`CipherSuite::from_str`]: the input (kept verbatim) names no
/// supported suite. Its message lists the valid names so a CLI can print it
/// as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCipherSuite(pub String);

impl fmt::Display for UnknownCipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown cipher suite {:?}; valid names:", self.0)?;
        for (i, suite) in CipherSuite::ALL.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{}", suite.name())?;
        }
        write!(f, " (or a code point such as 0x004F)")
    }
}

impl std::error::Error for UnknownCipherSuite {}

#[cfg(test)]
mod tests {
    use super::*;
    use openmls_traits::types::{AeadType, HashType, HpkeKemType};
    use std::collections::HashSet;

    #[test]
    fn code_point_round_trip() {
        for suite in CipherSuite::ALL {
            assert_eq!(
                CipherSuite::from_code_point(suite.code_point()),
                Some(suite)
            );
            // Our code point is openmls's code point.
            assert_eq!(u16::from(suite.mls()), suite.code_point(), "{suite}");
            assert_eq!(
                Ciphersuite::try_from(suite.code_point()).ok(),
                Some(suite.mls())
            );
        }
        let unique: HashSet<u16> = CipherSuite::ALL.iter().map(|s| s.code_point()).collect();
        assert_eq!(unique.len(), CipherSuite::ALL.len());
        for unsupported in [
            0x0000, 0x0004, 0x0005, 0x0006, 0x0008, 0x0050, 0x0906, 0xF042,
        ] {
            assert_eq!(CipherSuite::from_code_point(unsupported), None);
        }
        assert_eq!(CipherSuite::DEFAULT.code_point(), 0x004F);
        assert_eq!(CipherSuite::default(), CipherSuite::DEFAULT);
        let mut sorted = CipherSuite::ALL;
        sorted.sort_by_key(|s| s.code_point());
        assert_eq!(sorted, CipherSuite::ALL, "ALL is in code-point order");
    }

    #[test]
    fn name_round_trip() {
        let unique: HashSet<&str> = CipherSuite::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(unique.len(), CipherSuite::ALL.len());
        for suite in CipherSuite::ALL {
            let name = suite.name();
            assert_eq!(name.parse::<CipherSuite>(), Ok(suite));
            assert_eq!(name.to_uppercase().parse::<CipherSuite>(), Ok(suite));
            assert_eq!(format!(" {name}\n").parse::<CipherSuite>(), Ok(suite));
            assert_eq!(format!("0x{:04x}", suite.code_point()).parse(), Ok(suite));
            assert_eq!(format!("0X{:04X}", suite.code_point()).parse(), Ok(suite));
            assert_eq!(suite.code_point().to_string().parse(), Ok(suite));
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            assert_eq!(name.split('-').count(), 4, "{name}");
        }
        let d = CipherSuite::DEFAULT;
        assert_eq!("0x004F".parse(), Ok(d));
        assert_eq!("0x004f".parse(), Ok(d));
        assert_eq!("0x4f".parse(), Ok(d));
        assert_eq!("79".parse(), Ok(d));
        assert_eq!("MLKEM768X25519-AES128GCM-SHA256-ED25519".parse(), Ok(d));
        assert_eq!(
            d.to_string(),
            "mlkem768x25519-aes128gcm-sha256-ed25519 (0x004F)"
        );
        assert_eq!(
            CipherSuite::XWingChaCha20Poly1305Sha256Ed25519.name(),
            "xwing-chacha20poly1305-sha256-ed25519"
        );
        assert_eq!(
            CipherSuite::MlKem768Aes256GcmSha384MlDsa65.name(),
            "mlkem768-aes256gcm-sha384-mldsa65"
        );
    }

    #[test]
    fn unknown_names_are_rejected_with_the_valid_names() {
        for bad in [
            "", "foo", "0x0004", "4", "0x", "0xZZ", "65536", "-1", "0x10000", "004F",
        ] {
            let err = bad.parse::<CipherSuite>().unwrap_err();
            assert_eq!(err, UnknownCipherSuite(bad.to_owned()));
            let msg = err.to_string();
            for suite in CipherSuite::ALL {
                assert!(msg.contains(suite.name()), "{msg}");
            }
        }
        let err: Box<dyn std::error::Error> = Box::new(UnknownCipherSuite("foo".into()));
        assert!(err
            .to_string()
            .starts_with("unknown cipher suite \"foo\"; valid names: "));
    }

    #[test]
    fn properties_agree_with_openmls() {
        for suite in CipherSuite::ALL {
            let cs = suite.mls();
            let hash = match cs.hash_algorithm() {
                HashType::Sha2_256 => HashAlgorithm::Sha256,
                HashType::Sha2_384 => HashAlgorithm::Sha384,
                HashType::Sha2_512 => HashAlgorithm::Sha512,
            };
            let aead = match cs.aead_algorithm() {
                AeadType::Aes128Gcm => AeadAlgorithm::Aes128Gcm,
                AeadType::Aes256Gcm => AeadAlgorithm::Aes256Gcm,
                AeadType::ChaCha20Poly1305 => AeadAlgorithm::ChaCha20Poly1305,
            };
            assert_eq!(suite.hash(), hash, "{suite}");
            assert_eq!(suite.aead(), aead, "{suite}");
            assert_eq!(
                suite.signature_scheme(),
                cs.signature_algorithm(),
                "{suite}"
            );
            let pq_kem = matches!(
                cs.hpke_kem_algorithm(),
                HpkeKemType::XWingKemDraft6 | HpkeKemType::MlKem768 | HpkeKemType::MlKem1024
            );
            assert_eq!(suite.is_post_quantum(), pq_kem, "{suite}");
        }
        let libcrux: Vec<u16> = CipherSuite::ALL
            .into_iter()
            .filter(|s| s.backend() == Backend::Libcrux)
            .map(CipherSuite::code_point)
            .collect();
        assert_eq!(libcrux, [0x0001, 0x0003, 0x004D, 0x004E, 0x004F]);
        let own_hpke: Vec<u16> = CipherSuite::ALL
            .into_iter()
            .filter(|s| s.backend() == Backend::RustCryptoP384)
            .map(CipherSuite::code_point)
            .collect();
        assert_eq!(own_hpke, [0x0007]);
    }
}

#[cfg(test)]
mod display_parse {
    use super::*;

    #[test]
    fn display_form_parses_back() {
        for suite in CipherSuite::ALL {
            assert_eq!(suite.to_string().parse::<CipherSuite>().unwrap(), suite);
        }
    }
}
