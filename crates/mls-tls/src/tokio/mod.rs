//! The tokio adapter: [`Connector`] and [`Acceptor`] run the MLS-TLS
//! handshake over any `AsyncRead + AsyncWrite` transport and hand back a
//! [`TlsStream`], itself `AsyncRead + AsyncWrite`.
//!
//! The stream is full duplex: after `tokio::io::split`, one task may read
//! while another writes. Reading never waits for the write side and writing
//! never waits for the read side; handshake messages that reading produces
//! (an `EpochKeyUpdate` answering the peer's key update, the
//! `EpochKeyUpdate` that completes a resumption) are written by the reading
//! task itself, so a task that only reads keeps the connection healthy.
//!
//! The stream drives the connection's timers (SPEC 9a) with tokio's timer:
//! `connect`, `accept` and every read, write, flush and shutdown that waits
//! fail with `TimedOut` when the handshake timeout or the update
//! confirmation timeout passes, even if the peer never sends a byte. The
//! runtime therefore needs its time driver (`#[tokio::main]` and
//! `Builder::enable_all` have it). A task that only writes still reads the
//! peer's handshake messages, so key updates are confirmed whatever the
//! application does.
//!
//! Built with the `tokio` feature (on by default).

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::time::Sleep;

use crate::conn::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use crate::error::Error;
use crate::profile::engine::State;
use crate::store::SessionId;

mod resume;
pub use resume::Established;

/// Most plaintext one `poll_write` takes, also when the connection's send
/// buffer limit is off: bounds what is queued beyond what the transport
/// accepted.
const MAX_WRITE: usize = 64 * 1024;

/// Starts client connections over a transport.
///
/// ```
/// use std::sync::Arc;
/// use mls_tls::credentials::AcceptAnyPeer;
/// use mls_tls::{CipherSuite, ClientConfig, Identity, ServerConfig, SessionStore};
/// use mls_tls::tokio::{Acceptor, Connector};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio::net::{TcpListener, TcpStream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let suite = CipherSuite::X25519Aes128GcmSha256Ed25519;
/// let store = || Arc::new(SessionStore::in_memory().unwrap());
/// let client_config = ClientConfig::new(
///     Identity::generate("client", suite).unwrap(), Arc::new(AcceptAnyPeer), store());
/// let server_config = ServerConfig::new(
///     Identity::generate("server", suite).unwrap(), Arc::new(AcceptAnyPeer), store());
///
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let acceptor = Acceptor::new(Arc::new(server_config));
/// let server = tokio::spawn(async move {
///     let (tcp, _) = listener.accept().await?;
///     let mut tls = acceptor.accept(tcp).await?;
///     let mut msg = [0u8; 5];
///     tls.read_exact(&mut msg).await?;
///     tls.write_all(&msg).await?;
///     tls.shutdown().await
/// });
///
/// let connector = Connector::new(Arc::new(client_config));
/// let mut tls = connector.connect(TcpStream::connect(addr).await?).await?;
/// tls.write_all(b"hello").await?;
/// let mut echo = Vec::new();
/// tls.read_to_end(&mut echo).await?; // the server's close_notify ends it
/// assert_eq!(echo, b"hello");
/// server.await??;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
}

impl Connector {
    /// A connector using `config` for every connection.
    pub fn new(config: Arc<ClientConfig>) -> Self {
        Self { config }
    }

    /// Starts a new session over `io` and completes the handshake: returns
    /// once the ServerHello is processed and the client's confirming record
    /// (SPEC 6) is written.
    pub async fn connect<IO>(&self, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let conn = ClientConnection::new(self.config.clone()).map_err(io::Error::other)?;
        let mut stream = TlsStream::new(io, conn.into());
        std::future::poll_fn(|cx| stream.poll_handshake(cx, |c| !c.is_handshaking())).await?;
        Ok(stream)
    }

    /// Resumes the stored session `id` over `io` (SPEC 8) and returns at
    /// once, without any I/O: data written now goes out as early data (see
    /// [`ClientConnection::is_sending_early_data`]) together with the
    /// ResumptionRequest. The response is processed by the next read, flush
    /// or shutdown of the stream; a flush (or shutdown) waits for it, so
    /// that data beyond the early-data budget is sent too.
    ///
    /// Fails if the session cannot be loaded from the store.
    pub async fn resume<IO>(&self, id: &SessionId, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let conn = ClientConnection::resume(self.config.clone(), id).map_err(io::Error::other)?;
        Ok(TlsStream::new(io, conn.into()))
    }
}

