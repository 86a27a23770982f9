//! Connections driven in memory (no sockets): bytes are moved, captured,
//! replayed and tampered with between the two sides.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use mls_tls::alert::AlertDescription;
use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::keylog::KeyLog;
use mls_tls::record::{ContentType, Deframer, RecordOpener};
use mls_tls::schedule::{HashAlgorithm, TrafficSecret};
use mls_tls::store::SessionStore;

mod wire;
use wire::{feed, pump, read_all, take};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

fn configs(suite: CipherSuite) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let c = ClientConfig::new(
        Identity::generate("client", suite).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    );
    let s = ServerConfig::new(
        Identity::generate("server", suite).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    );
    (Arc::new(c), Arc::new(s))
}

fn connected(
    suite: CipherSuite,
) -> (
    ClientConnection,
    ServerConnection,
    Arc<ClientConfig>,
    Arc<ServerConfig>,
) {
    let (cc, sc) = configs(suite);
    let mut c = ClientConnection::new(cc.clone()).unwrap();
    let mut s = ServerConnection::new(sc.clone());
    pump(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
    (c, s, cc, sc)
}

#[test]
fn handshake_and_data_both_ways_every_suite() {
    for suite in CipherSuite::ALL {
        let (mut c, mut s, _, _) = connected(suite);
        c.writer().write_all(b"from client").unwrap();
        s.writer().write_all(b"from server").unwrap();
        pump(&mut c, &mut s).unwrap();
        assert_eq!(read_all(&mut s), b"from client", "{suite}");
        assert_eq!(read_all(&mut c), b"from server", "{suite}");
        assert_eq!(c.epoch(), s.epoch());
        assert_eq!(c.session_id(), s.session_id());
    }
}

#[test]
fn server_can_send_before_confirmation_and_client_data_queued_before_keys() {
    let (cc, sc) = configs(SUITE);
    let mut c = ClientConnection::new(cc).unwrap();
    c.writer().write_all(b"queued early by the app").unwrap();
    let mut s = ServerConnection::new(sc);
    feed(&mut s, &take(&mut c)).unwrap();
    // 0.5-RTT: the server writes right after its ServerHello.
    assert!(s.is_handshaking());
    s.writer().write_all(b"half rtt").unwrap();
    feed(&mut c, &take(&mut s)).unwrap();
    assert_eq!(read_all(&mut c), b"half rtt");
    feed(&mut s, &take(&mut c)).unwrap();
    assert!(!s.is_handshaking());
    assert_eq!(read_all(&mut s), b"queued early by the app");
}

#[test]
fn key_updates_by_policy_and_request_with_collisions() {
    let (cc, sc) = configs(SUITE);
    let small = UpdatePolicy {
        interval: None,
        bytes: Some(64 * 1024),
        ..UpdatePolicy::default()
    };
    let cc = Arc::new((*cc).clone().update_policy(small));
    let sc = Arc::new((*sc).clone().update_policy(small));
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    let start = c.epoch().unwrap();
    let chunk = vec![7u8; 40 * 1024];
    let (mut got_c, mut got_s) = (0, 0);
    for i in 0..40 {
        c.writer().write_all(&chunk).unwrap();
        s.writer().write_all(&chunk).unwrap();
        if i % 10 == 5 {
            // Both ask at once: a collision.
            let _ = c.request_key_update();
            let _ = s.request_key_update();
        }
        pump(&mut c, &mut s).unwrap();
        got_s += read_all(&mut s).len();
        got_c += read_all(&mut c).len();
    }
    assert_eq!((got_c, got_s), (40 * chunk.len(), 40 * chunk.len()));
    assert_eq!(c.epoch(), s.epoch());
    assert!(
        c.epoch().unwrap() >= start + 20,
        "epochs {start} -> {:?}",
        c.epoch()
    );
}

#[test]
fn resumption_delivers_early_data_marked_early() {
    let (c, mut s, cc, sc) = connected(SUITE);
    let id = c.session_id().unwrap().clone();
    let epoch = c.epoch().unwrap();
    drop((c, s));
    let mut c = ClientConnection::resume(cc, &id).unwrap();
    assert!(c.is_sending_early_data());
    c.writer().write_all(b"early bytes").unwrap();
    s = ServerConnection::new(sc);
    feed(&mut s, &take(&mut c)).unwrap();
    let mut early = Vec::new();
    s.early_data()
        .expect("early data")
        .read_to_end(&mut early)
        .unwrap();
    assert_eq!(early, b"early bytes");
    pump(&mut c, &mut s).unwrap();
    assert!(c.is_early_data_accepted());
    assert!(!c.is_handshaking() && !s.is_handshaking());
    c.writer().write_all(b"after").unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(read_all(&mut s), b"after");
    assert_eq!(c.epoch(), s.epoch());
    assert!(c.epoch().unwrap() >= epoch + 2);
}

#[test]
fn replayed_first_flight_gets_no_early_data_and_genuine_client_resumes() {
    let (c, s, cc, sc) = connected(SUITE);
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    let mut c = ClientConnection::resume(cc.clone(), &id).unwrap();
    c.writer().write_all(b"transfer 100 EUR").unwrap();
    let first_flight = take(&mut c);
    let mut s = ServerConnection::new(sc.clone());
    feed(&mut s, &first_flight).unwrap();
    pump(&mut c, &mut s).unwrap();
    assert!(c.is_early_data_accepted());
    // The recorded flight, replayed on a new connection.
    let mut replay = ServerConnection::new(sc.clone());
    let err = feed(&mut replay, &first_flight).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::DecryptError));
    assert!(replay.early_data().is_none());
    // The alert goes out in plaintext (no keys on that connection).
    assert_eq!(take(&mut replay), [21, 3, 3, 0, 2, 2, 51]);
    assert_eq!(sc.store().list().unwrap().len(), 1);
    // The genuine client still resumes.
    drop((c, s));
    let mut c = ClientConnection::resume(cc, &id).unwrap();
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
}

