//! Review 14 (hostile review of d90c226, engine phases): what the
//! connection reports and what `terminate` deletes after failures,
//! closes, and resumption phases. Tests whose name starts with `bug_`
//! failed on d90c226 (several on its parent too) and name the bug they
//! guard against; the others pin down behaviour worth keeping.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mls_tls::alert::AlertDescription;
use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::keylog::KeyLog;
use mls_tls::message::{HandshakeMessage, HandshakeType};
use mls_tls::profile::engine::State;
use mls_tls::record::{ContentType, RecordSealer};
use mls_tls::schedule::{HashAlgorithm, TrafficSecret};
use mls_tls::store::SessionBackend;
use mls_tls::store::SessionStore;
use mls_tls::time::{Clock, ManualClock};

mod faulty;
mod wire;
use faulty::Faulty;
use wire::{feed, pump, read_all, take};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

type LogLine = (String, Vec<u8>, u64, Vec<u8>);

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<LogLine>>);

impl KeyLog for Collect {
    fn log(&self, label: &str, group_id: &[u8], epoch: u64, secret: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((label.into(), group_id.into(), epoch, secret.into()));
    }
}

struct Setup {
    clock: Arc<ManualClock>,
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    log: Arc<Collect>,
}

fn setup() -> Setup {
    let clock = Arc::new(ManualClock::new());
    let log = Arc::new(Collect::default());
    let policy = UpdatePolicy::manual();
    let client = ClientConfig::new(
        Identity::generate("client", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    )
    .clock(clock.clone())
    .update_policy(policy)
    .key_log(log.clone());
    let server = ServerConfig::new(
        Identity::generate("server", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    )
    .clock(clock.clone())
    .update_policy(policy);
    Setup {
        clock,
        client: Arc::new(client),
        server: Arc::new(server),
        log,
    }
}

fn connected(t: &Setup) -> (ClientConnection, ServerConnection) {
    let mut c = ClientConnection::new(t.client.clone()).unwrap();
    let mut s = ServerConnection::new(t.server.clone());
    pump(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
    (c, s)
}

/// A handshake record as the client would send it, sealed with the client
/// traffic secret of `epoch` from the key log, after `skip` records.
fn forged_client_handshake(t: &Setup, epoch: u64, skip: usize, msg: HandshakeMessage) -> Vec<u8> {
    let lines = t.log.0.lock().unwrap().clone();
    let (_, _, _, secret) = lines
        .iter()
        .rev()
        .find(|l| l.0 == "MLSTLS_CLIENT_TRAFFIC_SECRET" && l.2 == epoch)
        .unwrap()
        .clone();
    let keys = TrafficSecret::new(HashAlgorithm::Sha256, secret)
        .unwrap()
        .derive_keys(SUITE.aead())
        .unwrap();
    let mut sealer = RecordSealer::new();
    sealer.install(keys).unwrap();
    let mut sink = Vec::new();
    for _ in 0..skip {
        sealer
            .seal(ContentType::ApplicationData, b"", &mut sink)
            .unwrap();
    }
    let mut out = Vec::new();
    sealer
        .seal(ContentType::Handshake, &msg.encode(), &mut out)
        .unwrap();
    out
}

// ---------------------------------------------------------------------
// is_handshaking / timers after close and after errors
// ---------------------------------------------------------------------

/// After `terminate()` on an established connection the handshake is not
/// "in progress" again, and no handshake deadline fires: `handle_timeout`
/// long after must not report "handshake not completed in time" (nor queue
/// a fatal alert behind our close_notify).
#[test]
fn bug_terminate_makes_an_established_connection_handshaking_again() {
    let t = setup();
    let (mut c, _s) = connected(&t);
    c.terminate().unwrap();
    assert!(
        !c.is_handshaking(),
        "is_handshaking() is true after terminate() of an established connection"
    );
    assert_eq!(
        c.poll_timeout(),
        None,
        "a handshake deadline is reported after terminate()"
    );
    let _close_notify = take(&mut c);
    t.clock.advance(Duration::from_secs(3600));
    let r = c.handle_timeout(t.clock.now());
    assert!(r.is_ok(), "handle_timeout after terminate(): {r:?}");
    assert!(!c.wants_write(), "nothing may leave after close_notify");
}

/// The same, for the timer alone: after `terminate()` of an established
/// connection no handshake deadline is armed, and `handle_timeout` much
/// later neither fails with "handshake not completed in time" nor queues
/// a fatal alert behind our close_notify.
#[test]
fn bug_terminate_arms_a_handshake_timeout() {
    let t = setup();
    let (mut c, _s) = connected(&t);
    c.terminate().unwrap();
    let _close_notify = take(&mut c);
    t.clock.advance(Duration::from_secs(3600));
    let r = c.handle_timeout(t.clock.now());
    let alert = c.wants_write();
    assert!(r.is_ok(), "handle_timeout after terminate(): {r:?}");
    assert!(!alert, "something left after close_notify");
}

/// A fatal protocol error from the engine on an established connection
/// (the peer's unexpected handshake message) does not make the connection
/// report that its handshake is in progress (6e9c9a5: false).
#[test]
fn bug_an_engine_error_on_an_established_connection_reports_handshaking() {
    let t = setup();
    let (c, mut s) = connected(&t);
    let epoch = c.epoch().unwrap();
    // The client sent one record so far: the join confirmation (seq 0).
    let forged = forged_client_handshake(
        &t,
        epoch,
        1,
        HandshakeMessage::new(HandshakeType::EpochKeyUpdate, vec![0; 8]),
    );
    let err = feed(&mut s, &forged).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::UnexpectedMessage));
    assert!(
        !s.is_handshaking(),
        "is_handshaking() turned true after an error on an established connection"
    );
}

/// Held: the session of a connection that failed on a kept error is
/// still this connection's, and `terminate` deletes it.
#[test]
fn terminate_after_a_kept_engine_error_deletes_the_owned_session() {
    let t = setup();
    let (c, mut s) = connected(&t);
    let epoch = c.epoch().unwrap();
    let forged = forged_client_handshake(
        &t,
        epoch,
        1,
        HandshakeMessage::new(HandshakeType::EpochKeyUpdate, vec![0; 8]),
    );
    assert!(feed(&mut s, &forged).is_err());
    assert_eq!(t.server.store().list().unwrap().len(), 1, "kept");
    assert_eq!(s.profile_state(), State::Closed);
    s.terminate().unwrap();
    assert!(t.server.store().list().unwrap().is_empty());
}

/// Held: a bad record (no engine involvement) keeps the engine live and
/// `terminate` deletes the session.
#[test]
fn terminate_after_a_record_error_deletes_the_session() {
    let t = setup();
    let (mut c, mut s) = connected(&t);
    c.writer().write_all(b"x").unwrap();
    let mut wire = take(&mut c);
    let last = wire.len() - 1;
    wire[last] ^= 1;
    assert!(feed(&mut s, &wire).is_err());
    assert!(!s.is_handshaking());
    s.terminate().unwrap();
    assert!(t.server.store().list().unwrap().is_empty());
}

// ---------------------------------------------------------------------
// terminate and ownership during resumption phases
// ---------------------------------------------------------------------

/// A replayed ResumptionRequest that matches no state (rule 4) fails with
/// decrypt_error and the session is kept. The failed connection never
/// claimed the session (another connection runs it): its `terminate` must
/// not delete the live connection's session.
#[test]
fn bug_terminate_after_a_replayed_rule4_request_deletes_the_live_session() {
    let t = setup();
    let (c1, _s1) = connected(&t);
    let id = c1.session_id().unwrap().clone();
    drop(c1);
    let mut c2 = ClientConnection::resume(t.client.clone(), &id).unwrap();
    let request = take(&mut c2);
    let mut s2 = ServerConnection::new(t.server.clone());
    feed(&mut s2, &request).unwrap();
    pump(&mut c2, &mut s2).unwrap();
    assert!(!c2.is_handshaking() && !s2.is_handshaking());
    // The attacker replays the first flight to a fresh server connection.
    let mut s3 = ServerConnection::new(t.server.clone());
    let err = feed(&mut s3, &request).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::DecryptError), "{err:?}");
    assert_eq!(t.server.store().list().unwrap().len(), 1, "rule 4 keeps it");
    // The application ends the failed connection.
    s3.terminate().unwrap();
    assert_eq!(
        t.server.store().list().unwrap().len(),
        1,
        "terminate() of a connection that never owned the session deleted it"
    );
    // The genuine connection goes on.
    c2.request_key_update().unwrap();
    pump(&mut c2, &mut s2).unwrap();
    c2.writer().write_all(b"still here").unwrap();
    pump(&mut c2, &mut s2).unwrap();
    assert_eq!(read_all(&mut s2), b"still here");
}

