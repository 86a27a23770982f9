//! Target 7: identity files, PEM roots and X.509 chains.
//!
//! Input: one byte choosing the parser (0 mod 3: `Identity::from_bytes`;
//! 1: `RootCertStore::from_pem`; 2: the chain encoding inside an X.509
//! identity file), then the bytes.
//!
//! The CLI's trust-file parser (`crates/mlstls-cli/src/keys.rs`,
//! `parse_trust`) lives in the binary only and is not fuzzed here.

use mls_tls::credentials::x509::RootCertStore;
use mls_tls::credentials::Identity;

/// The target.
pub fn run(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
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
        _ => {
            if let Ok(chain) = mls_tls::fuzzing::decode_chain(bytes) {
                let encoded = mls_tls::fuzzing::encode_chain(&chain);
                let again = mls_tls::fuzzing::decode_chain(&encoded).expect("re-decodes");
                assert_eq!(again, chain);
            }
        }
    }
}
