//! Persistent sessions (SPEC section 10).
//!
//! A session is stored as one [`StoredSession`]: the profile's state
//! ([`SessionMeta`]) and an opaque snapshot of its MLS group. Every protocol
//! transition writes the whole record in one [`SessionBackend::save`], so a
//! backend only needs an atomic, durable "replace this record if its version
//! is still N". [`SessionStore`] is the handle connections share; it wraps
//! a backend: SQLite (one file, WAL, `synchronous=FULL`) by default, a map in
//! memory for tests, or any [`SessionBackend`] of your own (another
//! database, a key-value service, encryption at rest).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::error::Error;
use crate::message::TwoPartyMessageType;
use crate::profile::suite::CipherSuite;

mod codec;
mod memory;
pub(crate) mod snapshot;
mod sqlite;

pub use memory::MemoryBackend;
pub use sqlite::SqliteBackend;

/// Identifies a stored session: the MLS group id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub Vec<u8>);

impl core::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl core::fmt::Display for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Which role a party had in the session's very first handshake; it decides
/// resumption collisions for the session's whole life (profile section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InitialRole {
    /// Sent the first ClientHello.
    Initiator,
    /// Answered it.
    Responder,
}

/// The persisted profile state of a session (profile section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredState {
    /// No pending commit.
    Synced,
    /// A ConnectionUpdate or ResumptionResponse commit is pending.
    AwaitingEpochKeyUpdate,
    /// A ResumptionRequest commit is pending.
    AwaitingResumptionResponse,
}

/// A commit sent but not yet confirmed, kept to be sent again on resumption.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingCommit {
    /// The serialized `MLSMessage`.
    pub message: Vec<u8>,
    /// The SafeAAD type it was created with (never changed on resend).
    pub typ: TwoPartyMessageType,
}

impl core::fmt::Debug for PendingCommit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingCommit")
            .field("len", &self.message.len())
            .field("typ", &self.typ)
            .finish()
    }
}

/// Everything the profile keeps about a session besides the MLS group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMeta {
    /// The group id.
    pub id: SessionId,
    /// The group's ciphersuite.
    pub suite: CipherSuite,
    /// This party's role in the first handshake.
    pub initial_role: InitialRole,
    /// The profile state.
    pub state: StoredState,
    /// The pending commit, in the two Awaiting states.
    pub pending: Option<PendingCommit>,
    /// SHA-256 of the last commit message this party merged (its own or
    /// the peer's).
    pub last_commit_hash: Option<[u8; 32]>,
    /// Highest epoch whose sending keys this party installed (SPEC 8).
    pub last_send_epoch: u64,
    /// The peer's credential (serialized) as first authenticated.
    pub peer_credential: Vec<u8>,
    /// The peer's signature public key.
    pub peer_signature_key: Vec<u8>,
    /// When the session was established (seconds since the Unix epoch).
    pub created: u64,
    /// When the session last completed a transition.
    pub last_used: u64,
    /// Incremented by every stored transition: a connection whose copy is
    /// older than the store's has been superseded by another connection.
    pub version: u64,
}

/// One session as a backend keeps it: the profile state and a snapshot of
/// the MLS group. The snapshot holds private keys: keep it where only this
/// party can read it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The profile state, readable so a backend can index it.
    pub meta: SessionMeta,
    /// The MLS group state, opaque (zeroized when dropped).
    pub group: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoredSession")
            .field("meta", &self.meta)
            .field("group_len", &self.group.len())
            .finish()
    }
}

impl StoredSession {
    /// What [`SessionStore::list`] reports for this session.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.meta.id.clone(),
            suite: self.meta.suite,
            initial_role: self.meta.initial_role,
            peer_signature_key: self.meta.peer_signature_key.clone(),
            created: from_secs(self.meta.created),
            last_used: from_secs(self.meta.last_used),
        }
    }

    /// The whole record as one byte string, for backends that store blobs
    /// (a key-value store, a file per session). Read back with
    /// [`StoredSession::from_bytes`].
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        codec::encode(self)
    }

    /// Reads a record written by [`StoredSession::to_bytes`]; damaged input
    /// is an [`Error::Store`], never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        codec::decode(bytes)
    }
}

/// What [`SessionStore::list`] reports per session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id.
    pub id: SessionId,
    /// The ciphersuite.
    pub suite: CipherSuite,
    /// This party's initial role.
    pub initial_role: InitialRole,
    /// The peer's signature public key.
    pub peer_signature_key: Vec<u8>,
    /// Creation time.
    pub created: SystemTime,
    /// Last use.
    pub last_used: SystemTime,
}

/// The condition under which [`SessionBackend::save`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// A new session: no record with this id may exist.
    Absent,
    /// An update: the stored record must still have this version (else
    /// another connection has moved the session on).
    Version(u64),
}

