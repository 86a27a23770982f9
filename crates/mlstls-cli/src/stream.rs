//! The resumable stream, sans I/O: one byte stream in each direction that
//! survives its MLS-TLS connections ("links") being cut and replaced.
//!
//! # Model
//!
//! Each side has two halves and a link state:
//!
//! - [`SendHalf`]: `acked <= next <= end`. `buf` holds the bytes
//!   `[acked, end)` read locally and not yet acknowledged; `next` is the
//!   next offset to transmit on the current link; `fin` is `Open`,
//!   `Queued` (local end of input at `end`) or `Acked` (the peer delivered
//!   the end too). The window (`end - acked <= WINDOW`) is the flow control:
//!   no local read while it is full.
//! - [`RecvHalf`]: `delivered` bytes were written to the local side
//!   successfully; `pending` holds `[delivered, delivered + pending.len())`,
//!   accepted in order and not yet written; `fin` is the peer's end offset
//!   once known. Only *delivered* bytes are acknowledged, so a local write
//!   that fails acknowledges nothing.
//! - [`Link`]: `Down`, `AwaitingHello` (our HELLO sent, no data before the
//!   peer's HELLO tells where it stands) and `Synced`.
//!
//! Every link starts with `HELLO(id, delivered)` from each side. The peer
//! then drops what was acknowledged and sends again from there: a byte is
//! only dropped once the other side delivered it, and a byte at an offset
//! below `delivered + pending` is never accepted again, so no byte is
//! skipped or delivered twice. Every value a peer sends is checked against
//! what we sent (`acked <= value <= end`); anything else is a
//! [`StreamError::Violation`].
//!
//! # What a restart keeps and forgets
//!
//! The stream lives in the memory of the two processes only; the MLS
//! session under it lives in the session stores. A restarted server still
//! resumes the session, but no longer knows the stream: it answers the
//! client's `HELLO(resuming)` with `RESET(unknown stream)`, and the client
//! fails loudly (a tunnel resets that local connection) instead of
//! starting over in the middle of a stream. A restarted client starts a new
//! stream.
//!
//! # Frames
//!
//! `type u8` then: HELLO `"mlstls-stream/1"`, flags `u8` (1: resuming, 2:
//! the end was delivered, 4: sent by the server), id `u64`, delivered `u64`; DATA offset `u64`,
//! length `u32`, bytes; ACK delivered `u64`, flags `u8` (2: the end was
//! delivered); FIN end offset `u64`; RESET code `u8`, reason length `u16`,
//! UTF-8 reason; PING (keepalive, nothing else).

use std::collections::VecDeque;

/// What every HELLO carries after its type byte: a stream peer sending
/// plain bytes (or the reverse) is recognised, not taken for data.
pub(crate) const MAGIC: &[u8] = b"mlstls-stream/1";
/// Largest DATA payload we send.
pub(crate) const MAX_DATA: usize = 16 * 1024;
/// Largest DATA payload we accept.
const MAX_DATA_IN: usize = 64 * 1024;
/// Most unacknowledged bytes a sender holds.
pub(crate) const WINDOW: u64 = 1 << 20;
/// Acknowledge at least every this many delivered bytes.
pub(crate) const ACK_EVERY: u64 = 64 * 1024;
/// Received bytes held for the local side before we stop reading the link.
pub(crate) const RECV_LIMIT: usize = 256 * 1024;

const HELLO: u8 = 3;
const DATA: u8 = 1;
const ACK: u8 = 2;
const FIN: u8 = 4;
const RESET: u8 = 5;
const PING: u8 = 6;

const F_RESUMING: u8 = 1;
const F_FIN_DELIVERED: u8 = 2;
const F_SERVER: u8 = 4;

/// The first bytes of every stream link (a HELLO's type and magic): a
/// `--plain` side that receives them knows its peer speaks the stream.
pub(crate) fn hello_prefix() -> Vec<u8> {
    let mut p = vec![HELLO];
    p.extend_from_slice(MAGIC);
    p
}

/// Why a stream was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetCode {
    /// The server does not know this stream (it restarted or forgot it).
    UnknownStream,
    /// The server could not reach its forward target.
    ForwardUnreachable,
    /// The server has too many streams.
    TooManyStreams,
    /// The peer's local side failed (a read or write error).
    LocalFailure,
    /// The peer saw a protocol violation.
    Protocol,
    /// The peer speaks plain MLS-TLS (`--plain`), not the stream.
    PlainPeer,
    /// The peer got SIGINT or SIGTERM and ends the stream on purpose.
    Interrupted,
    /// Anything else.
    Other(u8),
}

