//! Review 15 (hostile review of ae0d5fe + b87c2d7, store outage): key
//! updates that wait for an unavailable session store. Every `bug_` test
//! here failed on b87c2d7 and names the problem it guards against. The
//! `lost_acknowledgement` tests at the end cover the whole kind of the last
//! two: a save that committed although the backend reported a failure.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::error::Error;
use mls_tls::keylog::KeyLog;
use mls_tls::message::{HandshakeMessage, HandshakeType};
use mls_tls::profile::engine::State;
use mls_tls::record::{ContentType, RecordSealer};
use mls_tls::schedule::{HashAlgorithm, TrafficSecret};
use mls_tls::store::SessionStore;
use mls_tls::time::{Clock, ManualClock};

mod faulty;
mod wire;
use faulty::Faulty;
use wire::{feed, pump, read_all, take};

use faulty::SUITE;

type LogLine = (String, u64, Vec<u8>);

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<LogLine>>);

impl KeyLog for Collect {
    fn log(&self, label: &str, _group_id: &[u8], epoch: u64, secret: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((label.into(), epoch, secret.into()));
    }
}

struct Setup {
    clock: Arc<ManualClock>,
    flaky: Arc<Faulty>,
    log: Arc<Collect>,
    c: ClientConnection,
    s: ServerConnection,
    cc: Arc<ClientConfig>,
    sc: Arc<ServerConfig>,
}

/// A connected pair; the server's store is `Flaky`, the client logs keys.
fn setup() -> Setup {
    setup_policy(UpdatePolicy::manual())
}

fn setup_policy(policy: UpdatePolicy) -> Setup {
    let clock = Arc::new(ManualClock::new());
    let flaky = Arc::new(Faulty::default());
    let log = Arc::new(Collect::default());
    let (cc, sc) = faulty::configs(
        &clock,
        SessionStore::in_memory().unwrap(),
        SessionStore::with_backend(flaky.clone()),
    );
    let cc = Arc::new(cc.key_log(log.clone()));
    let sc = Arc::new(sc.update_policy(policy));
    let mut c = ClientConnection::new(cc.clone()).unwrap();
    let mut s = ServerConnection::new(sc.clone());
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(1), Some(1)));
    Setup {
        clock,
        flaky,
        log,
        c,
        s,
        cc,
        sc,
    }
}

/// A record sealer with the client's send keys of `epoch`, after `skip`
/// records.
fn client_sealer(t: &Setup, epoch: u64, skip: usize) -> RecordSealer {
    let lines = t.log.0.lock().unwrap().clone();
    let (_, _, secret) = lines
        .iter()
        .rev()
        .find(|l| l.0 == "MLSTLS_CLIENT_TRAFFIC_SECRET" && l.1 == epoch)
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
    sealer
}

/// The server has the client's ConnectionUpdate waiting (store down).
fn with_deferred_update() -> Setup {
    let mut t = setup();
    t.flaky.down.store(true, Ordering::SeqCst);
    t.c.request_key_update().unwrap();
    pump(&mut t.c, &mut t.s).unwrap();
    assert_eq!(t.c.profile_state(), State::AwaitingEpochKeyUpdate);
    assert_eq!(t.s.epoch(), Some(1));
    assert!(t.s.poll_timeout().is_some(), "a retry is scheduled");
    t
}

