//! Key updates (profile section 5, SPEC 7-9): our ConnectionUpdate, the
//! peer's, the EpochKeyUpdate that confirms a commit, and the key-reuse
//! invariant's stuck direction.

use std::time::SystemTime;

use openmls::prelude::*;
use tracing::{debug, info};

use super::commit::{apply_and_confirm, claim_send_epoch, export, split, Applied};
use super::transition::authenticated;
use super::{Engine, EpochSecret, Event, Phase, Standing};
use crate::crypto::CipherSuite;
use crate::error::Error;
use crate::message::{HandshakeMessage, HandshakeType, TwoPartyMessageType};
use crate::profile::group::{self, mls_err};
use crate::schedule::TrafficSecret;
use crate::store::StoredState;

impl Engine {
    /// Starts a key update (profile 5): only when
    /// [`may_start_update`](Self::may_start_update).
    pub fn start_update(&mut self, now: SystemTime) -> Result<Vec<Event>, Error> {
        if !self.may_start_update() {
            return Err(Error::ApiMisuse(
                "a key update needs an established, Synced session",
            ));
        }
        if let Some(message) = self.adopt_landed_update()? {
            info!(session = ?self.session_id(), "key update sent as stored: its save had landed");
            return Ok(vec![Event::Send(HandshakeMessage::new(
                HandshakeType::ConnectionUpdate,
                message,
            ))]);
        }
        let message = self.transition(now, |a, provider| {
            Ok(a.commit_pending(provider, TwoPartyMessageType::ConnectionUpdate)?)
        })?;
        info!(session = ?self.session_id(), epoch = ?self.epoch(), "key update started");
        Ok(vec![Event::Send(HandshakeMessage::new(
            HandshakeType::ConnectionUpdate,
            message,
        ))])
    }

    /// The peer sent `close_notify` (SPEC 9): it will not confirm our
    /// pending ConnectionUpdate, which is dropped as a stored transition,
    /// back to Synced. A stuck direction keeps its update (it is the only
    /// way to send again); so does a handshake or resumption in progress.
    pub fn on_peer_closed(&mut self, now: SystemTime) -> Result<Vec<Event>, Error> {
        if self.state() == super::State::AwaitingEpochKeyUpdate && self.confirmation_waits() {
            // The peer confirmed before closing: its EpochKeyUpdate waits
            // for the store. Never drop the update it confirmed; apply it
            // if the store is back (else it waits, and a resumption finds
            // the pending commit the peer merged: SPEC 8 rule 2).
            return self.retry_deferred(now);
        }
        let droppable = self.is_established()
            && self.live().is_some_and(|l| {
                !l.send_blocked
                    && matches!(
                        &l.session.meta.state,
                        StoredState::AwaitingEpochKeyUpdate(p)
                            if p.typ == TwoPartyMessageType::ConnectionUpdate
                    )
            });
        if droppable {
            self.transition(now, |a, provider| Ok(a.drop_pending(provider)?))?;
            debug!(epoch = ?self.epoch(), "pending key update dropped: the peer closed");
        }
        Ok(Vec::new())
    }

    pub(super) fn on_connection_update(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
        let verifier = self.config.verifier.clone();
        let result = self.transition(now, |a, provider| {
            // Responder collision: our commit loses (profile 5).
            a.drop_pending(provider)?;
            apply_and_confirm(a, provider, body, &*verifier, now, |t| {
                t == TwoPartyMessageType::ConnectionUpdate
            })
        })?;
        info!(session = ?self.session_id(), epoch = result.epoch, "peer's key update applied");
        Ok(self.confirmation_events(result))
    }

    /// The events after applying a peer's commit: the EpochKeyUpdate under
    /// the old sending keys, then the new sending keys (or the stuck
    /// direction's update), and the new receiving keys as a candidate.
    pub(super) fn confirmation_events(&mut self, applied: Applied) -> Vec<Event> {
        let Applied {
            eku,
            epoch,
            secrets,
            suite,
            stuck,
        } = applied;
        let (send, receive) = split(secrets, self.side);
        let mut events = vec![Event::Send(HandshakeMessage::new(
            HandshakeType::EpochKeyUpdate,
            eku,
        ))];
        self.switch_sending(&mut events, epoch, suite, send, stuck);
        events.push(Event::CandidateReceiveKeys(EpochSecret {
            epoch,
            suite,
            secret: receive,
        }));
        events
    }

