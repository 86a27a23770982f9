//! A deterministic simulated link between two profile engines (no sockets).
//! The simulated record layer checks that every message is sent under keys
//! the receiver holds, as the real record layer would.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mls_tls::credentials::{AcceptAnyPeer, Identity, PeerVerifier};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::message::HandshakeMessage;
use mls_tls::profile::engine::{Engine, EpochSecret, Event, ProfileConfig, State};
use mls_tls::store::{SessionId, SessionStore};

/// What protects a simulated record: nothing, or (epoch, secret bytes).
pub type Protection = Option<(u64, Vec<u8>)>;

pub enum Item {
    Handshake(HandshakeMessage),
    /// An application-data record (content irrelevant).
    Data,
}

pub struct Party {
    pub engine: Engine,
    pub send: Protection,
    pub recv: Protection,
    pub candidate: Protection,
    /// Every epoch whose sending keys this party installed, in order.
    pub send_epochs: Vec<u64>,
    pub established: bool,
    pub early_allowed: Option<bool>,
    /// How many times the engine asked for the join confirmation record.
    pub join_confirmations: usize,
    pub store: Arc<SessionStore>,
    pub config: ProfileConfig,
}

impl Party {
    pub fn apply(&mut self, events: Vec<Event>, out: &mut VecDeque<(Protection, Item)>) {
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
                // A connection sends one data record now; the tests
                // choose when it arrives (`data_both`).
                Event::ConfirmJoin => self.join_confirmations += 1,
                Event::EarlyDataWindow => {}
                Event::Resumed { early_data_allowed } => {
                    self.early_allowed = Some(early_data_allowed)
                }
            }
        }
    }

    /// The record layer's check: current key, then the candidate once.
    pub fn open(&mut self, p: &Protection) {
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

pub fn prot(s: &EpochSecret) -> Protection {
    Some((s.epoch, s.secret.secret_bytes().to_vec()))
}

pub struct Sim {
    pub client: Party,
    pub server: Party,
    pub to_server: VecDeque<(Protection, Item)>,
    pub to_client: VecDeque<(Protection, Item)>,
    pub now: SystemTime,
    /// The session, once the first handshake is done.
    pub session: Option<SessionId>,
}

pub fn config(identity: Arc<Identity>, verifier: Arc<dyn PeerVerifier>) -> ProfileConfig {
    ProfileConfig::new(
        vec![identity],
        verifier,
        Arc::new(SessionStore::in_memory().unwrap()),
    )
}

pub fn party(engine: Engine, config: ProfileConfig) -> Party {
    Party {
        engine,
        send: None,
        recv: None,
        candidate: None,
        send_epochs: Vec::new(),
        established: false,
        early_allowed: None,
        join_confirmations: 0,
        store: config.store.clone(),
        config,
    }
}

impl Party {
    /// A new connection: no keys, nothing established yet.
    pub fn reconnect(&mut self, engine: Engine) {
        self.engine = engine;
        self.send = None;
        self.recv = None;
        self.candidate = None;
        self.established = false;
        self.early_allowed = None;
    }
}

impl Sim {
    pub fn new(suite: CipherSuite) -> Self {
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

    pub fn with_configs(c: ProfileConfig, s: ProfileConfig) -> Self {
        let (engine, events) = Engine::client(c.clone()).unwrap();
        let mut sim = Self {
            client: party(engine, c),
            server: party(Engine::server(s.clone()), s),
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            session: None,
        };
        sim.client.apply(events, &mut sim.to_server);
        sim
    }

    /// Delivers one item to the server (true) or client (false).
    pub fn step(&mut self, to_server: bool) -> Result<bool, Error> {
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
                if p.is_some() {
                    me.engine.on_peer_application_data(self.now)?
                } else {
                    Vec::new()
                }
            }
        };
        me.apply(events, back);
        Ok(true)
    }

    /// Delivers everything in flight, alternating, until both queues drain.
    pub fn run(&mut self) -> Result<(), Error> {
        while self.step(true)? | self.step(false)? {}
        Ok(())
    }

    /// Each side sends one data record (what a connection does after its
    /// handshake message, and what confirms the responder).
    pub fn data_both(&mut self) {
        self.to_server
            .push_back((self.client.send.clone(), Item::Data));
        self.to_client
            .push_back((self.server.send.clone(), Item::Data));
    }

    pub fn handshake(&mut self) {
        self.run().unwrap();
        self.data_both();
        self.run().unwrap();
        assert!(self.client.established && self.server.established);
        self.session = self.client.engine.session_id().cloned();
    }

    pub fn update(&mut self, client: bool) {
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
    pub fn cut_and_resume(&mut self, by_client: bool) -> bool {
        self.to_server.clear();
        self.to_client.clear();
        let (resumer, other) = if by_client {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        };
        let id = self.session.clone().expect("handshake done");
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
    pub fn early_data(&mut self, by_client: bool) {
        if by_client {
            self.to_server
                .push_back((self.client.send.clone(), Item::Data));
        } else {
            self.to_client
                .push_back((self.server.send.clone(), Item::Data));
        }
    }

    /// Finishes a resumption: deliver, exchange data, deliver.
    pub fn settle(&mut self) {
        self.run().unwrap();
        self.data_both();
        self.run().unwrap();
        self.assert_in_sync();
    }

    pub fn assert_in_sync(&self) {
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

pub fn classical() -> CipherSuite {
    CipherSuite::from_code_point(0x0001).unwrap()
}
