//! The bodies of the MLS-TLS fuzz targets (issue 12).
//!
//! Each target is a function `fn(&[u8])` that must never panic on any
//! input except when it finds a bug (an oracle assertion). The cargo-fuzz
//! crate in `fuzz/` (nightly, libFuzzer) wraps each one in
//! `fuzz_target!`; the stable test `tests/replay.rs` runs every committed
//! corpus and regression file through the same functions, so `cargo test`
//! catches a regression without nightly.
//!
//! Targets 3-5 start from fixed sessions (`fixtures/`, written by the
//! `seed` binary together with the seed corpora): the same client and
//! server identities and stored sessions in every run, so a captured
//! first flight or server answer stays meaningful to the harness.

#![forbid(unsafe_code)]

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use mls_tls::conn::{ClientConfig, ConnectionCore, ServerConfig, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::keylog::KeyLog;
use mls_tls::store::{
    MemoryBackend, Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord,
    SessionStore, StoredSession,
};
use mls_tls::time::ManualClock;
use mls_tls::Error;

pub mod client;
pub mod handshake;
pub mod identity;
pub mod pair;
pub mod record;
pub mod server;
pub mod store;

/// The suite of every connection the harnesses build: the fastest one.
pub const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

/// A target body.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus directory and fuzz binary have.
pub const TARGETS: &[(&str, Target)] = &[
    ("record", record::run),
    ("handshake", handshake::run),
    ("server_first_flight", server::run),
    ("client_flight", client::run),
    ("pair", pair::run),
    ("store", store::run),
    ("identity", identity::run),
];

/// The wall-clock time every harness clock starts at (the fixtures were
/// written at this time too).
pub fn wall_start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A [`MemoryBackend`] the harness keeps a handle on, so it can load and
/// inspect what the connections store.
#[derive(Clone, Default)]
pub struct SharedBackend(pub Arc<MemoryBackend>);

impl SessionBackend for SharedBackend {
    fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.0.load(id)
    }
    fn save(&self, session: &SessionRecord, precondition: Precondition) -> Result<bool, Error> {
        self.0.save(session, precondition)
    }
    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        self.0.delete(id)
    }
    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        self.0.list()
    }
}

impl SharedBackend {
    /// A backend holding `session` (the bytes of a stored session).
    pub fn holding(session: &[u8]) -> Self {
        let backend = Self::default();
        let session = StoredSession::from_bytes(session)
            .expect("fixture session decodes")
            .to_record();
        assert!(backend
            .save(&session, Precondition::Absent)
            .expect("memory save"));
        backend
    }

    /// Whether the session `id` is stored.
    pub fn has(&self, id: &SessionId) -> bool {
        self.0.load(id).expect("memory load").is_some()
    }
}

/// The fixed identities and stored sessions (see `fixtures/README.md`).
pub struct Fixtures {
    /// The client's identity file.
    pub client_identity: Vec<u8>,
    /// The server's identity file.
    pub server_identity: Vec<u8>,
    /// The client's session, Synced at epoch 1.
    pub client_synced: Vec<u8>,
    /// The same session after the client started a ConnectionUpdate that
    /// never reached the server (a pending commit, resent on resumption).
    pub client_pending: Vec<u8>,
    /// The server's side of the session, Synced at epoch 1.
    pub server: Vec<u8>,
}

/// Where the fixtures live.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The fixtures, read once per process.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let read = |name: &str| {
            let path = fixtures_dir().join(name);
            std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (write the fixtures with `cargo run -p mlstls-fuzz-targets --bin seed`)",
                    path.display()
                )
            })
        };
        Fixtures {
            client_identity: read("client.identity"),
            server_identity: read("server.identity"),
            client_synced: read("client-synced.session"),
            client_pending: read("client-pending.session"),
            server: read("server.session"),
        }
    })
}

/// The session id of the fixture sessions.
pub fn fixture_session_id() -> SessionId {
    StoredSession::from_bytes(&fixtures().server)
        .expect("fixture session decodes")
        .meta
        .id
}

/// A client configuration: fixed identity, any peer accepted, manual
/// clock, no automatic updates.
pub fn client_config(
    identity: &[u8],
    backend: &SharedBackend,
    clock: &Arc<ManualClock>,
    key_log: Option<Arc<dyn KeyLog>>,
) -> Arc<ClientConfig> {
    let identity = Identity::from_bytes(identity).expect("fixture identity");
    let mut config = ClientConfig::new(
        identity,
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::with_backend(backend.clone())),
    )
    .update_policy(UpdatePolicy::manual());
    config.common.clock = clock.clone();
    config.common.key_log = key_log;
    Arc::new(config)
}

