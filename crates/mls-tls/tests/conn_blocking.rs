//! Blocking connections over loopback TCP.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use mls_tls::alert::AlertDescription;
use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::store::SessionStore;
use mls_tls::stream::StreamOwned;

fn configs(suite: CipherSuite) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let store = || Arc::new(SessionStore::in_memory().unwrap());
    (
        Arc::new(ClientConfig::new(
            Identity::generate("client", suite).unwrap(),
            Arc::new(AcceptAnyPeer),
            store(),
        )),
        Arc::new(ServerConfig::new(
            Identity::generate("server", suite).unwrap(),
            Arc::new(AcceptAnyPeer),
            store(),
        )),
    )
}

/// An echo server for `connections` connections, one after another.
fn echo_server(config: Arc<ServerConfig>, connections: usize) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        for _ in 0..connections {
            let (sock, _) = listener.accept().unwrap();
            let mut stream = StreamOwned::new(ServerConnection::new(config.clone()), sock);
            let mut buf = vec![0u8; 65536];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = stream.close();
        }
    });
    (port, handle)
}

#[test]
fn handshake_and_echo_every_suite() {
    for suite in CipherSuite::ALL {
        let (cc, sc) = configs(suite);
        let (port, server) = echo_server(sc, 1);
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut stream = StreamOwned::new(ClientConnection::new(cc).unwrap(), sock);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        stream.write_all(&data).unwrap();
        let mut back = vec![0u8; data.len()];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, data, "{suite}");
        assert_eq!(stream.conn.suite(), Some(suite));
        stream.close().unwrap();
        drop(stream);
        server.join().unwrap();
    }
}

#[test]
fn cut_mid_transfer_then_resume_with_early_data() {
    let (cc, sc) = configs(CipherSuite::DEFAULT);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pattern: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let total = pattern.len();
    let server = thread::spawn(move || {
        let mut received = Vec::new();
        let mut early = Vec::new();
        let mut epochs = Vec::new();
        // Two connections: the one that is cut, and the resumed one.
        for _ in 0..2 {
            let (mut sock, _) = listener.accept().unwrap();
            let mut conn = ServerConnection::new(sc.clone());
            let mut buf = vec![0u8; 65536];
            loop {
                match conn.read_tls(&mut sock) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if conn.process_new_packets().is_err() {
                    break;
                }
                if let Some(mut e) = conn.early_data() {
                    e.read_to_end(&mut early).unwrap();
                }
                while let Ok(n) = conn.reader().read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received.extend_from_slice(&buf[..n]);
                }
                // Acknowledge how much arrived in total.
                let _ = conn
                    .writer()
                    .write_all(&(received.len() + early.len()).to_be_bytes());
                while conn.wants_write() {
                    if conn.write_tls(&mut sock).is_err() {
                        break;
                    }
                }
                epochs.push(conn.epoch());
            }
        }
        (early, received, epochs)
    });

    let half = total / 2;
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut stream = StreamOwned::new(ClientConnection::new(cc.clone()).unwrap(), sock);
    stream.write_all(&pattern[..half]).unwrap();
    // Wait until the server acknowledged the first half, then cut.
    let mut ack = [0u8; 8];
    while usize::from_be_bytes(ack) < half {
        stream.read_exact(&mut ack).unwrap();
    }
    let id = stream.conn.session_id().unwrap().clone();
    let first_epoch = stream.conn.epoch().unwrap();
    stream.sock.shutdown(Shutdown::Both).unwrap();
    drop(stream);

    let mut conn = ClientConnection::resume(cc, &id).unwrap();
    assert!(conn.is_sending_early_data());
    // The next 8 KiB go in the first flight as early data.
    let early_len = 8 * 1024;
    conn.writer()
        .write_all(&pattern[half..half + early_len])
        .unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut stream = StreamOwned::new(conn, sock);
    stream.flush().unwrap();
    stream.write_all(&pattern[half + early_len..]).unwrap();
    while usize::from_be_bytes(ack) < total {
        stream.read_exact(&mut ack).unwrap();
    }
    assert!(stream.conn.is_early_data_accepted());
    assert!(stream.conn.epoch().unwrap() > first_epoch);
    stream.close().unwrap();
    stream.sock.shutdown(Shutdown::Both).unwrap();
    drop(stream);

    let (early, received, _) = server.join().unwrap();
    // At least what was written before connecting, at most the budget.
    assert!(
        early.len() >= early_len && early.len() <= 16 * 1024,
        "{}",
        early.len()
    );
    assert!(
        early[..] == pattern[half..half + early.len()],
        "early data marked early"
    );
    let mut all = received[..half].to_vec();
    all.extend_from_slice(&early);
    all.extend_from_slice(&received[half..]);
    assert_eq!(all.len(), pattern.len());
    assert!(all == pattern, "transfer intact");
}

