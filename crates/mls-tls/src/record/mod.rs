//! The TLS 1.3 record layer (RFC 8446 section 5) as MLS-TLS uses it
//! (SPEC section 2): framing, protection, sequence numbers and usage limits.
//!
//! It knows bytes, keys and sequence numbers, and nothing of MLS. Data flows
//! through three pieces:
//! - [`Deframer`] cuts an incoming byte stream into records;
//! - [`RecordOpener`] turns each record into a [`Message`], decrypting in
//!   place when the direction is encrypted;
//! - [`RecordSealer`] (or [`write_plaintext`] before keys exist) turns
//!   outgoing content into records appended to a send buffer.
//!
//! ```
//! use mls_tls::record::{ContentType, Deframer, RecordOpener, RecordSealer};
//! use mls_tls::schedule::{AeadAlgorithm, TrafficKeys};
//!
//! let keys = || TrafficKeys::from_raw(AeadAlgorithm::Aes128Gcm, &[1; 16], &[2; 12]).unwrap();
//! let mut sealer = RecordSealer::new();
//! sealer.install(keys()).unwrap();
//! let mut wire = Vec::new();
//! sealer.seal(ContentType::ApplicationData, b"hello", &mut wire).unwrap();
//!
//! let mut deframer = Deframer::new();
//! let mut opener = RecordOpener::new();
//! opener.install(keys()).unwrap();
//! assert_eq!(deframer.push(&wire), wire.len());
//! let record = deframer.next_record().unwrap().unwrap();
//! let msg = opener.open(record).unwrap();
//! assert_eq!(msg.typ, ContentType::ApplicationData);
//! assert_eq!(&msg.payload[..], b"hello");
//! ```

mod deframe;
mod protect;

pub use crate::enums::ContentType;

pub use deframe::{Deframer, OpaqueRecord};
pub use protect::{write_plaintext, Message, PaddingPolicy, RecordOpener, RecordSealer};

/// Bytes in a record header: type, version, length.
pub const HEADER_LEN: usize = 5;
/// Most content bytes in one record (2^14).
pub const MAX_FRAGMENT_LEN: usize = 1 << 14;
/// Most bytes of a ciphertext record's payload (2^14 + 256).
pub const MAX_CIPHERTEXT_LEN: usize = MAX_FRAGMENT_LEN + 256;
/// Most bytes of a decrypted `TLSInnerPlaintext` (2^14 + 1).
pub const MAX_INNER_PLAINTEXT_LEN: usize = MAX_FRAGMENT_LEN + 1;
/// Most bytes one record occupies on the wire.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_CIPHERTEXT_LEN;
/// `legacy_record_version` of every record.
pub const RECORD_VERSION: u16 = 0x0303;
/// AEAD tag length of every record AEAD.
pub const TAG_LEN: usize = 16;

/// Writes a record header for `typ` and `len` payload bytes.
#[inline]
pub(crate) fn encode_header(typ: ContentType, len: usize) -> [u8; HEADER_LEN] {
    let [v0, v1] = RECORD_VERSION.to_be_bytes();
    let [l0, l1] = (len as u16).to_be_bytes();
    [typ.to_u8(), v0, v1, l0, l1]
}
