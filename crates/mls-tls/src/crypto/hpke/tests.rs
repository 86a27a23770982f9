//! Tests of the DHKEM(P-384) suite (MLS 0x0007).

use super::*;
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `Nsk`, `Npk` (= `Nenc`) of DHKEM(P-384) and `Nh` of HKDF-SHA384.
const N_SK: usize = 48;
const N_PK: usize = 97;
const N_H: usize = 48;

const SUITE: &Suite = &P384_SHA384_AES256GCM;

fn private_key(sk: &[u8]) -> Result<agreement::PrivateKey, CryptoError> {
    DHKEM_P384.private_key(sk)
}

fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Secret {
    awslc::hkdf_extract(HashType::Sha2_384, salt, ikm)
}

fn hkdf_expand(prk: &[u8], info: &[u8], len: usize) -> Result<Secret, CryptoError> {
    awslc::hkdf_expand(HashType::Sha2_384, prk, info, len)
}

/// Suite 0x0007's HPKE configuration.
fn config() -> HpkeConfig {
    HpkeConfig(
        HpkeKemType::DhKemP384,
        HpkeKdfType::HkdfSha384,
        HpkeAeadType::AesGcm256,
    )
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test constant is hex")
}

/// A key pair derived from a fixed seed.
fn key_pair(seed: u8) -> HpkeKeyPair {
    derive_key_pair(&config(), &[seed; 32]).expect("derive")
}

fn ciphertext(kem_output: Vec<u8>, ct: Vec<u8>) -> HpkeCiphertext {
    HpkeCiphertext {
        kem_output: kem_output.into(),
        ciphertext: ct.into(),
    }
}

// --- Known answers -------------------------------------------------------

/// MLS interop vector `crypto-basics.json`, cipher_suite 7,
/// `encrypt_with_label` (github.com/mlswg/mls-implementations,
/// test-vectors/crypto-basics.json). `priv` and `pub` there carry their
/// MLS length prefixes (0x30, 0x4061), dropped here.
mod encrypt_with_label {
    pub(super) const PRIV: &str = "701cc194f8e54bd2e7ed9c0830bf49b6d6a450421979834cb5c5aa9cc29a09304ead2961194ea562c8fd08df5f1b8f32";
    pub(super) const PUB: &str = "049dfc864068173aadd25e1d8eebf28c715d4d19efe32ed48781ec1b780224afc177cff3c90a8a0cd78032fb065dc0a6718734e54e44a98ecd842c3c1c2f4f14dd27e498d7b9a7a173e1cc939d8d99335c636e946c3284d4014169d7023d9eda5e";
    pub(super) const CONTEXT: &str = "1c1890a1518f302b8d0f7a615cf374ac6e2b28ba4265df4550d82d38ef04306598113f896fce27c81fe17a608362be17";
    pub(super) const PLAINTEXT: &str = "99c1d1922533d08a50aa1376f402382bef638f7f04c5b37b1087a2d306f643d506b43df339be90cd0e45481280c7705e";
    pub(super) const KEM_OUTPUT: &str = "04d3c8e595adc2279c2f06b151f3417241af6ffea5710791ab49fbb05bbc9acd65a1df1e88116507ada4d17f1e0b222f2dcdc23af35516a99ecec6ad434014ea5be81d86f80370fa69f1e13f5d8873edc4622ec330c2c68b1fd900cac9375a8695";
    pub(super) const CIPHERTEXT: &str = "f12117c0e29fa02f672b109eb62b5aafca95ad480c77b13e26f515ee33116ca1aaaadfa2b5be6e7fd319392900ae8b835d4bb51e9dea3bedc30f984171410827";
}

/// RFC 9420 `EncryptContext` for label "EncryptWithLabel": the HPKE info.
pub(super) fn encrypt_context(context: &[u8]) -> Vec<u8> {
    let label = b"MLS 1.0 EncryptWithLabel";
    let mut info = vec![u8::try_from(label.len()).expect("short")];
    info.extend_from_slice(label);
    info.push(u8::try_from(context.len()).expect("short"));
    info.extend_from_slice(context);
    info
}

