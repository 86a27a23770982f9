//! Target 7: identity files, trust files, PEM roots and X.509 chains.
//!
//! Input: one byte choosing the parser (0 mod 4: `Identity::from_bytes`;
//! 1: `RootCertStore::from_pem`; 2: the chain encoding inside an X.509
//! identity file; 3: `PinnedKeys::from_trust_text`), then the bytes.

use mls_tls::credentials::x509::RootCertStore;
use mls_tls::credentials::{Identity, PinnedKeys};

/// The target.
pub fn run(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(id) = Identity::from_bytes(bytes) {
                let again = Identity::from_bytes(&id.to_bytes().expect("encodes"))
                    .expect("re-encoded identity reads back");
                assert_eq!(again.public_key(), id.public_key());
                assert_eq!(again.name(), id.name());
            }
        }
        1 => {
            let _ = RootCertStore::from_pem(bytes);
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                if let Ok(pins) = PinnedKeys::from_trust_text(text) {
                    // Only a file with at least one line is accepted.
                    assert!(!pins.is_empty());
                }
            }
        }
        _ => {
            if let Ok(chain) = mls_tls::fuzzing::decode_chain(bytes) {
                let encoded = mls_tls::fuzzing::encode_chain(&chain);
                let again = mls_tls::fuzzing::decode_chain(&encoded).expect("re-decodes");
                assert_eq!(again, chain);
            }
        }
    }
}
