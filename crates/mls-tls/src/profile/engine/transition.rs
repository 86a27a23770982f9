//! Stored transitions (SPEC 10): every protocol step runs in a transaction
//! of the session's private database and ends with one atomic save of the
//! whole session record; only then does anything leave.

use std::time::SystemTime;

use super::{Active, Engine, State};
use crate::error::Error;
use crate::profile::crypto::MlsProvider;
use crate::profile::group;
use crate::profile::persist::{snapshot, GroupDb};
use crate::profile::store::{
    self, Precondition, SessionMeta, SessionStore, StoredSession, StoredState,
};

/// A failure inside a transition, and whether it came from a message that
/// authenticated (then the session is deleted, SPEC 8).
pub(super) struct Fail {
    pub(super) error: Error,
    pub(super) delete: bool,
}

impl From<Error> for Fail {
    fn from(error: Error) -> Self {
        Self {
            error,
            delete: false,
        }
    }
}

pub(super) fn authenticated(error: Error) -> Fail {
    Fail {
        error,
        delete: true,
    }
}

impl Engine {
    /// Runs `f` as one stored transition: committed with the updated
    /// metadata if it succeeds; otherwise rolled back, the group reloaded,
    /// and the session deleted if the failure was authenticated (SPEC 8).
    /// If another connection has moved the session on, this engine closes
    /// and never touches the session again (SPEC 8: the older closes).
    pub(super) fn transition<R>(
        &mut self,
        now: SystemTime,
        f: impl FnOnce(&mut Active, &MlsProvider<'_>) -> Result<R, Fail>,
    ) -> Result<R, Error> {
        let result = self.run_transition(now, f);
        if let Err(Error::Superseded) = result {
            self.active = None;
            self.db = None;
            self.state = State::Closed;
        }
        result
    }

    fn run_transition<R>(
        &mut self,
        now: SystemTime,
        f: impl FnOnce(&mut Active, &MlsProvider<'_>) -> Result<R, Fail>,
    ) -> Result<R, Error> {
        let store = self.config.store.clone();
        let (Some(active), Some(group_db)) = (self.active.as_mut(), self.db.as_mut()) else {
            return Err(Error::ApiMisuse("no session"));
        };
        let db = group_db.open(&store, &active.meta.id, active.meta.version)?;
        let crypto = active.crypto.clone();
        if active.provisional {
            // Not stored yet: a failure ends the provisional session anyway.
            return f(active, &MlsProvider::new(&crypto, db)).map_err(|fail| fail.error);
        }
        let before = active.meta.clone();
        let tx = rusqlite::Transaction::new_unchecked(db, rusqlite::TransactionBehavior::Deferred)
            .map_err(store::store_err)?;
        let mut delete = false;
        let outcome = match f(active, &MlsProvider::new(&crypto, &tx)) {
            Ok(r) => {
                active.meta.last_used = store::secs(now);
                active.meta.version = before.version + 1;
                let saved = snapshot(&tx).and_then(|group| {
                    let session = StoredSession {
                        meta: active.meta.clone(),
                        group,
                    };
                    store.save(&session, Precondition::Version(before.version))
                });
                match saved {
                    Ok(true) => Ok(r),
                    // Another connection resumed (or ended) this session
                    // since this one loaded it (SPEC 8: the older closes).
                    Ok(false) => Err(Error::Superseded),
                    Err(e) => Err(e),
                }
            }
            Err(fail) => {
                delete = fail.delete;
                Err(fail.error)
            }
        };
        let error = match outcome {
            // Stored: the private copy follows.
            Ok(r) => {
                tx.commit().map_err(store::store_err)?;
                if active.meta.state == StoredState::Synced {
                    // Idle until the next update: the store has the state.
                    *group_db = GroupDb::Parked;
                }
                return Ok(r);
            }
            Err(error) => {
                drop(tx); // rolls back
                error
            }
        };
        if delete {
            let _ = store.delete(&before.id);
        } else if !matches!(error, Error::Superseded) {
            // The transaction rolled back: go back to the stored state (a
            // superseded engine is closed by `transition` instead).
            active.meta = before;
            if let Ok(Some(group)) = group::load_group(db, &active.meta.id) {
                active.group = group;
            }
        }
        Err(error)
    }
}

/// Stores a new session from its private database, unless one with the same
/// id exists (`Err(None)`); then parks the database.
pub(super) fn store_new(
    store: &SessionStore,
    meta: &SessionMeta,
    db: &mut GroupDb,
) -> Result<(), Option<Error>> {
    let GroupDb::Open(conn) = db else {
        return Err(Some(Error::ApiMisuse("new session without its database")));
    };
    let session = StoredSession {
        meta: meta.clone(),
        group: snapshot(conn).map_err(Some)?,
    };
    match store.save(&session, Precondition::Absent) {
        Ok(true) => {
            *db = GroupDb::Parked;
            Ok(())
        }
        Ok(false) => Err(None),
        Err(e) => Err(Some(e)),
    }
}
