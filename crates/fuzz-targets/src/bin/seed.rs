//! Writes the fixtures (`crates/fuzz-targets/fixtures/`) and the seed
//! corpora (`fuzz/corpus/<target>/`) from real traffic:
//!
//! ```text
//! cargo run -p mlstls-fuzz-targets --bin seed            # seeds only
//! cargo run -p mlstls-fuzz-targets --bin seed -- --fixtures   # new fixtures too
//! ```
//!
//! New fixtures make the committed corpora of the stateful targets
//! (server_first_flight, client_flight) stale: regenerate both together.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mls_tls::conn::{ClientConnection, ConnectionCore, ServerConnection};
use mls_tls::credentials::x509::CertificateDer;
use mls_tls::credentials::Identity;
use mls_tls::record::{write_plaintext, ContentType, RecordSealer};
use mls_tls::store::{SessionBackend, StoredSession};
use mlstls_fuzz_targets::{
    client_config, clock, fixture_session_id, fixtures, fixtures_dir, record, server_config,
    take_output, SharedBackend, SUITE,
};

fn corpus_dir(target: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Moves bytes both ways until idle, recording each direction's bytes.
fn pump(c: &mut ConnectionCore, s: &mut ConnectionCore, to_s: &mut Vec<u8>, to_c: &mut Vec<u8>) {
    for _ in 0..8 {
        let a = take_output(c);
        to_s.extend_from_slice(&a);
        s.read_tls(&mut &a[..]).expect("server reads");
        let _ = s.process_new_packets();
        let b = take_output(s);
        to_c.extend_from_slice(&b);
        c.read_tls(&mut &b[..]).expect("client reads");
        let _ = c.process_new_packets();
        if a.is_empty() && b.is_empty() {
            return;
        }
    }
}

/// The contents of the plaintext handshake records in `wire`.
fn plaintext_handshakes(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = wire;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let (rec, tail) = rest.split_at((5 + len).min(rest.len()));
        if rec[0] == 22 {
            out.push(rec[5..].to_vec());
        }
        rest = tail;
    }
    out
}

