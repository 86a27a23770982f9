//! Bounded buffers in both directions and the close_notify rules (SPEC 9,
//! 9a): a caller or a peer can never make a connection hold more than a
//! few records beyond the configured limits.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::keylog::KeyLog;
use mls_tls::profile::engine::State;
use mls_tls::record::{ContentType, RecordSealer};
use mls_tls::schedule::{HashAlgorithm, TrafficSecret};
use mls_tls::store::SessionStore;

mod wire;
use wire::{feed, pump, read_all, take};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;
const LIMIT: usize = 64 * 1024;
/// One maximal ciphertext record with its header.
const RECORD: usize = 5 + (1 << 14) + 256;

fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let c = ClientConfig::new(
        Identity::generate("client", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    )
    .update_policy(UpdatePolicy::manual());
    let s = ServerConfig::new(
        Identity::generate("server", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    )
    .update_policy(UpdatePolicy::manual());
    (Arc::new(c), Arc::new(s))
}

fn connected() -> (ClientConnection, ServerConnection) {
    let (cc, sc) = configs();
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    (c, s)
}

/// Issue 11, case 1: 2,048 writes of 1 MiB without `write_tls` used to
/// be taken whole (2 GiB queued).
#[test]
fn writes_beyond_the_send_limit_are_short_then_zero() {
    let (mut c, _s) = connected();
    let mib = vec![1u8; 1 << 20];
    let first = c.writer().write(&mib).unwrap();
    assert!(first > 0 && first <= LIMIT, "took {first}");
    let mut total = first;
    for _ in 0..2047 {
        total += c.writer().write(&mib).unwrap();
    }
    assert_eq!(total, first, "nothing more while nothing was sent");
    let queued = take(&mut c).len();
    assert!(queued <= LIMIT + 4 * 22, "{queued} TLS bytes queued");
    // Draining makes room again.
    assert!(c.writer().write(&mib).unwrap() > 0);
}

#[test]
fn data_queued_before_keys_is_bounded_too() {
    let (cc, _) = configs();
    let mut c = ClientConnection::new(cc).unwrap();
    let big = vec![2u8; 4 * LIMIT];
    let n = c.writer().write(&big).unwrap();
    assert!(n < LIMIT, "took {n} before the handshake");
    assert_eq!(c.writer().write(&big).unwrap(), 0);
}

#[test]
fn the_send_limit_can_be_changed_or_lifted() {
    let (mut c, _s) = connected();
    c.set_buffer_limit(Some(1000));
    assert_eq!(c.writer().write(&[0u8; 4000]).unwrap(), 1000);
    c.set_buffer_limit(None);
    assert_eq!(c.writer().write(&[0u8; 4000]).unwrap(), 4000);
}

/// The receive side: a peer sending 1 MiB that the application does not
/// read fills the plaintext buffer to its limit, then waits in the
/// transport; nothing is lost once the application reads.
#[test]
fn received_plaintext_is_bounded_until_the_application_reads() {
    let (mut c, mut s) = connected();
    let data: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut wire = Vec::new();
    let mut got = Vec::new();
    let mut max_buffered = 0;
    let mut rounds = 0;
    while got.len() < data.len() {
        rounds += 1;
        assert!(
            rounds < 10_000,
            "no progress: sent {sent}, got {}, wire {}",
            got.len(),
            wire.len()
        );
        if sent < data.len() {
            sent += s.writer().write(&data[sent..]).unwrap();
            wire.extend(take(&mut s));
        }
        // Feed as much as the client takes, without reading plaintext.
        let mut rd = &wire[..];
        while c.wants_read() && !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            let io = c.process_new_packets().unwrap();
            max_buffered = max_buffered.max(io.plaintext_bytes_to_read);
        }
        let consumed = wire.len() - rd.len();
        wire.drain(..consumed);
        // Now the application reads a little.
        let mut buf = vec![0u8; 10_000];
        if let Ok(n) = c.reader().read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(got, data);
    assert!(
        max_buffered <= LIMIT + RECORD,
        "{max_buffered} plaintext bytes buffered"
    );
}

/// A key update behind unread data is still confirmed once the
/// application reads; the limit never drops a record.
#[test]
fn an_update_behind_unread_data_is_applied_when_the_application_reads() {
    let (mut c, mut s) = connected();
    let blob = vec![9u8; 3 * LIMIT];
    let mut sent = 0;
    while sent < blob.len() {
        sent += s.writer().write(&blob[sent..]).unwrap();
        let bytes = take(&mut s);
        let mut rd = &bytes[..];
        let mut pending = Vec::new();
        while !rd.is_empty() {
            if c.wants_read() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
            } else {
                pending.extend_from_slice(rd);
                break;
            }
        }
        // Read everything, then feed the rest.
        let mut got = read_all(&mut c);
        feed(&mut c, &pending).unwrap();
        got.extend(read_all(&mut c));
        assert!(got.iter().all(|b| *b == 9));
    }
    s.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(s.profile_state(), State::Synced);
    assert_eq!(c.epoch(), s.epoch());
}