    /// Installs sending keys for a new epoch, or, when the key-reuse
    /// invariant forbids them (SPEC 8, stuck direction), sends the fresh
    /// ConnectionUpdate `stuck` instead and blocks application data until it
    /// is confirmed.
    pub(super) fn switch_sending(
        &mut self,
        events: &mut Vec<Event>,
        epoch: u64,
        suite: CipherSuite,
        send: TrafficSecret,
        stuck: Option<Vec<u8>>,
    ) {
        if let Phase::Live(live) = &mut self.phase {
            live.send_blocked = stuck.is_some();
        }
        match stuck {
            None => events.push(Event::InstallSendKeys(EpochSecret {
                epoch,
                suite,
                secret: send,
            })),
            Some(update) => events.push(Event::Send(HandshakeMessage::new(
                HandshakeType::ConnectionUpdate,
                update,
            ))),
        }
    }

    pub(super) fn on_epoch_key_update(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
        let verifier = self.config.verifier.clone();
        let (epoch, secrets, suite, stuck) = self.transition(now, |a, provider| {
            let pending_epoch =
                a.group
                    .pending_commit()
                    .map(|c| c.epoch())
                    .ok_or(Error::Internal(
                        "Awaiting EpochKeyUpdate without a pending commit in the group",
                    ))?;
            let message = group::parse_private_message(body)?;
            if message.epoch() != pending_epoch {
                return Err(Error::DecryptError("EpochKeyUpdate for another epoch".into()).into());
            }
            let pending = match std::mem::replace(&mut a.meta.state, StoredState::Synced) {
                StoredState::AwaitingEpochKeyUpdate(p) => p,
                _ => {
                    return Err(Error::Internal(
                        "an EpochKeyUpdate outside Awaiting EpochKeyUpdate",
                    )
                    .into())
                }
            };
            a.group.merge_pending_commit(provider).map_err(mls_err)?;
            a.sync_identity();
            let processed = a
                .group
                .process_message(provider, message)
                .map_err(|e| Error::DecryptError(format!("EpochKeyUpdate: {e:?}")))?;
            let typ = group::message_type(&processed).map_err(authenticated)?;
            if typ != TwoPartyMessageType::EpochKeyUpdate {
                return Err(authenticated(Error::IllegalParameter(format!(
                    "{typ:?} where an EpochKeyUpdate was expected"
                ))));
            }
            let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
                return Err(authenticated(Error::IllegalParameter(
                    "EpochKeyUpdate is not an application message".into(),
                )));
            };
            let epoch = a.group.epoch().as_u64();
            if group::epoch_key_update_epoch(&app.into_bytes()).map_err(authenticated)? != epoch {
                return Err(authenticated(Error::IllegalParameter(
                    "EpochKeyUpdate names the wrong epoch".into(),
                )));
            }
            // Our own commit is confirmed: a new epoch, so the peer's
            // current leaf is checked again now (SPEC 5).
            a.recheck_peer(&*verifier, now).map_err(authenticated)?;
            a.meta.last_commit_hash = Some(group::commit_hash(&pending.message));
            let secrets = export(&a.group, &a.crypto, a.meta.suite)?;
            let stuck = claim_send_epoch(a, provider, epoch)?;
            Ok((epoch, secrets, a.meta.suite, stuck))
        })?;
        info!(
            session = ?self.session_id(),
            epoch,
            "own key update confirmed by the peer's EpochKeyUpdate"
        );
        let (send, receive) = split(secrets, self.side);
        let mut events = vec![Event::InstallReceiveKeys(EpochSecret {
            epoch,
            suite,
            secret: receive,
        })];
        self.switch_sending(&mut events, epoch, suite, send, stuck);
        if self
            .live()
            .is_some_and(|l| matches!(l.standing, Standing::Resuming(_)))
        {
            // A responder's resumption completes here; under rule 1 the
            // session is claimed only now (SPEC 8).
            self.establish();
            info!(session = ?self.session_id(), epoch, "session resumed (responder)");
            events.push(Event::Established);
        }
        Ok(events)
    }
}
