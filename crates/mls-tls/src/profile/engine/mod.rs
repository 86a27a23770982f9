//! The two-party profile state machine (profile sections 3.1, 4, 5; SPEC
//! sections 6-8): consumes handshake messages, produces handshake messages
//! and key events. Sans-I/O: the caller moves messages and passes the time.

use std::sync::Arc;
use std::time::SystemTime;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use tracing::{debug, info};

use crate::credentials::{Identity, PeerIdentity, PeerVerifier, VerifyContext};
use crate::crypto::CryptoBackend;
use crate::message::{HandshakeMessage, HandshakeType, TwoPartyMessageType};
use crate::profile::group::{self, mls_err};
use crate::profile::provider::MlsProvider;
use crate::store::snapshot::{GroupDb, GroupStorage};

mod commit;
mod resume;
mod rotate;
#[cfg(test)]
mod tests;
mod transition;

use crate::crypto::CipherSuite;
use crate::error::{Error, PeerMisbehaved};
use crate::schedule::{Side, TrafficSecret};
use crate::store::{
    self, InitialRole, Lease, PendingCommit, SessionId, SessionMeta, SessionStore, StoredState,
};
pub(crate) use commit::export;
use commit::{
    apply_and_confirm, claim_send_epoch, export_staged, install_both, process_commit, split,
    Applied,
};
pub use resume::Resumption;
use transition::{authenticated, delete_session, store_new, Fail};

/// What a profile engine needs: who we are, whom we accept, where sessions
/// are kept.
#[derive(Clone, Debug)]
pub struct ProfileConfig {
    /// Our identities, one per ciphersuite we accept; an initiator uses the
    /// first.
    pub identities: Vec<Arc<Identity>>,
    /// The authentication-service hook.
    pub verifier: Arc<dyn PeerVerifier>,
    /// Where sessions are stored.
    pub store: Arc<SessionStore>,
}

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
    /// The session is established (or resumed) and stored.
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
    /// Responder only: the session is not stored until the initiator's
    /// first ciphertext record confirms it (SPEC 6).
    provisional: bool,
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

    /// Creates and stages a commit typed `typ` and records its bytes as the
    /// pending commit, the bytes a resumption sends again unchanged.
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
        self.meta.pending = Some(PendingCommit {
            message: message.clone(),
            typ,
        });
        Ok(message)
    }
}

/// The two-party profile engine of one connection.
pub struct Engine {
    config: ProfileConfig,
    side: Side,
    state: State,
    hello: Option<Hello>,
    active: Option<Active>,
    /// The session's OpenMLS storage (see `persist`), once there is a
    /// group.
    db: Option<GroupDb>,
    /// A stuck direction waits for its ConnectionUpdate (SPEC 8).
    send_blocked: bool,
    /// This connection's claim on its session.
    lease: Option<Lease>,
    /// Responder answering a rule-1 request: the claim on the session
    /// moves to this connection only once its EpochKeyUpdate validates
    /// (SPEC 8: a replayed request never closes a live connection).
    claim_on_confirm: bool,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("side", &self.side)
            .field("state", &self.state)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts a new session as initiator: returns the engine and the
    /// ClientHello to send.
    pub fn client(config: ProfileConfig) -> Result<(Self, Vec<Event>), Error> {
        let identity = config
            .identities
            .first()
            .cloned()
            .ok_or(Error::ApiMisuse("no identity configured"))?;
        let crypto = group::backend(identity.suite())?;
        let db = GroupStorage::default();
        let key_package = {
            let provider = MlsProvider::new(&crypto, &db);
            KeyPackage::builder()
                .leaf_node_capabilities(group::capabilities(identity.suite()))
                .leaf_node_extensions(group::leaf_extensions()?)
                .build(
                    identity.suite().mls(),
                    &provider,
                    identity.signer(),
                    identity.credential(),
                )
                .map_err(mls_err)?
        };
        let body = MlsMessageOut::from(key_package.key_package().clone())
            .tls_serialize_detached()
            .map_err(mls_err)?;
        let engine = Self {
            config,
            side: Side::Client,
            state: State::AwaitingServerHello,
            hello: Some(Hello {
                identity,
                crypto,
                db,
            }),
            active: None,
            db: None,
            send_blocked: false,
            lease: None,
            claim_on_confirm: false,
        };
        let hello = HandshakeMessage::new(HandshakeType::ClientHello, body);
        Ok((engine, vec![Event::Send(hello)]))
    }

