//! TLS alerts (RFC 8446 section 6) as MLS-TLS uses them (SPEC section 9).

pub use crate::enums::AlertDescription;
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
