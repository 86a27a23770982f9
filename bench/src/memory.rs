//! Resident memory per idle connection: open many connections of one stack
//! in one process (tokio, loopback TCP, both ends kept), divide the growth
//! of VmRSS by the count. Best run in a fresh process per stack (see
//! [`crate::Options::child`]), since freed memory stays with the allocator.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::stacks::{server_name, BoxError, Impl, Kx, MlsStack, RustlsStack};

/// What one memory measurement found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemSample {
    /// Connections asked for.
    pub requested: usize,
    /// Connections opened (fewer when file descriptors ran short).
    pub count: usize,
    /// VmRSS growth divided by `count`, in bytes; both ends of each
    /// connection (client and server objects, socket buffers excluded).
    pub per_conn_bytes: f64,
    /// What was measured, e.g. "loopback TCP, fresh process".
    pub transport: String,
    /// Why `count` is smaller than `requested`, if it is.
    pub limited_by: Option<String>,
}

/// Resident set size in bytes, from /proc/self/status.
pub fn rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

/// A memory field of /proc/self/status (e.g. "VmRSS:", "VmHWM:") in bytes.
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = s
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// How many connection pairs fit the file-descriptor limit, after raising
/// the soft limit to the hard one.
fn fd_budget(requested: usize) -> (usize, Option<String>) {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    // Two sockets per pair, and room for the listener, stdio, the runtime.
    let fit = (limit.saturating_sub(64) / 2) as usize;
    if fit < requested {
        (
            fit,
            Some(format!(
                "RLIMIT_NOFILE {limit}: {fit} pairs fit (2 sockets each)"
            )),
        )
    } else {
        (requested, None)
    }
}

type Held = Box<dyn std::any::Any>;

/// Opens one connection pair with one request/response, returns both ends.
async fn open_pair(
    which: Impl,
    listener: &TcpListener,
    mls: &Option<MlsStack>,
    tls: &Option<RustlsStack>,
) -> Result<(Held, Held), BoxError> {
    let addr = listener.local_addr()?;
    let client = async {
        let sock = TcpStream::connect(addr).await?;
        // Without it, Nagle and delayed ACKs stall each handshake ~40 ms.
        sock.set_nodelay(true)?;
        let mut b = [1u8];
        let held: Held = match (which, mls, tls) {
            (Impl::Ours, Some(s), _) => {
                let c = mls_tls::tokio::Connector::new(s.client.clone());
                let mut t = c.connect(sock).await?;
                t.write_all(&b).await?;
                t.flush().await?;
                t.read_exact(&mut b).await?;
                Box::new(t)
            }
            (Impl::Rustls, _, Some(s)) => {
                let c = tokio_rustls::TlsConnector::from(s.client_full.clone());
                let mut t = c.connect(server_name(), sock).await?;
                t.write_all(&b).await?;
                t.flush().await?;
                t.read_exact(&mut b).await?;
                Box::new(t)
            }
            _ => return Err::<Held, BoxError>("stack not configured".into()),
        };
        Ok(held)
    };
    let server = async {
        let (sock, _) = listener.accept().await?;
        sock.set_nodelay(true)?;
        let mut b = [0u8];
        let held: Held = match (which, mls, tls) {
            (Impl::Ours, Some(s), _) => {
                let a = mls_tls::tokio::Acceptor::new(s.server.clone());
                let mut t = a.accept(sock).await?;
                t.read_exact(&mut b).await?;
                t.write_all(&b).await?;
                t.flush().await?;
                Box::new(t)
            }
            (Impl::Rustls, _, Some(s)) => {
                let a = tokio_rustls::TlsAcceptor::from(s.server.clone());
                let mut t = a.accept(sock).await?;
                t.read_exact(&mut b).await?;
                t.write_all(&b).await?;
                t.flush().await?;
                Box::new(t)
            }
            _ => return Err::<Held, BoxError>("stack not configured".into()),
        };
        Ok(held)
    };
    let (c, s) = tokio::join!(client, server);
    Ok((c?, s?))
}

/// Measures one stack in this process; with `store_dir`, MLS-TLS sessions
/// go to SQLite files there instead of memory (on tmpfs, that leaves only
/// connection state in the process's resident memory).
pub fn measure(
    which: Impl,
    kx: Kx,
    requested: usize,
    store_dir: Option<&std::path::Path>,
) -> Result<MemSample, BoxError> {
    let (count, limited_by) = fd_budget(requested);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (mls, tls) = match which {
            Impl::Ours => (Some(MlsStack::with_store(kx, store_dir)?), None),
            Impl::Rustls => (None, Some(RustlsStack::new(kx)?)),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        // Warm up (lazy statics, allocator arenas), then take the baseline.
        for _ in 0..8 {
            open_pair(which, &listener, &mls, &tls).await?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = rss_bytes().ok_or("no VmRSS in /proc/self/status")?;
        let mut held = Vec::with_capacity(2 * count);
        for _ in 0..count {
            let (c, s) = open_pair(which, &listener, &mls, &tls).await?;
            held.push(c);
            held.push(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after = rss_bytes().ok_or("no VmRSS in /proc/self/status")?;
        drop(held);
        let transport = match store_dir {
            Some(d) => format!("loopback TCP, sessions in files under {}", d.display()),
            None => "loopback TCP".into(),
        };
        Ok(MemSample {
            requested,
            count,
            per_conn_bytes: after.saturating_sub(before) as f64 / count.max(1) as f64,
            transport,
            limited_by,
        })
    })
}
