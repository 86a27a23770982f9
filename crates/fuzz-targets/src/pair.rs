//! Target 5: an established pair where the fuzzer controls one direction.
//!
//! The harness runs an honest client and server over a simulated link. In
//! the direction the fuzzer controls, it sits in the middle: it opens every
//! ciphertext record of the honest sender with the sender's real keys
//! (from the key log, `ClientConfig::key_log`), and seals what it forwards,
//! and whatever the fuzzer injects, with a `RecordSealer` under the keys
//! the receiver expects. So chosen handshake bodies, replayed commits and
//! EpochKeyUpdates, mutated messages and application data reach the
//! profile engine instead of dying at the AEAD.
//!
//! Input: one byte (bit 0: the fuzzer controls the server's direction and
//! attacks the client; else the client's, attacking the server), then a
//! list of operations (see [`Op`]).
//!
//! Checks, besides no panic: every connection the input ends closes with
//! an error that is the peer's fault (never `internal_error`); the
//! victim's stored session survives unless SPEC 8 says delete; and if both
//! sides are still up at the end, data still flows both ways and both
//! agree on the epoch ("goes on with its state intact").

use std::io::Write;
use std::time::Duration;

use mls_tls::conn::{ClientConnection, Connection, ServerConnection};
use mls_tls::profile::engine::State;
use mls_tls::record::{
    write_plaintext, ContentType, OpaqueRecord, RecordOpener, RecordSealer, HEADER_LEN,
};
use mls_tls::schedule::{AeadAlgorithm, HashAlgorithm, TrafficSecret};
use mls_tls::store::SessionId;
use mls_tls::Error;

use std::sync::Arc;

use crate::{
    check_peer_error, check_session_kept, client_config, clock, fixtures, server_config,
    take_output, MemoryKeyLog, SharedBackend,
};

/// Most operations taken from one input (keeps an execution short).
const MAX_OPS: usize = 32;
/// Most key updates one input may ask for.
const MAX_UPDATES: usize = 4;

/// One step of the fuzzer's script.
#[derive(Debug)]
pub enum Op {
    /// Deliver everything in flight, both ways.
    Pump,
    /// The honest sender writes application data.
    HonestData(u8),
    /// The victim writes application data.
    VictimData(u8),
    /// The honest sender starts a key update.
    HonestUpdate,
    /// The victim starts a key update.
    VictimUpdate,
    /// Seal `MlsTlsHandshake{typ, body}` as handshake content.
    InjectHandshake(u8, Vec<u8>),
    /// Seal raw bytes as handshake content (fragments, several messages).
    InjectHandshakeBytes(Vec<u8>),
    /// Seal application data.
    InjectData(Vec<u8>),
    /// Seal an alert (level, description).
    InjectAlert([u8; 2]),
    /// Send raw bytes, not sealed.
    InjectRaw(Vec<u8>),
    /// Seal again, under the current keys, the n-th handshake record the
    /// honest sender sent (a replayed commit or EpochKeyUpdate).
    Replay(u8),
    /// Flip bits of the next honest handshake record: (position, xor).
    MutateNext(u16, u8),
    /// Drop the next honest record.
    DropNext,
    /// Advance the clock by this many seconds and run both timers.
    Advance(u8),
    /// The honest sender sends close_notify.
    HonestClose,
    /// The victim sends close_notify.
    VictimClose,
}