/// One server connection on `sock`: processes everything the peer sends
/// until it closes; returns the early data seen, the first error, and
/// whether that error's alert went out.
fn serve_once(sock: &mut TcpStream, config: &Arc<ServerConfig>) -> (Vec<u8>, Option<Error>) {
    let mut conn = ServerConnection::new(config.clone());
    let mut early = Vec::new();
    loop {
        match conn.read_tls(sock) {
            Ok(0) | Err(_) => return (early, None),
            Ok(_) => {}
        }
        let r = conn.process_new_packets();
        if let Some(mut e) = conn.early_data() {
            e.read_to_end(&mut early).unwrap();
        }
        while conn.wants_write() {
            if conn.write_tls(sock).is_err() {
                break;
            }
        }
        if let Err(e) = r {
            return (early, Some(e));
        }
    }
}

#[test]
fn replayed_resumption_flight_over_tcp_is_refused() {
    let (cc, sc) = configs(CipherSuite::X25519Aes128GcmSha256Ed25519);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = {
        let sc = sc.clone();
        thread::spawn(move || {
            let mut results = Vec::new();
            for _ in 0..4 {
                let (mut sock, _) = listener.accept().unwrap();
                results.push(serve_once(&mut sock, &sc));
            }
            results
        })
    };
    // 1: the first session.
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut s = StreamOwned::new(ClientConnection::new(cc.clone()).unwrap(), sock);
    s.write_all(b"hi").unwrap();
    s.flush().unwrap();
    s.complete_handshake().unwrap();
    let id = s.conn.session_id().unwrap().clone();
    s.close().unwrap();
    s.sock.shutdown(Shutdown::Both).unwrap();
    drop(s);

    // 2: a resumption with early data; an eavesdropper records its first
    // flight as it crosses the wire.
    let mut conn = ClientConnection::resume(cc.clone(), &id).unwrap();
    conn.writer().write_all(b"transfer 100 EUR").unwrap();
    let mut flight = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut flight).unwrap();
    }
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(&flight).unwrap();
    let mut s = StreamOwned::new(conn, sock);
    s.complete_handshake().unwrap();
    assert!(s.conn.is_early_data_accepted());
    s.close().unwrap();
    s.sock.shutdown(Shutdown::Both).unwrap();
    drop(s);

    // 3: the recording, replayed on a new connection.
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(&flight).unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    // The server's decrypt_error alert arrives at the replayer.
    assert_eq!(answer, [21, 3, 3, 0, 2, 2, 51]);

    // 4: the genuine client still resumes.
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut s = StreamOwned::new(ClientConnection::resume(cc, &id).unwrap(), sock);
    s.complete_handshake().unwrap();
    s.write_all(b"again").unwrap();
    s.close().unwrap();
    s.sock.shutdown(Shutdown::Both).unwrap();
    drop(s);

    let results = server.join().unwrap();
    assert_eq!(
        results[1].0, b"transfer 100 EUR",
        "genuine early data delivered"
    );
    assert!(results[2].0.is_empty(), "no early data from the replay");
    assert_eq!(
        results[2].1.as_ref().and_then(Error::alert),
        Some(AlertDescription::DecryptError)
    );
    assert!(
        results[3].1.is_none(),
        "genuine resumption failed: {:?}",
        results[3].1
    );
}

/// A transport that yields `input` once, then end of stream, and keeps
/// everything written.
struct OneFlight {
    input: std::io::Cursor<Vec<u8>>,
    output: Vec<u8>,
}

/// No read timeouts, no non-blocking mode: timers are judged only when
/// bytes arrive.
impl mls_tls::stream::Transport for OneFlight {}

impl Read for OneFlight {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for OneFlight {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_server_stream_answers_early_data_in_its_first_flight() {
    let (cc, sc) = configs(CipherSuite::X25519Aes128GcmSha256Ed25519);
    let (port, server) = echo_server(sc.clone(), 1);
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut stream = StreamOwned::new(ClientConnection::new(cc.clone()).unwrap(), sock);
    stream.write_all(b"x").unwrap();
    stream.read_exact(&mut [0u8; 1]).unwrap();
    let id = stream.conn.session_id().unwrap().clone();
    stream.close().unwrap();
    drop(stream);
    server.join().unwrap();

    // The client's whole first flight: ResumptionRequest plus early data.
    let mut client = ClientConnection::resume(cc, &id).unwrap();
    client.writer().write_all(b"ping").unwrap();
    let mut flight = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut flight).unwrap();
    }

