//! SPEC 5 (last bullet) and SPEC 8 ("Before anything leaves"): every epoch
//! change, and every resumption before anything is sent or delivered,
//! checks the peer's current leaf again, at the time the engine is given
//! and with the current trust configuration. A peer that no longer
//! verifies gets `certificate_expired` or `bad_certificate`, and the
//! session is deleted.
//!
//! Certificates here are valid for fixed windows around the simulation's
//! clock (`Sim::now`), so nothing depends on the machine's clock.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{classical, config, Sim};
use mls_tls::alert::AlertDescription;
use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use mls_tls::credentials::x509::{
    CertificateDer, ClientAuth, RootCertStore, ServerName, WebPkiClientVerifier,
    WebPkiServerVerifier,
};
use mls_tls::credentials::{AcceptAnyPeer, Identity, PeerVerifier, PinnedKeys};
use mls_tls::error::Error;
use mls_tls::profile::engine::{Engine, State};
use mls_tls::store::SessionStore;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, PublicKeyData, SignatureAlgorithm,
};
use time::OffsetDateTime;

mod wire;
use wire::{feed, read_all, take};

const SERVER: &str = "server.example";
const HOUR: u64 = 3600;

/// The simulation's start (`Sim::new`'s clock).
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

struct MlsKey(Vec<u8>);

impl PublicKeyData for MlsKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
}

fn at(t: SystemTime) -> OffsetDateTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap()).unwrap()
}

impl Pki {
    fn new() -> Self {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "root");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Self { root }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.root.der()).unwrap();
        Arc::new(roots)
    }

    /// An identity named `name` whose certificate is valid from an hour
    /// before t0 until `valid_hours` after t0.
    fn identity(&self, name: &str, valid_hours: u64) -> Identity {
        let id = Identity::generate(name, classical()).unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.not_before = at(t0() - Duration::from_secs(HOUR));
        p.not_after = at(t0() + Duration::from_secs(valid_hours * HOUR));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf: CertificateDer<'static> = p
            .signed_by(&MlsKey(id.public_key().to_vec()), &self.root)
            .unwrap()
            .der()
            .clone();
        id.with_certificate_chain(vec![leaf]).unwrap()
    }

    fn server_verifier(&self) -> Arc<dyn PeerVerifier> {
        Arc::new(WebPkiServerVerifier::new(
            self.roots(),
            ServerName::try_from(SERVER).unwrap(),
        ))
    }

    fn client_verifier(&self) -> Arc<dyn PeerVerifier> {
        Arc::new(WebPkiClientVerifier::new(
            self.roots(),
            ClientAuth::Required,
        ))
    }

    /// A simulation whose client certificate is valid for `client_hours`
    /// and server certificate for `server_hours` after t0; both sides
    /// verify X.509 with the engine's time.
    fn sim(&self, client_hours: u64, server_hours: u64) -> Sim {
        let c = config(
            Arc::new(self.identity("client.example", client_hours)),
            self.server_verifier(),
        );
        let s = config(
            Arc::new(self.identity(SERVER, server_hours)),
            self.client_verifier(),
        );
        let mut sim = Sim::with_configs(c, s);
        assert_eq!(sim.now, t0());
        sim.handshake();
        sim
    }
}

fn later(hours: u64) -> SystemTime {
    t0() + Duration::from_secs(hours * HOUR)
}

fn assert_expired(err: &Error) {
    assert_eq!(
        err.alert(),
        Some(AlertDescription::CertificateExpired),
        "{err}"
    );
    assert!(err.to_string().contains("certificate expired"), "{err}");
}

/// Issue case 7: the server's certificate is valid for an hour; two hours
/// later the client's own update is confirmed by the server's
/// EpochKeyUpdate. Confirming installs a new epoch, so the client checks
/// the server again, finds it expired, and deletes the session.
#[test]
fn own_update_confirmed_rechecks_the_peer() {
    let pki = Pki::new();
    let mut sim = pki.sim(10, 1);
    sim.now = later(2);
    sim.update(true);
    // The server applies the client's commit (the client's certificate is
    // still valid) and confirms it.
    assert!(sim.step(true).unwrap());
    let err = sim.step(false).unwrap_err();
    assert_expired(&err);
    assert_eq!(sim.client.engine.state(), State::Closed);
    assert!(sim.client.store.list().unwrap().is_empty(), "deleted");
    // The server's session stays: it has nothing against the client.
    assert_eq!(sim.server.store.list().unwrap().len(), 1);
}

