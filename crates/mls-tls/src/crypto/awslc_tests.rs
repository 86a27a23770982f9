//! Tests of [`super::awslc`]: known answers from the RFCs, the same outputs
//! as the providers it replaces, and errors (never panics) on bad input.

use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::types::{CryptoError, HashType, SignatureScheme};

use super::awslc;
use super::{CipherSuite, CryptoBackend};

const HASHES: [HashType; 3] = [HashType::Sha2_256, HashType::Sha2_384, HashType::Sha2_512];

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector is hex")
}

/// The two providers whose primitives `awslc` stands in for.
fn providers() -> Vec<(&'static str, Box<dyn OpenMlsCrypto>)> {
    vec![
        (
            "libcrux",
            Box::new(openmls_libcrux_crypto::CryptoProvider::new().expect("libcrux seeds")),
        ),
        (
            "rust_crypto",
            Box::new(openmls_rust_crypto::RustCrypto::default()),
        ),
    ]
}

/// Random bytes of a random length below `max`.
fn random_bytes(rng: &openmls_rust_crypto::RustCrypto, max: usize) -> Vec<u8> {
    let [a, b] = rng.random_array::<2>().expect("rng");
    let len = usize::from(u16::from_be_bytes([a, b])) % max;
    rng.random_vec(len).expect("rng")
}

#[test]
fn hmac_matches_rfc4231_cases_1_and_2() {
    let cases = [
        (
            vec![0x0b; 20],
            &b"Hi There"[..],
            [
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ],
        ),
        (
            b"Jefe".to_vec(),
            &b"what do ya want for nothing?"[..],
            [
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ],
        ),
    ];
    for (key, data, macs) in cases {
        for (hash, mac) in HASHES.into_iter().zip(macs) {
            assert_eq!(*awslc::hmac(hash, &key, data), unhex(mac), "{hash:?}");
        }
    }
}

#[test]
fn hkdf_matches_rfc5869_cases_1_and_3() {
    let ikm = [0x0b; 22];
    // (salt, info, PRK, OKM), L = 42, SHA-256.
    let cases = [
        (
            unhex("000102030405060708090a0b0c"),
            unhex("f0f1f2f3f4f5f6f7f8f9"),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
             34007208d5b887185865",
        ),
        (
            Vec::new(),
            Vec::new(),
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d\
             9d201395faa4b61a96c8",
        ),
    ];
    for (salt, info, prk, okm) in cases {
        let got = awslc::hkdf_extract(HashType::Sha2_256, &salt, &ikm);
        assert_eq!(*got, unhex(prk));
        let got = awslc::hkdf_expand(HashType::Sha2_256, &got, &info, 42).unwrap();
        assert_eq!(*got, unhex(okm));
    }
}

#[test]
fn symmetric_primitives_match_both_providers_on_random_input() {
    let rng = openmls_rust_crypto::RustCrypto::default();
    for (name, p) in providers() {
        for _ in 0..40 {
            let (a, b) = (random_bytes(&rng, 300), random_bytes(&rng, 300));
            for hash in HASHES {
                let what = format!("{name} {hash:?} |a|={} |b|={}", a.len(), b.len());
                assert_eq!(awslc::hash(hash, &a), p.hash(hash, &a).unwrap(), "{what}");
                assert_eq!(
                    awslc::hmac(hash, &a, &b).as_slice(),
                    p.hmac(hash, &a, &b).unwrap().as_slice(),
                    "{what}"
                );
                let prk = awslc::hkdf_extract(hash, &a, &b);
                assert_eq!(
                    prk.as_slice(),
                    p.hkdf_extract(hash, &a, &b).unwrap().as_slice(),
                    "{what}"
                );
                // Output lengths across block boundaries.
                let len = b.len() % 200;
                assert_eq!(
                    awslc::hkdf_expand(hash, &prk, &a, len).unwrap().as_slice(),
                    p.hkdf_expand(hash, &prk, &a, len).unwrap().as_slice(),
                    "{what} len={len}"
                );
                // A PRK longer than HashLen: RFC 5869 uses all of it, as
                // rust_crypto does; libcrux only its first HashLen bytes.
                let long = [&prk[..], &a[..]].concat();
                let ours = awslc::hkdf_expand(hash, &long, &b, len).unwrap();
                let theirs = p.hkdf_expand(hash, &long, &b, len).unwrap();
                if name == "rust_crypto" || a.is_empty() {
                    assert_eq!(ours.as_slice(), theirs.as_slice(), "{what} len={len}");
                } else {
                    let cut = awslc::hkdf_expand(hash, &prk, &b, len).unwrap();
                    assert_eq!(cut.as_slice(), theirs.as_slice(), "{what} len={len}");
                }
            }
        }
    }
}

