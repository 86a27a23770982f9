//! A blocking MLS-TLS echo client: sends each line of stdin, prints the
//! echo. Uses the files `mlstls` makes (see `tokio_server` for the setup).
//!
//! ```sh
//! cargo run -p mls-tls --example echo_client -- 127.0.0.1:4433 client.id servers.pub
//! ```

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use mls_tls::credentials::PinnedKeys;
use mls_tls::stream::StreamOwned;
use mls_tls::{ClientConfig, ClientConnection, Identity, SessionStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, identity, trust] = &args[..] else {
        return Err("usage: echo_client ADDR IDENTITY_FILE TRUST_FILE".into());
    };
    let config = Arc::new(ClientConfig::new(
        Identity::load(identity)?,
        Arc::new(PinnedKeys::from_trust_file(trust)?),
        Arc::new(SessionStore::in_memory()?),
    ));
    let conn = ClientConnection::new(config)?;
    let mut stream = StreamOwned::new(conn, TcpStream::connect(addr)?);
    stream.complete_handshake()?;
    if let (Some(peer), Some(suite)) = (stream.conn.peer_identity(), stream.conn.suite()) {
        eprintln!(
            "connected to {} ({}), {suite}, epoch {}",
            peer.display_name(),
            peer.key_fingerprint(),
            stream.conn.epoch().unwrap_or_default()
        );
    }
    for line in std::io::stdin().lock().lines() {
        let line = line? + "\n";
        stream.write_all(line.as_bytes())?;
        let mut echo = vec![0u8; line.len()];
        stream.read_exact(&mut echo)?;
        print!("{}", String::from_utf8_lossy(&echo));
    }
    stream.close()?;
    Ok(())
}
