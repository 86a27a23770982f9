//! The crate's one error type and its mapping to alerts (SPEC section 9).
//!
//! Every variant says who is at fault (the peer, this side, or the caller)
//! and maps to exactly one alert in [`Error::alert`], the only place that
//! decides which alert a failure sends.

use core::fmt;

use crate::enums::{AlertDescription, ContentType, HandshakeType};

/// Everything that can go wrong in MLS-TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent bytes that do not form a valid record or message.
    InvalidMessage(InvalidMessage),
    /// The peer sent a well-formed message that breaks a protocol rule.
    PeerMisbehaved(PeerMisbehaved),
    /// A record failed authentication under every key that could apply:
    /// it was tampered with, truncated, or sent under other keys.
    DecryptFailed,
    /// The peer sent a fatal alert; the connection is over.
    AlertReceived(AlertDescription),
    /// This side's sending key protected as many records as it safely can
    /// (RFC 8446 section 5.5) and no key update arrived in time.
    KeyUsageExhausted,
    /// The cryptographic backend failed locally (not the peer's fault).
    Crypto(&'static str),
    /// The caller used the API in a way it does not allow; nothing was sent.
    /// Only for genuine caller mistakes: a broken invariant of this crate
    /// is [`Error::Internal`].
    ApiMisuse(&'static str),
    /// An invariant of this crate does not hold (a bug, or state that
    /// cannot have come from this crate): the connection closes with
    /// `internal_error`.
    Internal(&'static str),
    /// Local configuration the caller supplied is unusable (a root or
    /// certificate that does not parse, a chain that does not certify our
    /// key); nothing was sent.
    InvalidConfig(String),
    /// The handshake cannot proceed: no common ciphersuite, missing
    /// MLS-TLS components, or an unknown session.
    HandshakeFailure(String),
    /// The authentication service rejected the peer's credential.
    BadCertificate(String),
    /// The authentication service rejected the peer's credential because
    /// it is outside its validity period (expired, or not yet valid) at
    /// the time of the check (`certificate_expired`, SPEC 5).
    CertificateExpired(String),
    /// The peer's MLS message breaks a rule of the profile (SPEC section 5).
    IllegalParameter(String),
    /// A message could not be authenticated against the session (a stale
    /// or replayed resumption, garbage): the session is kept.
    DecryptError(String),
    /// The MLS library failed locally.
    Mls(String),
    /// The session store failed locally.
    Store(String),
    /// The session asked for cannot be resumed: the store has no such
    /// session, or holds it in a format this version no longer reads. A
    /// new handshake is the way on (SPEC 8); a server ending a resumption
    /// with it sends `handshake_failure`.
    UnknownSession(String),
    /// A resumption arrived while this side, the session's initial
    /// initiator, is resuming the same session itself: the incoming
    /// connection is closed with `close_notify` (SPEC 8).
    ResumptionRefused,
    /// Another connection resumed this session (or it was deleted) after
    /// this connection loaded it; this older connection closes with
    /// `close_notify` (SPEC 8).
    Superseded,
    /// The stored session moved past this connection in a way only a
    /// resumption can settle: a save reported as failed had stored a
    /// commit of ours that this connection never sent (its acknowledgement
    /// was lost), and the next step would contradict it (the peer's
    /// crossing update, or an identity rotated since). The connection
    /// closes with `internal_error`, never `close_notify`, so the peer
    /// keeps its state; the session is kept as stored and resumes (SPEC 8).
    StoredAhead(String),
    /// The peer did not complete a handshake or confirm a key update in
    /// time; the connection is closed without an alert (the session, if
    /// stored, is kept for resumption).
    Timeout(&'static str),
    /// `cause` ended the session (SPEC 8: an authenticated failure, or a
    /// peer that no longer verifies), but deleting it from the store
    /// failed (`store` says why), so it may still be listed and
    /// resumable: delete it with `SessionStore::delete` once the store
    /// works again. The peer is told `cause`'s alert.
    SessionNotDeleted {
        /// Why the session had to be deleted.
        cause: Box<Error>,
        /// The store's error on deleting it.
        store: String,
    },
    /// The peer's direction ended with a `close_notify` in a plaintext
    /// record: anyone on the path can forge one, so it cannot be told from
    /// a truncation and is not a clean end of stream (SPEC 8: plaintext
    /// alerts close the connection, never more). No alert is sent.
    UnauthenticatedClose,
}

/// Bytes from the peer that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// A record header announced more bytes than a record may carry.
    RecordOverflow {
        /// The announced (or decrypted) length.
        len: usize,
        /// The most this kind of record may carry.
        max: usize,
    },
    /// A record header carried a `legacy_record_version` other than 0x0303.
    BadRecordVersion(u16),
    /// An alert record whose content was not exactly two bytes.
    BadAlertLength(usize),
    /// A handshake message with an unknown `MlsTlsHandshakeType`.
    UnknownHandshakeType(u8),
    /// A handshake message announcing more bytes than the configured limit.
    HandshakeTooLarge {
        /// The announced body length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A handshake message whose framing or body does not parse.
    BadHandshake(&'static str),
}

/// A well-formed message from the peer that the protocol does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// A record (outer or inner) content type other than alert, handshake
    /// or application data.
    UnknownContentType(u8),
    /// A handshake or alert record with no content.
    EmptyContent(ContentType),
    /// A decrypted record that was all zeros: no content type.
    MissingInnerContentType,
    /// A plaintext record after this direction switched to ciphertext.
    PlaintextAfterEncryption,
    /// A ciphertext record before any receiving keys were installed.
    EncryptedBeforeKeys,
    /// Application data sent as a plaintext record.
    PlaintextApplicationData,
    /// The peer's sequence number would wrap; it should have updated keys.
    SequenceNumberExhausted,
    /// A handshake message was split across a change of keys.
    HandshakeSpansKeyChange,
    /// A handshake message the current profile state does not allow.
    UnexpectedHandshake {
        /// The message received.
        message: HandshakeType,
        /// The profile state it arrived in.
        state: &'static str,
    },
    /// Application data where the protocol forbids it (e.g. before the
    /// EpochKeyUpdate of a retransmitted resumption: a replay).
    UnexpectedApplicationData,
    /// More early data than the configured limit.
    TooMuchEarlyData,
}

impl Error {
    /// The alert this error sends to the peer, or `None` when nothing should
    /// be sent (the peer already closed, or the caller misused the API).
    pub fn alert(&self) -> Option<AlertDescription> {
        use AlertDescription as A;
        Some(match self {
            Self::InvalidMessage(InvalidMessage::RecordOverflow { .. }) => A::RecordOverflow,
            Self::InvalidMessage(_) => A::DecodeError,
            Self::PeerMisbehaved(_) => A::UnexpectedMessage,
            Self::DecryptFailed => A::BadRecordMac,
            Self::KeyUsageExhausted
            | Self::Crypto(_)
            | Self::Mls(_)
            | Self::Store(_)
            | Self::StoredAhead(_)
            | Self::Internal(_) => A::InternalError,
            Self::HandshakeFailure(_) | Self::UnknownSession(_) => A::HandshakeFailure,
            Self::BadCertificate(_) => A::BadCertificate,
            Self::CertificateExpired(_) => A::CertificateExpired,
            Self::SessionNotDeleted { cause, .. } => return cause.alert(),
            Self::IllegalParameter(_) => A::IllegalParameter,
            Self::DecryptError(_) => A::DecryptError,
            Self::AlertReceived(_)
            | Self::ApiMisuse(_)
            | Self::InvalidConfig(_)
            | Self::UnauthenticatedClose
            | Self::Timeout(_) => return None,
            Self::ResumptionRefused | Self::Superseded => A::CloseNotify,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMessage(m) => write!(f, "peer sent an invalid message: {m}"),
            Self::PeerMisbehaved(m) => write!(f, "peer broke the protocol: {m}"),
            Self::DecryptFailed => f.write_str(
                "a record from the peer failed authentication (tampered, truncated or wrong keys)",
            ),
            Self::AlertReceived(d) => write!(f, "peer closed the connection with alert {d}"),
            Self::KeyUsageExhausted => f.write_str(
                "the sending key reached its record limit and no key update completed in time",
            ),
            Self::Crypto(what) => write!(f, "local cryptographic failure: {what}"),
            Self::ApiMisuse(what) => write!(f, "API misuse: {what}"),
            Self::Internal(what) => write!(f, "internal error (a broken invariant): {what}"),
            Self::UnauthenticatedClose => f.write_str(
                "the connection ended with an unauthenticated (plaintext) close_notify: \
                 it may have been cut by someone on the path",
            ),
            Self::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Self::HandshakeFailure(why) => write!(f, "handshake failed: {why}"),
            Self::BadCertificate(why) => write!(f, "peer credential rejected: {why}"),
            Self::CertificateExpired(why) => {
                write!(
                    f,
                    "peer credential rejected, outside its validity period: {why}"
                )
            }
            Self::IllegalParameter(why) => write!(f, "peer broke a profile rule: {why}"),
            Self::DecryptError(why) => write!(f, "message could not be authenticated: {why}"),
            Self::Mls(why) => write!(f, "local MLS failure: {why}"),
            Self::Store(why) => write!(f, "session store failure: {why}"),
            Self::UnknownSession(why) => {
                write!(
                    f,
                    "session cannot be resumed, a new handshake is needed: {why}"
                )
            }
            Self::ResumptionRefused => {
                f.write_str("resumption refused: this side is resuming the session itself")
            }
            Self::Timeout(what) => write!(f, "timed out: {what}"),
            Self::Superseded => {
                f.write_str("the session was resumed on another connection; this one is closed")
            }
            Self::StoredAhead(why) => write!(
                f,
                "the stored session moved past this connection ({why}); it is closed and the \
                 session resumes from the store"
            ),
            Self::SessionNotDeleted { cause, store } => write!(
                f,
                "{cause}; the session had to be deleted, but the store failed to delete it \
                 ({store}): it may still be resumable"
            ),
        }
    }
}

impl fmt::Display for InvalidMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RecordOverflow { len, max } => {
                write!(f, "record of {len} bytes exceeds the limit of {max}")
            }
            Self::BadRecordVersion(v) => {
                write!(f, "record version {v:#06x}, expected 0x0303")
            }
            Self::BadAlertLength(n) => write!(f, "alert of {n} bytes, expected 2"),
            Self::UnknownHandshakeType(t) => write!(f, "unknown handshake message type {t}"),
            Self::HandshakeTooLarge { len, max } => {
                write!(
                    f,
                    "handshake message of {len} bytes exceeds the limit of {max}"
                )
            }
            Self::BadHandshake(what) => write!(f, "malformed handshake message: {what}"),
        }
    }
}

impl fmt::Display for PeerMisbehaved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownContentType(t) => write!(f, "unknown record content type {t}"),
            Self::EmptyContent(t) => write!(f, "empty {t:?} record"),
            Self::MissingInnerContentType => {
                f.write_str("decrypted record has no content type (all zeros)")
            }
            Self::PlaintextAfterEncryption => {
                f.write_str("plaintext record after the peer switched to encryption")
            }
            Self::EncryptedBeforeKeys => {
                f.write_str("encrypted record before any keys were agreed")
            }
            Self::PlaintextApplicationData => f.write_str("application data sent unencrypted"),
            Self::SequenceNumberExhausted => {
                f.write_str("peer exhausted the record sequence number without a key update")
            }
            Self::HandshakeSpansKeyChange => {
                f.write_str("handshake message split across a change of keys")
            }
            Self::UnexpectedHandshake { message, state } => {
                write!(f, "{message:?} not allowed in state {state}")
            }
            Self::UnexpectedApplicationData => {
                f.write_str("application data where the protocol allows none")
            }
            Self::TooMuchEarlyData => f.write_str("more early data than the configured limit"),
        }
    }
}

