//! X.509 credentials end to end (in-memory connections) and at the
//! verifier: a test PKI (root, intermediate, leaves for MLS keys) is made
//! with rcgen in each test.

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use mls_tls::alert::AlertDescription;
use mls_tls::conn::{
    ClientConfig, ClientConnection, ConnectionCore, ServerConfig, ServerConnection,
};
use mls_tls::credentials::x509::{
    CertificateDer, ClientAuth, RootCertStore, ServerName, WebPkiClientVerifier,
    WebPkiServerVerifier,
};
use mls_tls::credentials::{
    AcceptAnyPeer, EitherVerifier, Identity, PeerAuth, PeerIdentity, PeerVerifier, PinnedKeys,
    VerifyContext,
};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::store::SessionStore;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, PublicKeyData, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

mod wire;
use wire::{feed, read_all, take};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;
const SERVER: &str = "server.example";

/// A root CA and an intermediate it issued; leaves come from the
/// intermediate, so a chain is `[leaf, intermediate]`.
struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    inter: CertifiedIssuer<'static, KeyPair>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

impl Pki {
    fn new(name: &str) -> Self {
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} root")),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let inter = CertifiedIssuer::signed_by(
            ca_params(&format!("{name} intermediate")),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        Self { root, inter }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.root.der()).unwrap();
        Arc::new(roots)
    }

    fn inter_der(&self) -> CertificateDer<'static> {
        self.inter.der().clone()
    }

    /// A leaf for `key` (an MLS signature key) named `name`.
    fn leaf(
        &self,
        key: &[u8],
        name: &str,
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(30);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        tweak(&mut p);
        p.signed_by(&MlsKey(key.to_vec()), &self.inter)
            .unwrap()
            .der()
            .clone()
    }

    /// A fresh identity for `suite` with a valid chain for `name`.
    fn identity(&self, name: &str, suite: CipherSuite) -> Identity {
        let id = Identity::generate(name, suite).unwrap();
        let leaf = self.leaf(id.public_key(), name, |_| {});
        id.with_certificate_chain(vec![leaf, self.inter_der()])
            .unwrap()
    }
}

/// An MLS signature key as rcgen's "external public key".
struct MlsKey(Vec<u8>);

impl PublicKeyData for MlsKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.0.len() {
            32 => &rcgen::PKCS_ED25519,
            65 => &rcgen::PKCS_ECDSA_P256_SHA256,
            _ => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

fn server_verifier(pki: &Pki, name: &str) -> Arc<WebPkiServerVerifier> {
    Arc::new(WebPkiServerVerifier::new(
        pki.roots(),
        ServerName::try_from(name.to_string()).unwrap(),
    ))
}

fn client_verifier(pki: &Pki, mode: ClientAuth) -> Arc<WebPkiClientVerifier> {
    Arc::new(WebPkiClientVerifier::new(pki.roots(), mode))
}

fn store() -> Arc<SessionStore> {
    Arc::new(SessionStore::in_memory().unwrap())
}

/// Which side failed, and how.
#[derive(Debug)]
enum Failure {
    Client(Error),
    Server(Error),
}

/// Moves bytes both ways until both sides are quiet or one fails; the
/// failing side's alert is delivered to the other.
fn pump(c: &mut ConnectionCore, s: &mut ConnectionCore) -> Result<(), Failure> {
    for _ in 0..20 {
        let to_s = take(c);
        if let Err(e) = feed(s, &to_s) {
            let _ = feed(c, &take(s));
            return Err(Failure::Server(e));
        }
        let to_c = take(s);
        if let Err(e) = feed(c, &to_c) {
            let _ = feed(s, &take(c));
            return Err(Failure::Client(e));
        }
        if to_s.is_empty() && to_c.is_empty() {
            return Ok(());
        }
    }
    panic!("connections never went quiet");
}

fn connect(
    client: Identity,
    client_verifier: Arc<dyn PeerVerifier>,
    server: Identity,
    server_verifier: Arc<dyn PeerVerifier>,
) -> (ClientConnection, ServerConnection, Result<(), Failure>) {
    let cc = Arc::new(ClientConfig::new(client, client_verifier, store()));
    let sc = Arc::new(ServerConfig::new(server, server_verifier, store()));
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc);
    let result = pump(&mut c, &mut s);
    (c, s, result)
}

