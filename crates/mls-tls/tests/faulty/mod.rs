//! One session backend that fails on demand, for the tests of what a
//! connection does when its store fails, and the configurations those
//! tests connect with. Records are kept as blobs
//! ([`SessionRecord::to_bytes`]), as a key-value store would keep them.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mls_tls::conn::{ClientConfig, ServerConfig, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::store::{
    Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord, SessionStore,
    StoredSession,
};
use mls_tls::time::ManualClock;

/// The suite these tests run on.
pub const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

/// A client ("client") and a server ("server") trusting any peer, on
/// `clock`, with key updates only on request; the caller adds what its
/// test needs, then shares them.
pub fn configs(
    clock: &Arc<ManualClock>,
    client_store: SessionStore,
    server_store: SessionStore,
) -> (ClientConfig, ServerConfig) {
    let client = ClientConfig::new(
        Identity::generate("client", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(client_store),
    )
    .clock(clock.clone())
    .update_policy(UpdatePolicy::manual());
    let server = ServerConfig::new(
        Identity::generate("server", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(server_store),
    )
    .clock(clock.clone())
    .update_policy(UpdatePolicy::manual());
    (client, server)
}

#[derive(Default)]
pub struct Faulty {
    map: Mutex<HashMap<SessionId, Vec<u8>>>,
    /// Every call fails: the database is unreachable.
    pub down: AtomicBool,
    /// Saves fail before writing (a full disk).
    pub failing: AtomicBool,
    /// Deletes fail (a read-only database).
    pub failing_delete: AtomicBool,
    /// The next save writes, then reports a failure: a commit whose
    /// acknowledgement was lost (a timeout after COMMIT).
    pub lie: AtomicBool,
    /// The next save is reported failed without writing; it commits just
    /// before the following save runs (a statement the caller timed out
    /// on that the database still executes).
    pub late: AtomicBool,
    stashed: Mutex<Option<(SessionRecord, Precondition)>>,
    /// `Some(n)`: `n` more loads succeed, then every load fails.
    pub loads_left: Mutex<Option<u32>>,
    /// Calls of any kind, failed ones included.
    pub calls: AtomicUsize,
    /// Saves that wrote.
    pub saves: AtomicUsize,
    /// Runs once, at the start of the next save: what another server of
    /// the fleet does between this one's load and its save.
    pub before_save: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Faulty {
    fn check(&self) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Store("database unreachable".into()));
        }
        Ok(())
    }

    /// A save as a database does it: only if the precondition holds.
    fn write(&self, s: &SessionRecord, pre: Precondition) -> bool {
        let holds = match (pre, self.version(s.id())) {
            (Precondition::Absent, None) => true,
            (Precondition::Version(v), Some(current)) => current == v,
            _ => false,
        };
        if holds {
            let bytes = s.to_bytes().to_vec();
            self.map.lock().unwrap().insert(s.id().clone(), bytes);
            self.saves.fetch_add(1, Ordering::SeqCst);
        }
        holds
    }

    /// The stored record of `id`, bypassing every fault.
    pub fn record(&self, id: &SessionId) -> Option<SessionRecord> {
        let map = self.map.lock().unwrap();
        map.get(id).map(|b| SessionRecord::from_bytes(b).unwrap())
    }

    /// The stored version of `id`, bypassing every fault.
    pub fn version(&self, id: &SessionId) -> Option<u64> {
        self.record(id).map(|r| r.version)
    }

    /// How many sessions are stored, bypassing every fault.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    /// Removes `id` as another connection ending it would, bypassing
    /// every fault.
    pub fn remove(&self, id: &SessionId) -> bool {
        self.map.lock().unwrap().remove(id).is_some()
    }

    /// Rewrites the stored record of `id` with `f` (a damaged store).
    pub fn tamper(&self, id: &SessionId, f: impl FnOnce(&mut StoredSession)) {
        let mut s = StoredSession::from_bytes(&self.record(id).unwrap().data).unwrap();
        f(&mut s);
        self.map
            .lock()
            .unwrap()
            .insert(id.clone(), s.to_record().to_bytes().to_vec());
    }
}

impl SessionBackend for Faulty {
    fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.check()?;
        if let Some(n) = self.loads_left.lock().unwrap().as_mut() {
            if *n == 0 {
                return Err(Error::Store("database unreachable".into()));
            }
            *n -= 1;
        }
        Ok(self.record(id))
    }

    fn save(&self, s: &SessionRecord, pre: Precondition) -> Result<bool, Error> {
        let hook = self.before_save.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.check()?;
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::Store("disk full".into()));
        }
        let stashed = self.stashed.lock().unwrap().take();
        if let Some((record, pre)) = stashed {
            self.write(&record, pre);
        }
        if self.late.swap(false, Ordering::SeqCst) {
            *self.stashed.lock().unwrap() = Some((s.clone(), pre));
            return Err(Error::Store("no answer within 10 s".into()));
        }
        let holds = self.write(s, pre);
        if self.lie.swap(false, Ordering::SeqCst) {
            return Err(Error::Store("connection reset after COMMIT".into()));
        }
        Ok(holds)
    }

    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        self.check()?;
        if self.failing_delete.load(Ordering::SeqCst) {
            return Err(Error::Store("read-only database".into()));
        }
        Ok(self.remove(id))
    }

    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        self.check()?;
        let map = self.map.lock().unwrap();
        map.values()
            .map(|b| Ok(SessionRecord::from_bytes(b)?.info))
            .collect()
    }
}
