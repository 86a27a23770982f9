//! Target 6: session store records and group snapshots.
//!
//! Input: one byte choosing the decoder (2 mod 4: a backend's blob,
//! `SessionRecord::from_bytes`; other even values: a stored session,
//! `StoredSession::from_bytes`; odd: a group snapshot as restored into
//! group storage), then the bytes. A snapshot that decodes re-encodes to
//! exactly the input (the format has one encoding per storage content).

use mls_tls::store::{SessionRecord, StoredSession};

/// The target.
pub fn run(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which % 4 == 2 {
        if let Ok(r) = SessionRecord::from_bytes(bytes) {
            let again =
                SessionRecord::from_bytes(&r.to_bytes()).expect("re-encoded record decodes");
            assert_eq!(again, r, "encode then decode changed the record");
        }
    } else if which % 2 == 0 {
        if let Ok(s) = StoredSession::from_bytes(bytes) {
            let again =
                StoredSession::from_bytes(&s.to_bytes()).expect("re-encoded record decodes");
            assert_eq!(again, s, "encode then decode changed the record");
        }
    } else {
        if let Ok(again) = mls_tls::fuzzing::restore_group_snapshot(bytes) {
            assert_eq!(again, bytes, "a decoded snapshot re-encodes differently");
        }
    }
}
