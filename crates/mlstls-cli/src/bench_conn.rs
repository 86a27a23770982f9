//! `mlstls bench conn`: MLS-TLS over loopback TCP, measured end to end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::SessionStore;
use mls_tls::stream::StreamOwned;

fn store(dir: Option<&Path>, name: &str) -> Result<Arc<SessionStore>, String> {
    let s = match dir {
        Some(d) => SessionStore::open(d.join(name)),
        None => SessionStore::in_memory(),
    };
    s.map(Arc::new).map_err(|e| e.to_string())
}

fn configs(
    suite: CipherSuite,
    dir: Option<&Path>,
) -> Result<(Arc<ClientConfig>, Arc<ServerConfig>), String> {
    let id = |n| Identity::generate(n, suite).map_err(|e| e.to_string());
    // Bulk figures measure the record layer: no updates mid-transfer.
    let policy = UpdatePolicy::manual();
    let c = ClientConfig::new(id("client")?, Arc::new(AcceptAnyPeer), store(dir, "c.db")?)
        .update_policy(policy);
    let s = ServerConfig::new(id("server")?, Arc::new(AcceptAnyPeer), store(dir, "s.db")?)
        .update_policy(policy);
    Ok((Arc::new(c), Arc::new(s)))
}

/// A server answering each connection's one-byte request with one byte,
/// then (for the throughput run) draining everything.
fn server(listener: TcpListener, config: Arc<ServerConfig>, connections: usize) {
    for _ in 0..connections {
        let Ok((sock, _)) = listener.accept() else {
            return;
        };
        let _ = sock.set_nodelay(true);
        let mut s = StreamOwned::new(ServerConnection::new(config.clone()), sock);
        let mut byte = [0u8; 1];
        if s.read_exact(&mut byte).is_err() || s.write_all(&byte).is_err() {
            continue;
        }
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn run(
    mib: usize,
    rounds: usize,
    suites: Vec<CipherSuite>,
    durable: bool,
) -> Result<(), String> {
    let suites = if suites.is_empty() {
        vec![
            CipherSuite::X25519Aes128GcmSha256Ed25519,
            CipherSuite::DEFAULT,
        ]
    } else {
        suites
    };
    let dir = std::env::temp_dir().join(format!("mlstls-bench-conn-{}", std::process::id()));
    let dir_opt = durable.then_some(dir.as_path());
    if durable {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    }
    println!(
        "loopback TCP, {mib} MiB in 16 KiB writes; first byte: median of {rounds}; sessions {}",
        if durable {
            "in SQLite files"
        } else {
            "in memory"
        }
    );
    println!(
        "{:<44} {:>10} {:>18} {:>22}",
        "suite", "MB/s", "new: first byte ms", "resumed: first byte ms"
    );
    let rounds = rounds.max(1);
    for suite in suites {
        let (cc, sc) = configs(suite, dir_opt)?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let srv = {
            let sc = sc.clone();
            thread::spawn(move || server(listener, sc, 1 + 2 * rounds))
        };
        let io = |e: std::io::Error| e.to_string();

        // Throughput: one connection, client to server.
        let sock = TcpStream::connect(addr).map_err(io)?;
        let mut c = StreamOwned::new(
            ClientConnection::new(cc.clone()).map_err(|e| e.to_string())?,
            sock,
        );
        let mut byte = [1u8];
        c.write_all(&byte).map_err(io)?;
        c.read_exact(&mut byte).map_err(io)?;
        let chunk = vec![0x5au8; 16 * 1024];
        let start = Instant::now();
        for _ in 0..mib * 64 {
            c.write_all(&chunk).map_err(io)?;
        }
        c.close().map_err(io)?;
        let secs = start.elapsed().as_secs_f64();
        drop(c);
        let mbps = (mib * 1024 * 1024) as f64 / secs / 1e6;

        // First response byte, new handshake and resumption.
        let (mut new, mut resumed) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let start = Instant::now();
            let sock = TcpStream::connect(addr).map_err(io)?;
            sock.set_nodelay(true).map_err(io)?;
            let conn = ClientConnection::new(cc.clone()).map_err(|e| e.to_string())?;
            let mut c = StreamOwned::new(conn, sock);
            c.write_all(&byte).map_err(io)?;
            c.read_exact(&mut byte).map_err(io)?;
            new.push(start.elapsed());
            let id = c.conn.session_id().cloned().ok_or("no session")?;
            c.close().map_err(io)?;
            drop(c);

            let start = Instant::now();
            let mut conn = ClientConnection::resume(cc.clone(), &id).map_err(|e| e.to_string())?;
            conn.writer().write_all(&byte).map_err(io)?;
            let sock = TcpStream::connect(addr).map_err(io)?;
            sock.set_nodelay(true).map_err(io)?;
            let mut c = StreamOwned::new(conn, sock);
            c.flush().map_err(io)?;
            c.read_exact(&mut byte).map_err(io)?;
            resumed.push(start.elapsed());
            c.close().map_err(io)?;
        }
        srv.join().map_err(|_| "server thread panicked")?;
        println!(
            "{:<44} {:>10.0} {:>18.2} {:>22.2}",
            suite.to_string(),
            mbps,
            median(&mut new).as_secs_f64() * 1e3,
            median(&mut resumed).as_secs_f64() * 1e3
        );
    }
    if durable {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
