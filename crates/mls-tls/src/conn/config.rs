//! Connection configuration: identity, peer verification, session store and
//! the policies of SPEC sections 2, 7 and 8.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::credentials::{Identity, PeerVerifier};
use crate::error::Error;
use crate::keylog::KeyLog;
use crate::message::DEFAULT_MAX_HANDSHAKE_LEN;
use crate::profile::engine::ProfileConfig;
use crate::record::PaddingPolicy;
use crate::store::SessionStore;
use crate::time::{Clock, SystemClock};

/// Default limit on plaintext written but not yet sent, and on plaintext
/// received but not yet read: 64 KiB each (SPEC 9a, as rustls).
pub const DEFAULT_BUFFER_LIMIT: usize = 64 * 1024;

/// When a connection starts a key update on its own (SPEC 7). Each limit
/// can be off (`None`); the record usage limit always applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatePolicy {
    /// Update when this much time passed since the last update, checked
    /// when data is sent (an idle link is not woken). Default 120 s.
    pub interval: Option<Duration>,
    /// Update after this many application bytes sent plus received.
    /// Default 1 GiB.
    pub bytes: Option<u64>,
    /// Close if an update is not confirmed within this time after it left
    /// or after the peer last showed progress (a record arrived, the
    /// transport took our bytes), and in any case within
    /// [`CONFIRM_CAP`](super::CONFIRM_CAP) times this after it left.
    /// Default 60 s (SPEC 7, 9a).
    pub confirm_timeout: Duration,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(120)),
            bytes: Some(1 << 30),
            confirm_timeout: Duration::from_secs(60),
        }
    }
}

impl UpdatePolicy {
    /// No automatic updates (only the record usage limit and explicit
    /// `request_key_update` calls).
    pub fn manual() -> Self {
        Self {
            interval: None,
            bytes: None,
            ..Self::default()
        }
    }
}

/// Settings shared by both sides.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// Our identities (one per ciphersuite), the peer verifier and the store.
    pub profile: ProfileConfig,
    /// Automatic key updates.
    pub update_policy: UpdatePolicy,
    /// Record padding for records we send.
    pub padding: PaddingPolicy,
    /// Most early-data bytes sent or accepted on a resumption (SPEC 8).
    pub max_early_data: usize,
    /// Largest handshake message accepted (SPEC 4).
    pub max_handshake_len: usize,
    /// Where installed traffic secrets are logged, if anywhere (SPEC 11).
    pub key_log: Option<Arc<dyn KeyLog>>,
    /// How long a handshake (or resumption) may take, counted from the
    /// connection's creation (SPEC 6, 9a). Default 10 s.
    pub handshake_timeout: Duration,
    /// Most bytes of plaintext written but not yet sent, plus TLS bytes
    /// not yet taken by `write_tls`; writes beyond it are short. `None`:
    /// unbounded. Default 64 KiB (SPEC 9a).
    pub send_buffer_limit: Option<usize>,
    /// Most bytes of received plaintext the application has not read yet;
    /// beyond it no more records are processed and `wants_read()` is false
    /// until the application reads. At least 1. Default 64 KiB (SPEC 9a).
    pub receive_buffer_limit: usize,
    /// Where the connection gets the time (SPEC 9a): the system clock by
    /// default, a [`ManualClock`](crate::time::ManualClock) in tests.
    pub clock: Arc<dyn Clock>,
}

impl CommonConfig {
    fn new(identity: Identity, verifier: Arc<dyn PeerVerifier>, store: Arc<SessionStore>) -> Self {
        Self {
            profile: ProfileConfig::new(vec![Arc::new(identity)], verifier, store),
            update_policy: UpdatePolicy::default(),
            padding: PaddingPolicy::None,
            max_early_data: 16 * 1024,
            max_handshake_len: DEFAULT_MAX_HANDSHAKE_LEN,
            key_log: None,
            handshake_timeout: Duration::from_secs(10),
            send_buffer_limit: Some(DEFAULT_BUFFER_LIMIT),
            receive_buffer_limit: DEFAULT_BUFFER_LIMIT,
            clock: Arc::new(SystemClock),
        }
    }
}