fn write_fixtures() {
    let dir = fixtures_dir();
    std::fs::create_dir_all(&dir).expect("fixtures dir");
    let client_id = Identity::generate("fuzz-client", SUITE).expect("identity");
    let server_id = Identity::generate("fuzz-server", SUITE).expect("identity");
    let (ci, si) = (
        client_id.to_bytes().expect("encode").to_vec(),
        server_id.to_bytes().expect("encode").to_vec(),
    );
    let (cb, sb) = (SharedBackend::default(), SharedBackend::default());
    let clock = clock();
    let mut c = ClientConnection::new(client_config(&ci, &cb, &clock, None)).expect("client");
    let mut s = ServerConnection::new(server_config(&si, &sb, &clock, None));
    pump(&mut c, &mut s, &mut Vec::new(), &mut Vec::new());
    assert!(!c.is_handshaking() && !s.is_handshaking());
    let id = c.session_id().expect("session").clone();
    let load = |b: &SharedBackend| b.load(&id).expect("load").expect("stored").to_bytes();
    let client_synced = load(&cb);
    let server = load(&sb);
    c.request_key_update().expect("update");
    let _ = take_output(&mut c); // never delivered
    let client_pending = load(&cb);
    for (name, bytes) in [
        ("client.identity", &ci[..]),
        ("server.identity", &si[..]),
        ("client-synced.session", &client_synced[..]),
        ("client-pending.session", &client_pending[..]),
        ("server.session", &server[..]),
    ] {
        write(&dir, name, bytes);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--fixtures") {
        write_fixtures();
    }
    let fx = fixtures();
    let clock = clock();
    let mut handshakes = Vec::new();

    // A new session between the fixture identities.
    let (cb, sb) = (SharedBackend::default(), SharedBackend::default());
    let mut c = ClientConnection::new(client_config(&fx.client_identity, &cb, &clock, None))
        .expect("client");
    let mut s = ServerConnection::new(server_config(&fx.server_identity, &sb, &clock, None));
    s.writer().write_all(b"half-rtt data").expect("write");
    let (mut to_s, mut to_c) = (Vec::new(), Vec::new());
    pump(&mut c, &mut s, &mut to_s, &mut to_c);
    handshakes.extend(plaintext_handshakes(&to_s));
    handshakes.extend(plaintext_handshakes(&to_c));
    let dir = corpus_dir("server_first_flight");
    let hello = plaintext_handshakes(&to_s);
    let mut hello_wire = Vec::new();
    write_plaintext(ContentType::Handshake, &hello[0], &mut hello_wire).expect("frame");
    write(&dir, "client-hello", &hello_wire);
    write(&dir, "new-session-client-bytes", &to_s);
    write(
        &corpus_dir("client_flight"),
        "new-server-hello",
        &cat(&[&[0], &to_c]),
    );

    // Resumptions of the fixture session: pending commit resent, and a
    // fresh commit with early data; answered by the fixture server.
    for (name, session, mode, early) in [
        ("resume-pending", &fx.client_pending, 1u8, false),
        ("resume-fresh-early", &fx.client_synced, 2u8, true),
    ] {
        let cb = SharedBackend::holding(session);
        let sb = SharedBackend::holding(&fx.server);
        let mut c = ClientConnection::resume(
            client_config(&fx.client_identity, &cb, &clock, None),
            &fixture_session_id(),
        )
        .expect("resume");
        if early {
            c.writer().write_all(b"early data").expect("early");
        }
        let mut s = ServerConnection::new(server_config(&fx.server_identity, &sb, &clock, None));
        let first = take_output(&mut c);
        s.read_tls(&mut &first[..]).expect("read");
        let _ = s.process_new_packets();
        let answer = take_output(&mut s);
        write(&dir, name, &first);
        write(
            &corpus_dir("client_flight"),
            name,
            &cat(&[&[mode], &answer]),
        );
        handshakes.extend(plaintext_handshakes(&first));
        handshakes.extend(plaintext_handshakes(&answer));
    }

    // Handshake messages, whole and in fragments.
    let dir = corpus_dir("handshake");
    for (i, m) in handshakes.iter().enumerate() {
        write(&dir, &format!("message-{i}"), &cat(&[&[0], m]));
        let mut fragmented = vec![0u8];
        for chunk in m.chunks(200) {
            fragmented.push(chunk.len() as u8);
            fragmented.extend_from_slice(chunk);
        }
        write(&dir, &format!("fragments-{i}"), &fragmented);
    }

    // Records under the record target's fixed keys.
    let dir = corpus_dir("record");
    for flags in [0u8, 1, 2, 4] {
        let mut sealer = RecordSealer::new();
        sealer
            .install(record::keys(record::aead(flags), flags & 4 != 0))
            .expect("install");
        let mut wire = Vec::new();
        sealer
            .seal(ContentType::Handshake, &handshakes[0], &mut wire)
            .expect("seal");
        sealer
            .seal(ContentType::ApplicationData, b"", &mut wire)
            .expect("seal");
        sealer
            .seal(ContentType::ApplicationData, &[7; 300], &mut wire)
            .expect("seal");
        sealer
            .seal(ContentType::Alert, &[1, 0], &mut wire)
            .expect("seal");
        write(&dir, &format!("sealed-{flags}"), &cat(&[&[flags], &wire]));
    }
    let mut plain = Vec::new();
    write_plaintext(ContentType::Handshake, &handshakes[0], &mut plain).expect("frame");
    write(&dir, "plaintext-hello", &cat(&[&[8], &plain]));

    // Stored sessions and group snapshots.
    let dir = corpus_dir("store");
    for (name, bytes) in [
        ("server", &fx.server),
        ("client-synced", &fx.client_synced),
        ("client-pending", &fx.client_pending),
    ] {
        write(&dir, &format!("{name}.session"), &cat(&[&[0], bytes]));
        let session = StoredSession::from_bytes(bytes).expect("decodes");
        write(
            &dir,
            &format!("{name}.record"),
            &cat(&[&[2], &session.to_record().to_bytes()]),
        );
        let group = session.group;
        write(&dir, &format!("{name}.group"), &cat(&[&[1], &group]));
    }

    // Identities, roots and chains.
    let dir = corpus_dir("identity");
    write(&dir, "basic-identity", &cat(&[&[0], &fx.client_identity]));
    let line = mls_tls::Identity::from_bytes(&fx.client_identity)
        .expect("fixture identity")
        .public_line();
    let trust = format!("# peers\n\n{line}\n");
    write(&dir, "trust-file", &cat(&[&[3], trust.as_bytes()]));
    let (x509_identity, root_pem, chain) = x509_identity();
    write(&dir, "x509-identity", &cat(&[&[0], &x509_identity]));
    write(&dir, "root-pem", &cat(&[&[1], root_pem.as_bytes()]));
    write(
        &dir,
        "chain",
        &cat(&[&[2], &mls_tls::fuzzing::encode_chain(&chain)]),
    );

    // Scripts for the pair target (see `pair::Op`).
    let dir = corpus_dir("pair");
    let scripts: &[(&str, &[u8])] = &[
        ("data-both-ways", &[0, 1, 40, 2, 40, 0]),
        ("honest-update", &[0, 3, 0, 1, 10, 0]),
        ("victim-update", &[0, 4, 0, 2, 10, 0]),
        ("update-then-replay-commit", &[0, 3, 0, 10, 2, 0]),
        (
            "update-then-replay-all",
            &[0, 3, 0, 4, 0, 10, 0, 10, 1, 10, 2, 10, 3, 0],
        ),
        (
            "server-side-update-replay",
            &[1, 3, 0, 10, 1, 0, 4, 0, 10, 2],
        ),
        ("mutate-commit", &[0, 11, 0, 3, 0, 40, 1, 3, 0]),
        ("drop-eku", &[1, 4, 12, 0]),
        ("collision", &[0, 3, 4, 0]),
        ("inject-eku-type", &[0, 5, 4, 0, 3, 1, 2, 3, 0]),
        ("inject-close", &[0, 8, 1, 0, 2, 5, 0]),
        ("close-then-update", &[0, 14, 4, 0]),
        ("timeout", &[0, 3, 13, 61, 0]),
        ("inject-data", &[1, 7, 0, 4, 1, 2, 3, 4, 0]),
    ];
    for (name, script) in scripts {
        write(&dir, name, script);
    }
}

/// An X.509 identity of the client's key, the PEM of its root, its chain.
fn x509_identity() -> (Vec<u8>, String, Vec<CertificateDer<'static>>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    struct MlsKey<'a>(&'a [u8]);
    impl rcgen::PublicKeyData for MlsKey<'_> {
        fn der_bytes(&self) -> &[u8] {
            self.0
        }
        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_ED25519
        }
    }
    let id = Identity::from_bytes(&fixtures().client_identity).expect("identity");
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("ca");
    let leaf = CertificateParams::new(vec!["fuzz-client.example".into()])
        .expect("params")
        .signed_by(&MlsKey(id.public_key()), &ca)
        .expect("leaf");
    let chain = vec![CertificateDer::from(leaf.der().to_vec()), ca.der().clone()];
    let id = id.with_certificate_chain(chain.clone()).expect("chain");
    let pem = ca.pem();
    let _ = Arc::new(());
    (id.to_bytes().expect("encode").to_vec(), pem, chain)
}
