//! The two-party profile engine driven through a deterministic simulated
//! link (no sockets): initial handshake, key updates, collisions, bad input.
//! The simulated record layer checks that every message is sent under keys
//! the receiver holds, as the real record layer would.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mls_tls::alert::AlertDescription;
use mls_tls::error::Error;
use mls_tls::profile::auth::{AcceptAnyPeer, Identity, PeerVerifier, PinnedKeys};
use mls_tls::profile::engine::{Engine, EpochSecret, Event, ProfileConfig, State};
use mls_tls::profile::message::{HandshakeMessage, HandshakeType};
use mls_tls::profile::store::SessionStore;
use mls_tls::profile::suite::CipherSuite;

/// What protects a simulated record: nothing, or (epoch, secret bytes).
type Protection = Option<(u64, Vec<u8>)>;

enum Item {
    Handshake(HandshakeMessage),
    /// An application-data record (content irrelevant).
    Data,
}

struct Party {
    engine: Engine,
    send: Protection,
    recv: Protection,
    candidate: Protection,
    /// Every epoch whose sending keys this party installed, in order.
    send_epochs: Vec<u64>,
    established: bool,
    early_allowed: Option<bool>,
    store: Arc<SessionStore>,
    config: ProfileConfig,
}

impl Party {
    fn apply(&mut self, events: Vec<Event>, out: &mut VecDeque<(Protection, Item)>) {
        for e in events {
            match e {
                Event::Send(m) => out.push_back((self.send.clone(), Item::Handshake(m))),
                Event::InstallSendKeys(s) => {
                    self.send_epochs.push(s.epoch);
                    self.send = prot(&s);
                }
                Event::InstallReceiveKeys(s) => {
                    self.recv = prot(&s);
                    self.candidate = None;
                }
                Event::CandidateReceiveKeys(s) => self.candidate = prot(&s),
                Event::Established => self.established = true,
                Event::Resumed { early_data_allowed } => {
                    self.early_allowed = Some(early_data_allowed)
                }
            }
        }
    }

    /// The record layer's check: current key, then the candidate once.
    fn open(&mut self, p: &Protection) {
        if p.is_none() || *p == self.recv {
            return;
        }
        assert_eq!(
            *p, self.candidate,
            "record under keys the receiver does not hold"
        );
        self.recv = self.candidate.take();
    }
}

fn prot(s: &EpochSecret) -> Protection {
    Some((s.epoch, s.secret.secret_bytes().to_vec()))
}

struct Sim {
    client: Party,
    server: Party,
    to_server: VecDeque<(Protection, Item)>,
    to_client: VecDeque<(Protection, Item)>,
    now: SystemTime,
}

fn config(identity: Arc<Identity>, verifier: Arc<dyn PeerVerifier>) -> ProfileConfig {
    ProfileConfig {
        identities: vec![identity],
        verifier,
        store: Arc::new(SessionStore::in_memory().unwrap()),
    }
}

fn party(engine: Engine, config: ProfileConfig) -> Party {
    Party {
        engine,
        send: None,
        recv: None,
        candidate: None,
        send_epochs: Vec::new(),
        established: false,
        early_allowed: None,
        store: config.store.clone(),
        config,
    }
}

impl Party {
    /// A new connection: no keys, nothing established yet.
    fn reconnect(&mut self, engine: Engine) {
        self.engine = engine;
        self.send = None;
        self.recv = None;
        self.candidate = None;
        self.established = false;
        self.early_allowed = None;
    }
}

impl Sim {
    fn new(suite: CipherSuite) -> Self {
        let c = config(
            Arc::new(Identity::generate("client", suite).unwrap()),
            Arc::new(AcceptAnyPeer),
        );
        let s = config(
            Arc::new(Identity::generate("server", suite).unwrap()),
            Arc::new(AcceptAnyPeer),
        );
        Self::with_configs(c, s)
    }

