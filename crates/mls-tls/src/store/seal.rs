//! Encryption at rest for any backend: [`Sealed`] seals each record's data
//! with AES-256-GCM under the newest key of a [`KeyRing`] and opens it
//! with whichever key sealed it (issue 15).
//!
//! Sealed data (format `MLSTLS-SEALED-1`): the magic, the key id (`u32`,
//! big-endian), a random 96-bit nonce, then the ciphertext and its tag.
//! The AAD is the magic, the key id, the record's version (`u64`) and its
//! session id (`u32` length, then the id), so a sealed blob moved to
//! another session or another version of the same session does not open.
//!
//! Nonces are drawn at random per seal (aws-lc-rs `RandomizedNonceKey`):
//! below 2^32 seals per key the chance of any nonce repeating stays under
//! 2^-32 (NIST SP 800-38D, 8.3). Rotate the key well before that: a new key
//! id written to the key file seals from the next save on.
//!
//! A record that does not open (tampered with, moved, sealed by another
//! store, under a key id this ring lacks, or not sealed at all) is logged
//! with the reason and the key id (never key material) and reported as
//! [`Error::UnknownSession`]: the session is treated as missing, so the
//! caller starts a new handshake. The record itself is kept: a process
//! configured with the right key may still read it, and the sweep removes
//! it once unused.
//!
//! The index fields (id, suite, role, the peer's public key, times, version)
//! stay in the clear: the backend needs them to list, sweep and check
//! versions. They hold no secret; the store checks them against the sealed
//! data on every load.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use tracing::warn;
use zeroize::Zeroizing;

use super::{Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord};
use crate::error::Error;

/// The environment variable the CLI reads a key ring from when no
/// `--store-key` file is given (same text as a key file; entries may be
/// separated by commas).
pub const STORE_KEY_ENV: &str = "MLSTLS_STORE_KEY";

const MAGIC: &[u8] = b"MLSTLS-SEALED-1";
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
/// The first line of a key file the CLI writes.
const HEADER: &str = "# mlstls store key ring: one `ID:HEX` per line; the highest id seals, every id opens. Keep this file mode 0600.";

/// The store keys: AES-256-GCM keys by id. The highest id seals new
/// records; every id opens records sealed under it. Key bytes live only
/// in aws-lc's key contexts (wiped when freed) and in zeroized buffers
/// while parsing.
pub struct KeyRing {
    keys: BTreeMap<u32, RandomizedNonceKey>,
}

