//! Tests of the DHKEM(X25519, HKDF-SHA256) suites: MLS 0x0001 (AES-128-GCM)
//! and 0x0003 (ChaCha20-Poly1305).

use super::tests::encrypt_context;
use super::*;
use openmls_traits::crypto::OpenMlsCrypto;
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `Nsk` = `Npk` = `Nenc` = `Nsecret` of DHKEM(X25519), and `Nh` of
/// HKDF-SHA256.
const N: usize = 32;

/// Suite 0x0001's HPKE configuration.
fn aes() -> HpkeConfig {
    HpkeConfig(
        HpkeKemType::DhKem25519,
        HpkeKdfType::HkdfSha256,
        HpkeAeadType::AesGcm128,
    )
}

/// Suite 0x0003's HPKE configuration.
fn chacha() -> HpkeConfig {
    HpkeConfig(
        HpkeKemType::DhKem25519,
        HpkeKdfType::HkdfSha256,
        HpkeAeadType::ChaCha20Poly1305,
    )
}

fn configs() -> [HpkeConfig; 2] {
    [aes(), chacha()]
}

/// A copy of `config` (`HpkeConfig` is not `Clone`; the provider API takes
/// it by value).
fn dup(config: &HpkeConfig) -> HpkeConfig {
    HpkeConfig(config.0, config.1, config.2)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test constant is hex")
}

/// A key pair derived from a fixed seed.
fn key_pair(seed: u8) -> HpkeKeyPair {
    derive_key_pair(&aes(), &[seed; 32]).expect("derive")
}

fn ciphertext(kem_output: Vec<u8>, ct: Vec<u8>) -> HpkeCiphertext {
    HpkeCiphertext {
        kem_output: kem_output.into(),
        ciphertext: ct.into(),
    }
}

fn libcrux() -> openmls_libcrux_crypto::CryptoProvider {
    openmls_libcrux_crypto::CryptoProvider::new().expect("libcrux provider")
}

// --- Known answers -------------------------------------------------------

/// A base-mode vector of RFC 9180 Appendix A: setup values, the encryption
/// with sequence number 0 and the exported values (all with L = 32).
struct Rfc9180Vector {
    config: HpkeConfig,
    suite: &'static Suite,
    info: &'static str,
    ikm_e: &'static str,
    pk_em: &'static str,
    sk_em: &'static str,
    ikm_r: &'static str,
    pk_rm: &'static str,
    sk_rm: &'static str,
    enc: &'static str,
    shared_secret: &'static str,
    key: &'static str,
    base_nonce: &'static str,
    exporter_secret: &'static str,
    pt: &'static str,
    aad: &'static str,
    ct: &'static str,
    exports: [(&'static str, &'static str); 3],
}

/// RFC 9180 A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM,
/// base mode.
fn rfc9180_a_1_1() -> Rfc9180Vector {
    Rfc9180Vector {
        config: aes(),
        suite: &X25519_SHA256_AES128GCM,
        info: "4f6465206f6e2061204772656369616e2055726e",
        ikm_e: "7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234",
        pk_em: "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
        sk_em: "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736",
        ikm_r: "6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037",
        pk_rm: "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
        sk_rm: "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
        enc: "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
        shared_secret: "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc",
        key: "4531685d41d65f03dc48f6b8302c05b0",
        base_nonce: "56d890e5accaaf011cff4b7d",
        exporter_secret: "45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8",
        pt: "4265617574792069732074727574682c20747275746820626561757479",
        aad: "436f756e742d30",
        ct: "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
        exports: [
            (
                "",
                "3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee",
            ),
            (
                "00",
                "2e8f0b54673c7029649d4eb9d5e33bf1872cf76d623ff164ac185da9e88c21a5",
            ),
            (
                "54657374436f6e74657874",
                "e9e43065102c3836401bed8c3c3c75ae46be1639869391d62c61f1ec7af54931",
            ),
        ],
    }
}

