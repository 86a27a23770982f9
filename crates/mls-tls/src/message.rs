//! Handshake message framing (SPEC section 4): `MlsTlsHandshake` and the
//! reassembly of handshake messages from record payloads.

pub use crate::enums::HandshakeType;
use crate::error::{Error, InvalidMessage, PeerMisbehaved};

/// Bytes before a handshake message body: type and uint24 length.
pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// Default largest handshake message accepted (SPEC section 4).
pub const DEFAULT_MAX_HANDSHAKE_LEN: usize = 256 * 1024;

/// One `MlsTlsHandshake`: a message type and an `MLSMessage` body, kept as
/// bytes here (the profile engine parses the body).
///
/// ```
/// use mls_tls::message::{HandshakeMessage, HandshakeType};
/// let msg = HandshakeMessage::new(HandshakeType::ClientHello, vec![0, 1, 0, 5]);
/// let wire = msg.encode();
/// assert_eq!(&wire[..4], &[1, 0, 0, 4]);
/// assert_eq!(HandshakeMessage::decode(&wire).unwrap(), msg);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeMessage {
    /// What the body is.
    pub typ: HandshakeType,
    /// The serialized `MLSMessage`.
    pub body: Vec<u8>,
}

impl HandshakeMessage {
    /// A message of type `typ` carrying `body`.
    pub fn new(typ: HandshakeType, body: Vec<u8>) -> Self {
        Self { typ, body }
    }

    /// The wire form: type, uint24 length, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HANDSHAKE_HEADER_LEN + self.body.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the wire form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = self.body.len() as u32;
        out.push(self.typ.to_u8());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&self.body);
    }

    /// Parses exactly one message: unknown types, empty bodies, a length
    /// that disagrees with the input (short or trailing bytes) are all
    /// `decode_error`.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (typ, len) = parse_header(bytes, usize::MAX)?;
        if bytes.len() != HANDSHAKE_HEADER_LEN + len {
            return Err(InvalidMessage::BadHandshake("length does not match the message").into());
        }
        Ok(Self::new(typ, bytes[HANDSHAKE_HEADER_LEN..].to_vec()))
    }
}

/// Parses a header (at least 4 bytes), checking type, emptiness and size.
fn parse_header(bytes: &[u8], max: usize) -> Result<(HandshakeType, usize), Error> {
    let [t, a, b, c, ..] = *bytes else {
        return Err(InvalidMessage::BadHandshake("truncated handshake header").into());
    };
    let typ = HandshakeType::from_u8(t).ok_or(InvalidMessage::UnknownHandshakeType(t))?;
    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    if len == 0 {
        return Err(InvalidMessage::BadHandshake("empty handshake message").into());
    }
    if len > max {
        return Err(InvalidMessage::HandshakeTooLarge { len, max }.into());
    }
    Ok((typ, len))
}

/// Reassembles handshake messages from the payloads of handshake records,
/// which may split a message or carry several (SPEC section 2).
///
/// A message's size is checked against the limit as soon as its header is
/// complete, before its body is buffered.
#[derive(Debug)]
pub struct HandshakeJoiner {
    buf: Vec<u8>,
    max_len: usize,
}

impl Default for HandshakeJoiner {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HANDSHAKE_LEN)
    }
}

impl HandshakeJoiner {
    /// A joiner accepting messages with bodies up to `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_len,
        }
    }

    /// Adds one handshake record's payload.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.buf.extend_from_slice(payload);
        if self.buf.len() >= HANDSHAKE_HEADER_LEN {
            parse_header(&self.buf, self.max_len)?;
        }
        Ok(())
    }

    /// The next complete message, if any.
    pub fn next_message(&mut self) -> Result<Option<HandshakeMessage>, Error> {
        if self.buf.len() < HANDSHAKE_HEADER_LEN {
            return Ok(None);
        }
        let (typ, len) = parse_header(&self.buf, self.max_len)?;
        let end = HANDSHAKE_HEADER_LEN + len;
        if self.buf.len() < end {
            return Ok(None);
        }
        let body = self.buf[HANDSHAKE_HEADER_LEN..end].to_vec();
        self.buf.drain(..end);
        if self.buf.len() >= HANDSHAKE_HEADER_LEN {
            parse_header(&self.buf, self.max_len)?;
        }
        Ok(Some(HandshakeMessage::new(typ, body)))
    }

    /// Whether part of a message is buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Called when the receiving keys change: a message may not span a key
    /// change (SPEC section 2), so buffered bytes are `unexpected_message`.
    pub fn check_key_change(&self) -> Result<(), Error> {
        if self.has_partial() {
            return Err(PeerMisbehaved::HandshakeSpansKeyChange.into());
        }
        Ok(())
    }
}

