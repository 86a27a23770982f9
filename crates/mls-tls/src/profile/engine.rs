//! The two-party profile state machine (profile sections 3.1, 4, 5; SPEC
//! sections 6-8): consumes handshake messages, produces handshake messages
//! and key events. Sans-I/O: the caller moves messages and passes the time.

use std::sync::Arc;
use std::time::SystemTime;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use rusqlite::Connection;

use super::auth::{Identity, PeerIdentity, PeerVerifier, VerifyContext};
use super::crypto::{run_migrations, CryptoBackend, MlsProvider};
use super::group::{self, mls_err};
use super::message::{HandshakeMessage, HandshakeType, TwoPartyMessageType};
use super::persist::copy_private_db;
use super::store::{
    self, InitialRole, PendingCommit, SessionId, SessionMeta, SessionStore, StoredState,
};
use super::suite::CipherSuite;
use crate::error::{Error, PeerMisbehaved};
use crate::schedule::{Side, TrafficSecret, TrafficSecrets};

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
    /// Responder: a resumption was accepted. Early data (application data
    /// before the EpochKeyUpdate) is allowed only if `early_data_allowed`;
    /// otherwise any such record is a replay (SPEC 8).
    Resumed {
        /// Whether the request was fresh (rules 2 and 3).
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

/// An initial handshake in progress: state lives in a private in-memory
/// database until both sides are known to be Synced (SPEC 6).
struct Hello {
    identity: Arc<Identity>,
    crypto: CryptoBackend,
    db: Connection,
}

/// A session with a group.
struct Active {
    identity: Arc<Identity>,
    crypto: Arc<CryptoBackend>,
    group: MlsGroup,
    meta: SessionMeta,
    peer: PeerIdentity,
    /// Responder only: the session is not stored until the initiator's
    /// first ciphertext record confirms it (SPEC 6).
    provisional: Option<Connection>,
}

/// A failure inside a transition, and whether it came from a message that
/// authenticated (then the session is deleted, SPEC 8).
struct Fail {
    error: Error,
    delete: bool,
}

impl From<Error> for Fail {
    fn from(error: Error) -> Self {
        Self {
            error,
            delete: false,
        }
    }
}

fn authenticated(error: Error) -> Fail {
    Fail {
        error,
        delete: true,
    }
}

/// The two-party profile engine of one connection.
pub struct Engine {
    config: ProfileConfig,
    side: Side,
    state: State,
    hello: Option<Hello>,
    active: Option<Active>,
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
        let mut db = Connection::open_in_memory().map_err(store::store_err)?;
        run_migrations(&mut db).map_err(Error::Store)?;
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

    /// Whether the session is established and stored (not provisional).
    pub fn is_established(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| a.provisional.is_none())
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
                self.on_client_hello(&msg.body)
            }
            (State::AwaitingServerHello, HandshakeType::ServerHello) => {
                self.on_server_hello(&msg.body, now)
            }
            (State::AwaitingEpochKeyUpdate, HandshakeType::ConnectionUpdate)
                if self.side == Side::Client =>
            {
                // Collision: the current initiator's commit wins (profile 5).
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
        let Some(active) = self.active.as_mut() else {
            return Ok(Vec::new());
        };
        let Some(db) = active.provisional.take() else {
            return Ok(Vec::new());
        };
        active.meta.created = store::secs(now);
        active.meta.last_used = active.meta.created;
        let meta = &active.meta;
        self.config.store.transaction(|conn| {
            if store::exists(conn, &meta.id)? {
                return Err(Error::HandshakeFailure("session id already stored".into()));
            }
            copy_private_db(&db, conn)?;
            store::save_meta(conn, meta)
        })?;
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
            let message = group::create_commit(
                &mut a.group,
                provider,
                a.identity.signer(),
                TwoPartyMessageType::ConnectionUpdate,
            )?;
            a.meta.state = StoredState::AwaitingEpochKeyUpdate;
            a.meta.pending = Some(PendingCommit {
                message: message.clone(),
                typ: TwoPartyMessageType::ConnectionUpdate,
            });
            Ok(message)
        })?;
        self.state = State::AwaitingEpochKeyUpdate;
        Ok(vec![Event::Send(HandshakeMessage::new(
            HandshakeType::ConnectionUpdate,
            message,
        ))])
    }

    /// Resumes a stored session as the current initiator (profile 6): sends
    /// the pending commit again if there is one, else a fresh commit. The
    /// returned [`Resumption`] says whether early data may be sent.
    pub fn resume(
        config: ProfileConfig,
        id: &SessionId,
        now: SystemTime,
    ) -> Result<(Self, Vec<Event>, Resumption), Error> {
        let mut active = load_active(&config, id)?;
        let mut engine = Self {
            config,
            side: Side::Client,
            state: State::AwaitingResumptionResponse,
            hello: None,
            active: None,
        };
        let fresh = active.meta.pending.is_none();
        let store = engine.config.store.clone();
        let (message, secrets) = store.transaction(|conn| {
            let provider = MlsProvider::new(&active.crypto, conn);
            if fresh {
                let message = group::create_commit(
                    &mut active.group,
                    &provider,
                    active.identity.signer(),
                    TwoPartyMessageType::ResumptionRequest,
                )?;
                active.meta.pending = Some(PendingCommit {
                    message,
                    typ: TwoPartyMessageType::ResumptionRequest,
                });
            }
            let staged = active
                .group
                .pending_commit()
                .ok_or_else(|| Error::Store("pending commit missing from the group".into()))?;
            let secrets = export_staged(staged, &active.crypto, active.meta.suite)?;
            active.meta.state = StoredState::AwaitingResumptionResponse;
            active.meta.last_used = store::secs(now);
            store::save_meta(conn, &active.meta)?;
            let message = active.meta.pending.as_ref().map(|p| p.message.clone());
            Ok((message.unwrap_or_default(), secrets))
        })?;
        let epoch = active.group.epoch().as_u64() + 1;
        let suite = active.meta.suite;
        let (send, receive) = split(secrets, Side::Client);
        let mut events = vec![Event::Send(HandshakeMessage::new(
            HandshakeType::ResumptionRequest,
            message,
        ))];
        // The response may come encrypted under the new epoch's server keys.
        events.push(Event::InstallReceiveKeys(EpochSecret {
            epoch,
            suite,
            secret: receive,
        }));
        let early_data = fresh && epoch > active.meta.last_send_epoch;
        if early_data {
            // Durable before the first record under these keys leaves (SPEC 8).
            active.meta.last_send_epoch = epoch;
            store.transaction(|conn| store::save_meta(conn, &active.meta))?;
            events.push(Event::InstallSendKeys(EpochSecret {
                epoch,
                suite,
                secret: send,
            }));
        }
        engine.active = Some(active);
        Ok((engine, events, Resumption { early_data }))
    }

    fn on_resumption_request(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Event>, Error> {
        let message = group::parse_private_message(body)?;
        let id = SessionId(message.group_id().as_slice().to_vec());
        let active = match load_active(&self.config, &id) {
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
                let ours = a
                    .meta
                    .pending
                    .take()
                    .ok_or(Error::Store("pending bytes missing".into()))?;
                a.group.merge_pending_commit(provider).map_err(mls_err)?;
                let staged = process_commit(a, provider, body, &*verifier, type_ok)?;
                a.group
                    .merge_staged_commit(provider, *staged)
                    .map_err(mls_err)?;
                let _ = ours;
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
                _ => {
                    let m = group::create_commit(
                        &mut a.group,
                        provider,
                        a.identity.signer(),
                        TwoPartyMessageType::ResumptionResponse,
                    )?;
                    a.meta.pending = Some(PendingCommit {
                        message: m.clone(),
                        typ: TwoPartyMessageType::ResumptionResponse,
                    });
                    m
                }
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

    fn on_resumption_response(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
        let verifier = self.config.verifier.clone();
        let (eku, epoch, secrets, suite) = self.transition(now, |a, provider| {
            let message = group::parse_private_message(body)?;
            let pending_epoch = a.group.pending_commit().map(|c| c.epoch());
            if pending_epoch != Some(message.epoch()) {
                return Err(Error::DecryptError("response for another epoch".into()).into());
            }
            a.group.merge_pending_commit(provider).map_err(mls_err)?;
            a.meta.pending = None;
            let staged = process_commit(a, provider, body, &*verifier, |t| {
                matches!(
                    t,
                    TwoPartyMessageType::ResumptionResponse | TwoPartyMessageType::ConnectionUpdate
                )
            })?;
            let secrets = export_staged(&staged, &a.crypto, a.meta.suite)?;
            a.group
                .merge_staged_commit(provider, *staged)
                .map_err(mls_err)?;
            let epoch = a.group.epoch().as_u64();
            a.meta.last_commit_hash = Some(group::commit_hash(body));
            a.meta.state = StoredState::Synced;
            raise_send_epoch(&mut a.meta, epoch)?;
            let eku = group::create_epoch_key_update(&mut a.group, provider, a.identity.signer())?;
            Ok((eku, epoch, secrets, a.meta.suite))
        })?;
        self.state = State::Synced;
        let (send, receive) = split(secrets, self.side);
        Ok(vec![
            Event::Send(HandshakeMessage::new(HandshakeType::EpochKeyUpdate, eku)),
            Event::InstallSendKeys(EpochSecret {
                epoch,
                suite,
                secret: send,
            }),
            Event::CandidateReceiveKeys(EpochSecret {
                epoch,
                suite,
                secret: receive,
            }),
            Event::Established,
        ])
    }

    fn on_client_hello(&mut self, body: &[u8]) -> Result<Vec<Event>, Error> {
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
        let peer = PeerIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
        self.config
            .verifier
            .verify(&peer, VerifyContext::KeyPackage)
            .map_err(Error::BadCertificate)?;

        let mut db = Connection::open_in_memory().map_err(store::store_err)?;
        run_migrations(&mut db).map_err(Error::Store)?;
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
        let meta = SessionMeta {
            id: SessionId(group.group_id().as_slice().to_vec()),
            suite,
            initial_role: InitialRole::Responder,
            state: StoredState::Synced,
            pending: None,
            last_commit_hash: None,
            last_send_epoch: epoch,
            peer_credential: peer.credential.clone(),
            peer_signature_key: peer.signature_key.clone(),
            created: 0,
            last_used: 0,
        };
        self.active = Some(Active {
            identity,
            crypto: Arc::new(crypto),
            group,
            meta,
            peer,
            provisional: Some(db),
        });
        self.state = State::Synced;
        let mut events = vec![Event::Send(HandshakeMessage::new(
            HandshakeType::ServerHello,
            welcome,
        ))];
        events.extend(install_both(epoch, suite, secrets, self.side));
        Ok(events)
    }

    fn on_server_hello(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Event>, Error> {
        let hello = self
            .hello
            .take()
            .ok_or(Error::ApiMisuse("no ClientHello sent"))?;
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
        let peer = PeerIdentity::from_leaf(&other.credential, &other.signature_key)?;
        self.config
            .verifier
            .verify(&peer, VerifyContext::Welcome)
            .map_err(Error::BadCertificate)?;

        let epoch = group.epoch().as_u64();
        let secrets = export(&group, &hello.crypto, suite)?;
        let meta = SessionMeta {
            id: SessionId(group.group_id().as_slice().to_vec()),
            suite,
            initial_role: InitialRole::Initiator,
            state: StoredState::Synced,
            pending: None,
            last_commit_hash: None,
            last_send_epoch: epoch,
            peer_credential: peer.credential.clone(),
            peer_signature_key: peer.signature_key.clone(),
            created: store::secs(now),
            last_used: store::secs(now),
        };
        self.config.store.transaction(|conn| {
            if store::exists(conn, &meta.id)? {
                return Err(Error::HandshakeFailure(
                    "Welcome names a group id that is already stored".into(),
                ));
            }
            copy_private_db(&hello.db, conn)?;
            store::save_meta(conn, &meta)
        })?;
        self.active = Some(Active {
            identity: hello.identity,
            crypto: Arc::new(hello.crypto),
            group,
            meta,
            peer,
            provisional: None,
        });
        self.state = State::Synced;
        let mut events = install_both(epoch, suite, secrets, self.side);
        events.push(Event::Established);
        Ok(events)
    }

    fn on_connection_update(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Event>, Error> {
        let verifier = self.config.verifier.clone();
        let (eku, epoch, secrets, suite) = self.transition(now, |a, provider| {
            if a.group.pending_commit().is_some() {
                // Responder collision: our commit loses (profile 5).
                a.group
                    .clear_pending_commit(provider.storage())
                    .map_err(mls_err)?;
                a.meta.pending = None;
            }
            let staged = process_commit(a, provider, body, &*verifier, |t| {
                t == TwoPartyMessageType::ConnectionUpdate
            })?;
            let secrets = export_staged(&staged, &a.crypto, a.meta.suite)?;
            a.group
                .merge_staged_commit(provider, *staged)
                .map_err(mls_err)?;
            let epoch = a.group.epoch().as_u64();
            a.meta.last_commit_hash = Some(group::commit_hash(body));
            a.meta.state = StoredState::Synced;
            raise_send_epoch(&mut a.meta, epoch)?;
            let eku = group::create_epoch_key_update(&mut a.group, provider, a.identity.signer())?;
            Ok((eku, epoch, secrets, a.meta.suite))
        })?;
        self.state = State::Synced;
        let (send, receive) = split(secrets, self.side);
        Ok(vec![
            Event::Send(HandshakeMessage::new(HandshakeType::EpochKeyUpdate, eku)),
            Event::InstallSendKeys(EpochSecret {
                epoch,
                suite,
                secret: send,
            }),
            Event::CandidateReceiveKeys(EpochSecret {
                epoch,
                suite,
                secret: receive,
            }),
        ])
    }

    fn on_epoch_key_update(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Event>, Error> {
        let (epoch, secrets, suite) = self.transition(now, |a, provider| {
            let pending_epoch = a
                .group
                .pending_commit()
                .map(|c| c.epoch())
                .ok_or(Error::ApiMisuse("no pending commit"))?;
            let message = group::parse_private_message(body)?;
            if message.epoch() != pending_epoch {
                return Err(Error::DecryptError("EpochKeyUpdate for another epoch".into()).into());
            }
            let pending = a
                .meta
                .pending
                .take()
                .ok_or(Error::ApiMisuse("no pending commit"))?;
            a.group.merge_pending_commit(provider).map_err(mls_err)?;
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
            a.meta.last_commit_hash = Some(group::commit_hash(&pending.message));
            a.meta.state = StoredState::Synced;
            raise_send_epoch(&mut a.meta, epoch)?;
            Ok((
                epoch,
                export(&a.group, &a.crypto, a.meta.suite)?,
                a.meta.suite,
            ))
        })?;
        self.state = State::Synced;
        Ok(install_both(epoch, suite, secrets, self.side))
    }

    /// Runs `f` as one stored transition: committed with the updated
    /// metadata if it succeeds; otherwise rolled back, the group reloaded,
    /// and the session deleted if the failure was authenticated (SPEC 8).
    fn transition<R>(
        &mut self,
        now: SystemTime,
        f: impl FnOnce(&mut Active, &MlsProvider<'_>) -> Result<R, Fail>,
    ) -> Result<R, Error> {
        let store = self.config.store.clone();
        let active = self.active.as_mut().ok_or(Error::ApiMisuse("no session"))?;
        let crypto = active.crypto.clone();
        if let Some(db) = active.provisional.take() {
            // Not stored yet: work on the private database. A failure ends
            // the provisional session anyway.
            let result = f(active, &MlsProvider::new(&crypto, &db)).map_err(|fail| fail.error);
            active.provisional = Some(db);
            return result;
        }
        let mut failure = None;
        let result = store.transaction(|conn| {
            let provider = MlsProvider::new(&crypto, conn);
            match f(active, &provider) {
                Ok(r) => {
                    active.meta.last_used = store::secs(now);
                    store::save_meta(conn, &active.meta)?;
                    Ok(r)
                }
                Err(fail) => {
                    let e = fail.error.clone();
                    failure = Some(fail);
                    Err(e)
                }
            }
        });
        if result.is_err() {
            let id = active.meta.id.clone();
            let delete = failure.as_ref().is_some_and(|f| f.delete);
            let reload = store.transaction(|conn| {
                if delete {
                    store::delete_in(conn, &id)?;
                    return Ok(None);
                }
                Ok(Some((
                    group::load_group(conn, &id)?,
                    store::load_meta(conn, &id)?,
                )))
            });
            if let Ok(Some((Some(group), Some(meta)))) = reload {
                active.group = group;
                active.meta = meta;
            }
        }
        result
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

/// Loads a stored session into memory.
fn load_active(config: &ProfileConfig, id: &SessionId) -> Result<Active, Error> {
    let (group, meta) = config
        .store
        .transaction(|conn| Ok((group::load_group(conn, id)?, store::load_meta(conn, id)?)))?;
    let (Some(group), Some(meta)) = (group, meta) else {
        return Err(Error::HandshakeFailure(format!("no stored session {id}")));
    };
    let identity = config
        .identities
        .iter()
        .find(|i| i.suite() == meta.suite)
        .cloned()
        .ok_or_else(|| Error::HandshakeFailure(format!("no identity for {}", meta.suite)))?;
    let crypto = Arc::new(group::backend(meta.suite)?);
    let peer = PeerIdentity {
        credential: meta.peer_credential.clone(),
        name: Credential::tls_deserialize_exact(&meta.peer_credential)
            .map(|c| c.serialized_content().to_vec())
            .unwrap_or_default(),
        signature_key: meta.peer_signature_key.clone(),
    };
    Ok(Active {
        identity,
        crypto,
        group,
        meta,
        peer,
        provisional: None,
    })
}

/// Processes a commit message: decrypts it (failure: `decrypt_error`, the
/// session kept), then checks type, shape and credentials (failure: the
/// message authenticated, so the session is deleted).
fn process_commit(
    a: &mut Active,
    provider: &MlsProvider<'_>,
    body: &[u8],
    verifier: &dyn PeerVerifier,
    type_ok: impl Fn(TwoPartyMessageType) -> bool,
) -> Result<Box<StagedCommit>, Fail> {
    let message = group::parse_private_message(body)?;
    let processed = a
        .group
        .process_message(provider, message)
        .map_err(|e| Error::DecryptError(format!("commit: {e:?}")))?;
    let typ = group::message_type(&processed).map_err(authenticated)?;
    if !type_ok(typ) {
        return Err(authenticated(Error::IllegalParameter(format!(
            "commit typed {typ:?} here"
        ))));
    }
    let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        return Err(authenticated(Error::IllegalParameter(
            "not a commit".into(),
        )));
    };
    let leaf = group::check_commit(&staged).map_err(authenticated)?;
    let peer = PeerIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
    verifier
        .verify(&peer, VerifyContext::UpdatePath { previous: &a.peer })
        .map_err(|e| authenticated(Error::BadCertificate(e)))?;
    a.peer = peer;
    Ok(staged)
}

/// Applies the key-reuse invariant (SPEC 8): sending keys for `epoch` only
/// if no keys for that epoch number were ever installed.
fn raise_send_epoch(meta: &mut SessionMeta, epoch: u64) -> Result<(), Fail> {
    if epoch <= meta.last_send_epoch {
        // The stuck-direction case of SPEC 8; reached only through resumption.
        return Err(Error::Mls(format!("sending keys for epoch {epoch} were already used")).into());
    }
    meta.last_send_epoch = epoch;
    Ok(())
}

fn export(
    group: &MlsGroup,
    crypto: &CryptoBackend,
    suite: CipherSuite,
) -> Result<TrafficSecrets, Error> {
    TrafficSecrets::from_exporter(suite.hash(), |label, len| {
        group
            .export_secret(crypto, label, &[], len)
            .map_err(mls_err)
    })
}

fn export_staged(
    staged: &StagedCommit,
    crypto: &CryptoBackend,
    suite: CipherSuite,
) -> Result<TrafficSecrets, Error> {
    TrafficSecrets::from_exporter(suite.hash(), |label, len| {
        staged
            .export_secret(crypto, label, &[], len)
            .map_err(mls_err)
    })
}

/// (send, receive) secrets for `side`.
fn split(secrets: TrafficSecrets, side: Side) -> (TrafficSecret, TrafficSecret) {
    match side {
        Side::Client => (secrets.client, secrets.server),
        Side::Server => (secrets.server, secrets.client),
    }
}

fn install_both(epoch: u64, suite: CipherSuite, secrets: TrafficSecrets, side: Side) -> Vec<Event> {
    let (send, receive) = split(secrets, side);
    vec![
        Event::InstallReceiveKeys(EpochSecret {
            epoch,
            suite,
            secret: receive,
        }),
        Event::InstallSendKeys(EpochSecret {
            epoch,
            suite,
            secret: send,
        }),
    ]
}

fn bad_body(what: &'static str) -> Error {
    Error::InvalidMessage(crate::error::InvalidMessage::BadHandshake(what))
}
