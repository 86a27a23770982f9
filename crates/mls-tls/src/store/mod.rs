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

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::crypto::CipherSuite;
use crate::error::Error;
use crate::message::TwoPartyMessageType;

mod codec;
pub mod conformance;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod seal;
pub(crate) mod snapshot;
mod sqlite;

pub use memory::MemoryBackend;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresBackend, PostgresOptions, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION};
pub use seal::{KeyRing, Sealed, STORE_KEY_ENV};
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

/// The persisted profile state of a session (profile section 3.1). The
/// pending commit is part of the state, so "which state" and "which commit
/// waits" cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredState {
    /// No pending commit.
    Synced,
    /// Our ConnectionUpdate or ResumptionResponse commit waits for the
    /// peer's EpochKeyUpdate.
    AwaitingEpochKeyUpdate(PendingCommit),
    /// Our ResumptionRequest commit waits for the response.
    AwaitingResumptionResponse(PendingCommit),
}

impl StoredState {
    /// The commit this state waits on, if any.
    pub fn pending(&self) -> Option<&PendingCommit> {
        match self {
            Self::Synced => None,
            Self::AwaitingEpochKeyUpdate(p) | Self::AwaitingResumptionResponse(p) => Some(p),
        }
    }
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
    /// The profile state, with its pending commit.
    pub state: StoredState,
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

/// One session decoded: the profile state and a snapshot of the MLS group.
/// Backends never see this: they keep [`SessionRecord`]s, whose opaque
/// `data` is this session encoded ([`StoredSession::to_bytes`]).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The profile state.
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

    /// The session encoded (format `MLSTLS-SESSION-1`): the `data` of its
    /// [`SessionRecord`]. Read back with [`StoredSession::from_bytes`].
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        codec::encode(self)
    }

    /// Reads a session written by [`StoredSession::to_bytes`]; damaged
    /// input is an [`Error::Store`], never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        codec::decode(bytes)
    }

    /// The record a backend keeps for this session.
    pub fn to_record(&self) -> SessionRecord {
        SessionRecord {
            info: self.info(),
            version: self.meta.version,
            data: self.to_bytes(),
        }
    }
}

/// One session as a [`SessionBackend`] keeps it: the fields a backend may
/// index or filter on, and the session itself as opaque bytes that only
/// the store reads. `data` holds the MLS group's private keys: keep it
/// where only this party can read it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// What [`SessionStore::list`] reports: id, suite, role, peer key,
    /// creation and last use (whole seconds).
    pub info: SessionInfo,
    /// Incremented by every stored transition; [`Precondition::Version`]
    /// compares against it.
    pub version: u64,
    /// The session, encoded by the store (zeroized when dropped).
    pub data: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("info", &self.info)
            .field("version", &self.version)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl SessionRecord {
    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.info.id
    }

    /// The whole record as one byte string (format `MLSTLS-RECORD-1`), for
    /// backends that store blobs (a key-value store, a file per session).
    /// Read back with [`SessionRecord::from_bytes`].
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        codec::encode_record(self)
    }

    /// Reads a record written by [`SessionRecord::to_bytes`]; damaged
    /// input is an [`Error::Store`], never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        codec::decode_record(bytes)
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
/// another database or service. A backend sees [`SessionRecord`]s: the id,
/// version and index fields, and opaque bytes; the engine's state is never
/// part of this API. [`conformance::check`] tests an implementation.
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
///     Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord, SessionStore,
/// };
/// use mls_tls::Error;
///
/// /// Keeps each record as one blob, as a key-value service would.
/// #[derive(Default)]
/// struct Blobs(Mutex<HashMap<SessionId, Vec<u8>>>);
///
/// impl SessionBackend for Blobs {
///     fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
///         let map = self.0.lock().unwrap();
///         map.get(id).map(|b| SessionRecord::from_bytes(b)).transpose()
///     }
///     fn save(&self, r: &SessionRecord, pre: Precondition) -> Result<bool, Error> {
///         let mut map = self.0.lock().unwrap();
///         let current = map.get(r.id()).map(|b| SessionRecord::from_bytes(b)).transpose()?;
///         let ok = match (pre, current) {
///             (Precondition::Absent, None) => true,
///             (Precondition::Version(v), Some(c)) => c.version == v,
///             _ => false,
///         };
///         if ok {
///             map.insert(r.id().clone(), r.to_bytes().to_vec());
///         }
///         Ok(ok)
///     }
///     fn delete(&self, id: &SessionId) -> Result<bool, Error> {
///         Ok(self.0.lock().unwrap().remove(id).is_some())
///     }
///     fn list(&self) -> Result<Vec<SessionInfo>, Error> {
///         let map = self.0.lock().unwrap();
///         map.values().map(|b| Ok(SessionRecord::from_bytes(b)?.info)).collect()
///     }
/// }
///
/// mls_tls::store::conformance::check(&Blobs::default());
/// let store = SessionStore::with_backend(Blobs::default());
/// assert!(store.list().unwrap().is_empty());
/// ```
pub trait SessionBackend: Send + Sync {
    /// The stored record of `id`, if any.
    fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error>;

