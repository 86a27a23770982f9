//! Checks the MLS-TLS test vectors (docs/test-vectors/, format in
//! docs/INTEROP.md) with code that shares nothing with their generator:
//! its own record framing, HKDF-Expand-Label and record decryption (on
//! aws-lc-rs), its own handshake framing parser, and OpenMLS for the MLS
//! messages, including a passive copy of the client that joins from the
//! Welcome with the published private keys and follows the server's
//! commit. The committed files are checked, and freshly generated ones,
//! so that generator and format cannot drift apart.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use aws_lc_rs::hkdf;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_libcrux_crypto::Provider;
use openmls_traits::storage::{traits, Entity, StorageProvider as _, CURRENT_VERSION};
use openmls_traits::types::HpkePrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const CLIENT_LABEL: &str = "MLS-TLS c ap traffic";
const SERVER_LABEL: &str = "MLS-TLS s ap traffic";

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    unhex(v.as_str().expect("a hex string"))
}

/// RFC 8446 7.1 HKDF-Expand-Label with SHA-256 (both published suites).
fn expand_label(secret: &[u8], label: &str, len: usize) -> Vec<u8> {
    let full = format!("tls13 {label}");
    let mut info = (len as u16).to_be_bytes().to_vec();
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let mut out = vec![0; len];
    hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret)
        .expand(&[&info], Len(len))
        .unwrap()
        .fill(&mut out)
        .unwrap();
    out
}

/// Per epoch and direction (true: client to server): key and IV.
type Keys = BTreeMap<(u64, bool), (Vec<u8>, Vec<u8>)>;

fn check_epochs(v: &Value) -> Keys {
    let mut keys = Keys::new();
    for e in v["epochs"].as_array().expect("epochs") {
        let epoch = e["epoch"].as_u64().unwrap();
        for (to_server, who) in [(true, "client"), (false, "server")] {
            let secret = bytes(&e[format!("{who}_traffic_secret")]);
            assert_eq!(secret.len(), 32, "SHA-256 secret");
            let key = expand_label(&secret, "key", 16);
            let iv = expand_label(&secret, "iv", 12);
            assert_eq!(
                key,
                bytes(&e[format!("{who}_key")]),
                "epoch {epoch} {who} key"
            );
            assert_eq!(iv, bytes(&e[format!("{who}_iv")]), "epoch {epoch} {who} iv");
            keys.insert((epoch, to_server), (key, iv));
        }
    }
    keys
}

/// Opens one TLS 1.3 record (RFC 8446 5.2): nonce = IV xor sequence,
/// additional data = the header; returns (inner type, content).
fn open(record: &[u8], key: &[u8], iv: &[u8], seq: u64) -> (u8, Vec<u8>) {
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(iv);
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).unwrap());
    let mut body = record[5..].to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&record[..5]),
            &mut body,
        )
        .expect("the record opens under its epoch's keys");
    let end = plain.iter().rposition(|b| *b != 0).expect("an inner type");
    (plain[end], plain[..end].to_vec())
}

/// Checks every record of a connection; returns the handshake bytes each
/// direction carried, in order.
fn check_records(conn: &Value, keys: &Keys) -> BTreeMap<bool, Vec<(usize, Vec<u8>)>> {
    let mut next_seq: BTreeMap<(bool, u64), u64> = BTreeMap::new();
    let mut handshake: BTreeMap<bool, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
    for r in conn["records"].as_array().unwrap() {
        let to_server = r["direction"] == "client_to_server";
        let record = bytes(&r["record"]);
        assert_eq!(&record[1..3], &[3, 3], "legacy_record_version");
        let len = u16::from_be_bytes([record[3], record[4]]) as usize;
        assert_eq!(len, record.len() - 5, "record length");
        let content = bytes(&r["content"]);
        let typ = r["content_type"].as_u64().unwrap() as u8;
        match r["epoch"].as_u64() {
            None => {
                assert!(
                    matches!(record[0], 21 | 22),
                    "a plaintext record is an alert or handshake"
                );
                assert_eq!(record[0], typ);
                assert_eq!(&record[5..], &content[..]);
            }
            Some(epoch) => {
                assert_eq!(record[0], 23, "outer type application_data");
                let seq = r["sequence"].as_u64().unwrap();
                let expected = next_seq.entry((to_server, epoch)).or_insert(0);
                assert_eq!(seq, *expected, "sequence numbers count from 0 per key");
                *expected += 1;
                let (key, iv) = &keys[&(epoch, to_server)];
                let (inner, plain) = open(&record, key, iv, seq);
                assert_eq!((inner, &plain), (typ, &content), "record {}", r["index"]);
            }
        }
        if typ == 22 {
            let index = r["index"].as_u64().unwrap() as usize;
            handshake
                .entry(to_server)
                .or_default()
                .push((index, content));
        }
    }
    handshake
}

