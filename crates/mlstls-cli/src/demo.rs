//! `mlstls demo`: the whole protocol in one process on loopback TCP, with
//! throwaway identities and temporary SQLite stores: a new session, a bulk
//! transfer with key updates, an explicit update round, a cut connection, a
//! resumption with early data and a clean close, each timed and verified,
//! then a summary table.
//!
//! The demo's own request protocol: the client sends a length (u64,
//! big-endian) and that many bytes; the server answers each request with
//! [`ACK_LEN`] bytes: their SHA-256, their count and its MLS epoch.

use std::fmt::Display;
use std::future::Future;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, UNIX_EPOCH};

use aws_lc_rs::digest::{digest, Context as Sha, SHA256};
use clap::Args;
use indicatif::{DecimalBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mls_tls::bench_support::compromise;
use mls_tls::conn::{ClientConfig, ClientConnection, Connection, ServerConfig, UpdatePolicy};
use mls_tls::credentials::{Identity, PinnedKeys};
use mls_tls::crypto::CipherSuite;
use mls_tls::profile::engine::State;
use mls_tls::store::{SessionId, SessionStore};
use mls_tls::tokio::{Acceptor, Connector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Options of `mlstls demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// MiB to stream from client to server.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub(crate) mib: u64,
    /// Ciphersuite: a name or a code point such as 0x0001.
    #[arg(long, default_value = CipherSuite::DEFAULT.name())]
    pub(crate) suite: String,
    /// No progress bar (there is none either when stderr is not a terminal).
    #[arg(long)]
    pub(crate) no_progress: bool,
}

/// Largest write during the transfer, and the server's read size.
const CHUNK: usize = 64 * 1024;
/// The server's answer to a request: digest, length, epoch.
const ACK_LEN: usize = 32 + 8 + 8;
/// Early data written right after starting the resumption.
const EARLY_LEN: usize = 4096;
/// Least number of key updates the transfer must show.
const MIN_UPDATES: u64 = 10;
/// Hang guard for every step but the transfer; says nothing about speed.
const STEP_LIMIT: Duration = Duration::from_secs(30);

/// Runs the demo; `Err` names the first check that failed.
pub(crate) fn run(args: DemoArgs) -> Result<(), String> {
    let suite: CipherSuite = args.suite.parse().map_err(|e| format!("--suite: {e}"))?;
    let nanos = UNIX_EPOCH.elapsed().map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("mlstls-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = TempDir(dir);
    let runtime = crate::common::runtime()?;
    // Ctrl-C ends the demo through the same clean-up as a failure.
    let summary = runtime.block_on(async {
        tokio::select! {
            summary = demo(&args, suite, &dir.0) => summary,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    // The server task holds its store: end it before the files go.
    drop(runtime);
    print!("{}", summary?);
    println!("demo: all checks passed");
    Ok(())
}

/// Removes the demo's directory when dropped, whether the demo passed or not.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An error's text.
fn text(e: impl Display) -> String {
    e.to_string()
}

/// `Err(msg)` unless `ok`.
fn ensure(ok: bool, msg: &str) -> Result<(), String> {
    ok.then_some(()).ok_or_else(|| msg.to_owned())
}

/// Runs one step with a hang guard; its errors get `what: ` in front.
async fn step<T>(
    what: &str,
    limit: Duration,
    f: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(|e| format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: nothing within {} s", limit.as_secs())),
    }
}

/// Bytes on the client's wire, both connections together.
#[derive(Debug, Default)]
struct Wire {
    sent: AtomicU64,
    received: AtomicU64,
}

/// A transport that adds what it carries to a [`Wire`].
#[derive(Debug)]
struct Counted {
    io: TcpStream,
    wire: Arc<Wire>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.wire.received.fetch_add(n as u64, Relaxed);
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, b);
        if let Poll::Ready(Ok(n)) = r {
            this.wire.sent.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The client's TLS stream.
type Client = TlsStream<Counted>;

/// A stream shared by a reading and a writing future. Unlike
/// `tokio::io::split` it keeps the connection in reach; `TlsStream` is full
/// duplex, so each side only holds the lock for one poll.
struct Shared(Arc<Mutex<Client>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Client> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for Shared {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write(cx, b)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_shutdown(cx)
    }
}

/// What the server saw on one connection.
#[derive(Debug)]
struct ServerReport {
    session: Option<SessionId>,
    requests: u64,
    epoch: Option<u64>,
    /// `Ok` after the client's close_notify, answered with ours.
    end: io::Result<()>,
}

/// Where the server reports.
type Reports = mpsc::UnboundedSender<ServerReport>;

/// Accepts connections one after the other and reports on each.
async fn server(listener: TcpListener, acceptor: Acceptor, reports: Reports) {
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        let (mut session, mut requests, mut epoch) = (None, 0, None);
        let end = match acceptor.accept(tcp).await {
            Ok(mut tls) => {
                let end = serve(&mut tls, &mut requests).await;
                session = tls.get_ref().1.session_id().cloned();
                epoch = tls.get_ref().1.epoch();
                end
            }
            Err(e) => Err(e),
        };
        let report = ServerReport {
            session,
            requests,
            epoch,
            end,
        };
        if reports.send(report).is_err() {
            return;
        }
    }
}

/// Answers requests until the connection ends; counts them in `requests`.
async fn serve(tls: &mut TlsStream<TcpStream>, requests: &mut u64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut header = [0u8; 8];
        let n = tls.read(&mut header).await?;
        if n == 0 {
            return tls.shutdown().await;
        }
        tls.read_exact(&mut header[n..]).await?;
        let (len, mut got, mut sha) = (u64::from_be_bytes(header), 0, Sha::new(&SHA256));
        while got < len {
            let want = (len - got).min(CHUNK as u64) as usize;
            let at = format!("after {got} of {len} bytes of a request");
            let context = |e: io::Error| io::Error::new(e.kind(), format!("{at}: {e}"));
            let n = tls.read(&mut buf[..want]).await.map_err(context)?;
            if n == 0 {
                return Err(io::Error::other("close_notify inside a request"));
            }
            sha.update(&buf[..n]);
            got += n as u64;
        }
        *requests += 1;
        let mut ack = sha.finish().as_ref().to_vec();
        ack.extend_from_slice(&len.to_be_bytes());
        ack.extend_from_slice(&tls.get_ref().1.epoch().unwrap_or(0).to_be_bytes());
        send(tls, &ack, false).await?;
    }
}

/// Writes `bytes`, after their length if `framed`, and flushes.
async fn send<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8], framed: bool) -> io::Result<()> {
    if framed {
        s.write_all(&(bytes.len() as u64).to_be_bytes()).await?;
    }
    s.write_all(bytes).await?;
    s.flush().await
}

/// The server's answer to one request.
#[derive(Debug)]
struct Ack {
    /// SHA-256 of what the server received, and its length.
    digest: [u8; 32],
    len: u64,
    /// The server's epoch when it answered.
    epoch: u64,
    /// When the ack's first byte arrived.
    first_byte: Instant,
}

impl Ack {
    /// Reads an ack.
    async fn read<R: AsyncRead + Unpin>(rd: &mut R) -> Result<Self, String> {
        let mut ack = [0u8; ACK_LEN];
        rd.read_exact(&mut ack[..1]).await.map_err(text)?;
        let first_byte = Instant::now();
        rd.read_exact(&mut ack[1..]).await.map_err(text)?;
        let u64_at = |i: usize| u64::from_be_bytes(ack[i..i + 8].try_into().unwrap_or_default());
        let (len, epoch) = (u64_at(32), u64_at(40));
        let digest = ack[..32].try_into().unwrap_or_default();
        Ok(Self {
            digest,
            len,
            epoch,
            first_byte,
        })
    }

    /// Checks the ack against what was sent.
    fn check(self, digest: &[u8], len: u64) -> Result<Self, String> {
        ensure(self.len == len, "the server got another number of bytes")?;
        ensure(self.digest[..] == *digest, "the server's SHA-256 differs")?;
        Ok(self)
    }
}

/// Sends one request and reads its checked ack.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    payload: &[u8],
) -> Result<Ack, String> {
    send(s, payload, true).await.map_err(text)?;
    let ack = Ack::read(s).await?;
    ack.check(digest(&SHA256, payload).as_ref(), payload.len() as u64)
}

/// Deterministic filler.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mix = |i: u64| ((i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    (0..len as u64).map(mix).collect()
}

/// The client's current epoch.
fn epoch(s: &Client) -> u64 {
    s.get_ref().1.epoch().unwrap_or(0)
}

/// The client side of the connection, for its early-data state.
fn client_conn(s: &Client) -> Result<&ClientConnection, String> {
    match s.get_ref().1 {
        Connection::Client(c) => Ok(c),
        Connection::Server(_) => Err("the connector made a server connection".into()),
    }
}

/// Waits for the server's report on the connection that just ended.
async fn report(rx: &mut mpsc::UnboundedReceiver<ServerReport>) -> Result<ServerReport, String> {
    let next = async { rx.recv().await.ok_or("the server stopped".to_owned()) };
    step("server report", STEP_LIMIT, next).await
}

/// A duration in milliseconds, for the table.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The transfer: `total` bytes in one request, written while a second
/// future reads the ack (and so processes the server's key update
/// confirmations) on the same stream. The client's policy starts an update
/// every `window` bytes; at most a window more goes out before it is
/// confirmed, so each window gets its update however slow the stores'
/// fsyncs are (the wait counts in the throughput and is returned).
async fn transfer(tls: Client, total: u64, window: u64, bar: ProgressBar) -> Transferred {
    let chunk = CHUNK.min(total as usize / 128);
    let shared = Shared(Arc::new(Mutex::new(tls)));
    let (mut wr, mut rd) = (shared.clone(), shared.clone());
    let writer = async move {
        let (mut block, mut sha) = (pattern(chunk, 0x5eed), Sha::new(&SHA256));
        let (mut sent, mut pending_from, mut waited) = (0u64, None, Duration::ZERO);
        wr.write_all(&total.to_be_bytes()).await.map_err(text)?;
        while sent < total {
            let n = (total - sent).min(chunk as u64) as usize;
            block[..8].copy_from_slice(&sent.to_be_bytes()); // so reordering would show
            sha.update(&block[..n]);
            wr.write_all(&block[..n]).await.map_err(text)?;
            sent += n as u64;
            let (state, e) = {
                let tls = wr.lock();
                (tls.get_ref().1.profile_state(), epoch(&tls))
            };
            bar.set_position(sent);
            bar.set_message(format!("epoch {e}"));
            if state != State::AwaitingEpochKeyUpdate {
                pending_from = None;
            } else if sent - *pending_from.get_or_insert(sent - n as u64) >= window {
                let t = Instant::now();
                while wr.lock().get_ref().1.profile_state() == State::AwaitingEpochKeyUpdate {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (waited, pending_from) = (waited + t.elapsed(), None);
            }
        }
        wr.flush().await.map_err(text)?;
        bar.finish_and_clear();
        Ok((sha.finish(), waited))
    };
    let reader = async move { Ack::read(&mut rd).await };
    let ((sha, waited), ack) = tokio::try_join!(writer, reader)?;
    let ack = ack.check(sha.as_ref(), total)?;
    let mutex = Arc::try_unwrap(shared.0).map_err(|_| "the stream is still shared")?;
    let tls = mutex.into_inner().unwrap_or_else(PoisonError::into_inner);
    Ok((tls, ack, waited))
}

/// What [`transfer`] returns: the stream back, the ack and the writer's wait.
type Transferred = Result<(Client, Ack, Duration), String>;

/// Everything between setup and teardown; returns the summary table.
async fn demo(args: &DemoArgs, suite: CipherSuite, dir: &Path) -> Result<String, String> {
    let (mib, total, limit) = (args.mib, args.mib << 20, STEP_LIMIT);
    let identity = |name| Identity::generate(name, suite).map_err(|e| format!("identity: {e}"));
    let (client_id, server_id) = (identity("demo-client")?, identity("demo-server")?);
    let pin = |i: &Identity| Arc::new(PinnedKeys::new([i.public_key().to_vec()]));
    let (client_pin, server_pin) = (pin(&client_id), pin(&server_id));
    let store = |name: &str| {
        let path = dir.join(name);
        let store = SessionStore::open(&path).map_err(|e| format!("{}: {e}", path.display()));
        store.map(Arc::new)
    };
    let window = total / 32;
    let mut policy = UpdatePolicy::manual();
    policy.bytes = Some(window);
    let server_config = ServerConfig::new(server_id, client_pin, store("server.db")?);
    let server_config = server_config.update_policy(UpdatePolicy::manual());
    let client_config = ClientConfig::new(client_id, server_pin, store("client.db")?);
    let connector = Connector::new(Arc::new(client_config.update_policy(policy)));

    let listen = |e| format!("listen on loopback: {e}");
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(listen)?;
    let addr = listener.local_addr().map_err(listen)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(server(listener, Acceptor::new(Arc::new(server_config)), tx));
    let wire = Arc::new(Wire::default());
    let dial = || async {
        let (io, wire) = (TcpStream::connect(addr).await.map_err(text)?, wire.clone());
        let _ = io.set_nodelay(true);
        Ok::<_, String>(Counted { io, wire })
    };

    // 1. A new session, and a first round trip.
    let start = Instant::now();
    let (tls, handshake, ack) = step("handshake", limit, async {
        let mut tls = connector.connect(dial().await?).await.map_err(text)?;
        let handshake = ms(start.elapsed());
        let ack = exchange(&mut tls, b"hello").await?;
        ensure(tls.get_ref().1.suite() == Some(suite), "another suite")?;
        ensure(ack.epoch == epoch(&tls), "the server is at another epoch")?;
        Ok((tls, handshake, ack))
    })
    .await?;
    let first = ms(ack.first_byte - start);
    // Application bytes both ways, for the overhead.
    let mut payload = 8 + 5 + ACK_LEN as u64;

    // 2. The transfer, with key updates.
    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    };
    let template = "[{bar:30}] {bytes}/{total_bytes} {decimal_bytes_per_sec} {msg}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let (epoch0, start) = (epoch(&tls), Instant::now());
    let limit = STEP_LIMIT + Duration::from_secs(mib);
    let (mut tls, ack, waited) = step("transfer", limit, transfer(tls, total, window, bar)).await?;
    let secs = (ack.first_byte - start).as_secs_f64();
    let (rate, waited) = (total as f64 / secs / 1e6, ms(waited));
    payload += 8 + total + ACK_LEN as u64;
    let (epoch1, limit) = (epoch(&tls), STEP_LIMIT);
    let updates = epoch1 - epoch0;
    ensure(
        updates >= MIN_UPDATES,
        &format!("only {updates} key updates"),
    )?;
    ensure(ack.epoch == epoch1, "key updates: the epochs differ")?;

    // An explicit update and one round trip.
    let start = Instant::now();
    let ack = step("update round", limit, async {
        tls.get_mut().1.request_key_update().map_err(text)?;
        exchange(&mut tls, b"updated").await
    })
    .await?;
    let round = ms(start.elapsed());
    payload += 8 + 7 + ACK_LEN as u64;
    let epoch2 = epoch(&tls);
    let ok = epoch2 == epoch1 + 1 && ack.epoch == epoch2;
    ensure(ok, &format!("update round: epochs {epoch1} -> {epoch2}"))?;

    // 3. Cut: part of a request, then the TCP connection ends without close_notify.
    let conn = tls.get_ref().1;
    let session = conn.session_id().cloned().ok_or("no session id")?;
    let mut partial = (1u64 << 20).to_be_bytes().to_vec();
    partial.extend_from_slice(&pattern(1024, 3));
    let sent = send(&mut tls, &partial, false).await;
    sent.map_err(|e| format!("cut: {e}"))?;
    payload += partial.len() as u64;
    drop(tls);
    let seen = report(&mut rx).await?;
    let cut = match &seen.end {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            e.to_string()
        }
        end => return Err(format!("cut: the server saw {end:?}")),
    };
    let ok = seen.session.as_ref() == Some(&session) && seen.requests == 3;
    ensure(ok && seen.epoch == Some(epoch2), &format!("cut: {seen:?}"))?;

    // 4. Resume with early data, timed to the first response byte.
    let early = pattern(EARLY_LEN, 4);
    let start = Instant::now();
    let (mut tls, ack) = step("resumption", limit, async {
        let tcp = dial().await?;
        let mut tls = connector.resume(&session, tcp).await.map_err(text)?;
        let early_ok = client_conn(&tls)?.is_sending_early_data();
        ensure(early_ok, "no early data allowed")?;
        let mut msg = (EARLY_LEN as u64).to_be_bytes().to_vec();
        msg.extend_from_slice(&early);
        tls.write_all(&msg).await.map_err(text)?;
        let all = client_conn(&tls)?.is_sending_early_data();
        ensure(all, "some early data waited for the resumption")?;
        tls.flush().await.map_err(text)?;
        let ack = Ack::read(&mut tls).await?;
        let ack = ack.check(digest(&SHA256, &early).as_ref(), EARLY_LEN as u64)?;
        let c = client_conn(&tls)?;
        ensure(c.is_early_data_accepted(), "early data not accepted")?;
        let resumed = !c.is_handshaking() && c.session_id() == Some(&session);
        ensure(resumed, "not resumed")?;
        Ok((tls, ack))
    })
    .await?;
    let resumed = ms(ack.first_byte - start);
    let epoch3 = epoch(&tls);
    ensure(epoch3 > epoch2, "resumption: the epoch did not advance")?;
    let later = pattern(CHUNK, 5);
    let after = step("after resumption", limit, exchange(&mut tls, &later)).await?;
    ensure(after.epoch == epoch3, "after resumption: the epochs differ")?;
    payload += (8 + EARLY_LEN + 8 + CHUNK + 2 * ACK_LEN) as u64;

    // 5. Close: close_notify both ways.
    step("close", limit, async {
        tls.shutdown().await.map_err(text)?;
        let n = tls.read(&mut [0u8; 16]).await.map_err(text)?;
        ensure(n == 0, "data after close_notify")
    })
    .await?;
    let seen = report(&mut rx).await?;
    let ok = seen.end.is_ok() && seen.requests == 2;
    ensure(
        ok && seen.session == Some(session),
        &format!("close: {seen:?}"),
    )?;

    // 6. Compromise: a thief copies the client's files at rest and attacks
    // a full capture of a connection with them (in memory, same suite).
    let compromise = dir.join("compromise");
    std::fs::create_dir(&compromise).map_err(|e| format!("{}: {e}", compromise.display()))?;
    let run = tokio::task::spawn_blocking(move || compromise::run(suite, &compromise));
    let report = step("compromise", limit, async { run.await.map_err(text) })
        .await?
        .map_err(|e| format!("compromise: {e}"))?;
    let lines = compromise_lines(&report)?;

    let (sent, received) = (wire.sent.load(Relaxed), wire.received.load(Relaxed));
    let overhead = (sent + received) as f64 / payload as f64 * 100.0 - 100.0;
    let (sent, received, payload) = (
        DecimalBytes(sent),
        DecimalBytes(received),
        DecimalBytes(payload),
    );
    Ok(format!(
        "  suite              {suite}
  handshake          {handshake} (first response byte {first})
  transfer           {mib} MiB in {secs:.2} s, SHA-256 verified by the server
  throughput         {rate:.1} MB/s
  key updates        {updates} in the transfer (epochs {epoch0} -> {epoch1}, both sides agree)
  update waits       {waited} (the writer waiting for confirmations)
  update round       {round} (epoch {epoch1} -> {epoch2})
  cut                the server saw: {cut}
  resumption         first response byte {resumed} (epoch {epoch2} -> {epoch3})
  early data         {EARLY_LEN} bytes accepted, SHA-256 verified
  close              close_notify both ways
  bytes on the wire  {sent} sent, {received} received
  overhead           {overhead:.2} % over {payload} of application data
{lines}"
    ))
}

/// The compromise step's lines, each a property checked by trying: the
/// demo fails if any does not hold.
fn compromise_lines(r: &compromise::Report) -> Result<String, String> {
    let (n, healed, last) = (r.stolen_at, r.healed_at, r.last_epoch);
    let exposed = r.opened_in(n..=healed - 1);
    let fs = r.opened_in(1..=n - 1);
    let pcs = r.opened_in(healed..=last);
    ensure(
        exposed.1 > 0 && exposed.0 == exposed.1,
        "compromise: the stolen state did not open its epoch",
    )?;
    ensure(
        fs.1 > 0 && fs.0 == 0,
        &format!("FS: {} of {} earlier records opened", fs.0, fs.1),
    )?;
    ensure(
        pcs.1 > 0 && pcs.0 == 0,
        &format!("PCS: {} of {} later records opened", pcs.0, pcs.1),
    )?;
    Ok(format!(
        "  compromise         client's store and identity files copied at epoch {n}; all traffic captured
  exposed            epochs {n}-{}: {} of {} records decrypted with the stolen state (the server's update does not heal)
  FS                 epochs 1-{}: {} of {} records decrypted with the stolen state (checked)
  PCS                epochs {healed}-{last}, after the client's own update: {} of {} records decrypted (checked)
",
        healed - 1,
        exposed.0,
        exposed.1,
        n - 1,
        fs.0,
        fs.1,
        pcs.0,
        pcs.1
    ))
}
