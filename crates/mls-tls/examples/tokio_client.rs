//! An MLS-TLS client on tokio that resumes: it keeps its sessions in a
//! file store, resumes the newest one (its first message travels as early
//! data), and falls back to a new session if the server no longer has it.
//!
//! ```sh
//! cargo run -p mls-tls --example tokio_client -- 127.0.0.1:4433 client.id servers.pub client.db hello
//! ```
//! Run it twice: the second run says `resumed`.

use std::path::Path;
use std::sync::Arc;

use mls_tls::credentials::PinnedKeys;
use mls_tls::tokio::{Connector, Established};
use mls_tls::{ClientConfig, Identity, SessionStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The client's configuration from its identity file, the trust file of
/// the servers it accepts, and its session store file.
pub fn config(
    identity: &Path,
    trust: &Path,
    store: &Path,
) -> Result<Arc<ClientConfig>, mls_tls::Error> {
    Ok(Arc::new(ClientConfig::new(
        Identity::load(identity)?,
        Arc::new(PinnedKeys::from_trust_file(trust)?),
        Arc::new(SessionStore::open(store)?),
    )))
}

/// Sends `message` to the echo server at `addr` and returns the echo and
/// whether the session was resumed.
pub async fn run(
    addr: &str,
    config: Arc<ClientConfig>,
    message: &[u8],
) -> Result<(Vec<u8>, bool), Box<dyn std::error::Error>> {
    // One server per store in this example: resume the newest session.
    let newest = config
        .store()
        .list()?
        .into_iter()
        .max_by_key(|s| s.last_used)
        .map(|s| s.id);
    let connector = Connector::new(config);
    let (mut tls, established) = connector
        .resume_or_connect(newest.as_ref(), || TcpStream::connect(addr))
        .await?;
    let resumed = match established {
        Established::Resumed => true,
        Established::New {
            fallback: Some(why),
        } => {
            eprintln!("could not resume ({why}); new session");
            false
        }
        _ => false,
    };
    tls.write_all(message).await?;
    let mut echo = vec![0; message.len()];
    tls.read_exact(&mut echo).await?;
    let conn = tls.get_ref().1;
    if let (Some(peer), Some(suite)) = (conn.peer_identity(), conn.suite()) {
        eprintln!(
            "{} {}: {suite}, epoch {}",
            if resumed {
                "resumed"
            } else {
                "new session with"
            },
            peer.display_name(),
            conn.epoch().unwrap_or_default()
        );
    }
    tls.shutdown().await?;
    Ok((echo, resumed))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, identity, trust, store, message] = &args[..] else {
        return Err("usage: tokio_client ADDR IDENTITY_FILE TRUST_FILE STORE_FILE MESSAGE".into());
    };
    let config = config(identity.as_ref(), trust.as_ref(), store.as_ref())?;
    let (echo, _) = run(addr, config, message.as_bytes()).await?;
    println!("{}", String::from_utf8_lossy(&echo));
    Ok(())
}