/// Parses the operation list (never fails: unknown opcodes wrap around,
/// short input ends the list).
pub fn parse(mut data: &[u8]) -> Vec<Op> {
    fn byte(d: &mut &[u8]) -> Option<u8> {
        let (&b, rest) = d.split_first()?;
        *d = rest;
        Some(b)
    }
    fn bytes(d: &mut &[u8]) -> Option<Vec<u8>> {
        let hi = byte(d)?;
        let lo = byte(d)?;
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(d.len());
        let (head, rest) = d.split_at(len);
        *d = rest;
        Some(head.to_vec())
    }
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        let Some(code) = byte(&mut data) else { break };
        let op = match code % 16 {
            0 => Some(Op::Pump),
            1 => byte(&mut data).map(Op::HonestData),
            2 => byte(&mut data).map(Op::VictimData),
            3 => Some(Op::HonestUpdate),
            4 => Some(Op::VictimUpdate),
            5 => byte(&mut data).and_then(|t| bytes(&mut data).map(|b| Op::InjectHandshake(t, b))),
            6 => bytes(&mut data).map(Op::InjectHandshakeBytes),
            7 => bytes(&mut data).map(Op::InjectData),
            8 => byte(&mut data).and_then(|a| byte(&mut data).map(|b| Op::InjectAlert([a, b]))),
            9 => bytes(&mut data).map(Op::InjectRaw),
            10 => byte(&mut data).map(Op::Replay),
            11 => bytes(&mut data).and_then(|p| {
                let pos = u16::from_be_bytes([p.first().copied()?, p.get(1).copied()?]);
                Some(Op::MutateNext(pos, p.get(2).copied()?))
            }),
            12 => Some(Op::DropNext),
            13 => byte(&mut data).map(Op::Advance),
            14 => Some(Op::HonestClose),
            _ => Some(Op::VictimClose),
        };
        match op {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    ops
}

/// The keys of the honest sender's direction, as its key log reports them.
fn secret_keys(secret: &[u8]) -> mls_tls::schedule::TrafficKeys {
    TrafficSecret::new(HashAlgorithm::Sha256, secret.to_vec())
        .and_then(|s| s.derive_keys(AeadAlgorithm::Aes128Gcm))
        .expect("logged secret derives keys")
}

/// One side of the pair.
struct Side {
    conn: Connection,
    backend: SharedBackend,
    log: Arc<MemoryKeyLog>,
    error: Option<Error>,
    received: Vec<u8>,
}

impl Side {
    fn alive(&self) -> bool {
        self.error.is_none()
    }

    /// Processes input; records the first error.
    fn deliver(&mut self, bytes: &[u8]) {
        if !self.alive() || bytes.is_empty() {
            return;
        }
        if let Some(e) = crate::feed_collect(&mut self.conn, bytes, &mut self.received) {
            self.error = Some(e);
        }
    }

    fn output(&mut self) -> Vec<u8> {
        take_output(&mut self.conn)
    }

    /// The send secrets this side installed, in order.
    fn send_secrets(&self, client: bool) -> Vec<Vec<u8>> {
        self.log
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|l| l.client_direction == client)
            .map(|l| l.secret.clone())
            .collect()
    }
}

/// The man in the middle of the controlled direction.
#[derive(Default)]
struct Relay {
    opener: RecordOpener,
    open_at: Option<usize>,
    sealer: RecordSealer,
    seal_at: Option<usize>,
    /// Handshake record contents the honest sender sent, for replays.
    seen: Vec<Vec<u8>>,
    mutate: Option<(u16, u8)>,
    drop_next: bool,
}

impl Relay {
    /// Re-frames the honest sender's output for the victim.
    fn forward(&mut self, wire: &[u8], secrets: &[Vec<u8>], out: &mut Vec<u8>) {
        let mut rest = wire;
        while rest.len() >= HEADER_LEN {
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            let (record, tail) = rest.split_at((HEADER_LEN + len).min(rest.len()));
            rest = tail;
            let header: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().expect("5 bytes");
            let (typ, mut content) = if header[0] == ContentType::ApplicationData.to_u8() {
                let (typ, content) = self.open(header, &record[HEADER_LEN..], secrets);
                (typ, content)
            } else {
                let typ = ContentType::from_u8(header[0]).expect("honest plaintext type");
                (typ, record[HEADER_LEN..].to_vec())
            };
            if std::mem::take(&mut self.drop_next) {
                continue;
            }
            if typ == ContentType::Handshake {
                if self.seen.len() < 16 {
                    self.seen.push(content.clone());
                }
                if let Some((pos, xor)) = self.mutate.take() {
                    let i = usize::from(pos) % content.len();
                    content[i] ^= xor.max(1);
                }
            }
            if header[0] == ContentType::ApplicationData.to_u8() {
                let _ = self.sealer.seal(typ, &content, out);
            } else {
                let _ = write_plaintext(typ, &content, out);
            }
        }
    }

