//! TLS alerts (RFC 8446 section 6) as MLS-TLS uses them (SPEC section 9).

use crate::error::{Error, InvalidMessage};

/// How serious an alert is. TLS 1.3 treats every alert but `close_notify`
/// (and `user_canceled`) as fatal whatever the level says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertLevel {
    /// `warning(1)`: used for `close_notify`.
    Warning,
    /// `fatal(2)`: every error alert.
    Fatal,
    /// Any other level byte, kept so it can be reported.
    Unknown(u8),
}

impl AlertLevel {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Warning => 1,
            Self::Fatal => 2,
            Self::Unknown(v) => v,
        }
    }

    /// Parses a wire value; unknown values are kept, not rejected.
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Warning,
            2 => Self::Fatal,
            v => Self::Unknown(v),
        }
    }
}

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

/// An alert message: the two bytes carried in an `alert(21)` record.
///
/// ```
/// use mls_tls::alert::{Alert, AlertDescription};
/// let alert = Alert::fatal(AlertDescription::BadRecordMac);
/// assert_eq!(alert.encode(), [2, 20]);
/// assert_eq!(Alert::decode(&[2, 20]).unwrap(), alert);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alert {
    /// The level byte.
    pub level: AlertLevel,
    /// The description byte.
    pub description: AlertDescription,
}

impl Alert {
    /// The `close_notify` warning alert that ends one direction.
    pub const CLOSE_NOTIFY: Self = Self {
        level: AlertLevel::Warning,
        description: AlertDescription::CloseNotify,
    };

    /// A fatal alert with the given description.
    pub fn fatal(description: AlertDescription) -> Self {
        Self {
            level: AlertLevel::Fatal,
            description,
        }
    }

    /// The wire form.
    pub fn encode(self) -> [u8; 2] {
        [self.level.to_u8(), self.description.to_u8()]
    }

    /// Parses the content of an alert record. Anything but exactly two
    /// bytes is a `decode_error`.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        match bytes {
            [level, description] => Ok(Self {
                level: AlertLevel::from_u8(*level),
                description: AlertDescription::from_u8(*description),
            }),
            _ => Err(Error::InvalidMessage(InvalidMessage::BadAlertLength(
                bytes.len(),
            ))),
        }
    }

    /// Whether this alert only closes a direction (`close_notify`) rather
    /// than reporting an error.
    pub fn is_close_notify(self) -> bool {
        self.description == AlertDescription::CloseNotify
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_description_round_trips() {
        for v in 0..=255u8 {
            let d = AlertDescription::from_u8(v);
            assert_eq!(d.to_u8(), v);
        }
        assert_eq!(
            AlertDescription::from_u8(51),
            AlertDescription::DecryptError
        );
        assert_eq!(AlertDescription::from_u8(3), AlertDescription::Unknown(3));
    }

    #[test]
    fn alert_of_wrong_length_is_decode_error() {
        for bad in [&[][..], &[2][..], &[2, 20, 0][..]] {
            let err = Alert::decode(bad).unwrap_err();
            assert_eq!(err.alert(), Some(AlertDescription::DecodeError));
        }
    }

    #[test]
    fn unknown_level_is_kept() {
        let a = Alert::decode(&[9, 0]).unwrap();
        assert_eq!(a.level, AlertLevel::Unknown(9));
        assert!(a.is_close_notify());
        assert_eq!(a.encode(), [9, 0]);
    }
}
