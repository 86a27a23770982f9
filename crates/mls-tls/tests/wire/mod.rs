//! Moving TLS bytes between two in-memory connections (no sockets), for
//! the connection-level tests.

#![allow(dead_code)]

use std::io::Read;

use mls_tls::conn::ConnectionCore;
use mls_tls::error::Error;

/// Everything `from` has to send.
pub fn take(from: &mut ConnectionCore) -> Vec<u8> {
    let mut out = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut out).unwrap();
    }
    out
}

/// Feeds `bytes` to `to`, processing as it goes.
pub fn feed(to: &mut ConnectionCore, bytes: &[u8]) -> Result<(), Error> {
    let mut rd = bytes;
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// All plaintext `conn` has received so far.
pub fn read_all(conn: &mut ConnectionCore) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    out
}

/// Moves bytes both ways until both sides are quiet.
pub fn pump(c: &mut ConnectionCore, s: &mut ConnectionCore) -> Result<(), Error> {
    for _ in 0..20 {
        let to_s = take(c);
        feed(s, &to_s)?;
        let to_c = take(s);
        feed(c, &to_c)?;
        if to_s.is_empty() && to_c.is_empty() {
            return Ok(());
        }
    }
    panic!("connections never went quiet");
}
