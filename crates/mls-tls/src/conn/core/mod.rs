//! The sans-I/O connection core shared by both sides: joins the record
//! layer and the profile engine and applies SPEC sections 6-9 on the wire.

use std::io;
use std::sync::Arc;
use std::time::Instant;

mod timers;

use self::timers::StoreRetry;
pub use self::timers::CONFIRM_CAP;
use super::buffer::ByteQueue;
use super::config::CommonConfig;
use crate::alert::{Alert, AlertDescription, AlertLevel};
use crate::credentials::{Identity, PeerIdentity};
use crate::crypto::CipherSuite;
use crate::error::{Error, PeerMisbehaved};
use crate::message::{HandshakeJoiner, HandshakeMessage, HandshakeType};
use crate::profile::engine::{Engine, EpochSecret, Event, State};
use crate::record::{write_plaintext, ContentType, Deframer, RecordOpener, RecordSealer};
use crate::schedule::Side;
use crate::store::SessionId;

/// What [`ConnectionCore::process_new_packets`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoState {
    /// Bytes waiting to be written with `write_tls`.
    pub tls_bytes_to_write: usize,
    /// Plaintext bytes waiting to be read from `reader()`.
    pub plaintext_bytes_to_read: usize,
    /// Whether the peer sent `close_notify`.
    pub peer_has_closed: bool,
}

/// Early data on this connection (SPEC 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EarlyData {
    /// Not a resumption, or the window is over.
    None,
    /// Client: may send this many more early bytes; `accepted` once the
    /// response arrived.
    Sending { remaining: usize },
    /// Client: the resumption response arrived encrypted under the new
    /// epoch's keys, so the early data was delivered (SPEC 8).
    Accepted,
    /// Client: the response arrived in plaintext: the early data was not
    /// delivered and the application should send it again.
    Rejected,
    /// Server: between the ResumptionRequest and its EpochKeyUpdate;
    /// application data is early. Delivered only when `allowed` (a fresh
    /// request answered under its epoch's keys), else decrypted and
    /// discarded (SPEC 8).
    Receiving { allowed: bool, seen: usize },
}

/// The state every MLS-TLS connection has, whatever its side. Reached
/// through `ClientConnection` and `ServerConnection`.
///
/// Call order, as in rustls: feed received bytes with
/// [`read_tls`](Self::read_tls), then call
/// [`process_new_packets`](Self::process_new_packets); read plaintext from
/// [`reader`](Self::reader), write plaintext to [`writer`](Self::writer);
/// whenever [`wants_write`](Self::wants_write), move bytes out with
/// [`write_tls`](Self::write_tls). Read only while
/// [`wants_read`](Self::wants_read): received plaintext is bounded (64 KiB
/// by default) and so is what `writer()` takes before `write_tls` (writes
/// are short beyond it, as rustls's). Time is an input, as in quinn-proto:
/// when [`poll_timeout`](Self::poll_timeout) gives a deadline, call
/// [`handle_timeout`](Self::handle_timeout) when it passes, even if no
/// byte arrived (the blocking and tokio adapters do all of this).
pub struct ConnectionCore {
    pub(crate) common: CommonConfig,
    pub(crate) engine: Engine,
    deframer: Deframer,
    opener: RecordOpener,
    sealer: RecordSealer,
    joiner: HandshakeJoiner,
    sendable: Vec<u8>,
    sendable_start: usize,
    received: ByteQueue,
    pub(crate) early_received: ByteQueue,
    /// Application data accepted from the caller before it may be sent.
    pending: Vec<u8>,
    pub(crate) early: EarlyData,
    error: Option<Error>,
    peer_closed: bool,
    sent_close: bool,
    /// `send_close_notify` had to fail the connection instead.
    close_refused: bool,
    last_update: Instant,
    bytes_since_update: u64,
    started: Instant,
    /// Whether the last handshake record received was encrypted (the
    /// form of a ResumptionResponse decides early-data acceptance, SPEC 8).
    handshake_encrypted: bool,
    /// TLS bytes taken by `write_tls` so far.
    written_total: u64,
    /// Our ConnectionUpdate waits for its EpochKeyUpdate: where it ends in
    /// the outgoing byte stream, until `write_tls` has written it.
    update_ends_at: Option<u64>,
    /// When our ConnectionUpdate left (was written by `write_tls`): the
    /// confirmation timeout counts from here (SPEC 9a).
    update_sent: Option<Instant>,
    /// When the peer last showed progress while our update waits.
    peer_progress: Option<Instant>,
    /// When (and at which `written_total`) a blocking adapter last looked
    /// for incoming handshake messages while the application only writes.
    last_peek: Option<(Instant, u64)>,
    /// The peer's key update waits for the session store: when to try
    /// again, and the wait after the next failure.
    store_retry: StoreRetry,
    /// Our own key update could not be stored: not before this again,
    /// and the wait after the next failure.
    update_retry: StoreRetry,
    /// The epoch of the receive keys in use, and of the candidate: keys
    /// for an epoch already received on are not installed again (the
    /// engine repeats them when a waiting EpochKeyUpdate lands).
    recv_epoch: Option<u64>,
    candidate_epoch: Option<u64>,
}