/// Issue 11, case 4 (first half): after our own close_notify nothing more
/// leaves, not even a key update.
#[test]
fn after_our_close_notify_no_update_starts_and_none_is_answered() {
    let (mut c, mut s) = connected();
    let epoch = c.epoch().unwrap();
    c.send_close_notify();
    assert!(matches!(c.request_key_update(), Err(Error::ApiMisuse(_))));
    feed(&mut s, &take(&mut c)).unwrap();
    // The server's update reaches the closed side: it is ignored, not
    // applied (it could never be confirmed).
    s.writer().write_all(b"still talking").unwrap();
    let _ = s.request_key_update();
    feed(&mut c, &take(&mut s)).unwrap();
    assert_eq!(c.epoch(), Some(epoch));
    assert!(take(&mut c).is_empty(), "nothing leaves after close_notify");
    assert_eq!(read_all(&mut c), b"still talking");
}

/// Issue 11, case 4 (second half): after the peer's close_notify, records
/// it seals afterwards (a buggy or hostile peer, forged here with its
/// logged key) are discarded; the reader stays at end of stream.
#[test]
fn after_the_peers_close_notify_later_records_are_discarded() {
    let (cc, sc) = configs();
    let log = Arc::new(Collect::default());
    let sc = Arc::new((*sc).clone().key_log(log.clone()));
    let mut c = ClientConnection::new(cc).unwrap();
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    s.writer().write_all(b"last words").unwrap();
    s.send_close_notify();
    let mut wire = take(&mut s);
    assert!(s.writer().write_all(b"after close").is_err());
    // The server's sending key has sealed "last words" (0) and the
    // close_notify (1); the forged record is number 2.
    let secret = log.server_secret();
    let keys = TrafficSecret::new(HashAlgorithm::Sha256, secret)
        .unwrap()
        .derive_keys(SUITE.aead())
        .unwrap();
    let mut sealer = RecordSealer::new();
    sealer.install(keys).unwrap();
    let mut scratch = Vec::new();
    for _ in 0..2 {
        sealer
            .seal(ContentType::ApplicationData, b"", &mut scratch)
            .unwrap();
    }
    sealer
        .seal(ContentType::ApplicationData, b"after close", &mut wire)
        .unwrap();
    feed(&mut c, &wire).unwrap();
    let mut out = Vec::new();
    c.reader().read_to_end(&mut out).unwrap();
    assert_eq!(out, b"last words");
    let mut buf = [0u8; 8];
    assert_eq!(c.reader().read(&mut buf).unwrap(), 0);
    assert!(!c.wants_read());
}

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<(String, Vec<u8>)>>);