    /// Opens one honest ciphertext record: under the current key, else the
    /// next one the sender logged (it switched). Seals what follows under
    /// the same epoch's keys.
    fn open(
        &mut self,
        header: [u8; 5],
        payload: &[u8],
        secrets: &[Vec<u8>],
    ) -> (ContentType, Vec<u8>) {
        let start = self.open_at.unwrap_or(0);
        for (at, secret) in secrets.iter().enumerate().skip(start) {
            if self.open_at != Some(at) {
                self.opener.install(secret_keys(secret)).expect("install");
                self.open_at = Some(at);
            }
            let mut copy = payload.to_vec();
            if let Ok(msg) = self.opener.open(OpaqueRecord {
                header,
                payload: &mut copy,
            }) {
                let typ = msg.typ;
                let content = msg.payload.to_vec();
                if self.seal_at != Some(at) {
                    self.sealer.install(secret_keys(secret)).expect("install");
                    self.seal_at = Some(at);
                }
                return (typ, content);
            }
        }
        panic!("harness: an honest record opens under none of the logged keys");
    }

    /// Seals injected content under the keys the victim expects now: the
    /// honest sender's latest (once everything it sent was delivered, the
    /// victim holds them as current or candidate keys).
    fn inject(&mut self, typ: ContentType, content: &[u8], secrets: &[Vec<u8>], out: &mut Vec<u8>) {
        if let Some(last) = secrets.len().checked_sub(1) {
            if self.seal_at != Some(last) {
                self.sealer
                    .install(secret_keys(&secrets[last]))
                    .expect("install");
                self.seal_at = Some(last);
            }
        }
        if self.sealer.is_encrypting() {
            let _ = self.sealer.seal(typ, content, out);
        } else {
            let _ = write_plaintext(typ, content, out);
        }
    }
}

struct Pair {
    honest: Side,
    victim: Side,
    /// Whether the honest side is the client.
    honest_is_client: bool,
    relay: Relay,
    clock: Arc<mls_tls::time::ManualClock>,
    /// Whether either side sent close_notify.
    closed: bool,
}

impl Pair {
    fn new(fuzzer_is_server: bool) -> Self {
        let fx = fixtures();
        let clock = clock();
        let side = |conn: Connection, backend: SharedBackend, log: Arc<MemoryKeyLog>| Side {
            conn,
            backend,
            log,
            error: None,
            received: Vec::new(),
        };
        let (cb, sb) = (SharedBackend::default(), SharedBackend::default());
        let (cl, sl) = (
            Arc::new(MemoryKeyLog::default()),
            Arc::new(MemoryKeyLog::default()),
        );
        let client = ClientConnection::new(client_config(
            &fx.client_identity,
            &cb,
            &clock,
            Some(cl.clone()),
        ))
        .expect("new client");
        let server = ServerConnection::new(server_config(
            &fx.server_identity,
            &sb,
            &clock,
            Some(sl.clone()),
        ));
        let client = side(client.into(), cb, cl);
        let server = side(server.into(), sb, sl);
        let (honest, victim) = if fuzzer_is_server {
            (server, client)
        } else {
            (client, server)
        };
        let mut pair = Self {
            honest,
            victim,
            honest_is_client: !fuzzer_is_server,
            relay: Relay::default(),
            clock,
            closed: false,
        };
        pair.pump();
        assert!(
            !pair.honest.conn.is_handshaking() && !pair.victim.conn.is_handshaking(),
            "harness: the honest handshake did not complete: {:?} {:?}",
            pair.honest.error,
            pair.victim.error
        );
        pair
    }