    fn with_configs(c: ProfileConfig, s: ProfileConfig) -> Self {
        let (engine, events) = Engine::client(c.clone()).unwrap();
        let mut sim = Self {
            client: party(engine, c),
            server: party(Engine::server(s.clone()), s),
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        sim.client.apply(events, &mut sim.to_server);
        sim
    }

    /// Delivers one item to the server (true) or client (false).
    fn step(&mut self, to_server: bool) -> Result<bool, Error> {
        let (me, queue, back) = if to_server {
            (&mut self.server, &mut self.to_server, &mut self.to_client)
        } else {
            (&mut self.client, &mut self.to_client, &mut self.to_server)
        };
        let Some((p, item)) = queue.pop_front() else {
            return Ok(false);
        };
        me.open(&p);
        let events = match item {
            Item::Handshake(m) => me.engine.handle(m, self.now)?,
            Item::Data => {
                if p.is_some() && !me.established {
                    me.engine.confirm(self.now)?
                } else {
                    Vec::new()
                }
            }
        };
        me.apply(events, back);
        Ok(true)
    }

    /// Delivers everything in flight, alternating, until both queues drain.
    fn run(&mut self) -> Result<(), Error> {
        while self.step(true)? | self.step(false)? {}
        Ok(())
    }

    /// Each side sends one data record (what a connection does after its
    /// handshake message, and what confirms the responder).
    fn data_both(&mut self) {
        self.to_server
            .push_back((self.client.send.clone(), Item::Data));
        self.to_client
            .push_back((self.server.send.clone(), Item::Data));
    }

    fn handshake(&mut self) {
        self.run().unwrap();
        self.data_both();
        self.run().unwrap();
        assert!(self.client.established && self.server.established);
    }

    fn update(&mut self, client: bool) {
        let p = if client {
            &mut self.client
        } else {
            &mut self.server
        };
        let events = p.engine.start_update(self.now).unwrap();
        let q = if client {
            &mut self.to_server
        } else {
            &mut self.to_client
        };
        p.apply(events, q);
    }

    /// Cuts the connection (everything in flight is lost) and resumes it
    /// from the client (true) or server (false) side. Returns whether the
    /// resumer may send early data.
    fn cut_and_resume(&mut self, by_client: bool) -> bool {
        self.to_server.clear();
        self.to_client.clear();
        let (resumer, other) = if by_client {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        };
        let id = resumer.engine.session_id().unwrap().clone();
        let (engine, events, r) = Engine::resume(resumer.config.clone(), &id, self.now).unwrap();
        resumer.reconnect(engine);
        other.reconnect(Engine::server(other.config.clone()));
        let out = if by_client {
            &mut self.to_server
        } else {
            &mut self.to_client
        };
        resumer.apply(events, out);
        r.early_data
    }

    /// Sends an early-data record from the resumer.
    fn early_data(&mut self, by_client: bool) {
        if by_client {
            self.to_server
                .push_back((self.client.send.clone(), Item::Data));
        } else {
            self.to_client
                .push_back((self.server.send.clone(), Item::Data));
        }
    }

    /// Finishes a resumption: deliver, exchange data, deliver.
    fn settle(&mut self) {
        self.run().unwrap();
        self.data_both();
        self.run().unwrap();
        self.assert_in_sync();
    }

    fn assert_in_sync(&self) {
        let (c, s) = (&self.client.engine, &self.server.engine);
        assert_eq!(c.state(), State::Synced);
        assert_eq!(s.state(), State::Synced);
        assert_eq!(c.epoch(), s.epoch());
        assert_eq!(
            c.export_secret("test", b"", 32).unwrap(),
            s.export_secret("test", b"", 32).unwrap()
        );
        assert_eq!(self.client.send, self.server.recv);
        assert_eq!(self.server.send, self.client.recv);
        for p in [&self.client, &self.server] {
            let mut e = p.send_epochs.clone();
            e.dedup();
            assert_eq!(
                e, p.send_epochs,
                "sending keys installed twice for an epoch"
            );
        }
    }
}

#[test]
fn handshake_establishes_both_sides_classical_and_pq() {
    for suite in [
        CipherSuite::from_code_point(0x0001).unwrap(),
        CipherSuite::DEFAULT,
    ] {
        let mut sim = Sim::new(suite);
        sim.run().unwrap();
        // The responder is provisional until the initiator's first record.
        assert!(sim.client.established);
        assert!(!sim.server.established);
        assert!(sim.server.store.list().unwrap().is_empty());
        sim.data_both();
        sim.run().unwrap();
        assert!(sim.server.established);
        sim.assert_in_sync();
        assert_eq!(sim.client.engine.epoch(), Some(1));
        assert_eq!(sim.client.store.list().unwrap().len(), 1);
        assert_eq!(sim.server.store.list().unwrap().len(), 1);
        assert_eq!(
            sim.client.engine.session_id(),
            sim.server.engine.session_id()
        );
        assert_eq!(sim.client.engine.peer_identity().unwrap().name, b"server");
        assert_eq!(sim.server.engine.peer_identity().unwrap().name, b"client");
    }
}

#[test]
fn update_by_initiator_then_responder() {
    let mut sim = Sim::new(CipherSuite::from_code_point(0x0001).unwrap());
    sim.handshake();
    sim.update(true);
    assert_eq!(sim.client.engine.state(), State::AwaitingEpochKeyUpdate);
    sim.run().unwrap();
    sim.data_both();
    sim.run().unwrap();
    sim.assert_in_sync();
    assert_eq!(sim.client.engine.epoch(), Some(2));
    sim.update(false);
    sim.run().unwrap();
    sim.data_both();
    sim.run().unwrap();
    sim.assert_in_sync();
    assert_eq!(sim.server.engine.epoch(), Some(3));
}

#[test]
fn update_collision_current_initiator_wins() {
    let mut sim = Sim::new(CipherSuite::from_code_point(0x0001).unwrap());
    sim.handshake();
    sim.update(true);
    sim.update(false);
    sim.run().unwrap();
    sim.data_both();
    sim.run().unwrap();
    sim.assert_in_sync();
    assert_eq!(sim.client.engine.epoch(), Some(2));
}

#[test]
fn message_in_wrong_state_is_unexpected() {
    let mut sim = Sim::new(CipherSuite::from_code_point(0x0001).unwrap());
    let bogus = HandshakeMessage::new(HandshakeType::ServerHello, vec![1, 2, 3]);
    let err = sim.server.engine.handle(bogus, sim.now).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::UnexpectedMessage));
    assert_eq!(sim.server.engine.state(), State::Closed);
}

