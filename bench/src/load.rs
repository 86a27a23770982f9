//! Many connections at once (issue 12): one server, `conns` concurrent
//! tokio connections streaming both ways with key updates by byte count on
//! both sides, every byte checked by the other end; then an update storm
//! (every client asks for an update every 10 ms while streaming). Pass: no
//! connection failed or stuck. `mlstls bench load` runs the server in a
//! child process so its memory and CPU are its own; the test runs a small
//! variant in one process.

use std::io::{self, BufRead as _, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mls_tls::conn::{ClientConfig, ServerConfig, UpdatePolicy};
use mls_tls::credentials::{Identity, PinnedKeys};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::SessionStore;
use mls_tls::tokio::{Acceptor, Connector, TlsStream};
use serde::{Deserialize, Serialize};

use crate::memory::proc_status_bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Bytes per write.
const CHUNK: usize = 16 * 1024;
/// Handshakes in flight at once while connecting (a ramp, so that 1,000
/// simultaneous handshakes do not starve each other past their timeout).
const CONNECTING: usize = 32;
/// Marks a paced connection in the id it sends first.
const PACED: u64 = 1 << 63;
/// The storm's update request interval and write pace.
const STORM_EVERY: Duration = Duration::from_millis(10);
/// After the streaming time, connections that moved no byte for this long
/// count as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(30);
/// Socket buffers of both ends: a realistic bandwidth-delay product rather
/// than loopback's megabytes, which would queue each key update behind
/// seconds of data.
pub const SOCKET_BUFFER: u32 = 128 * 1024;

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Concurrent connections per phase.
    pub conns: usize,
    /// Seconds each connection of the first phase streams.
    pub secs: u64,
    /// Seconds each connection of the storm phase streams (0: no storm).
    pub storm_secs: u64,
    /// Key update after this many bytes sent plus received, both sides.
    pub update_bytes: u64,
    /// The ciphersuite.
    pub suite: u16,
}

impl LoadOptions {
    /// The full run: 1,000 connections for 60 s, updates every
    /// MiB, then a 20 s storm.
    pub fn full() -> Self {
        Self {
            conns: 1000,
            secs: 60,
            storm_secs: 20,
            update_bytes: 1 << 20,
            suite: CipherSuite::DEFAULT.code_point(),
        }
    }
}

/// One phase's outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Connections started.
    pub conns: usize,
    /// Connections that ended with both streams complete and verified.
    pub ok: usize,
    /// Connections that failed (handshake, I/O, protocol, a wrong byte).
    pub failed: usize,
    /// Connections still running at the deadline.
    pub stuck: usize,
    /// Application bytes received by clients plus by the server.
    pub bytes: u64,
    /// Epochs gained by all client connections (update rounds).
    pub update_rounds: u64,
    /// Wall-clock seconds of the phase.
    pub secs: f64,
    /// First failure messages (at most 5).
    pub errors: Vec<String>,
}

/// What the server process reports when it ends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerReport {
    /// Connections that ended verified.
    pub ok: usize,
    /// Connections that failed.
    pub failed: usize,
    /// Peak resident memory (VmHWM) in bytes.
    pub peak_rss: u64,
    /// Resident memory before the first connection, in bytes.
    pub base_rss: u64,
    /// CPU seconds (user + system) of the server process.
    pub cpu_secs: f64,
    /// First failure messages (at most 5).
    pub errors: Vec<String>,
}

/// Fresh identities for both sides.
pub fn identities(opts: &LoadOptions) -> Result<(Identity, Identity), String> {
    let suite = CipherSuite::from_code_point(opts.suite).ok_or("unknown suite")?;
    let id = |name| Identity::generate(name, suite).map_err(|e| e.to_string());
    Ok((id("load-client")?, id("load-server")?))
}

/// Configurations pinning each other's key, with updates by byte count on
/// both sides.
pub fn configs(
    opts: &LoadOptions,
    client: Identity,
    server: Identity,
) -> Result<(Arc<ClientConfig>, Arc<ServerConfig>), String> {
    let policy = UpdatePolicy {
        interval: None,
        bytes: Some(opts.update_bytes),
        ..UpdatePolicy::default()
    };
    let store = || {
        SessionStore::in_memory()
            .map(Arc::new)
            .map_err(|e| e.to_string())
    };
    let (client_key, server_key) = (client.public_key().to_vec(), server.public_key().to_vec());
    let cc = ClientConfig::new(client, Arc::new(PinnedKeys::new([server_key])), store()?)
        .update_policy(policy);
    let sc = ServerConfig::new(server, Arc::new(PinnedKeys::new([client_key])), store()?)
        .update_policy(policy);
    Ok((Arc::new(cc), Arc::new(sc)))
}

