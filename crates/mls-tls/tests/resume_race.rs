//! Two servers of a fleet on one store, raced deterministically: the
//! store changes between one server's load of a session and its save (a
//! hook in the `Faulty` backend runs the other server's step there).

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::profile::engine::State;
use mls_tls::store::{SessionId, SessionStore};

mod faulty;
mod wire;
use faulty::Faulty;
use wire::{feed, pump, read_all, take};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

struct Fleet {
    store: Arc<Faulty>,
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    id: SessionId,
}

/// A session made on one server, its connection cut.
fn fleet() -> Fleet {
    let store = Arc::new(Faulty::default());
    let client = Arc::new(ClientConfig::new(
        Identity::generate("client", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    ));
    let server = Arc::new(ServerConfig::new(
        Identity::generate("server", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::with_backend(store.clone())),
    ));
    let mut c = ClientConnection::new(client.clone()).unwrap();
    let mut s = ServerConnection::new(server.clone());
    pump(&mut c, &mut s).unwrap();
    let id = c.session_id().unwrap().clone();
    Fleet {
        store,
        client,
        server,
        id,
    }
}

/// The client resumed on server A, which answered; the client's
/// EpochKeyUpdate is in flight to A when the connection is cut. The
/// client resumes at once on server B; A stores the EpochKeyUpdate
/// between B's load and B's save. Nothing left B yet, so B reads the
/// session again and answers from what A stored: the client resumes.
#[test]
fn a_resumption_that_races_a_save_on_another_server_reads_again() {
    let f = fleet();
    let mut c1 = ClientConnection::resume(f.client.clone(), &f.id).unwrap();
    let a = Arc::new(Mutex::new(ServerConnection::new(f.server.clone())));
    feed(&mut a.lock().unwrap(), &take(&mut c1)).unwrap();
    feed(&mut c1, &take(&mut a.lock().unwrap())).unwrap();
    assert_eq!(c1.profile_state(), State::Synced);
    let eku = take(&mut c1);
    assert!(!eku.is_empty());
    drop(c1);

    let mut c2 = ClientConnection::resume(f.client.clone(), &f.id).unwrap();
    let mut b = ServerConnection::new(f.server.clone());
    let before = f.store.version(&f.id).unwrap();
    let a_in_hook = a.clone();
    *f.store.before_save.lock().unwrap() = Some(Box::new(move || {
        feed(&mut a_in_hook.lock().unwrap(), &eku).unwrap();
    }));
    let r = feed(&mut b, &take(&mut c2)).and_then(|_| pump(&mut c2, &mut b));
    assert!(r.is_ok(), "B's resumption: {r:?}");
    assert!(
        f.store.version(&f.id).unwrap() >= before + 2,
        "A's save happened in between"
    );
    c2.writer().write_all(b"on B").unwrap();
    pump(&mut c2, &mut b).unwrap();
    assert_eq!(read_all(&mut b), b"on B");
    assert_eq!(c2.epoch(), b.epoch());
}

/// A session that another server moves on at every save: the responder
/// reads it again a bounded number of times, then fails the resumption
/// with Superseded (never a loop).
#[test]
fn a_session_moved_on_at_every_save_fails_the_resumption_after_three_reads() {
    let f = fleet();
    let hooks = Arc::new(AtomicUsize::new(0));
    fn arm(store: Arc<Faulty>, id: SessionId, hooks: Arc<AtomicUsize>) {
        let again = store.clone();
        *store.before_save.lock().unwrap() = Some(Box::new(move || {
            hooks.fetch_add(1, Ordering::SeqCst);
            again.tamper(&id, |s| s.meta.version += 1);
            arm(again.clone(), id, hooks);
        }));
    }
    arm(f.store.clone(), f.id.clone(), hooks.clone());
    let mut c = ClientConnection::resume(f.client.clone(), &f.id).unwrap();
    let mut s = ServerConnection::new(f.server.clone());
    let r = feed(&mut s, &take(&mut c));
    *f.store.before_save.lock().unwrap() = None;
    assert!(matches!(r, Err(Error::Superseded)), "{r:?}");
    assert_eq!(hooks.load(Ordering::SeqCst), 3);
    assert!(f.store.version(&f.id).is_some(), "the session is kept");
}
