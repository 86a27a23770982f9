//! Target 1: the record deframer and opener on arbitrary bytes, under a
//! fixed key set.
//!
//! Input: one flag byte, then the bytes a peer sends. Flag bit 0-1 choose
//! the AEAD, bit 2 installs a candidate key next to the current one (the
//! state of a receiver after a peer's commit, SPEC 7).

use mls_tls::record::{ContentType, Deframer, RecordOpener, MAX_FRAGMENT_LEN};
use mls_tls::schedule::{AeadAlgorithm, TrafficKeys};

/// The AEAD flag bits 0-1 name.
pub fn aead(flags: u8) -> AeadAlgorithm {
    match flags & 3 {
        1 => AeadAlgorithm::Aes256Gcm,
        2 => AeadAlgorithm::ChaCha20Poly1305,
        _ => AeadAlgorithm::Aes128Gcm,
    }
}

/// The fixed current (`candidate == false`) or candidate key.
pub fn keys(aead: AeadAlgorithm, candidate: bool) -> TrafficKeys {
    let fill = if candidate { 0x5a } else { 0x17 };
    let key = vec![fill; aead.key_len()];
    TrafficKeys::from_raw(aead, &key, &[fill ^ 0xff; 12]).expect("fixed keys are valid")
}

/// The target.
pub fn run(data: &[u8]) {
    let Some((&flags, mut input)) = data.split_first() else {
        return;
    };
    let aead = aead(flags);
    let mut opener = RecordOpener::new();
    if flags & 8 == 0 {
        opener.install(keys(aead, false)).expect("install");
        if flags & 4 != 0 {
            opener.set_candidate(keys(aead, true)).expect("candidate");
        }
    }
    let mut deframer = Deframer::new();
    loop {
        let taken = deframer.push(input);
        input = &input[taken..];
        let mut progressed = false;
        loop {
            let record = match deframer.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => return,
            };
            progressed = true;
            let Ok(msg) = opener.open(record) else {
                return;
            };
            assert!(msg.payload.len() <= MAX_FRAGMENT_LEN, "content over 2^14");
            if msg.typ != ContentType::ApplicationData {
                assert!(!msg.payload.is_empty(), "empty handshake or alert content");
            }
            if !msg.encrypted {
                assert_ne!(msg.typ, ContentType::ApplicationData, "plaintext data");
            }
        }
        if input.is_empty() {
            return;
        }
        assert!(
            taken > 0 || progressed,
            "deframer takes no bytes and yields no record"
        );
    }
}
