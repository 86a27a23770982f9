//! The byte forms of a [`StoredSession`] (the opaque data of a record) and
//! of a whole [`SessionRecord`] (for blob backends): versioned,
//! length-prefixed. Strict on read: damage is an error, never a panic.

use zeroize::Zeroizing;

use super::{
    from_secs, secs, InitialRole, PendingCommit, SessionId, SessionInfo, SessionMeta,
    SessionRecord, StoredSession, StoredState, MAX_SECS,
};
use crate::crypto::CipherSuite;
use crate::error::Error;
use crate::message::TwoPartyMessageType;

const MAGIC: &[u8] = b"MLSTLS-SESSION-1";
const RECORD_MAGIC: &[u8] = b"MLSTLS-RECORD-1";

pub(super) fn encode_record(r: &SessionRecord) -> Zeroizing<Vec<u8>> {
    let i = &r.info;
    let mut out = Zeroizing::new(Vec::with_capacity(64 + i.id.0.len() + r.data.len()));
    out.extend_from_slice(RECORD_MAGIC);
    put_bytes(&mut out, &i.id.0);
    out.extend_from_slice(&i.suite.code_point().to_be_bytes());
    out.push(role_to_u8(i.initial_role));
    put_bytes(&mut out, &i.peer_signature_key);
    out.extend_from_slice(&secs(i.created).to_be_bytes());
    out.extend_from_slice(&secs(i.last_used).to_be_bytes());
    out.extend_from_slice(&r.version.to_be_bytes());
    put_bytes(&mut out, &r.data);
    out
}

pub(super) fn decode_record(bytes: &[u8]) -> Result<SessionRecord, Error> {
    let mut r = Reader(
        bytes
            .strip_prefix(RECORD_MAGIC)
            .ok_or_else(|| bad("not an MLS-TLS session record"))?,
    );
    let info = SessionInfo {
        id: SessionId(r.bytes()?.to_vec()),
        suite: suite_from_u16(r.u16()?)?,
        initial_role: role_from_u8(r.u8()?)?,
        peer_signature_key: r.bytes()?.to_vec(),
        created: from_secs(r.time()?),
        last_used: from_secs(r.time()?),
    };
    let version = r.u64()?;
    let data = Zeroizing::new(r.bytes()?.to_vec());
    if !r.0.is_empty() {
        return Err(bad("trailing bytes after a session record"));
    }
    Ok(SessionRecord {
        info,
        version,
        data,
    })
}

pub(super) fn encode(s: &StoredSession) -> Zeroizing<Vec<u8>> {
    let m = &s.meta;
    let mut out = Zeroizing::new(Vec::with_capacity(
        128 + m.peer_credential.len() + s.group.len(),
    ));
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, &m.id.0);
    out.extend_from_slice(&m.suite.code_point().to_be_bytes());
    out.push(role_to_u8(m.initial_role));
    out.push(state_to_u8(&m.state));
    match m.state.pending() {
        Some(p) => {
            out.push(1);
            out.push(p.typ.to_u8());
            put_bytes(&mut out, &p.message);
        }
        None => out.push(0),
    }
    match &m.last_commit_hash {
        Some(h) => {
            out.push(1);
            out.extend_from_slice(h);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&m.last_send_epoch.to_be_bytes());
    put_bytes(&mut out, &m.peer_credential);
    put_bytes(&mut out, &m.peer_signature_key);
    // Clamped as the reader requires (a caller may set any value).
    out.extend_from_slice(&m.created.min(MAX_SECS).to_be_bytes());
    out.extend_from_slice(&m.last_used.min(MAX_SECS).to_be_bytes());
    out.extend_from_slice(&m.version.to_be_bytes());
    put_bytes(&mut out, &s.group);
    out
}

pub(super) fn decode(bytes: &[u8]) -> Result<StoredSession, Error> {
    let mut r = Reader(
        bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a stored MLS-TLS session"))?,
    );
    let id = SessionId(r.bytes()?.to_vec());
    let suite = suite_from_u16(r.u16()?)?;
    let initial_role = role_from_u8(r.u8()?)?;
    let state = r.u8()?;
    let pending = match r.u8()? {
        0 => None,
        1 => {
            let typ = TwoPartyMessageType::from_u8(r.u8()?)
                .ok_or_else(|| bad("bad pending commit type"))?;
            Some(PendingCommit {
                typ,
                message: r.bytes()?.to_vec(),
            })
        }
        _ => return Err(bad("bad pending commit flag")),
    };
    let last_commit_hash = match r.u8()? {
        0 => None,
        1 => Some(<[u8; 32]>::try_from(r.take(32)?).map_err(|_| bad("bad hash"))?),
        _ => return Err(bad("bad commit hash flag")),
    };
    // A pending commit exactly in the two Awaiting states.
    let state = match (state, pending) {
        (0, None) => StoredState::Synced,
        (1, Some(p)) => StoredState::AwaitingEpochKeyUpdate(p),
        (2, Some(p)) => StoredState::AwaitingResumptionResponse(p),
        (0..=2, _) => return Err(bad("pending commit disagrees with the state")),
        _ => return Err(bad("bad state")),
    };
    let meta = SessionMeta {
        id,
        suite,
        initial_role,
        state,
        last_commit_hash,
        last_send_epoch: r.u64()?,
        peer_credential: r.bytes()?.to_vec(),
        peer_signature_key: r.bytes()?.to_vec(),
        created: r.time()?,
        last_used: r.time()?,
        version: r.u64()?,
    };
    let group = Zeroizing::new(r.bytes()?.to_vec());
    if !r.0.is_empty() {
        return Err(bad("trailing bytes after a stored session"));
    }
    Ok(StoredSession { meta, group })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Records are built by us from bounded MLS objects: never near 4 GiB.
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or_else(|| bad("truncated stored session"))?;
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A timestamp (seconds since the Unix epoch) no later than
    /// [`MAX_SECS`].
    fn time(&mut self) -> Result<u64, Error> {
        let t = self.u64()?;
        if t > MAX_SECS {
            return Err(bad("timestamp after the year 9999"));
        }
        Ok(t)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let b = self.take(4)?;
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.take(len as usize)
    }
}

