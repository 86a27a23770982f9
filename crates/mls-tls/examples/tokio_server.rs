//! An MLS-TLS echo server on tokio, with the files `mlstls` makes: an
//! identity, a trust file of accepted clients, and a session store (so
//! clients can resume, with early data).
//!
//! ```sh
//! mlstls keygen --out server.id --name server
//! mlstls keygen --out client.id --name client
//! mlstls pubkey client.id > clients.pub
//! mlstls pubkey server.id > servers.pub
//! cargo run -p mls-tls --example tokio_server -- 127.0.0.1:4433 server.id clients.pub server.db
//! ```

use std::path::Path;
use std::sync::Arc;

use mls_tls::credentials::PinnedKeys;
use mls_tls::tokio::Acceptor;
use mls_tls::{Identity, ServerConfig, SessionStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// The server's configuration from its identity file, the trust file of
/// the clients it accepts, and its session store file.
pub fn config(
    identity: &Path,
    trust: &Path,
    store: &Path,
) -> Result<Arc<ServerConfig>, mls_tls::Error> {
    Ok(Arc::new(ServerConfig::new(
        Identity::load(identity)?,
        Arc::new(PinnedKeys::from_trust_file(trust)?),
        Arc::new(SessionStore::open(store)?),
    )))
}

/// Accepts connections until the listener fails, echoing each one.
pub async fn serve(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<()> {
    let acceptor = Acceptor::new(config);
    loop {
        let (tcp, addr) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let mut tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => return eprintln!("{addr}: handshake failed: {e}"),
            };
            let conn = tls.get_ref().1;
            if let (Some(peer), Some(suite)) = (conn.peer_identity(), conn.suite()) {
                eprintln!(
                    "{addr}: {} (authenticated: {}), {suite}, epoch {}",
                    peer.display_name(),
                    peer.authenticated,
                    conn.epoch().unwrap_or_default()
                );
            }
            let mut buf = vec![0; 16 * 1024];
            loop {
                match tls.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) if tls.write_all(&buf[..n]).await.is_ok() => {}
                    Ok(_) => break,
                    Err(e) => return eprintln!("{addr}: {e}"),
                }
            }
            // close_notify back: the client sees a clean end.
            let _ = tls.shutdown().await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, identity, trust, store] = &args[..] else {
        return Err("usage: tokio_server ADDR IDENTITY_FILE TRUST_FILE STORE_FILE".into());
    };
    let config = config(identity.as_ref(), trust.as_ref(), store.as_ref())?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    serve(listener, config).await?;
    Ok(())
}
