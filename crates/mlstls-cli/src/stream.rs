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
mod tests {
    //! Two streams over a link that is cut: at every byte of every frame in
    //! a deterministic sweep, and at random points (proptest), with local
    //! sides that take random amounts. Every run must end with each side's
    //! output identical to the other's input and both done: no byte
    //! skipped, none delivered twice, no endless loop.
    use super::*;
    use proptest::prelude::*;

    /// One side: its stream, the input still to offer, what it delivered.
    struct Side {
        stream: Stream,
        input: Vec<u8>,
        offered: usize,
        output: Vec<u8>,
        shut: bool,
        decoder: Decoder,
    }

    impl Side {
        fn new(id: u64, input: Vec<u8>, frame: usize, server: bool) -> Self {
            Self {
                stream: Stream::with_frame_size(id, frame, server),
                input,
                offered: 0,
                output: Vec::new(),
                shut: false,
                decoder: Decoder::default(),
            }
        }

        /// Local work: read up to `chunk` input, write up to `chunk` output.
        fn local(&mut self, chunk: usize) {
            let room = self.stream.local_room().min(chunk);
            let n = room.min(self.input.len() - self.offered);
            if n > 0 {
                let (a, b) = (self.offered, self.offered + n);
                let data = self.input[a..b].to_vec();
                self.stream.on_local_data(&data);
                self.offered = b;
            }
            if self.offered == self.input.len() {
                self.stream.on_local_eof();
            }
            let d = self.stream.deliverable();
            let n = d.len().min(chunk);
            self.output.extend_from_slice(&d[..n]);
            self.stream.on_delivered(n);
            if self.stream.wants_local_shutdown() {
                assert!(!self.shut, "shut down twice");
                self.shut = true;
                self.stream.on_local_shutdown();
            }
        }

        fn transmit(&mut self, wire: &mut Vec<u8>) {
            while let Some(f) = self.stream.poll_transmit() {
                f.encode(wire);
            }
        }
    }

    /// Runs a transfer; `cuts` are the numbers of bytes after which the
    /// link is cut (counted over both directions, in order). Returns the
    /// number of links used.
    fn run(a_in: Vec<u8>, b_in: Vec<u8>, cuts: &[usize], chunk: usize, step: usize) -> usize {
        run_framed(a_in, b_in, cuts, chunk, step, MAX_DATA)
    }