/// Where [`SessionStore`] keeps sessions: implement this to put sessions in
/// another database or service.
///
/// Contract (SPEC 10): `save` is atomic (the old record or the new one,
/// never a mix), checks its [`Precondition`] atomically with the write, and
/// is durable when it returns `Ok(true)`: the connection releases the
/// message that depends on the new state only after that. Errors are
/// reported as [`Error::Store`]; the connection then fails without sending.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use mls_tls::store::{
///     Precondition, SessionBackend, SessionId, SessionInfo, SessionStore, StoredSession,
/// };
/// use mls_tls::Error;
///
/// /// Keeps each record as one blob, as a key-value service would.
/// #[derive(Default)]
/// struct Blobs(Mutex<HashMap<SessionId, Vec<u8>>>);
///
/// impl SessionBackend for Blobs {
///     fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, Error> {
///         let map = self.0.lock().unwrap();
///         map.get(id).map(|b| StoredSession::from_bytes(b)).transpose()
///     }
///     fn save(&self, s: &StoredSession, pre: Precondition) -> Result<bool, Error> {
///         let mut map = self.0.lock().unwrap();
///         let current = map.get(&s.meta.id).map(|b| StoredSession::from_bytes(b)).transpose()?;
///         let ok = match (pre, current) {
///             (Precondition::Absent, None) => true,
///             (Precondition::Version(v), Some(c)) => c.meta.version == v,
///             _ => false,
///         };
///         if ok {
///             map.insert(s.meta.id.clone(), s.to_bytes().to_vec());
///         }
///         Ok(ok)
///     }
///     fn delete(&self, id: &SessionId) -> Result<bool, Error> {
///         Ok(self.0.lock().unwrap().remove(id).is_some())
///     }
///     fn list(&self) -> Result<Vec<SessionInfo>, Error> {
///         let map = self.0.lock().unwrap();
///         map.values().map(|b| Ok(StoredSession::from_bytes(b)?.info())).collect()
///     }
/// }
///
/// let store = SessionStore::with_backend(Blobs::default());
/// assert!(store.list().unwrap().is_empty());
/// ```
pub trait SessionBackend: Send + Sync {
    /// The stored record of `id`, if any.
    fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, Error>;

    /// Writes `session` if `precondition` holds; returns whether it wrote.
    fn save(&self, session: &StoredSession, precondition: Precondition) -> Result<bool, Error>;

    /// Deletes the record of `id`; returns whether it existed.
    fn delete(&self, id: &SessionId) -> Result<bool, Error>;

    /// Every stored session.
    fn list(&self) -> Result<Vec<SessionInfo>, Error>;

    /// Deletes sessions last used before `cutoff`; returns how many. The
    /// default lists and deletes one by one; a backend that can do it in
    /// one statement should.
    fn delete_unused_since(&self, cutoff: SystemTime) -> Result<usize, Error> {
        let mut n = 0;
        for info in self.list()? {
            if info.last_used < cutoff && self.delete(&info.id)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The sessions of this party, shared by its connections: a
/// [`SessionBackend`] plus which connection of this process currently
/// owns each session.
///
/// ```
/// use mls_tls::store::SessionStore;
/// let store = SessionStore::in_memory().unwrap();
/// assert!(store.list().unwrap().is_empty());
/// ```
pub struct SessionStore {
    backend: Box<dyn SessionBackend>,
    /// Which connection (by claim number) currently owns each session in
    /// this process, so older connections notice on their data path.
    leases: Mutex<HashMap<SessionId, Weak<AtomicU64>>>,
}

/// A connection's claim on a session; superseded when a newer connection
/// of this process claims the same session.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    current: Arc<AtomicU64>,
    mine: u64,
}

impl Lease {
    pub(crate) fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire) == self.mine
    }
}

impl core::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionStore").finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Opens (creating if needed) an SQLite store file at `path`: the
    /// default backend. Every transition is on disk before anything that
    /// depends on it leaves.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(Self::with_backend(SqliteBackend::open(path)?))
    }

    /// A store that lives in memory and is lost when dropped.
    pub fn in_memory() -> Result<Self, Error> {
        Ok(Self::with_backend(MemoryBackend::default()))
    }

    /// A store on a backend of your own.
    pub fn with_backend(backend: impl SessionBackend + 'static) -> Self {
        Self {
            backend: Box::new(backend),
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// All stored sessions.
    pub fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        self.backend.list()
    }

    /// Deletes a session. Returns whether it existed.
    pub fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        self.backend.delete(id)
    }

    /// Deletes sessions unused for longer than `max_idle` at time `now`;
    /// returns how many.
    pub fn sweep_expired(&self, max_idle: Duration, now: SystemTime) -> Result<usize, Error> {
        let cutoff = now.checked_sub(max_idle).unwrap_or(UNIX_EPOCH);
        // Whole seconds, as stored: a session used in the cutoff's second stays.
        self.backend.delete_unused_since(from_secs(secs(cutoff)))
    }

    pub(crate) fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, Error> {
        self.backend.load(id)
    }

    pub(crate) fn save(
        &self,
        session: &StoredSession,
        precondition: Precondition,
    ) -> Result<bool, Error> {
        self.backend.save(session, precondition)
    }

    /// Claims `id` for a connection, superseding any earlier claim.
    pub(crate) fn claim(&self, id: &SessionId) -> Lease {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        // Forget sessions no live connection holds, so the map stays small.
        leases.retain(|_, l| l.strong_count() > 0);
        let current = match leases.get(id).and_then(Weak::upgrade) {
            Some(c) => c,
            None => {
                let c = Arc::new(AtomicU64::new(0));
                leases.insert(id.clone(), Arc::downgrade(&c));
                c
            }
        };
        let mine = current.fetch_add(1, Ordering::AcqRel) + 1;
        Lease { current, mine }
    }
}

