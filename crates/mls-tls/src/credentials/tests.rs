//! Tests of identities and verifiers.

use super::identity::IDENTITY_MAGIC;
use super::*;
use crate::crypto::CipherSuite;
use std::time::SystemTime;

#[test]
fn identity_bytes_round_trip_and_reject_damage() {
    for suite in [
        CipherSuite::DEFAULT,
        CipherSuite::MlKem768Aes256GcmSha384MlDsa65,
    ] {
        let id = Identity::generate("node-1", suite).unwrap();
        let bytes = id.to_bytes().unwrap();
        let back = Identity::from_bytes(&bytes).unwrap();
        assert_eq!(back.public_key(), id.public_key());
        assert_eq!(back.name(), b"node-1");
        assert_eq!(back.suite(), suite);
        for cut in [0, 5, IDENTITY_MAGIC.len() + 3, bytes.len() - 1] {
            assert!(Identity::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.to_vec();
        extra.push(0);
        assert!(Identity::from_bytes(&extra).is_err());
    }
}

/// Identity files as written before signing moved to aws-lc-rs (fixed
/// keys: RFC 8032 test 1, RFC 6979 A.2.5) still load, sign for their
/// public key, and are written back byte for byte.
#[test]
fn identity_files_from_before_awslc_still_load() {
    use openmls_traits::signatures::Signer as _;
    use openmls_traits::types::SignatureScheme;
    let ed_pk = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let p256_pk = "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6\
                   7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
    let files = [
        (
            // suite 0x0001, name "alice", key pair: seed<V> pk<V> ed25519
            "0001 0005 616c696365 \
             20 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60 \
             20 d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a 0807",
            ed_pk,
            SignatureScheme::ED25519,
        ),
        (
            // suite 0x0002, name "alice", key pair: scalar<V> point<V> p256
            "0002 0005 616c696365 \
             20 c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721 \
             4041 0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6\
             7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299 0403",
            p256_pk,
            SignatureScheme::ECDSA_SECP256R1_SHA256,
        ),
    ];
    for (body, pk, scheme) in files {
        let body = hex::decode(body.replace(' ', "")).unwrap();
        let file = [IDENTITY_MAGIC, &body].concat();
        let id = Identity::from_bytes(&file).unwrap();
        assert_eq!(id.public_key(), hex::decode(pk).unwrap());
        assert_eq!(id.name(), b"alice");
        assert_eq!(*id.to_bytes().unwrap(), file);
        let sig = id.signer().sign(b"msg").unwrap();
        assert_eq!(
            crate::crypto::awslc::verify_signature(scheme, b"msg", id.public_key(), &sig),
            Some(Ok(()))
        );
    }
}

#[test]
fn identity_with_mismatched_key_pair_is_refused() {
    let a = Identity::generate("a", CipherSuite::DEFAULT).unwrap();
    let b = Identity::generate("b", CipherSuite::DEFAULT).unwrap();
    let mut file = a.to_bytes().unwrap().to_vec();
    // The key pair ends with pk<V> (0x20 + 32 bytes) and the scheme (2).
    let at = file.len() - 34;
    file[at..at + 32].copy_from_slice(b.public_key());
    let err = Identity::from_bytes(&file).unwrap_err();
    assert!(
        err.to_string().contains("does not match its public key"),
        "{err}"
    );
}

#[test]
fn pinned_keys_refuse_unknown_keys_and_identity_changes() {
    let peer = |name: &[u8], key: &[u8]| PeerIdentity {
        credential: Vec::new(),
        name: name.to_vec(),
        signature_key: key.to_vec(),
        authenticated: false,
    };
    let pins = PinnedKeys::new([vec![1], vec![2]]);
    let now = SystemTime::UNIX_EPOCH;
    assert!(pins
        .verify(&peer(b"a", &[1]), VerifyContext::KeyPackage, now)
        .is_ok());
    assert_eq!(
        pins.verify(&peer(b"a", &[3]), VerifyContext::Welcome, now),
        Err(PeerRejected::new(
            "the peer's key 03\u{2026} (name 'a') is not in the pinned keys"
        ))
    );
    let previous = peer(b"a", &[1]);
    let update = |p| VerifyContext::UpdatePath { previous: p };
    assert!(pins
        .verify(&peer(b"a", &[2]), update(&previous), now)
        .is_ok());
    assert!(pins
        .verify(&peer(b"b", &[1]), update(&previous), now)
        .is_err());
    assert!(pins
        .verify(&peer(b"a", &[1]), VerifyContext::Recheck, now)
        .is_ok());
}