#[test]
fn hkdf_expand_refuses_bad_lengths() {
    for hash in HASHES {
        let n = awslc::hash(hash, b"").len();
        let prk = vec![7u8; n];
        assert_eq!(
            awslc::hkdf_expand(hash, &prk, b"", 255 * n).unwrap().len(),
            255 * n
        );
        assert_eq!(
            awslc::hkdf_expand(hash, &prk, b"", 255 * n + 1),
            Err(CryptoError::HkdfOutputLengthInvalid)
        );
        assert_eq!(
            awslc::hkdf_expand(hash, &prk, b"", usize::MAX),
            Err(CryptoError::HkdfOutputLengthInvalid)
        );
        assert!(awslc::hkdf_expand(hash, &prk, b"", 0).unwrap().is_empty());
        assert_eq!(
            awslc::hkdf_expand(hash, &prk[1..], b"", 16),
            Err(CryptoError::InvalidLength)
        );
        // Long PRKs are fine (aws-lc-rs' own `Prk` would panic above 64 bytes).
        assert_eq!(
            awslc::hkdf_expand(hash, &[1; 1000], b"i", 5).unwrap().len(),
            5
        );
    }
}

#[test]
fn ed25519_verifies_rfc8032_tests_1_and_2() {
    let cases = [
        (
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac\
             c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e\
             458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
    ];
    let ed = SignatureScheme::ED25519;
    for (pk, msg, sig) in cases {
        let (pk, msg, sig) = (unhex(pk), unhex(msg), unhex(sig));
        assert_eq!(awslc::verify_signature(ed, &msg, &pk, &sig), Some(Ok(())));
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert_eq!(
            awslc::verify_signature(ed, &msg, &pk, &bad),
            Some(Err(CryptoError::InvalidSignature))
        );
        assert_eq!(
            awslc::verify_signature(ed, b"other", &pk, &sig),
            Some(Err(CryptoError::InvalidSignature))
        );
    }
}

/// Signatures made by each provider verify here exactly when they verify
/// there: untouched, with a flipped bit anywhere, or over another message.
#[test]
fn verification_agrees_with_providers() {
    let schemes = [
        SignatureScheme::ED25519,
        SignatureScheme::ECDSA_SECP256R1_SHA256,
        SignatureScheme::ECDSA_SECP384R1_SHA384,
    ];
    let mut checked = 0;
    for (name, p) in providers() {
        for scheme in schemes {
            // libcrux only has Ed25519.
            let Ok((sk, pk)) = p.signature_key_gen(scheme) else {
                continue;
            };
            for msg in [&b""[..], b"msg", &[0xa5; 1000]] {
                let sig = p.sign(scheme, msg, &sk).unwrap();
                assert_eq!(
                    awslc::verify_signature(scheme, msg, &pk, &sig),
                    Some(Ok(()))
                );
                p.verify_signature(scheme, msg, &pk, &sig).unwrap();
                // One flipped bit in every byte (a different bit each time).
                for i in 0..sig.len() {
                    let mut bad = sig.clone();
                    bad[i] ^= 1 << (i % 8);
                    let ours = awslc::verify_signature(scheme, msg, &pk, &bad).unwrap();
                    let theirs = p.verify_signature(scheme, msg, &pk, &bad);
                    assert_eq!(
                        ours,
                        Err(CryptoError::InvalidSignature),
                        "{name} {scheme:?} bit {i}"
                    );
                    assert!(theirs.is_err(), "{name} {scheme:?} bit {i}");
                }
                let other = [msg, b"x"].concat();
                assert!(awslc::verify_signature(scheme, &other, &pk, &sig)
                    .unwrap()
                    .is_err());
                checked += 1;
            }
        }
    }
    // libcrux: Ed25519; rust_crypto: all three; three messages each.
    assert_eq!(checked, 12);
}

#[test]
fn malformed_keys_and_signatures_are_invalid_not_panics() {
    let rc = openmls_rust_crypto::RustCrypto::default();
    for scheme in [
        SignatureScheme::ED25519,
        SignatureScheme::ECDSA_SECP256R1_SHA256,
        SignatureScheme::ECDSA_SECP384R1_SHA384,
    ] {
        let (sk, pk) = rc.signature_key_gen(scheme).unwrap();
        let sig = rc.sign(scheme, b"m", &sk).unwrap();
        let mut long_sig = sig.clone();
        long_sig.push(0);
        let mut compressed = pk.clone();
        compressed[0] = 0x09;
        let keys = [
            Vec::new(),
            vec![0],
            vec![0; pk.len()],
            vec![0xff; pk.len()],
            pk[..pk.len() - 1].to_vec(),
            [&pk[..], &[0]].concat(),
            compressed,
            vec![4; 10_000],
        ];
        for bad_pk in &keys {
            assert_eq!(
                awslc::verify_signature(scheme, b"m", bad_pk, &sig),
                Some(Err(CryptoError::InvalidSignature)),
                "{scheme:?} pk {bad_pk:02x?}"
            );
        }
        let sigs = [
            Vec::new(),
            vec![0x30],
            vec![0x30, 0x00],
            vec![0; sig.len()],
            vec![0xff; sig.len()],
            sig[..sig.len() - 1].to_vec(),
            long_sig,
            vec![0x30; 100_000],
        ];
        for bad_sig in &sigs {
            assert_eq!(
                awslc::verify_signature(scheme, b"m", &pk, bad_sig),
                Some(Err(CryptoError::InvalidSignature)),
                "{scheme:?} sig {bad_sig:02x?}"
            );
        }
    }
    // ML-DSA is left to the provider.
    assert_eq!(
        awslc::verify_signature(SignatureScheme::MLDSA65, b"m", &[], &[]),
        None
    );
}

/// HKDF-Expand with a PRK that is not HashLen bytes never occurs in MLS;
/// for it the backend keeps its provider's answer, so no output changes.
#[test]
fn backend_keeps_provider_hkdf_for_other_prk_lengths() {
    let libcrux = openmls_libcrux_crypto::CryptoProvider::new().unwrap();
    let backend = CryptoBackend::for_suite(CipherSuite::DEFAULT).unwrap();
    let hash = HashType::Sha2_256;
    let long = [3u8; 48];
    assert_eq!(
        backend
            .hkdf_expand(hash, &long, b"i", 40)
            .unwrap()
            .as_slice(),
        libcrux
            .hkdf_expand(hash, &long, b"i", 40)
            .unwrap()
            .as_slice()
    );
    assert_ne!(
        backend
            .hkdf_expand(hash, &long, b"i", 40)
            .unwrap()
            .as_slice(),
        awslc::hkdf_expand(hash, &long, b"i", 40)
            .unwrap()
            .as_slice()
    );
    assert!(backend.hkdf_expand(hash, &long[..31], b"i", 40).is_err());
}

/// `CryptoBackend` answers from aws-lc-rs for every suite: e.g. a wrong
/// length key is `InvalidSignature` even where libcrux would say
/// `InvalidLength`, and the symmetric outputs match `awslc`'s.
#[test]
fn backend_routes_to_awslc_for_every_suite() {
    for suite in CipherSuite::ALL {
        let backend = CryptoBackend::for_suite(suite).unwrap();
        let hash = suite.mls().hash_algorithm();
        assert_eq!(
            backend.hash(hash, b"abc").unwrap(),
            awslc::hash(hash, b"abc")
        );
        assert_eq!(
            backend
                .hkdf_expand(hash, &[1; 64][..hash.size()], b"i", 3)
                .unwrap()
                .as_slice(),
            awslc::hkdf_expand(hash, &[1; 64][..hash.size()], b"i", 3)
                .unwrap()
                .as_slice()
        );
        let scheme = suite.signature_scheme();
        let routed = awslc::verify_signature(scheme, b"m", &[1], &[2]).is_some();
        let got = backend.verify_signature(scheme, b"m", &[1], &[2]);
        assert!(got.is_err(), "{suite}");
        if routed {
            assert_eq!(got, Err(CryptoError::InvalidSignature), "{suite}");
        }
    }
}
