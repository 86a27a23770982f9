//! Tests of the crypto backend: selection and delegation, and HPKE
//! routing (P-384 and X25519 to [`super::hpke`]).

use super::*;

use crate::schedule::HashAlgorithm;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn hash_len(h: HashAlgorithm) -> usize {
    match h {
        HashAlgorithm::Sha256 => 32,
        HashAlgorithm::Sha384 => 48,
        HashAlgorithm::Sha512 => 64,
    }
}

#[test]
fn backend_matches_suite_and_delegates() -> TestResult {
    for suite in CipherSuite::ALL {
        let backend = CryptoBackend::for_suite(suite)?;
        match (suite.backend(), &backend) {
            (Backend::Libcrux, CryptoBackend::Libcrux(_))
            | (Backend::RustCrypto, CryptoBackend::RustCrypto(_))
            | (Backend::RustCryptoP384, CryptoBackend::RustCryptoP384(_)) => {}
            _ => panic!("{suite}: wrong backend {backend:?}"),
        }
        backend.supports(suite.mls())?;
        let a: [u8; 32] = backend.random_array()?;
        let b: [u8; 32] = backend.random_array()?;
        assert_ne!(a, b);
        assert_eq!(backend.random_vec(17)?.len(), 17);
        let digest = backend.hash(suite.mls().hash_algorithm(), b"abc")?;
        assert_eq!(digest.len(), hash_len(suite.hash()));
        let (sk, pk) = backend.signature_key_gen(suite.signature_scheme())?;
        let sig = backend.sign(suite.signature_scheme(), b"msg", &sk)?;
        backend.verify_signature(suite.signature_scheme(), b"msg", &pk, &sig)?;
        assert!(backend
            .verify_signature(suite.signature_scheme(), b"other", &pk, &sig)
            .is_err());
    }
    Ok(())
}

/// 0x0007's HPKE goes to `hpke`; everything else, and other KEMs,
/// still reach rust_crypto (which cannot do DHKEM(P-384) itself).
#[test]
fn p384_backend_routes_hpke_to_own_implementation() -> TestResult {
    let backend = CryptoBackend::for_suite(CipherSuite::P384Aes256GcmSha384P384)?;
    backend.supports(P384_SUITE)?;
    assert!(backend.supported_ciphersuites().contains(&P384_SUITE));
    backend.supports(Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256)?;

    let config = P384_SUITE.hpke_config();
    let kp = backend.derive_hpke_keypair(P384_SUITE.hpke_config(), b"ikm")?;
    assert_eq!((kp.private.len(), kp.public.len()), (48, 97));
    let ct = backend.hpke_seal(dup(&config), &kp.public, b"info", b"aad", b"pt")?;
    let pt = backend.hpke_open(P384_SUITE.hpke_config(), &ct, &kp.private, b"info", b"aad")?;
    assert_eq!(pt, b"pt");
    let (enc, sent) = backend.hpke_setup_sender_and_export(
        P384_SUITE.hpke_config(),
        &kp.public,
        b"info",
        b"ctx",
        48,
    )?;
    let received = backend.hpke_setup_receiver_and_export(
        P384_SUITE.hpke_config(),
        &enc,
        &kp.private,
        b"info",
        b"ctx",
        48,
    )?;
    assert_eq!(&*sent, &*received);

    // P-256 HPKE on the same backend is rust_crypto's.
    let p256 = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256.hpke_config();
    let kp256 = backend.derive_hpke_keypair(p256, b"ikm")?;
    assert_eq!((kp256.private.len(), kp256.public.len()), (32, 65));

    // The plain rust_crypto backend does not claim the suite.
    let plain = CryptoBackend::for_suite(CipherSuite::P256Aes128GcmSha256P256)?;
    assert!(plain.supports(P384_SUITE).is_err());
    assert!(!plain.supported_ciphersuites().contains(&P384_SUITE));
    Ok(())
}

