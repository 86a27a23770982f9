//! Saves whose acknowledgement is lost (the database committed, the answer
//! never came) or that commit after the caller gave up on them, from a
//! hostile review of 3006266. Each test that names a loss failed on
//! 3006266; the others record probes that held there.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::error::Error;
use mls_tls::profile::engine::State;
use mls_tls::store::{KeyRing, Sealed, SessionId, SessionStore};
use mls_tls::time::{Clock, ManualClock};

mod faulty;
mod wire;
use faulty::Faulty;
use wire::{feed, pump, read_all, take};

use faulty::SUITE;
const K1: &str = "11111111111111111111111111111111111111111111111111111111111111aa";

struct T {
    clock: Arc<ManualClock>,
    /// The server's store.
    flaky: Arc<Faulty>,
    /// The client's store.
    cflaky: Arc<Faulty>,
    cc: Arc<ClientConfig>,
    sc: Arc<ServerConfig>,
}

/// Configurations whose stores are both `Faulty` (the server's optionally
/// sealed).
fn configs(sealed: bool) -> T {
    let clock = Arc::new(ManualClock::new());
    let flaky = Arc::new(Faulty::default());
    let cflaky = Arc::new(Faulty::default());
    let sstore = if sealed {
        SessionStore::with_backend(Sealed::new(
            flaky.clone(),
            KeyRing::parse(&format!("1:{K1}")).unwrap(),
        ))
    } else {
        SessionStore::with_backend(flaky.clone())
    };
    let (cc, sc) = faulty::configs(&clock, SessionStore::with_backend(cflaky.clone()), sstore);
    T {
        clock,
        flaky,
        cflaky,
        cc: Arc::new(cc),
        sc: Arc::new(sc),
    }
}

fn connect(t: &T) -> (ClientConnection, ServerConnection) {
    let mut c = ClientConnection::new(t.cc.clone()).unwrap();
    let mut s = ServerConnection::new(t.sc.clone());
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(1), Some(1)));
    (c, s)
}

/// A fresh resumption of `id` on new connections, to completion, with data.
fn resume_works(t: &T, id: &SessionId) -> Result<(), Error> {
    let mut c = ClientConnection::resume(t.cc.clone(), id)?;
    let mut s = ServerConnection::new(t.sc.clone());
    pump(&mut c, &mut s)?;
    c.writer().write_all(b"resumed").unwrap();
    pump(&mut c, &mut s)?;
    assert_eq!(read_all(&mut s), b"resumed");
    assert_eq!(c.epoch(), s.epoch());
    Ok(())
}

// ------------------------------------------- found failing on 3006266

/// REGRESSION. The server's update is confirmed by the client's
/// EpochKeyUpdate, whose save lands but is reported failed; the client's
/// flight goes on with data and close_notify (a client that updates, then
/// closes). The EKU waits; close_notify runs `on_peer_closed`, which looks
/// only at memory (Awaiting EpochKeyUpdate, rolled back) and drops the
/// pending commit as a transition. That transition resolves the doubt as
/// Landed and overwrites the landed, correct epoch-2 record with "epoch 1,
/// commit dropped", while the client merged it (epoch 2). Before 3006266
/// the drop failed the version precondition (Superseded) and the landed
/// record survived: the session resumed.
#[test]
fn lost_ack_of_the_epoch_key_update_then_the_peers_close_keeps_the_session() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    s.request_key_update().unwrap();
    feed(&mut c, &take(&mut s)).unwrap();
    c.writer().write_all(b"bye").unwrap();
    c.send_close_notify();
    let flight = take(&mut c);
    assert_eq!(c.epoch(), Some(2));
    t.flaky.lie.store(true, Ordering::SeqCst);
    let _ = feed(&mut s, &flight);
    t.clock.advance(Duration::from_secs(30));
    let _ = s.handle_timeout(t.clock.now());
    drop((c, s));
    let r = resume_works(&t, &id);
    assert!(
        r.is_ok(),
        "resumption after the lost acknowledgement: {r:?}"
    );
}