    /// Both sides' state, for assertion messages.
    fn describe(&self) -> String {
        let side = |s: &Side| {
            format!(
                "state {:?} epoch {:?} handshaking {} received {} error {:?}",
                s.conn.profile_state(),
                s.conn.epoch(),
                s.conn.is_handshaking(),
                s.received.len(),
                s.error
            )
        };
        format!(
            "honest ({}): {}; victim: {}; relay open_at {:?} seal_at {:?}",
            if self.honest_is_client {
                "client"
            } else {
                "server"
            },
            side(&self.honest),
            side(&self.victim),
            self.relay.open_at,
            self.relay.seal_at
        )
    }

    fn honest_secrets(&self) -> Vec<Vec<u8>> {
        self.honest.send_secrets(self.honest_is_client)
    }

    /// Moves bytes both ways until nothing moves.
    fn pump(&mut self) {
        for _ in 0..16 {
            let mut moved = false;
            let wire = self.honest.output();
            if !wire.is_empty() {
                moved = true;
                let mut out = Vec::new();
                let secrets = self.honest_secrets();
                self.relay.forward(&wire, &secrets, &mut out);
                self.victim.deliver(&out);
            }
            let wire = self.victim.output();
            if !wire.is_empty() {
                moved = true;
                self.honest.deliver(&wire);
            }
            if !moved {
                return;
            }
        }
    }

    fn inject(&mut self, typ: ContentType, content: &[u8]) {
        // What the honest side queued goes first (sequence numbers).
        self.pump();
        let secrets = self.honest_secrets();
        let mut out = Vec::new();
        self.relay.inject(typ, content, &secrets, &mut out);
        self.victim.deliver(&out);
    }

    fn apply(&mut self, op: Op, updates: &mut usize) {
        match op {
            Op::Pump => self.pump(),
            Op::HonestData(n) => {
                let _ = self.honest.conn.writer().write(&vec![b'h'; usize::from(n)]);
            }
            Op::VictimData(n) => {
                let _ = self.victim.conn.writer().write(&vec![b'v'; usize::from(n)]);
            }
            Op::HonestUpdate | Op::VictimUpdate if *updates >= MAX_UPDATES => {}
            Op::HonestUpdate => {
                *updates += 1;
                if let Err(e) = self.honest.conn.request_key_update() {
                    local_error(e);
                }
            }
            Op::VictimUpdate => {
                *updates += 1;
                if let Err(e) = self.victim.conn.request_key_update() {
                    local_error(e);
                }
            }
            Op::InjectHandshake(typ, body) => {
                let mut content = vec![typ];
                content.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
                content.extend_from_slice(&body);
                self.inject(ContentType::Handshake, &content);
            }
            Op::InjectHandshakeBytes(b) => self.inject(ContentType::Handshake, &b),
            Op::InjectData(b) => self.inject(ContentType::ApplicationData, &b),
            Op::InjectAlert(a) => self.inject(ContentType::Alert, &a),
            Op::InjectRaw(b) => {
                self.pump();
                self.victim.deliver(&b);
            }
            Op::Replay(i) => {
                if !self.relay.seen.is_empty() {
                    let content = self.relay.seen[usize::from(i) % self.relay.seen.len()].clone();
                    self.inject(ContentType::Handshake, &content);
                }
            }
            Op::MutateNext(pos, xor) => self.relay.mutate = Some((pos, xor)),
            Op::DropNext => self.relay.drop_next = true,
            Op::Advance(s) => {
                self.clock.advance(Duration::from_secs(u64::from(s)));
                let now = mls_tls::time::Clock::now(&*self.clock);
                for side in [&mut self.honest, &mut self.victim] {
                    if side.alive() {
                        if let Err(e) = side.conn.handle_timeout(now) {
                            side.error = Some(e);
                        }
                    }
                }
            }
            Op::HonestClose => {
                self.closed = true;
                self.honest.conn.send_close_notify();
            }
            Op::VictimClose => {
                self.closed = true;
                self.victim.conn.send_close_notify();
            }
        }
    }
}

