//! Blocking I/O over a [`Transport`] (a `TcpStream`, a Unix socket):
//! [`Stream`] borrows a connection and a socket, [`StreamOwned`] owns them.
//! Like rustls's, these are half duplex: one thread reads and writes. For
//! concurrent reading and writing use the tokio adapter. On a resumed
//! server connection, reads return the early data first.
//!
//! The stream drives the connection's timers (SPEC 9a): while a deadline
//! runs (handshake, update confirmation) a blocking read waits at most
//! until it, so a peer that never sends a byte is dropped on time. And it
//! keeps confirming key updates whatever the application does: a stream
//! that only writes still reads the peer's handshake messages (an update of
//! ours waits for its EpochKeyUpdate before more data is sealed; the peer's
//! updates are picked up by a non-blocking look every 256 KiB or second of
//! writing).

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::conn::ConnectionCore;

/// How often a writing stream looks for handshake messages without
/// waiting: after this many bytes written...
const PEEK_EVERY_BYTES: u64 = 256 * 1024;
/// ...or this much time.
const PEEK_EVERY: Duration = Duration::from_secs(1);

/// A blocking transport. Beyond `Read + Write`, the stream uses two
/// optional abilities: a read timeout (so timers fire while a read
/// blocks) and non-blocking mode (so a stream that only writes sees the
/// peer's key updates). Both are implemented for `TcpStream` and
/// `UnixStream`; another transport may implement neither (`impl
/// Transport for MyPipe {}`), and then timers are judged only when bytes
/// arrive and key updates are confirmed only when the application reads.
pub trait Transport: Read + Write {
    /// Sets the timeout of blocking reads (`None`: wait forever). Returns
    /// whether the transport supports it.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let _ = timeout;
        Ok(false)
    }

    /// Switches non-blocking mode. Returns whether the transport supports
    /// it.
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<bool> {
        let _ = nonblocking;
        Ok(false)
    }
}

macro_rules! socket_transport {
    ($t:ty) => {
        impl Transport for $t {
            fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<bool> {
                <$t>::set_read_timeout(self, timeout).map(|()| true)
            }

            fn set_nonblocking(&self, nonblocking: bool) -> io::Result<bool> {
                <$t>::set_nonblocking(self, nonblocking).map(|()| true)
            }
        }
    };
}

socket_transport!(std::net::TcpStream);
#[cfg(unix)]
socket_transport!(std::os::unix::net::UnixStream);