/// MISSED CASE (also before 3006266). The peer's ConnectionUpdate is
/// applied and its save lands but is reported failed: it waits. We send
/// close_notify, so `drop_deferred_updates` drops it (SPEC 9: never
/// applied), and the peer drops its pending commit on our close_notify.
/// Nothing resolves the doubt: the landed record (epoch 2, peer's commit
/// applied) stays, while the peer is at epoch 1 without it. The session
/// can never be resumed: the same loss as
/// `bug_a_waiting_update_lands_after_our_close_notify_and_the_session_is_lost`.
#[test]
fn lost_ack_of_a_waiting_update_dropped_by_our_close_notify_keeps_the_session() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    t.flaky.lie.store(true, Ordering::SeqCst);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(s.epoch(), Some(1), "the update waits");
    s.send_close_notify();
    feed(&mut c, &take(&mut s)).unwrap();
    assert_eq!(
        c.profile_state(),
        State::Synced,
        "the client dropped its update"
    );
    c.send_close_notify();
    let _ = feed(&mut s, &take(&mut c));
    t.clock.advance(Duration::from_secs(30));
    let _ = s.handle_timeout(t.clock.now());
    drop((c, s));
    let r = resume_works(&t, &id);
    assert!(r.is_ok(), "resumption after a clean close: {r:?}");
}

/// `terminate` resolves the doubt as Landed, clears `in_doubt`, then the
/// delete at the landed version fails (a blip). The retry that the doc
/// promises ("A store error is returned and a retry deletes") now deletes
/// at `ended.version`, the rolled-back version: nothing matches, it
/// reports Ok, and the session the application ended for good stays in
/// the store (resumable by the peer).
#[test]
fn terminate_retried_after_a_landed_save_deletes_it() {
    let t = configs(false);
    let (_c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(s.request_key_update(), Err(Error::Store(_))));
    t.flaky.failing_delete.store(true, Ordering::SeqCst);
    assert!(matches!(s.terminate(), Err(Error::Store(_))));
    t.flaky.failing_delete.store(false, Ordering::SeqCst);
    s.terminate().unwrap();
    assert_eq!(
        t.flaky.version(&id),
        None,
        "terminate returned Ok but the session is still stored"
    );
}

/// The responder's save of a new session (`store_new`, Absent) lands but
/// is reported failed: the connection fails, and `terminate` then deletes
/// nothing (the engine is still Provisional, so not `owned`). The session
/// the server ended for good stays, and the client resumes it.
#[test]
fn lost_ack_of_the_responders_new_session_is_not_left_stored() {
    let t = configs(false);
    let mut c = ClientConnection::new(t.cc.clone()).unwrap();
    let mut s = ServerConnection::new(t.sc.clone());
    t.flaky.lie.store(true, Ordering::SeqCst);
    let r = pump(&mut c, &mut s);
    assert!(matches!(r, Err(Error::Store(_))), "{r:?}");
    let _ = s.terminate();
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    assert!(
        resume_works(&t, &id).is_err(),
        "the server terminated the session, yet the client resumed it"
    );
    assert!(
        t.flaky.len() == 0,
        "the server terminated, yet its session is stored"
    );
}

/// The initiator's save of a new session lands but is reported failed:
/// the engine is `Closed(None)`, so `session_id()` is None and `terminate`
/// cannot delete. The record (group secrets) is an orphan only
/// `sweep_expired` removes.
#[test]
fn lost_ack_of_the_initiators_new_session_leaves_no_orphan() {
    let t = configs(false);
    let mut c = ClientConnection::new(t.cc.clone()).unwrap();
    let mut s = ServerConnection::new(t.sc.clone());
    t.cflaky.lie.store(true, Ordering::SeqCst);
    let r = pump(&mut c, &mut s);
    assert!(matches!(r, Err(Error::Store(_))), "{r:?}");
    let _ = c.terminate();
    assert!(
        t.cflaky.len() == 0,
        "an orphan session record is left, unreachable from the connection"
    );
}

