//! What every [`SessionBackend`] must do, as a function a backend's own
//! tests call: preconditions checked atomically, records returned exactly
//! as saved, listing, deletion and the sweep (SPEC 10).
//!
//! ```
//! use mls_tls::store::{conformance, MemoryBackend};
//! conformance::check(&MemoryBackend::default());
//! ```

use std::time::Duration;

use zeroize::Zeroizing;

use super::{
    from_secs, InitialRole, Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord,
};
use crate::crypto::CipherSuite;

/// A record with made-up fields: `id` fills the 16-byte session id and the
/// opaque data (which a backend must not interpret), `last_used` is in
/// seconds since the Unix epoch.
pub fn record(id: u8, version: u64, last_used: u64) -> SessionRecord {
    SessionRecord {
        info: SessionInfo {
            id: SessionId(vec![id; 16]),
            suite: CipherSuite::DEFAULT,
            initial_role: InitialRole::Initiator,
            peer_signature_key: vec![id; 32],
            created: from_secs(1000 + u64::from(id)),
            last_used: from_secs(last_used),
        },
        version,
        data: Zeroizing::new(vec![id; 64 + version as usize]),
    }
}

/// Runs the contract against an empty backend; panics at the first
/// violation, naming it. Leaves the backend empty.
pub fn check(b: &dyn SessionBackend) {
    let a1 = record(1, 1, 5000);
    assert!(
        b.load(a1.id()).unwrap().is_none(),
        "an empty backend has no record"
    );
    assert!(
        !b.save(&a1, Precondition::Version(0)).unwrap(),
        "Version(_) on an absent record must not write"
    );
    assert!(
        b.save(&a1, Precondition::Absent).unwrap(),
        "Absent on an absent record writes"
    );
    assert!(
        !b.save(&a1, Precondition::Absent).unwrap(),
        "Absent on an existing record must not write"
    );
    assert_eq!(
        b.load(a1.id()).unwrap().unwrap(),
        a1,
        "a record reads back as saved"
    );
    let a2 = record(1, 2, 6000);
    assert!(
        !b.save(&a2, Precondition::Version(0)).unwrap(),
        "a stale Version(_) must not write"
    );
    assert_eq!(
        b.load(a1.id()).unwrap().unwrap(),
        a1,
        "a refused save changes nothing"
    );
    assert!(
        b.save(&a2, Precondition::Version(1)).unwrap(),
        "the current version writes"
    );
    assert_eq!(
        b.load(a1.id()).unwrap().unwrap(),
        a2,
        "the new record replaces the old"
    );
    // What the engine writes is always version v+1 under Version(v): a
    // stale connection's write looks exactly like that, and only the
    // stored version can refuse it (SPEC 8: the older connection closes).
    let a3 = record(1, 3, 6500);
    assert!(
        b.save(&a3, Precondition::Version(2)).unwrap(),
        "version 2 -> 3 writes"
    );
    let stale = record(1, 2, 7000);
    assert!(
        !b.save(&stale, Precondition::Version(1)).unwrap(),
        "a stale writer (Version(1) over stored version 3) must not write"
    );
    let ahead = record(1, 5, 7000);
    assert!(
        !b.save(&ahead, Precondition::Version(4)).unwrap(),
        "Version(4) over stored version 3 must not write (equality, not <= or >=)"
    );
    assert_eq!(
        b.load(a1.id()).unwrap().unwrap(),
        a3,
        "refused saves change nothing"
    );
    let a2 = record(1, 4, 6000);
    assert!(b.save(&a2, Precondition::Version(3)).unwrap());
    let other = record(2, 1, 9000);
    assert!(b.save(&other, Precondition::Absent).unwrap());
    // In any order: `SessionStore::list` sorts.
    let mut listed = b.list().unwrap();
    listed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(
        listed,
        vec![a2.info.clone(), other.info.clone()],
        "list: every record's info"
    );
    // Used at 6000: a cutoff at 6000 keeps it, one a second later removes it.
    assert_eq!(
        b.delete_unused_since(from_secs(6000)).unwrap(),
        0,
        "cutoff is exclusive"
    );
    assert_eq!(
        b.delete_unused_since(from_secs(6000) + Duration::from_secs(1))
            .unwrap(),
        1,
        "records used before the cutoff are deleted"
    );
    assert!(b.load(a1.id()).unwrap().is_none());
    // A connection ending its session deletes only the version it knows.
    assert!(
        !b.delete_at_version(other.id(), 2).unwrap(),
        "delete_at_version of another version must not delete"
    );
    assert_eq!(b.load(other.id()).unwrap().unwrap(), other);
    assert!(
        b.delete_at_version(other.id(), 1).unwrap(),
        "delete_at_version of the stored version deletes"
    );
    assert!(b.load(other.id()).unwrap().is_none());
    assert!(!b.delete_at_version(other.id(), 1).unwrap());
    assert!(b.save(&other, Precondition::Absent).unwrap());
    assert!(
        b.delete(other.id()).unwrap(),
        "delete reports an existing record"
    );
    assert!(
        !b.delete(other.id()).unwrap(),
        "delete reports a missing record"
    );
    assert!(b.list().unwrap().is_empty(), "the backend is left empty");
}
