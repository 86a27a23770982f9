//! MLS-TLS connections: the sans-I/O core users program against, shaped
//! like rustls (`ClientConnection`, `ServerConnection`, `read_tls`,
//! `process_new_packets`, `reader`, `writer`, `write_tls`).
//!
//! ```
//! use std::sync::Arc;
//! use mls_tls::credentials::AcceptAnyPeer;
//! use mls_tls::{
//!     CipherSuite, ClientConfig, ClientConnection, Identity, ServerConfig, ServerConnection,
//!     SessionStore,
//! };
//! use std::io::{Read, Write};
//!
//! let suite = CipherSuite::X25519Aes128GcmSha256Ed25519;
//! let store = || Arc::new(SessionStore::in_memory().unwrap());
//! let client_config = ClientConfig::new(
//!     Identity::generate("client", suite).unwrap(), Arc::new(AcceptAnyPeer), store());
//! let server_config = ServerConfig::new(
//!     Identity::generate("server", suite).unwrap(), Arc::new(AcceptAnyPeer), store());
//! let mut client = ClientConnection::new(Arc::new(client_config)).unwrap();
//! let mut server = ServerConnection::new(Arc::new(server_config));
//!
//! client.writer().write_all(b"hello").unwrap();
//! // Move bytes until both are idle (a socket would do this).
//! let mut wire = Vec::new();
//! for _ in 0..4 {
//!     while client.wants_write() { client.write_tls(&mut wire).unwrap(); }
//!     server.read_tls(&mut &wire[..]).unwrap();
//!     wire.clear();
//!     server.process_new_packets().unwrap();
//!     while server.wants_write() { server.write_tls(&mut wire).unwrap(); }
//!     client.read_tls(&mut &wire[..]).unwrap();
//!     wire.clear();
//!     client.process_new_packets().unwrap();
//! }
//! let mut got = [0u8; 5];
//! server.reader().read_exact(&mut got).unwrap();
//! assert_eq!(&got, b"hello");
//! assert!(!client.is_handshaking() && !server.is_handshaking());
//! ```

mod buffer;
mod config;
mod core;

use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

pub use self::config::{
    ClientConfig, CommonConfig, ServerConfig, UpdatePolicy, DEFAULT_BUFFER_LIMIT,
};
use self::core::EarlyData;
pub use self::core::{ConnectionCore, IoState, CONFIRM_CAP};
use crate::error::Error;
use crate::profile::engine::Engine;
use crate::store::SessionId;

/// Reads received plaintext. Returns `WouldBlock` when nothing is buffered
/// and the peer has not closed, `Ok(0)` after the peer's `close_notify`.
/// When the plaintext runs out, records that waited behind the receive
/// limit are processed first.
#[derive(Debug)]
pub struct Reader<'a> {
    core: &'a mut ConnectionCore,
}

impl io::Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.core.received().is_empty() && self.core.has_unprocessed_input() {
            // Records that waited for the application to read (SPEC 9a);
            // an error is reported below.
            let _ = self.core.process_new_packets();
        }
        let n = self.core.received().read(buf);
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        if self.core.peer_closed() {
            return Ok(0);
        }
        if let Some(e) = self.core.error() {
            return Err(io::Error::other(e.clone()));
        }
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Writes plaintext to send. Data written before keys exist is queued and
/// sent once the handshake allows it.
#[derive(Debug)]
pub struct Writer<'a> {
    core: &'a mut ConnectionCore,
}

impl io::Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.core.write_plaintext(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ConnectionCore {
    /// The plaintext reader.
    pub fn reader(&mut self) -> Reader<'_> {
        Reader { core: self }
    }

    /// The plaintext writer.
    pub fn writer(&mut self) -> Writer<'_> {
        Writer { core: self }
    }
}

/// The initiating side of a connection: a new session, or the resumption
/// of a stored one (with early data).
#[derive(Debug)]
pub struct ClientConnection {
    core: ConnectionCore,
}