/// A save that times out client-side and commits later (after the
/// resolving read). The doubt is resolved as Lost, the retried step's
/// precondition then fails, and the connection closes as Superseded: the
/// issue-15 symptom, for the PostgreSQL backend's own failure mode.
#[test]
fn a_save_that_commits_after_its_timeout_is_recognised_as_ours() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    t.flaky.late.store(true, Ordering::SeqCst);
    assert!(matches!(s.request_key_update(), Err(Error::Store(_))));
    // The late commit is found by the retry's save, which then fails like
    // a store failure; the next try sends the commit as stored.
    let mut r = s.request_key_update();
    if matches!(r, Err(Error::Store(_))) {
        r = s.request_key_update();
    }
    let r = r.and_then(|_| pump(&mut c, &mut s));
    assert!(r.is_ok(), "the retry: {r:?}");
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
}

// ------------------------------------------------- held on 3006266

/// Our update's save lands though reported failed; the retry sends the
/// stored commit as it is (no new save), and a second lost acknowledgement
/// cannot happen on the way.
#[test]
fn a_landed_update_is_sent_as_stored() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    let v = t.flaky.version(&id).unwrap();
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(s.request_key_update(), Err(Error::Store(_))));
    assert!(take(&mut s).is_empty(), "nothing sent");
    assert_eq!(t.flaky.version(&id), Some(v + 1));
    t.flaky.lie.store(true, Ordering::SeqCst);
    s.request_key_update().unwrap();
    assert_eq!(t.flaky.version(&id), Some(v + 1), "nothing saved again");
    t.flaky.lie.store(false, Ordering::SeqCst);
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
}

/// The peer's ConnectionUpdate: lie, then the retry lies, then it lands.
#[test]
fn a_waiting_update_whose_retry_also_lies() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    t.flaky.lie.store(true, Ordering::SeqCst);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    t.flaky.lie.store(true, Ordering::SeqCst);
    t.clock.advance(Duration::from_secs(2));
    s.handle_timeout(t.clock.now()).unwrap();
    assert!(
        take(&mut s).is_empty(),
        "no EpochKeyUpdate after a failed save"
    );
    t.clock.advance(Duration::from_secs(4));
    s.handle_timeout(t.clock.now()).unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    c.writer().write_all(b"x").unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(read_all(&mut s), b"x");
}

/// Sealed backend: `load` after a lie gives the same bytes (digest
/// matches), so the retry resolves as Landed.
#[test]
fn sealed_store_lost_ack() {
    let t = configs(true);
    let (mut c, mut s) = connect(&t);
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(s.request_key_update(), Err(Error::Store(_))));
    s.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
}

/// The client's own store lies on its resumption request: nothing is
/// sent, and the next `resume` (loading what landed) completes.
#[test]
fn lost_ack_of_the_initiators_resumption_request() {
    let t = configs(false);
    let (c, s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    t.cflaky.lie.store(true, Ordering::SeqCst);
    let r = ClientConnection::resume(t.cc.clone(), &id);
    assert!(matches!(r, Err(Error::Store(_))), "{r:?}");
    resume_works(&t, &id).unwrap();
}

/// The client's store lies on applying the ResumptionResponse: that
/// connection fails, and the next resumption completes.
#[test]
fn lost_ack_of_the_initiators_resumption_response() {
    let t = configs(false);
    let (c, s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    let mut c2 = ClientConnection::resume(t.cc.clone(), &id).unwrap();
    let mut s2 = ServerConnection::new(t.sc.clone());
    feed(&mut s2, &take(&mut c2)).unwrap();
    t.cflaky.lie.store(true, Ordering::SeqCst);
    let r = feed(&mut c2, &take(&mut s2));
    assert!(matches!(r, Err(Error::Store(_))), "{r:?}");
    drop((c2, s2));
    resume_works(&t, &id).unwrap();
}

/// Identity rotation: the rotating update's save lies; the retry carries
/// the new identity and the peer sees it.
#[test]
fn lost_ack_of_a_rotating_update() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let new = Identity::generate("server-2", SUITE).unwrap();
    let key = new.public_key().to_vec();
    s.rotate_identity(new).unwrap();
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(s.request_key_update(), Err(Error::Store(_))));
    s.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    assert_eq!(c.peer_identity().unwrap().signature_key, key);
    s.writer().write_all(b"y").unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(read_all(&mut c), b"y");
}

