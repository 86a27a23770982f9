//! A session's MLS group lives in plain memory (OpenMLS's key-value
//! `MemoryStorage`) for as long as its connection runs; what the session
//! store keeps is a snapshot of that storage, taken inside the transition
//! that changed it (SPEC 10).
//!
//! Snapshot format 2 (`MLSTLS-GROUP-2`): the magic, then the storage's
//! entries in strictly ascending key order, each `u16` key length, key,
//! `u32` value length, value (both big-endian). The decoder is strict: no
//! empty or duplicate keys, no unsorted entries, no trailing bytes, no
//! more than [`MAX_ENTRIES`] entries. Format 1 (rows of a private SQLite
//! database) is recognised and refused as [`Error::UnknownSession`], so
//! the caller starts a new handshake.

use std::collections::HashMap;

use openmls_memory_storage::MemoryStorage;
use zeroize::{Zeroize, Zeroizing};

use super::{SessionId, SessionStore};
use crate::error::Error;

/// Magic and version of the current snapshot format.
const MAGIC: &[u8] = b"MLSTLS-GROUP-2";
/// Magic of format 1: a dump of OpenMLS's SQLite rows.
const MAGIC_V1: &[u8] = b"MLSTLS-GROUP-1";
/// A two-member group stores a few dozen entries; anything far beyond is
/// not a snapshot we wrote.
pub(crate) const MAX_ENTRIES: usize = 4096;

/// The OpenMLS storage of one session: plain memory, wiped when dropped.
/// OpenMLS writes its objects into it (JSON-encoded values under keys
/// made of a label, the group id and the storage version).
#[derive(Debug, Default)]
pub(crate) struct GroupStorage(MemoryStorage);

impl GroupStorage {
    /// The storage OpenMLS reads and writes through the provider.
    pub(crate) fn storage(&self) -> &MemoryStorage {
        &self.0
    }

    /// Every entry as one byte string (format 2), keys in ascending order
    /// so equal groups give equal snapshots.
    pub(crate) fn snapshot(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let values = self
            .0
            .values
            .read()
            .map_err(|_| Error::Internal("group storage lock poisoned"))?;
        if values.len() > MAX_ENTRIES {
            // Saved, it could never be read back: fail the transition now.
            return Err(Error::Store(format!(
                "group storage holds {} entries, more than a snapshot may ({MAX_ENTRIES})",
                values.len()
            )));
        }
        let mut entries: Vec<(&Vec<u8>, &Vec<u8>)> = values.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let size = MAGIC.len()
            + entries
                .iter()
                .map(|(k, v)| 6 + k.len() + v.len())
                .sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(size));
        out.extend_from_slice(MAGIC);
        for (key, value) in entries {
            if key.is_empty() {
                return Err(Error::Internal("an empty OpenMLS storage key"));
            }
            let key_len = u16::try_from(key.len())
                .map_err(|_| Error::Internal("an OpenMLS storage key over 64 KiB"))?;
            let value_len = u32::try_from(value.len())
                .map_err(|_| Error::Internal("an OpenMLS storage value over 4 GiB"))?;
            out.extend_from_slice(&key_len.to_be_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&value_len.to_be_bytes());
            out.extend_from_slice(value);
        }
        Ok(out)
    }

    /// Storage holding exactly the entries of `snapshot` (format 2).
    /// A damaged snapshot is [`Error::Store`]; a format-1 snapshot is
    /// [`Error::UnknownSession`].
    pub(crate) fn restore(snapshot: &[u8]) -> Result<Self, Error> {
        let bad = |why: &str| Error::Store(format!("damaged group snapshot: {why}"));
        let Some(mut r) = snapshot.strip_prefix(MAGIC) else {
            if snapshot.starts_with(MAGIC_V1) {
                return Err(Error::UnknownSession(
                    "its group was stored in format 1 (SQLite rows), which this version no \
                     longer reads"
                        .into(),
                ));
            }
            return Err(bad("wrong format"));
        };
        let mut map = HashMap::new();
        let mut last: Option<&[u8]> = None;
        while !r.is_empty() {
            if map.len() == MAX_ENTRIES {
                return Err(bad("too many entries"));
            }
            let key_len = take(&mut r, 2).ok_or_else(|| bad("truncated"))?;
            let key_len = usize::from(u16::from_be_bytes([key_len[0], key_len[1]]));
            let key = take(&mut r, key_len).ok_or_else(|| bad("truncated"))?;
            if key.is_empty() {
                return Err(bad("empty key"));
            }
            if last.is_some_and(|l| l >= key) {
                return Err(bad("keys out of order or repeated"));
            }
            last = Some(key);
            let value_len = take(&mut r, 4).ok_or_else(|| bad("truncated"))?;
            let value_len =
                u32::from_be_bytes([value_len[0], value_len[1], value_len[2], value_len[3]]);
            let value_len = usize::try_from(value_len).map_err(|_| bad("truncated"))?;
            let value = take(&mut r, value_len).ok_or_else(|| bad("truncated"))?;
            map.insert(key.to_vec(), value.to_vec());
        }
        let storage = MemoryStorage::default();
        *storage
            .values
            .write()
            .map_err(|_| Error::Internal("group storage lock poisoned"))? = map;
        Ok(Self(storage))
    }
}

impl Drop for GroupStorage {
    /// The values hold the group's private keys and epoch secrets.
    fn drop(&mut self) {
        let values = match self.0.values.get_mut() {
            Ok(values) => values,
            Err(poisoned) => poisoned.into_inner(),
        };
        for value in values.values_mut() {
            value.zeroize();
        }
    }
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = r.split_at_checked(n)?;
    *r = rest;
    Some(head)
}

/// A session's group storage: open while a transition needs it, and
/// otherwise parked: dropped, to be rebuilt from the session store, which
/// holds the same state anyway.
pub(crate) enum GroupDb {
    Open(GroupStorage),
    Parked,
}

impl GroupDb {
    /// The storage, rebuilt from the stored session `id` if parked. The
    /// stored copy must still be `version`: otherwise another connection
    /// has moved the session on ([`Error::Superseded`]).
    pub(crate) fn open(
        &mut self,
        store: &SessionStore,
        id: &SessionId,
        version: u64,
    ) -> Result<&GroupStorage, Error> {
        if let Self::Parked = self {
            let stored = store
                .load(id)?
                .filter(|s| s.meta.version == version)
                .ok_or(Error::Superseded)?;
            *self = Self::Open(GroupStorage::restore(&stored.group)?);
        }
        match self {
            Self::Open(storage) => Ok(storage),
            Self::Parked => Err(Error::Internal("group storage parked after opening")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> GroupStorage {
        let s = GroupStorage::default();
        s.0.values.write().unwrap().extend(entries);
        s
    }

    /// The writer refuses what the reader would refuse, so no session is
    /// ever saved unreadable.
    #[test]
    fn the_writer_refuses_what_the_reader_refuses() {
        let too_many =
            storage((0..=MAX_ENTRIES as u32).map(|i| (i.to_be_bytes().to_vec(), vec![])));
        assert!(matches!(too_many.snapshot(), Err(Error::Store(_))));
        let at_limit = storage((0..MAX_ENTRIES as u32).map(|i| (i.to_be_bytes().to_vec(), vec![])));
        let snap = at_limit.snapshot().unwrap();
        assert_eq!(
            GroupStorage::restore(&snap).unwrap().snapshot().unwrap(),
            snap
        );
        let empty_key = storage([(vec![], vec![1])]);
        assert!(matches!(empty_key.snapshot(), Err(Error::Internal(_))));
    }
}
