//! The session-store trait: a backend of the user's own carries sessions
//! through every transition, and a backend that fails to save stops the
//! transition before anything depending on it leaves (SPEC 10).

mod common;
mod faulty;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use common::{classical, Item, Sim};
use faulty::Faulty;
use mls_tls::alert::AlertDescription;
use mls_tls::credentials::{
    AcceptAnyPeer, Identity, PeerAuth, PeerIdentity, PeerRejected, PeerVerifier, VerifyContext,
};
use mls_tls::error::Error;
use mls_tls::profile::engine::{Engine, ProfileConfig, State};
use mls_tls::store::{
    MemoryBackend, Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord,
    SessionStore,
};

fn blob_config(name: &str) -> (ProfileConfig, Arc<Faulty>) {
    let blobs = Arc::new(Faulty::default());
    let config = ProfileConfig::new(
        vec![Arc::new(Identity::generate(name, classical()).unwrap())],
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::with_backend(blobs.clone())),
    );
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
    assert!(server_blobs.saves.load(Ordering::SeqCst) >= 5);
}

#[test]
fn a_failing_save_sends_nothing_and_keeps_the_stored_session() {
    let (c, _) = blob_config("client");
    let (s, server_blobs) = blob_config("server");
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    let id = sim.session.clone().unwrap();
    let before = server_blobs.load(&id).unwrap().unwrap();

    // The client's ConnectionUpdate reaches a server whose store fails:
    // the update waits for the store (issue 15); nothing leaves for it.
    server_blobs.failing.store(true, Ordering::SeqCst);
    sim.update(true);
    sim.step(true).unwrap();
    assert!(
        sim.to_client.is_empty(),
        "nothing may leave after a failed save"
    );
    assert_eq!(sim.server.engine.state(), State::Synced);
    assert!(sim.server.engine.has_deferred());
    assert_eq!(server_blobs.load(&id).unwrap().unwrap(), before);
    // Still failing: the retry lands nothing and the update keeps waiting.
    assert!(sim
        .server
        .engine
        .retry_deferred(sim.now)
        .unwrap()
        .is_empty());
    assert!(sim.server.engine.has_deferred());

    // The store recovers; the retry applies the update and both converge.
    server_blobs.failing.store(false, Ordering::SeqCst);
    let events = sim.server.engine.retry_deferred(sim.now).unwrap();
    assert!(!sim.server.engine.has_deferred());
    sim.server.apply(events, &mut sim.to_client);
    sim.run().unwrap();
    sim.data_both();
    sim.run().unwrap();
    sim.assert_in_sync();
    assert_eq!(sim.client.engine.epoch(), Some(2));
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

/// Refuses every peer once revoked (a trust configuration that changed).
#[derive(Debug, Default)]
struct Revocable(AtomicBool);

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

/// Review (a): a session the protocol says to delete, which the store
/// fails to delete, is not forgotten silently: the caller sees both
/// reasons, the peer would get the original alert.
#[test]
fn a_failing_delete_is_reported_with_the_reason_for_deleting() {
    let (mut c, client_blobs) = blob_config("client");
    let revocable = Arc::new(Revocable::default());
    c.verifier = revocable.clone();
    let (s, _) = blob_config("server");
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    let id = sim.session.clone().unwrap();
    revocable.0.store(true, Ordering::SeqCst);
    client_blobs.failing_delete.store(true, Ordering::SeqCst);
    let err = Engine::resume(sim.client.config.clone(), &id, sim.now).unwrap_err();
    let Error::SessionNotDeleted { cause, store } = &err else {
        panic!("expected SessionNotDeleted, got {err:?}")
    };
    assert!(matches!(**cause, Error::BadCertificate(_)), "{cause:?}");
    assert!(store.contains("read-only database"), "{store}");
    assert_eq!(err.alert(), Some(AlertDescription::BadCertificate));
    assert!(err.to_string().contains("peer revoked"), "{err}");
    assert_eq!(client_blobs.list().unwrap().len(), 1, "still stored");
    // Once the store works, the same refusal deletes it.
    client_blobs.failing_delete.store(false, Ordering::SeqCst);
    let err = Engine::resume(sim.client.config.clone(), &id, sim.now).unwrap_err();
    assert!(matches!(err, Error::BadCertificate(_)), "{err:?}");
    assert!(client_blobs.list().unwrap().is_empty());
}

/// Review (a), inside a transition: an authenticated failure whose delete
/// fails.
#[test]
fn a_failing_delete_after_an_authenticated_failure_is_reported() {
    let (c, _) = blob_config("client");
    let (mut s, server_blobs) = blob_config("server");
    let revocable = Arc::new(Revocable::default());
    s.verifier = revocable.clone();
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    revocable.0.store(true, Ordering::SeqCst);
    server_blobs.failing_delete.store(true, Ordering::SeqCst);
    sim.update(true);
    let err = sim.step(true).unwrap_err();
    assert!(matches!(err, Error::SessionNotDeleted { .. }), "{err:?}");
    assert_eq!(err.alert(), Some(AlertDescription::BadCertificate));
    assert_eq!(server_blobs.list().unwrap().len(), 1);
    assert_eq!(sim.server.engine.state(), State::Closed);
}

/// Review (b), revisited for issue 15: a transition whose save fails rolls
/// back in memory, from the storage as it was before the step, without
/// the store (which may be what failed). The engine keeps the state the
/// store holds; the peer's update waits and lands once the store is back.
#[test]
fn a_failed_save_rolls_back_in_memory_and_the_update_waits() {
    let (c, _) = blob_config("client");
    let (s, server_blobs) = blob_config("server");
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    let id = sim.session.clone().unwrap();
    let before = server_blobs.load(&id).unwrap().unwrap();
    server_blobs.failing.store(true, Ordering::SeqCst);
    sim.update(true);
    // The parked session loads (one load allowed); the save fails; the
    // store would fail a reload too.
    *server_blobs.loads_left.lock().unwrap() = Some(1);
    sim.step(true).unwrap();
    assert!(sim.to_client.is_empty());
    assert_eq!(sim.server.engine.state(), State::Synced);
    assert_eq!(sim.server.engine.epoch(), Some(1), "rolled back");
    *server_blobs.loads_left.lock().unwrap() = None;
    assert_eq!(server_blobs.load(&id).unwrap().unwrap(), before);
    server_blobs.failing.store(false, Ordering::SeqCst);
    let events = sim.server.engine.retry_deferred(sim.now).unwrap();
    sim.server.apply(events, &mut sim.to_client);
    sim.run().unwrap();
    sim.data_both();
    sim.run().unwrap();
    sim.assert_in_sync();
    assert_eq!(sim.server.engine.epoch(), Some(2));
}

/// Review (c): a stored peer credential that does not parse is a damaged
/// store record, reported when the session is loaded, not a peer with an
/// empty name.
#[test]
fn a_damaged_stored_peer_credential_is_a_store_error_at_load() {
    let (c, client_blobs) = blob_config("client");
    let (s, _) = blob_config("server");
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    let id = sim.session.clone().unwrap();
    client_blobs.tamper(&id, |s| s.meta.peer_credential = vec![0xff, 0xff, 0x01]);
    let err = Engine::resume(sim.client.config.clone(), &id, sim.now).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert!(err.to_string().contains("peer credential"), "{err}");
    // A damaged record is not the peer's fault: it is kept for inspection.
    assert_eq!(client_blobs.list().unwrap().len(), 1);
}

/// The three records of "a commit is pending" must agree when loaded.
#[test]
fn a_record_whose_pending_commit_disagrees_is_a_store_error() {
    let (c, client_blobs) = blob_config("client");
    let (s, _) = blob_config("server");
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    let id = sim.session.clone().unwrap();
    sim.update(true);
    // The update is pending; the record loses its copy of the commit.
    client_blobs.tamper(&id, |s| s.meta.state = mls_tls::store::StoredState::Synced);
    let err = Engine::resume(sim.client.config.clone(), &id, sim.now).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert!(err.to_string().contains("pending commit"), "{err}");
}

/// A backend's indexed fields and the record's data must agree: a version
/// or id that differs from the data is a damaged store, not a session to
/// resume under the wrong precondition.
#[test]
fn a_record_whose_fields_disagree_with_its_data_is_a_store_error() {
    for forge in [
        (|r: &mut SessionRecord| r.version += 1) as fn(&mut SessionRecord),
        |r: &mut SessionRecord| r.info.id = SessionId(vec![7; 16]),
    ] {
        let (c, client_blobs) = blob_config("client");
        let (s, _) = blob_config("server");
        let mut sim = Sim::with_configs(c, s);
        sim.handshake();
        let id = sim.session.clone().unwrap();
        // The stored record, moved to a backend that answers for `id`
        // with a forged field.
        let mut record = client_blobs.load(&id).unwrap().unwrap();
        forge(&mut record);
        let memory = MemoryBackend::default();
        let mut under_id = record.clone();
        under_id.info.id = id.clone();
        memory.save(&under_id, Precondition::Absent).unwrap();
        let forged = Forged { memory, record };
        let config = ProfileConfig {
            store: Arc::new(SessionStore::with_backend(forged)),
            ..sim.client.config.clone()
        };
        let err = Engine::resume(config, &id, sim.now).unwrap_err();
        assert!(matches!(err, Error::Store(_)), "{err:?}");
    }
}

/// A backend that answers every load with one fixed record.
struct Forged {
    memory: MemoryBackend,
    record: SessionRecord,
}

impl SessionBackend for Forged {
    fn load(&self, _: &SessionId) -> Result<Option<SessionRecord>, Error> {
        Ok(Some(self.record.clone()))
    }
    fn save(&self, r: &SessionRecord, pre: Precondition) -> Result<bool, Error> {
        self.memory.save(r, pre)
    }
    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        self.memory.delete(id)
    }
    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        self.memory.list()
    }
}