/// Within the validity period, the same confirmation succeeds and the
/// peer stays authenticated.
#[test]
fn own_update_confirmed_within_validity_keeps_going() {
    let pki = Pki::new();
    let mut sim = pki.sim(10, 1);
    sim.now = t0() + Duration::from_secs(HOUR / 2);
    sim.update(true);
    sim.settle();
    assert!(sim.client.engine.peer_identity().unwrap().authenticated);
}

/// The peer's update carries its (unchanged, expired) leaf: verified at
/// the engine's time, not the machine's.
#[test]
fn peer_update_applied_checks_with_the_engine_time() {
    let pki = Pki::new();
    let mut sim = pki.sim(10, 1);
    sim.now = later(2);
    sim.update(false);
    let err = sim.step(false).unwrap_err();
    assert_expired(&err);
    assert!(sim.client.store.list().unwrap().is_empty());
    assert!(sim.to_server.is_empty(), "no EpochKeyUpdate leaves");
}

/// A collision won by the client (current initiator): the server drops its
/// commit and applies the client's, checking the client's leaf; the
/// client's own commit is then confirmed, checking the server's.
#[test]
fn collisions_recheck_on_both_sides() {
    // The client's certificate expired: the server, applying the client's
    // winning commit, refuses it.
    let pki = Pki::new();
    let mut sim = pki.sim(1, 10);
    sim.now = later(2);
    sim.update(true);
    sim.update(false);
    let err = sim.step(true).unwrap_err();
    assert_expired(&err);
    assert!(sim.server.store.list().unwrap().is_empty());
    // The server's certificate expired: the client ignores the server's
    // commit and refuses the server when its own is confirmed.
    let mut sim = pki.sim(10, 1);
    sim.now = later(2);
    sim.update(true);
    sim.update(false);
    assert!(sim.step(true).unwrap()); // server applies the client's commit
    assert!(sim.step(false).unwrap()); // client ignores the server's
    let err = sim.step(false).unwrap_err(); // EpochKeyUpdate
    assert_expired(&err);
    assert!(sim.client.store.list().unwrap().is_empty());
}

/// SPEC 8 "Before anything leaves": a resumption whose stored peer no
/// longer verifies sends nothing and deletes the session.
#[test]
fn resume_rechecks_the_stored_peer_before_anything_is_sent() {
    let pki = Pki::new();
    let sim = pki.sim(10, 1);
    let id = sim.session.clone().unwrap();
    let err = Engine::resume(sim.client.config.clone(), &id, later(2)).unwrap_err();
    assert_expired(&err);
    assert!(sim.client.store.list().unwrap().is_empty(), "deleted");
    // Within the validity period the same session resumes.
    let sim = pki.sim(10, 1);
    let id = sim.session.clone().unwrap();
    assert!(Engine::resume(sim.client.config.clone(), &id, later(0)).is_ok());
}

/// The responder checks the initiator before answering or delivering
/// early data: under rules 2 and 3 the request's UpdatePath leaf is the
/// initiator's current leaf.
#[test]
fn responder_rechecks_the_initiator_under_rules_2_and_3() {
    let pki = Pki::new();
    let mut sim = pki.sim(1, 10);
    sim.now = later(2);
    assert!(sim.cut_and_resume(true));
    sim.early_data(true);
    let err = sim.step(true).unwrap_err();
    assert_expired(&err);
    assert!(sim.to_client.is_empty(), "no response leaves");
    assert_eq!(sim.server.early_allowed, None);
    assert!(sim.server.store.list().unwrap().is_empty());
}

/// Rule 1 brings no new leaf: the responder checks the stored initiator.
#[test]
fn responder_rechecks_the_stored_initiator_under_rule_1() {
    let pki = Pki::new();
    let mut sim = pki.sim(1, 10);
    sim.update(true);
    // The server applies the update; its EpochKeyUpdate is lost.
    assert!(sim.step(true).unwrap());
    sim.now = later(2);
    // The client resends its commit; the server recognises it (rule 1).
    assert!(!sim.cut_and_resume(true));
    let err = sim.step(true).unwrap_err();
    assert_expired(&err);
    assert!(sim.to_client.is_empty());
    assert!(sim.server.store.list().unwrap().is_empty());
}