impl core::fmt::Debug for ConnectionCore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConnectionCore")
            .field("engine", &self.engine)
            .field("handshaking", &self.is_handshaking())
            .field("early", &self.early)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl ConnectionCore {
    pub(crate) fn new(common: CommonConfig, engine: Engine) -> Self {
        let now = common.clock.now();
        let mut sealer = RecordSealer::new();
        sealer.set_padding(common.padding);
        let joiner = HandshakeJoiner::new(common.max_handshake_len);
        Self {
            common,
            engine,
            deframer: Deframer::new(),
            opener: RecordOpener::new(),
            sealer,
            joiner,
            sendable: Vec::new(),
            sendable_start: 0,
            received: ByteQueue::default(),
            early_received: ByteQueue::default(),
            pending: Vec::new(),
            early: EarlyData::None,
            error: None,
            peer_closed: false,
            sent_close: false,
            close_refused: false,
            last_update: now,
            bytes_since_update: 0,
            started: now,
            handshake_encrypted: false,
            written_total: 0,
            update_ends_at: None,
            update_sent: None,
            peer_progress: None,
            last_peek: None,
            store_retry: StoreRetry::new(),
            update_retry: StoreRetry::new(),
            recv_epoch: None,
            candidate_epoch: None,
        }
    }

    /// Carries out the first events of a new engine (a ClientHello, or a
    /// ResumptionRequest with its keys).
    pub(crate) fn start(&mut self, events: Vec<Event>) -> Result<(), Error> {
        self.apply(events)
    }

    /// Reads TLS bytes from `rd` once. Returns 0 at end of stream.
    ///
    /// Reads only into the record buffer's free space (two maximal
    /// records); fails with `io::ErrorKind::Other` when that is full of
    /// records not processed yet, which happens while received plaintext
    /// is at its limit: check [`wants_read`](Self::wants_read) first.
    pub fn read_tls(&mut self, rd: &mut dyn io::Read) -> io::Result<usize> {
        self.deframer.read_from(rd)
    }

    /// Processes every complete record received (as far as the receive
    /// buffer limit allows), then judges the timers against the clock. On
    /// a fatal error the alert for it is queued for `write_tls`, and the
    /// same error is returned from now on.
    pub fn process_new_packets(&mut self) -> Result<IoState, Error> {
        let now = self.common.clock.now();
        self.advance(now)?;
        Ok(self.io_state())
    }

    /// Processes received records, then judges the timers at `now`.
    fn advance(&mut self, now: Instant) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.engine.is_superseded() {
            return Err(self.fail(Error::Superseded));
        }
        if let Err(e) = self.process_records() {
            return Err(self.fail(e));
        }
        // Idle connections keep no buffers (rustls does the same).
        self.deframer.release_if_empty();
        if let Err(e) = self.check_timeouts(now) {
            return Err(self.fail(e));
        }
        Ok(())
    }

    fn io_state(&self) -> IoState {
        IoState {
            tls_bytes_to_write: self.sendable.len() - self.sendable_start,
            plaintext_bytes_to_read: self.received.len(),
            peer_has_closed: self.peer_closed,
        }
    }

    /// Records the error, queues its alert, and returns it.
    fn fail(&mut self, e: Error) -> Error {
        tracing::info!(
            session = ?self.engine.session_id().map(ToString::to_string),
            epoch = ?self.engine.epoch(),
            alert = ?e.alert(),
            error = %e,
            "connection closed"
        );
        if let Some(description) = e.alert() {
            let level = if description == AlertDescription::CloseNotify {
                AlertLevel::Warning
            } else {
                AlertLevel::Fatal
            };
            self.send_alert(Alert { level, description });
        }
        self.error = Some(e.clone());
        e
    }

    fn send_alert(&mut self, alert: Alert) {
        let bytes = alert.encode();
        let r = if self.sealer.is_encrypting() {
            self.sealer
                .seal(ContentType::Alert, &bytes, &mut self.sendable)
        } else {
            write_plaintext(ContentType::Alert, &bytes, &mut self.sendable)
        };
        // If even the alert cannot be sealed (key used up), the peer sees
        // the connection close without it.
        let _ = r;
    }

    /// Tries the peer's waiting key update again once its time has come
    /// (the session store failed; see `Engine::handle`).
    fn retry_store(&mut self, now: Instant) -> Result<(), Error> {
        if !self.engine.has_deferred() {
            self.store_retry.clear();
            return Ok(());
        }
        if self.store_retry.waiting(now) {
            return Ok(());
        }
        let events = self
            .engine
            .retry_deferred(self.common.clock.system_time())?;
        self.apply(events)?;
        if self.engine.has_deferred() {
            let retry_in = self.store_retry.failed(now);
            tracing::warn!(?retry_in, "session store still unavailable");
        } else {
            tracing::info!(
                epoch = ?self.engine.epoch(),
                "session store back: the peer's waiting messages are applied"
            );
            self.store_retry = StoreRetry::new();
        }
        Ok(())
    }

    fn process_records(&mut self) -> Result<(), Error> {
        let now = self.common.clock.system_time();
        self.retry_store(self.common.clock.now())?;
        loop {
            if self.peer_closed {
                // Nothing after close_notify counts (SPEC 9).
                self.deframer.discard();
                return Ok(());
            }
            if self.receive_blocked() {
                // The application reads first; the records wait (SPEC 9a).
                return Ok(());
            }
            let mut handshake = false;
            let mut alert = None;
            let mut data_len = None;
            {
                let Some(record) = self.deframer.next_record()? else {
                    break;
                };
                let had_candidate = self.opener.has_candidate();
                let msg = self.opener.open(record)?;
                if had_candidate && !self.opener.has_candidate() {
                    self.recv_epoch = self.candidate_epoch.take();
                    self.joiner.check_key_change()?;
                }
                match msg.typ {
                    ContentType::Handshake => {
                        self.joiner.push(msg.payload)?;
                        self.handshake_encrypted = msg.encrypted;
                        handshake = true;
                    }
                    ContentType::Alert => {
                        alert = Some((Alert::decode(msg.payload)?, msg.encrypted))
                    }
                    ContentType::ApplicationData => {
                        if !msg.encrypted {
                            return Err(PeerMisbehaved::PlaintextApplicationData.into());
                        }
                        let len = msg.payload.len();
                        match &mut self.early {
                            EarlyData::Receiving { allowed, seen } => {
                                *seen += len;
                                if *seen > self.common.max_early_data {
                                    return Err(PeerMisbehaved::TooMuchEarlyData.into());
                                }
                                // Early data answered without its epoch's
                                // keys (rule 1, or a plaintext response) is
                                // never delivered (SPEC 8).
                                if *allowed {
                                    self.early_received.extend(msg.payload);
                                }
                            }
                            _ => self.received.extend(msg.payload),
                        }
                        data_len = Some(len);
                    }
                }
            }
            // An authenticated record from the peer: it is alive, in order.
            self.note_peer_progress();
            if handshake {
                while let Some(m) = self.joiner.next_message()? {
                    if self.sent_close && m.typ == HandshakeType::ConnectionUpdate {
                        // It could never be confirmed (SPEC 9).
                        tracing::debug!("ConnectionUpdate after our close_notify ignored");
                        continue;
                    }
                    let events = self.engine.handle(m, now)?;
                    self.apply(events)?;
                    if self.engine.has_deferred() && self.store_retry.at().is_none() {
                        self.store_retry.failed(self.common.clock.now());
                    }
                }
            }
            if let Some((alert, encrypted)) = alert {
                if alert.is_close_notify() && !encrypted {
                    return Err(Error::UnauthenticatedClose);
                }
                if alert.is_close_notify() {
                    self.on_peer_close_notify()?;
                } else {
                    return Err(Error::AlertReceived(alert.description));
                }
            }
            if let Some(len) = data_len {
                self.bytes_since_update += len as u64;
                // May confirm a provisional session (SPEC 6).
                let events = self.engine.on_peer_application_data(now)?;
                self.apply(events)?;
                // A side that only receives updates too (SPEC 7: bytes sent
                // plus received).
                self.maybe_update()?;
            }
        }
        Ok(())
    }

    /// The peer ended its direction (SPEC 9): later records are discarded,
    /// and a ConnectionUpdate of ours that it can no longer confirm is
    /// dropped as a stored transition.
    fn on_peer_close_notify(&mut self) -> Result<(), Error> {
        tracing::debug!(epoch = ?self.engine.epoch(), "peer sent close_notify");
        self.peer_closed = true;
        let events = self
            .engine
            .on_peer_closed(self.common.clock.system_time())?;
        self.apply(events)?;
        self.track_update();
        Ok(())
    }

    /// Carries out the engine's events in order.
    fn apply(&mut self, events: Vec<Event>) -> Result<(), Error> {
        for event in events {
            match event {
                // After our close_notify nothing more leaves (SPEC 9); a
                // stored pending commit is resent by a resumption.
                Event::Send(_) if self.sent_close => {}
                Event::Send(m) => {
                    self.send_handshake(&m)?;
                    if m.typ == HandshakeType::ConnectionUpdate {
                        self.update_ends_at = Some(self.written_total + self.queued_len() as u64);
                        self.update_sent = None;
                    }
                }
                Event::InstallSendKeys(s) => {
                    self.log_secret(&s, self.engine.side());
                    self.sealer.install(s.secret.derive_keys(s.suite.aead())?)?;
                    self.last_update = self.common.clock.now();
                    self.bytes_since_update = 0;
                }
                // Already receiving under this epoch's keys (a candidate the
                // peer moved to while its EpochKeyUpdate waited for the
                // store): installing again would reset the sequence.
                Event::InstallReceiveKeys(s) if self.recv_epoch == Some(s.epoch) => {}
                Event::InstallReceiveKeys(s) => {
                    self.log_secret(&s, self.engine.side().peer());
                    self.joiner.check_key_change()?;
                    self.opener.install(s.secret.derive_keys(s.suite.aead())?)?;
                    self.recv_epoch = Some(s.epoch);
                    self.candidate_epoch = None;
                }
                Event::CandidateReceiveKeys(s) if self.recv_epoch == Some(s.epoch) => {}
                Event::CandidateReceiveKeys(s) => {
                    self.log_secret(&s, self.engine.side().peer());
                    self.opener
                        .set_candidate(s.secret.derive_keys(s.suite.aead())?)?;
                    self.candidate_epoch = Some(s.epoch);
                }
                Event::Established => {
                    self.early = match self.early {
                        // Only a response under the new epoch's keys shows
                        // that the early data was delivered (SPEC 8).
                        EarlyData::Sending { .. } if self.handshake_encrypted => {
                            EarlyData::Accepted
                        }
                        EarlyData::Sending { .. } => EarlyData::Rejected,
                        // A responder's early-data window ends with the
                        // EpochKeyUpdate.
                        EarlyData::Receiving { .. } => EarlyData::None,
                        other => other,
                    };
                }
                // Nothing after our close_notify (SPEC 9): the responder's
                // provisional session then lapses, unconfirmed.
                Event::ConfirmJoin if self.sent_close => {}
                Event::ConfirmJoin => {
                    self.sealer
                        .seal(ContentType::ApplicationData, &[], &mut self.sendable)?;
                }
                Event::EarlyDataWindow => {
                    self.early = EarlyData::Sending {
                        remaining: self.common.max_early_data,
                    };
                }
                Event::Resumed { early_data_allowed } => {
                    self.early = EarlyData::Receiving {
                        allowed: early_data_allowed,
                        seen: 0,
                    };
                }
            }
        }
        self.flush_pending()
    }

    fn log_secret(&self, s: &EpochSecret, direction: Side) {
        if let (Some(log), Some(id)) = (&self.common.key_log, self.engine.session_id()) {
            let label = match direction {
                Side::Client => "MLSTLS_CLIENT_TRAFFIC_SECRET",
                Side::Server => "MLSTLS_SERVER_TRAFFIC_SECRET",
            };
            log.log(label, &id.0, s.epoch, s.secret.secret_bytes());
        }
    }

    fn send_handshake(&mut self, m: &HandshakeMessage) -> Result<(), Error> {
        let bytes = m.encode();
        if self.sealer.is_encrypting() {
            self.sealer
                .seal(ContentType::Handshake, &bytes, &mut self.sendable)
        } else {
            write_plaintext(ContentType::Handshake, &bytes, &mut self.sendable)
        }
    }

    /// Whether application data may be sealed now: after the handshake, as
    /// early data, or (server) as 0.5-RTT data under the keys it installed.
    pub(crate) fn may_send_data(&self) -> bool {
        if !self.sealer.is_encrypting() || !self.engine.may_send_application_data() {
            return false;
        }
        match self.early {
            EarlyData::Sending { remaining } => remaining > 0,
            _ => true,
        }
    }

    fn flush_pending(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() || !self.may_send_data() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let sent = self.send_data(&pending)?;
        self.pending = pending[sent..].to_vec();
        Ok(())
    }

    /// Seals as much of `data` as may be sent now; returns how much.
    fn send_data(&mut self, data: &[u8]) -> Result<usize, Error> {
        if !self.may_send_data() {
            return Ok(0);
        }
        self.maybe_update()?;
        let n = match &mut self.early {
            EarlyData::Sending { remaining } => {
                let n = data.len().min(*remaining);
                *remaining -= n;
                n
            }
            _ => data.len(),
        };
        self.sealer
            .seal(ContentType::ApplicationData, &data[..n], &mut self.sendable)?;
        self.bytes_since_update += n as u64;
        Ok(n)
    }

    /// Starts a key update when the policy or the usage limit asks (SPEC 7).
    fn maybe_update(&mut self) -> Result<(), Error> {
        let now = self.common.clock.now();
        if !self.may_start_update() || self.update_retry.waiting(now) {
            return Ok(());
        }
        let policy = self.common.update_policy;
        let due = self.sealer.wants_update()
            || policy
                .interval
                .is_some_and(|i| now.saturating_duration_since(self.last_update) >= i)
            || policy.bytes.is_some_and(|b| self.bytes_since_update >= b);
        if due {
            let events = match self.engine.start_update(self.common.clock.system_time()) {
                Ok(events) => events,
                Err(Error::Store(why)) => {
                    // Nothing stored, nothing sent (SPEC 10): data goes on
                    // under the current keys, and the update is tried again.
                    let retry_in = self.update_retry.failed(now);
                    tracing::warn!(
                        error = %why,
                        ?retry_in,
                        "session store unavailable: key update postponed"
                    );
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            self.update_retry = StoreRetry::new();
            // Until the update is confirmed the counters keep running; do
            // not ask again for the same reason.
            self.bytes_since_update = 0;
            self.last_update = now;
            self.apply(events)?;
        }
        Ok(())
    }

    /// Whether a ConnectionUpdate may start: established, Synced, and
    /// neither direction closed (SPEC 9: after our close_notify nothing
    /// leaves; after the peer's it could never be confirmed).
    fn may_start_update(&self) -> bool {
        self.engine.may_start_update() && !self.sent_close && !self.peer_closed
    }

    /// TLS bytes queued and not yet taken by `write_tls`.
    fn queued_len(&self) -> usize {
        self.sendable.len() - self.sendable_start
    }

    /// Queues plaintext to send (used by the writer).
    pub(crate) fn write_plaintext(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.error {
            return Err(io::Error::other(e.clone()));
        }
        if self.sent_close {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "close_notify already sent",
            ));
        }
        if self.engine.is_superseded() {
            return Err(io::Error::other(self.fail(Error::Superseded)));
        }
        // Bounded (SPEC 9a): a short write, `Ok(0)` when full, as rustls.
        let data = &data[..data.len().min(self.send_room())];
        if data.is_empty() {
            return Ok(0);
        }
        let sent = if self.pending.is_empty() {
            match self.send_data(data) {
                Ok(n) => n,
                Err(e) => return Err(io::Error::other(self.fail(e))),
            }
        } else {
            0
        };
        self.pending.extend_from_slice(&data[sent..]);
        Ok(data.len())
    }

    /// Writes queued TLS bytes to `wr` once; returns how many were written.
    pub fn write_tls(&mut self, wr: &mut dyn io::Write) -> io::Result<usize> {
        let n = wr.write(&self.sendable[self.sendable_start..])?;
        self.sendable_start += n;
        self.written_total += n as u64;
        if self
            .update_ends_at
            .is_some_and(|end| self.written_total >= end)
        {
            // Our ConnectionUpdate left: its confirmation timer starts.
            self.update_ends_at = None;
            self.update_sent = Some(self.common.clock.now());
            self.peer_progress = None;
        } else if n > 0 {
            // The transport took bytes: the peer reads.
            self.note_peer_progress();
        }
        if self.sendable_start == self.sendable.len() {
            // Everything sent: free the buffer rather than keep it idle.
            self.sendable = Vec::new();
            self.sendable_start = 0;
        } else if self.sendable_start > self.sendable.len() / 2 {
            // Keep a partly drained buffer from growing at its tail.
            self.sendable.drain(..self.sendable_start);
            self.sendable_start = 0;
        }
        Ok(n)
    }

    /// Whether TLS bytes wait to be written.
    pub fn wants_write(&self) -> bool {
        self.sendable_start < self.sendable.len()
    }

    /// Whether more TLS bytes should be read: not after a fatal error or
    /// the peer's `close_notify`, and not while received plaintext is at
    /// its limit (read it first, SPEC 9a).
    pub fn wants_read(&self) -> bool {
        self.error.is_none() && !self.peer_closed && !self.receive_blocked()
    }

    /// Whether the handshake (or resumption) is still in progress. A
    /// provisional server session stays handshaking until confirmed.
    pub fn is_handshaking(&self) -> bool {
        !self.engine.is_established()
    }

    /// Whether data written now goes out as early data on a resumption.
    pub fn is_early_data_window(&self) -> bool {
        matches!(self.early, EarlyData::Sending { remaining } if remaining > 0)
    }

    /// Queued plaintext, for the reader.
    pub(crate) fn received(&mut self) -> &mut ByteQueue {
        &mut self.received
    }

    /// The configured clock, for adapters that drive the timers.
    pub(crate) fn clock(&self) -> &Arc<dyn crate::time::Clock> {
        &self.common.clock
    }

    /// Whether received bytes wait in the record buffer.
    pub(crate) fn has_unprocessed_input(&self) -> bool {
        self.deframer.buffered_len() > 0
    }

    pub(crate) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    pub(crate) fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Why `send_close_notify` could not close cleanly, if it could not.
    pub(crate) fn close_refused(&self) -> Option<&Error> {
        self.error.as_ref().filter(|_| self.close_refused)
    }

    /// Sends `close_notify`: this side will send nothing more. Queued
    /// plaintext that could not be sent yet is dropped.
    ///
    /// If the peer's key update waits for an unavailable session store and
    /// may have been stored, the connection fails instead (its
    /// [`Error::Store`] and alert): a close_notify would make the peer drop
    /// the update the store may keep, and the session could never resume.
    pub fn send_close_notify(&mut self) {
        if !self.sent_close {
            self.sent_close = true;
            self.pending.clear();
            // A waiting ConnectionUpdate could never be confirmed now.
            let now = self.common.clock.system_time();
            if let Err(e) = self.engine.drop_deferred_updates(now) {
                self.close_refused = true;
                self.fail(e);
                return;
            }
            self.send_alert(Alert::CLOSE_NOTIFY);
        }
    }

    /// Ends the session for good: sends `close_notify` and deletes the
    /// stored session (SPEC 9).
    pub fn terminate(&mut self) -> Result<(), Error> {
        // The session goes first: once it is deleted, a waiting update of
        // the peer's no longer needs keeping, and close_notify may go out
        // (see `send_close_notify`).
        let ended = self.engine.terminate();
        self.send_close_notify();
        ended
    }

    /// Starts a key update now (SPEC 7).
    ///
    /// Errors: `ApiMisuse` (nothing sent) while the handshake is not
    /// complete, while an update is pending, after either side's
    /// `close_notify` (SPEC 9), or after a fatal error; a store or MLS
    /// failure closes the connection.
    pub fn request_key_update(&mut self) -> Result<(), Error> {
        if self.error.is_some() || !self.may_start_update() {
            return Err(Error::ApiMisuse(
                "a key update needs an established, Synced connection with both directions open",
            ));
        }
        match self.engine.start_update(self.common.clock.system_time()) {
            // The session store is unavailable: nothing was stored or sent
            // (SPEC 10), and the connection goes on; try again later.
            Err(e @ Error::Store(_)) => Err(e),
            result => result
                .and_then(|events| self.apply(events))
                .map_err(|e| self.fail(e)),
        }
    }

    /// Installs a new identity of ours (e.g. a renewed certificate for the
    /// same subject, maybe with a new key) at the next key update's
    /// UpdatePath leaf; call [`Self::request_key_update`] to send it now.
    /// The peer's verifier checks it like any update. To resume the session
    /// later, add the new identity to the configuration.
    pub fn rotate_identity(&mut self, identity: Identity) -> Result<(), Error> {
        self.engine.rotate_identity(Arc::new(identity))
    }

    /// The current MLS epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.engine.epoch()
    }

    /// The session id (MLS group id).
    pub fn session_id(&self) -> Option<&SessionId> {
        self.engine.session_id()
    }

    /// The peer's identity (only claimed while a new server session is
    /// provisional).
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.engine.peer_identity()
    }

    /// The negotiated ciphersuite.
    pub fn suite(&self) -> Option<CipherSuite> {
        self.engine.suite()
    }

    /// The profile state.
    pub fn profile_state(&self) -> State {
        self.engine.state()
    }
}