/// drop_pending on the peer's close_notify lies: the connection fails
/// (a store error, as when the store is down), the session resumes.
#[test]
fn lost_ack_of_drop_pending() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    s.request_key_update().unwrap();
    let cu = take(&mut s);
    c.send_close_notify();
    let closing = take(&mut c);
    t.flaky.lie.store(true, Ordering::SeqCst);
    let _ = feed(&mut s, &closing);
    let _ = feed(&mut c, &cu);
    drop((c, s));
    resume_works(&t, &id).unwrap();
}

/// The responder's resumption save lies while the older connection is
/// still live: the older one is superseded at its next step, never
/// overwrites.
#[test]
fn lost_ack_of_a_resumption_supersedes_the_older_connection() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    let mut c2 = ClientConnection::resume(t.cc.clone(), &id).unwrap();
    let mut s2 = ServerConnection::new(t.sc.clone());
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(feed(&mut s2, &take(&mut c2)).is_err());
    let landed = t.flaky.version(&id);
    let r = s.request_key_update();
    assert!(matches!(r, Err(Error::Superseded)), "{r:?}");
    assert_eq!(t.flaky.version(&id), landed);
    let _ = pump(&mut c, &mut s);
}

// ------------------------------------------------- the same kinds, more ways

/// No lie at all: the peer's EpochKeyUpdate waits for a store that is
/// down, the store comes back, and the peer's close_notify arrives before
/// the retry timer. The close must not drop the update the peer confirmed.
#[test]
fn an_epoch_key_update_waiting_for_the_store_survives_the_peers_close() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    s.request_key_update().unwrap();
    feed(&mut c, &take(&mut s)).unwrap();
    let eku = take(&mut c);
    t.flaky.down.store(true, Ordering::SeqCst);
    feed(&mut s, &eku).unwrap();
    assert_eq!(s.profile_state(), State::AwaitingEpochKeyUpdate);
    t.flaky.down.store(false, Ordering::SeqCst);
    c.send_close_notify();
    let _ = feed(&mut s, &take(&mut c));
    assert_eq!(s.epoch(), Some(2), "the confirmed update was applied");
    drop((c, s));
    resume_works(&t, &id).unwrap();
}

/// The same close while the store is still down: the update is kept
/// (not dropped); the session resumes from the pending commit the peer
/// merged.
#[test]
fn an_epoch_key_update_waiting_through_the_peers_close_resumes() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    s.request_key_update().unwrap();
    feed(&mut c, &take(&mut s)).unwrap();
    t.flaky.down.store(true, Ordering::SeqCst);
    c.send_close_notify();
    let _ = feed(&mut s, &take(&mut c));
    drop((c, s));
    t.flaky.down.store(false, Ordering::SeqCst);
    resume_works(&t, &id).unwrap();
}

/// A dropped update whose save is in doubt, with the store down at our
/// close_notify: the store cannot be corrected, so no close_notify goes
/// out (the peer would drop its update for good). The connection fails
/// with the store error and an alert; the peer keeps its update, and the
/// session resumes once the store is back.
#[test]
fn a_dropped_update_that_cannot_be_written_back_ends_without_close_notify() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    t.flaky.lie.store(true, Ordering::SeqCst);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    t.flaky.down.store(true, Ordering::SeqCst);
    s.send_close_notify();
    let r = feed(&mut c, &take(&mut s));
    assert!(
        matches!(r, Err(Error::AlertReceived(_))),
        "the peer learns of a failure, not a clean close: {r:?}"
    );
    assert_eq!(c.profile_state(), State::AwaitingEpochKeyUpdate);
    drop((c, s));
    t.flaky.down.store(false, Ordering::SeqCst);
    resume_works(&t, &id).unwrap();
}