impl std::error::Error for Error {}

/// An error of the MLS library, with its debug form as the reason.
pub(crate) fn mls_err(e: impl core::fmt::Debug) -> Error {
    Error::Mls(format!("{e:?}"))
}

impl Error {
    /// The MLS-TLS error inside an `io::Error` from the blocking or tokio
    /// streams, if the failure was one (not a transport error), so callers
    /// can act on the variant instead of the text.
    pub fn from_io(e: &std::io::Error) -> Option<&Error> {
        e.get_ref()?.downcast_ref::<Error>()
    }
}

impl From<InvalidMessage> for Error {
    fn from(m: InvalidMessage) -> Self {
        Self::InvalidMessage(m)
    }
}

impl From<PeerMisbehaved> for Error {
    fn from(m: PeerMisbehaved) -> Self {
        Self::PeerMisbehaved(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_the_spec_alert() {
        use AlertDescription as A;
        let cases = [
            (Error::DecryptFailed, Some(A::BadRecordMac)),
            (
                InvalidMessage::RecordOverflow { len: 1, max: 0 }.into(),
                Some(A::RecordOverflow),
            ),
            (
                InvalidMessage::BadRecordVersion(0x0301).into(),
                Some(A::DecodeError),
            ),
            (
                PeerMisbehaved::PlaintextAfterEncryption.into(),
                Some(A::UnexpectedMessage),
            ),
            (Error::KeyUsageExhausted, Some(A::InternalError)),
            (Error::Internal("x"), Some(A::InternalError)),
            (Error::UnknownSession("x".into()), Some(A::HandshakeFailure)),
            (Error::BadCertificate("x".into()), Some(A::BadCertificate)),
            (
                Error::CertificateExpired("x".into()),
                Some(A::CertificateExpired),
            ),
            (
                Error::SessionNotDeleted {
                    cause: Box::new(Error::CertificateExpired("x".into())),
                    store: "disk".into(),
                },
                Some(A::CertificateExpired),
            ),
            (Error::AlertReceived(A::BadRecordMac), None),
            (Error::ApiMisuse("x"), None),
            (Error::InvalidConfig("x".into()), None),
        ];
        for (err, alert) in cases {
            assert_eq!(err.alert(), alert, "{err}");
            assert!(!err.to_string().is_empty());
        }
    }
}
