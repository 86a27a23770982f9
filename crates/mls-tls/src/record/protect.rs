//! Record protection: sealing outgoing content, opening incoming records,
//! sequence numbers, usage limits and the candidate receive key.

use aws_lc_rs::aead::{Aad, LessSafeKey};

use super::deframe::OpaqueRecord;
use super::{
    encode_header, ContentType, HEADER_LEN, MAX_FRAGMENT_LEN, MAX_INNER_PLAINTEXT_LEN, TAG_LEN,
};
use crate::error::{Error, InvalidMessage, PeerMisbehaved};
use crate::schedule::{AeadAlgorithm, Iv, TrafficKeys};

/// AES-GCM: start a key update after this many records (RFC 8446 5.5 / SPEC 2).
const AES_GCM_SOFT_LIMIT: u64 = 1 << 23;
/// AES-GCM: never protect more records than this with one key.
const AES_GCM_HARD_LIMIT: u64 = 1 << 24;
/// ChaCha20-Poly1305: ask for an update long before the sequence could wrap.
const CHACHA_SOFT_LIMIT: u64 = 1 << 62;
/// ChaCha20-Poly1305: the last sequence number is never used, so it never wraps.
const CHACHA_HARD_LIMIT: u64 = u64::MAX;

/// How a sender pads records (SPEC section 2: none unless configured).
/// Receivers accept any padding whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaddingPolicy {
    /// No padding.
    #[default]
    None,
    /// Pad each `TLSInnerPlaintext` to a multiple of this many bytes (as far
    /// as the record size limit allows), hiding exact message lengths.
    Multiple(u16),
}

impl PaddingPolicy {
    fn padding_for(self, content_len: usize) -> usize {
        match self {
            Self::None | Self::Multiple(0) => 0,
            Self::Multiple(n) => {
                let n = usize::from(n);
                let pad = (n - (content_len + 1) % n) % n;
                pad.min(MAX_FRAGMENT_LEN - content_len)
            }
        }
    }
}

/// One decoded record: its content type and content.
#[derive(Debug)]
pub struct Message<'a> {
    /// The (inner) content type.
    pub typ: ContentType,
    /// The content, decrypted in place when the record was encrypted.
    pub payload: &'a mut [u8],
    /// Whether the record was a ciphertext record.
    pub encrypted: bool,
}

/// An installed key with its sequence number.
struct DirectionKey {
    aead: AeadAlgorithm,
    key: LessSafeKey,
    iv: Iv,
    seq: u64,
}

impl DirectionKey {
    fn new(keys: TrafficKeys) -> Result<Self, Error> {
        let (key, iv) = keys.to_backend()?;
        Ok(Self {
            aead: keys.aead(),
            key,
            iv,
            seq: 0,
        })
    }

    fn limits(&self) -> (u64, u64) {
        match self.aead {
            AeadAlgorithm::Aes128Gcm | AeadAlgorithm::Aes256Gcm => {
                (AES_GCM_SOFT_LIMIT, AES_GCM_HARD_LIMIT)
            }
            AeadAlgorithm::ChaCha20Poly1305 => (CHACHA_SOFT_LIMIT, CHACHA_HARD_LIMIT),
        }
    }
}

/// The sending half of a connection's record layer.
///
/// Before [`RecordSealer::install`] nothing can be sealed (use
/// [`write_plaintext`]); after it every record is a `TLSCiphertext`. Each
/// install restarts the sequence number at 0 (SPEC section 2).
#[derive(Default)]
pub struct RecordSealer {
    key: Option<DirectionKey>,
    padding: PaddingPolicy,
}

impl RecordSealer {
    /// A sealer without keys and without padding.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how records are padded from now on.
    pub fn set_padding(&mut self, padding: PaddingPolicy) {
        self.padding = padding;
    }

    /// Installs new sending keys, replacing (and destroying) the old ones and
    /// restarting the sequence number at 0.
    pub fn install(&mut self, keys: TrafficKeys) -> Result<(), Error> {
        self.key = Some(DirectionKey::new(keys)?);
        Ok(())
    }

    /// Whether sending keys are installed.
    pub fn is_encrypting(&self) -> bool {
        self.key.is_some()
    }

    /// Sequence number of the next record, if keys are installed.
    pub fn sequence(&self) -> Option<u64> {
        self.key.as_ref().map(|k| k.seq)
    }

    /// Whether the key has protected enough records that a key update should
    /// start now (2^23 records for AES-GCM).
    pub fn wants_update(&self) -> bool {
        self.key.as_ref().is_some_and(|k| k.seq >= k.limits().0)
    }

    /// How many more records the current key may protect.
    pub fn records_remaining(&self) -> u64 {
        self.key.as_ref().map_or(0, |k| k.limits().1 - k.seq)
    }

