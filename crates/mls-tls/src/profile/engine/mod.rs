//! The two-party profile state machine (profile sections 3.1, 4, 5; SPEC
//! sections 6-8): consumes handshake messages, produces handshake messages
//! and key events. Sans-I/O: the caller moves messages and passes the time.

use std::sync::Arc;
use std::time::SystemTime;

use openmls::prelude::*;
use tracing::{debug, info};

use crate::credentials::{Identity, PeerIdentity, PeerVerifier, VerifyContext};
use crate::crypto::CryptoBackend;
use crate::message::{HandshakeMessage, HandshakeType, TwoPartyMessageType};
use crate::profile::group::{self, mls_err};
use crate::profile::provider::MlsProvider;
use crate::store::snapshot::{GroupDb, GroupStorage};

mod commit;
mod doubt;
mod hello;
mod resume;
mod rotate;
#[cfg(test)]
mod tests;
mod transition;
mod update;

use crate::crypto::CipherSuite;
use crate::error::{Error, PeerMisbehaved};
use crate::profile::owners::{Lease, SessionOwners};
use crate::schedule::{Side, TrafficSecret};
use crate::store::{PendingCommit, SessionId, SessionMeta, SessionStore, StoredState};
pub(crate) use commit::export;
use commit::{apply_and_confirm, export_staged, process_commit, split};
pub use resume::Resumption;
use transition::{authenticated, delete_session, Fail};

/// What a profile engine needs: who we are, whom we accept, where sessions
/// are kept, and which connection owns each.
#[derive(Clone, Debug)]
pub struct ProfileConfig {
    /// Our identities, one per ciphersuite we accept; an initiator uses the
    /// first.
    pub identities: Vec<Arc<Identity>>,
    /// The authentication-service hook.
    pub verifier: Arc<dyn PeerVerifier>,
    /// Where sessions are stored.
    pub store: Arc<SessionStore>,
    /// Which connection owns each session (SPEC 8), shared by every
    /// configuration of this process on the same store.
    pub owners: Arc<SessionOwners>,
}

impl ProfileConfig {
    /// A configuration; its [`SessionOwners`] are those of `store`.
    pub fn new(
        identities: Vec<Arc<Identity>>,
        verifier: Arc<dyn PeerVerifier>,
        store: Arc<SessionStore>,
    ) -> Self {
        Self {
            identities,
            verifier,
            owners: SessionOwners::of_store(&store),
            store,
        }
    }
}

/// Most handshake messages that wait for the session store: the one that
/// could not be stored and what an honest peer may send behind it.
const MAX_DEFERRED: usize = 4;

/// One direction's traffic secret for one epoch, to install in the record
/// layer.
#[derive(Debug)]
pub struct EpochSecret {
    /// The MLS epoch the secret belongs to.
    pub epoch: u64,
    /// The ciphersuite (gives the record AEAD).
    pub suite: CipherSuite,
    /// The traffic secret.
    pub secret: TrafficSecret,
}

/// What the engine asks its connection to do, in order.
#[derive(Debug)]
pub enum Event {
    /// Send this handshake message under the current sending state.
    Send(HandshakeMessage),
    /// From now on, send under these keys.
    InstallSendKeys(EpochSecret),
    /// From now on, receive under these keys.
    InstallReceiveKeys(EpochSecret),
    /// Keep the receive keys, but try these once if a record fails (SPEC 7).
    CandidateReceiveKeys(EpochSecret),
    /// Send one empty application data record now: the initiator's first
    /// ciphertext record confirms the new session to the responder (SPEC 6).
    ConfirmJoin,
    /// Initiator resuming: early data may be sent until the response, up
    /// to the connection's limit (SPEC 8).
    EarlyDataWindow,
    /// The handshake or resumption is complete on this connection: the
    /// session is stored and this connection owns it. A responder's new
    /// session gets here when confirmed (SPEC 6), a responder's resumption
    /// when its EpochKeyUpdate validates (SPEC 8).
    Established,
    /// Responder: a resumption was answered. Early data (application
    /// data before the EpochKeyUpdate) may be delivered to the application
    /// only if `early_data_allowed`; otherwise the connection decrypts and
    /// discards it, and keeps the connection (SPEC 8).
    Resumed {
        /// True exactly when the request was applied under rule 2 or 3
        /// **and** this engine's ResumptionResponse goes out encrypted
        /// under epoch E's server keys (an [`Event::InstallSendKeys`] for
        /// E precedes its [`Event::Send`]). A rule-1 request (a
        /// retransmission or a replay) and a response the key-reuse
        /// invariant forces into plaintext both give `false`: the
        /// initiator then reports its early data as not accepted and
        /// resends it after the handshake.
        early_data_allowed: bool,
    },
}