/// A replay of a first flight whose commit the server already merged
/// (rule 1) while the genuine connection still waits: the replay's
/// connection never claims the session (SPEC 8). Its `terminate` (e.g.
/// after its handshake timer) must not delete the session the genuine
/// connection completes.
#[test]
fn bug_terminate_of_a_rule1_replay_connection_deletes_the_live_session() {
    let t = setup();
    let (c1, _s1) = connected(&t);
    let id = c1.session_id().unwrap().clone();
    drop(c1);
    let mut c2 = ClientConnection::resume(t.client.clone(), &id).unwrap();
    let request = take(&mut c2);
    let mut s2 = ServerConnection::new(t.server.clone());
    feed(&mut s2, &request).unwrap();
    let response = take(&mut s2);
    // The replay reaches another server connection before the genuine
    // client's EpochKeyUpdate: rule 1 (the commit merged last).
    let mut s3 = ServerConnection::new(t.server.clone());
    feed(&mut s3, &request).unwrap();
    let _resent = take(&mut s3);
    assert!(s3.is_handshaking());
    s3.terminate().unwrap();
    assert_eq!(
        t.server.store().list().unwrap().len(),
        1,
        "terminate() of an unconfirmed rule-1 replay deleted the session"
    );
    // The genuine client completes with s2.
    feed(&mut c2, &response).unwrap();
    pump(&mut c2, &mut s2).unwrap();
    assert!(!s2.is_handshaking());
    c2.writer().write_all(b"genuine").unwrap();
    pump(&mut c2, &mut s2).unwrap();
    assert_eq!(read_all(&mut s2), b"genuine");
}

