//! An MLS-TLS echo client: sends each line of stdin, prints the echo.
//!
//! ```sh
//! cargo run -p mls-tls --example echo_client -- 127.0.0.1:4433 SERVER_KEY_HEX
//! ```

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use mls_tls::credentials::PinnedKeys;
use mls_tls::stream::StreamOwned;
use mls_tls::{CipherSuite, ClientConfig, ClientConnection, Identity, SessionStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4433".into());
    let key_hex = args
        .next()
        .ok_or("usage: echo_client ADDR SERVER_KEY_HEX")?;
    let key = (0..key_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(key_hex.get(i..i + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()?;
    let config = Arc::new(ClientConfig::new(
        Identity::generate("echo-client", CipherSuite::DEFAULT)?,
        Arc::new(PinnedKeys::new([key])),
        Arc::new(SessionStore::in_memory()?),
    ));
    let conn = ClientConnection::new(config)?;
    let mut stream = StreamOwned::new(conn, TcpStream::connect(&addr)?);
    stream.complete_handshake()?;
    eprintln!(
        "connected: epoch {:?}, suite {:?}",
        stream.conn.epoch(),
        stream.conn.suite()
    );
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