fn bad(why: &str) -> Error {
    Error::Store(why.into())
}

pub(super) fn suite_from_u16(v: u16) -> Result<CipherSuite, Error> {
    CipherSuite::from_code_point(v).ok_or_else(|| Error::Store(format!("unknown suite {v:#06x}")))
}

pub(super) fn role_to_u8(r: InitialRole) -> u8 {
    match r {
        InitialRole::Initiator => 0,
        InitialRole::Responder => 1,
    }
}

pub(super) fn role_from_u8(v: u8) -> Result<InitialRole, Error> {
    match v {
        0 => Ok(InitialRole::Initiator),
        1 => Ok(InitialRole::Responder),
        _ => Err(bad("bad initial role")),
    }
}

fn state_to_u8(s: &StoredState) -> u8 {
    match s {
        StoredState::Synced => 0,
        StoredState::AwaitingEpochKeyUpdate(_) => 1,
        StoredState::AwaitingResumptionResponse(_) => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pending: bool) -> StoredSession {
        StoredSession {
            meta: SessionMeta {
                id: SessionId(vec![7; 32]),
                suite: CipherSuite::DEFAULT,
                initial_role: InitialRole::Responder,
                state: if pending {
                    StoredState::AwaitingEpochKeyUpdate(PendingCommit {
                        message: vec![1, 2, 3],
                        typ: TwoPartyMessageType::ConnectionUpdate,
                    })
                } else {
                    StoredState::Synced
                },
                last_commit_hash: pending.then_some([9; 32]),
                last_send_epoch: 5,
                peer_credential: vec![4; 40],
                peer_signature_key: vec![5; 32],
                created: 1_700_000_000,
                last_used: 1_700_000_100,
                version: 12,
            },
            group: Zeroizing::new(vec![0xAB; 300]),
        }
    }

    #[test]
    fn round_trips_and_rejects_every_truncation_and_trailing_bytes() {
        for pending in [false, true] {
            let s = sample(pending);
            let bytes = encode(&s);
            assert_eq!(decode(&bytes).unwrap(), s);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut extra = bytes.to_vec();
            extra.push(0);
            assert!(matches!(decode(&extra), Err(Error::Store(_))));
        }
    }

    #[test]
    fn rejects_bad_enumerations() {
        let bytes = encode(&sample(true));
        let id_end = MAGIC.len() + 4 + 32;
        // suite, role, state, pending flag, pending type
        for (offset, value) in [
            (id_end, 0xFFu8),
            (id_end + 2, 2),
            (id_end + 3, 3),
            (id_end + 4, 2),
            (id_end + 5, 0),
        ] {
            let mut b = bytes.to_vec();
            b[offset] = value;
            assert!(decode(&b).is_err(), "offset {offset}");
        }
    }

    /// "Which state" and "which commit waits" are one field in memory; a
    /// record that says otherwise is damage, not a state to run.
    #[test]
    fn a_pending_commit_outside_the_awaiting_states_is_refused() {
        let state_at = MAGIC.len() + 4 + 32 + 3;
        // Synced with a pending commit.
        let mut b = encode(&sample(true)).to_vec();
        b[state_at] = 0;
        assert!(
            matches!(decode(&b), Err(Error::Store(ref m)) if m.contains("disagrees")),
            "{:?}",
            decode(&b)
        );
        // Awaiting either message without one.
        for state in [1, 2] {
            let mut b = encode(&sample(false)).to_vec();
            b[state_at] = state;
            assert!(decode(&b).is_err(), "state {state}");
        }
        // Both Awaiting states carry their commit through a round trip.
        let mut s = sample(true);
        let p = s.meta.state.pending().unwrap().clone();
        s.meta.state = StoredState::AwaitingResumptionResponse(p);
        assert_eq!(decode(&encode(&s)).unwrap(), s);
    }

    use crate::store::conformance::record;

    /// A stored timestamp beyond what `SystemTime` holds is damage, in
    /// both formats, never a panic (found by the `store` fuzz target:
    /// `fuzz/regressions/store/record-timestamp-overflow`).
    #[test]
    fn timestamps_out_of_range_are_refused_not_a_panic() {
        let r = record(1, 1, 5000);
        let bytes = encode_record(&r);
        assert_eq!(decode_record(&bytes).unwrap(), r);
        // created and last_used are the two u64s before the version.
        let at = bytes.len() - 4 - r.data.len() - 8 - 16;
        for (field, offset) in [("created", at), ("last_used", at + 8)] {
            let mut evil = bytes.to_vec();
            evil[offset..offset + 8].copy_from_slice(&u64::MAX.to_be_bytes());
            assert!(
                matches!(decode_record(&evil), Err(Error::Store(_))),
                "{field}"
            );
            evil[offset..offset + 8].copy_from_slice(&MAX_SECS.to_be_bytes());
            assert!(decode_record(&evil).is_ok(), "{field} at the limit");
        }
        assert_eq!(from_secs(u64::MAX), from_secs(MAX_SECS));
    }
}
