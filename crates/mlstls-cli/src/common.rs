//! What every command shares: logging, identities, trust files, configs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use mls_tls::conn::{ClientConfig, CommonConfig, ServerConfig, UpdatePolicy};
use mls_tls::credentials::x509::{
    ClientAuth, ServerName, WebPkiClientVerifier, WebPkiServerVerifier,
};
use mls_tls::credentials::{EitherVerifier, Identity, PeerVerifier};
use mls_tls::crypto::CipherSuite;
use mls_tls::keylog::KeyLogFile;
use mls_tls::store::SessionStore;

use crate::keys;

/// Logging to stderr: warnings by default, more with -v / -vv.
pub(crate) fn init_logging(verbose: u8) {
    // Our own crates only: the MLS library is very chatty at debug.
    let level = match verbose {
        0 => "warn",
        1 => "warn,mlstls=info,mls_tls=info",
        _ => "warn,mlstls=debug,mls_tls=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Options shared by `server` and `client`.
#[derive(Debug, Args, Clone)]
pub(crate) struct ChannelArgs {
    /// Our identity file (from `mlstls keygen`).
    #[arg(long)]
    pub(crate) identity: PathBuf,
    /// Trust file: the public lines (from `mlstls pubkey`) of accepted
    /// peers (pinned keys). With --ca too, a peer either may pass.
    #[arg(long, required_unless_present = "ca")]
    pub(crate) trust: Option<PathBuf>,
    /// CA file: PEM root certificates; a peer with an X.509 identity whose
    /// chain leads to one of them is accepted.
    #[arg(long)]
    pub(crate) ca: Option<PathBuf>,
    /// The name the server's certificate must be valid for. Client: default
    /// the host of --connect. Server: checked against our own certificate
    /// at startup, so a wrong certificate fails here rather than at clients.
    #[arg(long)]
    pub(crate) server_name: Option<String>,
    /// Session store: an SQLite file, or a PostgreSQL database shared by a
    /// fleet (`postgres://user@host:port/db`, needs --store-key). Default:
    /// the identity file's path with `.sessions` appended.
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) store: Option<String>,
    /// Store key file (`mlstls store-key new FILE`, mode 0600): sessions
    /// are encrypted at rest with it. Required for PostgreSQL; optional
    /// for SQLite. Default: $MLSTLS_STORE_KEY, if set.
    #[arg(long, value_name = "FILE")]
    pub(crate) store_key: Option<PathBuf>,
    /// Expected ciphersuite; the identity file decides, this only checks it.
    #[arg(long)]
    pub(crate) suite: Option<CipherSuite>,
    /// Start a key update after this many bytes sent plus received: bytes
    /// or with a unit (64KiB, "1 GiB", 500MB).
    #[arg(long, value_name = "SIZE", default_value_t = Size(UpdatePolicy::default().bytes.unwrap_or(u64::MAX)))]
    pub(crate) update_after_bytes: Size,
    /// Start a key update this many seconds after the last one.
    #[arg(long, value_name = "SECS", default_value_t = UpdatePolicy::default().interval.map_or(u64::MAX, |d| d.as_secs()))]
    pub(crate) update_after_secs: u64,
    /// Stored sessions unused for this many seconds are deleted (the
    /// server sweeps hourly, the client at start). Default: 3 days.
    #[arg(long, value_name = "SECS", default_value_t = 3 * 24 * 3600)]
    pub(crate) session_lifetime: u64,
}

/// Liveness of a stream's connection, for `server` and `client`.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct LivenessArgs {
    /// Send a keepalive after this many seconds without sending anything.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) keepalive: u64,
    /// Give a connection up as lost (and resume) after this many seconds
    /// without receiving anything: a peer that vanished without FIN or RST.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) idle_timeout: u64,
}

impl LivenessArgs {
    pub(crate) fn timing(&self) -> crate::relay::Timing {
        crate::relay::Timing {
            keepalive: Duration::from_secs(self.keepalive.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout.max(2)),
        }
    }
}

/// Delays between failed `accept` calls (out of file descriptors, for
/// instance): exponential with jitter, at most a second.
pub(crate) fn accept_backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Splits a TCP connection into halves that do not shut it down when
/// dropped, and a second handle to reset it with ([`reset_on_close`]).
pub(crate) fn split_tcp(
    tcp: tokio::net::TcpStream,
) -> std::io::Result<(
    tokio::io::ReadHalf<tokio::net::TcpStream>,
    tokio::io::WriteHalf<tokio::net::TcpStream>,
    std::net::TcpStream,
)> {
    let std = tcp.into_std()?;
    let keep = std.try_clone()?;
    let tcp = tokio::net::TcpStream::from_std(std)?;
    let (r, w) = tokio::io::split(tcp);
    Ok((r, w, keep))
}

/// Makes the connection end with a reset (RST) when its last handle
/// closes: a failed stream must not look like a complete one.
pub(crate) fn reset_on_close(tcp: &std::net::TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
}

/// Deletes the sessions of `store` unused for `lifetime`.
pub(crate) fn sweep(store: &SessionStore, lifetime: Duration) {
    match store.sweep_expired(lifetime, std::time::SystemTime::now()) {
        Ok(0) => {}
        Ok(n) => tracing::info!("deleted {n} expired sessions"),
        Err(e) => tracing::warn!("cannot sweep expired sessions: {e}"),
    }
}