#[test]
fn mls_vector_encrypt_with_label_opens() -> TestResult {
    use encrypt_with_label as v;
    let sk = unhex(v::PRIV);
    assert_eq!(public_key(&private_key(&sk)?)?, unhex(v::PUB));
    let info = encrypt_context(&unhex(v::CONTEXT));
    let input = ciphertext(unhex(v::KEM_OUTPUT), unhex(v::CIPHERTEXT));
    assert_eq!(
        open(&config(), &input, &sk, &info, b"")?,
        unhex(v::PLAINTEXT)
    );

    // One flipped bit anywhere fails.
    let mut ct = unhex(v::CIPHERTEXT);
    ct[0] ^= 1;
    let bad = ciphertext(unhex(v::KEM_OUTPUT), ct);
    assert_eq!(
        open(&config(), &bad, &sk, &info, b""),
        Err(CryptoError::HpkeDecryptionError)
    );
    Ok(())
}

/// MLS interop vector `treekem.json` (same repository), the first
/// cipher_suite 7 entry: leaf 0's `encryption_priv`, the `path_secret` of
/// node 1, and the two public keys the entry's `ratchet_tree` holds for leaf
/// 0 and parent node 1. A node's key pair is
/// `DeriveKeyPair(DeriveSecret(path_secret, "node"))` (RFC 9420 7.4), so this
/// checks our DeriveKeyPair for P-384.
mod treekem {
    pub(super) const LEAF0_PRIV: &str = "b2aa9c4d8ed2792c6b40473df601d507249a375c57410f642f098f83e7e907dec526e9fe70bedff41f30bbf08f0b444f";
    pub(super) const LEAF0_PUB: &str = "0425bd7d79f3e532132ee6f24d84343c221b27b643e8434537c12529fa167edca233b900ed861292b8e42b80d105367ca9be461b347cd60a5f4350c881c63002664e0fbe5d8863c6dd1881bf07c6febe359c546c192bf0e7ac48fb6f4c9ee3b897";
    pub(super) const NODE1_PATH_SECRET: &str = "79735f3e4d88567e138fe9e6ff163fbb3b0cd2e85654315bdb149682b766a6b9d681c7d0eaeefa5c88c5b7d7f89ca038";
    pub(super) const NODE1_PUB: &str = "0476542ef2c4efb2832708367b91f1c4f2dc8103cf4a79a71c50def3d874d781969eae11f187d416abb8254f52a5ed9ba5c13b3b9a25949d860ca97a7d65dcca9a45af7ac5c5d172d64a2443ea66482cccf69aba56d2ab7823c84ac0186baf439b";
}

/// RFC 9420 `DeriveSecret(secret, label)` for SHA-384:
/// `ExpandWithLabel(secret, label, "", 48)`.
fn mls_derive_secret(secret: &[u8], label: &[u8]) -> Result<Secret, CryptoError> {
    let full = [b"MLS 1.0 ", label].concat();
    let mut kdf_label = 48u16.to_be_bytes().to_vec();
    kdf_label.push(u8::try_from(full.len()).expect("short"));
    kdf_label.extend_from_slice(&full);
    kdf_label.push(0); // empty context
    hkdf_expand(secret, &kdf_label, 48)
}

#[test]
fn mls_vector_treekem_node_key_derives() -> TestResult {
    use treekem as v;
    let leaf_sk = private_key(&unhex(v::LEAF0_PRIV))?;
    assert_eq!(public_key(&leaf_sk)?, unhex(v::LEAF0_PUB));

    let node_secret = mls_derive_secret(&unhex(v::NODE1_PATH_SECRET), b"node")?;
    let kp = derive_key_pair(&config(), &node_secret)?;
    assert_eq!(kp.public, unhex(v::NODE1_PUB));
    assert_eq!(kp.private.len(), N_SK);
    assert_eq!(public_key(&private_key(&kp.private)?)?, kp.public);
    Ok(())
}

