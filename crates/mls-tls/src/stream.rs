//! Blocking I/O over any `Read + Write` (a `TcpStream`, a Unix socket):
//! [`Stream`] borrows a connection and a socket, [`StreamOwned`] owns them.
//! Like rustls's, these are half duplex: one thread reads and writes. For
//! concurrent reading and writing use the tokio adapter. On a resumed
//! server connection, reads return the early data first.

use std::io::{self, Read, Write};

use crate::conn::ConnectionCore;

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
    T: Read + Write + ?Sized,
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

/// Reads once from `sock` and processes what arrived. Returns false at end
/// of stream.
fn read_once(
    conn: &mut ConnectionCore,
    sock: &mut (impl Read + Write + ?Sized),
) -> io::Result<bool> {
    let n = conn.read_tls(&mut &mut *sock)?;
    let processed = conn.process_new_packets();
    // Answers (ServerHello, EpochKeyUpdate, alerts) leave at once.
    flush_tls(conn, sock)?;
    processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(n > 0)
}

/// Drives the handshake until it is over, or, with `send_ok`, until data
/// written now leaves at once: a client's early data, a server's answer
/// under the keys of its ServerHello or ResumptionResponse (0.5-RTT, so a
/// server answers early data in its first flight).
fn complete_handshake(
    conn: &mut ConnectionCore,
    sock: &mut (impl Read + Write + ?Sized),
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
    sock: &mut (impl Read + Write + ?Sized),
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
    sock: &mut (impl Read + Write + ?Sized),
    buf: &[u8],
) -> io::Result<usize> {
    complete_handshake(conn, sock, true)?;
    let n = conn.writer().write(buf)?;
    flush_tls(conn, sock)?;
    Ok(n)
}

impl<C, T> Read for Stream<'_, C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore> + ?Sized,
    T: Read + Write + ?Sized,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        stream_read(self.conn, self.sock, buf)
    }
}

impl<C, T> Write for Stream<'_, C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore> + ?Sized,
    T: Read + Write + ?Sized,
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
/// use mls_tls::conn::{ClientConfig, ClientConnection};
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
    T: Read + Write,
{
    /// Joins a connection and a socket.
    pub fn new(conn: C, sock: T) -> Self {
        Self { conn, sock }
    }

    /// Runs the handshake (or resumption) to completion; it otherwise runs
    /// on first use, and a resumption's early data does not wait for it.
    pub fn complete_handshake(&mut self) -> io::Result<()> {
        complete_handshake(&mut self.conn, &mut self.sock, false)
    }

    /// Sends `close_notify` and flushes it.
    pub fn close(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        flush_tls(&mut self.conn, &mut self.sock)
    }

    /// The connection and the socket.
    pub fn into_parts(self) -> (C, T) {
        (self.conn, self.sock)
    }
}

impl<C, T> Read for StreamOwned<C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore>,
    T: Read + Write,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        stream_read(&mut self.conn, &mut self.sock, buf)
    }
}

impl<C, T> Write for StreamOwned<C, T>
where
    C: std::ops::DerefMut<Target = ConnectionCore>,
    T: Read + Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        stream_write(&mut self.conn, &mut self.sock, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        flush_tls(&mut self.conn, &mut self.sock)
    }
}
