//! A new session (profile section 4, SPEC 6): the initiator's ClientHello
//! and join, the responder's Welcome, and the responder's confirmation.

use std::sync::Arc;
use std::time::SystemTime;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use tracing::{debug, info};

use super::commit::install_both;
use super::transition::store_new;
use super::{bad_body, export, Active, Engine, Event, Hello, Live, Phase, ProfileConfig, Standing};
use crate::credentials::{PeerIdentity, VerifyContext};
use crate::crypto::CipherSuite;
use crate::error::Error;
use crate::message::{HandshakeMessage, HandshakeType};
use crate::profile::group::{self, mls_err};
use crate::profile::provider::MlsProvider;
use crate::schedule::Side;
use crate::store::snapshot::{GroupDb, GroupStorage};
use crate::store::{self, InitialRole, SessionId, SessionMeta, StoredState};

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
            phase: Phase::AwaitingServerHello(Box::new(Hello {
                identity,
                crypto,
                db,
            })),
            terminated: false,
            deferred: Default::default(),
            in_doubt: None,
        };
        let hello = HandshakeMessage::new(HandshakeType::ClientHello, body);
        Ok((engine, vec![Event::Send(hello)]))
    }

    /// A responder waiting for a first flight.
    pub fn server(config: ProfileConfig) -> Self {
        Self {
            config,
            side: Side::Server,
            phase: Phase::AwaitingClientHello,
            terminated: false,
            deferred: Default::default(),
            in_doubt: None,
        }
    }

    /// Responder: the initiator's first ciphertext record arrived, so the
    /// provisional session is confirmed and stored (SPEC 6).
    pub(super) fn confirm(&mut self, now: SystemTime) -> Result<Vec<Event>, Error> {
        let Phase::Live(live) = &mut self.phase else {
            return Ok(Vec::new());
        };
        let active = &mut live.session;
        active.meta.created = store::secs(now);
        active.meta.last_used = active.meta.created;
        store_new(&self.config.store, &active.meta, &mut live.db).map_err(|e| {
            e.unwrap_or_else(|| Error::HandshakeFailure("session id already stored".into()))
        })?;
        info!(
            session = %active.meta.id,
            suite = %active.meta.suite,
            epoch = active.group.epoch().as_u64(),
            peer = %active.peer.display_name(),
            authenticated = active.peer.authenticated,
            "handshake established (new session, responder confirmed)"
        );
        self.establish();
        Ok(vec![Event::Established])
    }

    pub(super) fn on_client_hello(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
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
        self.phase = Phase::Live(Box::new(Live {
            session: Active {
                identity,
                rotate_to: None,
                crypto: Arc::new(crypto),
                group,
                meta,
                peer,
            },
            db: GroupDb::Open(db),
            standing: Standing::Provisional,
            send_blocked: false,
        }));
        let mut events = vec![Event::Send(HandshakeMessage::new(
            HandshakeType::ServerHello,
            welcome,
        ))];
        events.extend(install_both(epoch, suite, secrets, self.side));
        Ok(events)
    }

    pub(super) fn on_server_hello(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Event>, Error> {
        let Phase::AwaitingServerHello(hello) =
            std::mem::replace(&mut self.phase, Phase::Closed(None))
        else {
            return Err(Error::Internal(
                "Awaiting ServerHello without a ClientHello",
            ));
        };
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
        info!(
            session = %meta.id,
            %suite,
            epoch,
            peer = %peer.display_name(),
            authenticated = peer.authenticated,
            "handshake established (new session, initiator)"
        );
        self.phase = Phase::Live(Box::new(Live {
            session: Active {
                identity: hello.identity,
                rotate_to: None,
                crypto: Arc::new(hello.crypto),
                group,
                meta,
                peer,
            },
            db,
            standing: Standing::Provisional,
            send_blocked: false,
        }));
        self.establish();
        let mut events = install_both(epoch, suite, secrets, self.side);
        // Established first: the join confirmation is this connection's
        // first application data record (SPEC 6).
        events.push(Event::Established);
        events.push(Event::ConfirmJoin);
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
        last_commit_hash: None,
        last_send_epoch: epoch,
        peer_credential: peer.credential.clone(),
        peer_signature_key: peer.signature_key.clone(),
        created: now,
        last_used: now,
        version: 0,
    }
}
