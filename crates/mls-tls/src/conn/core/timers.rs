//! Timers and buffer limits of a connection (SPEC 7, 9a): the deadlines
//! it reports and judges, and how much it holds in either direction.

use std::time::{Duration, Instant};

use super::ConnectionCore;
use crate::error::Error;

/// However the peer progresses, an update must be confirmed within this
/// many confirmation timeouts after it left.
pub const CONFIRM_CAP: u32 = 10;

/// How far handshake answers may take the queued TLS bytes beyond the send
/// buffer limit before input waits for output to drain.
const OUTPUT_MARGIN: usize = 64 * 1024;

impl ConnectionCore {
    /// When this connection next needs [`handle_timeout`](Self::handle_timeout)
    /// if nothing else happens: the handshake deadline while handshaking;
    /// while our ConnectionUpdate waits for its EpochKeyUpdate,
    /// `confirm_timeout` after it left or after the peer last showed
    /// progress (a record arrived, or the transport took our bytes),
    /// whichever is later, but never more than [`CONFIRM_CAP`] times
    /// `confirm_timeout` after it left. `None`: no timer runs (SPEC 9a;
    /// `docs/PROTOCOL.md` says why progress counts).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        if self.is_handshaking() {
            return Some(self.started + self.common.handshake_timeout);
        }
        let retry = self.store_retry.at().filter(|_| self.engine.has_deferred());
        let Some(sent) = self.update_sent else {
            return retry;
        };
        let timeout = self.common.update_policy.confirm_timeout;
        let from = self.peer_progress.map_or(sent, |p| p.max(sent));
        let confirm = (from + timeout).min(sent + timeout * CONFIRM_CAP);
        Some(retry.map_or(confirm, |r| r.min(confirm)))
    }

    /// Notes that the peer showed it is alive and in order while our
    /// update waits: its EpochKeyUpdate is behind what it already sent or
    /// has yet to read, and nobody on the path can hold it back without
    /// breaking the record sequence.
    pub(super) fn note_peer_progress(&mut self) {
        if self.update_sent.is_some() {
            self.peer_progress = Some(self.common.clock.now());
        }
    }

    /// Tells the connection that the time is `now`: processes every record
    /// already received first, then closes a handshake that took too long
    /// (a provisional session is dropped, SPEC 6) or a key update that was
    /// not confirmed in time (the session is kept for resumption, SPEC 7).
    /// Returns the error that closed the connection, if any; its alert (if
    /// it has one) is then queued for `write_tls`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.advance(now)
    }

    /// Judged only after every byte already received was processed
    /// (SPEC 9a).
    pub(super) fn check_timeouts(&mut self, now: Instant) -> Result<(), Error> {
        self.retry_store(now)?;
        self.track_update();
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => Err(if self.is_handshaking() {
                Error::Timeout("handshake not completed in time")
            } else if self.receive_blocked() {
                // Loud about our own part: the confirmation may be behind
                // data our application did not read (PROTOCOL.md).
                Error::Timeout(
                    "key update not confirmed in time, with received data unread by the \
                     application (the confirmation may be behind it)",
                )
            } else {
                Error::Timeout("key update not confirmed in time")
            }),
            _ => Ok(()),
        }
    }

    /// Forgets the confirmation timer once no update of ours is pending.
    pub(super) fn track_update(&mut self) {
        // A confirmation that arrived and waits for the store is one.
        if !self.engine.awaits_confirmation() || self.peer_closed {
            self.update_ends_at = None;
            self.update_sent = None;
            self.peer_progress = None;
        }
    }

    /// Whether received plaintext is at its limit, so further records wait
    /// for the application to read.
    pub(super) fn receive_blocked(&self) -> bool {
        self.received.len() >= self.common.receive_buffer_limit.max(1) || self.output_backed_up()
    }

    /// Whether our output is backed up beyond what writes can cause: only
    /// answers to the peer's messages (EpochKeyUpdates, alerts) get it
    /// there, so a peer that sends updates but never reads is not served
    /// more until it reads (rustls caps its queued KeyUpdates likewise).
    pub(super) fn output_backed_up(&self) -> bool {
        self.common
            .send_buffer_limit
            .is_some_and(|limit| self.queued_len() >= limit.max(1) + OUTPUT_MARGIN)
    }

    /// Whether a blocking adapter should look for incoming handshake
    /// messages now: `bytes` written or `every` passed since it last did.
    pub(crate) fn peek_due(&mut self, bytes: u64, every: std::time::Duration) -> bool {
        let now = self.common.clock.now();
        let due = match self.last_peek {
            None => true,
            Some((at, written)) => {
                self.written_total.saturating_sub(written) >= bytes
                    || now.saturating_duration_since(at) >= every
            }
        };
        if due {
            self.last_peek = Some((now, self.written_total));
        }
        due
    }

    /// Whether an update of ours left and waits for its EpochKeyUpdate:
    /// an adapter then keeps reading even if the application does not.
    pub(crate) fn awaits_confirmation(&self) -> bool {
        self.update_sent.is_some()
    }

    /// Whether input waits because received plaintext is at its limit (the
    /// application must read) rather than for the output to drain.
    pub(crate) fn plaintext_full(&self) -> bool {
        self.received.len() >= self.common.receive_buffer_limit.max(1)
    }

    /// How many more plaintext bytes the send buffer limit lets in.
    pub(super) fn send_room(&self) -> usize {
        match self.common.send_buffer_limit {
            None => usize::MAX,
            // A limit of 0 would never let a byte through: at least 1.
            Some(limit) => limit
                .max(1)
                .saturating_sub(self.queued_len() + self.pending.len()),
        }
    }

    /// Limits plaintext written but not yet sent (with TLS bytes not yet
    /// taken by `write_tls`) to `limit` bytes; `None` removes the limit.
    /// Like rustls's `set_buffer_limit`; default from the configuration
    /// (64 KiB).
    pub fn set_buffer_limit(&mut self, limit: Option<usize>) {
        self.common.send_buffer_limit = limit;
    }
}

/// How long a connection first waits before trying the session store
/// again after it failed (the store is down or unreachable); the wait
/// doubles with each failure up to [`STORE_RETRY_MAX`].
const STORE_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between tries of an unavailable session store: one
/// try costs the store's own timeout when the database does not answer.
const STORE_RETRY_MAX: Duration = Duration::from_secs(8);

/// When to try an unavailable session store again: the first wait is
/// [`STORE_RETRY`], and each failure doubles it up to [`STORE_RETRY_MAX`].
#[derive(Debug, Clone, Copy)]
pub(super) struct StoreRetry {
    at: Option<Instant>,
    wait: Duration,
}

impl StoreRetry {
    pub(super) fn new() -> Self {
        Self {
            at: None,
            wait: STORE_RETRY,
        }
    }

    /// The store failed at `now`: the next try is due after the current
    /// wait, which then doubles. Returns that wait.
    pub(super) fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.wait;
        self.at = Some(now + wait);
        self.wait = (wait * 2).min(STORE_RETRY_MAX);
        wait
    }

    /// Nothing is due any more (the wait is kept for the next failure).
    pub(super) fn clear(&mut self) {
        self.at = None;
    }

    /// Whether the next try is not due yet at `now`.
    pub(super) fn waiting(&self, now: Instant) -> bool {
        self.at.is_some_and(|at| now < at)
    }

    /// When the next try is due, if one is.
    pub(super) fn at(&self) -> Option<Instant> {
        self.at
    }
}
