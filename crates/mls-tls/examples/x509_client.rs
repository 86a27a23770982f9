//! An MLS-TLS client that authenticates the server by X.509 certificate:
//! the server's identity carries a chain for its DNS name (or IP address)
//! from a CA the client trusts.
//!
//! ```sh
//! mlstls ca --cert ca.pem --key ca.key
//! mlstls keygen --x509 --ca-cert ca.pem --ca-key ca.key --name localhost --out server.id
//! mlstls keygen --out client.id --name client
//! cargo run -p mls-tls --example x509_client -- 127.0.0.1:4433 localhost ca.pem client.id hello
//! ```

use std::path::Path;
use std::sync::Arc;

use mls_tls::credentials::x509::{RootCertStore, ServerName, WebPkiServerVerifier};
use mls_tls::tokio::Connector;
use mls_tls::{ClientConfig, Identity, SessionStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A client that accepts a server whose chain leads to a root in the PEM
/// file `ca` and names `server_name`.
pub fn config(
    identity: &Path,
    ca: &Path,
    server_name: &str,
) -> Result<Arc<ClientConfig>, Box<dyn std::error::Error>> {
    let roots = RootCertStore::from_pem(&std::fs::read(ca)?)?;
    let name = ServerName::try_from(server_name.to_owned())?;
    let verifier = WebPkiServerVerifier::new(Arc::new(roots), name);
    Ok(Arc::new(ClientConfig::new(
        Identity::load(identity)?,
        Arc::new(verifier),
        Arc::new(SessionStore::in_memory()?),
    )))
}

/// Sends `message` to the echo server at `addr`; returns the echo and the
/// certificate subject the server presented.
pub async fn run(
    addr: &str,
    config: Arc<ClientConfig>,
    message: &[u8],
) -> Result<(Vec<u8>, String), Box<dyn std::error::Error>> {
    let mut tls = Connector::new(config)
        .connect(TcpStream::connect(addr).await?)
        .await?;
    tls.write_all(message).await?;
    let mut echo = vec![0; message.len()];
    tls.read_exact(&mut echo).await?;
    let peer = tls
        .get_ref()
        .1
        .peer_identity()
        .map(|p| p.display_name())
        .unwrap_or_default();
    tls.shutdown().await?;
    Ok((echo, peer))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, name, ca, identity, message] = &args[..] else {
        return Err("usage: x509_client ADDR SERVER_NAME CA_PEM IDENTITY_FILE MESSAGE".into());
    };
    let config = config(identity.as_ref(), ca.as_ref(), name)?;
    let (echo, peer) = run(addr, config, message.as_bytes()).await?;
    eprintln!("server: {peer}");
    println!("{}", String::from_utf8_lossy(&echo));
    Ok(())
}
