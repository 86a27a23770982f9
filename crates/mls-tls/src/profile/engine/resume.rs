//! Resumption (profile section 6, SPEC section 8): the initiator's
//! request, the responder's classification, and the response.

use std::sync::Arc;
use std::time::SystemTime;

use openmls::prelude::OpenMlsProvider as _;

use super::{
    apply_and_confirm, export, export_staged, process_commit, split, Active, Engine, EpochSecret,
    Event, ProfileConfig, State,
};
use crate::error::Error;
use crate::profile::auth::{PeerAuth, PeerIdentity, VerifyContext};
use crate::profile::group::{self, mls_err};
use crate::profile::message::{HandshakeMessage, HandshakeType, TwoPartyMessageType};
use crate::profile::persist::{private_db, restore, GroupDb};
use crate::profile::store::{InitialRole, PendingCommit, SessionId, StoredState};
use crate::schedule::Side;

impl Engine {
    /// Resumes a stored session as the current initiator (profile 6): sends
    /// the pending commit again if there is one, else a fresh commit. The
    /// returned [`Resumption`] says whether early data may be sent.
    pub fn resume(
        config: ProfileConfig,
        id: &SessionId,
        now: SystemTime,
    ) -> Result<(Self, Vec<Event>, Resumption), Error> {
        let (active, db) = load_active(&config, id)?;
        let mut engine = Self {
            config,
            side: Side::Client,
            state: State::AwaitingResumptionResponse,
            hello: None,
            active: Some(active),
            db: Some(GroupDb::Open(db)),
            send_blocked: false,
            lease: None,
        };
        engine.claim();
        let (message, epoch, early_data, secrets, suite) =
            engine.transition(now, |a, provider| {
                let fresh = a.meta.pending.is_none();
                if fresh {
                    a.commit_pending(provider, TwoPartyMessageType::ResumptionRequest)?;
                }
                let staged = a
                    .group
                    .pending_commit()
                    .ok_or_else(|| Error::Store("pending commit missing from the group".into()))?;
                let secrets = export_staged(staged, &a.crypto, a.meta.suite)?;
                let epoch = a.group.epoch().as_u64() + 1;
                // Early data only under a fresh commit whose epoch never had
                // sending keys; recorded before the first such record leaves.
                let early_data = fresh && epoch > a.meta.last_send_epoch;
                if early_data {
                    a.meta.last_send_epoch = epoch;
                }
                a.meta.state = StoredState::AwaitingResumptionResponse;
                let message = a.meta.pending.as_ref().map(|p| p.message.clone());
                Ok((
                    message.unwrap_or_default(),
                    epoch,
                    early_data,
                    secrets,
                    a.meta.suite,
                ))
            })?;
        let (send, receive) = split(secrets, Side::Client);
        let mut events = vec![
            Event::Send(HandshakeMessage::new(
                HandshakeType::ResumptionRequest,
                message,
            )),
            // The response may come encrypted under the new epoch's server keys.
            Event::InstallReceiveKeys(EpochSecret {
                epoch,
                suite,
                secret: receive,
            }),
        ];
        if early_data {
            events.push(Event::InstallSendKeys(EpochSecret {
                epoch,
                suite,
                secret: send,
            }));
        }
        Ok((engine, events, Resumption { early_data }))
    }

