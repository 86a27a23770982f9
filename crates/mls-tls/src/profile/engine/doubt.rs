//! Saves of unknown outcome ("in doubt", issue 15): a save the store
//! reported as failed may have committed (an acknowledgement lost after
//! COMMIT, a statement the database ran after the caller gave up). What is
//! kept to find out, how the store is asked, and what a landed save means
//! for the next step (docs/PROTOCOL.md, "in doubt").

use std::collections::VecDeque;

use tracing::{info, warn};

use super::{Engine, Phase};
use crate::error::Error;
use crate::message::TwoPartyMessageType;
use crate::profile::group;
use crate::store::snapshot::GroupDb;
use crate::store::{SessionId, SessionStore, StoredSession};

/// Saves the store reported as failed, which may have committed anyway (a
/// timeout or a reset after COMMIT, or a statement the database still runs
/// after the caller gave up). Only digests of the records are kept, never
/// their secrets. Nothing was sent after them, so one that landed is our
/// own unsent state, which the next save may replace.
pub(super) struct InDoubt {
    /// The version the saves would have written.
    pub(super) version: u64,
    /// SHA-256 of each record tried at `version`, the newest last (at most
    /// [`MAX_IN_DOUBT`]: a save that has not landed after that many
    /// retries will not).
    digests: VecDeque<[u8; 32]>,
}

const MAX_IN_DOUBT: usize = 16;

/// What became of the saves in doubt.
pub(super) enum Resolved {
    /// The store is still at the version before them.
    Lost,
    /// The store holds exactly one of the records they wrote: this one.
    Landed(Box<StoredSession>),
    /// The store holds something else: another connection moved on.
    Superseded,
}

impl InDoubt {
    pub(super) fn record(doubt: &mut Option<Self>, session: &StoredSession) {
        let version = session.meta.version;
        let d = match doubt {
            Some(d) if d.version == version => d,
            _ => doubt.insert(Self {
                version,
                digests: VecDeque::new(),
            }),
        };
        if d.digests.len() == MAX_IN_DOUBT {
            d.digests.pop_front();
        }
        d.digests.push_back(digest(session));
    }

    /// Asks the store: `before` is the version memory is at. A store
    /// error is returned as is; the question stays open.
    pub(super) fn resolve(
        &self,
        store: &SessionStore,
        id: &SessionId,
        before: u64,
    ) -> Result<Resolved, Error> {
        Ok(match store.load(id)? {
            Some(s) if s.meta.version == before => Resolved::Lost,
            Some(s) if s.meta.version == self.version && self.digests.contains(&digest(&s)) => {
                Resolved::Landed(Box::new(s))
            }
            _ => Resolved::Superseded,
        })
    }
}

fn digest(session: &StoredSession) -> [u8; 32] {
    group::sha256(&session.to_bytes())
}

impl Engine {
    /// Our own key update whose save landed though it was reported failed
    /// (nothing sent): the stored commit is adopted and returned to be sent
    /// as it is, never replaced, since another connection may already have
    /// sent it (SPEC 8 rule 1). `None` when there is no such update; a
    /// store error is returned (nothing sent; the doubt stays).
    pub(super) fn adopt_landed_update(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let Some(doubt) = &self.in_doubt else {
            return Ok(None);
        };
        if !self.deferred.is_empty() {
            // The landed commit may come from the peer's waiting message:
            // the transition sorts that out.
            return Ok(None);
        }
        let store = self.config.store.clone();
        let Phase::Live(live) = &mut self.phase else {
            return Ok(None);
        };
        let active = &mut live.session;
        let Resolved::Landed(stored) =
            doubt.resolve(&store, &active.meta.id, active.meta.version)?
        else {
            // Lost: the update is made again; superseded: the transition
            // finds out and closes.
            return Ok(None);
        };
        let message = match stored.meta.state.pending() {
            Some(p) if p.typ == TwoPartyMessageType::ConnectionUpdate => p.message.clone(),
            _ => return Ok(None),
        };
        let (db, group) = group::restore_group(
            &stored.group,
            &stored.meta.id,
            "the landed storage has no group",
        )?;
        // The identity its UpdatePath leaf carries must be one we hold, or
        // nothing could be signed once it is merged.
        let leaf_key = group::pending_leaf_key(&group);
        let held = |key: &[u8]| {
            key == active.identity.public_key()
                || active
                    .rotate_to
                    .as_ref()
                    .is_some_and(|r| key == r.public_key())
        };
        if !leaf_key.is_none_or(held) {
            self.in_doubt = None;
            self.close(true);
            return Err(Error::StoredAhead(
                "our stored key update carries an identity replaced since by rotate_identity"
                    .into(),
            ));
        }
        active.group = group;
        active.meta = stored.meta;
        live.db = GroupDb::Open(db);
        self.in_doubt = None;
        Ok(Some(message))
    }
}

/// A new session whose save was reported failed fails its handshake, so
/// nothing may be left of it: if the save landed after all (its
/// acknowledgement lost), the record is deleted, best effort.
pub(super) fn forget_new(store: &SessionStore, session: &StoredSession) {
    let id = &session.meta.id;
    let doubt = InDoubt {
        version: session.meta.version,
        digests: VecDeque::from([digest(session)]),
    };
    // No version before a new session's: "Lost" cannot match.
    match doubt.resolve(store, id, u64::MAX) {
        Ok(Resolved::Landed(_)) => match store.delete_at_version(id, doubt.version) {
            Ok(_) => info!(
                session = %id,
                "a new session whose save was reported failed had been stored; deleted"
            ),
            Err(e) => warn!(
                session = %id,
                error = %e,
                "a new session whose save was reported failed was stored and could not be \
                 deleted; it lapses with sweep_expired"
            ),
        },
        Ok(_) => {}
        Err(e) => warn!(
            session = %id,
            error = %e,
            "a new session's save failed and the store cannot say whether it was written; \
             if it was, it lapses with sweep_expired"
        ),
    }
}