/// SPEC 8: a replay of a flight whose request the server already applied
/// (rule 1) has its early data decrypted and discarded, never delivered;
/// the connection is kept (closing it would let an attacker deny the
/// genuine client) and the session too.
#[test]
fn replay_of_an_applied_request_with_lost_response_gets_no_early_data() {
    let (c, s, cc, sc) = connected(SUITE);
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    let mut c = ClientConnection::resume(cc, &id).unwrap();
    c.writer().write_all(b"transfer 100 EUR").unwrap();
    let first_flight = take(&mut c);
    // The server applies the request; its response never arrives.
    let mut s = ServerConnection::new(sc.clone());
    feed(&mut s, &first_flight).unwrap();
    let _lost = take(&mut s);
    // An attacker replays the flight: it matches the commit the server
    // applied (rule 1), so the early data can only be a replay.
    let mut replay = ServerConnection::new(sc.clone());
    feed(&mut replay, &first_flight).unwrap();
    assert!(replay.early_data().is_none());
    assert!(read_all(&mut replay).is_empty());
    assert!(replay.is_handshaking());
    assert_eq!(sc.store().list().unwrap().len(), 1);
}

/// The records of a first flight: (the plaintext handshake records, the
/// rest).
fn split_flight(flight: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut at = 0;
    while at + 5 <= flight.len() && flight[at] == 22 {
        at += 5 + u16::from_be_bytes([flight[at + 3], flight[at + 4]]) as usize;
    }
    (flight[..at].to_vec(), flight[at..].to_vec())
}