/// The storm: the client asks for an update every 10 ms while it streams
/// (the interval policy is checked on every write).
pub fn storm_policy(opts: &LoadOptions) -> UpdatePolicy {
    UpdatePolicy {
        interval: Some(STORM_EVERY),
        bytes: Some(opts.update_bytes),
        ..UpdatePolicy::default()
    }
}

/// A deterministic byte stream per connection and direction, so the
/// receiver can check every byte without a copy of what was sent.
struct Pattern(u64);

impl Pattern {
    fn new(conn: u64, to_server: bool) -> Self {
        Self((conn << 1 | to_server as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            // xorshift64
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Checks a received stream against its pattern; read boundaries do not
/// matter, and a stream may end anywhere.
struct Checker {
    pattern: Pattern,
    expected: Vec<u8>,
    total: u64,
}

impl Checker {
    fn new(conn: u64, to_server: bool) -> Self {
        Self {
            pattern: Pattern::new(conn, to_server),
            expected: Vec::new(),
            total: 0,
        }
    }

    fn check(&mut self, got: &[u8]) -> Result<(), String> {
        if self.expected.len() < got.len() {
            let have = self.expected.len();
            let more = (got.len() - have).div_ceil(8) * 8;
            self.expected.resize(have + more, 0);
            self.pattern.fill(&mut self.expected[have..]);
        }
        if self.expected[..got.len()] != *got {
            return Err(format!("wrong byte near offset {}", self.total));
        }
        self.expected.drain(..got.len());
        self.total += got.len() as u64;
        Ok(())
    }
}

/// Streams the pattern for `secs` (or until `until_eof` says the peer
/// ended, on the server) while checking what arrives; returns bytes
/// received.
async fn exchange<IO>(
    tls: TlsStream<IO>,
    conn: u64,
    client: bool,
    secs: Duration,
    paced: bool,
    progress: Arc<AtomicU64>,
) -> Result<(u64, u64), String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let epoch0 = tls.get_ref().1.epoch().unwrap_or(0);
    let (mut rd, mut wr) = tokio::io::split(tls);
    let peer_done = Arc::new(tokio::sync::Notify::new());
    let notify = peer_done.clone();
    let read_progress = progress.clone();
    let reader = async move {
        // What the peer sends: to the server when we are the client's peer.
        let mut check = Checker::new(conn, !client);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = rd.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                notify.notify_one();
                return Ok::<_, String>((check.total, rd));
            }
            check.check(&buf[..n])?;
            read_progress.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let writer = async move {
        let mut pattern = Pattern::new(conn, client);
        // Paced (the storm): small writes every 10 ms, so that updates are
        // not queued behind megabytes of data in the socket buffers.
        let mut chunk = vec![0u8; if paced { 1024 } else { CHUNK }];
        let end = Instant::now() + secs;
        let done = peer_done.notified();
        tokio::pin!(done);
        loop {
            if client && Instant::now() >= end {
                break;
            }
            pattern.fill(&mut chunk);
            tokio::select! {
                r = wr.write_all(&chunk) => {
                    r.map_err(|e| format!("write: {e}"))?;
                    progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                () = &mut done, if !client => break,
            }
            if paced {
                // Flush so the update the write may have started leaves.
                wr.flush().await.map_err(|e| format!("flush: {e}"))?;
                tokio::time::sleep(STORM_EVERY).await;
            }
        }
        wr.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
        Ok::<_, String>(wr)
    };
    let (read, written) = tokio::join!(reader, writer);
    let (received, rd) = read?;
    let wr = written?;
    let tls = rd.unsplit(wr);
    let epochs = tls.get_ref().1.epoch().unwrap_or(0).saturating_sub(epoch0);
    Ok((received, epochs))
}

/// Serves connections on `listener` until `stop` resolves, checking each;
/// counts into the returned report.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stop: impl std::future::Future<Output = ()>,
) -> ServerReport {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let base_rss = proc_status_bytes("VmRSS:").unwrap_or(0);
    let acceptor = Acceptor::new(config);
    let cpu0 = process_cpu();
    tokio::pin!(stop);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                // Out of descriptors or similar: back off, keep serving.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue }
            },
            () = &mut stop => break,
        };
        let acceptor = acceptor.clone();
        let (ok, failed, bytes, errors) =
            (ok.clone(), failed.clone(), bytes.clone(), errors.clone());
        tasks.spawn(async move {
            let result = async {
                let mut tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| format!("accept: {e}"))?;
                let mut id = [0u8; 8];
                tls.read_exact(&mut id)
                    .await
                    .map_err(|e| format!("read id: {e}"))?;
                // The top bit of the id says the client paces (the storm).
                let id = u64::from_le_bytes(id);
                let progress = Arc::new(AtomicU64::new(0));
                exchange(
                    tls,
                    id & !PACED,
                    false,
                    Duration::ZERO,
                    id & PACED != 0,
                    progress,
                )
                .await
            }
            .await;
            match result {
                Ok((n, _)) => {
                    bytes.fetch_add(n, Ordering::Relaxed);
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let mut errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                    if errors.len() < 5 {
                        errors.push(e);
                    }
                }
            }
        });
    }
    // Connections still running are counted as failed by the clients.
    tasks.abort_all();
    let errors = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    ServerReport {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        peak_rss: proc_status_bytes("VmHWM:").unwrap_or(0),
        base_rss,
        cpu_secs: process_cpu() - cpu0,
        errors,
    }
}

