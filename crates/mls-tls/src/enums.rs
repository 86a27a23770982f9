//! The wire enumerations every layer shares: alert descriptions (RFC 8446
//! section 6), record content types (SPEC section 2) and handshake message
//! types (SPEC section 4). A leaf module: it depends on nothing else in the
//! crate, so [`crate::error`] can name them without an import circle. Each
//! is re-exported where it belongs ([`crate::alert`], [`crate::record`],
//! [`crate::message`]).

macro_rules! alert_descriptions {
    ($($(#[$doc:meta])* $name:ident = $val:literal => $text:literal,)*) => {
        /// Why an alert was sent. The variants are the ones MLS-TLS sends
        /// (SPEC section 9) plus the other common TLS 1.3 values so that
        /// received alerts read well in logs; any other value is kept in
        /// [`AlertDescription::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum AlertDescription {
            $($(#[$doc])* $name,)*
            /// A value this implementation has no name for.
            Unknown(u8),
        }

        impl AlertDescription {
            /// The wire value.
            pub fn to_u8(self) -> u8 {
                match self {
                    $(Self::$name => $val,)*
                    Self::Unknown(v) => v,
                }
            }

            /// Parses a wire value; unknown values are kept, not rejected.
            pub fn from_u8(v: u8) -> Self {
                match v {
                    $($val => Self::$name,)*
                    v => Self::Unknown(v),
                }
            }

            /// The RFC 8446 name, e.g. `bad_record_mac`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$name => $text,)*
                    Self::Unknown(_) => "unknown",
                }
            }
        }
    };
}

alert_descriptions! {
    /// `close_notify(0)`: orderly end of one direction.
    CloseNotify = 0 => "close_notify",
    /// `unexpected_message(10)`: a message not allowed in the current state.
    UnexpectedMessage = 10 => "unexpected_message",
    /// `bad_record_mac(20)`: a record failed authentication.
    BadRecordMac = 20 => "bad_record_mac",
    /// `record_overflow(22)`: a record longer than allowed.
    RecordOverflow = 22 => "record_overflow",
    /// `handshake_failure(40)`: no acceptable parameters, unknown session.
    HandshakeFailure = 40 => "handshake_failure",
    /// `bad_certificate(42)`: a credential the authentication service rejected.
    BadCertificate = 42 => "bad_certificate",
    /// `unsupported_certificate(43)`.
    UnsupportedCertificate = 43 => "unsupported_certificate",
    /// `certificate_revoked(44)`.
    CertificateRevoked = 44 => "certificate_revoked",
    /// `certificate_expired(45)`.
    CertificateExpired = 45 => "certificate_expired",
    /// `certificate_unknown(46)`.
    CertificateUnknown = 46 => "certificate_unknown",
    /// `illegal_parameter(47)`: a message that breaks a profile rule.
    IllegalParameter = 47 => "illegal_parameter",
    /// `unknown_ca(48)`.
    UnknownCa = 48 => "unknown_ca",
    /// `access_denied(49)`.
    AccessDenied = 49 => "access_denied",
    /// `decode_error(50)`: a message that does not parse.
    DecodeError = 50 => "decode_error",
    /// `decrypt_error(51)`: a message that cannot be authenticated.
    DecryptError = 51 => "decrypt_error",
    /// `protocol_version(70)`.
    ProtocolVersion = 70 => "protocol_version",
    /// `insufficient_security(71)`.
    InsufficientSecurity = 71 => "insufficient_security",
    /// `internal_error(80)`: a local failure, or a key used up.
    InternalError = 80 => "internal_error",
    /// `user_canceled(90)`.
    UserCanceled = 90 => "user_canceled",
    /// `missing_extension(109)`.
    MissingExtension = 109 => "missing_extension",
    /// `unsupported_extension(110)`.
    UnsupportedExtension = 110 => "unsupported_extension",
}

impl core::fmt::Display for AlertDescription {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unknown(v) => write!(f, "unknown alert ({v})"),
            d => write!(f, "{} ({})", d.name(), d.to_u8()),
        }
    }
}

/// The content types a record may carry (SPEC section 2). Others are
/// rejected with `unexpected_message`, so they have no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `alert(21)`.
    Alert,
    /// `handshake(22)`: every two-party-profile message.
    Handshake,
    /// `application_data(23)`: the outer type of every ciphertext record,
    /// and the inner type of application data.
    ApplicationData,
}

impl ContentType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Alert => 21,
            Self::Handshake => 22,
            Self::ApplicationData => 23,
        }
    }

    /// Parses a wire value; `None` for anything MLS-TLS does not accept.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            21 => Some(Self::Alert),
            22 => Some(Self::Handshake),
            23 => Some(Self::ApplicationData),
            _ => None,
        }
    }
}

/// `MlsTlsHandshakeType`: which two-party-profile message a handshake
/// message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeType {
    /// `client_hello(1)`: a KeyPackage, first flight of a new session.
    ClientHello,
    /// `server_hello(2)`: a Welcome answering a ClientHello.
    ServerHello,
    /// `connection_update(3)`: a commit that updates the keys.
    ConnectionUpdate,
    /// `epoch_key_update(4)`: an application message confirming a commit.
    EpochKeyUpdate,
    /// `resumption_request(5)`: a commit resuming a stored session.
    ResumptionRequest,
    /// `resumption_response(6)`: the commit answering a resumption.
    ResumptionResponse,
}

impl HandshakeType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::ClientHello => 1,
            Self::ServerHello => 2,
            Self::ConnectionUpdate => 3,
            Self::EpochKeyUpdate => 4,
            Self::ResumptionRequest => 5,
            Self::ResumptionResponse => 6,
        }
    }

    /// Parses a wire value; `None` for unknown types.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::ClientHello,
            2 => Self::ServerHello,
            3 => Self::ConnectionUpdate,
            4 => Self::EpochKeyUpdate,
            5 => Self::ResumptionRequest,
            6 => Self::ResumptionResponse,
            _ => return None,
        })
    }
}