pub(crate) fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn from_secs(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u8, version: u64, last_used: u64) -> StoredSession {
        StoredSession {
            meta: SessionMeta {
                id: SessionId(vec![id; 16]),
                suite: CipherSuite::DEFAULT,
                initial_role: InitialRole::Initiator,
                state: StoredState::Synced,
                pending: None,
                last_commit_hash: None,
                last_send_epoch: 1,
                peer_credential: vec![1, 2],
                peer_signature_key: vec![id; 32],
                created: 1000 + u64::from(id),
                last_used,
                version,
            },
            group: Zeroizing::new(vec![id; 64]),
        }
    }

    /// What every backend must do: preconditions checked, records
    /// returned as saved, listing, deletion and the sweep.
    fn conformance(b: &dyn SessionBackend) {
        let a1 = session(1, 1, 5000);
        assert!(b.load(&a1.meta.id).unwrap().is_none());
        assert!(!b.save(&a1, Precondition::Version(0)).unwrap(), "absent");
        assert!(b.save(&a1, Precondition::Absent).unwrap());
        assert!(!b.save(&a1, Precondition::Absent).unwrap(), "exists");
        assert_eq!(b.load(&a1.meta.id).unwrap().unwrap(), a1);
        let a2 = session(1, 2, 6000);
        assert!(!b.save(&a2, Precondition::Version(0)).unwrap(), "stale");
        assert_eq!(b.load(&a1.meta.id).unwrap().unwrap(), a1, "unchanged");
        assert!(b.save(&a2, Precondition::Version(1)).unwrap());
        assert_eq!(b.load(&a1.meta.id).unwrap().unwrap(), a2);
        let other = session(2, 1, 9000);
        assert!(b.save(&other, Precondition::Absent).unwrap());
        let list = b.list().unwrap();
        assert_eq!(list, vec![a2.info(), other.info()]);
        // Used at 6000: a cutoff at 6000 keeps it, one later removes it.
        assert_eq!(b.delete_unused_since(from_secs(6000)).unwrap(), 0);
        assert_eq!(b.delete_unused_since(from_secs(6001)).unwrap(), 1);
        assert!(b.load(&a1.meta.id).unwrap().is_none());
        assert!(b.delete(&other.meta.id).unwrap());
        assert!(!b.delete(&other.meta.id).unwrap());
        assert!(b.list().unwrap().is_empty());
    }

    #[test]
    fn memory_backend_conforms() {
        conformance(&MemoryBackend::default());
    }

    #[test]
    fn sqlite_backend_conforms_in_memory_and_on_disk() {
        conformance(&SqliteBackend::in_memory().unwrap());
        let dir = std::env::temp_dir().join(format!("mlstls-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("conformance.db");
        let _ = std::fs::remove_file(&path);
        conformance(&SqliteBackend::open(&path).unwrap());
        // A record survives closing and reopening the file.
        let s = session(3, 7, 100);
        SqliteBackend::open(&path)
            .unwrap()
            .save(&s, Precondition::Absent)
            .unwrap();
        assert_eq!(
            SqliteBackend::open(&path)
                .unwrap()
                .load(&s.meta.id)
                .unwrap(),
            Some(s)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_sqlite_record_is_a_store_error() {
        let b = SqliteBackend::in_memory().unwrap();
        let s = session(4, 1, 100);
        b.save(&s, Precondition::Absent).unwrap();
        b.lock()
            .execute("UPDATE mlstls_session_records SET record = x'00'", [])
            .unwrap();
        assert!(matches!(b.load(&s.meta.id), Err(Error::Store(_))));
    }

    #[test]
    fn leases_supersede_and_are_forgotten_when_unused() {
        let store = SessionStore::in_memory().unwrap();
        let id = SessionId(vec![1]);
        let first = store.claim(&id);
        assert!(first.is_current());
        let second = store.claim(&id);
        assert!(!first.is_current() && second.is_current());
        drop((first, second));
        let _other = store.claim(&SessionId(vec![2]));
        assert_eq!(store.leases.lock().unwrap().len(), 1);
    }
}