/// Our HKDF (built on HMAC) against aws-lc's own HKDF-SHA384.
#[test]
fn hkdf_agrees_with_aws_lc_hkdf() -> TestResult {
    use aws_lc_rs::hkdf;
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    for (salt, ikm, info) in [
        (&b""[..], &b"ikm"[..], &b""[..]),
        (b"salt", &[7u8; 100], b"some info"),
    ] {
        let prk = hkdf_extract(salt, ikm);
        for len in [0, 1, 12, 47, 48, 49, 97, 255 * N_H] {
            let ours = hkdf_expand(&prk, info, len)?;
            let mut theirs = vec![0u8; len];
            hkdf::Salt::new(hkdf::HKDF_SHA384, salt)
                .extract(ikm)
                .expand(&[info], Len(len))
                .and_then(|okm| okm.fill(&mut theirs))
                .map_err(|_| "aws-lc hkdf failed")?;
            assert_eq!(*ours, theirs, "len {len}");
        }
    }
    assert!(hkdf_expand(&[0; 48], b"", 255 * N_H + 1).is_err());
    Ok(())
}

/// `DeriveKeyPair` relies on aws-lc rejecting a scalar of 0 or >= the group
/// order: check that it does, and accepts the ends of the valid range.
#[test]
fn aws_lc_rejects_out_of_range_scalars() {
    const ORDER: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";
    let order = unhex(ORDER);
    let mut order_minus_1 = order.clone();
    order_minus_1[47] -= 1;
    let mut order_plus_1 = order.clone();
    order_plus_1[47] += 1;
    let mut one = vec![0u8; 48];
    one[47] = 1;
    for bad in [vec![0u8; 48], order, order_plus_1, vec![0xff; 48]] {
        assert!(private_key(&bad).is_err(), "{}", hex::encode(&bad));
    }
    for good in [one, order_minus_1] {
        assert!(private_key(&good).is_ok(), "{}", hex::encode(&good));
    }
    for bad_len in [0, 47, 49] {
        assert!(private_key(&vec![1u8; bad_len]).is_err());
    }
}

// --- Behaviour -----------------------------------------------------------

#[test]
fn seal_open_round_trip() -> TestResult {
    let kp = key_pair(1);
    for (info, aad, pt) in [
        (&b""[..], &b""[..], &b""[..]),
        (b"info", b"aad", b"hello"),
        (&[3u8; 300][..], &[4u8; 70][..], &[5u8; 5000][..]),
    ] {
        let ct = seal(&config(), &kp.public, info, aad, pt)?;
        assert_eq!(ct.kem_output.as_slice().len(), N_PK);
        assert_eq!(ct.ciphertext.as_slice().len(), pt.len() + 16);
        assert_eq!(open(&config(), &ct, &kp.private, info, aad)?, pt);
    }
    // A fresh ephemeral key per seal.
    let a = seal(&config(), &kp.public, b"", b"", b"x")?;
    let b = seal(&config(), &kp.public, b"", b"", b"x")?;
    assert_ne!(a.kem_output, b.kem_output);
    Ok(())
}

#[test]
fn seal_with_fixed_ephemeral_is_deterministic_and_opens() -> TestResult {
    let kp = key_pair(2);
    let a = seal_derand(SUITE, &kp.public, b"i", b"a", b"pt", &[9; 48])?;
    let b = seal_derand(SUITE, &kp.public, b"i", b"a", b"pt", &[9; 48])?;
    assert_eq!(a, b);
    assert_eq!(open(&config(), &a, &kp.private, b"i", b"a")?, b"pt");
    Ok(())
}

#[test]
fn tampering_or_wrong_inputs_fail_to_open() -> TestResult {
    let kp = key_pair(3);
    let other = key_pair(4);
    let ct = seal(&config(), &kp.public, b"info", b"aad", b"secret")?;
    let err = Err(CryptoError::HpkeDecryptionError);
    assert_eq!(open(&config(), &ct, &other.private, b"info", b"aad"), err);
    assert_eq!(open(&config(), &ct, &kp.private, b"other", b"aad"), err);
    assert_eq!(open(&config(), &ct, &kp.private, b"info", b"other"), err);
    let body = ct.ciphertext.as_slice();
    for i in [0, body.len() - 1] {
        let mut tampered = body.to_vec();
        tampered[i] ^= 0x80;
        let bad = ciphertext(ct.kem_output.as_slice().to_vec(), tampered);
        assert_eq!(open(&config(), &bad, &kp.private, b"info", b"aad"), err);
    }
    let truncated = ciphertext(ct.kem_output.as_slice().to_vec(), body[..15].to_vec());
    assert_eq!(
        open(&config(), &truncated, &kp.private, b"info", b"aad"),
        err
    );
    // Another valid point as KEM output: decapsulates, then fails the tag.
    let swapped = ciphertext(other.public.clone(), body.to_vec());
    assert_eq!(open(&config(), &swapped, &kp.private, b"info", b"aad"), err);
    Ok(())
}