/// SPEC 9a: "A peer can never make a connection hold more than a few
/// maximal records plus these limits." While a ConnectionUpdate waits for
/// the store, `Engine::handle` (profile/engine/mod.rs) pushes every further
/// handshake message into `deferred` without any bound or check: a hostile
/// peer (or one that just keeps talking) makes the connection hold an
/// unbounded amount of memory for as long as the store is down.
#[test]
fn bug_the_deferred_queue_is_unbounded_under_a_handshake_flood() {
    // Find how many records the client sent under epoch 1 (its
    // ConnectionUpdate included) by trying each count on a fresh pair.
    let mut found = None;
    for skip in 0..8 {
        let mut t = with_deferred_update();
        let mut sealer = client_sealer(&t, 1, skip);
        let junk = HandshakeMessage::new(HandshakeType::ConnectionUpdate, vec![0u8; 100]);
        let mut rec = Vec::new();
        sealer
            .seal(ContentType::Handshake, &junk.encode(), &mut rec)
            .unwrap();
        if feed(&mut t.s, &rec).is_ok() {
            found = Some((t, sealer));
            break;
        }
    }
    let (mut t, mut sealer) = found.expect("a forged record under epoch 1 is accepted");
    // 16 KB handshake messages, 4000 of them: 64 MB queued.
    let big = HandshakeMessage::new(HandshakeType::ConnectionUpdate, vec![0xAA; 16_000]);
    let body = big.encode();
    let mut refused = false;
    for _ in 0..4000 {
        let mut rec = Vec::new();
        // A 16 KB message may need more than one record.
        for chunk in body.chunks(16_000) {
            sealer
                .seal(ContentType::Handshake, chunk, &mut rec)
                .unwrap();
        }
        if feed(&mut t.s, &rec).is_err() {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "64 MB of handshake messages were accepted and held while the store is down"
    );
}

/// `terminate()` while the peer's ConnectionUpdate waits: the retry timer
/// is still reported by `poll_timeout`, and once the store is back
/// `handle_timeout` runs `retry_deferred` -> `handle_now`, which skips the
/// `terminated` check of `Engine::handle` (profile/engine/mod.rs): the
/// waiting message is processed on a terminated engine.
#[test]
fn bug_terminate_leaves_deferred_messages_that_are_retried_later() {
    let mut t = with_deferred_update();
    // The store is still down: the delete fails, the session is kept; the
    // connection is ended all the same (close_notify queued).
    let _ = t.s.terminate();
    let _ = take(&mut t.s);
    t.flaky.down.store(false, Ordering::SeqCst);
    t.clock.advance(Duration::from_secs(30));
    let after = t.s.poll_timeout();
    let r = t.s.handle_timeout(t.clock.now());
    assert!(
        after.is_none() && r.is_ok(),
        "after terminate: poll_timeout {after:?}, handle_timeout {r:?}"
    );
}

/// A save that committed although the backend reported a failure (the
/// acknowledgement was lost). The transition rolls back in memory to the
/// old version (transition.rs); the deferred ConnectionUpdate is retried
/// against the old state and its save fails the version precondition: the
/// connection ends with Superseded, though nobody else touched the session.
/// The outage the fix is for (issue 15) still kills the connection when
/// the failure is a timeout after COMMIT, the common failure of a remote
/// database.
#[test]
fn bug_a_save_that_committed_but_reported_failure_ends_the_connection() {
    let mut t = setup();
    t.flaky.lie.store(true, Ordering::SeqCst);
    t.c.request_key_update().unwrap();
    pump(&mut t.c, &mut t.s).unwrap();
    // The update waits (the save "failed").
    assert_eq!(t.s.epoch(), Some(1));
    t.clock.advance(Duration::from_secs(2));
    let r = t.s.handle_timeout(t.clock.now());
    let r = r.and_then(|_| pump(&mut t.c, &mut t.s));
    assert!(r.is_ok(), "the retry after a lost acknowledgement: {r:?}");
    assert_eq!((t.c.epoch(), t.s.epoch()), (Some(2), Some(2)));
}

/// We sent a ConnectionUpdate; the peer confirmed it with its
/// EpochKeyUpdate, which waits for our store. The peer is idle (nothing
/// more to say). The confirmation timer (timers.rs poll_timeout:
/// `update_sent` is still set) fires after `confirm_timeout` (60 s by
/// default) and ends the connection with a confirmation timeout although
/// the peer did confirm: an outage of a minute still kills every
/// connection that had an update in flight.
#[test]
fn bug_a_waiting_epoch_key_update_times_out_as_unconfirmed() {
    let mut t = setup();
    t.s.request_key_update().unwrap();
    feed(&mut t.c, &take(&mut t.s)).unwrap();
    let eku = take(&mut t.c);
    t.flaky.down.store(true, Ordering::SeqCst);
    feed(&mut t.s, &eku).unwrap();
    assert_eq!(t.s.profile_state(), State::AwaitingEpochKeyUpdate);
    // 70 s of outage, the timers driven as an adapter would.
    for _ in 0..70 {
        t.clock.advance(Duration::from_secs(1));
        let r = t.s.handle_timeout(t.clock.now());
        assert!(r.is_ok(), "at {:?}: {r:?}", t.clock.now());
    }
    t.flaky.down.store(false, Ordering::SeqCst);
    t.clock.advance(Duration::from_secs(10));
    t.s.handle_timeout(t.clock.now()).unwrap();
    assert_eq!(t.s.profile_state(), State::Synced);
    t.c.writer().write_all(b"after").unwrap();
    pump(&mut t.c, &mut t.s).unwrap();
    assert_eq!(read_all(&mut t.s), b"after");
}

/// Our close_notify goes out while the peer's ConnectionUpdate waits for
/// the store. Without an outage a ConnectionUpdate handled after our
/// close_notify changes nothing (the peer drops its pending update when it
/// reads our close_notify). With one, the store comes back and
/// `retry_store` (conn/core/mod.rs, from `handle_timeout`) applies the
/// waiting update anyway: the server stores epoch 2 and sends nothing,
/// while the client, on our close_notify, dropped its pending commit and
/// stays at epoch 1. The session can never be resumed again ("resumption
/// request matches no state"): a silent loss of the session.
#[test]
fn bug_a_waiting_update_lands_after_our_close_notify_and_the_session_is_lost() {
    let mut t = with_deferred_update();
    t.s.send_close_notify();
    let closing = take(&mut t.s);
    t.flaky.down.store(false, Ordering::SeqCst);
    t.clock.advance(Duration::from_secs(30));
    t.s.handle_timeout(t.clock.now()).unwrap();
    feed(&mut t.c, &closing).unwrap();
    feed(&mut t.c, &take(&mut t.s)).unwrap();
    t.c.send_close_notify();
    let _ = feed(&mut t.s, &take(&mut t.c));
    assert_eq!(
        t.c.epoch(),
        t.s.epoch(),
        "after a clean close both sides hold the same epoch"
    );
    let id = t.c.session_id().unwrap().clone();
    drop((t.c, t.s));
    let mut c2 = ClientConnection::resume(t.cc.clone(), &id).unwrap();
    let mut s2 = ServerConnection::new(t.sc.clone());
    let req = take(&mut c2);
    let r = feed(&mut s2, &req);
    assert!(r.is_ok(), "resumption after the clean close: {r:?}");
}

/// Our own policy update while the store is down is retried every
/// second, for ever (`maybe_update`: `update_retry_at = now + STORE_RETRY`,
/// no backoff), unlike the peer's waiting update (1, 2, 4, then 8 s). Each
/// try costs the store's own timeout when the database does not answer
/// (the reason STORE_RETRY_MAX exists); a fleet of connections with data
/// flowing hits a down database once per second per connection.
#[test]
fn bug_our_postponed_update_retries_the_store_every_second() {
    let mut t = setup_policy(UpdatePolicy {
        interval: Some(Duration::from_secs(10)),
        ..UpdatePolicy::manual()
    });
    t.flaky.down.store(true, Ordering::SeqCst);
    let before = t.flaky.calls.load(Ordering::SeqCst);
    for _ in 0..120 {
        t.clock.advance(Duration::from_secs(1));
        t.s.writer().write_all(b"data").unwrap();
        pump(&mut t.c, &mut t.s).unwrap();
    }
    let calls = t.flaky.calls.load(Ordering::SeqCst) - before;
    // With the 1, 2, 4, 8 s backoff: about 17 tries in 120 s.
    assert!(calls <= 20, "{calls} store calls in 120 s of outage");
}

/// The same lost acknowledgement on our own update: `request_key_update`
/// reports a store error and sends nothing, but the pending commit is
/// stored at the next version while memory rolled back. The next try ends
/// the connection with Superseded.
#[test]
fn bug_our_update_after_a_lost_acknowledgement_ends_the_connection() {
    let mut t = setup();
    t.flaky.lie.store(true, Ordering::SeqCst);
    let err = t.s.request_key_update().unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert!(take(&mut t.s).is_empty(), "nothing sent");
    let r =
        t.s.request_key_update()
            .and_then(|_| pump(&mut t.c, &mut t.s));
    assert!(r.is_ok(), "the second try: {r:?}");
    assert_eq!((t.c.epoch(), t.s.epoch()), (Some(2), Some(2)));
}

/// The store's record of the server's one session.
fn stored_version(t: &Setup) -> Option<u64> {
    let id = t.s.session_id().unwrap().clone();
    t.flaky.version(&id)
}

/// The peer's EpochKeyUpdate for our update: its save is acknowledged as
/// failed but landed, and the store goes down for the first retries. The
/// retries find out, the update completes, data flows both ways.
#[test]
fn lost_acknowledgement_of_the_epoch_key_update_is_recovered() {
    let mut t = setup();
    let v = stored_version(&t).unwrap();
    t.s.request_key_update().unwrap();
    feed(&mut t.c, &take(&mut t.s)).unwrap();
    let eku = take(&mut t.c);
    t.flaky.lie.store(true, Ordering::SeqCst);
    feed(&mut t.s, &eku).unwrap();
    assert_eq!(t.s.profile_state(), State::AwaitingEpochKeyUpdate);
    // The update's commit (v + 1) and the EpochKeyUpdate's save (v + 2).
    assert_eq!(stored_version(&t), Some(v + 2), "the save landed");
    t.flaky.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        t.clock.advance(Duration::from_secs(8));
        t.s.handle_timeout(t.clock.now()).unwrap();
    }
    assert_eq!(t.s.profile_state(), State::AwaitingEpochKeyUpdate);
    t.flaky.down.store(false, Ordering::SeqCst);
    t.clock.advance(Duration::from_secs(8));
    t.s.handle_timeout(t.clock.now()).unwrap();
    assert_eq!(t.s.profile_state(), State::Synced);
    // The retry replaced our own unacknowledged write.
    assert_eq!(stored_version(&t), Some(v + 3));
    t.c.writer().write_all(b"to server").unwrap();
    t.s.writer().write_all(b"to client").unwrap();
    pump(&mut t.c, &mut t.s).unwrap();
    assert_eq!(read_all(&mut t.s), b"to server");
    assert_eq!(read_all(&mut t.c), b"to client");
    assert_eq!((t.c.epoch(), t.s.epoch()), (Some(2), Some(2)));
}

