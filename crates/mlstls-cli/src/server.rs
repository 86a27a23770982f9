//! `mlstls server`: accept MLS-TLS connections and echo each stream or
//! forward it to a plain TCP service. A client whose connection drops
//! resumes its session and its stream continues where it stopped; a stream
//! that cannot go on is reset with a reason the client prints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use mls_tls::tokio::{Acceptor, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::common::{accept_backoff, runtime, ChannelArgs, ClientAuthArg, LivenessArgs};
use crate::plain::PlainError;
use crate::relay::{pump, send_reset, LinkIo, PumpEnd};
use crate::report;
use crate::signals::Stop;
use crate::stream::{admit, Admission, Decoder, Frame, ResetCode, Stream, StreamError};

/// How long a stream waits for its client to come back after a lost link.
/// Longer than the client's default retry budget, so the client gives up
/// first and says why.
const RESUME_WAIT: Duration = Duration::from_secs(120);
/// How long a finished stream is kept, for a client whose last
/// acknowledgement was lost and that resumes to learn that all is done.
const LINGER: Duration = Duration::from_secs(60);
/// How long connecting to the forward target may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `mlstls server`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["echo", "forward"]))]
pub(crate) struct ServerArgs {
    /// Address to listen on, e.g. 0.0.0.0:4433.
    #[arg(long)]
    listen: String,
    #[command(flatten)]
    channel: ChannelArgs,
    #[command(flatten)]
    liveness: LivenessArgs,
    /// With --ca: whether clients need a certificate. `required`: an
    /// X.509 identity that verifies; `optional`: a bare key is let in
    /// anonymously, a certificate must verify; `off`: not checked.
    #[arg(long, value_enum, default_value_t = ClientAuthArg::Required)]
    client_auth: ClientAuthArg,
    /// Echo every stream back.
    #[arg(long)]
    echo: bool,
    /// Forward every stream to this plain TCP service.
    #[arg(long, value_name = "HOST:PORT")]
    forward: Option<String>,
    /// Plain MLS-TLS: the application bytes as they are, for clients that
    /// are not `mlstls client` (no resumable stream: a cut connection is
    /// an error). The client must use --plain too.
    #[arg(long)]
    plain: bool,
    /// Most streams at once (live, waiting for their client, or finished
    /// and kept for a while); more are reset with "too many streams".
    #[arg(long, default_value_t = 1024)]
    max_streams: usize,
}

type Upstream = TlsStream<TcpStream>;
type NewLink = LinkIo<Upstream>;
/// Live streams, by the client's signature key and the stream id: where a
/// resumed connection of a stream is handed over. Keyed by the key too, so
/// one authenticated client cannot attach to another's stream.
type Registry = Arc<Mutex<HashMap<(Vec<u8>, u64), mpsc::Sender<NewLink>>>>;

#[derive(Clone)]
struct Shared {
    acceptor: Acceptor,
    registry: Registry,
    forward: Option<String>,
    plain: bool,
    max_streams: usize,
    liveness: LivenessArgs,
    handshake_timeout: Duration,
    /// SIGINT / SIGTERM.
    stop: Stop,
}

pub(crate) fn run(args: ServerArgs) -> Result<(), String> {
    let config = args.channel.server_config(args.client_auth)?;
    let handshake_timeout = config.common.handshake_timeout;
    let store = config.store().clone();
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        report::say(&format!("mlstls server listening on {}", args.listen));
        let stop = crate::signals::install(
            "closing every stream (close_notify) and stopping",
            "the server is shutting down",
        )?;
        let lifetime = args.channel.session_lifetime();
        tokio::spawn(async move {
            // Sessions of clients that never come back do not pile up.
            loop {
                crate::common::sweep(&store, lifetime);
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
        let shared = Shared {
            acceptor: Acceptor::new(config),
            registry: Arc::default(),
            forward: args.forward.clone(),
            plain: args.plain,
            max_streams: args.max_streams,
            liveness: args.liveness,
            handshake_timeout,
            stop: stop.clone(),
        };
        let mut errors = accept_backoff();
        // Each connection's task holds a sender: all are done when the
        // channel closes.
        let (alive, mut all_done) = mpsc::channel::<()>(1);
        let mut stop = stop;
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
                    // Out of file descriptors, for instance: wait until
                    // connections close, keep serving.
                    let delay = errors.next().unwrap_or(Duration::from_secs(1));
                    tracing::warn!("accept failed: {e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let shared = shared.clone();
            let alive = alive.clone();
            tokio::spawn(async move {
                let _alive = alive;
                if let Err(e) = serve(shared, tcp).await {
                    tracing::warn!("{peer}: {e}");
                }
            });
        }
        // Stopping: every stream tells its client and closes (a second
        // signal exits at once).
        drop(listener);
        drop(alive);
        let _ = all_done.recv().await;
        report::say("mlstls server stopped");
        Ok(())
    })
}

/// Reads the client's HELLO (bounded by the handshake timeout).
async fn read_hello(tls: &mut Upstream, decoder: &mut Decoder) -> Result<Frame, StreamError> {
    let mut buf = vec![0u8; 4096];
    loop {
        if let Some(f) = decoder.next_frame()? {
            return Ok(f);
        }
        match tls.read(&mut buf).await {
            Ok(0) => return Err(StreamError::Violation("closed before its HELLO".into())),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) => return Err(StreamError::Link(report::link_failure(&e))),
        }
    }
}

