//! Resumption (profile section 6, SPEC section 8): the initiator's
//! request, the responder's classification, and the response.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, info, warn};

use super::{
    apply_and_confirm, delete_session, export, export_staged, process_commit, split, Active,
    Engine, EpochSecret, Event, Live, Phase, ProfileConfig, Standing,
};
use crate::credentials::PeerIdentity;
use crate::error::Error;
use crate::message::{HandshakeMessage, HandshakeType, TwoPartyMessageType};
use crate::profile::group::{self, mls_err};
use crate::schedule::Side;
use crate::store::snapshot::{GroupDb, GroupStorage};
use crate::store::{InitialRole, SessionId, StoredState};

/// How often a responder reads a session for one ResumptionRequest
/// while other connections keep moving it on (see
/// `Engine::on_resumption_request`).
const RESUMPTION_READS: u32 = 3;

impl Engine {
    /// Resumes a stored session as the current initiator (profile 6): sends
    /// the pending commit again if there is one, else a fresh commit. The
    /// returned [`Resumption`] says whether early data may be sent.
    ///
    /// Before anything is created, the stored peer is checked again with
    /// the configured verifier at `now` (SPEC 8): if it no longer verifies
    /// (an expired certificate, a key no longer pinned), the session is
    /// deleted and the rejection returned (`Error::BadCertificate` or
    /// `Error::CertificateExpired`, naming the reason); nothing is sent. A
    /// new handshake is then the caller's choice.
    pub fn resume(
        config: ProfileConfig,
        id: &SessionId,
        now: SystemTime,
    ) -> Result<(Self, Vec<Event>, Resumption), Error> {
        let (mut active, db) = load_active(&config, id)?;
        if let Err(e) = active.recheck_peer(&*config.verifier, now) {
            return Err(delete_session(&config.store, id, e));
        }
        // This connection is the session's from now on (SPEC 8).
        let lease = config.owners.claim(id);
        let mut engine = Self {
            config,
            side: Side::Client,
            phase: Phase::Live(Box::new(Live {
                session: active,
                db: GroupDb::Open(db),
                standing: Standing::Resuming(Some(lease)),
                send_blocked: false,
            })),
            terminated: false,
            deferred: Default::default(),
            in_doubt: None,
        };
        let (message, epoch, early_data, secrets, suite) =
            engine.transition(now, |a, provider| {
                // C1: our pending commit, unchanged, or a fresh one.
                let (message, fresh) = match a.meta.state.pending().cloned() {
                    Some(p) => {
                        let message = p.message.clone();
                        a.meta.state = StoredState::AwaitingResumptionResponse(p);
                        (message, false)
                    }
                    None => (
                        a.commit_pending(provider, TwoPartyMessageType::ResumptionRequest)?,
                        true,
                    ),
                };
                let staged = a.group.pending_commit().ok_or(Error::Internal(
                    "a resumption's pending commit is missing from the group",
                ))?;
                let secrets = export_staged(staged, &a.crypto, a.meta.suite)?;
                let epoch = a.group.epoch().as_u64() + 1;
                // Early data only under a fresh commit whose epoch never had
                // sending keys; recorded before the first such record leaves.
                let early_data = fresh && epoch > a.meta.last_send_epoch;
                if early_data {
                    a.meta.last_send_epoch = epoch;
                }
                Ok((message, epoch, early_data, secrets, a.meta.suite))
            })?;
        info!(
            session = %id,
            epoch,
            early_data,
            peer = %engine.peer_identity().map(|p| p.display_name()).unwrap_or_default(),
            "resumption requested"
        );
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
            events.push(Event::EarlyDataWindow);
        }
        Ok((engine, events, Resumption { early_data }))
    }

    /// Responder: answers a ResumptionRequest (SPEC 8). Nothing leaves
    /// before the answer is stored, so if another connection (another
    /// server of a fleet) moved the session on between this one's load and
    /// its save, the request is answered again from a fresh load, as if it
    /// had arrived a moment later. After [`RESUMPTION_READS`] such races
    /// the request fails with [`Error::Superseded`].
    pub(super) fn on_resumption_request(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
        let mut read = 1;
        loop {
            match self.answer_resumption_request(body, now) {
                Err(Error::Superseded) if read < RESUMPTION_READS => {
                    debug!(
                        read,
                        "the session moved on while answering a resumption; reading it again"
                    );
                    self.phase = Phase::AwaitingClientHello;
                    read += 1;
                }
                other => return other,
            }
        }
    }

    fn answer_resumption_request(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
        let message = group::parse_private_message(body)?;
        let id = SessionId(message.group_id().as_slice().to_vec());
        let (mut active, db) = match load_active(&self.config, &id) {
            Err(Error::UnknownSession(why)) => {
                debug!(session = %id, reason = why.as_str(), "resumption request for an unknown session");
                return Err(Error::UnknownSession("unknown session".into()));
            }
            other => other?,
        };
        let awaiting_rr = matches!(
            active.meta.state,
            StoredState::AwaitingResumptionResponse(_)
        );
        if awaiting_rr && active.meta.initial_role == InitialRole::Initiator {
            // Both resumed at once: the initial initiator keeps its own
            // attempt and refuses this one (SPEC 8).
            debug!(session = %id, "resumption refused: resuming this session ourselves");
            return Err(Error::ResumptionRefused);
        }
        let verifier = self.config.verifier.clone();
        // Rule 1: the commit we merged last, and we are at its epoch.
        let rule1 = active.meta.last_commit_hash == Some(group::commit_hash(body))
            && message.epoch().as_u64() + 1 == active.group.epoch().as_u64();
        if rule1 {
            // No new peer leaf arrives under rule 1: the stored peer is
            // checked again before anything is answered (SPEC 5, 8).
            if let Err(e) = active.recheck_peer(&*verifier, now) {
                return Err(delete_session(&self.config.store, &id, e));
            }
            let epoch = active.group.epoch().as_u64();
            if !awaiting_rr {
                if let Some(pending) = active.meta.state.pending().cloned() {
                    // Our unconfirmed commit goes again, unchanged, in
                    // plaintext: nothing changes, so nothing is stored and
                    // the session is not claimed. The connection that sent
                    // it first stays current until this one's
                    // EpochKeyUpdate validates (SPEC 8: a replayed request
                    // never closes a live connection).
                    info!(
                        session = %id,
                        rule = 1,
                        epoch,
                        "resumption request classified: retransmission, resending our pending commit"
                    );
                    // The initiator's early data (a replay's) and its
                    // EpochKeyUpdate come under epoch E's client keys: they
                    // are decrypted, and the early data discarded.
                    let secrets = export(&active.group, &active.crypto, active.meta.suite)?;
                    let (_, receive) = split(secrets, Side::Server);
                    let suite = active.meta.suite;
                    self.side = Side::Server;
                    self.phase = Phase::Live(Box::new(Live {
                        session: active,
                        db: GroupDb::Open(db),
                        standing: Standing::Resuming(None),
                        send_blocked: false,
                    }));
                    return Ok(vec![
                        Event::InstallReceiveKeys(EpochSecret {
                            epoch,
                            suite,
                            secret: receive,
                        }),
                        Event::Send(HandshakeMessage::new(
                            HandshakeType::ResumptionResponse,
                            pending.message,
                        )),
                        Event::Resumed {
                            early_data_allowed: false,
                        },
                    ]);
                }
            }
        }
        self.side = Side::Server;
        self.phase = Phase::Live(Box::new(Live {
            session: active,
            db: GroupDb::Open(db),
            // Claimed once the request is classified.
            standing: Standing::Resuming(None),
            send_blocked: false,
        }));
        let result = self.transition(now, |a, provider| {
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
            let outcome = if rule1 {
                // Rule 1 without a pending commit to resend (or with our
                // own request's, which is never resent): a fresh response.
                a.drop_pending(provider)?;
                Outcome::Retransmission
            } else if pending_epoch == Some(msg_epoch) {
                // Rule 2: builds on our pending commit.
                a.meta.state = StoredState::Synced;
                a.group.merge_pending_commit(provider).map_err(mls_err)?;
                a.sync_identity();
                let staged = process_commit(a, provider, body, &*verifier, now, type_ok)?;
                a.group
                    .merge_staged_commit(provider, *staged)
                    .map_err(mls_err)?;
                a.meta.last_commit_hash = Some(group::commit_hash(body));
                Outcome::Applied { rule: 2 }
            } else if msg_epoch == current {
                // Rule 3: builds on our current epoch; our pending commit loses.
                a.drop_pending(provider)?;
                let staged = process_commit(a, provider, body, &*verifier, now, type_ok)?;
                a.group
                    .merge_staged_commit(provider, *staged)
                    .map_err(mls_err)?;
                a.meta.last_commit_hash = Some(group::commit_hash(body));
                Outcome::Applied { rule: 3 }
            } else {
                return Err(
                    Error::DecryptError("resumption request matches no state".into()).into(),
                );
            };
            // The response: a fresh commit, stored before it leaves.
            let c2 = a.commit_pending(provider, TwoPartyMessageType::ResumptionResponse)?;
            let epoch = a.group.epoch().as_u64();
            let encrypt = epoch > a.meta.last_send_epoch;
            let secrets = export(&a.group, &a.crypto, a.meta.suite)?;
            if encrypt {
                a.meta.last_send_epoch = epoch;
            }
            Ok((outcome, c2, (epoch, encrypt, secrets), a.meta.suite))
        });
        let (outcome, c2, (epoch, encrypt, secrets), suite) = result.inspect_err(|e| {
            if let Error::DecryptError(_) = e {
                info!(session = %id, rule = 4, "resumption request classified: matches no state");
            }
        })?;
        let applied = match outcome {
            Outcome::Applied { rule } => {
                // Rules 2 and 3: an older connection is closed now (SPEC 8).
                let lease = self.claim();
                if let Phase::Live(live) = &mut self.phase {
                    live.standing = Standing::Resuming(lease);
                }
                info!(
                    session = %id,
                    rule,
                    epoch,
                    encrypted_response = encrypt,
                    "resumption request classified: applied"
                );
                true
            }
            Outcome::Retransmission => {
                // Rule 1: the claim moves only once the EpochKeyUpdate
                // validates (SPEC 8).
                info!(
                    session = %id,
                    rule = 1,
                    epoch,
                    "resumption request classified: retransmission, fresh response"
                );
                false
            }
        };
        let (send, receive) = split(secrets, Side::Server);
        // The initiator's early data and its EpochKeyUpdate arrive under
        // epoch E's client keys; under rule 1 the early data is decrypted
        // and discarded (SPEC 8), so the keys are installed in every case.
        let mut events = vec![Event::InstallReceiveKeys(EpochSecret {
            epoch,
            suite,
            secret: receive,
        })];
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
        // SPEC 8: early data is delivered only under rules 2 and 3 with a
        // response encrypted under epoch E's server keys.
        events.push(Event::Resumed {
            early_data_allowed: applied && encrypt,
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
            a.meta.state = StoredState::Synced;
            apply_and_confirm(a, provider, body, &*verifier, now, |t| {
                matches!(
                    t,
                    TwoPartyMessageType::ResumptionResponse | TwoPartyMessageType::ConnectionUpdate
                )
            })
        })?;
        if let Some(live) = self.live() {
            let a = &live.session;
            info!(
                session = %a.meta.id,
                suite = %a.meta.suite,
                epoch = applied.epoch,
                peer = %a.peer.display_name(),
                authenticated = a.peer.authenticated,
                "session resumed (initiator)"
            );
        }
        self.establish();
        let mut events = self.confirmation_events(applied);
        events.push(Event::Established);
        Ok(events)
    }
}

