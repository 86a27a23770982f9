//! Bulk throughput over one loopback TCP connection, each direction, with
//! blocking streams (one thread per side, as `mlstls bench conn`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use mls_tls::conn::{ClientConnection, ServerConnection};

use crate::report::{Better, Row};
use crate::stacks::{server_name, BoxError, Impl, Kx, MlsStack, ReadWrite, RustlsStack};

/// Application writes of 16 KiB, one maximal record each.
const CHUNK: usize = 16 * 1024;

/// Wraps an accepted or connected socket in one stack's blocking stream.
type Wrap = Arc<dyn Fn(TcpStream) -> Result<Box<dyn ReadWrite>, BoxError> + Send + Sync>;

fn wraps(which: Impl, kx: Kx) -> Result<(Wrap, Wrap), BoxError> {
    Ok(match which {
        Impl::Ours => {
            let s = MlsStack::new(kx)?;
            let (cc, sc) = (s.client, s.server);
            let client: Wrap = Arc::new(move |sock| {
                let conn = ClientConnection::new(cc.clone())?;
                Ok(Box::new(mls_tls::stream::StreamOwned::new(conn, sock)))
            });
            let server: Wrap = Arc::new(move |sock| {
                let conn = ServerConnection::new(sc.clone());
                Ok(Box::new(mls_tls::stream::StreamOwned::new(conn, sock)))
            });
            (client, server)
        }
        Impl::Rustls => {
            let s = RustlsStack::new(kx)?;
            let (cc, sc) = (s.client_full, s.server);
            let client: Wrap = Arc::new(move |sock| {
                let conn = rustls::ClientConnection::new(cc.clone(), server_name())?;
                Ok(Box::new(rustls::StreamOwned::new(conn, sock)))
            });
            let server: Wrap = Arc::new(move |sock| {
                let conn = rustls::ServerConnection::new(sc.clone())?;
                Ok(Box::new(rustls::StreamOwned::new(conn, sock)))
            });
            (client, server)
        }
    })
}

/// The server side: answer the ping, sink `bytes` and ack, then on the
/// client's go send `bytes`.
fn serve(s: &mut dyn ReadWrite, bytes: usize) -> Result<(), BoxError> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    s.write_all(&b)?;
    s.flush()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = s.read(&mut buf[..left.min(64 * 1024)])?;
        if n == 0 {
            return Err("eof during bulk".into());
        }
        left -= n;
    }
    s.write_all(b"a")?;
    s.flush()?;
    s.read_exact(&mut b)?;
    let chunk = vec![0x5a; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK);
        s.write_all(&chunk[..n])?;
        left -= n;
    }
    s.flush()?;
    // Wait for the client to finish reading before the socket closes.
    let _ = s.read(&mut b);
    Ok(())
}

/// One connection: client-to-server then server-to-client MB/s.
fn once(addr: SocketAddr, client: &Wrap, bytes: usize) -> Result<(f64, f64), BoxError> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    let mut c = client(sock)?;
    let mut b = [1u8; 1];
    c.write_all(&b)?;
    c.flush()?;
    c.read_exact(&mut b)?;

    let chunk = vec![0x5a; CHUNK];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK);
        c.write_all(&chunk[..n])?;
        left -= n;
    }
    c.flush()?;
    c.read_exact(&mut b)?;
    let up = bytes as f64 / start.elapsed().as_secs_f64() / 1e6;

    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    c.write_all(b"g")?;
    c.flush()?;
    let mut left = bytes;
    while left > 0 {
        let n = c.read(&mut buf[..left.min(64 * 1024)])?;
        if n == 0 {
            return Err("eof during bulk".into());
        }
        left -= n;
    }
    let down = bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
    c.write_all(b"x")?;
    c.flush()?;
    Ok((up, down))
}

struct Bench {
    addr: SocketAddr,
    client: Wrap,
    server: thread::JoinHandle<Result<(), String>>,
}

fn start(which: Impl, kx: Kx, bytes: usize, connections: usize) -> Result<Bench, BoxError> {
    let (client, server) = wraps(which, kx)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || -> Result<(), String> {
        for _ in 0..connections {
            let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
            sock.set_nodelay(true).map_err(|e| e.to_string())?;
            let mut s = server(sock).map_err(|e| e.to_string())?;
            serve(&mut *s, bytes).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    Ok(Bench {
        addr,
        client,
        server,
    })
}

/// Throughput rows for `kx`: `reps` connections of each stack, alternating,
/// each moving `bytes` one way and then the other.
pub(crate) fn rows(kx: Kx, bytes: usize, reps: usize) -> Result<Vec<Row>, BoxError> {
    let reps = reps.max(1);
    let ours = start(Impl::Ours, kx, bytes, reps)?;
    let theirs = start(Impl::Rustls, kx, bytes, reps)?;
    let (mut o, mut t) = ((vec![], vec![]), (vec![], vec![]));
    for _ in 0..reps {
        let (up, down) = once(ours.addr, &ours.client, bytes)?;
        o.0.push(up);
        o.1.push(down);
        let (up, down) = once(theirs.addr, &theirs.client, bytes)?;
        t.0.push(up);
        t.1.push(down);
    }
    for b in [ours, theirs] {
        b.server.join().map_err(|_| "server panicked")??;
    }
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let note = format!(
        "{mib:.0} MiB in 16 KiB writes, one connection, blocking streams, TCP_NODELAY; 10^6 B/s"
    );
    let k = Some(kx);
    Ok(vec![
        Row::new(
            "bulk.c2s_mbps",
            k,
            "bulk throughput, client to server",
            "MB/s",
            Better::Higher,
            o.0,
            t.0,
        )
        .note(note.clone()),
        Row::new(
            "bulk.s2c_mbps",
            k,
            "bulk throughput, server to client",
            "MB/s",
            Better::Higher,
            o.1,
            t.1,
        )
        .note(note),
    ])
}