/// The initiator checks the responder's leaf in the ResumptionResponse at
/// the time it arrives.
#[test]
fn initiator_rechecks_the_responder_on_the_response() {
    let pki = Pki::new();
    let mut sim = pki.sim(10, 1);
    assert!(sim.cut_and_resume(true));
    sim.now = later(2);
    assert!(sim.step(true).unwrap());
    let err = sim.step(false).unwrap_err();
    assert_expired(&err);
    assert!(sim.client.store.list().unwrap().is_empty());
}

/// A responder resuming checks the initial initiator too (the roles of
/// this connection are swapped).
#[test]
fn responder_resuming_rechecks_the_initial_initiator() {
    let pki = Pki::new();
    let sim = pki.sim(1, 10);
    let id = sim.session.clone().unwrap();
    let err = Engine::resume(sim.server.config.clone(), &id, later(2)).unwrap_err();
    assert_expired(&err);
    assert!(sim.server.store.list().unwrap().is_empty());
}

fn conn_pump(c: &mut mls_tls::conn::ConnectionCore, s: &mut mls_tls::conn::ConnectionCore) {
    for _ in 0..20 {
        let to_s = take(c);
        feed(s, &to_s).unwrap();
        let to_c = take(s);
        feed(c, &to_c).unwrap();
        if to_s.is_empty() && to_c.is_empty() {
            return;
        }
    }
    panic!("connections never went quiet");
}

/// Issue case 6: the server's key is pinned, the session established; the
/// client's trust file then drops the key. Resuming is refused before
/// anything is sent (no early data reaches the server), the session is
/// deleted, and the error says why.
#[test]
fn resume_with_an_unpinned_key_is_refused_before_anything_is_sent() {
    let client = Identity::generate("client", classical()).unwrap();
    let client_bytes = client.to_bytes().unwrap();
    let server = Identity::generate("server", classical()).unwrap();
    let pins = PinnedKeys::new([server.public_key().to_vec()]);
    let store = Arc::new(SessionStore::in_memory().unwrap());
    let cc = Arc::new(ClientConfig::new(client, Arc::new(pins), store.clone()));
    let sc = Arc::new(ServerConfig::new(
        server,
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    ));
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc.clone());
    conn_pump(&mut c, &mut s);
    assert!(!c.is_handshaking());
    let id = c.session_id().unwrap().clone();
    drop((c, s));

    // The key is no longer pinned.
    let cc = Arc::new(ClientConfig::new(
        Identity::from_bytes(&client_bytes).unwrap(),
        Arc::new(PinnedKeys::new([])),
        store.clone(),
    ));
    let err = ClientConnection::resume(cc, &id).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::BadCertificate), "{err}");
    assert!(
        err.to_string().contains("is not in the pinned keys"),
        "{err}"
    );
    assert!(store.list().unwrap().is_empty(), "session deleted");

    // With the key still pinned the early data does arrive (the test's
    // own control).
    let client = Identity::generate("client", classical()).unwrap();
    let server = Identity::generate("server", classical()).unwrap();
    let pins = Arc::new(PinnedKeys::new([server.public_key().to_vec()]));
    let cc = Arc::new(ClientConfig::new(client, pins, store.clone()));
    let sc = Arc::new(ServerConfig::new(
        server,
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    ));
    let mut c = ClientConnection::new(cc.clone()).unwrap();
    let mut s = ServerConnection::new(sc.clone());
    conn_pump(&mut c, &mut s);
    let id = c.session_id().unwrap().clone();
    let mut c = ClientConnection::resume(cc, &id).unwrap();
    let mut s = ServerConnection::new(sc);
    c.writer().write_all(b"early").unwrap();
    conn_pump(&mut c, &mut s);
    let mut early = Vec::new();
    if let Some(mut r) = s.early_data() {
        std::io::Read::read_to_end(&mut r, &mut early).unwrap();
    }
    early.extend(read_all(&mut s));
    assert_eq!(early, b"early");
}

/// The first handshake already uses the engine's time: a certificate valid
/// only around t0 is accepted at t0 whatever the machine's clock says.
#[test]
fn handshake_verifies_at_the_engine_time() {
    let pki = Pki::new();
    let sim = pki.sim(1, 1);
    assert!(sim.client.engine.peer_identity().unwrap().authenticated);
    assert!(sim.server.engine.peer_identity().unwrap().authenticated);
}