impl From<Arc<ClientConfig>> for Connector {
    fn from(config: Arc<ClientConfig>) -> Self {
        Self::new(config)
    }
}

/// Accepts server connections over a transport.
#[derive(Debug, Clone)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
}

impl Acceptor {
    /// An acceptor using `config` for every connection.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// Waits for the client's first flight on `io`, processes it and writes
    /// the response, then returns the stream.
    ///
    /// The handshake is not necessarily over then. A new session stays
    /// provisional (`is_handshaking()` is true, the peer identity only
    /// claimed) until the client's first record arrives, which the next
    /// read processes (SPEC 6); the server may send data meanwhile. A
    /// resumption completes when the client's EpochKeyUpdate arrives, also
    /// on a later read; early data received before it is returned by the
    /// stream's reads first (see [`TlsStream`]).
    pub async fn accept<IO>(&self, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let conn = ServerConnection::new(self.config.clone());
        let mut stream = TlsStream::new(io, conn.into());
        std::future::poll_fn(|cx| {
            stream.poll_handshake(cx, |c| c.profile_state() != State::AwaitingClientHello)
        })
        .await?;
        Ok(stream)
    }
}

impl From<Arc<ServerConfig>> for Acceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        Self::new(config)
    }
}

/// An MLS-TLS connection over a transport `IO`, from [`Connector`] or
/// [`Acceptor`].
///
/// - Reads return plaintext; they end (`Ok` with no bytes) after the peer's
///   `close_notify`, and fail with `UnexpectedEof` if the transport ends
///   without one or during the handshake, and with `InvalidData` when the
///   peer misbehaves (the alert is sent first, if possible).
/// - Writes queue plaintext and send what the transport takes without
///   waiting; a flush waits until every queued byte is written.
/// - Shutdown sends `close_notify`, flushes, and shuts down the transport's
///   write half. The session stays stored for resumption; use
///   [`ConnectionCore::terminate`](crate::conn::ConnectionCore::terminate)
///   through [`get_mut`](Self::get_mut) to end it for good.
/// - On a server, early data received on a resumption (SPEC 8) is returned
///   by reads ahead of the data that follows it, in the order the client
///   wrote it. To tell it apart, take it with
///   [`ServerConnection::early_data`] through [`get_mut`](Self::get_mut)
///   before reading.
///
/// Handshake messages produced while reading are written by the reading
/// task as far as the transport accepts them without waiting; the rest go
/// out with the next read, write or flush.
#[derive(Debug)]
pub struct TlsStream<IO> {
    io: IO,
    conn: Connection,
    /// Tasks waiting for the transport to become readable.
    read_wakers: Arc<WakerSlots>,
    read_waker: Waker,
    /// Tasks waiting for the transport to become writable.
    write_wakers: Arc<WakerSlots>,
    write_waker: Waker,
    /// Tasks waiting for the connection's next deadline.
    timer_wakers: Arc<WakerSlots>,
    timer_waker: Waker,
    /// The sleep until the connection's next deadline, and that deadline.
    timer: Option<(Pin<Box<Sleep>>, Instant)>,
    /// The transport's read half ended.
    read_eof: bool,
}

impl<IO> TlsStream<IO> {
    fn new(io: IO, conn: Connection) -> Self {
        let read_wakers = Arc::new(WakerSlots::default());
        let write_wakers = Arc::new(WakerSlots::default());
        let timer_wakers = Arc::new(WakerSlots::default());
        Self {
            io,
            conn,
            read_waker: Waker::from(read_wakers.clone()),
            read_wakers,
            write_waker: Waker::from(write_wakers.clone()),
            write_wakers,
            timer_waker: Waker::from(timer_wakers.clone()),
            timer_wakers,
            timer: None,
            read_eof: false,
        }
    }

    /// The transport and the connection.
    pub fn get_ref(&self) -> (&IO, &Connection) {
        (&self.io, &self.conn)
    }

    /// The transport and the connection, mutably. Reading from or writing to
    /// the transport directly corrupts the stream.
    pub fn get_mut(&mut self) -> (&mut IO, &mut Connection) {
        (&mut self.io, &mut self.conn)
    }