impl core::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl KeyRing {
    /// Parses a key ring: entries `ID:HEX` (a decimal id from 1, 64 hex
    /// digits of key), separated by newlines, spaces or commas; `#` starts
    /// a comment. Errors name the entry's position, never its key.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut keys = BTreeMap::new();
        let entries = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|e| !e.is_empty());
        for (n, entry) in entries.enumerate() {
            let bad = |why: &str| Error::InvalidConfig(format!("store key entry {}: {why}", n + 1));
            let (id, key_hex) = entry
                .split_once(':')
                .ok_or_else(|| bad("not of the form ID:HEX"))?;
            let id: u32 = id
                .parse()
                .ok()
                .filter(|&i| i > 0)
                .ok_or_else(|| bad("the id is not a number from 1"))?;
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            hex::decode_to_slice(key_hex, &mut key[..])
                .map_err(|_| bad("the key is not 64 hex digits (32 bytes)"))?;
            let key = RandomizedNonceKey::new(&AES_256_GCM, &key[..])
                .map_err(|_| bad("aws-lc refused the key"))?;
            if keys.insert(id, key).is_some() {
                return Err(bad(&format!("key id {id} appears twice")));
            }
        }
        if keys.is_empty() {
            return Err(Error::InvalidConfig(
                "the store key ring holds no key".into(),
            ));
        }
        Ok(Self { keys })
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::InvalidConfig(format!("store key file {}: {e}", path.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::InvalidConfig(format!(
                    "store key file {} has mode {mode:04o}: group or others may read it; \
                     run `chmod 600 {}`",
                    path.display(),
                    path.display()
                )));
            }
        }
        if !meta.is_file() {
            return Err(Error::InvalidConfig(format!(
                "store key file {} is not a regular file",
                path.display()
            )));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidConfig(format!("store key file {}: {e}", path.display()))
        })?);
        Self::parse(&text).map_err(|e| match e {
            Error::InvalidConfig(m) => {
                Error::InvalidConfig(format!("store key file {}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// The key ring in the environment variable `var`, if set.
    pub fn from_env(var: &str) -> Result<Option<Self>, Error> {
        match std::env::var(var) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                Self::parse(&text)
                    .map(Some)
                    .map_err(|e| Error::InvalidConfig(format!("{var}: {e}")))
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(e) => Err(Error::InvalidConfig(format!("{var}: {e}"))),
        }
    }

    /// Creates a key file at `path` (mode 0600, refusing to overwrite
    /// anything) holding one new random key with id 1.
    pub fn create_file(path: impl AsRef<Path>) -> Result<(), Error> {
        write_new(path.as_ref(), &[(1, new_key()?)])
    }

    /// Adds a new random key to the key file at `path`, with the next id,
    /// so that it seals from now on while older keys still open; returns
    /// the new id. The file is replaced atomically (mode 0600).
    pub fn rotate_file(path: impl AsRef<Path>) -> Result<u32, Error> {
        let path = path.as_ref();
        let ring = Self::from_file(path)?; // checks mode and content
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidConfig(format!("store key file {}: {e}", path.display()))
        })?);
        let id = ring
            .newest()
            .0
            .checked_add(1)
            .ok_or_else(|| Error::InvalidConfig("store key ids are exhausted".into()))?;
        let tmp = path.with_extension(format!("new-{}", std::process::id()));
        let key = new_key()?;
        let mut out = Zeroizing::new(text.trim_end().to_string());
        out.push_str(&format!("\n{id}:{}\n", hex::encode(&key[..])));
        write_file(&tmp, &out)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::InvalidConfig(format!("store key file {}: {e}", path.display()))
        })?;
        Ok(id)
    }

    /// The key ids, ascending.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    fn newest(&self) -> (u32, &RandomizedNonceKey) {
        let (id, key) = self
            .keys
            .iter()
            .next_back()
            .expect("a key ring is never empty (parse refuses it)");
        (*id, key)
    }
}

fn new_key() -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(&mut key[..])
        .map_err(|_| Error::Crypto("no randomness for a store key"))?;
    Ok(key)
}

fn write_new(path: &Path, keys: &[(u32, Zeroizing<[u8; KEY_LEN]>)]) -> Result<(), Error> {
    let mut text = Zeroizing::new(format!("{HEADER}\n"));
    for (id, key) in keys {
        text.push_str(&format!("{id}:{}\n", hex::encode(&key[..])));
    }
    write_file(path, &text)
}

/// Writes `text` to a new file (never over an existing one), mode 0600.
fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let fail =
        |e: std::io::Error| Error::InvalidConfig(format!("store key file {}: {e}", path.display()));
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// A backend whose records' data is sealed with a [`KeyRing`]: what the
/// wrapped backend stores and returns is ciphertext; what this backend
/// returns is the plaintext the store wrote.
///
/// ```
/// use mls_tls::store::{conformance, KeyRing, MemoryBackend, Sealed};
/// let keys = KeyRing::parse(&format!("1:{}", "ab".repeat(32))).unwrap();
/// conformance::check(&Sealed::new(MemoryBackend::default(), keys));
/// ```
pub struct Sealed<B> {
    inner: B,
    keys: KeyRing,
}