/// How a ResumptionRequest answered with a fresh commit was classified
/// (SPEC 8; rule 1 with a resent commit is answered without a transition).
enum Outcome {
    /// Rule 1: the commit we already merged.
    Retransmission,
    /// Rules 2 and 3: the commit was applied; early data may follow.
    Applied { rule: u8 },
}

/// What a resuming initiator may do before the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumption {
    /// Whether early data may be sent now (a fresh commit whose epoch has
    /// never had sending keys).
    pub early_data: bool,
}

/// Loads a stored session into memory, with its group storage. A session
/// the store does not have is [`Error::UnknownSession`]; so is one stored
/// in a format this version no longer reads, which is deleted (with a log
/// line saying why) so that the caller's new handshake replaces it.
pub(super) fn load_active(
    config: &ProfileConfig,
    id: &SessionId,
) -> Result<(Active, GroupStorage), Error> {
    let stored = config
        .store
        .load(id)?
        .ok_or_else(|| Error::UnknownSession(format!("no stored session {id}")))?;
    let db = match GroupStorage::restore(&stored.group) {
        Ok(db) => db,
        Err(Error::UnknownSession(why)) => {
            warn!(
                session = %id,
                reason = why.as_str(),
                "stored session is in an old format: deleting it; a new handshake replaces it"
            );
            let why = format!("stored session {id}: {why}");
            return Err(delete_session(
                &config.store,
                id,
                Error::UnknownSession(why),
            ));
        }
        Err(e) => return Err(e),
    };
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
    let rotate_to = group::pending_leaf_key(&group)
        .filter(|key| *key != identity.public_key())
        .and_then(|key| by_key(Some(key)));
    let crypto = Arc::new(group::backend(meta.suite)?);
    // Whether the peer is (still) authenticated is decided by the caller's
    // re-check or by the verification of the peer's next UpdatePath leaf.
    let peer = PeerIdentity::from_stored(&meta.peer_credential, &meta.peer_signature_key)?;
    // The state and the group must agree on whether a commit is pending.
    let pending_in_group = group.pending_commit().is_some();
    if meta.state.pending().is_some() != pending_in_group {
        return Err(Error::Store(format!(
            "damaged session record {id}: state {:?}, but a pending commit in the group: \
             {pending_in_group}",
            meta.state,
        )));
    }
    let active = Active {
        identity,
        rotate_to,
        crypto,
        group,
        meta,
        peer,
    };
    Ok((active, db))
}