/// Encodings of "a P-384 point" that RFC 9180 does not allow or that are
/// not on the curve, derived from the valid `pk`.
fn malformed_points(pk: &[u8]) -> Vec<Vec<u8>> {
    let mut off_curve = pk.to_vec();
    off_curve[96] ^= 1;
    let mut compressed = vec![0x02 | (pk[96] & 1)];
    compressed.extend_from_slice(&pk[1..49]);
    let mut hybrid = pk.to_vec();
    hybrid[0] = 0x06 | (pk[96] & 1);
    let mut long = pk.to_vec();
    long.push(0);
    vec![
        vec![],
        vec![0x00],
        vec![0x04],
        pk[..96].to_vec(),
        long,
        off_curve,
        compressed,
        hybrid,
        vec![0x04; N_PK],
    ]
}

#[test]
fn malformed_kem_output_is_rejected() -> TestResult {
    let kp = key_pair(5);
    let ct = seal(&config(), &kp.public, b"", b"", b"m")?;
    let body = ct.ciphertext.as_slice().to_vec();
    for enc in malformed_points(ct.kem_output.as_slice()) {
        let bad = ciphertext(enc.clone(), body.clone());
        assert_eq!(
            open(&config(), &bad, &kp.private, b"", b""),
            Err(CryptoError::HpkeDecryptionError),
            "{}",
            hex::encode(&enc)
        );
        assert_eq!(
            setup_receiver_and_export(&config(), &enc, &kp.private, b"", b"", 32).err(),
            Some(CryptoError::ReceiverSetupError)
        );
    }
    Ok(())
}

#[test]
fn malformed_recipient_key_is_rejected() {
    let kp = key_pair(6);
    for pk in malformed_points(&kp.public) {
        assert!(seal(&config(), &pk, b"", b"", b"m").is_err());
        assert_eq!(
            setup_sender_and_export(&config(), &pk, b"", b"", 32).err(),
            Some(CryptoError::SenderSetupError)
        );
    }
    let ct = seal(&config(), &kp.public, b"", b"", b"m").expect("valid key seals");
    for sk in [vec![], vec![0u8; 48], vec![0xff; 48], vec![1u8; 47]] {
        assert!(open(&config(), &ct, &sk, b"", b"").is_err());
    }
}

#[test]
fn exports_agree_between_sender_and_receiver() -> TestResult {
    let kp = key_pair(7);
    for len in [0, 32, 48, 100, 255 * N_H] {
        let (enc, sender) = setup_sender_and_export(&config(), &kp.public, b"info", b"ctx", len)?;
        let receiver =
            setup_receiver_and_export(&config(), &enc, &kp.private, b"info", b"ctx", len)?;
        assert_eq!(sender.len(), len);
        assert_eq!(&*sender, &*receiver);
        if len > 0 {
            let other_ctx =
                setup_receiver_and_export(&config(), &enc, &kp.private, b"info", b"xtc", len)?;
            assert_ne!(&*sender, &*other_ctx);
            let other_info =
                setup_receiver_and_export(&config(), &enc, &kp.private, b"ofni", b"ctx", len)?;
            assert_ne!(&*sender, &*other_info);
        }
    }
    assert_eq!(
        setup_sender_and_export(&config(), &kp.public, b"", b"", 255 * N_H + 1).err(),
        Some(CryptoError::ExporterError)
    );
    Ok(())
}