    /// Takes the stream apart. TLS bytes still queued in the connection are
    /// not written.
    pub fn into_inner(self) -> (IO, Connection) {
        (self.io, self.conn)
    }
}

/// Which stream operation polls the transport: reading (`poll_read`), or
/// writing (`poll_write`, `poll_flush`, `poll_shutdown` and the
/// handshake). Each keeps its own waker, so that one operation polling the
/// transport does not take the other's place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read = 0,
    Write = 1,
}

impl Op {
    fn other(self) -> Self {
        match self {
            Self::Read => Self::Write,
            Self::Write => Self::Read,
        }
    }
}

/// The wakers of both operations for one direction of the transport.
///
/// A transport keeps one waker per direction (tokio's `TcpStream` does),
/// and both operations may poll the same direction: reading writes
/// handshake replies, and a flush during a resumption reads the response.
/// So the transport is always given a waker for this set, which wakes
/// every operation waiting on that direction.
#[derive(Debug, Default)]
struct WakerSlots {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl WakerSlots {
    fn register(&self, op: Op, waker: &Waker) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[op as usize];
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn take(&self, op: Op) -> Option<Waker> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)[op as usize].take()
    }

    fn wake_op(&self, op: Op) {
        if let Some(w) = self.take(op) {
            w.wake();
        }
    }

    fn wake_by_ref_all(&self) {
        self.wake_op(Op::Read);
        self.wake_op(Op::Write);
    }
}

impl Wake for WakerSlots {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let [a, b] = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            [slots[0].take(), slots[1].take()]
        };
        for w in [a, b].into_iter().flatten() {
            w.wake();
        }
    }
}

/// `std::io` access to an async transport within one poll: `Pending`
/// becomes `WouldBlock`.
struct SyncIo<'a, 'b, IO> {
    io: &'a mut IO,
    cx: &'a mut Context<'b>,
}