    /// Appends `content` to `out` as one or more ciphertext records of at most
    /// 2^14 content bytes each, padded by the policy.
    pub fn seal(
        &mut self,
        typ: ContentType,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if content.is_empty() {
            return self.seal_one(typ, &[], out);
        }
        for chunk in content.chunks(MAX_FRAGMENT_LEN) {
            self.seal_one(typ, chunk, out)?;
        }
        Ok(())
    }

    fn seal_one(&mut self, typ: ContentType, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let pad = self.padding.padding_for(chunk.len());
        let start = out.len();
        out.reserve(HEADER_LEN + chunk.len() + 1 + pad + TAG_LEN);
        out.extend_from_slice(&[0; HEADER_LEN]);
        out.extend_from_slice(chunk);
        self.seal_in_place_padded(typ, out, start, pad)
            .inspect_err(|_| out.truncate(start))
    }

    /// Seals the content already in `buf[start + 5..]` into one record in
    /// place: `buf[start..start + 5]` is space reserved for the header. This
    /// is the zero-copy path: write content straight into the send buffer
    /// after a reserved header, then seal. Padding follows the policy.
    pub fn seal_in_place(
        &mut self,
        typ: ContentType,
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), Error> {
        let content_len = buf.len().saturating_sub(start + HEADER_LEN);
        let pad = self.padding.padding_for(content_len.min(MAX_FRAGMENT_LEN));
        self.seal_in_place_padded(typ, buf, start, pad)
    }

    /// [`RecordSealer::seal_in_place`] with an explicit number of zero
    /// padding bytes; content plus padding may not exceed 2^14.
    pub fn seal_in_place_padded(
        &mut self,
        typ: ContentType,
        buf: &mut Vec<u8>,
        start: usize,
        padding: usize,
    ) -> Result<(), Error> {
        let Some(key) = self.key.as_mut() else {
            return Err(Error::ApiMisuse("no sending keys installed"));
        };
        let Some(content_len) = buf.len().checked_sub(start + HEADER_LEN) else {
            return Err(Error::ApiMisuse("no space reserved for the record header"));
        };
        if content_len + padding > MAX_FRAGMENT_LEN {
            return Err(Error::ApiMisuse(
                "record content and padding exceed 2^14 bytes",
            ));
        }
        if content_len == 0 && typ != ContentType::ApplicationData {
            return Err(Error::ApiMisuse(
                "handshake and alert records cannot be empty",
            ));
        }
        if key.seq >= key.limits().1 {
            return Err(Error::KeyUsageExhausted);
        }
        buf.push(typ.to_u8());
        buf.resize(buf.len() + padding, 0);
        let header = encode_header(
            ContentType::ApplicationData,
            content_len + 1 + padding + TAG_LEN,
        );
        buf[start..start + HEADER_LEN].copy_from_slice(&header);
        let tag = key
            .key
            .seal_in_place_separate_tag(
                key.iv.nonce(key.seq),
                Aad::from(header),
                &mut buf[start + HEADER_LEN..],
            )
            .map_err(|_| Error::Crypto("AEAD seal failed"))?;
        buf.extend_from_slice(tag.as_ref());
        key.seq += 1;
        Ok(())
    }
}

impl core::fmt::Debug for RecordSealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecordSealer")
            .field("sequence", &self.sequence())
            .field("padding", &self.padding)
            .finish()
    }
}

/// Appends `content` to `out` as plaintext records (`TLSPlaintext`) of at
/// most 2^14 bytes each. Only handshake and alert content may travel in
/// plaintext, and it may not be empty.
pub fn write_plaintext(typ: ContentType, content: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    if typ == ContentType::ApplicationData {
        return Err(Error::ApiMisuse(
            "application data is never sent in plaintext",
        ));
    }
    if content.is_empty() {
        return Err(Error::ApiMisuse(
            "handshake and alert records cannot be empty",
        ));
    }
    for chunk in content.chunks(MAX_FRAGMENT_LEN) {
        out.extend_from_slice(&encode_header(typ, chunk.len()));
        out.extend_from_slice(chunk);
    }
    Ok(())
}

/// The receiving half of a connection's record layer.
///
/// Accepts plaintext handshake and alert records until the first ciphertext
/// record, and only ciphertext after it (SPEC section 2). Besides the current
/// key it can hold one *candidate* key (SPEC section 7): a record that fails
/// under the current key is tried once under the candidate, which is
/// promoted (and the old key destroyed) if that succeeds.
#[derive(Default)]
pub struct RecordOpener {
    current: Option<DirectionKey>,
    candidate: Option<DirectionKey>,
    /// A copy of the ciphertext while a candidate waits, since a failed
    /// decryption destroys the record in place.
    scratch: Vec<u8>,
    encrypted: bool,
}

