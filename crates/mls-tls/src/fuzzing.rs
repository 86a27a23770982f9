//! Entry points for the fuzz targets (`crates/fuzz-targets`, `fuzz/`) into
//! decoders that are not public API. Only built with the `fuzzing` feature;
//! hidden from the docs and without any stability promise.

use rustls_pki_types::CertificateDer;

use crate::error::Error;
use crate::profile::{persist, x509};

/// Loads a group snapshot (the opaque `group` part of a stored session)
/// into a fresh private database, as resuming a parked session does.
pub fn restore_group_snapshot(snapshot: &[u8]) -> Result<(), Error> {
    let db = persist::private_db()?;
    persist::restore(&db, snapshot)
}

/// Decodes a certificate chain as stored in an identity file.
pub fn decode_chain(content: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    x509::decode_chain(content)
}

/// Encodes a certificate chain as stored in an identity file.
pub fn encode_chain(chain: &[CertificateDer<'_>]) -> Vec<u8> {
    x509::encode_chain(chain)
}
