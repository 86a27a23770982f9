//! Entry points for the fuzz targets (`crates/fuzz-targets`, `fuzz/`) into
//! decoders that are not public API. Only built with the `fuzzing` feature;
//! hidden from the docs and without any stability promise.

use rustls_pki_types::CertificateDer;

use crate::credentials::x509;
use crate::error::Error;
use crate::store::snapshot as persist;

/// Decodes a group snapshot (the opaque `group` part of a stored session)
/// into group storage, as resuming a parked session does, and returns the
/// snapshot of the result (equal to the input whenever decoding succeeds).
pub fn restore_group_snapshot(snapshot: &[u8]) -> Result<Vec<u8>, Error> {
    let storage = persist::GroupStorage::restore(snapshot)?;
    Ok(storage.snapshot()?.to_vec())
}

/// Decodes a certificate chain as stored in an identity file.
pub fn decode_chain(content: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    x509::decode_chain(content)
}

/// Encodes a certificate chain as stored in an identity file.
pub fn encode_chain(chain: &[CertificateDer<'_>]) -> Vec<u8> {
    x509::encode_chain(chain)
}
