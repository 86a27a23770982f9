//! Which connection of this process owns each session (SPEC 8: when a
//! session is resumed, the older connection closes). Ownership policy of
//! the profile, not storage: the store's version precondition catches a
//! superseded connection at its next transition, and across processes; the
//! lease lets an older connection of this process notice at once, on its
//! data path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::store::{SessionId, SessionStore};

/// The claims of the connections of this process that share one
/// [`SessionStore`] ([`SessionOwners::of_store`]).
#[derive(Default)]
pub struct SessionOwners {
    /// The newest claim number of each session some connection holds.
    current: Mutex<HashMap<SessionId, Weak<AtomicU64>>>,
}

impl core::fmt::Debug for SessionOwners {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionOwners").finish_non_exhaustive()
    }
}

/// A connection's claim on a session; superseded when a newer connection
/// claims the same session from the same [`SessionOwners`].
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    current: Arc<AtomicU64>,
    mine: u64,
}

impl Lease {
    /// Whether no newer connection has claimed the session since.
    pub(crate) fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire) == self.mine
    }
}

impl SessionOwners {
    /// The claims of every configuration of this process built on `store`
    /// (the same `Arc`): a resumption through one configuration closes an
    /// older connection of another at once.
    pub fn of_store(store: &Arc<SessionStore>) -> Arc<Self> {
        type Registry = Vec<(Weak<SessionStore>, Weak<SessionOwners>)>;
        static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());
        let mut all = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        // Entries of dropped stores or configurations go; a live store's
        // address is unique, so a match is this store.
        all.retain(|(s, o)| s.strong_count() > 0 && o.strong_count() > 0);
        let found = all
            .iter()
            .find(|(s, _)| std::ptr::eq(s.as_ptr(), Arc::as_ptr(store)))
            .and_then(|(_, o)| o.upgrade());
        found.unwrap_or_else(|| {
            let owners = Arc::new(Self::default());
            all.push((Arc::downgrade(store), Arc::downgrade(&owners)));
            owners
        })
    }

    /// Claims `id` for a connection, superseding any earlier claim.
    pub(crate) fn claim(&self, id: &SessionId) -> Lease {
        let mut all = self.current.lock().unwrap_or_else(|p| p.into_inner());
        // Forget sessions no live connection holds, so the map stays small.
        all.retain(|_, l| l.strong_count() > 0);
        let current = match all.get(id).and_then(Weak::upgrade) {
            Some(c) => c,
            None => {
                let c = Arc::new(AtomicU64::new(0));
                all.insert(id.clone(), Arc::downgrade(&c));
                c
            }
        };
        let mine = current.fetch_add(1, Ordering::AcqRel) + 1;
        Lease { current, mine }
    }

    /// How many sessions some live connection holds (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        let all = self.current.lock().unwrap_or_else(|p| p.into_inner());
        all.values().filter(|l| l.strong_count() > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_claim_supersedes_and_released_sessions_are_forgotten() {
        let owners = SessionOwners::default();
        let id = SessionId(vec![1; 32]);
        let first = owners.claim(&id);
        assert!(first.is_current());
        let second = owners.claim(&id);
        assert!(!first.is_current());
        assert!(second.is_current());
        // Another session is independent.
        let other = owners.claim(&SessionId(vec![2; 32]));
        assert!(other.is_current() && second.is_current());
        drop((first, second, other));
        assert_eq!(owners.held(), 0);
        // A claim after every holder is gone starts afresh and is current.
        assert!(owners.claim(&id).is_current());
    }
}