    // The server sees only that flight: its answer must not wait for the
    // client's EpochKeyUpdate (a second round trip), which never comes.
    let transport = OneFlight {
        input: std::io::Cursor::new(flight),
        output: Vec::new(),
    };
    let mut server = StreamOwned::new(ServerConnection::new(sc), transport);
    let mut got = [0u8; 4];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    server.write_all(b"pong").unwrap();
    assert!(
        server.conn.is_handshaking(),
        "EpochKeyUpdate not yet received"
    );

    // One round trip: the server's first flight carries the answer.
    let reply = std::mem::take(&mut server.sock.output);
    client.read_tls(&mut &reply[..]).unwrap();
    client.process_new_packets().unwrap();
    let mut answer = Vec::new();
    let _ = client.reader().read_to_end(&mut answer);
    assert_eq!(answer, b"pong");
}

/// Configurations with small update and timer settings for the timer and
/// write-only tests.
fn quick_configs(
    policy: mls_tls::conn::UpdatePolicy,
    handshake_timeout: std::time::Duration,
) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let (cc, sc) = configs(CipherSuite::X25519Aes128GcmSha256Ed25519);
    (
        Arc::new(
            (*cc)
                .clone()
                .update_policy(policy)
                .handshake_timeout(handshake_timeout),
        ),
        Arc::new(
            (*sc)
                .clone()
                .update_policy(policy)
                .handshake_timeout(handshake_timeout),
        ),
    )
}

/// Issue 11, case 3: a client that only writes must keep confirming its
/// key updates (the EpochKeyUpdate sits unread in its socket otherwise,
/// and only one update can be pending: the epoch stalled and the
/// connection died at the confirmation timeout). Both sides update here:
/// the reading server by its byte count too.
#[test]
fn a_write_only_stream_keeps_updating_its_keys() {
    use mls_tls::conn::UpdatePolicy;
    let policy = UpdatePolicy {
        interval: None,
        bytes: Some(256 * 1024),
        ..UpdatePolicy::default()
    };
    let (cc, sc) = quick_configs(policy, std::time::Duration::from_secs(10));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let total = 32 << 20;
    let server = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut stream = StreamOwned::new(ServerConnection::new(sc), sock);
        let mut buf = vec![0u8; 65536];
        let mut got = 0usize;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("server read: {e}"),
            }
        }
        (got, stream.conn.epoch().unwrap())
    });
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut stream = StreamOwned::new(ClientConnection::new(cc).unwrap(), sock);
    let chunk = vec![5u8; 16 * 1024];
    for _ in 0..total / chunk.len() {
        stream.write_all(&chunk).unwrap();
    }
    let epoch = stream.conn.epoch().unwrap();
    stream.close().unwrap();
    let (got, server_epoch) = server.join().unwrap();
    assert_eq!(got, total);
    // 32 MiB at an update per 256 KiB (sent plus received) from each side.
    assert!(epoch > 60, "client epoch {epoch}");
    assert!(server_epoch >= epoch);
}

/// A peer that connects and never sends a byte is dropped at the handshake
/// timeout by a blocking server (SPEC 9a).
#[test]
fn a_blocking_server_drops_a_silent_peer_at_the_handshake_timeout() {
    let (_, sc) = quick_configs(
        mls_tls::conn::UpdatePolicy::default(),
        std::time::Duration::from_millis(300),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (sock, _) = listener.accept().unwrap();
    let mut stream = StreamOwned::new(ServerConnection::new(sc), sock);
    let err = stream.complete_handshake().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("handshake"), "{err}");
}

/// Found by review: a blocking server that only writes (a server speaks
/// first) to a peer that sent a ClientHello and then nothing never judged
/// the handshake deadline: its provisional session lived on. Writes fail
/// with `TimedOut` once the deadline passes.
#[test]
fn a_blocking_server_that_only_writes_still_drops_an_unconfirmed_session() {
    let (cc, sc) = quick_configs(
        mls_tls::conn::UpdatePolicy::manual(),
        std::time::Duration::from_millis(300),
    );
    let mut hello_conn = ClientConnection::new(cc).unwrap();
    let mut hello = Vec::new();
    while hello_conn.wants_write() {
        hello_conn.write_tls(&mut hello).unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    peer.write_all(&hello).unwrap();
    let sink = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = peer.read_to_end(&mut buf);
    });
    let (sock, _) = listener.accept().unwrap();
    let mut s = StreamOwned::new(ServerConnection::new(sc), sock);
    // A guard against a hang, far above the 300 ms deadline.
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let err = loop {
        if let Err(e) = s.write_all(b"220 banner\r\n") {
            break e;
        }
        assert!(std::time::Instant::now() < guard, "never timed out");
        thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    drop(s);
    sink.join().unwrap();
}
