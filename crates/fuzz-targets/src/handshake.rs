//! Target 2: `MlsTlsHandshake` decoding and the handshake joiner over
//! arbitrary fragment sequences (SPEC 4).
//!
//! Input: one byte choosing the size limit, then fragments, each a length
//! byte and that many bytes (the last fragment takes what is left). The
//! whole input after the first byte is also decoded as one message.

use mls_tls::message::{HandshakeJoiner, HandshakeMessage, HANDSHAKE_HEADER_LEN};

/// The target.
pub fn run(data: &[u8]) {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    // Decoding: a message that decodes re-encodes to the same bytes.
    if let Ok(m) = HandshakeMessage::decode(rest) {
        assert_eq!(m.encode(), rest, "decode then encode changed the bytes");
        assert!(!m.body.is_empty(), "empty body accepted");
    }
    let max_len = match limit {
        0 => mls_tls::message::DEFAULT_MAX_HANDSHAKE_LEN,
        n => usize::from(n) * 16,
    };
    let mut joiner = HandshakeJoiner::new(max_len);
    let mut input = rest;
    let mut pushed = 0usize;
    let mut taken = 0usize;
    while let Some((&len, tail)) = input.split_first() {
        let (fragment, tail) = tail.split_at(usize::from(len).min(tail.len()));
        input = tail;
        if joiner.push(fragment).is_err() {
            return;
        }
        pushed += fragment.len();
        loop {
            match joiner.next_message() {
                Ok(Some(m)) => {
                    assert!(
                        !m.body.is_empty() && m.body.len() <= max_len,
                        "limit broken"
                    );
                    taken += HANDSHAKE_HEADER_LEN + m.body.len();
                    let again = HandshakeMessage::decode(&m.encode()).expect("re-decodes");
                    assert_eq!(again, m);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert_eq!(
            joiner.has_partial(),
            taken < pushed,
            "joiner lost or invented bytes"
        );
        // A partial message is bounded by the limit: never more than one
        // header plus one maximal body is buffered.
        assert!(pushed - taken <= HANDSHAKE_HEADER_LEN + max_len + 255);
    }
}