    /// A responder waiting for a first flight.
    pub fn server(config: ProfileConfig) -> Self {
        Self {
            config,
            side: Side::Server,
            state: State::AwaitingClientHello,
            hello: None,
            active: None,
            db: None,
            send_blocked: false,
            lease: None,
            claim_on_confirm: false,
        }
    }

    /// The current profile state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Which traffic direction this side sends on in this connection.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The session id, once a group exists.
    pub fn session_id(&self) -> Option<&SessionId> {
        self.active.as_ref().map(|a| &a.meta.id)
    }

    /// The group's current epoch, once a group exists.
    pub fn epoch(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.group.epoch().as_u64())
    }

    /// The peer's identity, once known. For a provisional responder session
    /// it is only claimed (SPEC 6).
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.active.as_ref().map(|a| &a.peer)
    }

    /// Whether another connection of this process has since resumed this
    /// connection's session (SPEC 8: the older connection is closed).
    pub fn is_superseded(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| !l.is_current())
    }

    /// Claims the session for this connection.
    pub(super) fn claim(&mut self) {
        if let Some(id) = self.session_id() {
            self.lease = Some(self.config.store.claim(id));
        }
    }

    /// Whether the session is established and stored (not provisional).
    pub fn is_established(&self) -> bool {
        self.active.as_ref().is_some_and(|a| !a.provisional)
    }

    /// The ciphersuite, once a group exists.
    pub fn suite(&self) -> Option<CipherSuite> {
        self.active.as_ref().map(|a| a.meta.suite)
    }

    /// Exports from the current epoch (for tests and higher protocols).
    pub fn export_secret(&self, label: &str, context: &[u8], len: usize) -> Result<Vec<u8>, Error> {
        let a = self
            .active
            .as_ref()
            .ok_or(Error::ApiMisuse("no session yet"))?;
        a.group
            .export_secret(&*a.crypto, label, context, len)
            .map_err(mls_err)
    }

    /// Handles one received handshake message. On error the engine is
    /// closed; the stored session is kept or deleted as SPEC 8 says.
    pub fn handle(&mut self, msg: HandshakeMessage, now: SystemTime) -> Result<Vec<Event>, Error> {
        let result = match (self.state, msg.typ) {
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
        if result.is_err() {
            self.state = State::Closed;
        }
        result
    }

    /// Responder: the initiator's first ciphertext record arrived, so the
    /// provisional session is confirmed and stored (SPEC 6).
    pub fn confirm(&mut self, now: SystemTime) -> Result<Vec<Event>, Error> {
        let (Some(active), Some(db)) = (self.active.as_mut(), self.db.as_mut()) else {
            return Ok(Vec::new());
        };
        if !active.provisional {
            return Ok(Vec::new());
        }
        active.meta.created = store::secs(now);
        active.meta.last_used = active.meta.created;
        store_new(&self.config.store, &active.meta, db).map_err(|e| {
            e.unwrap_or_else(|| Error::HandshakeFailure("session id already stored".into()))
        })?;
        active.provisional = false;
        info!(
            session = %active.meta.id,
            suite = %active.meta.suite,
            epoch = active.group.epoch().as_u64(),
            peer = %active.peer.display_name(),
            authenticated = active.peer.authenticated,
            "handshake established (new session, responder confirmed)"
        );
        self.claim();
        Ok(vec![Event::Established])
    }

    /// Starts a key update (profile 5): only in Synced.
    pub fn start_update(&mut self, now: SystemTime) -> Result<Vec<Event>, Error> {
        if self.state != State::Synced || !self.is_established() {
            return Err(Error::ApiMisuse(
                "a key update needs an established, Synced session",
            ));
        }
        let message = self.transition(now, |a, provider| {
            let message = a.commit_pending(provider, TwoPartyMessageType::ConnectionUpdate)?;
            a.meta.state = StoredState::AwaitingEpochKeyUpdate;
            Ok(message)
        })?;
        self.state = State::AwaitingEpochKeyUpdate;
        debug!(epoch = ?self.epoch(), "key update started");
        Ok(vec![Event::Send(HandshakeMessage::new(
            HandshakeType::ConnectionUpdate,
            message,
        ))])
    }

    /// Drops our pending ConnectionUpdate as a stored transition, back to
    /// Synced: the peer closed its direction and will not confirm it
    /// (SPEC 9). A stuck direction keeps its update (it is the only way to
    /// send again); so does a resumption in progress.
    pub fn abandon_update(&mut self, now: SystemTime) -> Result<Vec<Event>, Error> {
        if self.state != State::AwaitingEpochKeyUpdate || self.send_blocked {
            return Ok(Vec::new());
        }
        self.transition(now, |a, provider| {
            if a.meta.pending.as_ref().map(|p| p.typ) != Some(TwoPartyMessageType::ConnectionUpdate)
            {
                return Ok(false);
            }
            a.group
                .clear_pending_commit(provider.storage())
                .map_err(mls_err)?;
            a.meta.pending = None;
            a.meta.state = StoredState::Synced;
            Ok(true)
        })
        .map(|dropped| {
            if dropped {
                self.state = State::Synced;
            }
            Vec::new()
        })
    }

    fn on_client_hello(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Event>, Error> {
        let kp_in = match MlsMessageIn::tls_deserialize_exact(body)
            .map_err(|_| bad_body("ClientHello body is not a KeyPackage"))?
            .extract()
        {
            MlsMessageBodyIn::KeyPackage(kp) => kp,
            _ => return Err(bad_body("ClientHello body is not a KeyPackage")),
        };
        // MLSMessage{version, wire_format, KeyPackage{version, cipher_suite, ..}}:
        // KeyPackageIn has no accessor before validation, which needs the suite.
        let suite = body
            .get(6..8)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .and_then(CipherSuite::from_code_point)
            .ok_or_else(|| Error::HandshakeFailure("unsupported ciphersuite".into()))?;
        let identity = self
            .config
            .identities
            .iter()
            .find(|i| i.suite() == suite)
            .cloned()
            .ok_or_else(|| Error::HandshakeFailure(format!("ciphersuite {suite} not offered")))?;
        let crypto = group::backend(suite)?;
        let key_package = kp_in
            .validate(&crypto, ProtocolVersion::Mls10)
            .map_err(|e| Error::HandshakeFailure(format!("invalid KeyPackage: {e:?}")))?;
        group::check_leaf(key_package.leaf_node())
            .map_err(|e| Error::HandshakeFailure(e.into()))?;
        let leaf = key_package.leaf_node();
        let peer = PeerIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice())?
            .verified_by(&*self.config.verifier, VerifyContext::KeyPackage, now)
            .inspect_err(|e| debug!(error = %e, "ClientHello credential rejected"))?;

        let db = GroupStorage::default();
        let (group, welcome) = {
            let provider = MlsProvider::new(&crypto, &db);
            let mut group = MlsGroup::new(
                &provider,
                identity.signer(),
                &group::create_config(suite)?,
                identity.credential(),
            )
            .map_err(mls_err)?;
            let (_, welcome, _) = group
                .add_members(&provider, identity.signer(), &[key_package])
                .map_err(mls_err)?;
            group.merge_pending_commit(&provider).map_err(mls_err)?;
            (group, welcome.tls_serialize_detached().map_err(mls_err)?)
        };
        let epoch = group.epoch().as_u64();
        let secrets = export(&group, &crypto, suite)?;
        // Timestamps are set when the session is confirmed and stored.
        let meta = new_session_meta(&group, suite, InitialRole::Responder, &peer, 0);
        self.active = Some(Active {
            identity,
            rotate_to: None,
            crypto: Arc::new(crypto),
            group,
            meta,
            peer,
            provisional: true,
        });
        self.db = Some(GroupDb::Open(db));
        self.state = State::Synced;
        let mut events = vec![Event::Send(HandshakeMessage::new(
            HandshakeType::ServerHello,
            welcome,
        ))];
        events.extend(install_both(epoch, suite, secrets, self.side));
        Ok(events)
    }

    fn on_server_hello(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Event>, Error> {
        let hello = self.hello.take().ok_or(Error::Internal(
            "Awaiting ServerHello without a ClientHello",
        ))?;
        let suite = hello.identity.suite();
        let welcome = match MlsMessageIn::tls_deserialize_exact(body)
            .map_err(|_| bad_body("ServerHello body is not a Welcome"))?
            .extract()
        {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => return Err(bad_body("ServerHello body is not a Welcome")),
        };
        let provider = MlsProvider::new(&hello.crypto, &hello.db);
        let staged =
            StagedWelcome::new_from_welcome(&provider, &group::join_config(), welcome, None)
                .map_err(|e| Error::HandshakeFailure(format!("Welcome rejected: {e:?}")))?;
        group::check_group_context(staged.group_context())
            .map_err(|e| Error::HandshakeFailure(e.into()))?;
        let group = staged
            .into_group(&provider)
            .map_err(|e| Error::HandshakeFailure(format!("{e:?}")))?;
        let own = group.own_leaf_index();
        let own_key = hello.identity.public_key();
        let members: Vec<Member> = group.members().collect();
        let [a, b] = members.as_slice() else {
            return Err(Error::IllegalParameter(
                "group does not have exactly two members".into(),
            ));
        };
        let (mine, other) = if a.index == own { (a, b) } else { (b, a) };
        if mine.index != own || mine.signature_key != own_key {
            return Err(Error::IllegalParameter(
                "own leaf is not our KeyPackage's".into(),
            ));
        }
        let other_leaf = group
            .public_group()
            .leaf(other.index)
            .ok_or_else(|| Error::IllegalParameter("responder leaf missing".into()))?;
        group::check_leaf(other_leaf).map_err(|e| Error::HandshakeFailure(e.into()))?;
        let peer = PeerIdentity::from_leaf(&other.credential, &other.signature_key)?
            .verified_by(&*self.config.verifier, VerifyContext::Welcome, now)
            .inspect_err(|e| debug!(error = %e, "ServerHello credential rejected"))?;

        let epoch = group.epoch().as_u64();
        let secrets = export(&group, &hello.crypto, suite)?;
        let meta = new_session_meta(
            &group,
            suite,
            InitialRole::Initiator,
            &peer,
            store::secs(now),
        );
        let mut db = GroupDb::Open(hello.db);
        store_new(&self.config.store, &meta, &mut db).map_err(|e| {
            e.unwrap_or_else(|| {
                Error::HandshakeFailure("Welcome names a group id that is already stored".into())
            })
        })?;
        self.active = Some(Active {
            identity: hello.identity,
            rotate_to: None,
            crypto: Arc::new(hello.crypto),
            group,
            meta,
            peer,
            provisional: false,
        });
        self.db = Some(db);
        self.state = State::Synced;
        if let Some(a) = &self.active {
            info!(
                session = %a.meta.id,
                %suite,
                epoch,
                peer = %a.peer.display_name(),
                authenticated = a.peer.authenticated,
                "handshake established (new session, initiator)"
            );
        }
        self.claim();
        let mut events = install_both(epoch, suite, secrets, self.side);
        events.push(Event::Established);
        Ok(events)
    }

    fn on_connection_update(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Event>, Error> {
        let verifier = self.config.verifier.clone();
        let result = self.transition(now, |a, provider| {
            if a.group.pending_commit().is_some() {
                // Responder collision: our commit loses (profile 5).
                a.group
                    .clear_pending_commit(provider.storage())
                    .map_err(mls_err)?;
                a.meta.pending = None;
            }
            apply_and_confirm(a, provider, body, &*verifier, now, |t| {
                t == TwoPartyMessageType::ConnectionUpdate
            })
        })?;
        debug!(epoch = result.epoch, "peer's key update applied");
        Ok(self.confirmation_events(result))
    }

    /// The events after applying a peer's commit: the EpochKeyUpdate under
    /// the old sending keys, then the new sending keys (or the stuck
    /// direction's update), and the new receiving keys as a candidate.
    fn confirmation_events(&mut self, applied: Applied) -> Vec<Event> {
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
        match stuck {
            None => {
                self.send_blocked = false;
                self.state = State::Synced;
                events.push(Event::InstallSendKeys(EpochSecret {
                    epoch,
                    suite,
                    secret: send,
                }));
            }
            Some(update) => {
                self.send_blocked = true;
                self.state = State::AwaitingEpochKeyUpdate;
                events.push(Event::Send(HandshakeMessage::new(
                    HandshakeType::ConnectionUpdate,
                    update,
                )));
            }
        }
    }

    /// Whether application data may be sent now: false while a stuck
    /// direction waits for its ConnectionUpdate to be confirmed (SPEC 8).
    pub fn may_send_application_data(&self) -> bool {
        !self.send_blocked
    }

    fn on_epoch_key_update(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Event>, Error> {
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
            let pending = a.meta.pending.take().ok_or(Error::Internal(
                "Awaiting EpochKeyUpdate without a recorded pending commit",
            ))?;
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
            a.meta.state = StoredState::Synced;
            let secrets = export(&a.group, &a.crypto, a.meta.suite)?;
            let stuck = claim_send_epoch(a, provider, epoch)?;
            Ok((epoch, secrets, a.meta.suite, stuck))
        })?;
        debug!(
            epoch,
            "own key update confirmed by the peer's EpochKeyUpdate"
        );
        if std::mem::take(&mut self.claim_on_confirm) {
            // A rule-1 resumption is genuine once its EpochKeyUpdate
            // validates: only now does it supersede older connections.
            self.claim();
            info!(session = ?self.session_id(), epoch, "session resumed (rule 1 confirmed)");
        }
        let (send, receive) = split(secrets, self.side);
        let mut events = vec![Event::InstallReceiveKeys(EpochSecret {
            epoch,
            suite,
            secret: receive,
        })];
        self.switch_sending(&mut events, epoch, suite, send, stuck);
        Ok(events)
    }
}

/// The profile row of a newly established session.
fn new_session_meta(
    group: &MlsGroup,
    suite: CipherSuite,
    initial_role: InitialRole,
    peer: &PeerIdentity,
    now: u64,
) -> SessionMeta {
    let epoch = group.epoch().as_u64();
    SessionMeta {
        id: SessionId(group.group_id().as_slice().to_vec()),
        suite,
        initial_role,
        state: StoredState::Synced,
        pending: None,
        last_commit_hash: None,
        last_send_epoch: epoch,
        peer_credential: peer.credential.clone(),
        peer_signature_key: peer.signature_key.clone(),
        created: now,
        last_used: now,
        version: 0,
    }
}

fn bad_body(what: &'static str) -> Error {
    Error::InvalidMessage(crate::error::InvalidMessage::BadHandshake(what))
}