/// Issue 11, case 5: an on-path party forwards only the ResumptionRequest
/// of a genuine flight to the server on another connection, then lets the
/// genuine flight (request plus early data) through. The server applied
/// the request on the attacker's connection, so the genuine flight meets
/// rule 1: its response goes in plaintext and its early data is dropped.
/// The client must report the early data as not accepted (it used to say
/// accepted), resend it, and the genuine connection must carry on.
#[test]
fn early_data_is_not_reported_accepted_when_the_request_was_forwarded_alone() {
    let (c, s, cc, sc) = connected(SUITE);
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    let mut c = ClientConnection::resume(cc, &id).unwrap();
    c.writer().write_all(b"transfer 100 EUR").unwrap();
    let flight = take(&mut c);
    let (request, early) = split_flight(&flight);
    assert!(!request.is_empty() && !early.is_empty());

    let mut attacker_side = ServerConnection::new(sc.clone());
    feed(&mut attacker_side, &request).unwrap();
    let _swallowed = take(&mut attacker_side);

    let mut s = ServerConnection::new(sc.clone());
    feed(&mut s, &flight).unwrap();
    assert!(
        s.early_data().is_none(),
        "early data delivered under rule 1"
    );
    pump(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
    assert!(!c.is_early_data_accepted());
    assert!(read_all(&mut s).is_empty());
    // The application resends; the genuine connection carries it.
    c.writer().write_all(b"transfer 100 EUR").unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(read_all(&mut s), b"transfer 100 EUR");
    assert_eq!(c.epoch(), s.epoch());
    // The attacker's connection is the older one now.
    assert!(attacker_side.process_new_packets().is_err());
}

#[test]
fn tampered_record_is_bad_record_mac_and_alert_reaches_peer() {
    let (mut c, mut s, _, _) = connected(SUITE);
    c.writer().write_all(b"payload").unwrap();
    let mut wire = take(&mut c);
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let err = feed(&mut s, &wire).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::BadRecordMac));
    let alert = take(&mut s);
    let err = feed(&mut c, &alert).unwrap_err();
    assert_eq!(err, Error::AlertReceived(AlertDescription::BadRecordMac));
}

#[test]
fn plaintext_record_after_keys_is_unexpected_message() {
    let (mut c, mut s, _, _) = connected(SUITE);
    let err = feed(&mut s, &[22, 3, 3, 0, 4, 3, 0, 0, 0]).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::UnexpectedMessage));
    let err = feed(&mut c, &take(&mut s)).unwrap_err();
    assert_eq!(
        err,
        Error::AlertReceived(AlertDescription::UnexpectedMessage)
    );
}

#[test]
fn oversized_record_is_record_overflow() {
    let (mut c, mut s, _, _) = connected(SUITE);
    let mut huge = vec![23, 3, 3, 0x41, 0x01];
    huge.resize(5 + 0x4101, 0);
    let err = feed(&mut s, &huge).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::RecordOverflow));
    let err = feed(&mut c, &take(&mut s)).unwrap_err();
    assert_eq!(err, Error::AlertReceived(AlertDescription::RecordOverflow));
}

#[test]
fn resuming_an_unknown_session_is_handshake_failure() {
    let (c, _s, cc, _) = connected(SUITE);
    let id = c.session_id().unwrap().clone();
    let (_, other_server) = configs(SUITE);
    let mut c = ClientConnection::resume(cc, &id).unwrap();
    let mut s = ServerConnection::new(other_server);
    let err = feed(&mut s, &take(&mut c)).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::HandshakeFailure));
    let err = feed(&mut c, &take(&mut s)).unwrap_err();
    assert_eq!(
        err,
        Error::AlertReceived(AlertDescription::HandshakeFailure)
    );
}

#[test]
fn close_notify_is_a_half_close() {
    let (mut c, mut s, _, _) = connected(SUITE);
    c.writer().write_all(b"last words").unwrap();
    c.send_close_notify();
    feed(&mut s, &take(&mut c)).unwrap();
    assert_eq!(read_all(&mut s), b"last words");
    assert_eq!(s.reader().read(&mut [0u8; 8]).unwrap(), 0);
    // The other direction still works.
    s.writer().write_all(b"reply").unwrap();
    feed(&mut c, &take(&mut s)).unwrap();
    assert_eq!(read_all(&mut c), b"reply");
    assert!(c.writer().write_all(b"more").is_err());
}

#[test]
fn terminate_deletes_the_session() {
    let (mut c, _s, cc, _) = connected(SUITE);
    assert_eq!(cc.store().list().unwrap().len(), 1);
    c.terminate().unwrap();
    assert!(cc.store().list().unwrap().is_empty());
}

/// (label, group id, epoch, secret) of each logged line.
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