/// The profile states of section 3.1, plus the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Responder before a first message.
    AwaitingClientHello,
    /// Initiator after sending its ClientHello.
    AwaitingServerHello,
    /// No pending commit.
    Synced,
    /// A commit of ours waits for its EpochKeyUpdate.
    AwaitingEpochKeyUpdate,
    /// A ResumptionRequest of ours waits for its response.
    AwaitingResumptionResponse,
    /// The engine failed or was closed; it accepts nothing more.
    Closed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            Self::AwaitingClientHello => "Awaiting ClientHello",
            Self::AwaitingServerHello => "Awaiting ServerHello",
            Self::Synced => "Synced",
            Self::AwaitingEpochKeyUpdate => "Awaiting EpochKeyUpdate",
            Self::AwaitingResumptionResponse => "Awaiting ResumptionResponse",
            Self::Closed => "Closed",
        }
    }
}

/// An initial handshake in progress: state lives in its own in-memory
/// storage until both sides are known to be Synced (SPEC 6).
struct Hello {
    identity: Arc<Identity>,
    crypto: CryptoBackend,
    db: GroupStorage,
}

/// Where an engine is. Each phase carries exactly the data it needs, so
/// combinations the protocol never reaches cannot be represented. Within
/// [`Phase::Live`], the stored state (with the pending commit, if any) is
/// the one record of which message the session waits for.
enum Phase {
    /// Responder before a first message.
    AwaitingClientHello,
    /// Initiator after its ClientHello.
    AwaitingServerHello(Box<Hello>),
    /// A group exists.
    Live(Box<Live>),
    /// Failed or closed: only what callers may still ask about is kept.
    Closed(Option<Box<Ended>>),
}

/// A session with a group, on this connection.
struct Live {
    session: Active,
    /// The session's OpenMLS storage: open during a transition (and until
    /// the session is Synced again), else parked in the store.
    db: GroupDb,
    standing: Standing,
    /// A stuck direction waits for its ConnectionUpdate (SPEC 8). Only
    /// while our ConnectionUpdate waits for its EpochKeyUpdate.
    send_blocked: bool,
}

/// This connection's relation to its session.
enum Standing {
    /// Responder's new session: not stored until the initiator's first
    /// ciphertext record confirms it (SPEC 6).
    Provisional,
    /// A resumption in progress: the initiator until the response, the
    /// responder until the EpochKeyUpdate. `None`: a responder answering a
    /// rule-1 request, which claims the session only once its
    /// EpochKeyUpdate validates (SPEC 8: a replayed request never closes
    /// a live connection).
    Resuming(Option<Lease>),
    /// Established, and this connection's claim.
    Established(Lease),
}

/// What a closed engine keeps: the session it ran, for reporting, and
/// whether it still owned it when it closed.
struct Ended {
    id: SessionId,
    epoch: u64,
    suite: CipherSuite,
    peer: PeerIdentity,
    /// The handshake or resumption had completed on this connection.
    established: bool,
    /// This connection's claim was current (not superseded, not a rule-1
    /// candidate): `terminate` may delete the session, at `version` only.
    owned: bool,
    /// The stored version this connection last knew.
    version: u64,
}

/// The facts of a session that outlive its group (see [`Ended`]).
struct Facts<'a> {
    id: &'a SessionId,
    epoch: u64,
    peer: &'a PeerIdentity,
    suite: CipherSuite,
}

/// A session with a group.
struct Active {
    /// The identity of our leaf in the current epoch.
    identity: Arc<Identity>,
    /// An identity to install at our next commit's UpdatePath leaf.
    rotate_to: Option<Arc<Identity>>,
    crypto: Arc<CryptoBackend>,
    group: MlsGroup,
    meta: SessionMeta,
    peer: PeerIdentity,
}

impl Active {
    /// Checks the peer's current leaf again with the verifier and `now`
    /// (SPEC 5: every epoch change; SPEC 8: before a resumption sends or
    /// delivers anything), updating its `authenticated` flag. The error
    /// names the reason; the caller deletes the session.
    fn recheck_peer(&mut self, verifier: &dyn PeerVerifier, now: SystemTime) -> Result<(), Error> {
        match self
            .peer
            .clone()
            .verified_by(verifier, VerifyContext::Recheck, now)
        {
            Ok(peer) => {
                self.peer = peer;
                Ok(())
            }
            Err(e) => {
                info!(
                    session = %self.meta.id,
                    peer = %self.peer.display_name(),
                    error = %e,
                    "trust re-check failed: the peer no longer verifies"
                );
                Err(e)
            }
        }
    }