/// `TwoPartyMessageType`: the purpose of an MLS message, carried in its
/// SafeAAD (profile section 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TwoPartyMessageType {
    /// `connection_update(1)`.
    ConnectionUpdate,
    /// `resumption_request(2)`.
    ResumptionRequest,
    /// `resumption_response(3)`.
    ResumptionResponse,
    /// `epoch_key_update(4)`.
    EpochKeyUpdate,
}

impl TwoPartyMessageType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::ConnectionUpdate => 1,
            Self::ResumptionRequest => 2,
            Self::ResumptionResponse => 3,
            Self::EpochKeyUpdate => 4,
        }
    }

    /// Parses a wire value; `reserved(0)` and unknown values give `None`.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::ConnectionUpdate,
            2 => Self::ResumptionRequest,
            3 => Self::ResumptionResponse,
            4 => Self::EpochKeyUpdate,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertDescription;

    fn alert(r: Result<impl core::fmt::Debug, Error>) -> Option<AlertDescription> {
        r.unwrap_err().alert()
    }

    #[test]
    fn strict_decoding() {
        let ok = HandshakeMessage::new(HandshakeType::ResumptionResponse, vec![9; 300]).encode();
        assert_eq!(HandshakeMessage::decode(&ok).unwrap().body.len(), 300);
        let mut trailing = ok.clone();
        trailing.push(0);
        let short = &ok[..ok.len() - 1];
        for bad in [
            &trailing[..],
            short,
            &[7, 0, 0, 1, 0],
            &[1, 0, 0, 0],
            &[1, 0, 0],
        ] {
            assert_eq!(
                alert(HandshakeMessage::decode(bad)),
                Some(AlertDescription::DecodeError)
            );
        }
    }

    #[test]
    fn joiner_reassembles_any_split_and_many_per_record() {
        let msgs: Vec<HandshakeMessage> = (1..=6u8)
            .map(|t| {
                HandshakeMessage::new(
                    HandshakeType::from_u8(t).unwrap(),
                    vec![t; t as usize * 1000],
                )
            })
            .collect();
        let wire: Vec<u8> = msgs.iter().flat_map(HandshakeMessage::encode).collect();
        for chunk in [1, 3, 4, 999, 5000, wire.len()] {
            let mut j = HandshakeJoiner::default();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                j.push(piece).unwrap();
                while let Some(m) = j.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, msgs, "chunk {chunk}");
            assert!(!j.has_partial());
        }
    }

    #[test]
    fn oversized_message_rejected_from_its_header() {
        let mut j = HandshakeJoiner::new(1000);
        assert_eq!(
            alert(j.push(&[3, 0, 3, 0xe9])),
            Some(AlertDescription::DecodeError)
        );
        let mut j = HandshakeJoiner::new(1000);
        j.push(&[3, 0, 3]).unwrap();
        assert!(j.push(&[0xe8]).is_ok());
        let mut j = HandshakeJoiner::default();
        assert_eq!(
            alert(j.push(&[1, 0x04, 0, 1])),
            Some(AlertDescription::DecodeError)
        );
    }

    #[test]
    fn partial_message_across_key_change_is_unexpected() {
        let mut j = HandshakeJoiner::default();
        j.check_key_change().unwrap();
        j.push(&[3, 0, 0, 5, 1]).unwrap();
        assert_eq!(
            alert(j.check_key_change()),
            Some(AlertDescription::UnexpectedMessage)
        );
    }

    #[test]
    fn message_types_round_trip() {
        for v in 0..=255u8 {
            if let Some(t) = HandshakeType::from_u8(v) {
                assert_eq!(t.to_u8(), v);
            }
            if let Some(t) = TwoPartyMessageType::from_u8(v) {
                assert_eq!(t.to_u8(), v);
            }
        }
        assert_eq!(TwoPartyMessageType::from_u8(0), None);
    }
}