/// Ending the session for good after a lost acknowledgement deletes it
/// at the version that landed: nothing is left behind in the store. While
/// the store cannot say, `terminate` fails and a retry deletes.
#[test]
fn lost_acknowledgement_then_terminate_deletes_the_landed_version() {
    let mut t = setup();
    let v = stored_version(&t).unwrap();
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(t.s.request_key_update(), Err(Error::Store(_))));
    assert_eq!(stored_version(&t), Some(v + 1), "the save landed");
    t.flaky.down.store(true, Ordering::SeqCst);
    assert!(matches!(t.s.terminate(), Err(Error::Store(_))));
    t.flaky.down.store(false, Ordering::SeqCst);
    t.s.terminate().unwrap();
    assert_eq!(t.flaky.len(), 0, "the terminated session must be gone");
}

/// A lost acknowledgement never lets us overwrite what another
/// connection did meanwhile (here: it ended the session).
#[test]
fn lost_acknowledgement_after_another_connection_moved_on_is_superseded() {
    let mut t = setup();
    let id = t.s.session_id().unwrap().clone();
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(t.s.request_key_update(), Err(Error::Store(_))));
    assert!(t.flaky.remove(&id));
    let err = t.s.request_key_update().unwrap_err();
    assert!(matches!(err, Error::Superseded), "{err:?}");
    assert!(
        t.flaky.record(&id).is_none(),
        "the ended session was written again"
    );
}