#[test]
fn rejected_key_package_is_bad_certificate() {
    let suite = CipherSuite::from_code_point(0x0001).unwrap();
    let c = config(
        Arc::new(Identity::generate("client", suite).unwrap()),
        Arc::new(AcceptAnyPeer),
    );
    let s = config(
        Arc::new(Identity::generate("server", suite).unwrap()),
        Arc::new(PinnedKeys::new([vec![1, 2, 3]])),
    );
    let mut sim = Sim::with_configs(c, s);
    let err = sim.run().unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::BadCertificate));
    assert!(sim.server.store.list().unwrap().is_empty());
}

#[test]
fn tampered_commit_is_decrypt_error_and_session_kept() {
    let mut sim = Sim::new(CipherSuite::from_code_point(0x0001).unwrap());
    sim.handshake();
    sim.update(true);
    let (p, item) = sim.to_server.pop_front().unwrap();
    let Item::Handshake(mut m) = item else {
        panic!()
    };
    let n = m.body.len();
    m.body[n - 5] ^= 1;
    sim.to_server.push_back((p, Item::Handshake(m)));
    let err = sim.run().unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::DecryptError));
    assert_eq!(sim.server.store.list().unwrap().len(), 1);
}

fn classical() -> CipherSuite {
    CipherSuite::from_code_point(0x0001).unwrap()
}

#[test]
fn resume_by_initiator_with_early_data() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    assert!(sim.cut_and_resume(true));
    sim.early_data(true);
    sim.settle();
    assert_eq!(sim.server.early_allowed, Some(true));
    assert_eq!(sim.client.engine.epoch(), Some(3));
    assert_eq!(sim.client.engine.side(), mls_tls::schedule::Side::Client);
}