/// Held: a provisional server session is never stored by `terminate` and
/// a confirmation arriving after it does not store it either.
#[test]
fn provisional_terminate_then_late_confirmation_stores_nothing() {
    let t = setup();
    let mut c = ClientConnection::new(t.client.clone()).unwrap();
    let mut s = ServerConnection::new(t.server.clone());
    feed(&mut s, &take(&mut c)).unwrap();
    feed(&mut c, &take(&mut s)).unwrap();
    assert!(s.is_handshaking());
    s.terminate().unwrap();
    assert!(t.server.store().list().unwrap().is_empty());
    let confirmation = take(&mut c);
    let _ = feed(&mut s, &confirmation);
    assert!(
        t.server.store().list().unwrap().is_empty(),
        "stored after terminate"
    );
    assert_eq!(t.client.store().list().unwrap().len(), 1);
}

/// A ServerHello that crosses our `terminate()` (sent during the
/// handshake) is treated like the late EpochKeyUpdate d90c226 fixed:
/// ignored, nothing stored, no fatal alert behind our close_notify.
#[test]
fn bug_a_late_server_hello_after_terminate_is_answered_with_an_alert() {
    let t = setup();
    let mut c = ClientConnection::new(t.client.clone()).unwrap();
    let mut s = ServerConnection::new(t.server.clone());
    feed(&mut s, &take(&mut c)).unwrap();
    let server_hello = take(&mut s);
    c.terminate().unwrap();
    let _close = take(&mut c);
    let r = feed(&mut c, &server_hello);
    assert!(t.client.store().list().unwrap().is_empty(), "not stored");
    assert!(r.is_ok(), "late ServerHello after terminate(): {r:?}");
    assert!(!c.wants_write(), "an alert left after close_notify");
}

