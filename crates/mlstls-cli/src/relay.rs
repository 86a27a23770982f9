//! A resumable byte stream on top of MLS-TLS connections: what `mlstls
//! client` and `mlstls server` carry, so that a local TCP connection (or
//! stdin/stdout) survives its MLS-TLS connection being cut and resumed.
//!
//! Every connection starts with `HELLO(stream id, bytes received so far)`;
//! the peer then drops what was acknowledged and sends the rest again.
//! Data travels in `DATA` frames that carry their stream offset (so a
//! resent byte is never delivered twice), receipt is acknowledged with
//! `ACK`, and `FIN` ends one direction. A side sends no data on a new
//! connection before the peer's HELLO told it where to start. Frames:
//! `type u8`, then for DATA a `u64` offset, a `u32` length and the bytes,
//! for HELLO two `u64`, for ACK one `u64`.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

const DATA: u8 = 1;
const ACK: u8 = 2;
const HELLO: u8 = 3;
const FIN: u8 = 4;
/// Acknowledge at least this often (bytes received).
const ACK_EVERY: u64 = 256 * 1024;
/// Largest DATA frame.
const MAX_FRAME: usize = 64 * 1024;

/// A frame from the peer.
#[derive(Debug)]
pub(crate) enum Frame {
    Data { offset: u64, bytes: Vec<u8> },
    Ack(u64),
    Hello { id: u64, received: u64 },
    Fin,
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut t = [0u8; 1];
    if r.read(&mut t).await? == 0 {
        return Ok(None);
    }
    Ok(Some(match t[0] {
        DATA => {
            let offset = r.read_u64().await?;
            let len = r.read_u32().await? as usize;
            if len > MAX_FRAME {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "relay frame too large",
                ));
            }
            let mut data = vec![0u8; len];
            r.read_exact(&mut data).await?;
            Frame::Data {
                offset,
                bytes: data,
            }
        }
        ACK => Frame::Ack(r.read_u64().await?),
        HELLO => Frame::Hello {
            id: r.read_u64().await?,
            received: r.read_u64().await?,
        },
        FIN => Frame::Fin,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "unknown relay frame",
            ))
        }
    }))
}

fn hello(id: u64, received: u64) -> Vec<u8> {
    let mut f = vec![HELLO];
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&received.to_be_bytes());
    f
}

fn data(offset: u64, bytes: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(13 + bytes.len());
    f.push(DATA);
    f.extend_from_slice(&offset.to_be_bytes());
    f.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    f.extend_from_slice(bytes);
    f
}

fn ack(received: u64) -> Vec<u8> {
    let mut f = vec![ACK];
    f.extend_from_slice(&received.to_be_bytes());
    f
}

/// One relayed stream's state, kept across MLS-TLS connections.
#[derive(Debug)]
pub(crate) struct RelayState {
    pub(crate) id: u64,
    /// Bytes received from the peer (and written locally).
    received: u64,
    /// Bytes read locally and sent (at least once) to the peer.
    sent: u64,
    /// Sent bytes the peer has not acknowledged: `sent - unacked.len()`
    /// is the offset of the first one.
    unacked: VecDeque<u8>,
    local_eof: bool,
    peer_fin: bool,
    last_ack_sent: u64,
}

/// How a pump ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Both directions finished.
    Done,
    /// The MLS-TLS connection broke; resume and pump again.
    UpstreamLost,
}

impl RelayState {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id,
            received: 0,
            sent: 0,
            unacked: VecDeque::new(),
            local_eof: false,
            peer_fin: false,
            last_ack_sent: 0,
        }
    }

    fn acked(&mut self, upto: u64) {
        let first = self.sent - self.unacked.len() as u64;
        let drop = upto.saturating_sub(first).min(self.unacked.len() as u64) as usize;
        self.unacked.drain(..drop);
    }

    /// Frames to send after the peer said it has `peer_received` bytes.
    fn resend_from(&mut self, peer_received: u64) -> Vec<Vec<u8>> {
        self.acked(peer_received);
        let (a, b) = self.unacked.as_slices();
        let mut all = a.to_vec();
        all.extend_from_slice(b);
        let first = self.sent - all.len() as u64;
        let mut frames: Vec<Vec<u8>> = all
            .chunks(MAX_FRAME)
            .enumerate()
            .map(|(i, c)| data(first + (i * MAX_FRAME) as u64, c))
            .collect();
        if self.local_eof {
            frames.push(vec![FIN]);
        }
        frames
    }
}