async fn serve(shared: Shared, tcp: TcpStream) -> Result<(), String> {
    let mut stop = shared.stop.clone();
    let addr = report::addr(tcp.peer_addr());
    let mut tls = tokio::select! {
        r = shared.acceptor.accept(tcp) => r.map_err(|e| e.to_string())?,
        () = stop.stopped() => return Ok(()),
    };
    // A resumption always makes a new epoch; a new session starts at 1.
    let resumed = tls.get_ref().1.epoch().is_some_and(|e| e > 1);
    report::say(&report::connection(
        &addr,
        "client",
        tls.get_ref().1,
        resumed,
    ));
    if shared.plain {
        return serve_plain(&shared, tls).await;
    }
    let mut decoder = Decoder::default();
    let hello = tokio::select! {
        r = tokio::time::timeout(shared.handshake_timeout, read_hello(&mut tls, &mut decoder)) => r,
        () = stop.stopped() => {
            let _ = tokio::time::timeout(Duration::from_secs(2), tls.shutdown()).await;
            return Ok(());
        }
    };
    let hello = hello.map_err(|_| "no stream HELLO within the handshake timeout".to_string())?;
    let hello = match hello {
        Ok(h) => h,
        Err(StreamError::NotAStream) => {
            let why = "the client sends plain bytes, not the mlstls resumable stream (a plain MLS-TLS client, or `mlstls client --plain`? then start the server with --plain)";
            // Our HELLO first: a `--plain` client recognises it.
            let mut out = Vec::new();
            Stream::new_server(0).on_connect().encode(&mut out);
            let _ = tokio::time::timeout(Duration::from_secs(2), tls.write_all(&out)).await;
            send_reset(&mut tls, ResetCode::Protocol, why).await;
            return Err(why.into());
        }
        Err(e) => return Err(e.to_string()),
    };
    let Frame::Hello { id, resuming, .. } = hello else {
        return Err("the client's first frame is not a HELLO".into());
    };
    let key = (
        tls.get_ref()
            .1
            .peer_identity()
            .map(|p| p.signature_key.clone())
            .unwrap_or_default(),
        id,
    );
    tracing::info!("{addr}: stream {id:016x} (resuming: {resuming})");
    let link = LinkIo {
        upstream: tls,
        decoder,
        frames: vec![hello],
    };
    // Decide and register under one lock: no two tasks create one stream.
    let decision = {
        let mut map = shared.registry.lock().unwrap_or_else(|p| p.into_inner());
        let known = map.get(&key).filter(|tx| !tx.is_closed()).cloned();
        match admit(resuming, known.is_some()) {
            Admission::Attach => Ok(Ok(known)),
            Admission::Unknown => Err(ResetCode::UnknownStream),
            Admission::Create if map.len() >= shared.max_streams => Err(ResetCode::TooManyStreams),
            Admission::Create => {
                let (tx, rx) = mpsc::channel(4);
                map.insert(key.clone(), tx);
                Ok(Err(rx))
            }
        }
    };
    match decision {
        Ok(Err(rx)) => run_stream(shared, key, link, rx).await,
        Ok(Ok(Some(tx))) => {
            // Takes over from the stream's current link at once.
            if tx.try_send(link).is_err() {
                return Err(format!("stream {id:016x}: busy, connection dropped"));
            }
            Ok(())
        }
        Ok(Ok(None)) => unreachable!("Attach has a sender"),
        Err(code) => {
            let why = match code {
                ResetCode::UnknownStream => format!("stream {id:016x} is unknown here"),
                _ => format!("{} streams already", shared.max_streams),
            };
            let mut up = link.upstream;
            send_reset(&mut up, code, &why).await;
            Err(format!("stream {id:016x}: reset: {why}"))
        }
    }
}

async fn run_stream(
    shared: Shared,
    key: (Vec<u8>, u64),
    first: NewLink,
    mut next: mpsc::Receiver<NewLink>,
) -> Result<(), String> {
    let id = key.1;
    let result = stream_task(&shared, id, first, &mut next).await;
    {
        let mut map = shared.registry.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key);
    }
    next.close();
    match &result {
        Ok(()) => tracing::info!("stream {id:016x}: done"),
        Err(e) => tracing::warn!("stream {id:016x}: {e}"),
    }
    result
}

type Rd = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Wr = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// The local side of a stream: the forward target or the echo.
struct Local {
    rd: Rd,
    wr: Wr,
    /// The forward connection, to reset it when the stream fails.
    backend: Option<std::net::TcpStream>,
}

