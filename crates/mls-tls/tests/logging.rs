//! The library logs its decisions through `tracing` (handshakes, updates,
//! resumption classification, deleted sessions, failed trust re-checks),
//! and never a secret.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{classical, Sim};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn decisions_are_logged_without_secrets() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut secrets = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let mut sim = Sim::new(classical());
        sim.handshake();
        sim.update(true);
        sim.settle();
        sim.cut_and_resume(true);
        sim.settle();
        for p in [&sim.client, &sim.server] {
            for (_, secret) in [&p.send, &p.recv].into_iter().flatten() {
                secrets.push(secret.clone());
            }
        }
        secrets.push(
            sim.client
                .engine
                .export_secret("MLS-TLS c ap traffic", b"", 32)
                .unwrap(),
        );
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for needle in [
        "handshake established (new session, initiator)",
        "handshake established (new session, responder confirmed)",
        "key update started",
        "peer's key update applied",
        "own key update confirmed",
        "resumption requested",
        "resumption request classified: applied",
        "rule=3",
        "session resumed",
    ] {
        assert!(log.contains(needle), "{needle:?} missing from:\n{log}");
    }
    for secret in secrets {
        assert!(!log.contains(&hex(&secret)), "a secret was logged:\n{log}");
    }
}
