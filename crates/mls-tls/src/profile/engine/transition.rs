//! Stored transitions (SPEC 10): every protocol step runs on the session's
//! in-memory group storage and ends with one atomic save of the whole
//! session record; only then does anything leave. A step that fails rolls
//! memory back to the storage as it was before the step (the store may be
//! what failed); a save of unknown outcome is resolved later (`doubt`).

use std::time::SystemTime;

use tracing::{info, warn};
use zeroize::Zeroizing;

use super::doubt::{forget_new, InDoubt, Resolved};
use super::{Active, Engine, Phase, Standing};
use crate::error::Error;
use crate::profile::group;
use crate::profile::provider::MlsProvider;
use crate::store::snapshot::GroupDb;
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
        if let Some(doubt) = &self.in_doubt {
            // Earlier saves' outcome is unknown: find out before the next.
            let landed_at = doubt.version;
            match doubt.resolve(&store, &active.meta.id, active.meta.version) {
                // Kept: a save the database still runs may land later.
                Ok(Resolved::Lost) => {}
                // A pending commit in it may have been sent by another
                // connection (a rule-1 responder resends it and stores
                // nothing, SPEC 8): it is no longer ours to replace. The
                // session stays as stored and resumes from there.
                Ok(Resolved::Landed(stored)) if stored.meta.state.pending().is_some() => {
                    self.in_doubt = None;
                    warn!(
                        session = %active.meta.id,
                        "a save reported failed had stored a commit another connection may have \
                         sent; closing, the session resumes from the store"
                    );
                    return Err(Closing::Close(Error::StoredAhead(
                        "a commit of ours was stored though its save was reported failed, and \
                         a different step came first"
                            .into(),
                    )));
                }
                // Our own write, never followed by a send: the store is one
                // version ahead of memory. This step replaces it (SPEC 10:
                // as after a crash between save and send).
                Ok(Resolved::Landed(_)) => {
                    active.meta.version = landed_at;
                    self.in_doubt = None;
                }
                Ok(Resolved::Superseded) => {
                    self.in_doubt = None;
                    return Err(Closing::Close(Error::Superseded));
                }
                Err(e) => return Err(Closing::Keep(e)),
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
        let mut before = active.meta.clone();
        // What a failed step may have changed besides the group and meta.
        let before_identity = (active.identity.clone(), active.rotate_to.clone());
        let before_peer = active.peer.clone();
        let mut delete = false;
        let outcome = match f(active, &MlsProvider::new(&crypto, db)) {
            Ok(r) => {
                active.meta.last_used = store::secs(now);
                let saved = db.snapshot().and_then(|group| {
                    save_step(
                        &store,
                        &mut active.meta,
                        group,
                        &mut before,
                        &mut self.in_doubt,
                    )
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
        let reloaded = group::restore_group(
            &rollback,
            &active.meta.id,
            "the rolled-back storage has no group",
        );
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

/// Saves the step's result as the version after `before`'s. If the save
/// fails its precondition, an earlier save in doubt may have committed
/// since it was thought lost (the database ran a statement the caller had
/// given up on): then that write of ours is replaced, and `before` moves to
/// its version, which a rollback keeps. A failed save is recorded in doubt.
fn save_step(
    store: &SessionStore,
    meta: &mut SessionMeta,
    group: Zeroizing<Vec<u8>>,
    before: &mut SessionMeta,
    in_doubt: &mut Option<InDoubt>,
) -> Result<bool, Error> {
    loop {
        meta.version = before.version + 1;
        let session = StoredSession {
            meta: meta.clone(),
            group: group.clone(),
        };
        match store.save(&session, Precondition::Version(before.version)) {
            Ok(true) => {
                *in_doubt = None;
                return Ok(true);
            }
            Ok(false) => {
                let landed = match in_doubt.as_ref() {
                    Some(d) if d.version == meta.version => {
                        d.resolve(store, &meta.id, before.version)?
                    }
                    _ => Resolved::Superseded,
                };
                match landed {
                    Resolved::Landed(s) if s.meta.state.pending().is_none() => {
                        *in_doubt = None;
                        before.version += 1;
                    }
                    // It holds a commit another connection may have sent:
                    // the next step takes it up (see `adopt_landed_update`);
                    // this one fails like a store failure, the doubt kept.
                    Resolved::Landed(_) => {
                        return Err(Error::Store(
                            "an earlier save of this session committed late; it is taken up \
                             on the next try"
                                .into(),
                        ))
                    }
                    _ => {
                        *in_doubt = None;
                        return Ok(false);
                    }
                }
            }
            Err(e) => {
                // The save may still have committed (its acknowledgement
                // lost): the next transition or `terminate` asks the store.
                InDoubt::record(in_doubt, &session);
                return Err(e);
            }
        }
    }
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
        Err(e) => {
            forget_new(store, &session);
            Err(Some(e))
        }
    }
}