impl ResetCode {
    fn to_u8(self) -> u8 {
        match self {
            Self::UnknownStream => 1,
            Self::ForwardUnreachable => 2,
            Self::TooManyStreams => 3,
            Self::LocalFailure => 4,
            Self::Protocol => 5,
            Self::PlainPeer => 6,
            Self::Interrupted => 7,
            Self::Other(c) => c,
        }
    }
    fn from_u8(c: u8) -> Self {
        match c {
            1 => Self::UnknownStream,
            2 => Self::ForwardUnreachable,
            3 => Self::TooManyStreams,
            4 => Self::LocalFailure,
            5 => Self::Protocol,
            6 => Self::PlainPeer,
            7 => Self::Interrupted,
            c => Self::Other(c),
        }
    }
    /// What the peer's reset means, for one line on stderr.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::UnknownStream => {
                "the server no longer has this stream (it restarted or gave up waiting)"
            }
            Self::ForwardUnreachable => "the server could not reach its forward target",
            Self::TooManyStreams => "the server has too many streams",
            Self::LocalFailure => "the peer's local side failed",
            Self::Protocol => "the peer saw a stream protocol violation",
            Self::PlainPeer => {
                "the server speaks plain MLS-TLS, not the mlstls resumable stream (start the client with --plain)"
            }
            Self::Interrupted => "the peer ended the stream (interrupted)",
            Self::Other(_) => "the peer reset the stream",
        }
    }
}

/// A frame of the stream protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Hello {
        id: u64,
        /// Sent by the server: a client that gets its own HELLO back is
        /// talking to a plain MLS-TLS echo, not to a stream peer.
        from_server: bool,
        resuming: bool,
        delivered: u64,
        fin_delivered: bool,
    },
    Data {
        offset: u64,
        bytes: Vec<u8>,
    },
    Ack {
        delivered: u64,
        fin_delivered: bool,
    },
    Fin {
        end: u64,
    },
    Reset {
        code: ResetCode,
        reason: String,
    },
    Ping,
}

impl Frame {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Hello {
                id,
                from_server,
                resuming,
                delivered,
                fin_delivered,
            } => {
                out.push(HELLO);
                out.extend_from_slice(MAGIC);
                let mut flags = 0;
                if *from_server {
                    flags |= F_SERVER;
                }
                if *resuming {
                    flags |= F_RESUMING;
                }
                if *fin_delivered {
                    flags |= F_FIN_DELIVERED;
                }
                out.push(flags);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&delivered.to_be_bytes());
            }
            Frame::Data { offset, bytes } => {
                out.push(DATA);
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            Frame::Ack {
                delivered,
                fin_delivered,
            } => {
                out.push(ACK);
                out.extend_from_slice(&delivered.to_be_bytes());
                out.push(if *fin_delivered { F_FIN_DELIVERED } else { 0 });
            }
            Frame::Fin { end } => {
                out.push(FIN);
                out.extend_from_slice(&end.to_be_bytes());
            }
            Frame::Reset { code, reason } => {
                out.push(RESET);
                out.push(code.to_u8());
                let r = &reason.as_bytes()[..reason.len().min(1024)];
                out.extend_from_slice(&(r.len() as u16).to_be_bytes());
                out.extend_from_slice(r);
            }
            Frame::Ping => out.push(PING),
        }
    }
}

