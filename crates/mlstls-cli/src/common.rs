//! What every command shares: logging, identities, trust files, configs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mls_tls::conn::{ClientConfig, CommonConfig, ServerConfig, UpdatePolicy};
use mls_tls::keylog::KeyLogFile;
use mls_tls::profile::auth::Identity;
use mls_tls::profile::store::SessionStore;
use mls_tls::profile::suite::CipherSuite;

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
    /// Trust file: the public lines (from `mlstls pubkey`) of accepted peers.
    #[arg(long)]
    pub(crate) trust: PathBuf,
    /// Session store (SQLite file); default: the identity file's path with
    /// `.sessions` appended.
    #[arg(long)]
    pub(crate) store: Option<PathBuf>,
    /// Expected ciphersuite; the identity file decides, this only checks it.
    #[arg(long)]
    pub(crate) suite: Option<CipherSuite>,
    /// Start a key update after this many bytes sent plus received.
    #[arg(long)]
    pub(crate) update_after_bytes: Option<u64>,
    /// Start a key update this many seconds after the last one.
    #[arg(long)]
    pub(crate) update_after_secs: Option<u64>,
}

impl ChannelArgs {
    fn common(&self) -> Result<CommonConfig, String> {
        let identity = keys::load_identity(&self.identity)?;
        if let Some(suite) = self.suite {
            if suite != identity.suite() {
                return Err(format!(
                    "--suite {suite} does not match the identity's suite {} (make a new identity with `mlstls keygen --suite`)",
                    identity.suite()
                ));
            }
        }
        let trust = keys::load_trust(&self.trust)?;
        let store_path = self
            .store
            .clone()
            .unwrap_or_else(|| default_store(&self.identity));
        let store = SessionStore::open(&store_path)
            .map_err(|e| format!("{}: {e}", store_path.display()))?;
        let mut policy = UpdatePolicy::default();
        if let Some(b) = self.update_after_bytes {
            policy.bytes = Some(b);
        }
        if let Some(s) = self.update_after_secs {
            policy.interval = Some(Duration::from_secs(s));
        }
        let mut config = ClientConfig::new(identity, Arc::new(trust), Arc::new(store))
            .update_policy(policy)
            .common;
        if let Some(log) = KeyLogFile::from_env() {
            tracing::warn!("logging traffic secrets to $MLSTLS_KEYLOGFILE");
            config.key_log = Some(Arc::new(log));
        }
        Ok(config)
    }

    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        Ok(Arc::new(ClientConfig {
            common: self.common()?,
        }))
    }

    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        Ok(Arc::new(ServerConfig {
            common: self.common()?,
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