/// While the store is away, what waits is bounded: a peer that keeps
/// sending handshake messages behind the waiting one gets
/// unexpected_message once the queue is full (SPEC 9a: no unbounded
/// growth), and the connection closes with the session kept.
#[test]
fn messages_waiting_for_the_store_are_bounded() {
    let (c, _) = blob_config("client");
    let (s, server_blobs) = blob_config("server");
    let mut sim = Sim::with_configs(c, s);
    sim.handshake();
    let id = sim.session.clone().unwrap();
    server_blobs.failing.store(true, Ordering::SeqCst);
    sim.update(true);
    let cu = match sim.to_server.front() {
        Some((_, Item::Handshake(m))) => m.clone(),
        _ => panic!("the ConnectionUpdate is in flight"),
    };
    sim.step(true).unwrap();
    assert!(sim.server.engine.has_deferred());
    let mut refused = None;
    for n in 0..100 {
        if let Err(e) = sim.server.engine.handle(cu.clone(), sim.now) {
            refused = Some((n, e));
            break;
        }
    }
    let (n, err) = refused.expect("the queue is bounded");
    assert!(n < 10, "{n} messages queued");
    assert_eq!(
        err.alert(),
        Some(mls_tls::alert::AlertDescription::UnexpectedMessage)
    );
    assert_eq!(sim.server.engine.state(), State::Closed);
    server_blobs.failing.store(false, Ordering::SeqCst);
    assert!(server_blobs.load(&id).unwrap().is_some(), "session kept");
}
