//! The MLS-TLS key schedule (SPEC section 3): traffic secrets exported from
//! the MLS group, expanded into record keys with TLS 1.3's
//! `HKDF-Expand-Label` (RFC 8446 section 7.1).
//!
//! ```
//! use mls_tls::schedule::{AeadAlgorithm, HashAlgorithm, Side, TrafficSecrets};
//!
//! // In a connection the two secrets come from the MLS exporter.
//! let secrets = TrafficSecrets::from_exporter(HashAlgorithm::Sha256, |label, len| {
//!     Ok::<_, mls_tls::Error>(vec![label.len() as u8; len])
//! })
//! .unwrap();
//! let keys = secrets.into_keys(AeadAlgorithm::Aes128Gcm, Side::Client).unwrap();
//! assert_eq!(keys.send.key().len(), 16);
//! ```

use aws_lc_rs::{aead, hkdf};
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;

/// MLS exporter label of the initiator's (client direction) traffic secret.
pub const CLIENT_TRAFFIC_LABEL: &str = "MLS-TLS c ap traffic";
/// MLS exporter label of the responder's (server direction) traffic secret.
pub const SERVER_TRAFFIC_LABEL: &str = "MLS-TLS s ap traffic";

/// Length of every record nonce and IV.
pub const IV_LEN: usize = 12;
const MAX_KEY_LEN: usize = 32;

/// Which traffic direction a party sends on. The initiator of a connection
/// sends on the client direction, the responder on the server direction
/// (SPEC section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The initiator: sends with the client traffic secret.
    Client,
    /// The responder: sends with the server traffic secret.
    Server,
}

impl Side {
    /// The other side.
    pub fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// The KDF hash of an MLS ciphersuite, used for `HKDF-Expand-Label`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256 (`Nh` = 32).
    Sha256,
    /// SHA-384 (`Nh` = 48).
    Sha384,
    /// SHA-512 (`Nh` = 64).
    Sha512,
}

impl HashAlgorithm {
    /// Output length `Nh` in bytes: the traffic secret length.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    fn hkdf(self) -> hkdf::Algorithm {
        match self {
            Self::Sha256 => hkdf::HKDF_SHA256,
            Self::Sha384 => hkdf::HKDF_SHA384,
            Self::Sha512 => hkdf::HKDF_SHA512,
        }
    }
}

/// The record AEAD of an MLS ciphersuite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadAlgorithm {
    /// AES-128-GCM (16-byte key).
    Aes128Gcm,
    /// AES-256-GCM (32-byte key).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (32-byte key).
    ChaCha20Poly1305,
}

impl AeadAlgorithm {
    /// All record AEADs, for tests and benchmarks.
    pub const ALL: [Self; 3] = [Self::Aes128Gcm, Self::Aes256Gcm, Self::ChaCha20Poly1305];