    /// Writes `record` if `precondition` holds; returns whether it wrote.
    fn save(&self, record: &SessionRecord, precondition: Precondition) -> Result<bool, Error>;

    /// Deletes the record of `id`; returns whether it existed.
    fn delete(&self, id: &SessionId) -> Result<bool, Error>;

    /// Every stored session, in any order.
    fn list(&self) -> Result<Vec<SessionInfo>, Error>;

    /// Deletes the record of `id` only if it is still at `version`;
    /// returns whether it deleted. A connection ending its session for
    /// good uses it, so that it never deletes a session another
    /// connection or process has moved on since (SPEC 8, 9). The default
    /// loads, compares and deletes, which is not atomic: a backend that
    /// can do it in one statement should.
    fn delete_at_version(&self, id: &SessionId, version: u64) -> Result<bool, Error> {
        match self.load(id)? {
            Some(record) if record.version == version => self.delete(id),
            _ => Ok(false),
        }
    }

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

/// A backend shared behind an `Arc` is a backend: the caller keeps a
/// handle (to inspect or share it) while the store owns another.
impl<B: SessionBackend + ?Sized> SessionBackend for Arc<B> {
    fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        (**self).load(id)
    }
    fn save(&self, record: &SessionRecord, precondition: Precondition) -> Result<bool, Error> {
        (**self).save(record, precondition)
    }
    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        (**self).delete(id)
    }
    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        (**self).list()
    }
    fn delete_at_version(&self, id: &SessionId, version: u64) -> Result<bool, Error> {
        (**self).delete_at_version(id, version)
    }
    fn delete_unused_since(&self, cutoff: SystemTime) -> Result<usize, Error> {
        (**self).delete_unused_since(cutoff)
    }
}