/// The server configuration matching [`client_config`].
pub fn server_config(
    identity: &[u8],
    backend: &SharedBackend,
    clock: &Arc<ManualClock>,
    key_log: Option<Arc<dyn KeyLog>>,
) -> Arc<ServerConfig> {
    let identity = Identity::from_bytes(identity).expect("fixture identity");
    let mut config = ServerConfig::new(
        identity,
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::with_backend(backend.clone())),
    )
    .update_policy(UpdatePolicy::manual());
    config.common.clock = clock.clone();
    config.common.key_log = key_log;
    Arc::new(config)
}

/// A clock at [`wall_start`].
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::starting_at(wall_start()))
}

/// Feeds all of `input` to `conn`, processing after every read and
/// discarding received plaintext. Returns the error that closed the
/// connection, if any.
pub fn feed(conn: &mut ConnectionCore, input: &[u8]) -> Option<Error> {
    feed_collect(conn, input, &mut Vec::new())
}

/// [`feed`], appending received plaintext to `plaintext`.
pub fn feed_collect(
    conn: &mut ConnectionCore,
    mut input: &[u8],
    plaintext: &mut Vec<u8>,
) -> Option<Error> {
    loop {
        if let Err(e) = conn.process_new_packets() {
            plaintext.extend(drain_plaintext(conn));
            return Some(e);
        }
        plaintext.extend(drain_plaintext(conn));
        if input.is_empty() {
            return None;
        }
        match conn.read_tls(&mut input) {
            Ok(0) => return None,
            Ok(_) => {}
            // The record buffer is full of records that wait: processing
            // above has made room, or the connection is stuck, which the
            // receive limit allows only while plaintext waits (drained).
            Err(_) => {
                if let Err(e) = conn.process_new_packets() {
                    return Some(e);
                }
                plaintext.extend(drain_plaintext(conn));
                if conn.read_tls(&mut input).is_err() {
                    panic!("connection takes no more input although its plaintext was read");
                }
            }
        }
    }
}

/// Reads and discards received plaintext (as an application would).
pub fn drain_plaintext(conn: &mut ConnectionCore) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Takes every byte `conn` wants to send.
pub fn take_output(conn: &mut ConnectionCore) -> Vec<u8> {
    let mut out = Vec::new();
    while conn.wants_write() {
        match conn.write_tls(&mut out) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

/// The oracle for every connection ended by peer input: the error says
/// which alert it sends (or none), and a local failure (`internal_error`)
/// or an API-misuse error never comes from what the peer sent.
pub fn check_peer_error(e: &Error) {
    assert!(
        !matches!(
            e,
            Error::ApiMisuse(_)
                | Error::Internal(_)
                | Error::Crypto(_)
                | Error::Mls(_)
                | Error::Store(_)
                | Error::InvalidConfig(_)
        ),
        "peer input caused a local failure: {e:?}"
    );
}

/// SPEC 8/9: a stored session is deleted only for an authenticated
/// violation (`illegal_parameter`) or a peer that no longer verifies.
pub fn check_session_kept(backend: &SharedBackend, id: &SessionId, error: Option<&Error>) {
    if backend.has(id) {
        return;
    }
    assert!(
        matches!(
            error,
            Some(
                Error::IllegalParameter(_)
                    | Error::BadCertificate(_)
                    | Error::CertificateExpired(_)
            )
        ),
        "session deleted, but the connection ended with {error:?}"
    );
}

/// A key log that keeps every line, for harnesses that seal under the
/// connection's real keys.
#[derive(Debug, Default)]
pub struct MemoryKeyLog(pub std::sync::Mutex<Vec<KeyLogLine>>);

/// One key log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLogLine {
    /// `true` for the client (initiator) direction.
    pub client_direction: bool,
    /// The epoch.
    pub epoch: u64,
    /// The traffic secret.
    pub secret: Vec<u8>,
}

impl KeyLog for MemoryKeyLog {
    fn log(&self, label: &str, _group_id: &[u8], epoch: u64, secret: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(KeyLogLine {
                client_direction: label == "MLSTLS_CLIENT_TRAFFIC_SECRET",
                epoch,
                secret: secret.to_vec(),
            });
    }
}

/// An `io::Write` that drops everything (for output nobody checks).
pub fn sink() -> io::Sink {
    io::sink()
}