    /// Key length `Nk` in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm | Self::ChaCha20Poly1305 => 32,
        }
    }

    /// Authentication tag length in bytes (16 for all three).
    pub fn tag_len(self) -> usize {
        16
    }

    /// A short human name, e.g. `AES-128-GCM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "AES-128-GCM",
            Self::Aes256Gcm => "AES-256-GCM",
            Self::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        }
    }

    pub(crate) fn backend(self) -> &'static aead::Algorithm {
        match self {
            Self::Aes128Gcm => &aead::AES_128_GCM,
            Self::Aes256Gcm => &aead::AES_256_GCM,
            Self::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// `HKDF-Expand-Label(secret, label, context, out.len())` of RFC 8446
/// section 7.1, with the `"tls13 "` label prefix, filling `out`.
pub fn hkdf_expand_label(
    hash: HashAlgorithm,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    const PREFIX: &[u8] = b"tls13 ";
    let (Ok(len), Ok(label_len), Ok(context_len)) = (
        u16::try_from(out.len()),
        u8::try_from(PREFIX.len() + label.len()),
        u8::try_from(context.len()),
    ) else {
        return Err(Error::ApiMisuse("HKDF-Expand-Label input too long"));
    };
    let len_bytes = len.to_be_bytes();
    let info = [
        &len_bytes[..],
        &[label_len],
        PREFIX,
        label,
        &[context_len],
        context,
    ];
    hkdf::Prk::new_less_safe(hash.hkdf(), secret)
        .expand(&info, OutLen(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| Error::Crypto("HKDF-Expand failed"))
}

struct OutLen(usize);

impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// One direction's application traffic secret. Zeroized on drop.
pub struct TrafficSecret {
    hash: HashAlgorithm,
    secret: Zeroizing<Vec<u8>>,
}

impl TrafficSecret {
    /// Wraps secret bytes of the hash's output length.
    pub fn new(hash: HashAlgorithm, secret: Vec<u8>) -> Result<Self, Error> {
        let secret = Zeroizing::new(secret);
        if secret.len() != hash.output_len() {
            return Err(Error::ApiMisuse("traffic secret length differs from Nh"));
        }
        Ok(Self { hash, secret })
    }

    /// The secret bytes; only for the opt-in key log (SPEC section 11).
    pub fn secret_bytes(&self) -> &[u8] {
        &self.secret
    }

    /// Derives `key` and `iv` for the given AEAD (SPEC section 3).
    pub fn derive_keys(&self, aead: AeadAlgorithm) -> Result<TrafficKeys, Error> {
        let mut keys = TrafficKeys {
            aead,
            key: Zeroizing::new([0u8; MAX_KEY_LEN]),
            iv: Zeroizing::new([0u8; IV_LEN]),
        };
        let key_len = aead.key_len();
        hkdf_expand_label(
            self.hash,
            &self.secret,
            b"key",
            &[],
            &mut keys.key[..key_len],
        )?;
        hkdf_expand_label(self.hash, &self.secret, b"iv", &[], &mut keys.iv[..])?;
        Ok(keys)
    }
}

impl core::fmt::Debug for TrafficSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrafficSecret")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Both directions' traffic secrets of one epoch.
#[derive(Debug)]
pub struct TrafficSecrets {
    /// The initiator's sending secret (`"MLS-TLS c ap traffic"`).
    pub client: TrafficSecret,
    /// The responder's sending secret (`"MLS-TLS s ap traffic"`).
    pub server: TrafficSecret,
}

impl TrafficSecrets {
    /// Exports both secrets through `exporter(label, length)`, which is the
    /// MLS-Exporter with an empty context.
    pub fn from_exporter<E>(
        hash: HashAlgorithm,
        mut exporter: impl FnMut(&str, usize) -> Result<Vec<u8>, E>,
    ) -> Result<Self, E>
    where
        E: From<Error>,
    {
        let nh = hash.output_len();
        let client = TrafficSecret::new(hash, exporter(CLIENT_TRAFFIC_LABEL, nh)?)?;
        let server = TrafficSecret::new(hash, exporter(SERVER_TRAFFIC_LABEL, nh)?)?;
        Ok(Self { client, server })
    }

    /// Turns the secrets into the send and receive keys of `side`, dropping
    /// (and so zeroizing) the secrets.
    pub fn into_keys(self, aead: AeadAlgorithm, side: Side) -> Result<DirectionalKeys, Error> {
        let client = self.client.derive_keys(aead)?;
        let server = self.server.derive_keys(aead)?;
        Ok(match side {
            Side::Client => DirectionalKeys {
                send: client,
                receive: server,
            },
            Side::Server => DirectionalKeys {
                send: server,
                receive: client,
            },
        })
    }
}

/// A record key and IV for one direction. Zeroized on drop.
pub struct TrafficKeys {
    aead: AeadAlgorithm,
    key: Zeroizing<[u8; MAX_KEY_LEN]>,
    iv: Zeroizing<[u8; IV_LEN]>,
}

impl TrafficKeys {
    /// Builds keys from raw bytes, e.g. for known-answer tests.
    pub fn from_raw(aead: AeadAlgorithm, key: &[u8], iv: &[u8; IV_LEN]) -> Result<Self, Error> {
        if key.len() != aead.key_len() {
            return Err(Error::ApiMisuse("key length does not match the AEAD"));
        }
        let mut k = Zeroizing::new([0u8; MAX_KEY_LEN]);
        k[..key.len()].copy_from_slice(key);
        Ok(Self {
            aead,
            key: k,
            iv: Zeroizing::new(*iv),
        })
    }

    /// The AEAD these keys are for.
    pub fn aead(&self) -> AeadAlgorithm {
        self.aead
    }

    /// The key bytes (`Nk` long).
    pub fn key(&self) -> &[u8] {
        &self.key[..self.aead.key_len()]
    }

    /// The 12-byte IV.
    pub fn iv(&self) -> &[u8; IV_LEN] {
        &self.iv
    }

    /// Builds the backend key and a copy of the IV; `self` is then dropped
    /// and zeroized by the caller.
    pub(crate) fn to_backend(&self) -> Result<(aead::LessSafeKey, Iv), Error> {
        let key = aead::UnboundKey::new(self.aead.backend(), self.key())
            .map_err(|_| Error::Crypto("AEAD key setup failed"))?;
        Ok((aead::LessSafeKey::new(key), Iv(*self.iv)))
    }
}

impl core::fmt::Debug for TrafficKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrafficKeys")
            .field("aead", &self.aead)
            .finish_non_exhaustive()
    }
}