/// The sessions of this party, shared by its connections: a
/// [`SessionBackend`] behind the checks every backend gets (the record's
/// fields must agree with its data; listing is ordered).
///
/// ```
/// use mls_tls::store::SessionStore;
/// let store = SessionStore::in_memory().unwrap();
/// assert!(store.list().unwrap().is_empty());
/// ```
pub struct SessionStore {
    backend: Box<dyn SessionBackend>,
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
        }
    }

    /// All stored sessions, oldest first (by creation time, then id),
    /// whatever order the backend lists them in.
    pub fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        let mut all = self.backend.list()?;
        all.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(all)
    }

    /// Deletes a session. Returns whether it existed.
    pub fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        self.backend.delete(id)
    }

    /// Deletes a session only if it is still at `version`; returns
    /// whether it deleted ([`SessionBackend::delete_at_version`]).
    pub fn delete_at_version(&self, id: &SessionId, version: u64) -> Result<bool, Error> {
        self.backend.delete_at_version(id, version)
    }

    /// Deletes sessions unused for longer than `max_idle` at time `now`;
    /// returns how many.
    pub fn sweep_expired(&self, max_idle: Duration, now: SystemTime) -> Result<usize, Error> {
        let cutoff = now.checked_sub(max_idle).unwrap_or(UNIX_EPOCH);
        // Whole seconds, as stored: a session used in the cutoff's second stays.
        self.backend.delete_unused_since(from_secs(secs(cutoff)))
    }

    /// The decoded session `id`, if stored. A record whose indexed fields
    /// disagree with its data is [`Error::Store`].
    pub(crate) fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, Error> {
        let Some(record) = self.backend.load(id)? else {
            return Ok(None);
        };
        let session = StoredSession::from_bytes(&record.data)?;
        if session.meta.id != *id || record.info.id != *id {
            return Err(Error::Store(format!(
                "record of {id} stored under another id"
            )));
        }
        if session.meta.version != record.version {
            return Err(Error::Store(format!(
                "record of {id}: version {} in its data, {} in the backend's field",
                session.meta.version, record.version
            )));
        }
        // `list` and `sweep_expired` read the index: it must say what the
        // data says.
        if session.info() != record.info {
            return Err(Error::Store(format!(
                "record of {id}: the backend's index fields disagree with its data"
            )));
        }
        Ok(Some(session))
    }

    pub(crate) fn save(
        &self,
        session: &StoredSession,
        precondition: Precondition,
    ) -> Result<bool, Error> {
        self.backend.save(&session.to_record(), precondition)
    }

    /// Opens (creating if needed) an SQLite store file at `path` whose
    /// records are sealed with `keys` ([`Sealed`]).
    pub fn open_sealed(path: impl AsRef<Path>, keys: KeyRing) -> Result<Self, Error> {
        Ok(Self::with_backend(Sealed::new(
            SqliteBackend::open(path)?,
            keys,
        )))
    }

    /// Connects to a PostgreSQL database shared by a fleet
    /// ([`PostgresBackend`]), its records sealed with `keys`: a shared
    /// database always holds sessions encrypted at rest.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str, keys: KeyRing) -> Result<Self, Error> {
        Ok(Self::with_backend(Sealed::new(
            PostgresBackend::connect(url)?,
            keys,
        )))
    }
}

/// Whole seconds since the Unix epoch, clamped to [`MAX_SECS`] so that
/// every stored timestamp reads back.
pub(crate) fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS)
}

/// The last second a stored timestamp may name: 9999-12-31T23:59:59Z.
/// Decoders refuse later values as damage; [`from_secs`] clamps to it.
pub(crate) const MAX_SECS: u64 = 253_402_300_799;