/// A byte count given as `1048576`, `64KiB`, `"1 GiB"` or `500MB`
/// (KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000); shown exactly, in
/// the largest binary unit that divides it (`1GiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) u64);

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| Self(b.as_u64()))
            .map_err(|_| {
                format!("{s:?} is not a size (bytes, or with a unit: 64KiB, \"1 GiB\", 500MB)")
            })
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        match units
            .iter()
            .find(|(_, u)| self.0 != 0 && self.0.is_multiple_of(*u))
        {
            Some((name, u)) => write!(f, "{}{name}", self.0 / u),
            None => write!(f, "{}", self.0),
        }
    }
}

/// `--client-auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClientAuthArg {
    /// Clients must present a certificate that verifies.
    Required,
    /// Bare keys are anonymous clients; certificates must verify.
    Optional,
    /// Client credentials are not checked.
    Off,
}

/// Which side a configuration is for, and what its verifier checks.
enum Role<'a> {
    /// Verifies the server's certificate for this name.
    Client {
        server_name: &'a str,
    },
    Server {
        client_auth: ClientAuthArg,
    },
}

/// Parses a server name as certificates are checked against it.
fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string())
        .map_err(|_| format!("{name:?} is not a DNS name or IP address"))
}

impl ChannelArgs {
    pub(crate) fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_lifetime)
    }

    /// The peer verifier: pinned keys (--trust), X.509 roots (--ca), or
    /// either of the two.
    fn verifier(&self, role: &Role<'_>) -> Result<Arc<dyn PeerVerifier>, String> {
        let pinned = match &self.trust {
            Some(path) => Some(Arc::new(keys::load_trust(path)?) as Arc<dyn PeerVerifier>),
            None => None,
        };
        let pki = match &self.ca {
            Some(path) => {
                let roots = Arc::new(keys::load_roots(path)?);
                Some(match role {
                    Role::Client { server_name: name } => {
                        Arc::new(WebPkiServerVerifier::new(roots, server_name(name)?))
                            as Arc<dyn PeerVerifier>
                    }
                    Role::Server { client_auth } => {
                        let mode = match client_auth {
                            ClientAuthArg::Required => ClientAuth::Required,
                            ClientAuthArg::Optional => ClientAuth::Optional,
                            ClientAuthArg::Off => ClientAuth::Off,
                        };
                        Arc::new(WebPkiClientVerifier::new(roots, mode))
                    }
                })
            }
            None => None,
        };
        match (pinned, pki) {
            (Some(p), Some(x)) => Ok(Arc::new(EitherVerifier::new(p, x))),
            (Some(v), None) | (None, Some(v)) => Ok(v),
            (None, None) => {
                Err("give --trust FILE (pinned keys), --ca FILE (X.509 roots) or both".into())
            }
        }
    }

    fn common(&self, role: Role<'_>) -> Result<CommonConfig, String> {
        let identity = keys::load_identity(&self.identity)?;
        if let Some(suite) = self.suite {
            if suite != identity.suite() {
                return Err(format!(
                    "--suite {suite} does not match the identity's suite {} (make a new identity with `mlstls keygen --suite`)",
                    identity.suite()
                ));
            }
        }
        if let (Role::Server { .. }, Some(name)) = (&role, &self.server_name) {
            identity
                .check_server_name(&server_name(name)?)
                .map_err(|e| format!("--server-name {name}: {e}"))?;
        }
        let verifier = self.verifier(&role)?;
        let store_path = match &self.store {
            Some(s) => s.clone(),
            None => default_store(&self.identity).to_string_lossy().into_owned(),
        };
        let store = crate::store_cli::open(&store_path, self.store_key.as_deref())?;
        let policy = UpdatePolicy {
            bytes: Some(self.update_after_bytes.0),
            interval: Some(Duration::from_secs(self.update_after_secs)),
            ..UpdatePolicy::default()
        };
        let mut config = ClientConfig::new(identity, verifier, Arc::new(store))
            .update_policy(policy)
            .common;
        if let Some(log) = KeyLogFile::from_env() {
            let log = log.map_err(|e| format!("cannot open the key log file: {e}"))?;
            tracing::warn!("logging traffic secrets to $MLSTLS_KEYLOGFILE");
            config.key_log = Some(Arc::new(log));
        }
        Ok(config)
    }

    /// A client's configuration for the server at `connect` (HOST:PORT),
    /// whose host is the default server name.
    pub(crate) fn client_config(&self, connect: &str) -> Result<Arc<ClientConfig>, String> {
        let host = connect.rsplit_once(':').map_or(connect, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = self.server_name.as_deref().unwrap_or(host);
        Ok(Arc::new(ClientConfig {
            common: self.common(Role::Client { server_name })?,
        }))
    }

    pub(crate) fn server_config(
        &self,
        client_auth: ClientAuthArg,
    ) -> Result<Arc<ServerConfig>, String> {
        Ok(Arc::new(ServerConfig {
            common: self.common(Role::Server { client_auth })?,
        }))
    }
}

fn default_store(identity: &Path) -> PathBuf {
    let mut p = identity.as_os_str().to_owned();
    p.push(".sessions");
    PathBuf::from(p)
}

/// A runtime for the async commands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Loads an identity for tests and the demo without a file.
#[allow(dead_code)]
pub(crate) fn ephemeral(name: &str, suite: CipherSuite) -> Result<Identity, String> {
    Identity::generate(name, suite).map_err(|e| e.to_string())
}

/// Prints one line on stdout; a closed stdout (`| head -c0`) is an error
/// to report, not a panic.
pub(crate) fn print_line(line: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}
