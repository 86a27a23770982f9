//! `mlstls sessions list|delete|sweep --store F`: what a session store
//! holds, and removing what is no longer wanted.

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use mls_tls::store::{SessionId, SessionStore};

/// `mlstls sessions` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// One line per stored session: id, peer key, created, last used.
    List(StoreArg),
    /// Delete one session by its id (hex, as `list` prints it).
    Delete {
        #[command(flatten)]
        store: StoreArg,
        /// The session id.
        id: String,
    },
    /// Delete sessions unused for --session-lifetime seconds.
    Sweep {
        #[command(flatten)]
        store: StoreArg,
        /// Default: 3 days, as `client` and `server` sweep.
        #[arg(long, value_name = "SECS", default_value_t = 3 * 24 * 3600)]
        session_lifetime: u64,
    },
}

/// The store.
#[derive(Debug, Args)]
pub(crate) struct StoreArg {
    /// Session store: an SQLite file or `postgres://user@host:port/db`.
    /// No key is needed: these commands read only what is stored in the
    /// clear (ids, peer keys, times).
    #[arg(long, value_name = "PATH|URL")]
    store: String,
}

fn open(s: &StoreArg) -> Result<SessionStore, String> {
    crate::store_cli::open_index(&s.store)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn run(cmd: SessionsCommand) -> Result<(), String> {
    match cmd {
        SessionsCommand::List(s) => {
            let store = open(&s)?;
            for info in store.list().map_err(|e| e.to_string())? {
                crate::common::print_line(&format!(
                    "{} peer {} created {} last-used {}",
                    hex(&info.id.0),
                    hex(&info.peer_signature_key),
                    unix(info.created),
                    unix(info.last_used)
                ))?;
            }
            Ok(())
        }
        SessionsCommand::Delete { store, id } => {
            let bytes = (0..id.len())
                .step_by(2)
                .map(|i| {
                    id.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
                .filter(|b| !b.is_empty() && id.len() % 2 == 0)
                .ok_or_else(|| format!("{id:?} is not a hex session id"))?;
            let s = open(&store)?;
            if s.delete(&SessionId(bytes)).map_err(|e| e.to_string())? {
                Ok(())
            } else {
                Err(format!(
                    "no session {id} in {}",
                    crate::store_cli::display(&store.store)
                ))
            }
        }
        SessionsCommand::Sweep {
            store,
            session_lifetime,
        } => {
            let s = open(&store)?;
            let n = s
                .sweep_expired(Duration::from_secs(session_lifetime), SystemTime::now())
                .map_err(|e| e.to_string())?;
            crate::common::print_line(&format!("deleted {n} sessions"))
        }
    }
}
