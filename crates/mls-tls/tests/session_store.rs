//! The session-store trait: a backend of the user's own carries sessions
//! through every transition, and a backend that fails to save stops the
//! transition before anything depending on it leaves (SPEC 10).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{classical, Sim};
use mls_tls::error::Error;
use mls_tls::profile::auth::{AcceptAnyPeer, Identity};
use mls_tls::profile::engine::{ProfileConfig, State};
use mls_tls::profile::store::{
    MemoryBackend, Precondition, SessionBackend, SessionId, SessionInfo, SessionStore,
    StoredSession,
};

/// Keeps each session as one byte string, as a key-value service would,
/// and can be told to fail every save (a full disk, a lost database).
#[derive(Default)]
struct Blobs {
    map: Mutex<HashMap<SessionId, Vec<u8>>>,
    failing: AtomicBool,
    saves: Mutex<u64>,
}

impl Blobs {
    fn version(&self, id: &SessionId) -> Option<u64> {
        self.load(id).unwrap().map(|s| s.meta.version)
    }
}

impl SessionBackend for Blobs {
    fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, Error> {
        let map = self.map.lock().unwrap();
        map.get(id)
            .map(|b| StoredSession::from_bytes(b))
            .transpose()
    }

    fn save(&self, s: &StoredSession, pre: Precondition) -> Result<bool, Error> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::Store("disk full".into()));
        }
        let mut map = self.map.lock().unwrap();
        let current = map
            .get(&s.meta.id)
            .map(|b| StoredSession::from_bytes(b))
            .transpose()?;
        let holds = match (pre, current) {
            (Precondition::Absent, None) => true,
            (Precondition::Version(v), Some(c)) => c.meta.version == v,
            _ => false,
        };
        if holds {
            map.insert(s.meta.id.clone(), s.to_bytes().to_vec());
            *self.saves.lock().unwrap() += 1;
        }
        Ok(holds)
    }

    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        Ok(self.map.lock().unwrap().remove(id).is_some())
    }

    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        let map = self.map.lock().unwrap();
        map.values()
            .map(|b| Ok(StoredSession::from_bytes(b)?.info()))
            .collect()
    }
}

/// A `SessionBackend` shared between the test and the store.
struct Shared(Arc<Blobs>);

impl SessionBackend for Shared {
    fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, Error> {
        self.0.load(id)
    }
    fn save(&self, s: &StoredSession, pre: Precondition) -> Result<bool, Error> {
        self.0.save(s, pre)
    }
    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        self.0.delete(id)
    }
    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        self.0.list()
    }
}

fn blob_config(name: &str) -> (ProfileConfig, Arc<Blobs>) {
    let blobs = Arc::new(Blobs::default());
    let config = ProfileConfig {
        identities: vec![Arc::new(Identity::generate(name, classical()).unwrap())],
        verifier: Arc::new(AcceptAnyPeer),
        store: Arc::new(SessionStore::with_backend(Shared(blobs.clone()))),
    };
    (config, blobs)
}

#[test]
fn a_custom_backend_carries_sessions_through_updates_and_resumption() {
    let (c, client_blobs) = blob_config("client");
    let (s, server_blobs) = blob_config("server");
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    let id = sim.session.clone().unwrap();
    let (c0, s0) = (client_blobs.version(&id), server_blobs.version(&id));
    assert!(c0.is_some() && s0.is_some());
    sim.update(true);
    sim.settle();
    sim.update(false);
    sim.settle();
    // Every transition wrote a new version of the record.
    assert!(client_blobs.version(&id) > c0);
    assert!(server_blobs.version(&id) > s0);
    for by_client in [true, false] {
        sim.cut_and_resume(by_client);
        sim.settle();
    }
    // Two updates, then two resumptions of two commits each.
    assert_eq!(sim.client.engine.epoch(), Some(7));
    assert_eq!(client_blobs.list().unwrap().len(), 1);
    assert!(*server_blobs.saves.lock().unwrap() >= 5);
}

#[test]
fn a_failing_save_sends_nothing_and_keeps_the_stored_session() {
    let (c, _) = blob_config("client");
    let (s, server_blobs) = blob_config("server");
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    let id = sim.session.clone().unwrap();
    let before = server_blobs.load(&id).unwrap().unwrap();

    // The client's ConnectionUpdate reaches a server whose store fails.
    server_blobs.failing.store(true, Ordering::SeqCst);
    sim.update(true);
    let err = sim.step(true).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert_eq!(
        err.alert(),
        Some(mls_tls::alert::AlertDescription::InternalError)
    );
    assert!(
        sim.to_client.is_empty(),
        "nothing may leave after a failed save"
    );
    assert_eq!(sim.server.engine.state(), State::Closed);
    assert_eq!(server_blobs.load(&id).unwrap().unwrap(), before);

    // The store recovers; the client resumes and both sides converge.
    server_blobs.failing.store(false, Ordering::SeqCst);
    sim.cut_and_resume(true);
    sim.settle();
    // The client's unconfirmed commit (epoch 2) went again as the request,
    // then the server's response: epoch 3.
    assert_eq!(sim.client.engine.epoch(), Some(3));
}

#[test]
fn a_failing_save_at_establishment_stores_nothing() {
    let (c, client_blobs) = blob_config("client");
    let (s, _) = blob_config("server");
    client_blobs.failing.store(true, Ordering::SeqCst);
    let mut sim = Sim::with_configs(c, s);
    // The client cannot store the joined group: the ServerHello fails.
    let err = sim.run().unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert!(client_blobs.list().unwrap().is_empty());
    assert!(sim.to_server.is_empty());
}

#[test]
fn the_memory_backend_is_a_session_backend_like_any_other() {
    let store = SessionStore::with_backend(MemoryBackend::default());
    assert!(store.list().unwrap().is_empty());
    assert!(!store.delete(&SessionId(vec![1])).unwrap());
}
