//! `mlstls client`: stdin/stdout over an MLS-TLS connection, or a local TCP
//! tunnel where every local connection gets its own. A dropped connection is
//! resumed from the session store and the stream continues intact; a
//! stream that cannot go on fails with one line (a tunnel resets that local
//! connection). Reconnection backs off exponentially, with jitter, and
//! gives up after `--retry-for` seconds without progress.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use clap::Args;
use mls_tls::crypto::CipherSuite;
use mls_tls::store::SessionId;
use mls_tls::tokio::{Connector, Established, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{accept_backoff, runtime, ChannelArgs, LivenessArgs};
use crate::plain::PlainError;
use crate::relay::{pump, LinkIo, PumpEnd, Timing};
use crate::report;
use crate::signals::Stop;
use crate::stream::{Decoder, Stream};

/// Options of `mlstls client`.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The MLS-TLS server, e.g. example.net:4433.
    #[arg(long)]
    connect: String,
    #[command(flatten)]
    channel: ChannelArgs,
    #[command(flatten)]
    liveness: LivenessArgs,
    /// Listen here and carry each local TCP connection through its own
    /// MLS-TLS connection (a tunnel); without it, use stdin and stdout.
    #[arg(long, value_name = "LOCAL_ADDR")]
    listen: Option<String>,
    /// Give up reconnecting after this many seconds in which the stream
    /// made no progress (no byte acknowledged or delivered).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    retry_for: u64,
    /// Plain MLS-TLS: the application bytes as they are, for servers that
    /// are not `mlstls server` (no resumable stream: a cut connection is
    /// an error, never resumed). The server must use --plain too.
    #[arg(long)]
    plain: bool,
}

/// What a stream needs besides its local side.
#[derive(Clone)]
struct Ctx {
    connector: Connector,
    server: String,
    timing: Timing,
    retry_for: Duration,
    plain: bool,
    /// Our identity file and its suite, for error messages.
    identity: PathBuf,
    suite: CipherSuite,
    /// SIGINT / SIGTERM.
    stop: Stop,
}

pub(crate) fn run(args: ClientArgs) -> Result<(), String> {
    if args.channel.server_name.is_some() && args.channel.ca.is_none() {
        tracing::warn!(
            "--server-name only applies to X.509 server certificates (--ca); with pinned keys (--trust) the key alone identifies the server"
        );
    }
    let config = args.channel.client_config(&args.connect)?;
    crate::common::sweep(config.store(), args.channel.session_lifetime());
    let suite = crate::keys::load_identity(&args.channel.identity)?.suite();
    let rt = runtime()?;
    let result = rt.block_on(async move {
        let ctx = Ctx {
            connector: Connector::new(config),
            server: args.connect.clone(),
            timing: args.liveness.timing(),
            retry_for: Duration::from_secs(args.retry_for),
            plain: args.plain,
            identity: args.channel.identity.clone(),
            suite,
            stop: crate::signals::install(
                "ending the stream (close_notify)",
                "the client was interrupted",
            )?,
        };
        match &args.listen {
            None => {
                let mut stdin = tokio::io::stdin();
                let mut stdout = tokio::io::stdout();
                carry(&ctx, &mut stdin, &mut stdout).await
            }
            Some(local) => {
                let listener = TcpListener::bind(local)
                    .await
                    .map_err(|e| format!("cannot listen on {local}: {e}"))?;
                report::say(&format!("mlstls tunnel {local} -> {}", args.connect));
                let mut errors = accept_backoff();
                // Each connection's task holds a sender: all are done when
                // the channel closes.
                let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
                let mut stop = ctx.stop.clone();
                loop {
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        () = stop.stopped() => break,
                    };
                    let (tcp, peer) = match accepted {
                        Ok(x) => {
                            errors = accept_backoff();
                            x
                        }
                        Err(e) => {
                            let delay = errors.next().unwrap_or(Duration::from_secs(1));
                            tracing::warn!("accept failed: {e}; retrying in {delay:?}");
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    };
                    let ctx = ctx.clone();
                    let alive = alive.clone();
                    tracing::info!("{peer}: new local connection, connecting to {}", ctx.server);
                    tokio::spawn(async move {
                        let _alive = alive;
                        let _ = tcp.set_nodelay(true);
                        let (mut r, mut w, keep) = match crate::common::split_tcp(tcp) {
                            Ok(x) => x,
                            Err(e) => return tracing::warn!("{peer}: {e}"),
                        };
                        if let Err(e) = carry(&ctx, &mut r, &mut w).await {
                            // The local application must see a failure,
                            // not a clean end of a truncated stream.
                            crate::common::reset_on_close(&keep);
                            tracing::warn!("{peer}: {e}");
                        }
                    });
                }
                // Interrupted: every stream sends its RESET and
                // close_notify; a second signal exits at once.
                drop(alive);
                let _ = all_done.recv().await;
                Ok(())
            }
        }
    });
    // tokio reads stdin on a blocking thread; a read still waiting there
    // must not hold the exit until stdin closes.
    rt.shutdown_background();
    if let Some(status) = crate::signals::exit_status() {
        // Ended by a signal: not a complete stream, whatever it carried.
        if let Err(e) = &result {
            tracing::info!("{e}");
        }
        eprintln!("mlstls: interrupted: the stream was ended (close_notify sent)");
        std::process::exit(status);
    }
    result
}

