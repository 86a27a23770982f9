//! Time to the first response byte of a resumed connection (MLS-TLS
//! resumption with early data, TLS 1.3 PSK with 0-RTT), through a relay
//! that delays every chunk by half the round-trip time each way.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use mls_tls::conn::{ClientConnection, ServerConnection};
use mls_tls::stream::StreamOwned;

use crate::report::{median, Better, Row};
use crate::stacks::{server_name, BoxError, Impl, Kx, MlsStack, RustlsStack};

/// A TCP proxy adding latency: each chunk read is written on after
/// `one_way`. Connection setup (SYN) is not delayed, so the measured round
/// trips are the protocol's own.
pub(crate) struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub(crate) fn start(upstream: SocketAddr, one_way: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            for sock in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(down) = sock else { continue };
                let Ok(up) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = (down.set_nodelay(true), up.set_nodelay(true));
                if let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) {
                    pipe(down, u2, one_way);
                    pipe(up, d2, one_way);
                }
            }
        });
        Ok(Self { addr, stop })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to`, each chunk held back until `delay` after it
/// arrived; the end of stream is passed on the same way.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let chunk = match from.read(&mut buf) {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            };
            let end = chunk.is_none();
            if tx.send((Instant::now() + delay, chunk)).is_err() || end {
                return;
            }
        }
    });
    thread::spawn(move || {
        for (due, chunk) in rx {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            match chunk {
                Some(c) if to.write_all(&c).is_ok() => {}
                _ => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
            }
        }
    });
}

/// The first response byte says how the server got the request.
const EARLY: u8 = b'E';
const NORMAL: u8 = b'N';

/// MLS-TLS server: answers the first byte (noting whether it came as early
/// data), then drains until the client closes.
fn serve_mls(conn: ServerConnection, sock: TcpStream) -> Result<(), BoxError> {
    let mut s = StreamOwned::new(conn, sock);
    let mut b = [0u8; 1];
    let early = loop {
        if let Some(mut e) = s.conn.early_data() {
            e.read_exact(&mut b)?;
            break true;
        }
        match s.conn.reader().read(&mut b) {
            Ok(1) => break false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if s.conn.read_tls(&mut s.sock)? == 0 {
            return Ok(());
        }
        s.conn.process_new_packets()?;
        s.flush()?;
    };
    // Straight to the connection: the stream's write would first wait for
    // the handshake to end, a round trip later.
    s.conn
        .writer()
        .write_all(&[if early { EARLY } else { NORMAL }])?;
    s.flush()?;
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf), Ok(1..)) {}
    Ok(())
}

/// rustls server: the same, early data through `early_data()`.
fn serve_rustls(mut conn: rustls::ServerConnection, mut sock: TcpStream) -> Result<(), BoxError> {
    let mut b = [0u8; 1];
    let early = loop {
        if conn.read_tls(&mut sock)? == 0 {
            return Ok(());
        }
        conn.process_new_packets()?;
        while conn.wants_write() {
            conn.write_tls(&mut sock)?;
        }
        if let Some(mut e) = conn.early_data() {
            if e.read(&mut b)? == 1 {
                break true;
            }
        }
        match conn.reader().read(&mut b) {
            Ok(1) => break false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    };
    // 0.5-RTT data, as for ours: not through the stream, which would wait
    // for the client's Finished first.
    conn.writer()
        .write_all(&[if early { EARLY } else { NORMAL }])?;
    while conn.wants_write() {
        conn.write_tls(&mut sock)?;
    }
    let mut s = rustls::StreamOwned::new(conn, sock);
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf), Ok(1..)) {}
    Ok(())
}

/// A server of one stack on loopback, one thread per connection.
fn spawn_server(
    which: Impl,
    mls: Option<&MlsStack>,
    tls: Option<&RustlsStack>,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mls = mls.map(|s| s.server.clone());
    let tls = tls.map(|s| s.server.clone());
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let _ = sock.set_nodelay(true);
            let (mls, tls) = (mls.clone(), tls.clone());
            thread::spawn(move || {
                let r = match (which, mls, tls) {
                    (Impl::Ours, Some(c), _) => serve_mls(ServerConnection::new(c), sock),
                    (Impl::Rustls, _, Some(c)) => rustls::ServerConnection::new(c)
                        .map_err(BoxError::from)
                        .and_then(|conn| serve_rustls(conn, sock)),
                    _ => Ok(()),
                };
                drop(r);
            });
        }
    });
    Ok(addr)
}

/// One measured resumption: returns (time to first byte, early data
/// accepted by both ends).
type Sample = (Duration, bool);

fn mls_round(stack: &MlsStack, addr: SocketAddr) -> Result<(Duration, Sample), BoxError> {
    // A full handshake gives a session to resume.
    let start = Instant::now();
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    let mut c = StreamOwned::new(ClientConnection::new(stack.client.clone())?, sock);
    let mut b = [0u8; 1];
    c.write_all(b"r")?;
    c.read_exact(&mut b)?;
    let full = start.elapsed();
    let id = c.conn.session_id().cloned().ok_or("no session id")?;
    c.close()?;
    drop(c);

    let start = Instant::now();
    let mut conn = ClientConnection::resume(stack.client.clone(), &id)?;
    conn.writer().write_all(b"r")?;
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    let mut c = StreamOwned::new(conn, sock);
    c.flush()?;
    c.read_exact(&mut b)?;
    let t = start.elapsed();
    let accepted = b[0] == EARLY && c.conn.is_early_data_accepted();
    c.close()?;
    Ok((full, (t, accepted)))
}

fn rustls_round(stack: &RustlsStack, addr: SocketAddr) -> Result<(Duration, Sample), BoxError> {
    // A full handshake gives a ticket to resume with (read with the reply).
    let start = Instant::now();
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    let conn = rustls::ClientConnection::new(stack.client_resume.clone(), server_name())?;
    let mut c = rustls::StreamOwned::new(conn, sock);
    let mut b = [0u8; 1];
    c.write_all(b"r")?;
    c.read_exact(&mut b)?;
    let full = start.elapsed();
    c.conn.send_close_notify();
    c.flush()?;
    drop(c);

    let start = Instant::now();
    let mut conn = rustls::ClientConnection::new(stack.client_resume.clone(), server_name())?;
    let sent_early = match conn.early_data() {
        Some(mut e) => e.write(b"r")? == 1,
        None => false,
    };
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    let mut c = rustls::StreamOwned::new(conn, sock);
    if !sent_early {
        c.write_all(b"r")?;
    }
    c.flush()?;
    c.read_exact(&mut b)?;
    let t = start.elapsed();
    let accepted = sent_early && b[0] == EARLY && c.conn.is_early_data_accepted();
    c.conn.send_close_notify();
    c.flush()?;
    Ok((full, (t, accepted)))
}

/// First-byte rows for `kx`, for each RTT in `rtts_ms`, `rounds` rounds of
/// each stack alternately.
pub(crate) fn rows(kx: Kx, rtts_ms: &[u64], rounds: usize) -> Result<Vec<Row>, BoxError> {
    let (mls, tls) = (MlsStack::new(kx)?, RustlsStack::new(kx)?);
    let ours_addr = spawn_server(Impl::Ours, Some(&mls), None)?;
    let theirs_addr = spawn_server(Impl::Rustls, None, Some(&tls))?;
    let k = Some(kx);
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let mut rows = Vec::new();
    let (mut base_o, mut base_t) = (None, None);
    let (mut acc_o, mut acc_t) = (Vec::new(), Vec::new());
    for &rtt in rtts_ms {
        let one_way = Duration::from_micros(rtt * 500);
        let (ro, rt) = (
            Relay::start(ours_addr, one_way)?,
            Relay::start(theirs_addr, one_way)?,
        );
        let (mut o, mut t) = ((vec![], vec![]), (vec![], vec![]));
        // One unmeasured round each.
        mls_round(&mls, ro.addr())?;
        rustls_round(&tls, rt.addr())?;
        for _ in 0..rounds.max(1) {
            let (full, (time, ok)) = mls_round(&mls, ro.addr())?;
            o.0.push(ms(&full));
            o.1.push(ms(&time));
            acc_o.push(f64::from(u8::from(ok)));
            let (full, (time, ok)) = rustls_round(&tls, rt.addr())?;
            t.0.push(ms(&full));
            t.1.push(ms(&time));
            acc_t.push(f64::from(u8::from(ok)));
        }
        let (mo, mt) = (median(&o.1), median(&t.1));
        let (bo, bt) = (*base_o.get_or_insert(mo), *base_t.get_or_insert(mt));
        rows.push(
            Row::new(
                &format!("resume.first_byte_ms.rtt{rtt}"),
                k,
                &format!("resumed, early data: first response byte, RTT {rtt} ms"),
                "ms",
                Better::Lower,
                o.1.clone(),
                t.1.clone(),
            )
            .note("from creating the resumed client (before connect) to the first response byte; the request travels as early data"),
        );
        if rtt > 0 {
            let rtt_ms = rtt as f64;
            let trips = |v: &[f64], base: f64| v.iter().map(|x| (x - base) / rtt_ms).collect();
            rows.push(
                Row::new(
                    &format!("resume.round_trips.rtt{rtt}"),
                    k,
                    &format!("resumed, early data: implied round trips, RTT {rtt} ms"),
                    "RTT",
                    Better::Lower,
                    trips(&o.1, bo),
                    trips(&t.1, bt),
                )
                .note("(time - median time at the smallest RTT measured) / RTT"),
            );
        }
        rows.push(
            Row::new(
                &format!("new.first_byte_ms.rtt{rtt}"),
                k,
                &format!("new session: first response byte, RTT {rtt} ms"),
                "ms",
                Better::Lower,
                o.0,
                t.0,
            )
            .note("full handshake from connect, request written at once (for context)"),
        );
    }
    rows.push(
        Row::new(
            "resume.early_data_accepted",
            k,
            "resumed: early data accepted by both ends",
            "fraction",
            Better::Higher,
            acc_o,
            acc_t,
        )
        .note("1 when the server read the request as early data and the client saw it accepted"),
    );
    Ok(rows)
}