/// Held: a client resuming with early data that the server accepts sees
/// it accepted; the server delivers it as early data and ends its window
/// at the EpochKeyUpdate.
#[test]
fn early_data_accounting_on_both_sides() {
    let t = setup();
    let (c1, _s1) = connected(&t);
    let id = c1.session_id().unwrap().clone();
    drop(c1);
    let mut c2 = ClientConnection::resume(t.client.clone(), &id).unwrap();
    assert!(c2.is_sending_early_data());
    assert!(c2.is_handshaking());
    c2.writer().write_all(b"early").unwrap();
    let mut s2 = ServerConnection::new(t.server.clone());
    feed(&mut s2, &take(&mut c2)).unwrap();
    assert!(s2.is_handshaking());
    feed(&mut c2, &take(&mut s2)).unwrap();
    assert!(!c2.is_handshaking());
    assert!(c2.is_early_data_accepted());
    feed(&mut s2, &take(&mut c2)).unwrap();
    assert!(!s2.is_handshaking());
    let mut early = Vec::new();
    if let Some(mut r) = s2.early_data() {
        std::io::Read::read_to_end(&mut r, &mut early).unwrap();
    }
    assert_eq!(early, b"early");
    // After the window, data is ordinary.
    c2.writer().write_all(b"late").unwrap();
    pump(&mut c2, &mut s2).unwrap();
    assert_eq!(read_all(&mut s2), b"late");
    assert!(s2.early_data().is_none());
}

/// Held: the peer's close_notify drops our pending ConnectionUpdate (back
/// to Synced) once established.
#[test]
fn peer_close_drops_our_pending_update() {
    let t = setup();
    let (mut c, mut s) = connected(&t);
    c.request_key_update().unwrap();
    let _update = take(&mut c);
    assert_eq!(c.profile_state(), State::AwaitingEpochKeyUpdate);
    s.send_close_notify();
    feed(&mut c, &take(&mut s)).unwrap();
    assert_eq!(c.profile_state(), State::Synced);
    assert_eq!(c.poll_timeout(), None);
}

/// Held: a resuming client whose peer closes before the response keeps
/// the pending request (it is resent on the next resumption).
#[test]
fn peer_close_during_resumption_keeps_the_request() {
    let t = setup();
    let (c1, _s1) = connected(&t);
    let id = c1.session_id().unwrap().clone();
    drop(c1);
    let mut c2 = ClientConnection::resume(t.client.clone(), &id).unwrap();
    let _req = take(&mut c2);
    assert_eq!(c2.profile_state(), State::AwaitingResumptionResponse);
    // A plaintext close_notify is refused (unauthenticated).
    let r = feed(&mut c2, &[21, 3, 3, 0, 2, 1, 0]);
    assert!(r.is_err());
    assert_eq!(t.client.store().list().unwrap().len(), 1);
    // The next resumption resends the same request (no early data).
    let c3 = ClientConnection::resume(t.client.clone(), &id).unwrap();
    assert!(!c3.is_sending_early_data());
}

// ---------------------------------------------------------------------
// terminate after store failures (a backend that fails on demand)
// ---------------------------------------------------------------------

mod flaky {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::SystemTime;

    use mls_tls::credentials::{PeerAuth, PeerIdentity, PeerRejected, PeerVerifier, VerifyContext};

    #[derive(Debug, Default)]
    pub struct Revocable(pub AtomicBool);