/// Relays between `local` and one MLS-TLS connection `upstream` until both
/// directions are done or the connection breaks. `peer_hello` is the
/// peer's HELLO if the caller already read it (the server does, to find the
/// stream).
pub(crate) async fn pump<L, U>(
    state: &mut RelayState,
    local_rd: &mut L,
    local_wr: &mut (impl AsyncWrite + Unpin),
    upstream: U,
    peer_hello: Option<u64>,
) -> Outcome
where
    L: AsyncRead + Unpin,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut up_rd, mut up_wr) = tokio::io::split(upstream);
    // Frames from the peer arrive through a task, so that waiting for one
    // never loses half a frame when the local side wins the select.
    let (tx, mut frames) = mpsc::channel::<std::io::Result<Option<Frame>>>(16);
    let reader = tokio::spawn(async move {
        loop {
            let f = read_frame(&mut up_rd).await;
            let end = !matches!(f, Ok(Some(_)));
            if tx.send(f).await.is_err() || end {
                return;
            }
        }
    });
    let outcome = pump_inner(
        state,
        local_rd,
        local_wr,
        &mut up_wr,
        &mut frames,
        peer_hello,
    )
    .await;
    reader.abort();
    if outcome == Outcome::Done {
        let _ = up_wr.shutdown().await;
    }
    outcome
}

async fn pump_inner<L, W>(
    state: &mut RelayState,
    local_rd: &mut L,
    local_wr: &mut (impl AsyncWrite + Unpin),
    up_wr: &mut W,
    frames: &mut mpsc::Receiver<std::io::Result<Option<Frame>>>,
    peer_hello: Option<u64>,
) -> Outcome
where
    L: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    macro_rules! send {
        ($bytes:expr) => {
            if up_wr.write_all(&$bytes).await.is_err() {
                return Outcome::UpstreamLost;
            }
        };
    }
    send!(hello(state.id, state.received));
    // Data waits for the peer's HELLO: it says where the stream resumes.
    let mut synced = false;
    if let Some(peer_received) = peer_hello {
        for f in state.resend_from(peer_received) {
            send!(f);
        }
        synced = true;
    }
    if up_wr.flush().await.is_err() {
        return Outcome::UpstreamLost;
    }
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        if state.local_eof && state.peer_fin && state.unacked.is_empty() {
            return Outcome::Done;
        }
        tokio::select! {
            frame = frames.recv() => {
                let Some(Ok(Some(frame))) = frame else {
                    return Outcome::UpstreamLost;
                };
                match frame {
                    Frame::Data { offset, bytes } => {
                        if offset > state.received {
                            // A gap: the peer broke the protocol.
                            return Outcome::UpstreamLost;
                        }
                        // Skip what already arrived on an earlier connection.
                        let skip = ((state.received - offset) as usize).min(bytes.len());
                        let d = &bytes[skip..];
                        if local_wr.write_all(d).await.is_err() {
                            // The local side is gone: nothing more to deliver.
                            state.peer_fin = true;
                        }
                        state.received += d.len() as u64;
                        if state.received - state.last_ack_sent >= ACK_EVERY {
                            state.last_ack_sent = state.received;
                            send!(ack(state.received));
                        }
                    }
                    Frame::Ack(n) => state.acked(n),
                    Frame::Hello { received, .. } => {
                        if !synced {
                            for f in state.resend_from(received) {
                                send!(f);
                            }
                            synced = true;
                        }
                    }
                    Frame::Fin => {
                        let _ = local_wr.flush().await;
                        let _ = local_wr.shutdown().await;
                        state.peer_fin = true;
                        // Acknowledge everything, so the peer can finish.
                        state.last_ack_sent = state.received;
                        send!(ack(state.received));
                    }
                }
                let _ = local_wr.flush().await;
                if up_wr.flush().await.is_err() {
                    return Outcome::UpstreamLost;
                }
            }
            n = local_rd.read(&mut buf), if synced && !state.local_eof => {
                match n {
                    Ok(0) | Err(_) => {
                        state.local_eof = true;
                        send!([FIN]);
                    }
                    Ok(n) => {
                        state.unacked.extend(&buf[..n]);
                        send!(data(state.sent, &buf[..n]));
                        state.sent += n as u64;
                    }
                }
                if up_wr.flush().await.is_err() {
                    return Outcome::UpstreamLost;
                }
            }
        }
    }
}
