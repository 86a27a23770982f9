//! `mlstls server`: accept MLS-TLS connections and echo each stream or
//! forward it to a plain TCP service. A client whose connection drops
//! resumes its session and its stream continues where it stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use mls_tls::tokio::{Acceptor, TlsStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::common::{runtime, ChannelArgs};
use crate::relay::{pump, read_frame, Frame, Outcome, RelayState};

/// How long a stream waits for its client to come back.
const RESUME_WAIT: Duration = Duration::from_secs(120);

/// Options of `mlstls server`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["echo", "forward"]))]
pub(crate) struct ServerArgs {
    /// Address to listen on, e.g. 0.0.0.0:4433.
    #[arg(long)]
    listen: String,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Echo every stream back.
    #[arg(long)]
    echo: bool,
    /// Forward every stream to this plain TCP service.
    #[arg(long, value_name = "HOST:PORT")]
    forward: Option<String>,
}

type Upstream = TlsStream<TcpStream>;
/// Live streams, by the client's signature key and the stream id: where a
/// resumed connection of a stream is handed over. Keyed by the key too, so
/// one authenticated client cannot attach to another's stream.
type Registry = Arc<Mutex<HashMap<(Vec<u8>, u64), mpsc::Sender<(Upstream, u64)>>>>;

pub(crate) fn run(args: ServerArgs) -> Result<(), String> {
    let config = args.channel.server_config()?;
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        eprintln!("mlstls server listening on {}", args.listen);
        let acceptor = Acceptor::new(config);
        let registry: Registry = Arc::default();
        loop {
            let (tcp, peer) = listener.accept().await.map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let (acceptor, registry, forward) =
                (acceptor.clone(), registry.clone(), args.forward.clone());
            tokio::spawn(async move {
                if let Err(e) = serve(acceptor, tcp, registry, forward).await {
                    tracing::warn!("{peer}: {e}");
                }
            });
        }
    })
}

async fn serve(
    acceptor: Acceptor,
    tcp: TcpStream,
    registry: Registry,
    forward: Option<String>,
) -> Result<(), String> {
    let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    let (id, received) = match read_frame(&mut tls).await {
        Ok(Some(Frame::Hello { id, received })) => (id, received),
        Ok(_) => return Err("client did not start a stream".into()),
        Err(e) => return Err(e.to_string()),
    };
    tracing::info!(
        "stream {id:016x}: connection (epoch {:?})",
        tls.get_ref().1.epoch()
    );
    let key = (
        tls.get_ref()
            .1
            .peer_identity()
            .map(|p| p.signature_key.clone())
            .unwrap_or_default(),
        id,
    );
    let existing = registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    if let Some(tx) = existing {
        // A resumed connection of a live stream.
        return tx
            .send((tls, received))
            .await
            .map_err(|_| "stream ended".to_string());
    }
    let (tx, rx) = mpsc::channel(1);
    registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone(), tx);
    let result = run_stream(id, tls, received, rx, forward).await;
    registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
    result
}

async fn run_stream(
    id: u64,
    first: Upstream,
    first_received: u64,
    mut next: mpsc::Receiver<(Upstream, u64)>,
    forward: Option<String>,
) -> Result<(), String> {
    let (mut local_rd, mut local_wr) = match &forward {
        Some(addr) => {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("forward to {addr}: {e}"))?;
            let (r, w) = tcp.into_split();
            (
                Box::new(r) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                Box::new(w) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
            )
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
            (
                Box::new(r) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                Box::new(w) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
            )
        }
    };
    let mut state = RelayState::new(id);
    let mut upstream = (first, first_received);
    loop {
        let (tls, received) = upstream;
        match pump(
            &mut state,
            &mut local_rd,
            &mut local_wr,
            tls,
            Some(received),
        )
        .await
        {
            Outcome::Done => {
                tracing::info!("stream {id:016x}: done");
                return Ok(());
            }
            Outcome::UpstreamLost => {
                tracing::info!("stream {id:016x}: connection lost, waiting for resumption");
                match tokio::time::timeout(RESUME_WAIT, next.recv()).await {
                    Ok(Some(u)) => upstream = u,
                    _ => return Err(format!("stream {id:016x}: client did not come back")),
                }
            }
        }
    }
}