impl Collect {
    fn server_secret(&self) -> Vec<u8> {
        let lines = self.0.lock().unwrap();
        let mut secrets = lines
            .iter()
            .filter(|l| l.0 == "MLSTLS_SERVER_TRAFFIC_SECRET")
            .map(|l| l.1.clone());
        let first = secrets.next().unwrap();
        assert!(secrets.next().is_none(), "one epoch only");
        first
    }
}

impl KeyLog for Collect {
    fn log(&self, label: &str, _group_id: &[u8], _epoch: u64, secret: &[u8]) {
        self.0.lock().unwrap().push((label.into(), secret.into()));
    }
}

/// SPEC 9: a party that received close_notify drops its pending update as
/// a stored transition, so a later resumption does not carry it.
#[test]
fn a_pending_update_is_dropped_when_the_peer_closes() {
    let (cc, sc) = configs();
    let mut c = ClientConnection::new(cc.clone()).unwrap();
    let mut s = ServerConnection::new(sc.clone());
    pump(&mut c, &mut s).unwrap();
    let epoch = c.epoch().unwrap();
    s.send_close_notify();
    let close = take(&mut s);
    c.request_key_update().unwrap();
    let _update_never_arrives = take(&mut c);
    feed(&mut c, &close).unwrap();
    assert_eq!(c.profile_state(), State::Synced);
    assert_eq!(c.poll_timeout(), None, "no confirmation timer any more");
    assert!(matches!(c.request_key_update(), Err(Error::ApiMisuse(_))));
    // The stored session is Synced at the same epoch: a resumption sends a
    // fresh request (early data allowed) instead of the dropped commit.
    let id = c.session_id().unwrap().clone();
    drop((c, s));
    let mut c = ClientConnection::resume(cc, &id).unwrap();
    assert!(c.is_sending_early_data());
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking());
    assert!(c.epoch().unwrap() >= epoch + 2);
}

/// Found by review: the record layer accepts plaintext records until the
/// peer's first ciphertext record, so an on-path party could inject a
/// plaintext close_notify and turn a cut into a clean end of stream. A
/// plaintext close_notify is now an error, never `Ok(0)`.
#[test]
fn an_injected_plaintext_close_notify_is_not_a_clean_end() {
    let (mut c, mut s) = connected();
    c.writer().write_all(b"GET /").unwrap();
    feed(&mut s, &take(&mut c)).unwrap();
    let forged = [21u8, 3, 3, 0, 2, 1, 0];
    let err = feed(&mut c, &forged).unwrap_err();
    assert_eq!(err, Error::UnauthenticatedClose);
    let mut buf = [0u8; 16];
    assert!(c.reader().read(&mut buf).is_err());
    assert!(!c.wants_write(), "no alert for an unauthenticated close");
}

/// The same on a server after a resumption without early data (the
/// client's EpochKeyUpdate came in plaintext).
#[test]
fn an_injected_plaintext_close_notify_after_a_resumption_is_not_a_clean_end() {
    let (cc, sc) = configs();
    let mut c = ClientConnection::new(cc.clone()).unwrap();
    let mut s = ServerConnection::new(sc.clone());
    pump(&mut c, &mut s).unwrap();
    let id = c.session_id().unwrap().clone();
    // A pending commit: the resumption resends it, without early data.
    c.request_key_update().unwrap();
    let _lost = take(&mut c);
    drop((c, s));
    let mut c = ClientConnection::resume(cc, &id).unwrap();
    assert!(!c.is_sending_early_data());
    let mut s = ServerConnection::new(sc);
    pump(&mut c, &mut s).unwrap();
    assert!(!c.is_handshaking() && !s.is_handshaking());
    let err = feed(&mut s, &[21u8, 3, 3, 0, 2, 1, 0]).unwrap_err();
    assert_eq!(err, Error::UnauthenticatedClose);
}

/// A send limit of 0 would let no byte through; it counts as 1.
#[test]
fn a_zero_send_limit_still_makes_progress() {
    let (mut c, _s) = connected();
    c.set_buffer_limit(Some(0));
    assert_eq!(c.writer().write(b"xy").unwrap(), 1);
}