/// RFC 9180 A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
/// ChaCha20Poly1305, base mode. Its `skRm` has bit 255 set: private keys
/// are stored unclamped.
fn rfc9180_a_2_1() -> Rfc9180Vector {
    Rfc9180Vector {
        config: chacha(),
        suite: &X25519_SHA256_CHACHA20POLY1305,
        info: "4f6465206f6e2061204772656369616e2055726e",
        ikm_e: "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b",
        pk_em: "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
        sk_em: "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600",
        ikm_r: "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df",
        pk_rm: "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
        sk_rm: "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
        enc: "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
        shared_secret: "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7",
        key: "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91",
        base_nonce: "5c4d98150661b848853b547f",
        exporter_secret: "a3b010d4994890e2c6968a36f64470d3c824c8f5029942feb11e7a74b2921922",
        pt: "4265617574792069732074727574682c20747275746820626561757479",
        aad: "436f756e742d30",
        ct: "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28",
        exports: [
            (
                "",
                "4bbd6243b8bb54cec311fac9df81841b6fd61f56538a775e7c80a9f40160606e",
            ),
            (
                "00",
                "8c1df14732580e5501b00f82b10a1647b40713191b7c1240ac80e2b68808ba69",
            ),
            (
                "54657374436f6e74657874",
                "5acb09211139c43b3090489a9da433e8a30ee7188ba8b0a9a1ccf0c229283e53",
            ),
        ],
    }
}

fn check_rfc9180_vector(v: &Rfc9180Vector) -> TestResult {
    let (ikm_e, sk_rm, pk_rm, info) = (
        unhex(v.ikm_e),
        unhex(v.sk_rm),
        unhex(v.pk_rm),
        unhex(v.info),
    );
    assert!(std::ptr::eq(suite(&v.config).ok_or("no suite")?, v.suite));

    // DeriveKeyPair, and pk(sk) from the serialized private key.
    let (sk_e, pk_e) = DHKEM_X25519.derive_key_pair(&ikm_e)?;
    assert_eq!(*sk_e, unhex(v.sk_em));
    assert_eq!(pk_e, unhex(v.pk_em));
    let kp_r = derive_key_pair(&v.config, &unhex(v.ikm_r))?;
    assert_eq!(*kp_r.private, sk_rm);
    assert_eq!(kp_r.public, pk_rm);
    assert_eq!(public_key(&DHKEM_X25519.private_key(&sk_rm)?)?, pk_rm);

    // Encap / Decap.
    let (shared, enc) = DHKEM_X25519.encap(&pk_rm, &ikm_e)?;
    assert_eq!(enc, unhex(v.enc));
    assert_eq!(*shared, unhex(v.shared_secret));
    assert_eq!(*DHKEM_X25519.decap(&enc, &sk_rm)?, unhex(v.shared_secret));

    // Key schedule.
    let ctx = Context::new(v.suite, &shared, &info)?;
    assert_eq!(*ctx.key, unhex(v.key));
    assert_eq!(*ctx.base_nonce, unhex(v.base_nonce));
    assert_eq!(*ctx.exporter_secret, unhex(v.exporter_secret));

    // Encryption with sequence number 0, through the single-shot API too.
    let (pt, aad, ct) = (unhex(v.pt), unhex(v.aad), unhex(v.ct));
    assert_eq!(ctx.seal(&aad, &pt)?, ct);
    let sealed = seal_derand(v.suite, &pk_rm, &info, &aad, &pt, &ikm_e)?;
    assert_eq!(sealed.kem_output.as_slice(), enc.as_slice());
    assert_eq!(sealed.ciphertext.as_slice(), ct.as_slice());
    let input = ciphertext(enc.clone(), ct.clone());
    assert_eq!(open(&v.config, &input, &sk_rm, &info, &aad)?, pt);

    // Exported values, from the context and through the receiver API.
    for (context, value) in v.exports {
        let context = unhex(context);
        assert_eq!(&*ctx.export(&context, 32)?, unhex(value).as_slice());
        let received = setup_receiver_and_export(&v.config, &enc, &sk_rm, &info, &context, 32)?;
        assert_eq!(&*received, unhex(value).as_slice());
    }
    Ok(())
}

#[test]
fn rfc9180_a_1_1_base_x25519_sha256_aes128gcm() -> TestResult {
    check_rfc9180_vector(&rfc9180_a_1_1())
}

#[test]
fn rfc9180_a_2_1_base_x25519_sha256_chacha20poly1305() -> TestResult {
    check_rfc9180_vector(&rfc9180_a_2_1())
}