impl RecordOpener {
    /// An opener without keys: it accepts plaintext records only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs new receiving keys, replacing (and destroying) the current
    /// key and any candidate, and restarting the sequence number at 0.
    pub fn install(&mut self, keys: TrafficKeys) -> Result<(), Error> {
        self.current = Some(DirectionKey::new(keys)?);
        self.candidate = None;
        Ok(())
    }

    /// Holds `keys` as the candidate to try once when a record fails under
    /// the current key. Without a current key they are installed directly.
    pub fn set_candidate(&mut self, keys: TrafficKeys) -> Result<(), Error> {
        if self.current.is_none() {
            return self.install(keys);
        }
        self.candidate = Some(DirectionKey::new(keys)?);
        self.scratch.reserve(super::MAX_CIPHERTEXT_LEN);
        Ok(())
    }

    /// Whether a candidate key waits to be tried.
    pub fn has_candidate(&self) -> bool {
        self.candidate.is_some()
    }

    /// Whether receiving keys are installed.
    pub fn has_keys(&self) -> bool {
        self.current.is_some()
    }

    /// Whether this direction has switched to ciphertext records.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Sequence number the next ciphertext record is expected under.
    pub fn sequence(&self) -> Option<u64> {
        self.current.as_ref().map(|k| k.seq)
    }

    /// Authenticates and decodes one record. Ciphertext is decrypted in
    /// place in the record's buffer.
    pub fn open<'a>(&mut self, record: OpaqueRecord<'a>) -> Result<Message<'a>, Error> {
        let OpaqueRecord { header, payload } = record;
        match ContentType::from_u8(header[0]) {
            Some(ContentType::ApplicationData) => self.open_ciphertext(header, payload),
            Some(_) if self.encrypted => Err(PeerMisbehaved::PlaintextAfterEncryption.into()),
            Some(typ) if payload.is_empty() => Err(PeerMisbehaved::EmptyContent(typ).into()),
            Some(typ) => Ok(Message {
                typ,
                payload,
                encrypted: false,
            }),
            None => Err(PeerMisbehaved::UnknownContentType(header[0]).into()),
        }
    }

    fn open_ciphertext<'a>(
        &mut self,
        header: [u8; HEADER_LEN],
        payload: &'a mut [u8],
    ) -> Result<Message<'a>, Error> {
        let Some(current) = self.current.as_mut() else {
            return Err(PeerMisbehaved::EncryptedBeforeKeys.into());
        };
        if payload.len() <= TAG_LEN {
            // Not even a content type fits: no valid record is this short.
            return Err(Error::DecryptFailed);
        }
        if current.seq == u64::MAX {
            return Err(PeerMisbehaved::SequenceNumberExhausted.into());
        }
        if self.candidate.is_some() {
            self.scratch.clear();
            self.scratch.extend_from_slice(payload);
        }
        let plain_len = match current.key.open_in_place(
            current.iv.nonce(current.seq),
            Aad::from(header),
            payload,
        ) {
            Ok(plain) => {
                current.seq += 1;
                plain.len()
            }
            Err(_) => {
                let Some(mut candidate) = self.candidate.take() else {
                    return Err(Error::DecryptFailed);
                };
                payload.copy_from_slice(&self.scratch);
                let plain = candidate
                    .key
                    .open_in_place(
                        candidate.iv.nonce(candidate.seq),
                        Aad::from(header),
                        payload,
                    )
                    .map_err(|_| Error::DecryptFailed)?;
                candidate.seq += 1;
                let len = plain.len();
                self.current = Some(candidate);
                len
            }
        };
        self.encrypted = true;
        decode_inner(&mut payload[..plain_len])
    }
}

/// Splits a `TLSInnerPlaintext` into content type and content.
fn decode_inner(inner: &mut [u8]) -> Result<Message<'_>, Error> {
    if inner.len() > MAX_INNER_PLAINTEXT_LEN {
        return Err(InvalidMessage::RecordOverflow {
            len: inner.len(),
            max: MAX_INNER_PLAINTEXT_LEN,
        }
        .into());
    }
    let Some(type_at) = inner.iter().rposition(|&b| b != 0) else {
        return Err(PeerMisbehaved::MissingInnerContentType.into());
    };
    let raw = inner[type_at];
    let typ = ContentType::from_u8(raw).ok_or(PeerMisbehaved::UnknownContentType(raw))?;
    if type_at == 0 && typ != ContentType::ApplicationData {
        return Err(PeerMisbehaved::EmptyContent(typ).into());
    }
    Ok(Message {
        typ,
        payload: &mut inner[..type_at],
        encrypted: true,
    })
}

