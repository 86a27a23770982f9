//! [`Connector::resume_or_connect`]: resume a stored session, falling back
//! to a new handshake exactly when SPEC 8 says the session is gone.

use std::future::Future;
use std::io;

use ::tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tracing::info;

use super::{Connector, TlsStream};
use crate::alert::AlertDescription;
use crate::conn::ClientConnection;
use crate::error::Error;
use crate::store::SessionId;

/// How [`Connector::resume_or_connect`] established its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Established {
    /// The stored session was resumed.
    Resumed,
    /// A new session was created; `fallback` is why the stored one was not
    /// resumed (`None` when no session was given).
    New {
        /// The error that ended the resumption attempt.
        fallback: Option<Error>,
    },
}

/// Whether a failed resumption leaves a new handshake as the way on: the
/// session is unknown here or there, unreadable, or was deleted because
/// the peer no longer verifies (then the new handshake checks the peer
/// again, which may pass with a renewed certificate). Store failures,
/// timeouts and transport errors are not: they are returned.
fn falls_back(e: &Error) -> bool {
    match e {
        Error::UnknownSession(_) | Error::BadCertificate(_) | Error::CertificateExpired(_) => true,
        // The server does not know the session (SPEC 8: it answers an
        // unknown ResumptionRequest with handshake_failure).
        Error::AlertReceived(AlertDescription::HandshakeFailure) => true,
        _ => false,
    }
}

impl Connector {
    /// Resumes `session` if given, else starts a new session; falls back
    /// to a new session, on a new transport from `connect`, when the
    /// resumption fails because the session is gone: unknown or in an
    /// old format in our store ([`Error::UnknownSession`]), deleted
    /// because the server no longer verifies ([`Error::BadCertificate`],
    /// [`Error::CertificateExpired`]), or unknown to the server (it
    /// answers `handshake_failure`). Any other failure is returned, as an
    /// `io::Error` whose inner error is the [`Error`] when the protocol
    /// failed ([`Error::from_io`]).
    ///
    /// Returns once the handshake or resumption is complete (no early
    /// data: use [`Connector::resume`] for that), with how the connection
    /// was established. The new session's id is
    /// `stream.get_ref().1.session_id()`.
    pub async fn resume_or_connect<IO, F, Fut>(
        &self,
        session: Option<&SessionId>,
        mut connect: F,
    ) -> io::Result<(TlsStream<IO>, Established)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<IO>>,
    {
        let Some(id) = session else {
            let stream = self.connect(connect().await?).await?;
            return Ok((stream, Established::New { fallback: None }));
        };
        let fallback = match ClientConnection::resume(self.config.clone(), id) {
            Err(e) if falls_back(&e) => e,
            Err(e) => return Err(io::Error::other(e)),
            Ok(conn) => {
                let mut stream = TlsStream::new(connect().await?, conn.into());
                // A flush waits for the ResumptionResponse.
                match stream.flush().await {
                    Ok(()) => return Ok((stream, Established::Resumed)),
                    Err(e) => match Error::from_io(&e) {
                        Some(inner) if falls_back(inner) => inner.clone(),
                        _ => return Err(e),
                    },
                }
            }
        };
        info!(session = %id, reason = %fallback, "resumption failed; starting a new session");
        let stream = self.connect(connect().await?).await?;
        Ok((
            stream,
            Established::New {
                fallback: Some(fallback),
            },
        ))
    }
}