/// Seconds since the Unix epoch as a time, clamped to [`MAX_SECS`] so that
/// no stored value can overflow `SystemTime` (a panic).
pub(crate) fn from_secs(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s.min(MAX_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store lists oldest first whatever order the backend uses (the
    /// contract lets a backend list in any order, as a hash map does).
    #[test]
    fn the_store_lists_oldest_first_whatever_the_backend_order() {
        struct Reversed(MemoryBackend);
        impl SessionBackend for Reversed {
            fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
                self.0.load(id)
            }
            fn save(&self, r: &SessionRecord, p: Precondition) -> Result<bool, Error> {
                self.0.save(r, p)
            }
            fn delete(&self, id: &SessionId) -> Result<bool, Error> {
                self.0.delete(id)
            }
            fn list(&self) -> Result<Vec<SessionInfo>, Error> {
                let mut all = self.0.list()?;
                all.reverse();
                Ok(all)
            }
        }
        let backend = Reversed(MemoryBackend::default());
        let records: Vec<SessionRecord> = (1..=3).map(|i| conformance::record(i, 1, 100)).collect();
        for r in &records {
            backend.save(r, Precondition::Absent).unwrap();
        }
        let store = SessionStore::with_backend(backend);
        let ids: Vec<SessionId> = store.list().unwrap().into_iter().map(|i| i.id).collect();
        let expected: Vec<SessionId> = records.iter().map(|r| r.id().clone()).collect();
        assert_eq!(ids, expected);
    }

    /// A backend that checks a write only against the new record's
    /// version (`Version(v)` writes whenever the new one is v+1) lets a
    /// stale connection overwrite newer state: the contract test refuses it.
    #[test]
    fn conformance_refuses_a_backend_that_ignores_the_stored_version() {
        #[derive(Default)]
        struct Sloppy(MemoryBackend);
        impl SessionBackend for Sloppy {
            fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
                self.0.load(id)
            }
            fn save(&self, r: &SessionRecord, p: Precondition) -> Result<bool, Error> {
                let exists = self.0.load(r.id())?.is_some();
                let ok = match p {
                    Precondition::Absent => !exists,
                    Precondition::Version(v) => exists && r.version == v + 1,
                };
                if ok {
                    self.0.delete(r.id())?;
                    self.0.save(r, Precondition::Absent)?;
                }
                Ok(ok)
            }
            fn delete(&self, id: &SessionId) -> Result<bool, Error> {
                self.0.delete(id)
            }
            fn list(&self) -> Result<Vec<SessionInfo>, Error> {
                self.0.list()
            }
        }
        let r = std::panic::catch_unwind(|| conformance::check(&Sloppy::default()));
        assert!(r.is_err(), "a stale-writing backend must fail the contract");
    }

    /// Every index field must agree with the record's data, or `list` and
    /// `sweep_expired` would act on false values.
    #[test]
    fn load_refuses_index_fields_that_disagree_with_the_data() {
        let session = StoredSession {
            meta: SessionMeta {
                id: SessionId(vec![1; 16]),
                suite: CipherSuite::DEFAULT,
                initial_role: InitialRole::Initiator,
                state: StoredState::Synced,
                last_commit_hash: None,
                last_send_epoch: 1,
                peer_credential: vec![1, 2],
                peer_signature_key: vec![1; 32],
                created: 1000,
                last_used: 5000,
                version: 3,
            },
            group: Zeroizing::new(vec![0; 8]),
        };
        let forgeries: [fn(&mut SessionInfo); 4] = [
            |i| i.peer_signature_key = vec![0xee; 32],
            |i| i.initial_role = InitialRole::Responder,
            |i| i.last_used = from_secs(0),
            |i| i.created = from_secs(1),
        ];
        for forge in forgeries {
            let backend = MemoryBackend::default();
            let mut record = session.to_record();
            forge(&mut record.info);
            backend.save(&record, Precondition::Absent).unwrap();
            let store = SessionStore::with_backend(backend);
            assert!(matches!(
                store.load(&session.meta.id),
                Err(Error::Store(ref m)) if m.contains("index fields")
            ));
        }
        // Unforged, it loads; a timestamp past the limit is written clamped.
        let backend = MemoryBackend::default();
        let mut far = session.clone();
        far.meta.last_used = u64::MAX;
        backend
            .save(&far.to_record(), Precondition::Absent)
            .unwrap();
        let loaded = SessionStore::with_backend(backend)
            .load(&session.meta.id)
            .unwrap()
            .unwrap();
        assert_eq!(loaded.meta.last_used, MAX_SECS);
    }

    #[test]
    fn memory_backend_conforms() {
        conformance::check(&MemoryBackend::default());
    }

    #[test]
    fn sqlite_backend_conforms_in_memory_and_on_disk() {
        conformance::check(&SqliteBackend::in_memory().unwrap());
        let dir = std::env::temp_dir().join(format!("mlstls-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("conformance.db");
        let _ = std::fs::remove_file(&path);
        conformance::check(&SqliteBackend::open(&path).unwrap());
        // A record survives closing and reopening the file.
        let s = conformance::record(3, 7, 100);
        SqliteBackend::open(&path)
            .unwrap()
            .save(&s, Precondition::Absent)
            .unwrap();
        assert_eq!(
            SqliteBackend::open(&path).unwrap().load(s.id()).unwrap(),
            Some(s)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_sqlite_record_is_a_store_error() {
        let b = SqliteBackend::in_memory().unwrap();
        let s = conformance::record(4, 1, 100);
        b.save(&s, Precondition::Absent).unwrap();
        b.lock()
            .execute("UPDATE mlstls_session_records SET suite = 999", [])
            .unwrap();
        assert!(matches!(b.load(s.id()), Err(Error::Store(_))));
    }
}