macro_rules! config_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            /// The settings.
            pub common: CommonConfig,
        }

        impl $name {
            /// A configuration with one identity, a peer verifier and a
            /// session store, and the SPEC defaults for everything else.
            pub fn new(
                identity: Identity,
                verifier: Arc<dyn PeerVerifier>,
                store: Arc<SessionStore>,
            ) -> Self {
                Self {
                    common: CommonConfig::new(identity, verifier, store),
                }
            }

            /// Like [`Self::new`] with sessions in an SQLite file at `path`.
            pub fn with_store_file(
                identity: Identity,
                verifier: Arc<dyn PeerVerifier>,
                path: impl AsRef<Path>,
            ) -> Result<Self, Error> {
                Ok(Self::new(identity, verifier, Arc::new(SessionStore::open(path)?)))
            }

            /// Adds an identity for another ciphersuite.
            pub fn add_identity(mut self, identity: Identity) -> Self {
                self.common.profile.identities.push(Arc::new(identity));
                self
            }

            /// Sets the automatic key update policy.
            pub fn update_policy(mut self, policy: UpdatePolicy) -> Self {
                self.common.update_policy = policy;
                self
            }

            /// Sets the record padding policy.
            pub fn padding(mut self, padding: PaddingPolicy) -> Self {
                self.common.padding = padding;
                self
            }

            /// Sets the early-data limit in bytes.
            pub fn max_early_data(mut self, bytes: usize) -> Self {
                self.common.max_early_data = bytes;
                self
            }

            /// Logs traffic secrets to `key_log` (SPEC 11).
            pub fn key_log(mut self, key_log: Arc<dyn KeyLog>) -> Self {
                self.common.key_log = Some(key_log);
                self
            }

            /// How long a handshake may take before the connection closes
            /// (a provisional server session, SPEC 6). Default 10 s.
            pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
                self.common.handshake_timeout = timeout;
                self
            }

            /// Limits plaintext written but not yet sent (with the TLS bytes
            /// not yet taken by `write_tls`) to `bytes`; `None` removes the
            /// limit. Writes beyond it are short (`Ok(0)` when full).
            /// Default 64 KiB (SPEC 9a).
            pub fn send_buffer_limit(mut self, bytes: Option<usize>) -> Self {
                self.common.send_buffer_limit = bytes;
                self
            }

            /// Limits received plaintext the application has not read to
            /// `bytes` (at least 1); further records wait in the transport.
            /// Default 64 KiB (SPEC 9a).
            pub fn receive_buffer_limit(mut self, bytes: usize) -> Self {
                self.common.receive_buffer_limit = bytes.max(1);
                self
            }

            /// Takes time from `clock` instead of the system clocks: for
            /// deterministic tests of every timer, and for certificate
            /// checks at a chosen time.
            pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
                self.common.clock = clock;
                self
            }

            /// The session store.
            pub fn store(&self) -> &Arc<SessionStore> {
                &self.common.profile.store
            }
        }
    };
}

config_type! {
    /// Configuration of the initiating side (`ClientConnection`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mls_tls::conn::ClientConfig;
    /// use mls_tls::credentials::{Identity, PinnedKeys};
    /// use mls_tls::store::SessionStore;
    /// use mls_tls::crypto::CipherSuite;
    ///
    /// let me = Identity::generate("device-17", CipherSuite::DEFAULT).unwrap();
    /// let server_key = vec![0u8; 32]; // from the server's public line
    /// let config = ClientConfig::new(
    ///     me,
    ///     Arc::new(PinnedKeys::new([server_key])),
    ///     Arc::new(SessionStore::in_memory().unwrap()),
    /// );
    /// assert_eq!(config.common.max_early_data, 16 * 1024);
    /// ```
    ClientConfig
}

config_type! {
    /// Configuration of the accepting side (`ServerConnection`).
    ServerConfig
}