#[test]
fn key_log_lets_a_third_party_decrypt_captured_records() {
    let (cc, sc) = configs(SUITE);
    let log = Arc::new(Collect::default());
    let cc = Arc::new((*cc).clone().key_log(log.clone()));
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc);
    // Capture everything the client sends.
    let mut capture = Vec::new();
    for _ in 0..3 {
        let out = take(&mut c);
        capture.extend_from_slice(&out);
        feed(&mut s, &out).unwrap();
        feed(&mut c, &take(&mut s)).unwrap();
    }
    c.writer().write_all(b"secret message").unwrap();
    let out = take(&mut c);
    capture.extend_from_slice(&out);
    feed(&mut s, &out).unwrap();
    assert_eq!(read_all(&mut s), b"secret message");

    let lines = log.0.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.0 == "MLSTLS_SERVER_TRAFFIC_SECRET"));
    let (_, gid, epoch, secret) = lines
        .iter()
        .find(|l| l.0 == "MLSTLS_CLIENT_TRAFFIC_SECRET")
        .unwrap()
        .clone();
    assert_eq!(gid, c.session_id().unwrap().0);
    assert_eq!(epoch, 1);

    // A third party with only the logged secret and the record layer.
    let keys = TrafficSecret::new(HashAlgorithm::Sha256, secret)
        .unwrap()
        .derive_keys(SUITE.aead())
        .unwrap();
    let mut keys = Some(keys);
    let mut opener = RecordOpener::new();
    let mut d = Deframer::new();
    assert_eq!(d.push(&capture), capture.len());
    let mut app = Vec::new();
    while let Some(record) = d.next_record().unwrap() {
        if record.outer_type() == 23 {
            if let Some(k) = keys.take() {
                opener.install(k).unwrap();
            }
        }
        let msg = opener.open(record).unwrap();
        if msg.typ == ContentType::ApplicationData {
            app.extend_from_slice(msg.payload);
        }
    }
    assert_eq!(app, b"secret message");
}

#[test]
fn older_connection_is_superseded_by_a_resumption() {
    let (mut c1, mut s1, cc, sc) = connected(SUITE);
    let id = c1.session_id().unwrap().clone();
    // The session is resumed on a second connection while the first lives.
    let mut c2 = ClientConnection::resume(cc.clone(), &id).unwrap();
    let mut s2 = ServerConnection::new(sc.clone());
    pump(&mut c2, &mut s2).unwrap();
    assert!(!c2.is_handshaking());
    // The first connection is closed on its data path too (close_notify).
    assert!(c1.writer().write_all(b"late").is_err());
    assert_eq!(s1.process_new_packets().unwrap_err(), Error::Superseded);
    assert!(!take(&mut s1).is_empty(), "close_notify queued");
    // And a stale engine's transition fails too.
    assert!(s1.request_key_update().is_err());
    // For good: the stale connection never touches the session again.
    assert!(c1.request_key_update().is_err());
    assert!(c1.writer().write_all(b"x").is_err());
    // The session and the new connection are unharmed.
    c2.request_key_update().unwrap();
    pump(&mut c2, &mut s2).unwrap();
    c2.writer().write_all(b"still fine").unwrap();
    pump(&mut c2, &mut s2).unwrap();
    assert_eq!(read_all(&mut s2), b"still fine");
    assert_eq!(cc.store().list().unwrap().len(), 1);
    assert_eq!(sc.store().list().unwrap().len(), 1);
}