/// Asserts the failing side rejected with bad_certificate naming `reason`.
fn assert_rejected(result: Result<(), Failure>, reason: &str) {
    let error = match result {
        Err(Failure::Client(e) | Failure::Server(e)) => e,
        Ok(()) => panic!("accepted, expected a rejection naming {reason:?}"),
    };
    assert_eq!(
        error.alert(),
        Some(AlertDescription::BadCertificate),
        "{error}"
    );
    assert!(
        error.to_string().contains(reason),
        "{error} does not name {reason:?}"
    );
}

/// The peer's view after a rejection: the alert arrived.
fn peer_got_bad_certificate(conn: &mut ConnectionCore) {
    assert_eq!(
        conn.process_new_packets().err(),
        Some(Error::AlertReceived(AlertDescription::BadCertificate))
    );
}

fn exchange(c: &mut ConnectionCore, s: &mut ConnectionCore) {
    c.writer().write_all(b"ping").unwrap();
    s.writer().write_all(b"pong").unwrap();
    pump(c, s).unwrap();
    assert_eq!(read_all(s), b"ping");
    assert_eq!(read_all(c), b"pong");
}

#[test]
fn valid_chains_on_both_sides_for_every_signature_family() {
    let pki = Pki::new("test");
    for suite in [
        SUITE,                                     // Ed25519
        CipherSuite::P256Aes128GcmSha256P256,      // 0x0002, ECDSA P-256
        CipherSuite::MlKem1024Aes256GcmSha384P384, // 0x0042, ECDSA P-384
        CipherSuite::P384Aes256GcmSha384P384,      // 0x0007, ECDSA P-384
    ] {
        let (mut c, mut s, result) = connect(
            pki.identity("client.example", suite),
            server_verifier(&pki, SERVER),
            pki.identity(SERVER, suite),
            client_verifier(&pki, ClientAuth::Required),
        );
        result.unwrap();
        assert!(!c.is_handshaking() && !s.is_handshaking(), "{suite}");
        exchange(&mut c, &mut s);
        let server_seen = c.peer_identity().unwrap();
        assert!(server_seen.authenticated, "{suite}");
        assert_eq!(server_seen.certificate_chain().unwrap().len(), 2);
        assert!(s.peer_identity().unwrap().authenticated, "{suite}");
        // Updates re-check the (unchanged) certificates on both sides.
        c.request_key_update().unwrap();
        pump(&mut c, &mut s).unwrap();
        s.request_key_update().unwrap();
        pump(&mut c, &mut s).unwrap();
        exchange(&mut c, &mut s);
        assert_eq!(c.epoch(), s.epoch());
        assert!(c.epoch().unwrap() >= 3, "{suite}");
    }
}

/// SPEC 5: a certificate outside its validity period is
/// `certificate_expired(45)`, not `bad_certificate`.
#[test]
fn expired_leaf_is_certificate_expired() {
    let pki = Pki::new("test");
    let id = Identity::generate(SERVER, SUITE).unwrap();
    let leaf = pki.leaf(id.public_key(), SERVER, |p| {
        p.not_before = OffsetDateTime::now_utc() - Duration::days(60);
        p.not_after = OffsetDateTime::now_utc() - Duration::days(1);
    });
    let server = id
        .with_certificate_chain(vec![leaf, pki.inter_der()])
        .unwrap();
    let (_, mut s, result) = connect(
        pki.identity("client", SUITE),
        server_verifier(&pki, SERVER),
        server,
        Arc::new(AcceptAnyPeer),
    );
    let Err(Failure::Client(error)) = result else {
        panic!("the client must reject: {result:?}")
    };
    assert_eq!(error.alert(), Some(AlertDescription::CertificateExpired));
    assert!(matches!(error, Error::CertificateExpired(_)), "{error:?}");
    assert!(error.to_string().contains("certificate expired"), "{error}");
    assert_eq!(
        s.process_new_packets().err(),
        Some(Error::AlertReceived(AlertDescription::CertificateExpired))
    );
}