#[test]
fn derive_key_pair_is_deterministic() -> TestResult {
    let a = derive_key_pair(&config(), b"input key material")?;
    let b = derive_key_pair(&config(), b"input key material")?;
    let c = derive_key_pair(&config(), b"other key material")?;
    assert_eq!(*a.private, *b.private);
    assert_eq!(a.public, b.public);
    assert_ne!(a.public, c.public);
    assert_eq!(a.private.len(), N_SK);
    assert_eq!(a.public.len(), N_PK);
    assert_eq!(a.public[0], 0x04);
    // The empty IKM is allowed by the trait (openmls never passes one).
    derive_key_pair(&config(), b"")?;
    Ok(())
}

#[test]
fn other_hpke_configs_are_refused() {
    use HpkeAeadType as A;
    use HpkeKdfType as K;
    use HpkeKemType as M;
    let kp = key_pair(8);
    let ct = seal(&config(), &kp.public, b"", b"", b"m").expect("valid key seals");
    for other in [
        HpkeConfig(M::DhKemP256, K::HkdfSha256, A::AesGcm128),
        HpkeConfig(M::DhKemP384, K::HkdfSha256, A::AesGcm256),
        HpkeConfig(M::DhKemP384, K::HkdfSha384, A::AesGcm128),
        HpkeConfig(M::DhKemP384, K::HkdfSha384, A::ChaCha20Poly1305),
    ] {
        let err = Some(CryptoError::UnsupportedCiphersuite);
        assert_eq!(derive_key_pair(&other, b"ikm").err(), err);
        assert_eq!(seal(&other, &kp.public, b"", b"", b"m").err(), err);
        assert_eq!(open(&other, &ct, &kp.private, b"", b"").err(), err);
        assert_eq!(
            setup_sender_and_export(&other, &kp.public, b"", b"", 8).err(),
            err
        );
        assert_eq!(
            setup_receiver_and_export(&other, ct.kem_output.as_slice(), &kp.private, b"", b"", 8)
                .err(),
            err
        );
    }
    assert!(handles(&HpkeConfig(
        M::DhKemP384,
        K::HkdfSha256,
        A::AesGcm128
    )));
    assert!(!handles(&HpkeConfig(
        M::DhKemP256,
        K::HkdfSha384,
        A::AesGcm256
    )));
}

/// An independent implementation as a second opinion: openmls_rust_crypto
/// 0.6 reaches DHKEM(P-384) through hpke-rs-rust-crypto 0.7 (RustCrypto's
/// `p384`), although its `supports()` does not list suite 0x0007. Both must
/// derive the same keys and open each other's ciphertexts and exports.
#[test]
fn interoperates_with_rust_crypto_hpke() -> TestResult {
    use openmls_traits::crypto::OpenMlsCrypto;
    let rc = openmls_rust_crypto::RustCrypto::default();
    let ours = derive_key_pair(&config(), b"shared ikm")?;
    let theirs = rc.derive_hpke_keypair(config(), b"shared ikm")?;
    assert_eq!(*ours.private, *theirs.private);
    assert_eq!(ours.public, theirs.public);

    let ct = rc.hpke_seal(config(), &ours.public, b"i", b"a", b"to us")?;
    assert_eq!(open(&config(), &ct, &ours.private, b"i", b"a")?, b"to us");
    let ct = seal(&config(), &ours.public, b"i", b"a", b"to them")?;
    assert_eq!(
        rc.hpke_open(config(), &ct, &ours.private, b"i", b"a")?,
        b"to them"
    );

    let (enc, sent) = setup_sender_and_export(&config(), &ours.public, b"i", b"c", 48)?;
    let received =
        rc.hpke_setup_receiver_and_export(config(), &enc, &ours.private, b"i", b"c", 48)?;
    assert_eq!(&*sent, &*received);
    Ok(())
}

proptest! {
    /// Peer input never panics: arbitrary KEM outputs and ciphertexts fail
    /// cleanly.
    #[test]
    fn open_of_arbitrary_input_fails_cleanly(
        enc in proptest::collection::vec(any::<u8>(), 0..120),
        ct in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let kp = key_pair(9);
        let input = ciphertext(enc, ct);
        prop_assert!(open(&config(), &input, &kp.private, b"", b"").is_err());
    }
}
