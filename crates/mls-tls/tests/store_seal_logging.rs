//! The warning for a sealed record that does not open names the session,
//! the key id and the reason, never a key. (A binary of its own: tracing
//! caches per call site whether anyone listens, which tests running in
//! parallel under a scoped subscriber would race on.)

use std::io::Write;
use std::sync::{Arc, Mutex};

use mls_tls::store::{conformance, KeyRing, MemoryBackend, Precondition, Sealed, SessionBackend};

const K1: &str = "11111111111111111111111111111111111111111111111111111111111111aa";
const K2: &str = "22222222222222222222222222222222222222222222222222222222222222bb";

fn ring(text: &str) -> KeyRing {
    KeyRing::parse(text).unwrap()
}

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

#[test]
fn an_unreadable_record_is_logged_with_its_key_id_not_its_key() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let backend = Arc::<MemoryBackend>::default();
        let r = conformance::record(1, 1, 100);
        Sealed::new(backend.clone(), ring(&format!("7:{K2}")))
            .save(&r, Precondition::Absent)
            .unwrap();
        let _ = Sealed::new(backend, ring(&format!("1:{K1}"))).load(r.id());
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN") && log.contains("key_id=7"), "{log}");
    assert!(log.contains(&"01".repeat(16)), "the session id: {log}");
    assert!(
        !log.contains(&K1[..16]) && !log.contains(&K2[..16]),
        "{log}"
    );
}