impl<IO: AsyncRead + Unpin> Read for SyncIo<'_, '_, IO> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<IO: AsyncWrite + Unpin> Write for SyncIo<'_, '_, IO> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match Pin::new(&mut *self.io).poll_flush(self.cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

fn would_block_to_pending<T>(r: io::Result<T>) -> Poll<io::Result<T>> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

fn protocol_error(e: Error) -> io::Error {
    let kind = match e {
        Error::Timeout(_) => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, e)
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    /// Reads TLS bytes from the transport once, for `op`.
    fn read_io(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<usize>> {
        self.read_wakers.register(op, cx.waker());
        let mut inner = Context::from_waker(&self.read_waker);
        let mut rd = SyncIo {
            io: &mut self.io,
            cx: &mut inner,
        };
        let r = would_block_to_pending(self.conn.read_tls(&mut rd));
        if r.is_ready() {
            self.read_wakers.take(op);
        }
        r
    }

    /// Writes queued TLS bytes to the transport once, for `op`.
    fn write_io(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<usize>> {
        self.write_wakers.register(op, cx.waker());
        let mut inner = Context::from_waker(&self.write_waker);
        let mut wr = SyncIo {
            io: &mut self.io,
            cx: &mut inner,
        };
        let r = would_block_to_pending(self.conn.write_tls(&mut wr));
        if r.is_ready() {
            self.write_wakers.take(op);
        }
        r
    }

    /// Writes queued TLS bytes until none are left or the transport would
    /// block; errors are left for the next write or flush to report.
    fn write_some(&mut self, cx: &mut Context<'_>, op: Op) {
        while self.conn.wants_write() {
            match self.write_io(cx, op) {
                Poll::Ready(Ok(n)) if n > 0 => {}
                _ => break,
            }
        }
    }

    /// Writes every queued TLS byte.
    fn write_all(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            match self.write_io(cx, op) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Processes the records read and writes what they produced, as far as
    /// the transport takes it now. On an error, the alert goes out if it
    /// can.
    fn process(&mut self, cx: &mut Context<'_>, op: Op) -> io::Result<()> {
        let r = self.conn.process_new_packets();
        self.write_some(cx, op);
        // The other operation may be waiting for what was just processed
        // (plaintext, the end of a resumption) and the transport will not
        // wake it: these bytes are already taken from it.
        self.read_wakers.wake_op(op.other());
        r.map(drop).map_err(protocol_error)
    }

    /// Reads and processes TLS bytes once, for `op`. `Ok(false)` when the
    /// transport's read half ended.
    fn read_and_process(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<bool>> {
        match self.read_io(cx, op) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(0)) => {
                self.read_eof = true;
                self.read_wakers.wake_op(op.other());
                Poll::Ready(Ok(false))
            }
            Poll::Ready(Ok(_)) => Poll::Ready(self.process(cx, op).map(|()| true)),
        }
    }

    /// Waits for the connection's next deadline and lets it judge the time
    /// then (SPEC 9a). `Pending` while a deadline runs or none does;
    /// `Ready(Err)` when a timer closed the connection (its alert, if any,
    /// is sent as far as the transport takes it).
    fn poll_timer(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<()>> {
        loop {
            let Some(deadline) = self.conn.poll_timeout() else {
                self.timer = None;
                return Poll::Pending;
            };
            let wait = deadline.saturating_duration_since(self.conn.clock().now());
            if wait.is_zero() {
                let now = self.conn.clock().now();
                if let Err(e) = self.conn.handle_timeout(now) {
                    self.write_some(cx, op);
                    // Both operations learn of the end.
                    self.timer_wakers.wake_by_ref_all();
                    self.read_wakers.wake_op(op.other());
                    return Poll::Ready(Err(protocol_error(e)));
                }
                if self.conn.poll_timeout() == Some(deadline) {
                    // The clock says the deadline passed but the connection
                    // did not act on it: do not spin.
                    return Poll::Pending;
                }
                continue;
            }
            // The connection's clock may be virtual: sleep for what is left
            // by it, and look again when the sleep ends.
            let armed = self.timer.as_ref().is_some_and(|(_, at)| *at == deadline);
            if !armed {
                let sleep = ::tokio::time::sleep(wait);
                self.timer = Some((Box::pin(sleep), deadline));
            }
            self.timer_wakers.register(op, cx.waker());
            let mut inner = Context::from_waker(&self.timer_waker);
            let Some((sleep, _)) = self.timer.as_mut() else {
                return Poll::Pending;
            };
            match sleep.as_mut().poll(&mut inner) {
                Poll::Pending => return Poll::Pending,
                // Look at the connection's clock again.
                Poll::Ready(()) => self.timer = None,
            }
        }
    }

    /// Reads and processes what already arrived, without waiting for more,
    /// so that handshake messages are answered and key updates confirmed
    /// while the application only writes (SPEC 9a).
    fn read_available(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while !self.read_eof && self.conn.wants_read() {
            match self.read_and_process(cx, Op::Write) {
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) | Poll::Pending => break,
                Poll::Ready(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Why no more can be read now: the transport ended, the connection
    /// failed, or (`Pending`) received plaintext is at its limit and the
    /// application must read first.
    fn cannot_read<T>(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<T>> {
        if let Some(e) = self.conn.error() {
            return Poll::Ready(Err(protocol_error(e.clone())));
        }
        if self.read_eof || self.conn.peer_closed() {
            return Poll::Ready(Err(self.eof_error()));
        }
        // Woken when the application reads plaintext (`poll_read`).
        self.read_wakers.register(op, cx.waker());
        Poll::Pending
    }

    /// Input waits for our output to drain (answers the peer did not
    /// read): writes it. `Ready(Ok)` when input may go on.
    fn drain_output(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<()>> {
        if self.conn.wants_read() || self.conn.plaintext_full() || self.conn.error().is_some() {
            return Poll::Ready(Ok(()));
        }
        self.write_all(cx, op)
    }

    /// The error for a transport that ended without `close_notify`.
    fn eof_error(&self) -> io::Error {
        let msg = if self.conn.is_handshaking() {
            "the peer closed the connection during the handshake"
        } else {
            "the peer closed the connection without close_notify"
        };
        io::Error::new(io::ErrorKind::UnexpectedEof, msg)
    }

    /// Drives the handshake until `done` holds and every queued TLS byte is
    /// written.
    fn poll_handshake(
        &mut self,
        cx: &mut Context<'_>,
        done: fn(&Connection) -> bool,
    ) -> Poll<io::Result<()>> {
        loop {
            let written = self.write_all(cx, Op::Write)?;
            if done(&self.conn) {
                return written.map(Ok);
            }
            std::task::ready!(self.read_for_progress(cx, Op::Write))?;
        }
    }

    /// Makes input progress for `op`, which waits on the peer: drains
    /// output that input waits for, then reads and processes once (or
    /// waits for the next deadline). Fails when no more can ever be read.
    fn read_for_progress(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain_output(cx, op))?;
        if self.read_eof || !self.conn.wants_read() {
            return self.cannot_read(cx, op);
        }
        if !std::task::ready!(self.read_or_timer(cx, op))? {
            return Poll::Ready(Err(self.eof_error()));
        }
        Poll::Ready(Ok(()))
    }

    /// Reads and processes once, or, while nothing arrives, waits for the
    /// connection's next deadline.
    fn read_or_timer(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<bool>> {
        match self.read_and_process(cx, op) {
            Poll::Pending => match self.poll_timer(cx, op) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            r => r,
        }
    }

    /// A client resuming: completes the resumption so that data beyond the
    /// early-data budget is sent.
    fn poll_finish_resumption(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while matches!(self.conn, Connection::Client(_)) && self.conn.is_handshaking() {
            std::task::ready!(self.write_all(cx, Op::Write))?;
            std::task::ready!(self.read_for_progress(cx, Op::Write))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Copies buffered plaintext (early data first) into `buf`.
    /// `Some(Ok(()))` when bytes were copied or the stream ended.
    fn read_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
        let out = buf.initialize_unfilled();
        if let Connection::Server(s) = &mut self.conn {
            if let Some(mut early) = s.early_data() {
                // Reading from the in-memory queue cannot fail.
                let n = early.read(out).unwrap_or(0);
                buf.advance(n);
                return Some(Ok(()));
            }
        }
        match self.conn.reader().read(out) {
            // 0 with room in `buf`: the peer sent close_notify.
            Ok(n) => {
                buf.advance(n);
                Some(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(match e.into_inner() {
                Some(inner) => io::Error::new(io::ErrorKind::InvalidData, inner),
                None => io::ErrorKind::InvalidData.into(),
            })),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // Replies an earlier read could not write yet.
        this.write_some(cx, Op::Read);
        loop {
            if let Some(r) = this.read_plaintext(buf) {
                // A write waiting for room in the plaintext buffer may go on.
                this.read_wakers.wake_op(Op::Write);
                return Poll::Ready(r);
            }
            if this.read_eof {
                return Poll::Ready(Err(this.eof_error()));
            }
            std::task::ready!(this.drain_output(cx, Op::Read))?;
            if !std::task::ready!(this.read_or_timer(cx, Op::Read))? {
                return Poll::Ready(Err(this.eof_error()));
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Keep confirming key updates, whatever else the application does,
        // and judge the deadlines, which pass while only writing too.
        this.read_available(cx)?;
        if let Poll::Ready(Err(e)) = this.poll_timer(cx, Op::Write) {
            return Poll::Ready(Err(e));
        }
        loop {
            // Backpressure: what is queued goes out before more is taken.
            if this.write_all(cx, Op::Write)?.is_pending() {
                return match this.poll_timer(cx, Op::Write) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Pending,
                };
            }
            let n = this.conn.writer().write(&buf[..buf.len().min(MAX_WRITE)])?;
            if n > 0 {
                this.write_some(cx, Op::Write);
                return Poll::Ready(Ok(n));
            }
            // The send buffer is full of data that may not leave yet (a
            // stuck direction waits for its update): progress comes from
            // the peer.
            std::task::ready!(this.read_for_progress(cx, Op::Write))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_finish_resumption(cx))?;
        std::task::ready!(this.write_all(cx, Op::Write))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Data queued behind a resumption would be dropped by close_notify.
        std::task::ready!(this.poll_finish_resumption(cx))?;
        this.conn.send_close_notify();
        std::task::ready!(this.write_all(cx, Op::Write))?;
        let shut = std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx));
        if let Some(e) = this.conn.close_refused() {
            // No clean close could be sent (see `send_close_notify`).
            return Poll::Ready(Err(protocol_error(e.clone())));
        }
        match shut {
            // The peer already went away: nothing is left to shut down.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            r => Poll::Ready(r),
        }
    }
}