/// `terminate` ends this connection's session for good, but a connection
/// that a resumption superseded no longer owns it: deleting it would end
/// the newer connection's session behind its back.
#[test]
fn terminate_on_a_superseded_connection_keeps_the_successors_session() {
    let (mut c1, mut s1, cc, sc) = connected(SUITE);
    let id = c1.session_id().unwrap().clone();
    let mut c2 = ClientConnection::resume(cc.clone(), &id).unwrap();
    let mut s2 = ServerConnection::new(sc.clone());
    pump(&mut c2, &mut s2).unwrap();
    // Both sides of the old connection end "for good".
    c1.terminate().unwrap();
    s1.terminate().unwrap();
    assert_eq!(cc.store().list().unwrap().len(), 1, "client session kept");
    assert_eq!(sc.store().list().unwrap().len(), 1, "server session kept");
    // The successor still updates and carries data.
    c2.request_key_update().unwrap();
    pump(&mut c2, &mut s2).unwrap();
    c2.writer().write_all(b"mine").unwrap();
    pump(&mut c2, &mut s2).unwrap();
    assert_eq!(read_all(&mut s2), b"mine");
    // The owner's terminate does delete it.
    c2.terminate().unwrap();
    assert!(cc.store().list().unwrap().is_empty());
}

/// A peer that has not seen our `terminate` yet may still confirm our
/// update: its EpochKeyUpdate is not a protocol violation, the deleted
/// session stays deleted, and no alert goes back.
#[test]
fn a_late_epoch_key_update_after_terminate_is_ignored() {
    let (mut c, mut s, cc, _) = connected(SUITE);
    c.request_key_update().unwrap();
    // The ConnectionUpdate reaches the server, which answers.
    feed(&mut s, &take(&mut c)).unwrap();
    let answer = take(&mut s);
    assert!(!answer.is_empty());
    c.terminate().unwrap();
    assert!(cc.store().list().unwrap().is_empty());
    feed(&mut c, &answer).unwrap();
    let state = c.process_new_packets();
    assert!(state.is_ok(), "{state:?}");
    assert!(cc.store().list().unwrap().is_empty(), "not stored again");
}

/// The stuck direction of SPEC 8 on real connections: the initial
/// responder's early data used an epoch number under a commit that was
/// later dropped; when the session reaches that epoch again its sending is
/// stuck, it moves on with a plaintext ConnectionUpdate, and data flows.
#[test]
fn stuck_direction_recovers_on_the_wire() {
    let (a, b, ac, bc) = connected(SUITE);
    let id = a.session_id().unwrap().clone();
    drop((a, b));
    // Each party can resume as the current initiator with its own config.
    let b_as_client = Arc::new(ClientConfig {
        common: bc.common.clone(),
    });
    let a_as_server = Arc::new(ServerConfig {
        common: ac.common.clone(),
    });
    // B resumes; A answers; A's confirmation (EpochKeyUpdate) is lost.
    let mut b1 = ClientConnection::resume(b_as_client.clone(), &id).unwrap();
    let mut a1 = ServerConnection::new(a_as_server);
    feed(&mut a1, &take(&mut b1)).unwrap();
    feed(&mut b1, &take(&mut a1)).unwrap();
    let _lost_confirmation = take(&mut b1);
    // B resumes again with a fresh commit and early data; the flight is lost.
    let mut b2 = ClientConnection::resume(b_as_client, &id).unwrap();
    assert!(b2.is_sending_early_data());
    b2.writer().write_all(b"lost early data").unwrap();
    let _lost_flight = take(&mut b2);
    // A resumes: B (Awaiting ResumptionResponse, initial responder) yields.
    let mut a2 = ClientConnection::resume(ac, &id).unwrap();
    let mut b3 = ServerConnection::new(bc);
    feed(&mut b3, &take(&mut a2)).unwrap();
    feed(&mut a2, &take(&mut b3)).unwrap();
    // A's confirmation and its first data travel together; B reaches the
    // epoch whose number its lost early data used, so B is stuck and must
    // still accept A's data as ordinary data, not as (replayed) early data.
    a2.writer().write_all(b"from A").unwrap();
    feed(&mut b3, &take(&mut a2)).unwrap();
    assert_eq!(read_all(&mut b3), b"from A");
    assert!(!b3.is_handshaking());
    b3.writer().write_all(b"from B").unwrap();
    pump(&mut a2, &mut b3).unwrap();
    assert_eq!(read_all(&mut a2), b"from B");
    assert_eq!(a2.epoch(), b3.epoch());
    assert_eq!(a2.profile_state(), mls_tls::profile::engine::State::Synced);
    assert_eq!(b3.profile_state(), mls_tls::profile::engine::State::Synced);
}