/// (Second review of the in-doubt saves.) "A save that landed was never
/// followed by a send" is false: a rule-1 responder on another connection
/// resends the landed pending commit without storing anything (SPEC 8).
/// The old connection must not replace that commit P, which the client
/// merged, with a fresh P': the session would split (the client at epoch 3
/// via P, the store waiting on P'; every resumption then rule 4).
#[test]
fn a_landed_update_resent_by_a_rule1_responder_is_not_replaced() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = c.session_id().unwrap().clone();
    // The client's update C is applied by the server; its EpochKeyUpdate
    // never arrives (the client's side of the connection is cut).
    c.request_key_update().unwrap();
    feed(&mut s, &take(&mut c)).unwrap();
    assert_eq!(s.epoch(), Some(2));
    let _lost = take(&mut s);
    drop(c);
    // The server, not yet aware, starts its own update P: the save lands,
    // the acknowledgement is lost. Nothing is sent.
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(s.request_key_update(), Err(Error::Store(_))));
    assert!(take(&mut s).is_empty());
    // The client resumes elsewhere, retransmitting C: rule 1 with our
    // pending P, which goes out unchanged; nothing is stored.
    let mut c2 = ClientConnection::resume(t.cc.clone(), &id).unwrap();
    let mut s2 = ServerConnection::new(t.sc.clone());
    let v = t.flaky.version(&id);
    feed(&mut s2, &take(&mut c2)).unwrap();
    assert_eq!(t.flaky.version(&id), v, "rule 1: nothing stored");
    feed(&mut c2, &take(&mut s2)).unwrap();
    assert_eq!(c2.epoch(), Some(3), "the client merged C and the landed P");
    let eku = take(&mut c2);
    // The old connection's update policy tries again: Landed, replaced.
    let old = s.request_key_update();
    let new = feed(&mut s2, &eku);
    drop((s, c2, s2));
    let r = resume_works(&t, &id);
    assert!(
        r.is_ok(),
        "session split: old connection {old:?}, new connection {new:?}, resumption {r:?}"
    );
}

/// In the tokio adapter: our close_notify drops the peer's waiting
/// ConnectionUpdate whose save landed; with the store down, the write-back
/// waits on the retry timer. The usual `shutdown().await; drop(stream)`
/// must give it that time (bounded), or the store keeps the peer's update
/// applied while the client dropped it and the session never resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_shutdown_with_a_write_back_pending_keeps_the_session() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let flaky = Arc::new(Faulty::default());
    let cc = Arc::new(
        ClientConfig::new(
            Identity::generate("client", SUITE).unwrap(),
            Arc::new(AcceptAnyPeer),
            Arc::new(SessionStore::in_memory().unwrap()),
        )
        .update_policy(UpdatePolicy::manual()),
    );
    let sc = Arc::new(
        ServerConfig::new(
            Identity::generate("server", SUITE).unwrap(),
            Arc::new(AcceptAnyPeer),
            Arc::new(SessionStore::with_backend(flaky.clone())),
        )
        .update_policy(UpdatePolicy::manual()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let connector = mls_tls::tokio::Connector::new(cc.clone());
    let acceptor = mls_tls::tokio::Acceptor::new(sc.clone());
    let (c, s) = tokio::join!(connector.connect(c.unwrap()), acceptor.accept(s.unwrap().0));
    let (mut c, mut s) = (c.unwrap(), s.unwrap());
    c.write_all(b"hi").await.unwrap();
    c.flush().await.unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).await.unwrap();
    let id = c.get_ref().1.session_id().unwrap().clone();
    let v0 = flaky.version(&id).unwrap();
    // The client's update: the server's save lands, reported failed.
    flaky.lie.store(true, Ordering::SeqCst);
    c.get_mut().1.request_key_update().unwrap();
    c.flush().await.unwrap();
    let mut one = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_millis(300), s.read(&mut one)).await;
    assert_eq!(flaky.version(&id), Some(v0 + 1), "the save landed");
    assert_eq!(s.get_ref().1.epoch(), Some(1), "the update waits");
    // The store goes down; the server application ends the stream.
    flaky.down.store(true, Ordering::SeqCst);
    let shut = s.shutdown().await;
    assert!(
        shut.is_err(),
        "no clean close while the store cannot be corrected"
    );
    drop(s);
    // The client reads the close_notify and drops its pending update.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await;
    drop(c);
    flaky.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = T {
        clock: Arc::new(ManualClock::new()),
        flaky,
        cflaky: Arc::new(Faulty::default()),
        cc,
        sc,
    };
    let r = tokio::task::spawn_blocking(move || resume_works(&t, &id))
        .await
        .unwrap();
    assert!(r.is_ok(), "resumption after a clean shutdown: {r:?}");
}