/// An API call refused or failed: refusals are fine; anything else is a
/// local failure the peer's input must not be able to cause.
fn local_error(e: Error) {
    if !matches!(e, Error::ApiMisuse(_)) {
        check_peer_error(&e);
    }
}

/// How a run ended, for tests of the harness itself.
#[derive(Debug)]
pub struct Outcome {
    /// The error that ended the victim, if any.
    pub victim_error: Option<Error>,
    /// The error that ended the honest side, if any.
    pub honest_error: Option<Error>,
    /// The victim's epoch at the end.
    pub victim_epoch: Option<u64>,
}

/// The target.
pub fn run(data: &[u8]) {
    let _ = run_outcome(data);
}

/// The target, reporting how the run ended (`None` for empty input).
pub fn run_outcome(data: &[u8]) -> Option<Outcome> {
    let (&flags, script) = data.split_first()?;
    let mut pair = Pair::new(flags & 1 == 1);
    let id: SessionId = pair
        .victim
        .conn
        .session_id()
        .expect("established victim has a session")
        .clone();
    let mut updates = 0;
    for op in parse(script) {
        pair.apply(op, &mut updates);
    }
    pair.pump();
    // A drop or mutation still armed would hit the liveness check's data.
    pair.relay.drop_next = false;
    pair.relay.mutate = None;
    for side in [&pair.honest, &pair.victim] {
        if let Some(e) = &side.error {
            check_peer_error(e);
        }
    }
    check_session_kept(&pair.victim.backend, &id, pair.victim.error.as_ref());
    // The alert the victim's error maps to is the one that reached the
    // honest side (SPEC 9).
    if let (Some(e), Some(Error::AlertReceived(got))) = (&pair.victim.error, &pair.honest.error) {
        if let Some(sent) = e.alert() {
            assert_eq!(*got, sent, "victim closed with {e:?} but sent {got:?}");
        }
    }

    // Still up on both sides and no direction closed: data must flow
    // both ways, and both must agree on the epoch once Synced.
    let peer_closed = |s: &mut Side| {
        s.conn
            .process_new_packets()
            .map_or(true, |state| state.peer_has_closed)
    };
    let up = pair.honest.alive()
        && pair.victim.alive()
        && !pair.closed
        && !peer_closed(&mut pair.honest)
        && !peer_closed(&mut pair.victim);
    if up {
        let (h0, v0) = (pair.honest.received.len(), pair.victim.received.len());
        let _ = pair.honest.conn.writer().write(b"liveness-from-honest");
        let _ = pair.victim.conn.writer().write(b"liveness-from-victim");
        pair.pump();
        if pair.honest.alive() && pair.victim.alive() {
            assert!(
                pair.victim.received[v0..].ends_with(b"liveness-from-honest"),
                "victim stopped receiving without an error: {}",
                pair.describe()
            );
            assert!(
                pair.honest.received[h0..].ends_with(b"liveness-from-victim"),
                "victim stopped sending without an error: {}",
                pair.describe()
            );
            if pair.honest.conn.profile_state() == State::Synced
                && pair.victim.conn.profile_state() == State::Synced
            {
                assert_eq!(
                    pair.honest.conn.epoch(),
                    pair.victim.conn.epoch(),
                    "both Synced in different epochs"
                );
            }
        } else {
            for side in [&pair.honest, &pair.victim] {
                if let Some(e) = &side.error {
                    check_peer_error(e);
                }
            }
        }
    }
    Some(Outcome {
        victim_error: pair.victim.error.clone(),
        honest_error: pair.honest.error.clone(),
        victim_epoch: pair.victim.conn.epoch(),
    })
}