    /// Creates and stages a commit typed `typ` and makes it the pending
    /// commit of the state it leads to (a ResumptionRequest waits for the
    /// response, any other for an EpochKeyUpdate): the bytes a resumption
    /// sends again unchanged.
    fn commit_pending(
        &mut self,
        provider: &MlsProvider<'_>,
        typ: TwoPartyMessageType,
    ) -> Result<Vec<u8>, Error> {
        let message = group::create_commit(
            &mut self.group,
            provider,
            &self.identity,
            self.rotate_to.as_deref(),
            typ,
        )?;
        let pending = PendingCommit {
            message: message.clone(),
            typ,
        };
        self.meta.state = match typ {
            TwoPartyMessageType::ResumptionRequest => {
                StoredState::AwaitingResumptionResponse(pending)
            }
            _ => StoredState::AwaitingEpochKeyUpdate(pending),
        };
        Ok(message)
    }

    /// Drops our pending commit from the group and the state.
    fn drop_pending(&mut self, provider: &MlsProvider<'_>) -> Result<(), Error> {
        if self.group.pending_commit().is_some() {
            self.group
                .clear_pending_commit(provider.storage())
                .map_err(mls_err)?;
        }
        self.meta.state = StoredState::Synced;
        Ok(())
    }
}

/// The two-party profile engine of one connection.
pub struct Engine {
    config: ProfileConfig,
    side: Side,
    phase: Phase,
    /// Ended for good by [`Engine::terminate`]: handshake messages still in
    /// flight are ignored (the peer may not know yet).
    terminated: bool,
    /// The peer's handshake messages waiting for the session store, in
    /// order (see [`Engine::handle`]).
    deferred: std::collections::VecDeque<HandshakeMessage>,
    /// The last save failed but may have committed (see
    /// [`doubt::InDoubt`]); resolved by the next save or `terminate`.
    in_doubt: Option<doubt::InDoubt>,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("side", &self.side)
            .field("state", &self.state())
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The current profile state (section 3.1).
    pub fn state(&self) -> State {
        match &self.phase {
            Phase::AwaitingClientHello => State::AwaitingClientHello,
            Phase::AwaitingServerHello(_) => State::AwaitingServerHello,
            Phase::Live(live) => match live.session.meta.state {
                StoredState::Synced => State::Synced,
                StoredState::AwaitingEpochKeyUpdate(_) => State::AwaitingEpochKeyUpdate,
                StoredState::AwaitingResumptionResponse(_) => State::AwaitingResumptionResponse,
            },
            Phase::Closed(_) => State::Closed,
        }
    }

    /// Which traffic direction this side sends on in this connection.
    pub fn side(&self) -> Side {
        self.side
    }

    fn live(&self) -> Option<&Live> {
        match &self.phase {
            Phase::Live(live) => Some(live),
            _ => None,
        }
    }

    fn active_mut(&mut self) -> Option<&mut Active> {
        match &mut self.phase {
            Phase::Live(live) => Some(&mut live.session),
            _ => None,
        }
    }