/// The keys one party uses in one epoch: what it sends with and what it
/// expects from the peer.
#[derive(Debug)]
pub struct DirectionalKeys {
    /// Keys for records this side sends.
    pub send: TrafficKeys,
    /// Keys for records the peer sends.
    pub receive: TrafficKeys,
}

/// A record IV held by an installed key; zeroized on drop.
pub(crate) struct Iv(pub(crate) [u8; IV_LEN]);

impl Iv {
    /// The per-record nonce: the IV XOR the big-endian sequence number.
    #[inline]
    pub(crate) fn nonce(&self, seq: u64) -> aead::Nonce {
        let mut n = self.0;
        for (b, s) in n[IV_LEN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        aead::Nonce::assume_unique_for_key(n)
    }
}

impl Drop for Iv {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn expand_label_matches_rfc8448_handshake_key() {
        // RFC 8448 section 3: server handshake traffic secret -> key, iv.
        let secret = unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        let mut key = [0u8; 16];
        hkdf_expand_label(HashAlgorithm::Sha256, &secret, b"key", &[], &mut key).unwrap();
        assert_eq!(key.to_vec(), unhex("3fce516009c21727d0f2e4e86ee403bc"));
        let mut iv = [0u8; 12];
        hkdf_expand_label(HashAlgorithm::Sha256, &secret, b"iv", &[], &mut iv).unwrap();
        assert_eq!(iv.to_vec(), unhex("5d313eb2671276ee13000b30"));
    }

    #[test]
    fn secrets_map_to_directions_by_side() {
        let secrets = || {
            TrafficSecrets::from_exporter(HashAlgorithm::Sha384, |label, len| {
                assert_eq!(len, 48);
                Ok::<_, Error>(vec![label.as_bytes()[8]; len])
            })
            .unwrap()
        };
        let c = secrets()
            .into_keys(AeadAlgorithm::Aes256Gcm, Side::Client)
            .unwrap();
        let s = secrets()
            .into_keys(AeadAlgorithm::Aes256Gcm, Side::Server)
            .unwrap();
        assert_eq!(c.send.key(), s.receive.key());
        assert_eq!(c.receive.key(), s.send.key());
        assert_ne!(c.send.key(), c.receive.key());
        assert_eq!(c.send.key().len(), 32);
    }

    #[test]
    fn wrong_secret_length_is_rejected() {
        let r = TrafficSecrets::from_exporter(HashAlgorithm::Sha256, |_, _| {
            Ok::<_, Error>(vec![0; 16])
        });
        assert!(matches!(r, Err(Error::ApiMisuse(_))));
    }

    #[test]
    fn sha512_and_sha384_expand_to_requested_length() {
        for hash in [HashAlgorithm::Sha384, HashAlgorithm::Sha512] {
            let mut a = [0u8; 40];
            let mut b = [0u8; 40];
            hkdf_expand_label(hash, &[7; 64], b"key", b"", &mut a).unwrap();
            hkdf_expand_label(hash, &[7; 64], b"iv", b"", &mut b).unwrap();
            assert_ne!(a, b);
            assert_ne!(a, [0u8; 40]);
        }
    }

    #[test]
    fn nonce_xors_sequence_into_low_bytes() {
        let iv = Iv([0xff; 12]);
        let n = iv.nonce(0x0102);
        let bytes: &[u8] = n.as_ref();
        assert_eq!(&bytes[..10], &[0xff; 10]);
        assert_eq!(&bytes[10..], &[0xfe, 0xfd]);
    }
}
