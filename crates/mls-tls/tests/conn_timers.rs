//! Every timer of SPEC 9a on a virtual clock: the connection reads no clock
//! of its own, reports its next deadline (`poll_timeout`) and acts on the
//! time it is told (`handle_timeout`).

use std::sync::Arc;
use std::time::Duration;

use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::profile::engine::State;
use mls_tls::store::SessionStore;
use mls_tls::time::{Clock, ManualClock};

mod wire;
use wire::{feed, pump, take};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

struct Setup {
    clock: Arc<ManualClock>,
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

fn setup(confirm_timeout: Duration) -> Setup {
    let clock = Arc::new(ManualClock::new());
    let policy = UpdatePolicy {
        confirm_timeout,
        ..UpdatePolicy::manual()
    };
    let client = ClientConfig::new(
        Identity::generate("client", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    )
    .clock(clock.clone())
    .update_policy(policy);
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
    }
}

fn connected(t: &Setup) -> (ClientConnection, ServerConnection) {
    let mut c = ClientConnection::new(t.client.clone()).unwrap();
    let mut s = ServerConnection::new(t.server.clone());
    pump(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
    (c, s)
}

fn is_timeout(r: Result<(), Error>) -> bool {
    matches!(r, Err(Error::Timeout(_)))
}

#[test]
fn a_client_whose_server_never_answers_times_out_at_the_handshake_deadline() {
    let t = setup(Duration::from_secs(60));
    let start = t.clock.now();
    let mut c = ClientConnection::new(t.client.clone()).unwrap();
    let _hello = take(&mut c);
    assert_eq!(c.poll_timeout(), Some(start + Duration::from_secs(10)));
    t.clock.advance(Duration::from_millis(9_999));
    c.handle_timeout(t.clock.now()).unwrap();
    t.clock.advance(Duration::from_millis(1));
    assert!(is_timeout(c.handle_timeout(t.clock.now())));
    // Sticky, and no alert for a timeout.
    assert!(c.process_new_packets().is_err());
    assert!(!c.wants_write());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_silent_peer_is_dropped_by_a_server_at_the_handshake_deadline() {
    let t = setup(Duration::from_secs(60));
    let mut s = ServerConnection::new(t.server.clone());
    // Not a byte arrives; only time passes.
    t.clock.advance(Duration::from_secs(10));
    assert!(is_timeout(s.handle_timeout(t.clock.now())));
}

#[test]
fn a_provisional_server_session_never_confirmed_is_dropped() {
    let t = setup(Duration::from_secs(60));
    let mut c = ClientConnection::new(t.client.clone()).unwrap();
    let mut s = ServerConnection::new(t.server.clone());
    feed(&mut s, &take(&mut c)).unwrap();
    let _server_hello = take(&mut s); // never reaches the client
    assert!(s.is_handshaking());
    t.clock.advance(Duration::from_secs(11));
    assert!(is_timeout(s.handle_timeout(t.clock.now())));
    assert!(t.server.store().list().unwrap().is_empty());
}

#[test]
fn a_resumption_without_response_times_out_and_keeps_the_session() {
    let t = setup(Duration::from_secs(60));
    let (c, _s) = connected(&t);
    let id = c.session_id().unwrap().clone();
    drop(c);
    let mut c = ClientConnection::resume(t.client.clone(), &id).unwrap();
    let _request = take(&mut c);
    assert!(c.poll_timeout().is_some());
    t.clock.advance(Duration::from_secs(10));
    assert!(is_timeout(c.handle_timeout(t.clock.now())));
    assert_eq!(t.client.store().list().unwrap().len(), 1);
}

#[test]
fn the_confirmation_timer_starts_when_the_update_leaves_not_when_queued() {
    let t = setup(Duration::from_secs(60));
    let (mut c, _s) = connected(&t);
    assert_eq!(c.poll_timeout(), None, "no timer on an idle connection");
    c.request_key_update().unwrap();
    assert_eq!(c.profile_state(), State::AwaitingEpochKeyUpdate);
    // Queued but not written: an hour of a blocked socket is not the peer's
    // fault.
    t.clock.advance(Duration::from_secs(3600));
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t.clock.now()).unwrap();
    let left = t.clock.now();
    let _update = take(&mut c);
    assert_eq!(c.poll_timeout(), Some(left + Duration::from_secs(60)));
    t.clock.advance(Duration::from_secs(59));
    c.handle_timeout(t.clock.now()).unwrap();
    t.clock.advance(Duration::from_secs(1));
    assert!(is_timeout(c.handle_timeout(t.clock.now())));
    // The session is kept for resumption.
    assert_eq!(t.client.store().list().unwrap().len(), 1);
}

/// Issue 11, case 2: the EpochKeyUpdate was received before the deadline
/// but processed after it; received input is processed before any timeout
/// is judged.
#[test]
fn a_confirmation_received_in_time_but_processed_late_is_not_a_timeout() {
    let t = setup(Duration::from_secs(1));
    let (mut c, mut s) = connected(&t);
    c.request_key_update().unwrap();
    feed(&mut s, &take(&mut c)).unwrap();
    let eku = take(&mut s);
    t.clock.advance(Duration::from_millis(500));
    let mut rd = &eku[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
    }
    t.clock.advance(Duration::from_millis(700));
    c.process_new_packets().unwrap();
    assert_eq!(c.profile_state(), State::Synced);
    assert_eq!(c.epoch(), s.epoch());
    // The same through handle_timeout.
    c.request_key_update().unwrap();
    feed(&mut s, &take(&mut c)).unwrap();
    let eku = take(&mut s);
    let mut rd = &eku[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
    }
    t.clock.advance(Duration::from_secs(5));
    c.handle_timeout(t.clock.now()).unwrap();
    assert_eq!(c.profile_state(), State::Synced);
}

#[test]
fn the_update_interval_follows_the_configured_clock() {
    let t = setup(Duration::from_secs(60));
    let policy = UpdatePolicy {
        interval: Some(Duration::from_secs(120)),
        bytes: None,
        confirm_timeout: Duration::from_secs(60),
    };
    let cc = Arc::new((*t.client).clone().update_policy(policy));
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(t.server.clone());
    pump(&mut c, &mut s).unwrap();
    let epoch = c.epoch().unwrap();
    use std::io::Write;
    c.writer().write_all(b"a").unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(c.epoch(), Some(epoch), "no update before the interval");
    t.clock.advance(Duration::from_secs(120));
    c.writer().write_all(b"b").unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(c.epoch(), Some(epoch + 1));
}

#[test]
fn a_resumed_server_whose_epoch_key_update_never_comes_times_out() {
    let t = setup(Duration::from_secs(60));
    let (c, s) = connected(&t);
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    let mut c = ClientConnection::resume(t.client.clone(), &id).unwrap();
    t.clock.advance(Duration::from_secs(3));
    let mut s = ServerConnection::new(t.server.clone());
    feed(&mut s, &take(&mut c)).unwrap();
    let _response_lost = take(&mut s);
    assert!(s.is_handshaking());
    // Counted from the server connection's creation.
    t.clock.advance(Duration::from_millis(9_999));
    s.handle_timeout(t.clock.now()).unwrap();
    t.clock.advance(Duration::from_millis(1));
    assert!(is_timeout(s.handle_timeout(t.clock.now())));
    assert_eq!(t.server.store().list().unwrap().len(), 1);
}

/// Found by review: 64 KiB of data our application does not read used to
/// hold the peer's EpochKeyUpdate back *and* pause the confirmation timer,
/// so the update was neither confirmed nor timed out and we kept sending
/// under the old key for good. The timer runs; its error says why.
#[test]
fn unread_data_does_not_freeze_the_confirmation_timer() {
    use std::io::Write;
    let t = setup(Duration::from_secs(1));
    let (mut c, mut s) = connected(&t);
    c.request_key_update().unwrap();
    let update = take(&mut c);
    let blob = vec![1u8; 128 * 1024];
    let mut to_c = Vec::new();
    let mut sent = 0;
    while sent < blob.len() {
        sent += s.writer().write(&blob[sent..]).unwrap();
        to_c.extend(take(&mut s));
    }
    feed(&mut s, &update).unwrap();
    to_c.extend(take(&mut s)); // the EpochKeyUpdate, behind the data
    let mut rd = &to_c[..];
    while c.wants_read() && !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets().unwrap();
    }
    assert!(!rd.is_empty(), "the confirmation waits behind unread data");
    assert!(c.poll_timeout().is_some());
    t.clock.advance(Duration::from_secs(1));
    let err = c.handle_timeout(t.clock.now()).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)));
    assert!(err.to_string().contains("unread"), "{err}");
}