/// (Third review.) Our rotating update's acknowledgement is lost; the
/// application rotates again before the retry. The stored commit carries
/// the first new identity, which we no longer hold as the one to install:
/// merging it would leave us signing with a key our leaf does not have.
/// The retry refuses loudly (StoredAhead, internal_error to the peer,
/// never a clean close); the session stays as stored.
#[test]
fn an_adopted_update_whose_identity_was_rotated_again_is_refused_loudly() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    s.rotate_identity(Identity::generate("server-2", SUITE).unwrap())
        .unwrap();
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(s.request_key_update(), Err(Error::Store(_))));
    let landed = t.flaky.version(&id);
    s.rotate_identity(Identity::generate("server-3", SUITE).unwrap())
        .unwrap();
    let r = s.request_key_update();
    assert!(matches!(r, Err(Error::StoredAhead(_))), "{r:?}");
    let seen = feed(&mut c, &take(&mut s));
    assert!(
        matches!(seen, Err(Error::AlertReceived(_))),
        "the peer learns of a failure: {seen:?}"
    );
    assert_eq!(t.flaky.version(&id), landed, "the session stays as stored");
}

/// (Third review.) Our update's save lands but is reported failed; before
/// the retry, the peer's own update crosses it (both update policies fire
/// on the same interval). Closing must not look like an orderly end of
/// stream to the peer (it would read EOF in the middle of our stream).
#[test]
fn a_crossing_peer_update_after_our_lost_ack_is_not_an_orderly_close() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    s.writer().write_all(b"part 1 of 2").unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(read_all(&mut c), b"part 1 of 2");
    t.flaky.lie.store(true, Ordering::SeqCst);
    assert!(matches!(s.request_key_update(), Err(Error::Store(_))));
    c.request_key_update().unwrap();
    let server = feed(&mut s, &take(&mut c));
    let client = feed(&mut c, &take(&mut s));
    let state = c.process_new_packets();
    let orderly = client.is_ok() && state.as_ref().is_ok_and(|s| s.peer_has_closed);
    assert!(
        !orderly,
        "server {server:?}; the client sees an orderly close_notify: {client:?} {state:?}"
    );
}

/// (Third review.) `terminate` with the peer's update waiting in doubt and
/// saves failing (a full disk; loads and deletes work): once the session
/// is deleted there is nothing the peer must keep for a resumption, so
/// the end is a clean close_notify, not a failure.
#[test]
fn terminate_that_deletes_sends_close_notify() {
    let t = configs(false);
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    t.flaky.lie.store(true, Ordering::SeqCst);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(s.epoch(), Some(1), "the update waits");
    t.flaky.failing.store(true, Ordering::SeqCst);
    let terminated = s.terminate();
    assert_eq!(t.flaky.version(&id), None, "deleted");
    let client = feed(&mut c, &take(&mut s));
    assert!(
        terminated.is_err() || client.is_ok(),
        "terminate returned {terminated:?}, yet the peer saw {client:?}"
    );
}