#[test]
fn resume_by_responder_swaps_current_roles() {
    let mut sim = Sim::new(CipherSuite::DEFAULT);
    sim.handshake();
    assert!(sim.cut_and_resume(false));
    sim.early_data(false);
    sim.settle();
    assert_eq!(sim.client.early_allowed, Some(true));
    assert_eq!(sim.server.engine.side(), mls_tls::schedule::Side::Client);
    // Updates keep working with the new current roles.
    sim.update(true);
    sim.settle();
    assert_eq!(sim.client.engine.epoch(), Some(4));
}

#[test]
fn resume_with_undelivered_update_resends_pending_commit() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    sim.update(true);
    // The ConnectionUpdate is lost: the pending commit goes again, no early data.
    assert!(!sim.cut_and_resume(true));
    sim.settle();
    assert_eq!(sim.server.early_allowed, Some(true));
    assert_eq!(sim.client.engine.epoch(), Some(3));
}

#[test]
fn resume_after_lost_epoch_key_update_is_a_retransmission() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    sim.update(true);
    // The server applies the update; its EpochKeyUpdate is lost.
    assert!(sim.step(true).unwrap());
    assert!(!sim.cut_and_resume(true));
    sim.settle();
    // Rule 1: the server recognised the commit it already applied.
    assert_eq!(sim.server.early_allowed, Some(false));
    assert_eq!(sim.client.engine.epoch(), Some(3));
}

#[test]
fn resume_confirms_peers_unconfirmed_commit() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    sim.update(false);
    // The client applies the server's update; the confirmation is lost.
    assert!(sim.step(false).unwrap());
    assert!(sim.cut_and_resume(true));
    sim.early_data(true);
    // Rule 2: the request builds on the server's pending commit.
    sim.settle();
    assert_eq!(sim.server.early_allowed, Some(true));
    assert_eq!(sim.client.engine.epoch(), Some(4));
}

#[test]
fn replayed_resumption_request_is_rejected_and_session_kept() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    sim.cut_and_resume(true);
    let (_, Item::Handshake(request)) = sim
        .to_server
        .front()
        .map(|(p, i)| {
            (
                p.clone(),
                match i {
                    Item::Handshake(m) => Item::Handshake(m.clone()),
                    Item::Data => Item::Data,
                },
            )
        })
        .unwrap()
    else {
        panic!()
    };
    sim.settle();
    // The recorded first flight replayed on a new connection.
    let mut attacker_target = Engine::server(sim.server.config.clone());
    let err = attacker_target.handle(request, sim.now).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::DecryptError));
    assert_eq!(sim.server.store.list().unwrap().len(), 1);
    // The genuine client still resumes.
    assert!(sim.cut_and_resume(true));
    sim.settle();
}

#[test]
fn resumption_of_unknown_session_is_handshake_failure() {
    let mut a = Sim::new(classical());
    a.handshake();
    a.cut_and_resume(true);
    let Some((_, Item::Handshake(request))) = a.to_server.pop_front() else {
        panic!()
    };
    let b = Sim::new(classical());
    let mut stranger = Engine::server(b.server.config.clone());
    let err = stranger.handle(request, a.now).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::HandshakeFailure));
}

#[test]
fn sessions_survive_a_store_reopen() {
    let dir = std::env::temp_dir().join(format!("mlstls-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let suite = classical();
    let cid = Arc::new(Identity::generate("client", suite).unwrap());
    let sid = Arc::new(Identity::generate("server", suite).unwrap());
    let file_config = |id: &Arc<Identity>, name: &str| ProfileConfig {
        identities: vec![id.clone()],
        verifier: Arc::new(AcceptAnyPeer),
        store: Arc::new(SessionStore::open(dir.join(name)).unwrap()),
    };
    let mut sim = Sim::with_configs(file_config(&cid, "c.db"), file_config(&sid, "s.db"));
    sim.handshake();
    sim.update(true);
    sim.settle();
    // "Restart": both sides reopen their stores from disk.
    sim.client.config = file_config(&cid, "c.db");
    sim.server.config = file_config(&sid, "s.db");
    assert_eq!(sim.client.config.store.list().unwrap().len(), 1);
    assert!(sim.cut_and_resume(true));
    sim.settle();
    assert_eq!(sim.client.engine.epoch(), Some(4));
    let _ = std::fs::remove_dir_all(&dir);
}