    impl PeerVerifier for Revocable {
        fn verify(
            &self,
            _: &PeerIdentity,
            _: VerifyContext<'_>,
            _: SystemTime,
        ) -> Result<PeerAuth, PeerRejected> {
            if self.0.load(Ordering::SeqCst) {
                Err("peer revoked".into())
            } else {
                Ok(PeerAuth::Authenticated)
            }
        }
    }
}

fn flaky_setup(
    verifier: Arc<dyn mls_tls::credentials::PeerVerifier>,
) -> (Arc<ClientConfig>, Arc<ServerConfig>, Arc<Faulty>) {
    let blobs = Arc::new(Faulty::default());
    let client = ClientConfig::new(
        Identity::generate("client", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    )
    .update_policy(UpdatePolicy::manual());
    let server = ServerConfig::new(
        Identity::generate("server", SUITE).unwrap(),
        verifier,
        Arc::new(SessionStore::with_backend(blobs.clone())),
    )
    .update_policy(UpdatePolicy::manual());
    (Arc::new(client), Arc::new(server), blobs)
}

/// The store fails to save the peer's update (and would fail to reload):
/// the update waits for the store instead of closing the connection
/// (issue 15), and nothing leaves for it. Once the store is back,
/// `terminate()` ("end the session for good", SPEC 9) deletes the session.
#[test]
fn bug_terminate_after_a_failed_reload_silently_keeps_the_session() {
    use std::sync::atomic::Ordering;
    let (cc, sc, blobs) = flaky_setup(Arc::new(AcceptAnyPeer));
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    assert_eq!(blobs.list().unwrap().len(), 1);
    blobs.failing.store(true, Ordering::SeqCst);
    *blobs.loads_left.lock().unwrap() = Some(1);
    c.request_key_update().unwrap();
    feed(&mut s, &take(&mut c)).unwrap();
    assert!(
        take(&mut s).is_empty(),
        "nothing leaves for an unstored update"
    );
    assert_eq!(s.profile_state(), State::Synced);
    // The store recovers; the application ends the session for good.
    blobs.failing.store(false, Ordering::SeqCst);
    *blobs.loads_left.lock().unwrap() = None;
    s.terminate().unwrap();
    assert!(
        blobs.list().unwrap().is_empty(),
        "terminate() returned Ok but the session is still stored"
    );
}

/// An authenticated failure says to delete the session; the store fails
/// to delete (SessionNotDeleted). Once the store is back, `terminate()`
/// returns Ok, so the session must be gone.
#[test]
fn bug_terminate_after_session_not_deleted_silently_keeps_the_session() {
    use std::sync::atomic::Ordering;
    let revocable = Arc::new(flaky::Revocable::default());
    let (cc, sc, blobs) = flaky_setup(revocable.clone());
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    revocable.0.store(true, Ordering::SeqCst);
    blobs.failing_delete.store(true, Ordering::SeqCst);
    c.request_key_update().unwrap();
    let err = feed(&mut s, &take(&mut c)).unwrap_err();
    assert!(matches!(err, Error::SessionNotDeleted { .. }), "{err:?}");
    assert_eq!(blobs.list().unwrap().len(), 1);
    blobs.failing_delete.store(false, Ordering::SeqCst);
    let r = s.terminate();
    assert!(
        r.is_err() || blobs.list().unwrap().is_empty(),
        "terminate() returned Ok but the session the protocol deleted is still stored"
    );
}

// ---------------------------------------------------------------------
// ownership across configurations that share one store
// ---------------------------------------------------------------------

/// Two server configurations of one process with the same identity and
/// the same store (e.g. two listeners, or a configuration rebuilt with
/// another key log): a resumption accepted through the second one
/// supersedes a connection of the first (SPEC 8: the older connection is
/// closed). 6e9c9a5 kept the claims in the store, shared by both.
fn two_server_configs_one_store() -> (Arc<ClientConfig>, Arc<ServerConfig>, Arc<ServerConfig>) {
    let store = Arc::new(SessionStore::in_memory().unwrap());
    let bytes = Identity::generate("server", SUITE)
        .unwrap()
        .to_bytes()
        .unwrap();
    let server = || {
        Arc::new(
            ServerConfig::new(
                Identity::from_bytes(&bytes).unwrap(),
                Arc::new(AcceptAnyPeer),
                store.clone(),
            )
            .update_policy(UpdatePolicy::manual()),
        )
    };
    let client = ClientConfig::new(
        Identity::generate("client", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    )
    .update_policy(UpdatePolicy::manual());
    (Arc::new(client), server(), server())
}

#[test]
fn bug_a_resumption_through_another_config_on_the_same_store_does_not_supersede() {
    let (cc, sa, sb) = two_server_configs_one_store();
    let mut c1 = ClientConnection::new(cc.clone()).unwrap();
    let mut s1 = ServerConnection::new(sa);
    pump(&mut c1, &mut s1).unwrap();
    let id = c1.session_id().unwrap().clone();
    let mut c2 = ClientConnection::resume(cc, &id).unwrap();
    let mut s2 = ServerConnection::new(sb);
    pump(&mut c2, &mut s2).unwrap();
    assert!(!s2.is_handshaking());
    let r = s1.process_new_packets();
    assert!(
        matches!(r, Err(Error::Superseded)),
        "the older server connection is not closed: {r:?}"
    );
}

/// The bug d90c226 fixes for one configuration, with two: `terminate()`
/// on the older connection deletes the session its successor runs.
#[test]
fn bug_terminate_through_another_config_deletes_the_successors_session() {
    let (cc, sa, sb) = two_server_configs_one_store();
    let mut c1 = ClientConnection::new(cc.clone()).unwrap();
    let mut s1 = ServerConnection::new(sa.clone());
    pump(&mut c1, &mut s1).unwrap();
    let id = c1.session_id().unwrap().clone();
    let mut c2 = ClientConnection::resume(cc, &id).unwrap();
    let mut s2 = ServerConnection::new(sb);
    pump(&mut c2, &mut s2).unwrap();
    s1.terminate().unwrap();
    assert_eq!(
        sa.store().list().unwrap().len(),
        1,
        "the successor's session was deleted by the superseded connection"
    );
    c2.request_key_update().unwrap();
    pump(&mut c2, &mut s2).unwrap();
}

/// `terminate()` whose delete fails reports the store error; retried once
/// the store works, it must delete the session (6e9c9a5 did), not return
/// Ok with the session still stored: the first attempt already marked the
/// session as no longer owned.
#[test]
fn bug_terminate_retried_after_a_failed_delete_silently_keeps_the_session() {
    use std::sync::atomic::Ordering;
    let (cc, sc, blobs) = flaky_setup(Arc::new(AcceptAnyPeer));
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    blobs.failing_delete.store(true, Ordering::SeqCst);
    assert!(s.terminate().is_err(), "the store refused the delete");
    blobs.failing_delete.store(false, Ordering::SeqCst);
    let r = s.terminate();
    assert!(
        r.is_err() || blobs.list().unwrap().is_empty(),
        "terminate() retried returned {r:?} with the session still stored"
    );
}

/// SPEC 9: after a party sends close_notify it sends nothing more. A
/// client that closes before the ServerHello arrives must not send the
/// join confirmation (an application data record) after its close_notify.
#[test]
fn bug_join_confirmation_leaves_after_our_close_notify() {
    let t = setup();
    let mut c = ClientConnection::new(t.client.clone()).unwrap();
    let mut s = ServerConnection::new(t.server.clone());
    feed(&mut s, &take(&mut c)).unwrap();
    c.send_close_notify();
    let _close = take(&mut c);
    feed(&mut c, &take(&mut s)).unwrap();
    let after = take(&mut c);
    assert!(
        after.is_empty(),
        "{} bytes left after close_notify (the ConfirmJoin record)",
        after.len()
    );
}
