//! Stored transitions (SPEC 10): every protocol step runs on the session's
//! in-memory group storage and ends with one atomic save of the whole
//! session record; only then does anything leave. A step that fails throws
//! the storage away and reloads it from the store.

use std::time::SystemTime;

use tracing::{info, warn};

use super::{Active, Engine, Phase, Standing};
use crate::error::Error;
use crate::profile::group;
use crate::profile::provider::MlsProvider;
use crate::store::snapshot::{GroupDb, GroupStorage};
use crate::store::{
    self, Precondition, SessionId, SessionMeta, SessionStore, StoredSession, StoredState,
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

/// Deletes a session the protocol says to delete because of `cause`
/// (SPEC 8), and returns the error the caller sees: `cause` itself, or,
/// if the store fails to delete, [`Error::SessionNotDeleted`] carrying
/// both (its alert is still `cause`'s).
pub(super) fn delete_session(store: &SessionStore, id: &SessionId, cause: Error) -> Error {
    match store.delete(id) {
        Ok(_) => {
            info!(session = %id, reason = %cause, "session deleted");
            cause
        }
        Err(e) => {
            warn!(
                session = %id,
                reason = %cause,
                store_error = %e,
                "session must be deleted, but the store failed to delete it"
            );
            Error::SessionNotDeleted {
                cause: Box::new(cause),
                store: e.to_string(),
            }
        }
    }
}

impl Engine {
    /// Runs `f` as one stored transition: committed with the updated
    /// metadata if it succeeds; otherwise rolled back, the group reloaded
    /// from the store, and the session deleted if the failure was
    /// authenticated (SPEC 8). If another connection has moved the session
    /// on, this engine closes and never touches the session again (SPEC 8:
    /// the older closes). If the reload fails, memory and store could
    /// differ: the engine closes with an `internal_error` error instead.
    pub(super) fn transition<R>(
        &mut self,
        now: SystemTime,
        f: impl FnOnce(&mut Active, &MlsProvider<'_>) -> Result<R, Fail>,
    ) -> Result<R, Error> {
        match self.run_transition(now, f) {
            Ok(r) => Ok(r),
            Err(Closing::Keep(e)) => Err(e),
            Err(Closing::Close(e)) => {
                // Superseded, deleted, or not reloaded: never touched again
                // by a transition. Only a superseded session is no longer
                // ours to `terminate` (a failed delete or reload still is).
                self.close(!matches!(e, Error::Superseded));
                Err(e)
            }
        }
    }

    fn run_transition<R>(
        &mut self,
        now: SystemTime,
        f: impl FnOnce(&mut Active, &MlsProvider<'_>) -> Result<R, Fail>,
    ) -> Result<R, Closing> {
        let store = self.config.store.clone();
        let Phase::Live(live) = &mut self.phase else {
            return Err(Closing::Close(Error::Internal(
                "a stored transition without a session",
            )));
        };
        let provisional = matches!(live.standing, Standing::Provisional);
        let (active, group_db) = (&mut live.session, &mut live.db);
        if let Some(doubt) = self.in_doubt.take() {
            // The last save's outcome is unknown: find out before the next.
            match doubt.resolve(&store, &active.meta.id, active.meta.version) {
                Ok(Outcome::Lost) => {}
                // Our own write, never followed by a send: the store is one
                // version ahead of memory. This step replaces it (SPEC 10:
                // as after a crash between save and send).
                Ok(Outcome::Landed) => active.meta.version = doubt.version,
                Ok(Outcome::Superseded) => return Err(Closing::Close(Error::Superseded)),
                Err(e) => {
                    self.in_doubt = Some(doubt);
                    return Err(Closing::Keep(e));
                }
            }
        }
        let db = match group_db.open(&store, &active.meta.id, active.meta.version) {
            Ok(db) => db,
            Err(Error::Superseded) => return Err(Closing::Close(Error::Superseded)),
            Err(e) => return Err(Closing::Keep(e)),
        };
        let crypto = active.crypto.clone();
        if provisional {
            // Not stored yet: a failure ends the provisional session anyway.
            return f(active, &MlsProvider::new(&crypto, db))
                .map_err(|fail| Closing::Keep(fail.error));
        }
        // The storage as it was, to roll back to without the store (which
        // may be what failed): if a save did commit after all, the version
        // precondition of the next save finds out (Superseded).
        let rollback = match db.snapshot() {
            Ok(snapshot) => snapshot,
            Err(e) => return Err(Closing::Keep(e)),
        };
        let before = active.meta.clone();
        // What a failed step may have changed besides the group and meta.
        let before_identity = (active.identity.clone(), active.rotate_to.clone());
        let before_peer = active.peer.clone();
        let mut delete = false;
        let outcome = match f(active, &MlsProvider::new(&crypto, db)) {
            Ok(r) => {
                active.meta.last_used = store::secs(now);
                active.meta.version = before.version + 1;
                let saved = db.snapshot().and_then(|group| {
                    let session = StoredSession {
                        meta: active.meta.clone(),
                        group,
                    };
                    store
                        .save(&session, Precondition::Version(before.version))
                        .inspect_err(|_| {
                            // A failed save may still have committed (its
                            // acknowledgement lost): the next transition or
                            // `terminate` asks the store which.
                            self.in_doubt = Some(InDoubt::of(&session));
                        })
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
            Ok(r) => {
                if active.meta.state == StoredState::Synced {
                    // Idle until the next update: the store has the state.
                    *group_db = GroupDb::Parked;
                }
                return Ok(r);
            }
            Err(error) => error,
        };
        if delete {
            return Err(Closing::Close(delete_session(&store, &before.id, error)));
        }
        if matches!(error, Error::Superseded) {
            return Err(Closing::Close(error));
        }
        // The step's changes are thrown away: memory goes back to the
        // storage as it was before the step, which is what the store holds
        // at `before.version`.
        active.meta = before;
        (active.identity, active.rotate_to) = before_identity;
        active.peer = before_peer;
        let reloaded = GroupStorage::restore(&rollback).and_then(|db| {
            let group = group::load_group(&db, &active.meta.id)?
                .ok_or(Error::Internal("the rolled-back storage has no group"))?;
            Ok((db, group))
        });
        match reloaded {
            Ok((db, group)) => {
                active.group = group;
                *group_db = GroupDb::Open(db);
                Err(Closing::Keep(error))
            }
            Err(reload) => {
                warn!(
                    session = %active.meta.id,
                    error = %error,
                    reload_error = %reload,
                    "rolling the session back failed; closing"
                );
                Err(Closing::Close(Error::Store(format!(
                    "rolling back a failed transition failed ({reload}); the connection \
                     is closed. The transition failed with: {error}"
                ))))
            }
        }
    }
}

/// A save the store reported as failed, which may have committed anyway
/// (a timeout or a reset after COMMIT). Only a digest of the record is
/// kept, never its secrets. Nothing was sent after it, so if it landed it
/// is our own unsent state, which the next save may replace.
pub(super) struct InDoubt {
    /// The version the save would have written.
    version: u64,
    /// SHA-256 of the record's encoding.
    digest: [u8; 32],
}

/// What became of a save in doubt.
pub(super) enum Outcome {
    /// The store is still at the version before it.
    Lost,
    /// The store holds exactly the record it wrote.
    Landed,
    /// The store holds something else: another connection moved on.
    Superseded,
}

impl InDoubt {
    fn of(session: &StoredSession) -> Self {
        Self {
            version: session.meta.version,
            digest: digest(session),
        }
    }

    /// Asks the store: `before` is the version memory is at. A store
    /// error is returned as is; the question stays open.
    pub(super) fn resolve(
        &self,
        store: &SessionStore,
        id: &SessionId,
        before: u64,
    ) -> Result<Outcome, Error> {
        Ok(match store.load(id)? {
            Some(s) if s.meta.version == before => Outcome::Lost,
            Some(s) if s.meta.version == self.version && digest(&s) == self.digest => {
                Outcome::Landed
            }
            _ => Outcome::Superseded,
        })
    }

    /// The version the store is at if the save landed.
    pub(super) fn version(&self) -> u64 {
        self.version
    }
}

fn digest(session: &StoredSession) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &session.to_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A failed transition, and whether the engine must close at once (its
/// memory no longer matches a store it may touch: superseded, deleted, or
/// not reloaded) or keeps its rolled-back state.
pub(super) enum Closing {
    Keep(Error),
    Close(Error),
}

/// Stores a new session from its group storage, unless one with the same
/// id exists (`Err(None)`); then parks the storage.
pub(super) fn store_new(
    store: &SessionStore,
    meta: &SessionMeta,
    db: &mut GroupDb,
) -> Result<(), Option<Error>> {
    let GroupDb::Open(storage) = db else {
        return Err(Some(Error::Internal("new session without its storage")));
    };
    let session = StoredSession {
        meta: meta.clone(),
        group: storage.snapshot().map_err(Some)?,
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