/// Frames from a byte stream cut anywhere.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
    /// No frame decoded yet: the first must be a HELLO.
    started: bool,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Decoder {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
        let b = &self.buf;
        let Some(&t) = b.first() else {
            return Ok(None);
        };
        if !self.started && t != HELLO && t != RESET {
            return Err(StreamError::NotAStream);
        }
        let need = |n: usize| b.len() >= n;
        let (frame, used) = match t {
            HELLO => {
                let m = 1 + MAGIC.len();
                let have = b.len().min(m);
                if b[1..have] != MAGIC[..have - 1] {
                    return Err(StreamError::NotAStream);
                }
                if !need(m + 17) {
                    return Ok(None);
                }
                let flags = b[m];
                (
                    Frame::Hello {
                        from_server: flags & F_SERVER != 0,
                        resuming: flags & F_RESUMING != 0,
                        fin_delivered: flags & F_FIN_DELIVERED != 0,
                        id: u64_at(b, m + 1),
                        delivered: u64_at(b, m + 9),
                    },
                    m + 17,
                )
            }
            DATA => {
                if !need(13) {
                    return Ok(None);
                }
                let len = u32::from_be_bytes(b[9..13].try_into().expect("4 bytes")) as usize;
                if len > MAX_DATA_IN {
                    return Err(StreamError::Violation(format!("DATA frame of {len} bytes")));
                }
                if !need(13 + len) {
                    return Ok(None);
                }
                (
                    Frame::Data {
                        offset: u64_at(b, 1),
                        bytes: b[13..13 + len].to_vec(),
                    },
                    13 + len,
                )
            }
            ACK => {
                if !need(10) {
                    return Ok(None);
                }
                (
                    Frame::Ack {
                        delivered: u64_at(b, 1),
                        fin_delivered: b[9] & F_FIN_DELIVERED != 0,
                    },
                    10,
                )
            }
            FIN => {
                if !need(9) {
                    return Ok(None);
                }
                (Frame::Fin { end: u64_at(b, 1) }, 9)
            }
            RESET => {
                if !need(4) {
                    return Ok(None);
                }
                let len = u16::from_be_bytes([b[2], b[3]]) as usize;
                if !need(4 + len) {
                    return Ok(None);
                }
                (
                    Frame::Reset {
                        code: ResetCode::from_u8(b[1]),
                        reason: String::from_utf8_lossy(&b[4..4 + len]).into_owned(),
                    },
                    4 + len,
                )
            }
            PING => (Frame::Ping, 1),
            t => return Err(StreamError::Violation(format!("unknown frame type {t}"))),
        };
        self.buf.drain(..used);
        self.started = true;
        Ok(Some(frame))
    }
}

/// Why a stream cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamError {
    /// The peer broke the protocol; the text says how.
    Violation(String),
    /// The peer's first bytes are not a stream HELLO: it sends plain
    /// application bytes.
    NotAStream,
    /// The peer sent our own HELLO back: a plain MLS-TLS echo.
    OwnHello,
    /// The peer reset the stream.
    Reset { code: ResetCode, reason: String },
    /// The MLS-TLS connection failed (why, for the log).
    Link(String),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Violation(v) => write!(f, "stream protocol violation by the peer: {v}"),
            Self::NotAStream => write!(
                f,
                "the peer sends plain bytes, not the mlstls resumable stream (is one side started with --plain and the other not?)"
            ),
            Self::OwnHello => write!(
                f,
                "the peer sent our own stream HELLO back: it speaks plain MLS-TLS and echoes (use --plain)"
            ),
            Self::Reset { code, reason } if reason.is_empty() => write!(f, "{}", code.describe()),
            Self::Reset { code, reason } => write!(f, "{}: {reason}", code.describe()),
            Self::Link(why) => write!(f, "{why}"),
        }
    }
}

/// The end of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFin {
    Open,
    Queued,
    Acked,
}

/// What we send: see the module docs.
#[derive(Debug)]
pub(crate) struct SendHalf {
    acked: u64,
    buf: VecDeque<u8>,
    next: u64,
    fin: SendFin,
    /// The FIN went out on the current link.
    fin_sent: bool,
}

impl SendHalf {
    fn end(&self) -> u64 {
        self.acked + self.buf.len() as u64
    }

    /// The peer says it delivered `delivered` bytes (and the end, if
    /// `fin_delivered`).
    fn on_acked(&mut self, delivered: u64, fin_delivered: bool) -> Result<(), StreamError> {
        if delivered < self.acked {
            return Err(StreamError::Violation(format!(
                "acknowledgement went back from {} to {delivered}",
                self.acked
            )));
        }
        if delivered > self.end() {
            return Err(StreamError::Violation(format!(
                "acknowledged {delivered} bytes, only {} sent",
                self.end()
            )));
        }
        self.buf.drain(..(delivered - self.acked) as usize);
        self.acked = delivered;
        self.next = self.next.max(delivered);
        if fin_delivered {
            if self.fin == SendFin::Open || delivered != self.end() {
                return Err(StreamError::Violation(
                    "end of stream acknowledged before it was sent".into(),
                ));
            }
            self.fin = SendFin::Acked;
        }
        Ok(())
    }
}

/// What we receive: see the module docs.
#[derive(Debug)]
pub(crate) struct RecvHalf {
    delivered: u64,
    pending: VecDeque<u8>,
    fin: Option<u64>,
    fin_delivered: bool,
    /// What our last ACK or HELLO on this link said.
    ack_sent: u64,
    fin_ack_sent: bool,
}