    pub(super) fn on_resumption_request(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
        let message = group::parse_private_message(body)?;
        let id = SessionId(message.group_id().as_slice().to_vec());
        let (active, db) = match load_active(&self.config, &id) {
            Err(Error::HandshakeFailure(_)) => {
                return Err(Error::HandshakeFailure("unknown session".into()))
            }
            other => other?,
        };
        if active.meta.state == StoredState::AwaitingResumptionResponse
            && active.meta.initial_role == InitialRole::Initiator
        {
            // Both resumed at once: the initial initiator keeps its own
            // attempt and refuses this one (SPEC 8).
            return Err(Error::ResumptionRefused);
        }
        self.active = Some(active);
        self.db = Some(GroupDb::Open(db));
        self.side = Side::Server;
        let verifier = self.config.verifier.clone();
        let (outcome, c2, response_epoch, suite) = self.transition(now, |a, provider| {
            let msg_epoch = message.epoch();
            let current = a.group.epoch();
            let pending_epoch = a.group.pending_commit().map(|c| c.epoch());
            let type_ok = |t| {
                matches!(
                    t,
                    TwoPartyMessageType::ResumptionRequest
                        | TwoPartyMessageType::ConnectionUpdate
                        | TwoPartyMessageType::ResumptionResponse
                )
            };
            let awaiting_rr = a.meta.state == StoredState::AwaitingResumptionResponse;
            // Rule 1: the commit we merged last, and we are at its epoch.
            let outcome = if a.meta.last_commit_hash == Some(group::commit_hash(body))
                && msg_epoch.as_u64() + 1 == current.as_u64()
            {
                let resend = (!awaiting_rr).then(|| a.meta.pending.clone()).flatten();
                if resend.is_none() && a.group.pending_commit().is_some() {
                    a.group
                        .clear_pending_commit(provider.storage())
                        .map_err(mls_err)?;
                    a.meta.pending = None;
                }
                Outcome::Retransmission { resend }
            } else if pending_epoch == Some(msg_epoch) {
                // Rule 2: builds on our pending commit.
                a.meta.pending = None;
                a.group.merge_pending_commit(provider).map_err(mls_err)?;
                a.sync_identity();
                let staged = process_commit(a, provider, body, &*verifier, type_ok)?;
                a.group
                    .merge_staged_commit(provider, *staged)
                    .map_err(mls_err)?;
                a.meta.last_commit_hash = Some(group::commit_hash(body));
                Outcome::Applied
            } else if msg_epoch == current {
                // Rule 3: builds on our current epoch; our pending commit loses.
                if a.group.pending_commit().is_some() {
                    a.group
                        .clear_pending_commit(provider.storage())
                        .map_err(mls_err)?;
                    a.meta.pending = None;
                }
                let staged = process_commit(a, provider, body, &*verifier, type_ok)?;
                a.group
                    .merge_staged_commit(provider, *staged)
                    .map_err(mls_err)?;
                a.meta.last_commit_hash = Some(group::commit_hash(body));
                Outcome::Applied
            } else {
                return Err(
                    Error::DecryptError("resumption request matches no state".into()).into(),
                );
            };
            // The response: the unconfirmed pending commit again, or fresh.
            let c2 = match &outcome {
                Outcome::Retransmission { resend: Some(p) } => p.message.clone(),
                _ => a.commit_pending(provider, TwoPartyMessageType::ResumptionResponse)?,
            };
            a.meta.state = StoredState::AwaitingEpochKeyUpdate;
            let epoch = a.group.epoch().as_u64();
            let encrypt = epoch > a.meta.last_send_epoch;
            let secrets = export(&a.group, &a.crypto, a.meta.suite)?;
            if encrypt {
                a.meta.last_send_epoch = epoch;
            }
            Ok((outcome, c2, (epoch, encrypt, secrets), a.meta.suite))
        })?;
        self.state = State::AwaitingEpochKeyUpdate;
        self.claim();
        let (epoch, encrypt, secrets) = response_epoch;
        let (send, receive) = split(secrets, Side::Server);
        let mut events = Vec::new();
        if matches!(outcome, Outcome::Applied) {
            // Early data from a fresh request arrives under these keys.
            events.push(Event::InstallReceiveKeys(EpochSecret {
                epoch,
                suite,
                secret: receive,
            }));
        }
        if encrypt {
            events.push(Event::InstallSendKeys(EpochSecret {
                epoch,
                suite,
                secret: send,
            }));
        }
        events.push(Event::Send(HandshakeMessage::new(
            HandshakeType::ResumptionResponse,
            c2,
        )));
        events.push(Event::Resumed {
            early_data_allowed: matches!(outcome, Outcome::Applied),
        });
        Ok(events)
    }

