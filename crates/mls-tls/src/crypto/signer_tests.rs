//! Tests of [`super::IdentitySigner`]: same Ed25519 signatures as the
//! portable signer, ECDSA signatures the providers accept, and bad key
//! pairs refused.

use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::signatures::Signer;
use openmls_traits::types::SignatureScheme;

use super::{FastKey, IdentitySigner};
use crate::crypto::awslc;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector is hex")
}

/// RFC 8032 section 7.1, test 1: seed, public key, signature of "".
const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_PK: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC8032_SIG: &str =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac\
                           c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

#[test]
fn ed25519_signs_rfc8032_test_1() {
    let pair = SignatureKeyPair::from_raw(
        SignatureScheme::ED25519,
        unhex(RFC8032_SEED),
        unhex(RFC8032_PK),
    );
    let signer = IdentitySigner::new(pair).unwrap();
    assert!(matches!(signer.fast, Some(FastKey::Ed25519(_))));
    assert_eq!(signer.sign(b"").unwrap(), unhex(RFC8032_SIG));
}

/// Ed25519 is deterministic: aws-lc-rs must give ed25519-dalek's bytes.
#[test]
fn ed25519_signatures_equal_the_portable_signers() {
    for _ in 0..8 {
        let pair = SignatureKeyPair::new(SignatureScheme::ED25519).unwrap();
        let signer = IdentitySigner::new(pair.clone()).unwrap();
        for msg in [&b""[..], b"a", &[0x5a; 777]] {
            assert_eq!(signer.sign(msg).unwrap(), pair.sign(msg).unwrap());
        }
    }
}

/// ECDSA signatures are randomised, so compare by verifying: ours with the
/// provider the suite used to sign with, and the portable signer's with ours.
#[test]
fn ecdsa_signatures_verify_both_ways() {
    let rc = openmls_rust_crypto::RustCrypto::default();
    for scheme in [
        SignatureScheme::ECDSA_SECP256R1_SHA256,
        SignatureScheme::ECDSA_SECP384R1_SHA384,
    ] {
        let pair = SignatureKeyPair::new(scheme).unwrap();
        let signer = IdentitySigner::new(pair.clone()).unwrap();
        assert!(matches!(signer.fast, Some(FastKey::Ecdsa(_))));
        assert_eq!(signer.signature_scheme(), scheme);
        for msg in [&b""[..], b"a", &[0x5a; 777]] {
            let ours = signer.sign(msg).unwrap();
            rc.verify_signature(scheme, msg, pair.public(), &ours)
                .unwrap();
            assert!(rc
                .verify_signature(scheme, b"other", pair.public(), &ours)
                .is_err());
            let theirs = pair.sign(msg).unwrap();
            assert_eq!(
                awslc::verify_signature(scheme, msg, pair.public(), &theirs),
                Some(Ok(()))
            );
        }
    }
}

#[test]
fn mismatched_or_malformed_key_pairs_are_refused() {
    for scheme in [
        SignatureScheme::ED25519,
        SignatureScheme::ECDSA_SECP256R1_SHA256,
        SignatureScheme::ECDSA_SECP384R1_SHA384,
    ] {
        let a = SignatureKeyPair::new(scheme).unwrap();
        let b = SignatureKeyPair::new(scheme).unwrap();
        let private = super::private_key(&a).unwrap().as_slice().to_vec();
        let n = private.len();
        let bad = [
            (private.clone(), b.public().to_vec()),
            // Short by a byte (the last: a leading zero byte dropped would
            // leave the same scalar, 1 time in 256).
            (private[..n - 1].to_vec(), a.public().to_vec()),
            (Vec::new(), a.public().to_vec()),
            (vec![0; n], a.public().to_vec()),
            (vec![0xff; n], a.public().to_vec()),
            (private.clone(), Vec::new()),
        ];
        for (sk, pk) in bad {
            let pair = SignatureKeyPair::from_raw(scheme, sk, pk);
            assert!(IdentitySigner::new(pair).is_err(), "{scheme:?}");
        }
        // ... while the original pair's own bytes make a working signer.
        let pair = SignatureKeyPair::from_raw(scheme, private, a.public().to_vec());
        assert!(IdentitySigner::new(pair).is_ok());
    }
}

/// ML-DSA has no aws-lc-rs signer here: the key pair signs.
#[test]
fn ml_dsa_is_signed_by_the_key_pair() {
    let scheme = SignatureScheme::MLDSA65;
    let pair = SignatureKeyPair::new(scheme).unwrap();
    let signer = IdentitySigner::new(pair.clone()).unwrap();
    assert!(signer.fast.is_none());
    let sig = signer.sign(b"m").unwrap();
    let rc = openmls_rust_crypto::RustCrypto::default();
    rc.verify_signature(scheme, b"m", pair.public(), &sig)
        .unwrap();
}