impl<T: Transport + ?Sized> Transport for &mut T {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<bool> {
        (**self).set_read_timeout(timeout)
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<bool> {
        (**self).set_nonblocking(nonblocking)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<bool> {
        (**self).set_read_timeout(timeout)
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<bool> {
        (**self).set_nonblocking(nonblocking)
    }
}

/// A connection and a socket, borrowed, read and written as one stream.
#[derive(Debug)]
pub struct Stream<'a, C: ?Sized, T: ?Sized> {
    /// The MLS-TLS connection.
    pub conn: &'a mut C,
    /// The transport.
    pub sock: &'a mut T,
}

impl<'a, C, T> Stream<'a, C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore> + ?Sized,
    T: Transport + ?Sized,
{
    /// Joins a connection and a socket.
    pub fn new(conn: &'a mut C, sock: &'a mut T) -> Self {
        Self { conn, sock }
    }
}

/// Writes every queued TLS byte to `sock`.
fn flush_tls(conn: &mut ConnectionCore, sock: &mut (impl Write + ?Sized)) -> io::Result<()> {
    while conn.wants_write() {
        if conn.write_tls(&mut &mut *sock)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    sock.flush()
}

fn protocol_error(e: crate::error::Error) -> io::Error {
    let kind = match e {
        crate::error::Error::Timeout(_) => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, e)
}

/// Processes what arrived (and judges the timers), then sends what that
/// produced: answers (ServerHello, EpochKeyUpdate, alerts) leave at once.
fn process(conn: &mut ConnectionCore, sock: &mut (impl Write + ?Sized)) -> io::Result<()> {
    let processed = conn.process_new_packets();
    flush_tls(conn, sock)?;
    processed.map(drop).map_err(protocol_error)
}

/// Reads once from `sock`, waiting at most until the connection's next
/// deadline when the transport supports read timeouts, and processes what
/// arrived. Returns false at end of stream.
fn read_once(conn: &mut ConnectionCore, sock: &mut (impl Transport + ?Sized)) -> io::Result<bool> {
    if !conn.wants_read() {
        // A fatal error (reported here), output backed up (drained here),
        // or plaintext at its limit (only the application can help).
        process(conn, sock)?;
        if conn.plaintext_full() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "received data must be read before more can be processed",
            ));
        }
        return Ok(true);
    }
    let deadline = conn.poll_timeout();
    let timed = match deadline {
        Some(at) => {
            let wait = at.saturating_duration_since(conn.clock().now());
            // A zero timeout means "none" to the socket API.
            sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?
        }
        None => false,
    };
    let read = conn.read_tls(&mut &mut *sock);
    if timed {
        sock.set_read_timeout(None)?;
    }
    match read {
        Ok(n) => {
            process(conn, sock)?;
            Ok(n > 0)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            // The deadline may have passed: let the connection judge it.
            process(conn, sock)?;
            if timed {
                Ok(true)
            } else {
                // The caller's own timeout on the socket.
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

/// Reads whatever already arrived without waiting (when the transport can
/// do that), so that a stream that only writes still answers and receives
/// key updates (SPEC 9a).
fn peek_incoming(
    conn: &mut ConnectionCore,
    sock: &mut (impl Transport + ?Sized),
) -> io::Result<()> {
    if !conn.wants_read() || !conn.peek_due(PEEK_EVERY_BYTES, PEEK_EVERY) {
        return Ok(());
    }
    if !sock.set_nonblocking(true)? {
        return Ok(());
    }
    let read = conn.read_tls(&mut &mut *sock);
    sock.set_nonblocking(false)?;
    match read {
        Ok(0) => Ok(()), // end of stream: the next read reports it
        Ok(_) => process(conn, sock),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Drives the handshake until it is over, or, with `send_ok`, until data
/// written now leaves at once: a client's early data, a server's answer
/// under the keys of its ServerHello or ResumptionResponse (0.5-RTT, so a
/// server answers early data in its first flight).
fn complete_handshake(
    conn: &mut ConnectionCore,
    sock: &mut (impl Transport + ?Sized),
    send_ok: bool,
) -> io::Result<()> {
    flush_tls(conn, sock)?;
    while conn.is_handshaking() && !(send_ok && conn.may_send_data()) {
        if !read_once(conn, sock)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

fn stream_read(
    conn: &mut ConnectionCore,
    sock: &mut (impl Transport + ?Sized),
    buf: &mut [u8],
) -> io::Result<usize> {
    flush_tls(conn, sock)?;
    loop {
        // Early data first: it was sent first, and it is replay-safe
        // (SPEC 8). `ServerConnection::early_data` tells it apart.
        let early = conn.early_received.read(buf);
        if early > 0 {
            return Ok(early);
        }
        match conn.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return r,
        }
        if !read_once(conn, sock)? {
            // Closed without close_notify: a truncation an attacker could
            // cause, so not a clean end of stream.
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

fn stream_write(
    conn: &mut ConnectionCore,
    sock: &mut (impl Transport + ?Sized),
    buf: &[u8],
) -> io::Result<usize> {
    // Deadlines pass while the application only writes, too.
    let now = conn.clock().now();
    let judged = conn.handle_timeout(now);
    flush_tls(conn, sock)?;
    judged.map_err(protocol_error)?;
    complete_handshake(conn, sock, true)?;
    peek_incoming(conn, sock)?;
    // An update of ours waits for its EpochKeyUpdate before more data is
    // sealed: the confirmation may sit unread in the socket (SPEC 9a).
    while conn.awaits_confirmation() && conn.wants_read() {
        if !read_once(conn, sock)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    loop {
        let n = conn.writer().write(buf)?;
        flush_tls(conn, sock)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        // The send buffer is full of data that may not leave yet (a stuck
        // direction waiting for its update): progress comes from the peer.
        if !read_once(conn, sock)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

impl<C, T> Read for Stream<'_, C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore> + ?Sized,
    T: Transport + ?Sized,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        stream_read(self.conn, self.sock, buf)
    }
}

impl<C, T> Write for Stream<'_, C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore> + ?Sized,
    T: Transport + ?Sized,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        stream_write(self.conn, self.sock, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        flush_tls(self.conn, self.sock)
    }
}

/// A connection and a socket, owned, read and written as one stream.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::sync::Arc;
/// use mls_tls::{ClientConfig, ClientConnection};
/// use mls_tls::stream::StreamOwned;
/// # fn config() -> ClientConfig { unimplemented!() }
///
/// let conn = ClientConnection::new(Arc::new(config())).unwrap();
/// let sock = TcpStream::connect("127.0.0.1:4433").unwrap();
/// let mut stream = StreamOwned::new(conn, sock);
/// stream.write_all(b"ping").unwrap();
/// let mut reply = [0u8; 4];
/// stream.read_exact(&mut reply).unwrap();
/// ```
#[derive(Debug)]
pub struct StreamOwned<C, T> {
    /// The MLS-TLS connection.
    pub conn: C,
    /// The transport.
    pub sock: T,
}

impl<C, T> StreamOwned<C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore>,
    T: Transport,
{
    /// Joins a connection and a socket.
    pub fn new(conn: C, sock: T) -> Self {
        Self { conn, sock }
    }

    /// Runs the handshake (or resumption) to completion; it otherwise runs
    /// on first use, and a resumption's early data does not wait for it.
    /// Fails with `TimedOut` if the handshake timeout passes first.
    pub fn complete_handshake(&mut self) -> io::Result<()> {
        complete_handshake(&mut self.conn, &mut self.sock, false)
    }

    /// Sends `close_notify` and flushes it. Fails (after sending the
    /// alert that ends the connection) when no clean close may be sent:
    /// see [`ConnectionCore::send_close_notify`].
    pub fn close(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        flush_tls(&mut self.conn, &mut self.sock)?;
        match self.conn.close_refused() {
            Some(e) => Err(protocol_error(e.clone())),
            None => Ok(()),
        }
    }

    /// The connection and the socket.
    pub fn into_parts(self) -> (C, T) {
        (self.conn, self.sock)
    }
}

impl<C, T> Read for StreamOwned<C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore>,
    T: Transport,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        stream_read(&mut self.conn, &mut self.sock, buf)
    }
}

impl<C, T> Write for StreamOwned<C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore>,
    T: Transport,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        stream_write(&mut self.conn, &mut self.sock, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        flush_tls(&mut self.conn, &mut self.sock)
    }
}