    /// What callers may ask about the session, live or ended.
    fn facts(&self) -> Option<Facts<'_>> {
        match &self.phase {
            Phase::Live(live) => Some(Facts {
                id: &live.session.meta.id,
                epoch: live.session.group.epoch().as_u64(),
                peer: &live.session.peer,
                suite: live.session.meta.suite,
            }),
            Phase::Closed(Some(ended)) => Some(Facts {
                id: &ended.id,
                epoch: ended.epoch,
                peer: &ended.peer,
                suite: ended.suite,
            }),
            _ => None,
        }
    }

    /// The session id, once a group exists (kept after the engine closes).
    pub fn session_id(&self) -> Option<&SessionId> {
        self.facts().map(|f| f.id)
    }

    /// The group's current epoch, once a group exists (at close, the last).
    pub fn epoch(&self) -> Option<u64> {
        self.facts().map(|f| f.epoch)
    }

    /// The peer's identity, once known. For a provisional responder session
    /// it is only claimed (SPEC 6).
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.facts().map(|f| f.peer)
    }

    /// The ciphersuite, once a group exists.
    pub fn suite(&self) -> Option<CipherSuite> {
        self.facts().map(|f| f.suite)
    }

    /// Whether another connection of this process has since claimed this
    /// connection's session (SPEC 8: the older connection is closed).
    pub fn is_superseded(&self) -> bool {
        match self.live().map(|l| &l.standing) {
            Some(Standing::Established(lease) | Standing::Resuming(Some(lease))) => {
                !lease.is_current()
            }
            _ => false,
        }
    }

    /// Whether the session is established and stored: not while a new
    /// responder session is provisional, nor during a resumption. After
    /// the engine closes: whether it was established then.
    pub fn is_established(&self) -> bool {
        match &self.phase {
            Phase::Live(live) => matches!(live.standing, Standing::Established(_)),
            Phase::Closed(Some(ended)) => ended.established,
            _ => false,
        }
    }

    /// Whether a key update may start now (profile 5): established and
    /// Synced.
    pub fn may_start_update(&self) -> bool {
        self.is_established() && self.state() == State::Synced
    }

    /// Whether application data may be sent now: false while a stuck
    /// direction waits for its ConnectionUpdate to be confirmed (SPEC 8).
    pub fn may_send_application_data(&self) -> bool {
        !self.live().is_some_and(|l| l.send_blocked)
    }

    /// Claims the session for this connection.
    fn claim(&self) -> Option<Lease> {
        self.session_id().map(|id| self.config.owners.claim(id))
    }

    /// The session is established on this connection: claims it, unless
    /// the claim was taken when the resumption started.
    fn establish(&mut self) {
        let lease = match self.live().map(|l| &l.standing) {
            Some(Standing::Resuming(Some(lease))) => Some(lease.clone()),
            _ => self.claim(),
        };
        if let (Phase::Live(live), Some(lease)) = (&mut self.phase, lease) {
            live.standing = Standing::Established(lease);
        }
    }

    /// Closes the engine. `owned`: as far as the caller knows, the stored
    /// session is still this connection's (false once superseded); the
    /// connection's claim decides the rest.
    fn close(&mut self, owned: bool) {
        let ended = match std::mem::replace(&mut self.phase, Phase::Closed(None)) {
            Phase::Live(live) => {
                // Only a current claim owns: never a provisional session
                // (not stored), a rule-1 candidate, or a superseded one.
                let claim = match &live.standing {
                    Standing::Established(lease) | Standing::Resuming(Some(lease)) => {
                        lease.is_current()
                    }
                    _ => false,
                };
                let established = matches!(live.standing, Standing::Established(_));
                let a = live.session;
                Some(Box::new(Ended {
                    epoch: a.group.epoch().as_u64(),
                    id: a.meta.id,
                    suite: a.meta.suite,
                    peer: a.peer,
                    established,
                    owned: owned && claim,
                    version: a.meta.version,
                }))
            }
            Phase::Closed(ended) => ended,
            _ => None,
        };
        self.phase = Phase::Closed(ended);
    }

    /// An initiator's KeyPackage storage while it waits for the ServerHello
    /// (its private init and leaf keys), for the published test vectors.
    #[cfg(feature = "bench")]
    pub(crate) fn hello_storage(&self) -> Option<&GroupStorage> {
        match &self.phase {
            Phase::AwaitingServerHello(hello) => Some(&hello.db),
            _ => None,
        }
    }

    /// Exports from the current epoch (for tests and higher protocols).
    pub fn export_secret(&self, label: &str, context: &[u8], len: usize) -> Result<Vec<u8>, Error> {
        let a = &self.live().ok_or(Error::ApiMisuse("no session"))?.session;
        a.group
            .export_secret(&*a.crypto, label, context, len)
            .map_err(mls_err)
    }

    /// Handles one received handshake message. On error the engine is
    /// closed; the stored session is kept or deleted as SPEC 8 says.
    ///
    /// A peer's ConnectionUpdate or EpochKeyUpdate that an established
    /// session cannot store right now (the session store is unavailable:
    /// [`Error::Store`]) is not an error: the session is rolled back, the
    /// message waits ([`Engine::has_deferred`]) with any that follow it,
    /// and the caller tries again with [`Engine::retry_deferred`]. Data
    /// keeps flowing meanwhile: under the current keys, and, after a
    /// waiting EpochKeyUpdate, received under the new epoch's keys (a
    /// candidate derived in memory from our pending commit).
    pub fn handle(&mut self, msg: HandshakeMessage, now: SystemTime) -> Result<Vec<Event>, Error> {
        if self.terminated {
            // The session was ended for good; the peer may not know yet.
            debug!(message = ?msg.typ, "handshake message after terminate ignored");
            return Ok(Vec::new());
        }
        if !self.deferred.is_empty() {
            if self.deferred.len() >= MAX_DEFERRED {
                // An honest peer sends at most one more (its next update
                // after its EpochKeyUpdate): bounded memory (SPEC 9a).
                self.close(true);
                return Err(PeerMisbehaved::UnexpectedHandshake {
                    message: msg.typ,
                    state: "waiting for the session store",
                }
                .into());
            }
            // The peer's order holds: behind the message that waits.
            self.deferred.push_back(msg);
            return Ok(Vec::new());
        }
        self.handle_now(msg, now)
    }

    /// Whether handshake messages wait for the session store.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Whether our own update still waits for the peer's confirmation: in
    /// Awaiting EpochKeyUpdate, and the confirmation is not already here
    /// waiting for the store.
    pub fn awaits_confirmation(&self) -> bool {
        self.state() == State::AwaitingEpochKeyUpdate && !self.confirmation_waits()
    }

    /// Whether the peer's EpochKeyUpdate is here, waiting for the store.
    fn confirmation_waits(&self) -> bool {
        self.deferred
            .iter()
            .any(|m| m.typ == HandshakeType::EpochKeyUpdate)
    }

    /// Drops the peer's waiting ConnectionUpdates: after our close_notify
    /// they could never be confirmed (SPEC 9), as one arriving then is
    /// ignored. If the save of one is in doubt (it may have landed), the
    /// store is first brought back to what memory holds, the update not
    /// applied, since the peer drops its commit on our close_notify.
    ///
    /// Errors: [`Error::Store`] when that write-back fails. Then no
    /// close_notify may go out: the caller ends the connection with an
    /// error instead, so that the peer keeps its update and a resumption
    /// reconciles the two (SPEC 8 rule 1 or 3).
    pub fn drop_deferred_updates(&mut self, now: SystemTime) -> Result<(), Error> {
        let waiting = self.deferred.len();
        self.deferred
            .retain(|m| m.typ != HandshakeType::ConnectionUpdate);
        if self.deferred.len() == waiting || self.in_doubt.is_none() {
            return Ok(());
        }
        match self.transition(now, |_, _| Ok(())) {
            Err(Error::Store(why)) => Err(Error::Store(format!(
                "the peer's key update may be stored and could not be undone ({why}); \
                 ending without close_notify so that the peer keeps it for a resumption"
            ))),
            // Written back, or no longer this connection's to write.
            _ => Ok(()),
        }
    }

    /// Tries the waiting handshake messages again, in order, and returns
    /// the events of those that landed; [`Engine::has_deferred`] says
    /// whether some still wait (the store is still unavailable). Any other
    /// error closes, as [`Engine::handle`]'s would.
    pub fn retry_deferred(&mut self, now: SystemTime) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        if self.terminated {
            self.deferred.clear();
            return Ok(events);
        }
        while let Some(msg) = self.deferred.pop_front() {
            let waiting = self.deferred.len();
            events.extend(self.handle_now(msg, now)?);
            if self.deferred.len() > waiting {
                // Deferred again: the store is still away.
                break;
            }
        }
        Ok(events)
    }

    fn handle_now(&mut self, msg: HandshakeMessage, now: SystemTime) -> Result<Vec<Event>, Error> {
        let state = self.state();
        let result = match (state, msg.typ) {
            (State::AwaitingClientHello, HandshakeType::ClientHello) => {
                self.on_client_hello(&msg.body, now)
            }
            (State::AwaitingServerHello, HandshakeType::ServerHello) => {
                self.on_server_hello(&msg.body, now)
            }
            (State::AwaitingEpochKeyUpdate, HandshakeType::ConnectionUpdate)
                if self.side == Side::Client =>
            {
                // Collision: the current initiator's commit wins (profile 5).
                debug!("update collision: ignoring the peer's ConnectionUpdate (ours wins)");
                Ok(Vec::new())
            }
            (State::Synced | State::AwaitingEpochKeyUpdate, HandshakeType::ConnectionUpdate) => {
                self.on_connection_update(&msg.body, now)
            }
            (State::AwaitingEpochKeyUpdate, HandshakeType::EpochKeyUpdate) => {
                self.on_epoch_key_update(&msg.body, now)
            }
            (State::AwaitingClientHello, HandshakeType::ResumptionRequest) => {
                self.on_resumption_request(&msg.body, now)
            }
            (State::AwaitingResumptionResponse, HandshakeType::ResumptionResponse) => {
                self.on_resumption_response(&msg.body, now)
            }
            (state, typ) => Err(PeerMisbehaved::UnexpectedHandshake {
                message: typ,
                state: state.name(),
            }
            .into()),
        };
        match result {
            Err(Error::Store(why))
                if matches!(
                    msg.typ,
                    HandshakeType::ConnectionUpdate | HandshakeType::EpochKeyUpdate
                ) && self.is_live_established() =>
            {
                // Rolled back: nothing stored, nothing sent (SPEC 10).
                tracing::warn!(
                    session = ?self.session_id().map(ToString::to_string),
                    message = ?msg.typ,
                    error = %why,
                    "session store unavailable: the peer's message waits and is tried again"
                );
                // The peer sends under our pending commit's epoch right
                // after its EpochKeyUpdate: receive it (a candidate, from
                // memory), while we keep sending under the current keys.
                let events = match msg.typ {
                    HandshakeType::EpochKeyUpdate => self.pending_receive_keys()?,
                    _ => Vec::new(),
                };
                self.deferred.push_front(msg);
                Ok(events)
            }
            Err(e) => {
                // A kept session is still ours (SPEC 8): `terminate` may
                // delete it. A transition that lost it closed the engine
                // already.
                self.close(true);
                Err(e)
            }
            ok => ok,
        }
    }

    /// The receive keys of the epoch our pending commit leads to, as a
    /// candidate.
    fn pending_receive_keys(&self) -> Result<Vec<Event>, Error> {
        let Some(live) = self.live() else {
            return Ok(Vec::new());
        };
        let a = &live.session;
        let Some(staged) = a.group.pending_commit() else {
            return Ok(Vec::new());
        };
        let secrets = export_staged(staged, &a.crypto, a.meta.suite)?;
        let (_, receive) = split(secrets, self.side);
        Ok(vec![Event::CandidateReceiveKeys(EpochSecret {
            epoch: a.group.epoch().as_u64() + 1,
            suite: a.meta.suite,
            secret: receive,
        })])
    }

    /// Whether a live session is established on this connection.
    fn is_live_established(&self) -> bool {
        matches!(
            self.live().map(|l| &l.standing),
            Some(Standing::Established(_))
        )
    }

    /// The peer sent an application data record (SPEC 6: the initiator's
    /// first ciphertext record confirms a responder's provisional session,
    /// which is stored now).
    pub fn on_peer_application_data(&mut self, now: SystemTime) -> Result<Vec<Event>, Error> {
        match self.live().map(|l| &l.standing) {
            Some(Standing::Provisional) => self.confirm(now),
            _ => Ok(Vec::new()),
        }
    }

    /// Ends the session for good (SPEC 9): deletes the stored session if
    /// this connection still owns it, and closes the engine; handshake
    /// messages still in flight are then ignored. Only the version this
    /// connection knows is deleted: a connection that another connection
    /// (of any configuration or process) has superseded never deletes its
    /// successor's session. A store error is returned and a retry deletes.
    pub fn terminate(&mut self) -> Result<(), Error> {
        self.close(true);
        self.terminated = true;
        self.deferred.clear();
        let Phase::Closed(Some(ended)) = &mut self.phase else {
            return Ok(());
        };
        if ended.owned {
            let store = &self.config.store;
            if let Some(doubt) = &self.in_doubt {
                // A save in doubt: delete what the store holds if it is ours.
                match doubt.resolve(store, &ended.id, ended.version)? {
                    doubt::Resolved::Lost => {}
                    doubt::Resolved::Landed(_) => ended.version = doubt.version,
                    doubt::Resolved::Superseded => ended.owned = false,
                }
            }
            // A save still in doubt after this delete can no longer land:
            // its version precondition names a record that is gone.
            let deleted = ended.owned && store.delete_at_version(&ended.id, ended.version)?;
            self.in_doubt = None;
            ended.owned = false;
            if deleted {
                info!(session = %ended.id, "session terminated and deleted");
            } else {
                info!(
                    session = %ended.id,
                    "session terminated; not deleted: gone, or moved on by another connection"
                );
            }
        }
        Ok(())
    }
}

fn bad_body(what: &'static str) -> Error {
    Error::InvalidMessage(crate::error::InvalidMessage::BadHandshake(what))
}