impl core::fmt::Debug for RecordOpener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecordOpener")
            .field("sequence", &self.sequence())
            .field("has_candidate", &self.has_candidate())
            .field("encrypted", &self.encrypted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertDescription;

    fn keys(aead: AeadAlgorithm, b: u8) -> TrafficKeys {
        TrafficKeys::from_raw(aead, &vec![b; aead.key_len()], &[b; 12]).unwrap()
    }

    fn open_bytes(
        opener: &mut RecordOpener,
        wire: &mut [u8],
    ) -> Result<(ContentType, Vec<u8>), Error> {
        let (header, payload) = wire.split_at_mut(HEADER_LEN);
        let m = opener.open(OpaqueRecord {
            header: header.try_into().unwrap(),
            payload,
        })?;
        Ok((m.typ, m.payload.to_vec()))
    }

    #[test]
    fn aes_gcm_asks_for_update_then_refuses_at_the_limit() {
        let mut s = RecordSealer::new();
        s.install(keys(AeadAlgorithm::Aes128Gcm, 1)).unwrap();
        s.key.as_mut().unwrap().seq = AES_GCM_SOFT_LIMIT - 1;
        assert!(!s.wants_update());
        let mut out = Vec::new();
        s.seal(ContentType::ApplicationData, b"x", &mut out)
            .unwrap();
        assert!(s.wants_update());
        s.key.as_mut().unwrap().seq = AES_GCM_HARD_LIMIT - 1;
        s.seal(ContentType::ApplicationData, b"x", &mut out)
            .unwrap();
        assert_eq!(s.records_remaining(), 0);
        let len = out.len();
        let err = s
            .seal(ContentType::ApplicationData, b"x", &mut out)
            .unwrap_err();
        assert_eq!(err, Error::KeyUsageExhausted);
        assert_eq!(err.alert(), Some(AlertDescription::InternalError));
        assert_eq!(out.len(), len, "nothing appended on failure");
        // A new key starts over.
        s.install(keys(AeadAlgorithm::Aes128Gcm, 2)).unwrap();
        assert_eq!(s.sequence(), Some(0));
        assert!(!s.wants_update());
    }

    #[test]
    fn chacha_sequence_never_wraps() {
        let mut s = RecordSealer::new();
        s.install(keys(AeadAlgorithm::ChaCha20Poly1305, 1)).unwrap();
        s.key.as_mut().unwrap().seq = u64::MAX - 1;
        let mut out = Vec::new();
        s.seal(ContentType::ApplicationData, b"x", &mut out)
            .unwrap();
        assert_eq!(
            s.seal(ContentType::ApplicationData, b"x", &mut out),
            Err(Error::KeyUsageExhausted)
        );

        let mut o = RecordOpener::new();
        o.install(keys(AeadAlgorithm::ChaCha20Poly1305, 1)).unwrap();
        o.current.as_mut().unwrap().seq = u64::MAX;
        let err = open_bytes(&mut o, &mut out).unwrap_err();
        assert_eq!(err, PeerMisbehaved::SequenceNumberExhausted.into());
    }

    #[test]
    fn padding_policy_pads_to_multiple_within_limit() {
        let p = PaddingPolicy::Multiple(256);
        assert_eq!(p.padding_for(0), 255);
        assert_eq!(p.padding_for(255), 0);
        assert_eq!(p.padding_for(MAX_FRAGMENT_LEN), 0);
        assert_eq!(PaddingPolicy::None.padding_for(5), 0);
        let mut s = RecordSealer::new();
        s.set_padding(p);
        s.install(keys(AeadAlgorithm::Aes128Gcm, 3)).unwrap();
        let mut out = Vec::new();
        s.seal(ContentType::Handshake, b"abc", &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + 256 + TAG_LEN);
        let mut o = RecordOpener::new();
        o.install(keys(AeadAlgorithm::Aes128Gcm, 3)).unwrap();
        assert_eq!(
            open_bytes(&mut o, &mut out).unwrap(),
            (ContentType::Handshake, b"abc".to_vec())
        );
    }

    #[test]
    fn sealing_misuse_is_refused() {
        let mut s = RecordSealer::new();
        let mut out = Vec::new();
        assert!(matches!(
            s.seal(ContentType::ApplicationData, b"x", &mut out),
            Err(Error::ApiMisuse(_))
        ));
        s.install(keys(AeadAlgorithm::Aes128Gcm, 3)).unwrap();
        assert!(matches!(
            s.seal(ContentType::Alert, b"", &mut out),
            Err(Error::ApiMisuse(_))
        ));
        assert!(matches!(
            write_plaintext(ContentType::ApplicationData, b"x", &mut out),
            Err(Error::ApiMisuse(_))
        ));
        assert!(out.is_empty());
    }
}