impl ClientConnection {
    /// Starts a new session: the ClientHello is queued for `write_tls`.
    pub fn new(config: Arc<ClientConfig>) -> Result<Self, Error> {
        let (engine, events) = Engine::client(config.common.profile.clone())?;
        let mut core = ConnectionCore::new(config.common.clone(), engine);
        core.start(events)?;
        Ok(Self { core })
    }

    /// Resumes the stored session `id` (profile section 6). If the request
    /// carries a fresh commit, up to `max_early_data` bytes written before
    /// the response go out as early data.
    pub fn resume(config: Arc<ClientConfig>, id: &SessionId) -> Result<Self, Error> {
        let (engine, events, _resumption) = Engine::resume(
            config.common.profile.clone(),
            id,
            config.common.clock.system_time(),
        )?;
        let mut core = ConnectionCore::new(config.common.clone(), engine);
        core.start(events)?;
        Ok(Self { core })
    }

    /// Whether data written now goes out as early data (a resumption with a
    /// fresh commit, budget left, response not yet received).
    pub fn is_sending_early_data(&self) -> bool {
        self.core.is_early_data_window()
    }

    /// Whether early data was sent and then accepted: the resumption
    /// response arrived encrypted under the new epoch's keys, which the
    /// server only sends when it delivers the early data (SPEC 8). `false`
    /// before the response and when it arrived in plaintext; the
    /// application then sends the data again.
    pub fn is_early_data_accepted(&self) -> bool {
        self.core.early == EarlyData::Accepted
    }
}

/// The accepting side of a connection: takes a ClientHello (new session) or
/// a ResumptionRequest (stored session) as first flight.
#[derive(Debug)]
pub struct ServerConnection {
    core: ConnectionCore,
}

impl ServerConnection {
    /// A connection waiting for a first flight.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        let engine = Engine::server(config.common.profile.clone());
        Self {
            core: ConnectionCore::new(config.common.clone(), engine),
        }
    }

    /// Early data received on a resumption, if any is buffered: bytes the
    /// client sent before the resumption completed. They were accepted
    /// only from a fresh request, so a replayed first flight never yields
    /// them (SPEC 8).
    pub fn early_data(&mut self) -> Option<EarlyDataReader<'_>> {
        (!self.core.early_received.is_empty()).then_some(EarlyDataReader {
            core: &mut self.core,
        })
    }
}

/// Reads early data on the server (see [`ServerConnection::early_data`]).
#[derive(Debug)]
pub struct EarlyDataReader<'a> {
    core: &'a mut ConnectionCore,
}

impl EarlyDataReader<'_> {
    /// How many early bytes are buffered.
    pub fn len(&self) -> usize {
        self.core.early_received.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl io::Read for EarlyDataReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.core.early_received.read(buf))
    }
}

macro_rules! deref_core {
    ($t:ty) => {
        impl Deref for $t {
            type Target = ConnectionCore;
            fn deref(&self) -> &ConnectionCore {
                &self.core
            }
        }
        impl DerefMut for $t {
            fn deref_mut(&mut self) -> &mut ConnectionCore {
                &mut self.core
            }
        }
    };
}

deref_core!(ClientConnection);
deref_core!(ServerConnection);

/// Either side, for code that drives both alike (the I/O adapters).
#[derive(Debug)]
pub enum Connection {
    /// An initiator.
    Client(ClientConnection),
    /// A responder.
    Server(ServerConnection),
}

impl Deref for Connection {
    type Target = ConnectionCore;
    fn deref(&self) -> &ConnectionCore {
        match self {
            Self::Client(c) => c,
            Self::Server(s) => s,
        }
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut ConnectionCore {
        match self {
            Self::Client(c) => c,
            Self::Server(s) => s,
        }
    }
}

impl From<ClientConnection> for Connection {
    fn from(c: ClientConnection) -> Self {
        Self::Client(c)
    }
}

impl From<ServerConnection> for Connection {
    fn from(s: ServerConnection) -> Self {
        Self::Server(s)
    }
}