    pub(super) fn on_resumption_response(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
        let verifier = self.config.verifier.clone();
        let applied = self.transition(now, |a, provider| {
            let message = group::parse_private_message(body)?;
            let pending_epoch = a.group.pending_commit().map(|c| c.epoch());
            if pending_epoch != Some(message.epoch()) {
                return Err(Error::DecryptError("response for another epoch".into()).into());
            }
            a.group.merge_pending_commit(provider).map_err(mls_err)?;
            a.sync_identity();
            a.meta.pending = None;
            apply_and_confirm(a, provider, body, &*verifier, |t| {
                matches!(
                    t,
                    TwoPartyMessageType::ResumptionResponse | TwoPartyMessageType::ConnectionUpdate
                )
            })
        })?;
        let mut events = self.confirmation_events(applied);
        events.push(Event::Established);
        Ok(events)
    }
}

/// How a ResumptionRequest was classified (SPEC 8).
enum Outcome {
    /// Rule 1: the commit we already merged; `resend` is our pending commit
    /// to send again unchanged.
    Retransmission { resend: Option<PendingCommit> },
    /// Rules 2 and 3: the commit was applied; early data may follow.
    Applied,
}

/// What a resuming initiator may do before the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumption {
    /// Whether early data may be sent now (a fresh commit whose epoch has
    /// never had sending keys).
    pub early_data: bool,
}

/// Loads a stored session into memory, with its private database.
pub(super) fn load_active(
    config: &ProfileConfig,
    id: &SessionId,
) -> Result<(Active, rusqlite::Connection), Error> {
    let stored = config
        .store
        .load(id)?
        .ok_or_else(|| Error::HandshakeFailure(format!("no stored session {id}")))?;
    let db = private_db()?;
    restore(&db, &stored.group)?;
    let group = group::load_group(&db, id)?
        .ok_or_else(|| Error::Store(format!("stored session {id} has no group")))?;
    let meta = stored.meta;
    // The identity whose key is in our leaf (after a rotation, not
    // necessarily the first for the suite); and one whose key a pending
    // commit of ours installs.
    let by_key = |key: Option<&[u8]>| {
        config
            .identities
            .iter()
            .find(|i| i.suite() == meta.suite && Some(i.public_key()) == key)
            .cloned()
    };
    let own_key = group.own_leaf_node().map(|l| l.signature_key().as_slice());
    if !config.identities.iter().any(|i| i.suite() == meta.suite) {
        return Err(Error::HandshakeFailure(format!(
            "no identity for {}",
            meta.suite
        )));
    }
    let identity = by_key(own_key).ok_or_else(|| {
        Error::InvalidConfig(format!(
            "no configured {} identity has the key of our leaf in session {id} \
             (after rotate_identity, add the new identity to the configuration)",
            meta.suite
        ))
    })?;
    let rotate_to = group
        .pending_commit()
        .and_then(|c| c.update_path_leaf_node())
        .map(|l| l.signature_key().as_slice())
        .filter(|key| *key != identity.public_key())
        .and_then(|key| by_key(Some(key)));
    let crypto = Arc::new(group::backend(meta.suite)?);
    let mut peer = PeerIdentity::from_stored(&meta.peer_credential, &meta.peer_signature_key);
    // Whether the stored peer still counts as authenticated; the peer's
    // next UpdatePath leaf (part of every resumption) is verified in full.
    peer.authenticated = config
        .verifier
        .verify(&peer, VerifyContext::UpdatePath { previous: &peer })
        == Ok(PeerAuth::Authenticated);
    let active = Active {
        identity,
        rotate_to,
        crypto,
        group,
        meta,
        peer,
        provisional: false,
    };
    Ok((active, db))
}