/// Runs one phase of clients against `addr`.
pub async fn clients(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    conns: usize,
    secs: u64,
    first_id: u64,
    paced: bool,
) -> PhaseReport {
    let start = Instant::now();
    let connector = Connector::new(config);
    let ramp = Arc::new(Semaphore::new(CONNECTING));
    // Bytes moved by all connections of the phase, to tell slow from stuck.
    let progress = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let connector = connector.clone();
        let ramp = ramp.clone();
        let conn = first_id + i as u64;
        let progress = progress.clone();
        tasks.spawn(async move {
            let mut tls = {
                let _permit = ramp.acquire().await.map_err(|e| e.to_string())?;
                let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                socket
                    .set_send_buffer_size(SOCKET_BUFFER)
                    .and_then(|()| socket.set_recv_buffer_size(SOCKET_BUFFER))
                    .map_err(|e| e.to_string())?;
                let tcp = socket
                    .connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                connector
                    .connect(tcp)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?
            };
            let id = if paced { conn | PACED } else { conn };
            tls.write_all(&id.to_le_bytes())
                .await
                .map_err(|e| format!("write id: {e}"))?;
            exchange(tls, conn, true, Duration::from_secs(secs), paced, progress).await
        });
    }
    let mut report = PhaseReport {
        conns,
        ..PhaseReport::default()
    };
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut last = (
        progress.load(Ordering::Relaxed),
        tokio::time::Instant::now(),
    );
    loop {
        let check = tokio::time::sleep(Duration::from_secs(1));
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok((bytes, epochs)))) => {
                    report.ok += 1;
                    report.bytes += bytes;
                    report.update_rounds += epochs;
                }
                Some(Ok(Err(e))) => {
                    report.failed += 1;
                    if report.errors.len() < 5 {
                        report.errors.push(e);
                    }
                }
                Some(Err(e)) => {
                    report.failed += 1;
                    if report.errors.len() < 5 {
                        report.errors.push(format!("task: {e}"));
                    }
                }
            },
            () = check => {
                let now = tokio::time::Instant::now();
                let moved = progress.load(Ordering::Relaxed);
                if moved != last.0 {
                    last = (moved, now);
                } else if now > end && now - last.1 >= STUCK_AFTER {
                    // Nothing moved for a long time after the end: stuck.
                    report.stuck = tasks.len();
                    tasks.abort_all();
                    break;
                }
            }
        }
    }
    report.secs = start.elapsed().as_secs_f64();
    report
}

/// The server side of `mlstls bench load`: prints its port, serves until
/// standard input closes, then prints its [`ServerReport`] as JSON.
pub fn serve_child(opts: &LoadOptions, client: Identity, server: Identity) -> Result<(), String> {
    raise_fd_limit(opts.conns)?;
    let (_, sc) = configs(opts, client, server)?;
    let rt = runtime()?;
    rt.block_on(async {
        let listener = listener().map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        println!("{port}");
        io::stdout().flush().map_err(|e| e.to_string())?;
        let stop = async {
            // Standard input closing is the signal to stop.
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                while io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
                    line.clear();
                }
            })
            .await;
        };
        let report = serve(listener, sc, stop).await;
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
        Ok(())
    })
}

/// A loopback listener whose accepted sockets get [`SOCKET_BUFFER`].
pub fn listener() -> io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_send_buffer_size(SOCKET_BUFFER)?;
    socket.set_recv_buffer_size(SOCKET_BUFFER)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(1024)
}

/// A multi-threaded runtime with I/O and timers.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Raises the soft file-descriptor limit to fit `conns` sockets plus room.
pub fn raise_fd_limit(conns: usize) -> Result<(), String> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).map_err(|e| e.to_string())?;
    if (limit as usize) < conns + 64 {
        return Err(format!(
            "RLIMIT_NOFILE is {limit}: {conns} connections need at least {}",
            conns + 64
        ));
    }
    Ok(())
}