/// A certificate that is not valid yet is `certificate_expired` too (RFC
/// 8446: "expired or is not currently valid").
#[test]
fn not_yet_valid_leaf_is_certificate_expired() {
    let pki = Pki::new("test");
    let id = Identity::generate(SERVER, SUITE).unwrap();
    let leaf = pki.leaf(id.public_key(), SERVER, |p| {
        p.not_before = OffsetDateTime::now_utc() + Duration::days(1);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(60);
    });
    let server = id
        .with_certificate_chain(vec![leaf, pki.inter_der()])
        .unwrap();
    let (_, _, result) = connect(
        pki.identity("client", SUITE),
        server_verifier(&pki, SERVER),
        server,
        Arc::new(AcceptAnyPeer),
    );
    let Err(Failure::Client(error)) = result else {
        panic!("the client must reject: {result:?}")
    };
    assert_eq!(error.alert(), Some(AlertDescription::CertificateExpired));
    assert!(error.to_string().contains("not valid yet"), "{error}");
}

#[test]
fn wrong_server_name_is_bad_certificate() {
    let pki = Pki::new("test");
    let (_, mut s, result) = connect(
        pki.identity("client", SUITE),
        server_verifier(&pki, "other.example"),
        pki.identity(SERVER, SUITE),
        Arc::new(AcceptAnyPeer),
    );
    assert_rejected(result, "not valid for server name other.example");
    peer_got_bad_certificate(&mut s);
}

#[test]
fn unknown_root_is_bad_certificate_for_clients_and_servers() {
    let pki = Pki::new("test");
    let stranger = Pki::new("stranger");
    // A server whose chain leads to a root the client does not trust.
    let (_, _, result) = connect(
        pki.identity("client", SUITE),
        server_verifier(&pki, SERVER),
        stranger.identity(SERVER, SUITE),
        Arc::new(AcceptAnyPeer),
    );
    assert!(matches!(result, Err(Failure::Client(_))));
    assert_rejected(result, "unknown issuer");
    // A client the server cannot chain, even with optional client auth.
    let (mut c, _, result) = connect(
        stranger.identity("client", SUITE),
        Arc::new(AcceptAnyPeer),
        pki.identity(SERVER, SUITE),
        client_verifier(&pki, ClientAuth::Optional),
    );
    assert!(matches!(result, Err(Failure::Server(_))));
    assert_rejected(result, "unknown issuer");
    peer_got_bad_certificate(&mut c);
}