/// Found by the load run (1,000 connections streaming both ways on 2
/// cores): an EpochKeyUpdate queued behind megabytes of socket buffers took
/// longer than the timeout although both peers were alive and reading, and
/// healthy links died. Records arriving from the peer (or the transport
/// taking our bytes) show progress and extend the deadline, up to
/// CONFIRM_CAP timeouts after the update left.
#[test]
fn a_peer_that_keeps_making_progress_extends_the_confirmation_deadline_up_to_a_cap() {
    use std::io::Write;
    let t = setup(Duration::from_secs(60));
    let (mut c, mut s) = connected(&t);
    c.request_key_update().unwrap();
    let left = t.clock.now();
    let _update_stuck_in_the_network = take(&mut c);
    let cap = left + Duration::from_secs(60) * mls_tls::conn::CONFIRM_CAP;
    // The peer keeps sending data (its confirmation is behind it).
    let mut last = left;
    while t.clock.now() + Duration::from_secs(30) < cap {
        t.clock.advance(Duration::from_secs(30));
        s.writer().write_all(b"more data from a live peer").unwrap();
        feed(&mut c, &take(&mut s)).unwrap();
        last = t.clock.now();
        assert_eq!(
            c.poll_timeout(),
            Some((last + Duration::from_secs(60)).min(cap))
        );
        c.handle_timeout(t.clock.now()).unwrap();
    }
    // Without progress the usual timeout applies, and never past the cap.
    t.clock
        .advance((last + Duration::from_secs(60)).min(cap) - t.clock.now());
    assert!(is_timeout(c.handle_timeout(t.clock.now())));
}
