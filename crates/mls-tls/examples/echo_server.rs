//! A blocking MLS-TLS echo server over TCP, one thread per connection,
//! with the files `mlstls` makes (see `tokio_server` for the setup).
//!
//! ```sh
//! cargo run -p mls-tls --example echo_server -- 127.0.0.1:4433 server.id clients.pub server.db
//! ```

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use mls_tls::credentials::PinnedKeys;
use mls_tls::stream::StreamOwned;
use mls_tls::{Identity, ServerConfig, ServerConnection, SessionStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, identity, trust, store] = &args[..] else {
        return Err("usage: echo_server ADDR IDENTITY_FILE TRUST_FILE STORE_FILE".into());
    };
    let config = Arc::new(ServerConfig::new(
        Identity::load(identity)?,
        Arc::new(PinnedKeys::from_trust_file(trust)?),
        Arc::new(SessionStore::open(store)?),
    ));
    eprintln!("listening on {addr}");
    for sock in TcpListener::bind(addr)?.incoming() {
        let sock = sock?;
        let config = config.clone();
        thread::spawn(move || {
            let mut stream = StreamOwned::new(ServerConnection::new(config), sock);
            let mut buf = [0u8; 16384];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) if stream.write_all(&buf[..n]).is_ok() => {}
                    Ok(_) => break,
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