/// Carries one local stream, resuming the session whenever the connection
/// drops (or starting a new one if the server no longer has it).
async fn carry(
    ctx: &Ctx,
    local_rd: &mut (impl AsyncRead + Unpin),
    local_wr: &mut (impl AsyncWrite + Unpin),
) -> Result<(), String> {
    let server = &ctx.server;
    let mut stop = ctx.stop.clone();
    let tcp = connect(server).await?;
    let addr = report::addr(tcp.peer_addr());
    let mut tls = ctx
        .connector
        .connect(tcp)
        .await
        .map_err(|e| describe(ctx, &e).1)?;
    report::say(&report::connection(
        &format!("connected to {server} ({addr})"),
        "server",
        tls.get_ref().1,
        false,
    ));
    if ctx.plain {
        return match crate::plain::relay(tls, local_rd, local_wr, false, &mut stop).await {
            Ok(()) => Ok(()),
            Err(PlainError::StreamPeer) => Err(format!(
                "{server} speaks the mlstls resumable stream, not plain MLS-TLS: start the client without --plain"
            )),
            Err(PlainError::Link(e)) => Err(format!(
                "connection to {server} lost ({e}); --plain does not resume, bytes in flight may be lost"
            )),
            Err(PlainError::Local(e)) => Err(e),
            Err(PlainError::Interrupted) => Err("interrupted".into()),
        };
    }
    let mut session = session_of(&tls)?;
    let mut stream = Stream::new(random_id()?);
    let builder = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let mut delays = builder.build();
    let mut mark = stream.progress();
    let mut last_progress = Instant::now();
    loop {
        let link = LinkIo {
            upstream: tls,
            decoder: Decoder::default(),
            frames: Vec::new(),
        };
        let none: Option<&mut tokio::sync::mpsc::Receiver<()>> = None;
        let end = pump(
            &mut stream,
            local_rd,
            local_wr,
            link,
            none,
            ctx.timing,
            &mut stop,
        )
        .await;
        let mut why = match end {
            PumpEnd::Done => return Ok(()),
            PumpEnd::Failed(why) | PumpEnd::Interrupted(why) => return Err(why),
            PumpEnd::Replaced(()) => unreachable!("the client has no takeover"),
            PumpEnd::Lost(why) => why,
        };
        stream.on_disconnect();
        tracing::info!("connection to {server} lost ({why}); resuming session {session}");
        tls = loop {
            // Only progress resets the budget and the backoff: a
            // resumption that moves no byte does not.
            if stream.progress() != mark {
                mark = stream.progress();
                last_progress = Instant::now();
                delays = builder.build();
            }
            if last_progress.elapsed() >= ctx.retry_for {
                return Err(format!(
                    "gave up: no progress for {} s (--retry-for); last error: {why}",
                    ctx.retry_for.as_secs()
                ));
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.stopped() => return Err(format!("interrupted while reconnecting ({why})")),
            }
            match reconnect(ctx, &mut session).await {
                Ok(tls) => break tls,
                Err((true, e)) => return Err(e),
                Err((false, e)) => {
                    tracing::info!("reconnecting: {e}");
                    why = e;
                }
            }
        };
    }
}

/// A new connection for the stream: resumption of `session`, or a new
/// session when the library says the stored one is gone (SPEC 8: unknown
/// to the server or to us, in an old format, or deleted because the
/// server no longer verifies). Errors say whether they are final (`true`:
/// the peer is not trusted any more) or worth a retry.
async fn reconnect(
    ctx: &Ctx,
    session: &mut SessionId,
) -> Result<TlsStream<TcpStream>, (bool, String)> {
    let server = ctx.server.as_str();
    let (tls, how) = ctx
        .connector
        .resume_or_connect(Some(session), || async {
            let tcp = TcpStream::connect(server).await?;
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        })
        .await
        .map_err(|e| describe(ctx, &e))?;
    let resumed = matches!(how, Established::Resumed);
    if let Established::New { fallback } = how {
        let why = fallback.map_or_else(String::new, |e| e.to_string());
        tracing::info!("session {session} not resumed ({why}); started a new session");
        *session = session_of(&tls).map_err(|e| (true, e))?;
    }
    let addr = report::addr(tls.get_ref().0.peer_addr());
    report::say(&report::connection(
        &format!("reconnected to {server} ({addr})"),
        "server",
        tls.get_ref().1,
        resumed,
    ));
    Ok(tls)
}

async fn connect(server: &str) -> Result<TcpStream, String> {
    let tcp = TcpStream::connect(server)
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

fn session_of(tls: &TlsStream<TcpStream>) -> Result<SessionId, String> {
    tls.get_ref()
        .1
        .session_id()
        .cloned()
        .ok_or_else(|| "no session after the handshake".into())
}

/// An error a person can act on, and whether it is final (retrying cannot
/// help: the peer or its certificate is not accepted, by us or by it).
fn describe(ctx: &Ctx, e: &std::io::Error) -> (bool, String) {
    report::handshake_failure(&ctx.server, &ctx.identity, ctx.suite, e)
}

/// A stream id; never a constant when the system has no randomness.
fn random_id() -> Result<u64, String> {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "no randomness for a stream id".to_string())?;
    Ok(u64::from_be_bytes(b))
}