impl<B> core::fmt::Debug for Sealed<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealed")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<B: SessionBackend> Sealed<B> {
    /// Seals the records of `inner` with `keys`.
    pub fn new(inner: B, keys: KeyRing) -> Self {
        Self { inner, keys }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

fn aad(key_id: u32, id: &SessionId, version: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + 16 + id.0.len());
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    // Session ids are MLS group ids, far below 4 GiB.
    aad.extend_from_slice(&(id.0.len() as u32).to_be_bytes());
    aad.extend_from_slice(&id.0);
    aad
}

impl<B: SessionBackend> Sealed<B> {
    fn seal(&self, record: &SessionRecord) -> Result<SessionRecord, Error> {
        let (key_id, key) = self.keys.newest();
        // Room for the tag, so appending it never moves the plaintext.
        let mut buf = Zeroizing::new(Vec::with_capacity(record.data.len() + TAG_LEN));
        buf.extend_from_slice(&record.data);
        let nonce = key
            .seal_in_place_append_tag(
                Aad::from(aad(key_id, record.id(), record.version)),
                &mut *buf,
            )
            .map_err(|_| Error::Crypto("sealing a session record failed"))?;
        let mut data = Vec::with_capacity(MAGIC.len() + 4 + NONCE_LEN + buf.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&key_id.to_be_bytes());
        data.extend_from_slice(nonce.as_ref());
        data.extend_from_slice(&buf);
        Ok(SessionRecord {
            info: record.info.clone(),
            version: record.version,
            data: Zeroizing::new(data),
        })
    }

    fn open(&self, record: SessionRecord) -> Result<SessionRecord, Error> {
        let id = record.id().clone();
        let missing = |key_id: Option<u32>, why: &str| {
            match key_id {
                Some(k) => warn!(session = %id, key_id = k, reason = why,
                    "stored session does not open: treating it as missing (a new handshake replaces it; the record is kept)"),
                None => warn!(session = %id, reason = why,
                    "stored session does not open: treating it as missing (a new handshake replaces it; the record is kept)"),
            }
            Error::UnknownSession(format!("stored session {id}: {why}"))
        };
        let Some(rest) = record.data.strip_prefix(MAGIC) else {
            return Err(missing(
                None,
                "not sealed, and this store reads only sealed records",
            ));
        };
        if rest.len() < 4 + NONCE_LEN + TAG_LEN {
            return Err(missing(None, "sealed record truncated"));
        }
        let (key_id, rest) = rest.split_at(4);
        let key_id = u32::from_be_bytes([key_id[0], key_id[1], key_id[2], key_id[3]]);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let Some(key) = self.keys.keys.get(&key_id) else {
            return Err(missing(
                Some(key_id),
                &format!("sealed under key id {key_id}, which this store's key ring lacks"),
            ));
        };
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Internal("nonce length"))?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain_len = key
            .open_in_place(
                nonce,
                Aad::from(aad(key_id, &id, record.version)),
                &mut buf[..],
            )
            .map_err(|_| {
                missing(
                    Some(key_id),
                    &format!(
                        "does not authenticate under key id {key_id}: tampered with, moved \
                         from another session or version, or sealed by another store"
                    ),
                )
            })?
            .len();
        buf.truncate(plain_len);
        Ok(SessionRecord {
            info: record.info,
            version: record.version,
            data: buf,
        })
    }
}

impl<B: SessionBackend> SessionBackend for Sealed<B> {
    fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.inner.load(id)?.map(|r| self.open(r)).transpose()
    }

    fn save(&self, record: &SessionRecord, precondition: Precondition) -> Result<bool, Error> {
        self.inner.save(&self.seal(record)?, precondition)
    }

    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        self.inner.delete(id)
    }

    fn delete_at_version(&self, id: &SessionId, version: u64) -> Result<bool, Error> {
        // The version is an index field, in the clear: the inner backend
        // checks it atomically, whether or not the data opens.
        self.inner.delete_at_version(id, version)
    }

    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        self.inner.list()
    }

    fn delete_unused_since(&self, cutoff: SystemTime) -> Result<usize, Error> {
        self.inner.delete_unused_since(cutoff)
    }
}