/// A copy of `config` (`HpkeConfig` is not `Clone`).
fn dup(config: &HpkeConfig) -> HpkeConfig {
    HpkeConfig(config.0, config.1, config.2)
}

/// The HPKE of 0x0001, 0x0003 and 0x0007 runs on `hpke`, that of every
/// other suite (X-Wing, ML-KEM, P-256) on the provider.
#[test]
fn hpke_routing_follows_the_hpke_config() -> TestResult {
    for suite in CipherSuite::ALL {
        let config = suite.mls().hpke_config();
        let own = matches!(suite.code_point(), 0x0001 | 0x0003 | 0x0007);
        assert_eq!(hpke::handles(&config), own, "{suite}");
    }

    // Through the backend, the X25519 suites interoperate both ways with
    // libcrux's own HPKE (what older builds and stored sessions used).
    let lc = openmls_libcrux_crypto::CryptoProvider::new()?;
    for suite in [
        CipherSuite::X25519Aes128GcmSha256Ed25519,
        CipherSuite::X25519ChaCha20Poly1305Sha256Ed25519,
    ] {
        let backend = CryptoBackend::for_suite(suite)?;
        assert!(matches!(backend, CryptoBackend::Libcrux(_)));
        let config = suite.mls().hpke_config();
        let kp = backend.derive_hpke_keypair(dup(&config), b"ikm")?;
        let theirs = lc.derive_hpke_keypair(dup(&config), b"ikm")?;
        assert_eq!(
            (&*kp.private, &kp.public),
            (&*theirs.private, &theirs.public)
        );

        let ct = backend.hpke_seal(dup(&config), &kp.public, b"info", b"aad", b"pt")?;
        assert_eq!(
            lc.hpke_open(dup(&config), &ct, &kp.private, b"info", b"aad")?,
            b"pt"
        );
        let ct = lc.hpke_seal(dup(&config), &kp.public, b"info", b"aad", b"tp")?;
        assert_eq!(
            backend.hpke_open(dup(&config), &ct, &kp.private, b"info", b"aad")?,
            b"tp"
        );

        let (enc, sent) =
            backend.hpke_setup_sender_and_export(dup(&config), &kp.public, b"info", b"ctx", 32)?;
        let received = lc.hpke_setup_receiver_and_export(
            dup(&config),
            &enc,
            &kp.private,
            b"info",
            b"ctx",
            32,
        )?;
        assert_eq!(&*sent, &*received);
        let (enc, sent) =
            lc.hpke_setup_sender_and_export(dup(&config), &kp.public, b"info", b"ctx", 32)?;
        let received = backend.hpke_setup_receiver_and_export(
            dup(&config),
            &enc,
            &kp.private,
            b"info",
            b"ctx",
            32,
        )?;
        assert_eq!(&*sent, &*received);
    }

    // X-Wing (the default suite) is libcrux's: `hpke` refuses it.
    let suite = CipherSuite::MlKem768X25519Aes128GcmSha256Ed25519;
    let backend = CryptoBackend::for_suite(suite)?;
    let config = suite.mls().hpke_config();
    let kp = backend.derive_hpke_keypair(dup(&config), &[7; 32])?;
    assert_eq!(
        hpke::derive_key_pair(&config, &[7; 32]).err(),
        Some(CryptoError::UnsupportedCiphersuite)
    );
    let ct = backend.hpke_seal(dup(&config), &kp.public, b"info", b"aad", b"pt")?;
    assert_eq!(
        backend.hpke_open(dup(&config), &ct, &kp.private, b"info", b"aad")?,
        b"pt"
    );
    Ok(())
}

#[test]
fn rand_error_keeps_its_source() {
    use std::error::Error as _;
    let e = RandError::RustCrypto(openmls_rust_crypto::RandError::LockPoisoned);
    assert!(e.source().is_some());
    assert!(e.to_string().starts_with("rust_crypto randomness error: "));
    let e = RandError::Libcrux(openmls_libcrux_crypto::RandError::UnableToGenerate);
    assert!(e.to_string().starts_with("libcrux randomness error: "));
}