/// The connection dies while the peer's ConnectionUpdate waits after a
/// lost acknowledgement: the store holds the landed epoch, the client
/// still waits for its EpochKeyUpdate. The resumption reconciles them
/// (SPEC 8), as after a crash between save and send.
#[test]
fn lost_acknowledgement_then_a_cut_resumes() {
    let mut t = setup();
    t.flaky.lie.store(true, Ordering::SeqCst);
    t.c.request_key_update().unwrap();
    pump(&mut t.c, &mut t.s).unwrap();
    assert_eq!(t.c.profile_state(), State::AwaitingEpochKeyUpdate);
    let id = t.c.session_id().unwrap().clone();
    drop((t.c, t.s));
    let mut c2 = ClientConnection::resume(t.cc.clone(), &id).unwrap();
    let mut s2 = ServerConnection::new(t.sc.clone());
    pump(&mut c2, &mut s2).unwrap();
    c2.writer().write_all(b"after the cut").unwrap();
    pump(&mut c2, &mut s2).unwrap();
    assert_eq!(read_all(&mut s2), b"after the cut");
    assert_eq!(c2.epoch(), s2.epoch());
    assert_eq!(c2.profile_state(), State::Synced);
}

/// The responder's save of a resumption is acknowledged as failed but
/// landed: that resumption fails loudly, and the client's next try
/// resumes from what landed.
#[test]
fn lost_acknowledgement_of_a_resumption_then_the_retry_resumes() {
    let t = setup();
    let id = t.c.session_id().unwrap().clone();
    drop((t.c, t.s));
    t.flaky.lie.store(true, Ordering::SeqCst);
    let mut c2 = ClientConnection::resume(t.cc.clone(), &id).unwrap();
    let mut s2 = ServerConnection::new(t.sc.clone());
    let err = feed(&mut s2, &take(&mut c2)).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    drop((c2, s2));
    let mut c3 = ClientConnection::resume(t.cc.clone(), &id).unwrap();
    let mut s3 = ServerConnection::new(t.sc.clone());
    pump(&mut c3, &mut s3).unwrap();
    c3.writer().write_all(b"resumed").unwrap();
    pump(&mut c3, &mut s3).unwrap();
    assert_eq!(read_all(&mut s3), b"resumed");
    assert_eq!(c3.epoch(), s3.epoch());
    assert_eq!(c3.profile_state(), State::Synced);
}