    fn run_framed(
        a_in: Vec<u8>,
        b_in: Vec<u8>,
        cuts: &[usize],
        chunk: usize,
        step: usize,
        frame: usize,
    ) -> usize {
        let (a_len, b_len) = (a_in.len(), b_in.len());
        let mut a = Side::new(7, a_in.clone(), frame, false);
        let mut b = Side::new(7, b_in.clone(), frame, true);
        let mut cuts = cuts.to_vec();
        cuts.sort_unstable();
        cuts.reverse();
        let mut moved = 0usize;
        let mut links = 0;
        'link: for _ in 0..cuts.len() + 2 {
            links += 1;
            let (mut ab, mut ba) = (Vec::new(), Vec::new());
            a.stream.on_connect().encode(&mut ab);
            b.stream.on_connect().encode(&mut ba);
            a.decoder = Decoder::default();
            b.decoder = Decoder::default();
            for _round in 0..100_000 {
                a.local(chunk);
                b.local(chunk);
                a.transmit(&mut ab);
                b.transmit(&mut ba);
                if a.stream.is_done() && b.stream.is_done() && ab.is_empty() && ba.is_empty() {
                    break 'link;
                }
                // Move up to `step` bytes each way, cutting where told.
                let mut cut_now = false;
                for (wire, to) in [(&mut ab, &mut b), (&mut ba, &mut a)] {
                    let mut n = wire.len().min(step);
                    if let Some(&c) = cuts.last() {
                        if c < moved + n {
                            n = c - moved;
                            cut_now = true;
                        }
                    }
                    to.decoder.push(&wire[..n]);
                    wire.drain(..n);
                    moved += n;
                    while let Some(f) = to.decoder.next_frame().unwrap() {
                        to.stream.on_frame(f).unwrap();
                    }
                    if cut_now {
                        break;
                    }
                }
                if cut_now {
                    while cuts.last().is_some_and(|&c| c <= moved) {
                        cuts.pop();
                    }
                    a.stream.on_disconnect();
                    b.stream.on_disconnect();
                    continue 'link;
                }
            }
            panic!("no progress on a link");
        }
        assert!(a.stream.is_done() && b.stream.is_done(), "not done");
        assert_eq!(a.output.len(), b_len);
        assert_eq!(b.output.len(), a_len);
        assert!(a.output == b_in, "a's output differs from b's input");
        assert!(b.output == a_in, "b's output differs from a's input");
        links
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| {
                (i as u8)
                    .wrapping_mul(31)
                    .wrapping_add(seed ^ (i >> 8) as u8)
            })
            .collect()
    }

    #[test]
    fn uncut_transfer_both_ways() {
        assert_eq!(
            run(bytes(300_000, 1), bytes(200_000, 2), &[], 40_000, 9_000),
            1
        );
    }

    /// A cut at every byte position of the whole exchange, for a transfer
    /// of several frames each way: every frame is cut at every point.
    #[test]
    fn a_cut_at_every_byte_of_every_frame() {
        let (a_in, b_in) = (bytes(3 * 100 + 17, 3), bytes(2 * 100 + 5, 4));
        // Total bytes on the wire without cuts, generously bounded.
        let total = 2 * (a_in.len() + b_in.len()) + 400;
        for cut in 0..total {
            for (chunk, step) in [(1_000, 1_000), (37, 11), (7, 300)] {
                run_framed(a_in.clone(), b_in.clone(), &[cut], chunk, step, 100);
            }
        }
    }

    /// Two cuts close together, so that a link is cut while the previous
    /// one's resend is in flight.
    #[test]
    fn cuts_during_the_resend() {
        let (a_in, b_in) = (bytes(2 * 100 + 3, 5), bytes(100 + 9, 6));
        for first in 0..a_in.len() + b_in.len() + 200 {
            for gap in [1, 13, 30, 60, 200] {
                run_framed(
                    a_in.clone(),
                    b_in.clone(),
                    &[first, first + gap],
                    50,
                    40,
                    100,
                );
            }
        }
    }

    #[test]
    fn empty_streams_finish_even_when_cut() {
        for cut in 0..120 {
            run(Vec::new(), Vec::new(), &[cut], 10, 7);
            run(bytes(1, 0), Vec::new(), &[cut], 10, 7);
        }
    }

    /// The 64 KiB loss of issue 13: more than a window in flight, cut at
    /// 64 KiB boundaries of the byte count.
    #[test]
    fn cuts_at_64k_boundaries_lose_nothing() {
        let a_in = bytes(4 * 1024 * 1024, 9);
        let cuts: Vec<usize> = (1..6)
            .map(|i| i * 2 * 1024 * 1024 / 3 + i * 65_536)
            .collect();
        run(a_in, bytes(70_000, 1), &cuts, 65_536, 65_536);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn random_cuts_random_sizes(
            a_len in 0usize..5_000,
            b_len in 0usize..5_000,
            cuts in proptest::collection::vec(0usize..12_000, 0..8),
            chunk in 1usize..3_000,
            step in 1usize..3_000,
            frame in 1usize..2_000,
        ) {
            run_framed(bytes(a_len, 11), bytes(b_len, 12), &cuts, chunk, step, frame);
        }
    }

    #[test]
    fn the_peer_cannot_acknowledge_what_was_not_sent() {
        let mut s = Stream::new(1);
        s.on_connect();
        s.on_local_data(b"abc");
        let e = s.on_frame(Frame::Hello {
            id: 1,
            from_server: true,
            resuming: false,
            delivered: 4,
            fin_delivered: false,
        });
        assert!(matches!(e, Err(StreamError::Violation(_))));
        let mut s = Stream::new(1);
        s.on_connect();
        let e = s.on_frame(Frame::Hello {
            id: 2,
            from_server: true,
            resuming: false,
            delivered: 0,
            fin_delivered: false,
        });
        assert!(matches!(e, Err(StreamError::Violation(_))), "{e:?}");
        let mut s = Stream::new(1);
        s.on_connect();
        let e = s.on_frame(Frame::Data {
            offset: 0,
            bytes: vec![1],
        });
        assert!(
            matches!(e, Err(StreamError::Violation(_))),
            "data before HELLO"
        );
    }

    #[test]
    fn a_gap_is_a_violation_not_a_skip() {
        let mut s = Stream::new(1);
        s.on_connect();
        s.on_frame(Frame::Hello {
            id: 1,
            from_server: true,
            resuming: false,
            delivered: 0,
            fin_delivered: false,
        })
        .unwrap();
        let e = s.on_frame(Frame::Data {
            offset: 5,
            bytes: vec![1],
        });
        assert!(matches!(e, Err(StreamError::Violation(_))));
    }

    /// A restarted server forgets the stream: the resuming client is told,
    /// it does not start over.
    #[test]
    fn a_restarted_server_resets_a_resuming_stream() {
        assert_eq!(admit(false, false), Admission::Create);
        assert_eq!(admit(false, true), Admission::Attach);
        assert_eq!(admit(true, true), Admission::Attach);
        assert_eq!(admit(true, false), Admission::Unknown);
        // A client that got the server's HELLO says it resumes.
        let mut c = Stream::new(3);
        c.on_connect();
        c.on_frame(Frame::Hello {
            id: 3,
            from_server: true,
            resuming: false,
            delivered: 0,
            fin_delivered: false,
        })
        .unwrap();
        c.on_disconnect();
        assert!(matches!(
            c.on_connect(),
            Frame::Hello { resuming: true, .. }
        ));
        let e = c.on_frame(Frame::Reset {
            code: ResetCode::UnknownStream,
            reason: String::new(),
        });
        assert!(matches!(
            e,
            Err(StreamError::Reset {
                code: ResetCode::UnknownStream,
                ..
            })
        ));
    }

    /// A plain MLS-TLS echo returns the client's HELLO: not taken for the
    /// server's.
    #[test]
    fn an_echoed_hello_is_recognised() {
        let mut c = Stream::new(4);
        let hello = c.on_connect();
        assert_eq!(c.on_frame(hello), Err(StreamError::OwnHello));
        let mut wire = Vec::new();
        Stream::new_server(4).on_connect().encode(&mut wire);
        assert!(wire.starts_with(&hello_prefix()));
    }

    #[test]
    fn plain_bytes_are_recognised() {
        let mut d = Decoder::default();
        d.push(b"hi\n");
        assert_eq!(d.next_frame(), Err(StreamError::NotAStream));
        let mut d = Decoder::default();
        d.push(&[HELLO, b'm', b'x']);
        assert_eq!(d.next_frame(), Err(StreamError::NotAStream));
        let mut d = Decoder::default();
        d.push(&[HELLO, b'm']);
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn frames_round_trip_when_fed_byte_by_byte() {
        let frames = vec![
            Frame::Hello {
                id: 9,
                from_server: true,
                resuming: true,
                delivered: 77,
                fin_delivered: true,
            },
            Frame::Data {
                offset: 5,
                bytes: vec![1, 2, 3],
            },
            Frame::Ack {
                delivered: 8,
                fin_delivered: false,
            },
            Frame::Fin { end: 12 },
            Frame::Reset {
                code: ResetCode::ForwardUnreachable,
                reason: "connection refused".into(),
            },
            Frame::Ping,
        ];
        let mut wire = Vec::new();
        for f in &frames {
            f.encode(&mut wire);
        }
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for b in wire {
            d.push(&[b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }
}
