//! A session store that fails while connections live (issue 15): a key
//! update that cannot be stored is postponed or waits, nothing of it is
//! sent (SPEC 10), data keeps flowing under the current keys, and the
//! update lands once the store is back. On a virtual clock.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mls_tls::conn::{ClientConnection, ServerConnection};
use mls_tls::error::Error;
use mls_tls::profile::engine::State;
use mls_tls::store::SessionStore;
use mls_tls::time::ManualClock;

mod faulty;
mod wire;
use faulty::Faulty;
use wire::{feed, pump, read_all, take};

#[test]
fn key_updates_wait_for_a_failed_store_and_data_keeps_flowing() {
    let clock = Arc::new(ManualClock::new());
    let flaky = Arc::new(Faulty::default());
    let (cc, sc) = faulty::configs(
        &clock,
        SessionStore::in_memory().unwrap(),
        SessionStore::with_backend(flaky.clone()),
    );
    let mut c = ClientConnection::new(Arc::new(cc)).unwrap();
    let mut s = ServerConnection::new(Arc::new(sc));
    pump(&mut c, &mut s).unwrap();
    assert_eq!(c.epoch(), Some(1));

    flaky.down.store(true, Ordering::SeqCst);
    // Our own update: an error, nothing sent, the connection goes on.
    let err = s.request_key_update().unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert_eq!(s.profile_state(), State::Synced);
    // The peer's update: it waits; no EpochKeyUpdate leaves.
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(c.profile_state(), State::AwaitingEpochKeyUpdate);
    assert_eq!(s.epoch(), Some(1));
    // Data both ways, under epoch 1, with the store down.
    for round in 0..3 {
        let msg = format!("during {round}");
        c.writer().write_all(msg.as_bytes()).unwrap();
        s.writer().write_all(msg.as_bytes()).unwrap();
        clock.advance(Duration::from_secs(3));
        pump(&mut c, &mut s).unwrap();
        s.handle_timeout(mls_tls::time::Clock::now(&*clock))
            .unwrap();
        assert_eq!(read_all(&mut s), msg.as_bytes());
        assert_eq!(read_all(&mut c), msg.as_bytes());
    }
    assert_eq!(c.epoch(), Some(1));

    // The store is back: the next try (a timer) applies the update.
    flaky.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(10));
    let deadline = s.poll_timeout().expect("a retry is scheduled");
    s.handle_timeout(deadline).unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    assert_eq!(c.profile_state(), State::Synced);
    // And updates work again, from either side.
    s.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(3), Some(3)));
    c.writer().write_all(b"after").unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(read_all(&mut s), b"after");
}

/// The narrow case: the peer's EpochKeyUpdate for our update arrives while
/// our store is down. The peer sends under the new epoch right after it;
/// we receive that (keys derived in memory from our pending commit) while
/// still sending under the old epoch, and finish the update once the store
/// is back.
#[test]
fn an_epoch_key_update_waits_for_the_store_and_both_directions_flow() {
    let clock = Arc::new(ManualClock::new());
    let flaky = Arc::new(Faulty::default());
    let (cc, sc) = faulty::configs(
        &clock,
        SessionStore::in_memory().unwrap(),
        SessionStore::with_backend(flaky.clone()),
    );
    let mut c = ClientConnection::new(Arc::new(cc)).unwrap();
    let mut s = ServerConnection::new(Arc::new(sc));
    pump(&mut c, &mut s).unwrap();

    // The server's update reaches the client, which confirms and moves on.
    s.request_key_update().unwrap();
    feed(&mut c, &take(&mut s)).unwrap();
    let eku = take(&mut c);
    assert_eq!(c.epoch(), Some(2));
    // The EpochKeyUpdate reaches a server whose store is down.
    flaky.down.store(true, Ordering::SeqCst);
    feed(&mut s, &eku).unwrap();
    assert_eq!(s.profile_state(), State::AwaitingEpochKeyUpdate);
    // Both directions flow: the client under epoch 2, the server under 1.
    for round in 0..3 {
        let msg = format!("during {round}");
        c.writer().write_all(msg.as_bytes()).unwrap();
        s.writer().write_all(msg.as_bytes()).unwrap();
        clock.advance(Duration::from_secs(3));
        pump(&mut c, &mut s).unwrap();
        s.handle_timeout(mls_tls::time::Clock::now(&*clock))
            .unwrap();
        assert_eq!(read_all(&mut s), msg.as_bytes());
        assert_eq!(read_all(&mut c), msg.as_bytes());
    }
    // The store is back: the next try lands the update on the server.
    flaky.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(10));
    let deadline = s.poll_timeout().expect("a retry is scheduled");
    s.handle_timeout(deadline).unwrap();
    assert_eq!(s.profile_state(), State::Synced);
    for msg in [&b"after"[..], b"again"] {
        c.writer().write_all(msg).unwrap();
        s.writer().write_all(msg).unwrap();
        pump(&mut c, &mut s).unwrap();
        assert_eq!(read_all(&mut s), msg);
        assert_eq!(read_all(&mut c), msg);
    }
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(3), Some(3)));
}
