//! `mlstls client`: stdin/stdout over an MLS-TLS connection, or a local TCP
//! tunnel where every local connection gets its own. A dropped connection is
//! resumed from the session store and the stream continues intact.

use std::time::Duration;

use clap::Args;
use mls_tls::profile::store::SessionId;
use mls_tls::tokio::{Connector, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{runtime, ChannelArgs};
use crate::relay::{pump, Outcome, RelayState};

/// How often, and how long apart, a lost connection is retried.
const RETRIES: u32 = 20;
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Options of `mlstls client`.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The MLS-TLS server, e.g. example.net:4433.
    #[arg(long)]
    connect: String,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Listen here and carry each local TCP connection through its own
    /// MLS-TLS connection (a tunnel); without it, use stdin and stdout.
    #[arg(long, value_name = "LOCAL_ADDR")]
    listen: Option<String>,
}

pub(crate) fn run(args: ClientArgs) -> Result<(), String> {
    let config = args.channel.client_config(&args.connect)?;
    runtime()?.block_on(async move {
        let connector = Connector::new(config);
        match &args.listen {
            None => {
                let mut stdin = tokio::io::stdin();
                let mut stdout = tokio::io::stdout();
                carry(&connector, &args.connect, &mut stdin, &mut stdout).await
            }
            Some(local) => {
                let listener = TcpListener::bind(local)
                    .await
                    .map_err(|e| format!("cannot listen on {local}: {e}"))?;
                eprintln!("mlstls tunnel {local} -> {}", args.connect);
                loop {
                    let (tcp, peer) = listener.accept().await.map_err(|e| e.to_string())?;
                    let (connector, server) = (connector.clone(), args.connect.clone());
                    tokio::spawn(async move {
                        let (mut r, mut w) = tcp.into_split();
                        if let Err(e) = carry(&connector, &server, &mut r, &mut w).await {
                            tracing::warn!("{peer}: {e}");
                        }
                    });
                }
            }
        }
    })
}

/// Carries one local stream, resuming the session whenever the connection
/// drops (or starting a new one if the server no longer has it).
async fn carry(
    connector: &Connector,
    server: &str,
    local_rd: &mut (impl AsyncRead + Unpin),
    local_wr: &mut (impl AsyncWrite + Unpin),
) -> Result<(), String> {
    let tcp = connect(server).await?;
    let mut tls = connector
        .connect(tcp)
        .await
        .map_err(|e| describe(server, e))?;
    let mut session = session_of(&tls)?;
    let mut state = RelayState::new(random_id());
    loop {
        match pump(&mut state, local_rd, local_wr, tls, None).await {
            Outcome::Done => return Ok(()),
            Outcome::UpstreamLost => {
                tracing::info!("connection to {server} lost; resuming session {session}");
                tls = reconnect(connector, server, &mut session).await?;
            }
        }
    }
}

/// A new connection for the stream: resumption of `session`, or, if the
/// server refuses it (SPEC 8: the initiator then falls back), a new
/// session. Retried while the server is unreachable.
async fn reconnect(
    connector: &Connector,
    server: &str,
    session: &mut SessionId,
) -> Result<TlsStream<TcpStream>, String> {
    let mut last = String::new();
    for _ in 0..RETRIES {
        match connect(server).await {
            Ok(tcp) => match connector.resume(session, tcp).await {
                Ok(mut tls) => match finish(&mut tls).await {
                    Ok(()) => return Ok(tls),
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        tracing::info!("resumption refused ({e}); starting a new session");
                        match connect(server).await {
                            Ok(tcp) => match connector.connect(tcp).await {
                                Ok(tls) => {
                                    *session = session_of(&tls)?;
                                    return Ok(tls);
                                }
                                Err(e) => last = describe(server, e),
                            },
                            Err(e) => last = e,
                        }
                    }
                    Err(e) => last = describe(server, e),
                },
                Err(e) => last = describe(server, e),
            },
            Err(e) => last = e,
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
    Err(format!("could not reconnect: {last}"))
}

/// Waits for a resumption to complete (the adapter's flush does), so a
/// refusal shows up here rather than in the middle of the stream.
async fn finish(tls: &mut TlsStream<TcpStream>) -> std::io::Result<()> {
    tokio::io::AsyncWriteExt::flush(tls).await
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

/// An error a person can act on.
fn describe(server: &str, e: std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("bad_certificate") || text.contains("credential rejected") {
        format!("{server}: peer not in the trust file or CA file, or it does not trust us ({text})")
    } else if e.kind() == std::io::ErrorKind::InvalidData {
        format!("{server}: MLS-TLS handshake failed ({text}); is it an mlstls server?")
    } else {
        format!("{server}: {text}")
    }
}

fn random_id() -> u64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_be_bytes(b)
}
