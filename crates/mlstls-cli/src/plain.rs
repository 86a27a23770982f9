//! Plain MLS-TLS (`--plain`): the application bytes as they are, no
//! framing, so that `mlstls client` and `server` talk to any MLS-TLS peer.
//!
//! Without the resumable stream nothing knows which bytes the peer
//! delivered, so a cut connection is an error (exit non-zero, a tunnel
//! resets its local connection): resuming the session without stream
//! continuity could skip or repeat bytes silently. The end of each
//! direction is the peer's `close_notify`; a connection that ends without
//! one fails (`UnexpectedEof`) instead of looking complete.
//!
//! A mismatched pair is recognised by the stream's first bytes (a HELLO's
//! type and magic, [`hello_prefix`]): a plain side that receives them as
//! its first bytes fails saying so. A stream server answers a plain client
//! with its HELLO for that reason, and a plain server answers a stream
//! client with a RESET it can print.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::relay::send_reset;
use crate::signals::Stop;
use crate::stream::{hello_prefix, ResetCode};

/// Why a plain relay ended early.
#[derive(Debug)]
pub(crate) enum PlainError {
    /// The peer's first bytes are a stream HELLO: it speaks the resumable
    /// stream, not plain MLS-TLS.
    StreamPeer,
    /// The MLS-TLS connection failed or was cut.
    Link(std::io::Error),
    /// The local side failed.
    Local(String),
    /// SIGINT or SIGTERM: we sent close_notify and stopped.
    Interrupted,
}

/// Relays between the local side and `upstream` until both directions
/// ended: local end of input is sent as `close_notify`, the peer's
/// `close_notify` shuts the local output down.
/// A server (`refuse_stream`) answers a stream client with a RESET that
/// says why. On `stop`, close_notify ends our direction and the relay
/// stops.
pub(crate) async fn relay<U, L, W>(
    upstream: U,
    local_rd: &mut L,
    local_wr: &mut W,
    refuse_stream: bool,
    stop: &mut Stop,
) -> Result<(), PlainError>
where
    U: AsyncRead + AsyncWrite + Unpin,
    L: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut up_rd, mut up_wr) = tokio::io::split(upstream);
    let down = async {
        let prefix = hello_prefix();
        let mut head: Vec<u8> = Vec::new();
        let mut checking = true;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = up_rd.read(&mut buf).await.map_err(PlainError::Link)?;
            if n == 0 {
                break;
            }
            let mut bytes = &buf[..n];
            if checking {
                // Hold the first bytes while they could still be a HELLO.
                head.extend_from_slice(bytes);
                let k = head.len().min(prefix.len());
                if head[..k] != prefix[..k] {
                    checking = false;
                } else if k == prefix.len() {
                    return Err(PlainError::StreamPeer);
                } else {
                    continue;
                }
                bytes = &head;
            }
            local_wr
                .write_all(bytes)
                .await
                .map_err(|e| PlainError::Local(format!("local write failed: {e}")))?;
            local_wr
                .flush()
                .await
                .map_err(|e| PlainError::Local(format!("local write failed: {e}")))?;
            if !checking && !head.is_empty() {
                head = Vec::new();
            }
        }
        // A short first message that began like a HELLO is data after all.
        local_wr
            .write_all(&head)
            .await
            .map_err(|e| PlainError::Local(format!("local write failed: {e}")))?;
        local_wr
            .shutdown()
            .await
            .map_err(|e| PlainError::Local(format!("local write failed: {e}")))
    };
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = local_rd
                .read(&mut buf)
                .await
                .map_err(|e| PlainError::Local(format!("local read failed: {e}")))?;
            if n == 0 {
                break;
            }
            up_wr.write_all(&buf[..n]).await.map_err(PlainError::Link)?;
            up_wr.flush().await.map_err(PlainError::Link)?;
        }
        up_wr.shutdown().await.map_err(PlainError::Link)
    };
    let result = tokio::select! {
        r = async { tokio::try_join!(down, up) } => r.map(|_| ()),
        () = stop.stopped() => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), up_wr.shutdown()).await;
            return Err(PlainError::Interrupted);
        }
    };
    if refuse_stream && matches!(result, Err(PlainError::StreamPeer)) {
        let why = "this server runs with --plain";
        send_reset(&mut up_wr, ResetCode::PlainPeer, why).await;
    }
    result
}
