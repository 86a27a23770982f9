//! Drives a [`Stream`] over one MLS-TLS connection (a link) and a local
//! side (stdin/stdout, a TCP connection, the echo pipe).
//!
//! One task does all I/O in one `select!`: reading the link, writing it,
//! reading the local side and writing it are separate branches, so none
//! waits for another (the old relay blocked writing upstream while it was
//! the only reader of incoming frames, and both sides could block). Flow
//! control comes from the stream: no local read while the send window is
//! full, no link read while delivery to the local side is behind.
//!
//! Liveness: a PING goes out when nothing was sent for `keepalive`, and a
//! link on which nothing arrived for `idle_timeout` is given up as lost
//! (a half-open connection, with no FIN and no RST, never fails on its own).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::signals::Stop;
use crate::stream::{Decoder, Frame, Link, ResetCode, Stream, StreamError};

/// The liveness settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) keepalive: Duration,
    pub(crate) idle_timeout: Duration,
}

/// How one link's pump ended.
#[derive(Debug)]
pub(crate) enum PumpEnd<N> {
    /// Both directions finished and were acknowledged.
    Done,
    /// The link broke (why, for the log); the stream can go on on another.
    Lost(String),
    /// A newer link for the stream arrived and takes over at once.
    Replaced(N),
    /// The stream cannot go on: a reset, a violation or a local failure.
    /// The peer was told (a RESET frame) where we could.
    Failed(String),
    /// Ended on purpose by a signal, ours (the peer was sent a RESET
    /// saying so, then close_notify) or the peer's (its RESET says so).
    Interrupted(String),
}

/// A new link: the MLS-TLS connection, what was read from it but not yet
/// decoded, and frames already decoded (the server reads the HELLO first).
pub(crate) struct LinkIo<U> {
    pub(crate) upstream: U,
    pub(crate) decoder: Decoder,
    pub(crate) frames: Vec<Frame>,
}

/// Writes a RESET and closes the link, best effort, within a short bound.
pub(crate) async fn send_reset<U: AsyncWrite + Unpin>(up: &mut U, code: ResetCode, reason: &str) {
    let mut out = Vec::new();
    Frame::Reset {
        code,
        reason: reason.to_string(),
    }
    .encode(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        up.write_all(&out).await?;
        up.shutdown().await
    })
    .await;
}