/// An HPKE configuration and the six hex values of an `encrypt_with_label`.
type MlsVector = (fn() -> HpkeConfig, [&'static str; 6]);

/// MLS interop vector `crypto-basics.json` (github.com/mlswg/mls-implementations,
/// test-vectors/crypto-basics.json), `encrypt_with_label` of cipher_suite 1
/// (AES-128-GCM) and 3 (ChaCha20-Poly1305): (config, priv, pub, context,
/// plaintext, kem_output, ciphertext). `priv` and `pub` there carry their
/// MLS length prefix (0x20), dropped here.
const MLS_ENCRYPT_WITH_LABEL: [MlsVector; 2] = [
    (
        aes,
        [
            "aa986a7941001bf2f509c54d8f61a5b419c8a0ff02634cf1ccea35b56c8fb002",
            "f2119826071a8cd92fe6132a091252d8adcff4adb2e4c9ce3013a171a812fc72",
            "86a8fab1597b2d3fc1498464259eb50852a36f5554589c747f2d6c1fbc67c3d4",
            "dce54bc43e1bee8c4a9f6224ee9959d171c379c43d05383861307d3e52469a3f",
            "fde840e33c794491db60c2c20e26738b8756b045b33f44bf93b5551fdffbdc5c",
            "9fa3af0beaef151947d8af1a45cbc940181cc901d1437d7fc85e4dcb38a3273e730d414abee7eba789a5a55dbbce4cc7",
        ],
    ),
    (
        chacha,
        [
            "a4583e93da26fbed2aefa063952c791925a868944314ea99542b58a1b72c5fe2",
            "fd3a01a2472d56c985870efce6ec9b84ea8dfc4ae772d26b4c63ccca2cc71e4f",
            "12b0c535b1e5f4f40fabf70c1bd780080a2223d9d090be9bdeca1935497e489d",
            "0eb9423b4c8e4b6b31c8987be66d7af96458e93d8539150d093b750dfeab7058",
            "8ab65d6b6311b64b850bad990e50763083c5b9f45ea3de2d97a0defd0799f61f",
            "9bc51f706abe79109fcf89e9b6fb3d44222b07509a105e4f2740bfeeee01f3b16d3f5b8cd8e38925335ea12ec99348ca",
        ],
    ),
];

#[test]
fn mls_vector_encrypt_with_label_opens() -> TestResult {
    for (config, [sk, pk, context, plaintext, kem_output, ct]) in MLS_ENCRYPT_WITH_LABEL {
        let config = config();
        let sk = unhex(sk);
        assert_eq!(public_key(&DHKEM_X25519.private_key(&sk)?)?, unhex(pk));
        let info = encrypt_context(&unhex(context));
        let input = ciphertext(unhex(kem_output), unhex(ct));
        assert_eq!(open(&config, &input, &sk, &info, b"")?, unhex(plaintext));

        // One flipped bit in the ciphertext or the KEM output fails.
        let mut bad_ct = unhex(ct);
        bad_ct[0] ^= 1;
        let mut bad_enc = unhex(kem_output);
        bad_enc[0] ^= 1;
        for bad in [
            ciphertext(unhex(kem_output), bad_ct),
            ciphertext(bad_enc, unhex(ct)),
        ] {
            assert_eq!(
                open(&config, &bad, &sk, &info, b""),
                Err(CryptoError::HpkeDecryptionError)
            );
        }
    }
    Ok(())
}

// --- X25519 input validation (RFC 9180 7.1.4, RFC 7748 6.1) --------------

/// u-coordinates of small order on Curve25519 or its twist, and
/// non-canonical encodings of them (libsodium's blocklist): 0, 1, the two
/// points of order 8, p - 1, p and p + 1. X25519 with a clamped scalar (a
/// multiple of 8) maps each to u = 0.
const LOW_ORDER: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

/// [`LOW_ORDER`], each also with bit 255 set (X25519 ignores that bit).
fn low_order_keys() -> Vec<Vec<u8>> {
    LOW_ORDER
        .iter()
        .flat_map(|u| {
            let plain = unhex(u);
            let mut high = plain.clone();
            high[31] |= 0x80;
            [plain, high]
        })
        .collect()
}

/// RFC 8410 SubjectPublicKeyInfo of an X25519 key: aws-lc parses this too.
fn spki(pk: &[u8]) -> Vec<u8> {
    [&unhex("302a300506032b656e032100")[..], pk].concat()
}

/// Public-key encodings RFC 9180 does not allow or that give an all-zero
/// shared secret, derived from the valid `pk`.
fn malformed_keys(pk: &[u8]) -> Vec<Vec<u8>> {
    let mut long = pk.to_vec();
    long.push(0);
    let mut out = vec![vec![], vec![0x00], pk[..31].to_vec(), long, spki(pk)];
    out.extend(low_order_keys());
    out
}

/// What the validation rests on, checked on aws-lc itself: an X25519
/// agreement whose result is all zeros fails; bit 255 of a public key is
/// ignored (RFC 7748 5), as in libcrux; and aws-lc would take a DER
/// SubjectPublicKeyInfo, which is why `dh` checks the length first.
#[test]
fn aws_lc_x25519_behaviour() -> TestResult {
    let sk = DHKEM_X25519.private_key(&key_pair(1).private)?;
    let agree = |pk: &[u8]| {
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, pk);
        agreement::agree(&sk, peer, "rejected", |z| Ok(z.to_vec()))
    };
    for pk in low_order_keys() {
        assert_eq!(agree(&pk), Err("rejected"), "{}", hex::encode(&pk));
    }
    let pk = key_pair(2).public;
    let z = agree(&pk)?;
    assert_eq!(z.len(), N);
    assert_ne!(z, [0u8; N]);
    let mut high = pk.clone();
    high[31] |= 0x80;
    assert_eq!(agree(&high)?, z);
    assert_eq!(agree(&spki(&pk))?, z);
    Ok(())
}

#[test]
fn dh_refuses_low_order_and_malformed_public_keys() -> TestResult {
    let sk = DHKEM_X25519.private_key(&key_pair(3).private)?;
    let pk = key_pair(4).public;
    assert_eq!(DHKEM_X25519.dh(&sk, &pk)?.len(), N);
    for bad in malformed_keys(&pk) {
        assert_eq!(
            DHKEM_X25519.dh(&sk, &bad).err(),
            Some(CryptoError::InvalidPublicKey),
            "{}",
            hex::encode(&bad)
        );
    }
    Ok(())
}

#[test]
fn malformed_kem_output_is_rejected() -> TestResult {
    for config in configs() {
        let kp = key_pair(5);
        let ct = seal(&config, &kp.public, b"", b"", b"m")?;
        let body = ct.ciphertext.as_slice().to_vec();
        for enc in malformed_keys(ct.kem_output.as_slice()) {
            let bad = ciphertext(enc.clone(), body.clone());
            assert_eq!(
                open(&config, &bad, &kp.private, b"", b""),
                Err(CryptoError::HpkeDecryptionError),
                "{}",
                hex::encode(&enc)
            );
            assert_eq!(
                setup_receiver_and_export(&config, &enc, &kp.private, b"", b"", 32).err(),
                Some(CryptoError::ReceiverSetupError)
            );
        }
    }
    Ok(())
}

#[test]
fn malformed_recipient_key_is_rejected() -> TestResult {
    let lc = libcrux();
    for config in configs() {
        let kp = key_pair(6);
        for pk in malformed_keys(&kp.public) {
            assert!(seal(&config, &pk, b"", b"", b"m").is_err());
            assert_eq!(
                setup_sender_and_export(&config, &pk, b"", b"", 32).err(),
                Some(CryptoError::SenderSetupError)
            );
            // libcrux refuses them too, so no peer could have used them.
            assert!(lc.hpke_seal(dup(&config), &pk, b"", b"", b"m").is_err());
        }
        let ct = seal(&config, &kp.public, b"", b"", b"m")?;
        for sk in [vec![], vec![1u8; 31], vec![1u8; 33]] {
            assert_eq!(
                open(&config, &ct, &sk, b"", b""),
                Err(CryptoError::HpkeDecryptionError)
            );
        }
    }
    Ok(())
}

// --- Behaviour -----------------------------------------------------------

#[test]
fn seal_open_round_trip() -> TestResult {
    for config in configs() {
        let kp = key_pair(7);
        for (info, aad, pt) in [
            (&b""[..], &b""[..], &b""[..]),
            (b"info", b"aad", b"hello"),
            (&[3u8; 300][..], &[4u8; 70][..], &[5u8; 5000][..]),
        ] {
            let ct = seal(&config, &kp.public, info, aad, pt)?;
            assert_eq!(ct.kem_output.as_slice().len(), N);
            assert_eq!(ct.ciphertext.as_slice().len(), pt.len() + 16);
            assert_eq!(open(&config, &ct, &kp.private, info, aad)?, pt);
        }
        // A fresh ephemeral key per seal.
        let a = seal(&config, &kp.public, b"", b"", b"x")?;
        let b = seal(&config, &kp.public, b"", b"", b"x")?;
        assert_ne!(a.kem_output, b.kem_output);
    }
    // The two AEADs differ: a ciphertext of one does not open as the other.
    let kp = key_pair(8);
    let ct = seal(&aes(), &kp.public, b"", b"", b"x")?;
    assert_eq!(
        open(&chacha(), &ct, &kp.private, b"", b""),
        Err(CryptoError::HpkeDecryptionError)
    );
    Ok(())
}

#[test]
fn tampering_or_wrong_inputs_fail_to_open() -> TestResult {
    for config in configs() {
        let kp = key_pair(9);
        let other = key_pair(10);
        let ct = seal(&config, &kp.public, b"info", b"aad", b"secret")?;
        let err = Err(CryptoError::HpkeDecryptionError);
        assert_eq!(open(&config, &ct, &other.private, b"info", b"aad"), err);
        assert_eq!(open(&config, &ct, &kp.private, b"other", b"aad"), err);
        assert_eq!(open(&config, &ct, &kp.private, b"info", b"other"), err);
        let body = ct.ciphertext.as_slice();
        for i in [0, body.len() - 1] {
            let mut tampered = body.to_vec();
            tampered[i] ^= 0x80;
            let bad = ciphertext(ct.kem_output.as_slice().to_vec(), tampered);
            assert_eq!(open(&config, &bad, &kp.private, b"info", b"aad"), err);
        }
        let truncated = ciphertext(ct.kem_output.as_slice().to_vec(), body[..15].to_vec());
        assert_eq!(open(&config, &truncated, &kp.private, b"info", b"aad"), err);
        // Another valid key as KEM output: decapsulates, then fails the tag.
        let swapped = ciphertext(other.public.clone(), body.to_vec());
        assert_eq!(open(&config, &swapped, &kp.private, b"info", b"aad"), err);
    }
    Ok(())
}

#[test]
fn exports_agree_between_sender_and_receiver() -> TestResult {
    for config in configs() {
        let kp = key_pair(11);
        for len in [0, 32, 100, 255 * N] {
            let (enc, sender) = setup_sender_and_export(&config, &kp.public, b"info", b"ctx", len)?;
            let receiver =
                setup_receiver_and_export(&config, &enc, &kp.private, b"info", b"ctx", len)?;
            assert_eq!(sender.len(), len);
            assert_eq!(&*sender, &*receiver);
            if len > 0 {
                let other_ctx =
                    setup_receiver_and_export(&config, &enc, &kp.private, b"info", b"xtc", len)?;
                assert_ne!(&*sender, &*other_ctx);
            }
        }
        assert_eq!(
            setup_sender_and_export(&config, &kp.public, b"", b"", 255 * N + 1).err(),
            Some(CryptoError::ExporterError)
        );
    }
    Ok(())
}

#[test]
fn derive_key_pair_is_deterministic() -> TestResult {
    for config in configs() {
        let a = derive_key_pair(&config, b"input key material")?;
        let b = derive_key_pair(&config, b"input key material")?;
        let c = derive_key_pair(&config, b"other key material")?;
        assert_eq!(*a.private, *b.private);
        assert_eq!(a.public, b.public);
        assert_ne!(a.public, c.public);
        assert_eq!((a.private.len(), a.public.len()), (N, N));
        assert_eq!(
            public_key(&DHKEM_X25519.private_key(&a.private)?)?,
            a.public
        );
        derive_key_pair(&config, b"")?;
    }
    // The KEM does not depend on the AEAD.
    assert_eq!(
        derive_key_pair(&aes(), b"ikm")?.public,
        derive_key_pair(&chacha(), b"ikm")?.public
    );
    Ok(())
}

#[test]
fn only_the_x25519_suites_of_mls_are_handled() {
    use HpkeAeadType as A;
    use HpkeKdfType as K;
    use HpkeKemType as M;
    for config in configs() {
        assert!(handles(&config));
    }
    let kp = key_pair(12);
    let ct = seal(&aes(), &kp.public, b"", b"", b"m").expect("valid key seals");
    for other in [
        HpkeConfig(M::DhKem25519, K::HkdfSha256, A::AesGcm256),
        HpkeConfig(M::DhKem25519, K::HkdfSha256, A::Export),
        HpkeConfig(M::DhKem25519, K::HkdfSha384, A::AesGcm128),
        HpkeConfig(M::DhKem25519, K::HkdfSha512, A::ChaCha20Poly1305),
        HpkeConfig(M::DhKem448, K::HkdfSha512, A::AesGcm256),
        HpkeConfig(M::XWingKemDraft6, K::HkdfSha256, A::AesGcm128),
        HpkeConfig(M::XWingKemDraft6, K::HkdfSha256, A::ChaCha20Poly1305),
    ] {
        assert!(!handles(&other), "{other:?}");
        let err = Some(CryptoError::UnsupportedCiphersuite);
        assert_eq!(derive_key_pair(&other, b"ikm").err(), err);
        assert_eq!(seal(&other, &kp.public, b"", b"", b"m").err(), err);
        assert_eq!(open(&other, &ct, &kp.private, b"", b"").err(), err);
    }
}

// --- Compatibility with libcrux (keys and ciphertexts made before) --------

/// Keys derived by openmls_libcrux_crypto, which did all X25519 HPKE before
/// this module, are the same bytes, and each side opens the other's
/// ciphertexts and agrees on exports, for both AEADs.
#[test]
fn interoperates_with_libcrux_hpke() -> TestResult {
    let lc = libcrux();
    for config in configs() {
        for ikm in [&b"shared ikm"[..], &[0u8; 32], &[0xff; 64], b""] {
            let ours = derive_key_pair(&config, ikm)?;
            let theirs = lc.derive_hpke_keypair(dup(&config), ikm)?;
            assert_eq!(*ours.private, *theirs.private);
            assert_eq!(ours.public, theirs.public);
        }
        // A key pair as a stored session holds it.
        let kp = lc.derive_hpke_keypair(dup(&config), b"stored session")?;

        let ct = lc.hpke_seal(dup(&config), &kp.public, b"i", b"a", b"to us")?;
        assert_eq!(open(&config, &ct, &kp.private, b"i", b"a")?, b"to us");
        let ct = seal(&config, &kp.public, b"i", b"a", b"to them")?;
        assert_eq!(
            lc.hpke_open(dup(&config), &ct, &kp.private, b"i", b"a")?,
            b"to them"
        );

        let (enc, sent) = setup_sender_and_export(&config, &kp.public, b"i", b"c", 32)?;
        let received =
            lc.hpke_setup_receiver_and_export(dup(&config), &enc, &kp.private, b"i", b"c", 32)?;
        assert_eq!(&*sent, &*received);
        let (enc, sent) =
            lc.hpke_setup_sender_and_export(dup(&config), &kp.public, b"i", b"c", 32)?;
        let received = setup_receiver_and_export(&config, &enc, &kp.private, b"i", b"c", 32)?;
        assert_eq!(&*sent, &*received);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random key material and messages: the same key pairs as libcrux,
    /// and libcrux opens what we seal.
    #[test]
    fn agrees_with_libcrux_on_random_input(
        ikm in proptest::collection::vec(any::<u8>(), 0..80),
        info in proptest::collection::vec(any::<u8>(), 0..40),
        aad in proptest::collection::vec(any::<u8>(), 0..40),
        pt in proptest::collection::vec(any::<u8>(), 0..200),
        chacha20 in any::<bool>(),
    ) {
        let config = if chacha20 { chacha() } else { aes() };
        let lc = libcrux();
        let ours = derive_key_pair(&config, &ikm).expect("derive");
        let theirs = lc.derive_hpke_keypair(dup(&config), &ikm).expect("libcrux derive");
        prop_assert_eq!(&*ours.private, &*theirs.private);
        prop_assert_eq!(&ours.public, &theirs.public);
        let ct = seal(&config, &ours.public, &info, &aad, &pt).expect("seal");
        prop_assert_eq!(lc.hpke_open(dup(&config), &ct, &theirs.private, &info, &aad).expect("open"), pt);
    }

    /// Peer input never panics: arbitrary KEM outputs and ciphertexts fail
    /// cleanly.
    #[test]
    fn open_of_arbitrary_input_fails_cleanly(
        enc in proptest::collection::vec(any::<u8>(), 0..48),
        ct in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let kp = key_pair(13);
        let input = ciphertext(enc, ct);
        for config in configs() {
            prop_assert!(open(&config, &input, &kp.private, b"", b"").is_err());
        }
    }
}