impl RecvHalf {
    fn end(&self) -> u64 {
        self.delivered + self.pending.len() as u64
    }
}

/// The state of the current link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Down,
    AwaitingHello,
    Synced,
}

/// How a server admits a HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A new stream.
    Create,
    /// A new link of a stream it has.
    Attach,
    /// A resuming stream it does not have: reset it.
    Unknown,
}

/// The server's rule. A client says `resuming` once it got a HELLO from
/// the server for this stream: before that, the server may not have seen
/// the stream, and nothing of it was delivered to the client, so creating
/// it is safe. After that, only the stream the server holds may go on.
pub(crate) fn admit(resuming: bool, known: bool) -> Admission {
    match (resuming, known) {
        (_, true) => Admission::Attach,
        (false, false) => Admission::Create,
        (true, false) => Admission::Unknown,
    }
}

/// One side of a resumable stream.
#[derive(Debug)]
pub(crate) struct Stream {
    id: u64,
    send: SendHalf,
    recv: RecvHalf,
    link: Link,
    /// We got a HELLO from the peer on some link.
    established: bool,
    /// A ping is due on the current link.
    ping: bool,
    /// Largest DATA payload to send.
    max_data: usize,
    /// This side is the server.
    server: bool,
}

impl Stream {
    /// The client's side of stream `id`.
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id,
            send: SendHalf {
                acked: 0,
                buf: VecDeque::new(),
                next: 0,
                fin: SendFin::Open,
                fin_sent: false,
            },
            recv: RecvHalf {
                delivered: 0,
                pending: VecDeque::new(),
                fin: None,
                fin_delivered: false,
                ack_sent: 0,
                fin_ack_sent: false,
            },
            link: Link::Down,
            established: false,
            ping: false,
            max_data: MAX_DATA,
            server: false,
        }
    }

    /// The server's side of stream `id`.
    pub(crate) fn new_server(id: u64) -> Self {
        Self {
            server: true,
            ..Self::new(id)
        }
    }

    /// Smaller frames, so that tests cut many frames at every byte.
    #[cfg(test)]
    fn with_frame_size(id: u64, max_data: usize, server: bool) -> Self {
        Self {
            max_data,
            server,
            ..Self::new(id)
        }
    }

    pub(crate) fn link(&self) -> Link {
        self.link
    }

    /// (bytes acknowledged by the peer, bytes delivered locally): grows
    /// when the stream makes progress.
    pub(crate) fn progress(&self) -> (u64, u64) {
        (self.send.acked, self.recv.delivered)
    }

    /// A new link: our HELLO is the first frame on it.
    pub(crate) fn on_connect(&mut self) -> Frame {
        self.link = Link::AwaitingHello;
        self.send.next = self.send.acked;
        self.send.fin_sent = false;
        self.recv.ack_sent = self.recv.delivered;
        self.recv.fin_ack_sent = self.recv.fin_delivered;
        self.ping = false;
        Frame::Hello {
            id: self.id,
            from_server: self.server,
            resuming: self.established,
            delivered: self.recv.delivered,
            fin_delivered: self.recv.fin_delivered,
        }
    }

    /// The link broke.
    pub(crate) fn on_disconnect(&mut self) {
        self.link = Link::Down;
    }

    /// A frame from the peer on the current link.
    pub(crate) fn on_frame(&mut self, frame: Frame) -> Result<(), StreamError> {
        let violation = |s: &str| Err(StreamError::Violation(s.into()));
        match (self.link, frame) {
            (_, Frame::Reset { code, reason }) => Err(StreamError::Reset { code, reason }),
            (Link::Down, _) => violation("frame without a link"),
            (
                Link::AwaitingHello,
                Frame::Hello {
                    id,
                    from_server,
                    delivered,
                    fin_delivered,
                    ..
                },
            ) => {
                if from_server == self.server {
                    return Err(StreamError::OwnHello);
                }
                if id != self.id {
                    return Err(StreamError::Violation(format!(
                        "HELLO for stream {id:016x}, this is {:016x}",
                        self.id
                    )));
                }
                self.send.on_acked(delivered, fin_delivered)?;
                self.send.next = self.send.acked;
                self.link = Link::Synced;
                self.established = true;
                Ok(())
            }
            (Link::AwaitingHello, _) => violation("frame before HELLO"),
            (Link::Synced, Frame::Hello { .. }) => violation("second HELLO"),
            (Link::Synced, Frame::Data { offset, bytes }) => {
                let end = self.recv.end();
                if offset > end {
                    return Err(StreamError::Violation(format!(
                        "DATA at {offset}, expected at most {end}"
                    )));
                }
                let top = offset + bytes.len() as u64;
                if let Some(fin) = self.recv.fin {
                    if top > fin {
                        return violation("DATA beyond the end of stream");
                    }
                }
                // Skip what arrived before (on this or an earlier link).
                let skip = (end - offset).min(bytes.len() as u64) as usize;
                self.recv.pending.extend(&bytes[skip..]);
                Ok(())
            }
            (
                Link::Synced,
                Frame::Ack {
                    delivered,
                    fin_delivered,
                },
            ) => self.send.on_acked(delivered, fin_delivered),
            (Link::Synced, Frame::Fin { end }) => {
                if end < self.recv.end() || self.recv.fin.is_some_and(|f| f != end) {
                    return Err(StreamError::Violation(format!(
                        "end of stream at {end} after {} bytes",
                        self.recv.end()
                    )));
                }
                self.recv.fin = Some(end);
                Ok(())
            }
            (Link::Synced, Frame::Ping) => Ok(()),
        }
    }

    /// How many bytes we may take from the local side now.
    pub(crate) fn local_room(&self) -> usize {
        if self.send.fin != SendFin::Open {
            return 0;
        }
        (WINDOW - self.send.buf.len() as u64) as usize
    }

    /// Bytes read from the local side (at most [`local_room`](Self::local_room)).
    pub(crate) fn on_local_data(&mut self, bytes: &[u8]) {
        debug_assert!(self.send.fin == SendFin::Open);
        self.send.buf.extend(bytes);
    }

    /// The local side ended its input.
    pub(crate) fn on_local_eof(&mut self) {
        if self.send.fin == SendFin::Open {
            self.send.fin = SendFin::Queued;
        }
    }

    /// Whether to read more from the link (else the local side is slow).
    pub(crate) fn accepting(&self) -> bool {
        self.recv.pending.len() < RECV_LIMIT
    }

    /// Bytes to write to the local side, in order.
    pub(crate) fn deliverable(&self) -> &[u8] {
        self.recv.pending.as_slices().0
    }

    /// `n` bytes of [`deliverable`](Self::deliverable) were written locally.
    pub(crate) fn on_delivered(&mut self, n: usize) {
        self.recv.pending.drain(..n);
        self.recv.delivered += n as u64;
    }

    /// The peer's end was reached: shut the local side's output down.
    pub(crate) fn wants_local_shutdown(&self) -> bool {
        !self.recv.fin_delivered && self.recv.fin == Some(self.recv.delivered)
    }

    pub(crate) fn on_local_shutdown(&mut self) {
        self.recv.fin_delivered = true;
    }

    /// Both directions ended and were acknowledged.
    pub(crate) fn is_done(&self) -> bool {
        self.send.fin == SendFin::Acked && self.recv.fin_delivered && self.recv.fin_ack_sent
    }

    /// Queue a keepalive.
    pub(crate) fn ping(&mut self) {
        self.ping = true;
    }

    /// The next frame to send on a synced link, if any.
    pub(crate) fn poll_transmit(&mut self) -> Option<Frame> {
        if self.link != Link::Synced {
            return None;
        }
        let r = &mut self.recv;
        let ack_due = r.delivered - r.ack_sent >= ACK_EVERY
            || (r.delivered > r.ack_sent && r.pending.is_empty())
            || (r.fin_delivered && !r.fin_ack_sent);
        if ack_due {
            r.ack_sent = r.delivered;
            r.fin_ack_sent = r.fin_delivered;
            self.ping = false;
            return Some(Frame::Ack {
                delivered: r.delivered,
                fin_delivered: r.fin_delivered,
            });
        }
        let s = &mut self.send;
        if s.next < s.end() {
            let from = (s.next - s.acked) as usize;
            let n = (s.buf.len() - from).min(self.max_data);
            let bytes: Vec<u8> = s.buf.range(from..from + n).copied().collect();
            let offset = s.next;
            s.next += n as u64;
            self.ping = false;
            return Some(Frame::Data { offset, bytes });
        }
        if s.fin == SendFin::Queued && !s.fin_sent {
            s.fin_sent = true;
            self.ping = false;
            return Some(Frame::Fin { end: s.end() });
        }
        if std::mem::take(&mut self.ping) {
            return Some(Frame::Ping);
        }
        None
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