/// Relays between the local side and one link until the stream is done,
/// the link breaks, a newer link arrives on `takeover`, or the stream fails.
pub(crate) async fn pump<U, L, W, N>(
    stream: &mut Stream,
    local_rd: &mut L,
    local_wr: &mut W,
    link: LinkIo<U>,
    mut takeover: Option<&mut mpsc::Receiver<N>>,
    timing: Timing,
    stop: &mut Stop,
) -> PumpEnd<N>
where
    U: AsyncRead + AsyncWrite + Unpin,
    L: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let LinkIo {
        upstream,
        mut decoder,
        frames,
    } = link;
    let (mut up_rd, mut up_wr) = tokio::io::split(upstream);
    let mut out = Vec::new();
    stream.on_connect().encode(&mut out);
    // A reset from the peer is not answered with another.
    let fail = |e: StreamError| -> (Option<ResetCode>, String) {
        match &e {
            StreamError::Reset { .. } => (None, e.to_string()),
            _ => (Some(ResetCode::Protocol), e.to_string()),
        }
    };
    let interrupted = |e: &StreamError| {
        matches!(
            e,
            StreamError::Reset {
                code: ResetCode::Interrupted,
                ..
            }
        )
    };
    // Frames the caller decoded already.
    for f in frames {
        if let Err(e) = stream.on_frame(f) {
            if interrupted(&e) {
                return PumpEnd::Interrupted(e.to_string());
            }
            let (code, why) = fail(e);
            return failed(&mut up_wr, &mut out, code, why).await;
        }
    }
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut lbuf = vec![0u8; 64 * 1024];
    let mut up_dirty = false;
    let mut local_dirty = false;
    let mut last_rx = Instant::now();
    let mut last_tx = Instant::now();
    loop {
        // Frames already buffered (the server's decoder may hold some).
        loop {
            match decoder.next_frame() {
                Ok(Some(f)) => {
                    if let Err(e) = stream.on_frame(f) {
                        if interrupted(&e) {
                            return PumpEnd::Interrupted(e.to_string());
                        }
                        let (code, why) = fail(e);
                        return failed(&mut up_wr, &mut out, code, why).await;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let (code, why) = fail(e);
                    return failed(&mut up_wr, &mut out, code, why).await;
                }
            }
        }
        if stream.wants_local_shutdown() && stream.deliverable().is_empty() {
            if let Err(e) = local_wr.shutdown().await {
                let why = format!("local write failed: {e}");
                return failed(&mut up_wr, &mut out, Some(ResetCode::LocalFailure), why).await;
            }
            stream.on_local_shutdown();
        }
        while out.len() < 64 * 1024 {
            match stream.poll_transmit() {
                Some(f) => f.encode(&mut out),
                None => break,
            }
        }
        if stream.is_done() && out.is_empty() {
            let _ = local_wr.flush().await;
            let _ = tokio::time::timeout(timing.idle_timeout, up_wr.shutdown()).await;
            return PumpEnd::Done;
        }
        if !stream.accepting() {
            // Not reading is our choice, not the peer's silence.
            last_rx = Instant::now();
        }
        let synced = stream.link() == Link::Synced;
        let room = stream.local_room().min(lbuf.len());
        let deliver = stream.deliverable();
        let has_takeover = takeover.is_some();
        tokio::select! {
            biased;
            () = stop.stopped() => {
                // The peer learns that the end is on purpose, then gets
                // close_notify (the shutdown in `send_reset`).
                send_reset(&mut up_wr, ResetCode::Interrupted, stop.reason()).await;
                return PumpEnd::Interrupted(stop.reason().to_string());
            }
            next = async { takeover.as_mut().expect("checked").recv().await }, if has_takeover => {
                match next {
                    Some(n) => return PumpEnd::Replaced(n),
                    None => takeover = None,
                }
            }
            r = up_rd.read(&mut rbuf), if stream.accepting() => match r {
                Ok(0) => return PumpEnd::Lost("the peer closed the connection".into()),
                Ok(n) => {
                    decoder.push(&rbuf[..n]);
                    last_rx = Instant::now();
                }
                Err(e) => return PumpEnd::Lost(e.to_string()),
            },
            r = async {
                if out.is_empty() {
                    up_wr.flush().await.map(|()| 0)
                } else {
                    up_wr.write(&out).await
                }
            }, if !out.is_empty() || up_dirty => match r {
                Ok(_) if out.is_empty() => up_dirty = false,
                Ok(0) => return PumpEnd::Lost("the connection does not take data".into()),
                Ok(n) => {
                    out.drain(..n);
                    up_dirty = true;
                    last_tx = Instant::now();
                }
                Err(e) => return PumpEnd::Lost(e.to_string()),
            },
            r = async {
                if deliver.is_empty() {
                    local_wr.flush().await.map(|()| 0)
                } else {
                    local_wr.write(deliver).await
                }
            }, if !deliver.is_empty() || local_dirty => match r {
                Ok(_) if stream.deliverable().is_empty() => local_dirty = false,
                Ok(0) => {
                    let why = "local write failed: the output is closed".to_string();
                    return failed(&mut up_wr, &mut out, Some(ResetCode::LocalFailure), why).await;
                }
                Ok(n) => {
                    stream.on_delivered(n);
                    local_dirty = true;
                }
                Err(e) => {
                    let why = format!("local write failed: {e}");
                    return failed(&mut up_wr, &mut out, Some(ResetCode::LocalFailure), why).await;
                }
            },
            r = local_rd.read(&mut lbuf[..room]), if synced && room > 0 => match r {
                Ok(0) => stream.on_local_eof(),
                Ok(n) => stream.on_local_data(&lbuf[..n]),
                Err(e) => {
                    let why = format!("local read failed: {e}");
                    return failed(&mut up_wr, &mut out, Some(ResetCode::LocalFailure), why).await;
                }
            },
            () = tokio::time::sleep_until(last_tx + timing.keepalive), if synced => {
                stream.ping();
                last_tx = Instant::now();
            }
            () = tokio::time::sleep_until(last_rx + timing.idle_timeout) => {
                if !synced {
                    return PumpEnd::Lost(format!(
                        "no stream HELLO from the peer for {} s (a plain MLS-TLS peer? then use --plain)",
                        timing.idle_timeout.as_secs()
                    ));
                }
                return PumpEnd::Lost(format!(
                    "nothing from the peer for {} s (keepalive missing: a half-open connection?)",
                    timing.idle_timeout.as_secs()
                ));
            }
        }
    }
}

/// Tells the peer why the stream ends (best effort) and fails it.
async fn failed<W: AsyncWrite + Unpin, N>(
    up_wr: &mut W,
    out: &mut Vec<u8>,
    code: Option<ResetCode>,
    why: String,
) -> PumpEnd<N> {
    if let Some(code) = code {
        out.clear();
        send_reset(up_wr, code, &why).await;
    }
    PumpEnd::Failed(why)
}