/// CPU seconds (user + system) of this process.
pub fn process_cpu() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// `mlstls bench load`: runs the server as `server_cmd` (a child process
/// that calls [`serve_child`]), both phases of clients in this process,
/// and prints what happened. Fails if any connection failed or got stuck.
pub fn run(opts: &LoadOptions, server_cmd: &[std::ffi::OsString]) -> Result<(), String> {
    use std::process::{Command, Stdio};
    raise_fd_limit(opts.conns)?;
    let (client, server) = identities(opts)?;
    let (cc, _) = configs(
        opts,
        Identity::from_bytes(&client.to_bytes().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
        Identity::from_bytes(&server.to_bytes().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
    )?;
    // Both identities for the child, in a private file removed once read.
    let dir = std::env::temp_dir().join(format!("mlstls-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("identities");
    let mut blob = Vec::new();
    for id in [&client, &server] {
        let bytes = id.to_bytes().map_err(|e| e.to_string())?;
        blob.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        blob.extend_from_slice(&bytes);
    }
    write_private(&file, &blob)?;
    let (program, args) = server_cmd.split_first().ok_or("no server command")?;
    let mut child = Command::new(program)
        .args(args)
        .arg("--identities")
        .arg(&file)
        .args(["--conns", &opts.conns.to_string()])
        .args(["--update-bytes", &opts.update_bytes.to_string()])
        .args(["--suite", &format!("{:#06x}", opts.suite)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    let mut out = io::BufReader::new(child.stdout.take().ok_or("no server stdout")?);
    let mut line = String::new();
    out.read_line(&mut line).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    let port: u16 = line
        .trim()
        .parse()
        .map_err(|_| format!("server said {line:?} instead of its port"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let storm = Arc::new((*cc).clone().update_policy(storm_policy(opts)));
    let rt = runtime()?;
    let cpu0 = process_cpu();
    let (phase, storm_phase) = rt.block_on(async {
        let phase = clients(addr, cc, opts.conns, opts.secs, 0, false).await;
        let storm_phase = if opts.storm_secs > 0 {
            Some(clients(addr, storm, opts.conns, opts.storm_secs, 1 << 32, true).await)
        } else {
            None
        };
        (phase, storm_phase)
    });
    let client_cpu = process_cpu() - cpu0;
    drop(child.stdin.take()); // tells the server to stop
    line.clear();
    out.read_line(&mut line).map_err(|e| e.to_string())?;
    let _ = child.wait();
    let server: ServerReport =
        serde_json::from_str(line.trim()).map_err(|e| format!("server report {line:?}: {e}"))?;
    print_report(opts, &phase, storm_phase.as_ref(), &server, client_cpu);
    let bad = phase.failed + phase.stuck + storm_phase.as_ref().map_or(0, |p| p.failed + p.stuck);
    if bad > 0 || server.failed > 0 {
        return Err(format!(
            "{bad} client connections failed or stuck, {} on the server",
            server.failed
        ));
    }
    Ok(())
}

fn print_report(
    opts: &LoadOptions,
    phase: &PhaseReport,
    storm: Option<&PhaseReport>,
    server: &ServerReport,
    client_cpu: f64,
) {
    println!(
        "load: {} connections, suite {:#06x}, updates every {} B on both sides",
        opts.conns, opts.suite, opts.update_bytes
    );
    let row = |name: &str, p: &PhaseReport| {
        println!(
            "{name:<8} ok {:>5}  failed {:>3}  stuck {:>3}  {:>8.1} MiB received by clients  \
             {:>7} update rounds  {:>7.1} rounds/s  {:>6.1} s",
            p.ok,
            p.failed,
            p.stuck,
            p.bytes as f64 / 1048576.0,
            p.update_rounds,
            p.update_rounds as f64 / p.secs.max(1e-9),
            p.secs
        );
        for e in &p.errors {
            println!("         error: {e}");
        }
    };
    row("stream", phase);
    if let Some(storm) = storm {
        row("storm", storm);
    }
    let per_conn = server.peak_rss.saturating_sub(server.base_rss) as f64 / opts.conns as f64;
    println!(
        "server: {} connections ok, {} failed; peak RSS {:.1} MiB, {:.1} KiB per concurrent connection \
         above the idle process; CPU {:.1} s",
        server.ok,
        server.failed,
        server.peak_rss as f64 / 1048576.0,
        per_conn / 1024.0,
        server.cpu_secs
    );
    for e in &server.errors {
        println!("         error: {e}");
    }
    println!("clients: CPU {client_cpu:.1} s (all phases, this process)");
}

/// Writes `bytes` to a new file only the owner can read.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| e.to_string())
}

/// Reads the identities [`run`] wrote for the server child.
pub fn read_identities(path: &std::path::Path) -> Result<(Identity, Identity), String> {
    let blob = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rest = &blob[..];
    let mut next = || -> Result<Identity, String> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("identities file cut short")?;
        let len = u32::from_be_bytes(*len) as usize;
        let bytes = tail.get(..len).ok_or("identities file cut short")?;
        rest = &tail[len..];
        Identity::from_bytes(bytes).map_err(|e| e.to_string())
    };
    let client = next()?;
    let server = next()?;
    Ok((client, server))
}