#[test]
fn leaf_for_another_role_is_refused_by_extended_key_usage() {
    let pki = Pki::new("test");
    let id = Identity::generate(SERVER, SUITE).unwrap();
    let leaf = pki.leaf(id.public_key(), SERVER, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    let server = id
        .with_certificate_chain(vec![leaf, pki.inter_der()])
        .unwrap();
    let (_, _, result) = connect(
        pki.identity("client", SUITE),
        server_verifier(&pki, SERVER),
        server,
        Arc::new(AcceptAnyPeer),
    );
    assert_rejected(result, "extended key usage");
}

/// An MLS `Credential` of type x509 holding `chain`, as a peer would send
/// it (RFC 9420: uint16 type, then the chain as a vector of vectors).
fn x509_credential(chain: &[CertificateDer<'_>]) -> Vec<u8> {
    fn varint(len: usize, out: &mut Vec<u8>) {
        match len {
            0..=63 => out.push(len as u8),
            64..=16383 => out.extend_from_slice(&(0x4000 | len as u16).to_be_bytes()),
            _ => out.extend_from_slice(&(0x8000_0000 | len as u32).to_be_bytes()),
        }
    }
    let mut content = Vec::new();
    for cert in chain {
        varint(cert.len(), &mut content);
        content.extend_from_slice(cert);
    }
    let mut out = vec![0, 2];
    varint(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

fn peer(chain: &[CertificateDer<'_>], key: &[u8]) -> PeerIdentity {
    PeerIdentity {
        credential: x509_credential(chain),
        name: Vec::new(),
        signature_key: key.to_vec(),
        authenticated: false,
    }
}

#[test]
fn leaf_key_not_matching_the_mls_key_is_refused_locally_and_by_the_peer() {
    let pki = Pki::new("test");
    let id = Identity::generate(SERVER, SUITE).unwrap();
    let other = Identity::generate(SERVER, SUITE).unwrap();
    let leaf = pki.leaf(other.public_key(), SERVER, |_| {});
    let chain = vec![leaf, pki.inter_der()];
    // Our own identity: refused before anything is sent.
    let err = Identity::generate(SERVER, SUITE)
        .unwrap()
        .with_certificate_chain(chain.clone())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not match the MLS signature key"),
        "{err}"
    );
    // A peer presenting someone else's certificate.
    let verdict = server_verifier(&pki, SERVER).verify(
        &peer(&chain, id.public_key()),
        VerifyContext::Welcome,
        SystemTime::now(),
    );
    assert!(verdict
        .unwrap_err()
        .reason
        .contains("does not match the MLS signature key"));
    // The certificate's own key passes the same check.
    assert_eq!(
        server_verifier(&pki, SERVER).verify(
            &peer(&chain, other.public_key()),
            VerifyContext::Welcome,
            SystemTime::now()
        ),
        Ok(PeerAuth::Authenticated)
    );
}

#[test]
fn chain_in_the_wrong_order_is_refused() {
    let pki = Pki::new("test");
    let id = Identity::generate(SERVER, SUITE).unwrap();
    let leaf = pki.leaf(id.public_key(), SERVER, |_| {});
    let reversed = vec![pki.inter_der(), leaf.clone()];
    let verdict = server_verifier(&pki, SERVER).verify(
        &peer(&reversed, id.public_key()),
        VerifyContext::Welcome,
        SystemTime::now(),
    );
    assert!(verdict.unwrap_err().reason.contains("wrong order"));
    // Leaf first but the root before the intermediate: not an issuer chain.
    let shuffled = vec![leaf, pki.root.der().clone(), pki.inter_der()];
    let verdict = server_verifier(&pki, SERVER).verify(
        &peer(&shuffled, id.public_key()),
        VerifyContext::Welcome,
        SystemTime::now(),
    );
    assert!(verdict.unwrap_err().reason.contains("wrong order"));
    let err = id.with_certificate_chain(reversed).unwrap_err();
    assert!(err.to_string().contains("wrong order"), "{err}");
}

#[test]
fn garbage_x509_credentials_are_refused_without_panicking() {
    let pki = Pki::new("test");
    let v = server_verifier(&pki, SERVER);
    let key = [7u8; 32];
    for credential in [
        vec![0, 2],
        vec![0, 2, 0],
        vec![0, 2, 3, 1, 9],
        vec![0, 2, 2, 1, 0x30],
    ] {
        let p = PeerIdentity {
            credential,
            name: Vec::new(),
            signature_key: key.to_vec(),
            authenticated: false,
        };
        assert!(v
            .verify(&p, VerifyContext::Welcome, SystemTime::now())
            .is_err());
    }
}

#[test]
fn x509_is_refused_for_ml_dsa_suites() {
    let pki = Pki::new("test");
    let ed = Identity::generate("x", SUITE).unwrap();
    let chain = vec![pki.leaf(ed.public_key(), "x", |_| {})];
    let err = Identity::generate("x", CipherSuite::MlKem768Aes256GcmSha384MlDsa65)
        .unwrap()
        .with_certificate_chain(chain)
        .unwrap_err();
    assert!(err.to_string().contains("ML-DSA"), "{err}");
}

#[test]
fn client_auth_modes() {
    let pki = Pki::new("test");
    let basic = || Identity::generate("anon", SUITE).unwrap();
    let server = || pki.identity(SERVER, SUITE);
    // Optional: a basic credential is an anonymous client.
    let (c, s, result) = connect(
        basic(),
        server_verifier(&pki, SERVER),
        server(),
        client_verifier(&pki, ClientAuth::Optional),
    );
    result.unwrap();
    assert!(!s.peer_identity().unwrap().authenticated);
    assert!(c.peer_identity().unwrap().authenticated);
    // Optional: a good certificate authenticates.
    let (_, s, result) = connect(
        pki.identity("client", SUITE),
        server_verifier(&pki, SERVER),
        server(),
        client_verifier(&pki, ClientAuth::Optional),
    );
    result.unwrap();
    assert!(s.peer_identity().unwrap().authenticated);
    // Required: a basic credential is refused.
    let (_, _, result) = connect(
        basic(),
        server_verifier(&pki, SERVER),
        server(),
        client_verifier(&pki, ClientAuth::Required),
    );
    assert_rejected(result, "X.509 certificate is required");
    // Off: anything goes, nobody is authenticated.
    let stranger = Pki::new("stranger");
    let (_, s, result) = connect(
        stranger.identity("client", SUITE),
        server_verifier(&pki, SERVER),
        server(),
        client_verifier(&pki, ClientAuth::Off),
    );
    result.unwrap();
    assert!(!s.peer_identity().unwrap().authenticated);
}

#[test]
fn optional_client_auth_keeps_anonymous_clients_anonymous_and_refuses_downgrades() {
    let pki = Pki::new("test");
    let optional = || client_verifier(&pki, ClientAuth::Optional);
    // An anonymous client updates as it likes.
    let (mut c, mut s, result) = connect(
        Identity::generate("anon", SUITE).unwrap(),
        server_verifier(&pki, SERVER),
        pki.identity(SERVER, SUITE),
        optional(),
    );
    result.unwrap();
    c.rotate_identity(Identity::generate("anon-2", SUITE).unwrap())
        .unwrap();
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert!(!s.peer_identity().unwrap().authenticated);
    // A certified client may not drop its certificate mid-session.
    let (mut c, mut s, result) = connect(
        pki.identity("client.example", SUITE),
        server_verifier(&pki, SERVER),
        pki.identity(SERVER, SUITE),
        optional(),
    );
    result.unwrap();
    c.rotate_identity(Identity::generate("client.example", SUITE).unwrap())
        .unwrap();
    c.request_key_update().unwrap();
    assert_rejected(
        pump(&mut c, &mut s),
        "changed its credential type in an update",
    );
}

#[test]
fn either_verifier_accepts_pinned_keys_or_certificates() {
    let pki = Pki::new("test");
    let pinned = Identity::generate("device", SUITE).unwrap();
    let pins = PinnedKeys::new([pinned.public_key().to_vec()]);
    let either = || -> Arc<dyn PeerVerifier> {
        Arc::new(EitherVerifier::new(
            Arc::new(pins.clone()),
            client_verifier(&pki, ClientAuth::Required),
        ))
    };
    let (_, s, result) = connect(
        pinned,
        server_verifier(&pki, SERVER),
        pki.identity(SERVER, SUITE),
        either(),
    );
    result.unwrap();
    assert!(s.peer_identity().unwrap().authenticated);
    let (_, s, result) = connect(
        pki.identity("client", SUITE),
        server_verifier(&pki, SERVER),
        pki.identity(SERVER, SUITE),
        either(),
    );
    result.unwrap();
    assert!(s.peer_identity().unwrap().authenticated);
    // Neither: both reasons are named.
    let (_, _, result) = connect(
        Identity::generate("nobody", SUITE).unwrap(),
        server_verifier(&pki, SERVER),
        pki.identity(SERVER, SUITE),
        either(),
    );
    assert_rejected(
        result,
        "is not in the pinned keys; and client presented a basic credential",
    );
}

#[test]
fn update_that_changes_the_subject_is_bad_certificate() {
    let pki = Pki::new("test");
    let (mut c, mut s, result) = connect(
        pki.identity("client.example", SUITE),
        server_verifier(&pki, SERVER),
        pki.identity(SERVER, SUITE),
        client_verifier(&pki, ClientAuth::Required),
    );
    result.unwrap();
    // A valid certificate from the same CA, but for someone else.
    c.rotate_identity(pki.identity("mallory.example", SUITE))
        .unwrap();
    c.request_key_update().unwrap();
    let result = pump(&mut c, &mut s);
    assert!(matches!(result, Err(Failure::Server(_))));
    assert_rejected(result, "changed its identity in an update");
    peer_got_bad_certificate(&mut c);
}

#[test]
fn rotation_to_a_renewed_certificate_is_accepted_and_used() {
    let pki = Pki::new("test");
    let client = pki.identity("client.example", SUITE);
    let old_key = client.public_key().to_vec();
    let (mut c, mut s, result) = connect(
        client,
        server_verifier(&pki, SERVER),
        pki.identity(SERVER, SUITE),
        client_verifier(&pki, ClientAuth::Required),
    );
    result.unwrap();
    // Renewed: same subject, new key, new certificate.
    let renewed = pki.identity("client.example", SUITE);
    let new_key = renewed.public_key().to_vec();
    c.rotate_identity(renewed).unwrap();
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    let seen = s.peer_identity().unwrap();
    assert_eq!(seen.signature_key, new_key);
    assert_ne!(seen.signature_key, old_key);
    assert!(seen.authenticated);
    // The new key signs from now on: more updates from both sides verify.
    for _ in 0..2 {
        c.request_key_update().unwrap();
        pump(&mut c, &mut s).unwrap();
        s.request_key_update().unwrap();
        pump(&mut c, &mut s).unwrap();
    }
    exchange(&mut c, &mut s);
    // The server can renew too.
    s.rotate_identity(pki.identity(SERVER, SUITE)).unwrap();
    s.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    exchange(&mut c, &mut s);
    assert!(c.peer_identity().unwrap().authenticated);
}

#[test]
fn session_resumes_after_a_rotation_with_the_new_identity_configured() {
    let pki = Pki::new("test");
    let old = pki.identity("client.example", SUITE);
    let old_bytes = old.to_bytes().unwrap();
    let cc = ClientConfig::new(old, server_verifier(&pki, SERVER), store());
    let sc = Arc::new(ServerConfig::new(
        pki.identity(SERVER, SUITE),
        client_verifier(&pki, ClientAuth::Required),
        store(),
    ));
    let mut c = ClientConnection::new(Arc::new(cc.clone())).unwrap();
    let mut s = ServerConnection::new(sc.clone());
    pump(&mut c, &mut s).unwrap();
    let renewed = pki.identity("client.example", SUITE);
    let renewed_bytes = renewed.to_bytes().unwrap();
    c.rotate_identity(renewed).unwrap();
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    // Only the old identity configured: refused locally, with the reason.
    let err = ClientConnection::resume(Arc::new(cc.clone()), &id).unwrap_err();
    assert!(err.to_string().contains("add the new identity"), "{err}");
    // With the renewed identity next to the old one, the session resumes.
    let cc = cc.add_identity(Identity::from_bytes(&renewed_bytes).unwrap());
    let mut c = ClientConnection::resume(Arc::new(cc), &id).unwrap();
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
    exchange(&mut c, &mut s);
    assert!(s.peer_identity().unwrap().authenticated);
    assert_ne!(
        s.peer_identity().unwrap().signature_key,
        Identity::from_bytes(&old_bytes).unwrap().public_key()
    );
}

#[test]
fn rotation_is_refused_for_another_suite() {
    let pki = Pki::new("test");
    let (mut c, _, result) = connect(
        pki.identity("client", SUITE),
        server_verifier(&pki, SERVER),
        pki.identity(SERVER, SUITE),
        Arc::new(AcceptAnyPeer),
    );
    result.unwrap();
    let other = pki.identity("client", CipherSuite::P256Aes128GcmSha256P256);
    assert!(c.rotate_identity(other).is_err());
}

#[test]
fn identity_file_keeps_the_chain() {
    let pki = Pki::new("test");
    let id = pki.identity("node", CipherSuite::P256Aes128GcmSha256P256);
    let back = Identity::from_bytes(&id.to_bytes().unwrap()).unwrap();
    assert_eq!(back.certificate_chain(), id.certificate_chain());
    assert_eq!(back.public_key(), id.public_key());
    assert_eq!(back.name(), b"node");
    // A cut file is refused wherever it is cut.
    let bytes = id.to_bytes().unwrap();
    for cut in [30, 40, bytes.len() / 2, bytes.len() - 1] {
        assert!(Identity::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn pinned_and_accept_any_report_authentication() {
    let client = Identity::generate("c", SUITE).unwrap();
    let server = Identity::generate("s", SUITE).unwrap();
    let pins = Arc::new(PinnedKeys::new([server.public_key().to_vec()]));
    let (c, s, result) = connect(client, pins, server, Arc::new(AcceptAnyPeer));
    result.unwrap();
    assert!(c.peer_identity().unwrap().authenticated);
    assert!(!s.peer_identity().unwrap().authenticated);
}

#[test]
fn root_store_from_pem() {
    let pki = Pki::new("test");
    let pem = pki.root.pem() + &pki.inter.pem();
    assert_eq!(RootCertStore::from_pem(pem.as_bytes()).unwrap().len(), 2);
    let err = RootCertStore::from_pem(b"").unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
}
