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
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{digest, Context as Sha, SHA256};
use clap::Args;
use indicatif::{DecimalBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mls_tls::conn::{ClientConfig, ClientConnection, Connection, ServerConfig, UpdatePolicy};
use mls_tls::profile::auth::{Identity, PinnedKeys};
use mls_tls::profile::engine::State;
use mls_tls::profile::store::{SessionId, SessionStore};
use mls_tls::profile::suite::CipherSuite;
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

impl Default for DemoArgs {
    /// The clap defaults, for `mlstls` without a subcommand.
    fn default() -> Self {
        Self {
            mib: 256,
            suite: CipherSuite::DEFAULT.name().to_owned(),
            no_progress: false,
        }
    }
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
    let suite: CipherSuite = args.suite.parse().map_err(err("--suite"))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("mlstls-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(err(&dir.display().to_string()))?;
    let dir = TempDir(dir);
    let runtime = crate::common::runtime()?;
    let summary = runtime.block_on(demo(&args, suite, &dir.0));
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

/// Maps an error to `"what: error"`.
fn err<'a, E: Display>(what: &'a str) -> impl Fn(E) -> String + 'a {
    move |e| format!("{what}: {e}")
}

/// `Err(msg())` unless `ok`.
fn ensure(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Runs `f` with a hang guard.
async fn within<T>(
    what: &str,
    limit: Duration,
    f: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    let late = || format!("{what}: nothing within {} s", limit.as_secs());
    tokio::time::timeout(limit, f).await.map_err(|_| late())?
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

/// How a server connection ended.
#[derive(Debug)]
enum End {
    /// The client's close_notify, answered with ours.
    Clean,
    /// The transport ended (or was reset) without close_notify.
    Cut(String),
    /// Anything else.
    Failed(String),
}

/// What the server saw on one connection.
#[derive(Debug)]
struct ServerReport {
    session: Option<SessionId>,
    requests: u64,
    epoch: Option<u64>,
    end: End,
}

/// Accepts connections one after the other and reports on each.
async fn server(
    listener: TcpListener,
    acceptor: Acceptor,
    tx: mpsc::UnboundedSender<ServerReport>,
) {
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
            Err(e) => End::Failed(format!("handshake: {e}")),
        };
        if tx
            .send(ServerReport {
                session,
                requests,
                epoch,
                end,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Answers requests until the connection ends; counts them in `requests`.
async fn serve(tls: &mut TlsStream<TcpStream>, requests: &mut u64) -> End {
    let fail = |what: String, e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
            End::Cut(format!("{what}: {e}"))
        }
        _ => End::Failed(format!("{what}: {e}")),
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut header = [0u8; 8];
        match tls.read(&mut header).await {
            Ok(0) => {
                return tls
                    .shutdown()
                    .await
                    .map_or_else(|e| fail("close".into(), e), |()| End::Clean)
            }
            Ok(n) => {
                if let Err(e) = tls.read_exact(&mut header[n..]).await {
                    return fail("in a header".into(), e);
                }
            }
            Err(e) => return fail("between requests".into(), e),
        }
        let len = u64::from_be_bytes(header);
        let (mut sha, mut got) = (Sha::new(&SHA256), 0);
        while got < len {
            let want = (len - got).min(CHUNK as u64) as usize;
            let what = || format!("after {got} of {len} bytes of a request");
            let n = match tls.read(&mut buf[..want]).await {
                Ok(0) => return End::Failed(format!("close_notify {}", what())),
                Ok(n) => n,
                Err(e) => return fail(what(), e),
            };
            sha.update(&buf[..n]);
            got += n as u64;
        }
        *requests += 1;
        let mut ack = sha.finish().as_ref().to_vec();
        ack.extend_from_slice(&len.to_be_bytes());
        ack.extend_from_slice(&tls.get_ref().1.epoch().unwrap_or(0).to_be_bytes());
        if let Err(e) = send(tls, &ack, false).await {
            return fail("ack".into(), e);
        }
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
    async fn read<R: AsyncRead + Unpin>(rd: &mut R, what: &str) -> Result<Self, String> {
        let mut ack = [0u8; ACK_LEN];
        let what = format!("{what}: reading the ack");
        rd.read_exact(&mut ack[..1]).await.map_err(err(&what))?;
        let first_byte = Instant::now();
        rd.read_exact(&mut ack[1..]).await.map_err(err(&what))?;
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
    fn check(self, what: &str, digest: &[u8], len: u64) -> Result<Self, String> {
        ensure(self.len == len, || {
            format!("{what}: the server got {} bytes, not {len}", self.len)
        })?;
        ensure(self.digest[..] == *digest, || {
            format!("{what}: the server's SHA-256 differs")
        })?;
        Ok(self)
    }
}

/// Sends one request and reads its checked ack, with a hang guard.
async fn exchange<S>(s: &mut S, what: &str, payload: &[u8]) -> Result<Ack, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(what, STEP_LIMIT, async {
        send(s, payload, true).await.map_err(err(what))?;
        let ack = Ack::read(s, what).await?;
        ack.check(
            what,
            digest(&SHA256, payload).as_ref(),
            payload.len() as u64,
        )
    })
    .await
}

/// Deterministic filler (xorshift).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn epoch(s: &Client) -> u64 {
    s.get_ref().1.epoch().unwrap_or(0)
}

fn client_conn(s: &Client) -> Result<&ClientConnection, String> {
    match s.get_ref().1 {
        Connection::Client(c) => Ok(c),
        Connection::Server(_) => Err("the connector made a server connection".into()),
    }
}

/// Waits for the server's report on the connection that just ended.
async fn report(
    rx: &mut mpsc::UnboundedReceiver<ServerReport>,
    what: &str,
) -> Result<ServerReport, String> {
    within(what, STEP_LIMIT, async {
        rx.recv().await.ok_or_else(|| format!("{what}: no server"))
    })
    .await
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Everything between setup and teardown; returns the summary table.
async fn demo(args: &DemoArgs, suite: CipherSuite, dir: &Path) -> Result<String, String> {
    let total = args.mib << 20;
    let identity = |name| Identity::generate(name, suite).map_err(err("identity"));
    let (client_id, server_id) = (identity("demo-client")?, identity("demo-server")?);
    let pin = |i: &Identity| Arc::new(PinnedKeys::new([i.public_key().to_vec()]));
    let (client_pin, server_pin) = (pin(&client_id), pin(&server_id));
    let store = |name: &str| {
        let path = dir.join(name);
        SessionStore::open(&path)
            .map(Arc::new)
            .map_err(err(&path.display().to_string()))
    };
    // The client updates every `window` bytes; the writer below sees to it
    // that each window gets its update, however slow the stores' fsyncs.
    let window = total / 32;
    let policy = UpdatePolicy {
        bytes: Some(window),
        ..UpdatePolicy::manual()
    };
    let server_config = ServerConfig::new(server_id, client_pin, store("server.db")?)
        .update_policy(UpdatePolicy::manual());
    let client_config =
        ClientConfig::new(client_id, server_pin, store("client.db")?).update_policy(policy);
    let connector = Connector::new(Arc::new(client_config));

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err("listen"))?;
    let addr = listener.local_addr().map_err(err("listen"))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(server(listener, Acceptor::new(Arc::new(server_config)), tx));
    let wire = Arc::new(Wire::default());
    let dial = || async {
        let io = TcpStream::connect(addr).await.map_err(err("connect"))?;
        let _ = io.set_nodelay(true);
        Ok::<_, String>(Counted {
            io,
            wire: wire.clone(),
        })
    };
    let mut payload = 0u64; // application bytes both ways, for the overhead
    let mut out = String::new();
    let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<20} {v}\n"));
    row("suite", suite.to_string());

    // 1. A new session, and a first round trip.
    let start = Instant::now();
    let mut tls = within("handshake", STEP_LIMIT, async {
        connector
            .connect(dial().await?)
            .await
            .map_err(err("handshake"))
    })
    .await?;
    let handshake = start.elapsed();
    let ack = exchange(&mut tls, "first request", b"hello").await?;
    payload += (8 + 5 + ACK_LEN) as u64;
    let got = tls.get_ref().1.suite();
    ensure(got == Some(suite), || format!("suite: negotiated {got:?}"))?;
    let epoch0 = epoch(&tls);
    ensure(ack.epoch == epoch0, || {
        format!("handshake: server epoch {}", ack.epoch)
    })?;
    let first = ms(ack.first_byte - start);
    row(
        "handshake",
        format!("{} (first response byte at {first})", ms(handshake)),
    );

    // 2. The transfer: a writer and a reader future on one shared stream.
    let bar = match args.no_progress {
        true => ProgressBar::hidden(),
        false => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
    };
    let template = "[{bar:30}] {bytes}/{total_bytes} {decimal_bytes_per_sec} {msg}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let chunk = CHUNK.min(total as usize / 128);
    let shared = Shared(Arc::new(Mutex::new(tls)));
    let (mut wr, mut rd) = (shared.clone(), shared.clone());
    let start = Instant::now();
    let writer = async move {
        let (mut block, mut sha) = (pattern(chunk, 0x5eed), Sha::new(&SHA256));
        let (mut sent, mut pending_from, mut waited) = (0u64, None, Duration::ZERO);
        wr.write_all(&total.to_be_bytes())
            .await
            .map_err(err("transfer"))?;
        while sent < total {
            let n = (total - sent).min(chunk as u64) as usize;
            block[..8].copy_from_slice(&sent.to_be_bytes()); // so reordering would show
            sha.update(&block[..n]);
            wr.write_all(&block[..n]).await.map_err(err("transfer"))?;
            sent += n as u64;
            bar.set_position(sent);
            let (state, e) = (wr.lock().get_ref().1.profile_state(), epoch(&wr.lock()));
            bar.set_message(format!("epoch {e}"));
            if state != State::AwaitingEpochKeyUpdate {
                pending_from = None;
                continue;
            }
            // An update started with this write; at most a window more goes
            // out before it is confirmed.
            if sent - *pending_from.get_or_insert(sent - n as u64) >= window {
                let t = Instant::now();
                while wr.lock().get_ref().1.profile_state() == State::AwaitingEpochKeyUpdate {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (waited, pending_from) = (waited + t.elapsed(), None);
            }
        }
        wr.flush().await.map_err(err("transfer"))?;
        bar.finish_and_clear();
        Ok((sha.finish(), waited))
    };
    // Reading meanwhile processes the server's key update confirmations.
    let reader = async move { Ack::read(&mut rd, "transfer").await };
    let limit = STEP_LIMIT + Duration::from_secs(args.mib);
    let both = within("transfer", limit, async {
        tokio::try_join!(writer, reader)
    });
    let ((sha, waited), ack) = both.await?;
    let ack = ack.check("transfer", sha.as_ref(), total)?;
    let elapsed = ack.first_byte - start;
    payload += 8 + total + ACK_LEN as u64;
    let mutex = Arc::try_unwrap(shared.0).map_err(|_| "transfer: stream still shared")?;
    let mut tls = mutex.into_inner().unwrap_or_else(PoisonError::into_inner);
    let epoch1 = epoch(&tls);
    let updates = epoch1 - epoch0;
    ensure(updates >= MIN_UPDATES, || {
        format!("key updates: only {updates} in the transfer")
    })?;
    ensure(ack.epoch == epoch1, || {
        format!(
            "key updates: server at epoch {}, client at {epoch1}",
            ack.epoch
        )
    })?;
    let secs = elapsed.as_secs_f64();
    row(
        "transfer",
        format!("{} MiB in {secs:.2} s, SHA-256 verified", args.mib),
    );
    row(
        "throughput",
        format!("{:.1} MB/s", total as f64 / secs / 1e6),
    );
    let agree = format!("epochs {epoch0} -> {epoch1}, server agrees");
    row(
        "key updates",
        format!("{updates} in the transfer ({agree}; waited {})", ms(waited)),
    );

    // An explicit update and one round trip.
    let start = Instant::now();
    tls.get_mut()
        .1
        .request_key_update()
        .map_err(err("update round"))?;
    let ack = exchange(&mut tls, "update round", b"updated").await?;
    let round = start.elapsed();
    payload += (8 + 7 + ACK_LEN) as u64;
    let epoch2 = epoch(&tls);
    let ok = epoch2 == epoch1 + 1 && ack.epoch == epoch2;
    ensure(ok, || {
        format!(
            "update round: epochs {epoch1} -> {epoch2}, server {}",
            ack.epoch
        )
    })?;
    row(
        "update round",
        format!("{} (epoch {epoch1} -> {epoch2})", ms(round)),
    );

    // 3. Cut: part of a request, then the TCP connection goes without close_notify.
    let session = tls
        .get_ref()
        .1
        .session_id()
        .cloned()
        .ok_or("cut: no session id")?;
    let mut partial = (1u64 << 20).to_be_bytes().to_vec();
    partial.extend_from_slice(&pattern(1024, 3));
    send(&mut tls, &partial, false).await.map_err(err("cut"))?;
    payload += partial.len() as u64;
    drop(tls);
    let seen = report(&mut rx, "cut").await?;
    let End::Cut(how) = &seen.end else {
        return Err(format!("cut: the server saw {:?}", seen.end));
    };
    let ok = seen.session.as_ref() == Some(&session) && seen.requests == 3;
    ensure(ok && seen.epoch == Some(epoch2), || {
        format!("cut: server report {seen:?}")
    })?;
    row("cut", format!("server saw: {how}"));

    // 4. Resume with early data, timed to the first response byte.
    let early = pattern(EARLY_LEN, 4);
    let start = Instant::now();
    let mut tls = within("resumption", STEP_LIMIT, async {
        connector
            .resume(&session, dial().await?)
            .await
            .map_err(err("resumption"))
    })
    .await?;
    ensure(client_conn(&tls)?.is_sending_early_data(), || {
        "resumption: no early data".into()
    })?;
    let ack = within("early data", STEP_LIMIT, async {
        let mut msg = (EARLY_LEN as u64).to_be_bytes().to_vec();
        msg.extend_from_slice(&early);
        tls.write_all(&msg).await.map_err(err("early data"))?;
        let all = client_conn(&tls)?.is_sending_early_data();
        ensure(all, || {
            "early data: some of it waited for the resumption".into()
        })?;
        tls.flush().await.map_err(err("early data"))?;
        let ack = Ack::read(&mut tls, "early data").await?;
        ack.check(
            "early data",
            digest(&SHA256, &early).as_ref(),
            EARLY_LEN as u64,
        )
    })
    .await?;
    let c = client_conn(&tls)?;
    let accepted = c.is_early_data_accepted() && !c.is_handshaking();
    ensure(accepted, || "resumption: early data not accepted".into())?;
    let epoch3 = epoch(&tls);
    let ok = epoch3 > epoch2 && c.session_id() == Some(&session);
    ensure(ok, || {
        format!(
            "resumption: epoch {epoch2} -> {epoch3}, {:?}",
            c.session_id()
        )
    })?;
    let after = exchange(&mut tls, "after resumption", &pattern(CHUNK, 5)).await?;
    ensure(after.epoch == epoch3, || {
        format!("resumption: server epoch {}", after.epoch)
    })?;
    payload += (8 + EARLY_LEN + 8 + CHUNK + 2 * ACK_LEN) as u64;
    let first = ms(ack.first_byte - start);
    row(
        "resumption",
        format!("first response byte at {first} (epoch {epoch2} -> {epoch3})"),
    );
    row(
        "early data",
        format!("{EARLY_LEN} bytes accepted, SHA-256 verified"),
    );

    // 5. Close: close_notify both ways.
    within("close", STEP_LIMIT, async {
        tls.shutdown().await.map_err(err("close"))?;
        match tls.read(&mut [0u8; 16]).await {
            Ok(0) => Ok(()),
            Ok(_) => Err("close: data after close_notify".to_string()),
            Err(e) => Err(format!("close: {e}")),
        }
    })
    .await?;
    let seen = report(&mut rx, "close").await?;
    let ok = matches!(seen.end, End::Clean) && seen.requests == 2;
    ensure(ok && seen.session == Some(session), || {
        format!("close: server report {seen:?}")
    })?;
    row("close", "close_notify both ways".into());

    let (sent, received) = (wire.sent.load(Relaxed), wire.received.load(Relaxed));
    let overhead = (sent + received) as f64 / payload as f64 * 100.0 - 100.0;
    let (s, r, p) = (
        DecimalBytes(sent),
        DecimalBytes(received),
        DecimalBytes(payload),
    );
    row(
        "bytes on the wire",
        format!("{s} sent, {r} received: {overhead:.2} % over {p} of data"),
    );
    Ok(out)
}