/// Splits handshake bytes into messages: `msg_type` (1 byte), a 24-bit
/// length, the body (draft-kohbrok-mls-tls `MlsTlsHandshake`).
fn parse_handshakes(chunks: &[(usize, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
    let all: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
    let mut out = Vec::new();
    let mut rest = &all[..];
    while !rest.is_empty() {
        let len = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
        out.push((rest[0], rest[4..4 + len].to_vec()));
        rest = &rest[4 + len..];
    }
    out
}

/// OpenMLS's KeyPackageBundle, as its storage keeps it: how a passive
/// client gets the published private keys into OpenMLS.
#[derive(Serialize, Deserialize)]
struct Bundle {
    key_package: KeyPackage,
    private_init_key: HpkePrivateKey,
    private_encryption_key: EncryptionKey,
}

#[derive(Serialize, Deserialize)]
struct EncryptionKey {
    key: HpkePrivateKey,
}

impl Entity<CURRENT_VERSION> for Bundle {}
impl traits::KeyPackage<CURRENT_VERSION> for Bundle {}

fn exported(group: &MlsGroup, provider: &Provider, label: &str, ctx: &[u8], len: usize) -> Vec<u8> {
    group
        .export_secret(provider.crypto(), label, ctx, len)
        .unwrap()
}

/// Compares the passive client's exporter outputs with the epoch's row.
fn check_exports(group: &MlsGroup, provider: &Provider, v: &Value) {
    let epoch = group.epoch().as_u64();
    let row = v["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["epoch"].as_u64() == Some(epoch))
        .expect("a row for the passive client's epoch");
    assert_eq!(
        exported(group, provider, CLIENT_LABEL, &[], 32),
        bytes(&row["client_traffic_secret"]),
        "epoch {epoch}: client traffic secret"
    );
    assert_eq!(
        exported(group, provider, SERVER_LABEL, &[], 32),
        bytes(&row["server_traffic_secret"]),
        "epoch {epoch}: server traffic secret"
    );
    let x = &row["exporter"];
    let label = x["label"].as_str().unwrap();
    let len = x["length"].as_u64().unwrap() as usize;
    assert_eq!(
        exported(group, provider, label, &bytes(&x["context"]), len),
        bytes(&x["value"]),
        "epoch {epoch}: exporter"
    );
}

fn verify(v: &Value) {
    assert_eq!(v["format"], "mls-tls-test-vectors/1");
    let code = v["cipher_suite"].as_u64().unwrap();
    assert!(code == 0x0001 || code == 0x004F, "suite {code:#06x}");
    let suite = Ciphersuite::try_from(code as u16).unwrap();
    let group_id = bytes(&v["group_id"]);
    let keys = check_epochs(v);
    let provider = Provider::default();
    let mut passive: Option<MlsGroup> = None;
    let mut followed = 0;
    let connections = v["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 2);
    for (n, conn) in connections.iter().enumerate() {
        let handshake = check_records(conn, &keys);
        let listed = conn["handshake_messages"].as_array().unwrap();
        for to_server in [true, false] {
            let direction = if to_server {
                "client_to_server"
            } else {
                "server_to_client"
            };
            let parsed = parse_handshakes(handshake.get(&to_server).map_or(&[][..], |h| &h[..]));
            let listed: Vec<&Value> = listed
                .iter()
                .filter(|m| m["direction"] == direction)
                .collect();
            assert_eq!(parsed.len(), listed.len(), "connection {n} {direction}");
            for ((typ, body), m) in parsed.iter().zip(listed) {
                assert_eq!(u64::from(*typ), m["msg_type"].as_u64().unwrap());
                let mut framed = vec![*typ];
                framed.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
                framed.extend_from_slice(body);
                assert_eq!(framed, bytes(&m["message"]));
                let msg = MlsMessageIn::tls_deserialize_exact(body.as_slice()).unwrap();
                match (*typ, msg.extract()) {
                    (1, MlsMessageBodyIn::KeyPackage(kp)) => {
                        // The passive client: the published private keys
                        // with this KeyPackage, as OpenMLS stores a bundle.
                        let kp = kp
                            .validate(provider.crypto(), ProtocolVersion::Mls10)
                            .unwrap();
                        assert_eq!(kp.ciphersuite(), suite);
                        let bundle = Bundle {
                            key_package: kp.clone(),
                            private_init_key: bytes(&v["client"]["init_priv"]).into(),
                            private_encryption_key: EncryptionKey {
                                key: bytes(&v["client"]["encryption_priv"]).into(),
                            },
                        };
                        let hash_ref = kp.hash_ref(provider.crypto()).unwrap();
                        provider
                            .storage()
                            .write_key_package(&hash_ref, &bundle)
                            .unwrap();
                    }
                    (2, MlsMessageBodyIn::Welcome(welcome)) => {
                        let config = MlsGroupJoinConfig::builder()
                            .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
                            .use_ratchet_tree_extension(true)
                            .build();
                        let group =
                            StagedWelcome::new_from_welcome(&provider, &config, welcome, None)
                                .expect("the passive client joins with the published keys")
                                .into_group(&provider)
                                .unwrap();
                        assert_eq!(group.group_id().as_slice(), &group_id[..]);
                        assert_eq!(group.members().count(), 2);
                        check_exports(&group, &provider, v);
                        followed += 1;
                        passive = Some(group);
                    }
                    (3..=6, MlsMessageBodyIn::PrivateMessage(pm)) => {
                        let pm = ProtocolMessage::from(pm);
                        assert_eq!(pm.group_id().as_slice(), &group_id[..]);
                        let commit = *typ != 4;
                        let expected = if commit {
                            ContentType::Commit
                        } else {
                            ContentType::Application
                        };
                        assert_eq!(pm.content_type(), expected);
                        // The passive client follows the server's commits
                        // while it is at their epoch; it cannot process the
                        // client's own (see docs/INTEROP.md).
                        if let Some(group) = passive
                            .as_mut()
                            .filter(|g| !to_server && commit && g.epoch() == pm.epoch())
                        {
                            let processed = group.process_message(&provider, pm).unwrap();
                            let ProcessedMessageContent::StagedCommitMessage(staged) =
                                processed.into_content()
                            else {
                                panic!("a commit");
                            };
                            group.merge_staged_commit(&provider, *staged).unwrap();
                            check_exports(group, &provider, v);
                            followed += 1;
                        }
                    }
                    (t, _) => panic!("message type {t} with another MLS body"),
                }
            }
        }
    }
    // The Welcome's epoch and the server's ConnectionUpdate.
    assert!(
        followed >= 2,
        "the passive client followed {followed} epochs"
    );
}

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../../docs/test-vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn committed_vectors_verify_0x0001() {
    verify(&load("mls-tls-0x0001.json"));
}

#[test]
fn committed_vectors_verify_0x004f() {
    verify(&load("mls-tls-0x004f.json"));
}

#[test]
fn fresh_vectors_verify() {
    for code in [0x0001, 0x004F] {
        let suite = mls_tls::CipherSuite::from_code_point(code).unwrap();
        let text = mls_tls::bench_support::vectors::generate(suite).unwrap();
        verify(&serde_json::from_str(&text).unwrap());
    }
}

/// The checks can fail: a flipped bit in a record, a wrong key or a
/// wrong private key is caught.
#[test]
fn damaged_vectors_fail() {
    let good = load("mls-tls-0x0001.json");
    type Damage = fn(&mut Value);
    let damage: [(&str, Damage); 3] = [
        ("record", |v| {
            let r = &mut v["connections"][0]["records"][5]["record"];
            let mut s = r.as_str().unwrap().to_owned();
            let last = s.pop().unwrap();
            s.push(if last == '0' { '1' } else { '0' });
            *r = Value::String(s);
        }),
        ("key", |v| {
            v["epochs"][1]["client_key"] = Value::String("00".repeat(16))
        }),
        ("init key", |v| {
            let k = v["client"]["init_priv"].as_str().unwrap().to_owned();
            v["client"]["init_priv"] = Value::String(format!("{}{}", &k[2..], &k[..2]));
        }),
    ];
    for (what, f) in damage {
        let mut v = good.clone();
        f(&mut v);
        let caught = std::panic::catch_unwind(|| verify(&v)).is_err();
        assert!(caught, "damaged {what} not caught");
    }
}