/// Connects to the forward target (`Err`: why not), or makes an echo.
async fn open_local(forward: &Option<String>) -> Result<Local, String> {
    match forward {
        Some(addr) => {
            let tcp = match tokio::time::timeout(FORWARD_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(e)) => return Err(format!("{addr}: {e}")),
                Err(_) => return Err(format!("{addr}: no answer within {FORWARD_TIMEOUT:?}")),
            };
            let _ = tcp.set_nodelay(true);
            let (r, w, keep) = crate::common::split_tcp(tcp).map_err(|e| e.to_string())?;
            Ok(Local {
                rd: Box::new(r),
                wr: Box::new(w),
                backend: Some(keep),
            })
        }
        None => {
            // Echo: a pipe whose far end copies everything back.
            let (near, far) = tokio::io::duplex(1 << 20);
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(far);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
            });
            let (r, w) = tokio::io::split(near);
            Ok(Local {
                rd: Box::new(r),
                wr: Box::new(w),
                backend: None,
            })
        }
    }
}

/// `--plain`: one connection, the application bytes as they are; a cut
/// is an error (see `plain.rs`).
async fn serve_plain(shared: &Shared, tls: Upstream) -> Result<(), String> {
    let Local {
        mut rd,
        mut wr,
        backend,
    } = match open_local(&shared.forward).await {
        Ok(l) => l,
        // No way to tell a plain client why: it sees the connection end
        // without close_notify, an error, not an empty stream.
        Err(why) => return Err(format!("forward target unreachable: {why}")),
    };
    let mut stop = shared.stop.clone();
    let result = crate::plain::relay(tls, &mut rd, &mut wr, true, &mut stop).await;
    let why = match result {
        Ok(()) => return Ok(()),
        Err(PlainError::Interrupted) => {
            // Our end, on purpose: the forward target gets a clean end.
            let _ = tokio::time::timeout(Duration::from_secs(2), wr.shutdown()).await;
            return Ok(());
        }
        Err(PlainError::StreamPeer) => {
            "the client speaks the mlstls resumable stream, this server runs with --plain (start both with --plain or neither)".to_string()
        }
        Err(PlainError::Link(e)) => format!("connection lost ({e}); --plain does not resume"),
        Err(PlainError::Local(e)) => e,
    };
    // The forward target must not take a truncated stream for a whole one.
    if let Some(keep) = &backend {
        crate::common::reset_on_close(keep);
    }
    Err(why)
}

async fn stream_task(
    shared: &Shared,
    id: u64,
    mut link: NewLink,
    next: &mut mpsc::Receiver<NewLink>,
) -> Result<(), String> {
    let Local {
        rd: mut local_rd,
        wr: mut local_wr,
        backend,
    } = match open_local(&shared.forward).await {
        Ok(l) => l,
        Err(why) => {
            send_reset(&mut link.upstream, ResetCode::ForwardUnreachable, &why).await;
            return Err(format!("forward target unreachable: {why}"));
        }
    };
    let timing = shared.liveness.timing();
    let mut stream = Stream::new_server(id);
    let mut stop = shared.stop.clone();
    loop {
        match pump(
            &mut stream,
            &mut local_rd,
            &mut local_wr,
            link,
            Some(&mut *next),
            timing,
            &mut stop,
        )
        .await
        {
            PumpEnd::Replaced(n) => {
                stream.on_disconnect();
                tracing::info!("stream {id:016x}: a newer connection takes over");
                link = n;
            }
            PumpEnd::Done => {
                // Kept a while: the client's last acknowledgement may have
                // been lost, and it resumes to learn that all is done.
                let wait = tokio::select! {
                    w = tokio::time::timeout(LINGER, next.recv()) => w,
                    () = stop.stopped() => return Ok(()),
                };
                match wait {
                    Ok(Some(n)) => link = n,
                    _ => return Ok(()),
                }
            }
            PumpEnd::Lost(why) => {
                stream.on_disconnect();
                tracing::info!("stream {id:016x}: connection lost ({why}); waiting for resumption");
                let wait = tokio::select! {
                    w = tokio::time::timeout(RESUME_WAIT, next.recv()) => w,
                    () = stop.stopped() => {
                        // Nobody to tell: the client is gone. The forward
                        // target gets a clean end (a truncated stream).
                        let _ = tokio::time::timeout(Duration::from_secs(2), local_wr.shutdown()).await;
                        return Err(format!("stopped while waiting for the client to resume ({why})"));
                    }
                };
                match wait {
                    Ok(Some(n)) => link = n,
                    _ => {
                        return Err(format!(
                            "client did not come back within {} s ({why})",
                            RESUME_WAIT.as_secs()
                        ))
                    }
                }
            }
            PumpEnd::Interrupted(why) => {
                // Ended on purpose (by the client or by our signal): the
                // forward target gets a clean end, not a reset.
                tracing::info!("stream {id:016x}: ended: {why}");
                let _ = tokio::time::timeout(Duration::from_secs(2), local_wr.shutdown()).await;
                return Ok(());
            }
            PumpEnd::Failed(why) => {
                // A forward connection is reset, not ended cleanly: the
                // service must not take a truncated stream for a whole one.
                if let Some(keep) = &backend {
                    crate::common::reset_on_close(keep);
                }
                return Err(why);
            }
        }
    }
}
