//! The `OpenMlsProvider` the engine hands to OpenMLS: a suite's crypto
//! backend ([`crate::crypto`]) and a session's group storage
//! ([`crate::store::snapshot`]).

use openmls_memory_storage::MemoryStorage;
use openmls_traits::OpenMlsProvider;

use crate::crypto::CryptoBackend;
use crate::store::snapshot::GroupStorage;

/// The `OpenMlsProvider` handed to openmls: a borrowed crypto backend (used
/// for both crypto and randomness) and a session's borrowed in-memory
/// storage ([`GroupStorage`]). Cheap to build, so make one per
/// connection/transition.
pub(crate) struct MlsProvider<'a> {
    crypto: &'a CryptoBackend,
    storage: &'a MemoryStorage,
}

impl<'a> MlsProvider<'a> {
    /// A provider over `crypto` and `storage`.
    pub(crate) fn new(crypto: &'a CryptoBackend, storage: &'a GroupStorage) -> Self {
        Self {
            crypto,
            storage: storage.storage(),
        }
    }
}

impl<'a> OpenMlsProvider for MlsProvider<'a> {
    type CryptoProvider = CryptoBackend;
    type RandProvider = CryptoBackend;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        self.crypto
    }
}

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;
