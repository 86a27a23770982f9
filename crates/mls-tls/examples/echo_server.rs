//! An MLS-TLS echo server over TCP.
//!
//! ```sh
//! cargo run -p mls-tls --example echo_server -- 127.0.0.1:4433
//! ```
//! It prints its public key; give it to `echo_client` to pin. Clients are
//! not authenticated in this example (`AcceptAnyPeer`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use mls_tls::credentials::AcceptAnyPeer;
use mls_tls::stream::StreamOwned;
use mls_tls::{CipherSuite, Identity, ServerConfig, ServerConnection, SessionStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4433".into());
    let identity = Identity::generate("echo-server", CipherSuite::DEFAULT)?;
    let key: String = identity
        .public_key()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("listening on {addr}; server key {key}");
    let config = Arc::new(ServerConfig::new(
        identity,
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory()?),
    ));
    for sock in TcpListener::bind(&addr)?.incoming() {
        let sock = sock?;
        let config = config.clone();
        thread::spawn(move || {
            let mut stream = StreamOwned::new(ServerConnection::new(config), sock);
            let mut buf = [0u8; 16384];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        eprintln!("connection ended: {e}");
                        break;
                    }
                }
            }
            let _ = stream.close();
        });
    }
    Ok(())
}
