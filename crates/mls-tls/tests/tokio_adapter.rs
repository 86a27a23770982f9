//! The tokio adapter over loopback TCP: handshake and echo for every suite,
//! full-duplex transfers (with and without key updates under way), and
//! resumption with early data.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use mls_tls::conn::{ClientConfig, Connection, ServerConfig, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::{SessionId, SessionStore};
use mls_tls::tokio::{Acceptor, Connector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

/// A guard against deadlocks: a stuck test fails instead of hanging. Far
/// above what any test needs, so it says nothing about speed.
const DEADLINE: Duration = Duration::from_secs(30);

fn configs(suite: CipherSuite, policy: UpdatePolicy) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let store = || Arc::new(SessionStore::in_memory().unwrap());
    let client = ClientConfig::new(
        Identity::generate("client", suite).unwrap(),
        Arc::new(AcceptAnyPeer),
        store(),
    )
    .update_policy(policy);
    let server = ServerConfig::new(
        Identity::generate("server", suite).unwrap(),
        Arc::new(AcceptAnyPeer),
        store(),
    )
    .update_policy(policy);
    (Arc::new(client), Arc::new(server))
}

/// A connected pair of TCP sockets on loopback.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

/// A connected pair of TCP sockets on loopback with socket buffers of
/// about `size` bytes, so that writes often find the transport full.
async fn small_tcp_pair(size: u32) -> (TcpStream, TcpStream) {
    let socket = || {
        let s = TcpSocket::new_v4().unwrap();
        s.set_send_buffer_size(size).unwrap();
        s.set_recv_buffer_size(size).unwrap();
        s
    };
    let listen = socket();
    listen.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = listen.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(socket().connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

/// A new session over loopback TCP.
async fn handshake(
    connector: &Connector,
    acceptor: &Acceptor,
) -> (TlsStream<TcpStream>, TlsStream<TcpStream>) {
    let (c, s) = tcp_pair().await;
    handshake_over(connector, acceptor, c, s).await
}

/// A new session over the transports `c` (client) and `s` (server).
async fn handshake_over<IO>(
    connector: &Connector,
    acceptor: &Acceptor,
    c: IO,
    s: IO,
) -> (TlsStream<IO>, TlsStream<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (client, server) = tokio::join!(connector.connect(c), acceptor.accept(s));
    (client.unwrap(), server.unwrap())
}

/// Echoes everything until the peer's close_notify, then closes too.
/// Returns how many bytes it echoed.
fn spawn_echo<IO>(mut server: TlsStream<IO>) -> tokio::task::JoinHandle<(u64, TlsStream<IO>)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut total = 0;
        loop {
            let n = server.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            server.write_all(&buf[..n]).await.unwrap();
            server.flush().await.unwrap();
            total += n as u64;
        }
        server.shutdown().await.unwrap();
        (total, server)
    })
}

/// Deterministic filler (xorshift), so that reordering would show.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn epoch(stream: &TlsStream<impl Sized>) -> u64 {
    stream.get_ref().1.epoch().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_echo_every_suite() {
    tokio::time::timeout(DEADLINE, async {
        for suite in CipherSuite::ALL {
            let (cc, sc) = configs(suite, UpdatePolicy::default());
            let (client, server) = handshake(&Connector::new(cc), &Acceptor::new(sc)).await;
            assert!(!client.get_ref().1.is_handshaking(), "{suite:?}");
            assert_eq!(client.get_ref().1.suite(), Some(suite));
            assert_eq!(server.get_ref().1.suite(), Some(suite));
            let echo = spawn_echo(server);

            let data = pattern(100 * 1024, suite.code_point().into());
            let (mut rd, mut wr) = tokio::io::split(client);
            let mut got = vec![0u8; data.len()];
            let (w, r) = tokio::join!(
                async {
                    wr.write_all(&data).await?;
                    wr.flush().await
                },
                rd.read_exact(&mut got)
            );
            w.unwrap();
            r.unwrap();
            assert!(got == data, "{suite:?}: echo differs");

            // Orderly close both ways: close_notify, then the echo's.
            let mut client = rd.unsplit(wr);
            client.shutdown().await.unwrap();
            assert_eq!(client.read(&mut [0u8; 16]).await.unwrap(), 0);
            let (echoed, server) = echo.await.unwrap();
            assert_eq!(echoed, data.len() as u64);
            // The client's first record confirmed the server's session.
            assert!(!server.get_ref().1.is_handshaking(), "{suite:?}");
        }
    })
    .await
    .expect("deadline");
}

/// One task writes `total` bytes while another reads the echo, over the
/// transports `c` (client) and `s` (server); returns the client stream's
/// epochs before and after, and the server's at the end.
async fn full_duplex<IO>(c: IO, s: IO, total: usize, policy: UpdatePolicy) -> (u64, u64, u64)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (cc, sc) = configs(SUITE, policy);
    let (client, server) = handshake_over(&Connector::new(cc), &Acceptor::new(sc), c, s).await;
    let first_epoch = epoch(&client);
    let echo = spawn_echo(server);

    let (mut rd, mut wr) = tokio::io::split(client);
    let writer = tokio::spawn(async move {
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut sent = 0;
        let mut seed = 7;
        while sent < total {
            let chunk = pattern((total - sent).min(100_000), seed);
            seed += 1;
            ctx.update(&chunk);
            wr.write_all(&chunk).await.unwrap();
            sent += chunk.len();
        }
        wr.shutdown().await.unwrap();
        (ctx.finish(), wr)
    });
    let reader = tokio::spawn(async move {
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; 48 * 1024];
        let mut received = 0;
        loop {
            let n = rd.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            received += n;
        }
        (ctx.finish(), received, rd)
    });
    let (sent_digest, wr) = writer.await.unwrap();
    let (received_digest, received, rd) = reader.await.unwrap();
    let (echoed, server) = echo.await.unwrap();
    assert_eq!(echoed, total as u64);
    assert_eq!(received, total);
    assert_eq!(sent_digest.as_ref(), received_digest.as_ref());
    let client = rd.unsplit(wr);
    (first_epoch, epoch(&client), epoch(&server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_duplex_8_mib() {
    let (c, s) = tcp_pair().await;
    tokio::time::timeout(
        DEADLINE,
        full_duplex(c, s, 8 << 20, UpdatePolicy::default()),
    )
    .await
    .expect("deadline");
}

/// Key updates every 1 MiB on both sides while data flows both ways: each
/// side's EpochKeyUpdate replies are written by whichever task processes
/// the ConnectionUpdate, often the one that only reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_duplex_with_key_updates() {
    let policy = UpdatePolicy {
        bytes: Some(1 << 20),
        ..UpdatePolicy::manual()
    };
    let (c, s) = tcp_pair().await;
    let (first, client_end, server_end) =
        tokio::time::timeout(DEADLINE, full_duplex(c, s, 8 << 20, policy))
            .await
            .expect("deadline");
    assert!(client_end > first, "no key update happened");
    assert!(server_end > first, "no key update happened");
}

/// Tiny transport buffers: the reading task's writes (key update replies,
/// data the writer left queued) and the writing task both keep finding the
/// transport full, and neither may take the other's wakeup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_duplex_small_buffers_with_key_updates() {
    let policy = UpdatePolicy {
        bytes: Some(256 << 10),
        ..UpdatePolicy::manual()
    };
    let (c, s) = small_tcp_pair(4096).await;
    let (first, client_end, _) = tokio::time::timeout(DEADLINE, full_duplex(c, s, 2 << 20, policy))
        .await
        .expect("deadline (TCP)");
    assert!(client_end > first, "no key update happened");
    let (c, s) = tokio::io::duplex(4096);
    let (first, client_end, _) = tokio::time::timeout(DEADLINE, full_duplex(c, s, 2 << 20, policy))
        .await
        .expect("deadline (in-memory pipe)");
    assert!(client_end > first, "no key update happened");
}

/// Early data: the server sees it through the stream's reads, ahead of
/// what the client writes after the resumption (ServerConnection::
/// early_data() could take it apart first, see TlsStream's docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumption_with_early_data() {
    tokio::time::timeout(DEADLINE, async {
        let (cc, sc) = configs(SUITE, UpdatePolicy::default());
        let connector = Connector::new(cc);
        let acceptor = Acceptor::new(sc);

        // A first connection; one round trip confirms the server's session.
        let (mut client, mut server) = handshake(&connector, &acceptor).await;
        client.write_all(b"ping").await.unwrap();
        let mut word = [0u8; 4];
        server.read_exact(&mut word).await.unwrap();
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut word).await.unwrap();
        assert_eq!(&word, b"pong");
        assert!(!server.get_ref().1.is_handshaking());
        let id: SessionId = client.get_ref().1.session_id().unwrap().clone();
        let first_epoch = epoch(&client);
        assert_eq!(epoch(&server), first_epoch);
        drop((client, server)); // TCP closed, sessions stay stored.

        let (c, s) = tcp_pair().await;
        let early = pattern(1024, 1);
        let later = pattern(1024, 2);
        let server_side = {
            let (early, later) = (early.clone(), later.clone());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut server = acceptor.accept(s).await.unwrap();
                let mut got = vec![0u8; 1024];
                server.read_exact(&mut got).await.unwrap();
                assert!(got == early, "early data differs");
                server.write_all(b"early ok").await.unwrap();
                server.flush().await.unwrap();
                server.read_exact(&mut got).await.unwrap();
                assert!(got == later, "data after the resumption differs");
                assert!(!server.get_ref().1.is_handshaking());
                server.write_all(&got).await.unwrap();
                server.flush().await.unwrap();
                server
            })
        };

        let mut client = connector.resume(&id, c).await.unwrap();
        {
            let Connection::Client(c) = client.get_ref().1 else {
                unreachable!("a connector makes clients")
            };
            assert!(c.is_sending_early_data());
            assert!(c.is_handshaking());
        }
        client.write_all(&early).await.unwrap();
        // The flush waits for the ResumptionResponse.
        client.flush().await.unwrap();
        {
            let Connection::Client(c) = client.get_ref().1 else {
                unreachable!("a connector makes clients")
            };
            assert!(c.is_early_data_accepted());
            assert!(!c.is_handshaking());
        }
        let mut reply = [0u8; 8];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"early ok");
        client.write_all(&later).await.unwrap();
        let mut echo = vec![0u8; 1024];
        client.read_exact(&mut echo).await.unwrap();
        assert!(echo == later);

        let server = server_side.await.unwrap();
        assert!(epoch(&client) > first_epoch);
        assert_eq!(epoch(&server), epoch(&client));
    })
    .await
    .expect("deadline");
}

/// A task that only reads still answers the peer's key update: the
/// EpochKeyUpdate is written by the read itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_alone_answers_key_update() {
    tokio::time::timeout(DEADLINE, async {
        let (cc, sc) = configs(SUITE, UpdatePolicy::manual());
        let (mut client, mut server) = handshake(&Connector::new(cc), &Acceptor::new(sc)).await;
        client.write_all(b"confirm").await.unwrap();
        let mut word = [0u8; 7];
        server.read_exact(&mut word).await.unwrap();
        let first = epoch(&server);

        server.get_mut().1.request_key_update().unwrap();
        server.write_all(b"update").await.unwrap();
        server.flush().await.unwrap();
        let mut got = [0u8; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"update");
        assert_eq!(epoch(&client), first + 1);
        // The reply left with the read: nothing waits for a write.
        assert!(!client.get_ref().1.wants_write());

        // The server switches on the EpochKeyUpdate, which precedes this.
        client.write_all(b"after").await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"after");
        assert_eq!(epoch(&server), first + 1);
    })
    .await
    .expect("deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_end_without_close_notify_is_unexpected_eof() {
    tokio::time::timeout(DEADLINE, async {
        let (cc, sc) = configs(SUITE, UpdatePolicy::default());
        let (mut client, server) = handshake(&Connector::new(cc), &Acceptor::new(sc)).await;
        let (mut tcp, _conn) = server.into_inner();
        tcp.shutdown().await.unwrap(); // FIN, no close_notify
        let err = client.read(&mut [0u8; 16]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        // And it stays so.
        let err = client.read(&mut [0u8; 16]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    })
    .await
    .expect("deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_end_during_handshake_is_unexpected_eof() {
    tokio::time::timeout(DEADLINE, async {
        let (cc, _) = configs(SUITE, UpdatePolicy::default());
        let (c, mut s) = tcp_pair().await;
        s.shutdown().await.unwrap(); // FIN right away; the socket stays open
        let err = Connector::new(cc).connect(c).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        drop(s);
    })
    .await
    .expect("deadline");
}

/// No common suite: the server's handshake_failure alert reaches the
/// client, and both see `InvalidData`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_failure_is_invalid_data_on_both_sides() {
    tokio::time::timeout(DEADLINE, async {
        let (cc, _) = configs(SUITE, UpdatePolicy::default());
        let (_, sc) = configs(
            CipherSuite::P256Aes128GcmSha256P256,
            UpdatePolicy::default(),
        );
        let (connector, acceptor) = (Connector::new(cc), Acceptor::new(sc));
        let (c, s) = tcp_pair().await;
        let (client, server) = tokio::join!(connector.connect(c), acceptor.accept(s));
        let (client, server) = (client.unwrap_err(), server.unwrap_err());
        assert_eq!(server.kind(), std::io::ErrorKind::InvalidData, "{server}");
        assert_eq!(client.kind(), std::io::ErrorKind::InvalidData, "{client}");
    })
    .await
    .expect("deadline");
}

/// The acceptance run: 1 GiB each way at once on one connection
/// (the server echoes while the client writes), both sides updating every
/// 16 MiB (sent plus received), so updates collide; what arrives hashes to
/// what was sent and the epoch advances by at least 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_each_way_with_updates_every_16_mib() {
    let policy = UpdatePolicy {
        bytes: Some(16 << 20),
        ..UpdatePolicy::manual()
    };
    let (c, s) = tcp_pair().await;
    // Not a timing assertion: only a guard against a hang.
    let (first, client_end, server_end) =
        tokio::time::timeout(Duration::from_secs(900), full_duplex(c, s, 1 << 30, policy))
            .await
            .expect("hang guard");
    assert!(client_end >= first + 100, "epochs {first} -> {client_end}");
    assert_eq!(client_end, server_end);
}

/// A peer that connects and never sends a byte: `accept` fails with
/// `TimedOut` at the handshake timeout instead of waiting forever; so does
/// `connect` to a server that never answers (SPEC 9a).
#[tokio::test]
async fn silent_peers_time_out_in_accept_and_connect() {
    let (cc, sc) = configs(SUITE, UpdatePolicy::default());
    let short = Duration::from_millis(300);
    let cc = Arc::new((*cc).clone().handshake_timeout(short));
    let sc = Arc::new((*sc).clone().handshake_timeout(short));
    let (c, s) = tcp_pair().await;
    let err = tokio::time::timeout(DEADLINE, Acceptor::new(sc).accept(s))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    drop(c);
    let (c, _s) = tcp_pair().await;
    let err = tokio::time::timeout(DEADLINE, Connector::new(cc).connect(c))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
}

/// Issue 11, case 3 for tokio: a task that only writes keeps confirming
/// key updates, both its own and the peer's.
#[tokio::test]
async fn a_write_only_task_keeps_updating_its_keys() {
    let policy = UpdatePolicy {
        interval: None,
        bytes: Some(256 * 1024),
        ..UpdatePolicy::default()
    };
    let (cc, sc) = configs(SUITE, policy);
    let (mut client, mut server) = handshake(&Connector::new(cc), &Acceptor::new(sc)).await;
    let total = 32usize << 20;
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut got = 0usize;
        loop {
            match server.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("server read: {e}"),
            }
        }
        (got, server.get_ref().1.epoch().unwrap())
    });
    let chunk = vec![5u8; 16 * 1024];
    tokio::time::timeout(DEADLINE, async {
        for _ in 0..total / chunk.len() {
            client.write_all(&chunk).await.unwrap();
        }
        client.shutdown().await.unwrap();
    })
    .await
    .unwrap();
    let (got, server_epoch) = reader.await.unwrap();
    let epoch = client.get_ref().1.epoch().unwrap();
    assert_eq!(got, total);
    // Without the fix the epoch stopped at the first update. The stream
    // does not wait for confirmations, so an update takes as long as the
    // socket buffers ahead of it: fewer updates than policy checks.
    assert!(epoch > 10, "client epoch {epoch}");
    assert!(server_epoch >= epoch);
}

/// Found by review: a task that only writes never judged the confirmation
/// deadline while the transport took its writes, so a peer that reads
/// everything but never confirms kept it on the old key. Writes now fail
/// with `TimedOut` once the deadline passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_only_task_times_out_an_unconfirmed_update() {
    let policy = UpdatePolicy {
        confirm_timeout: Duration::from_millis(300),
        ..UpdatePolicy::manual()
    };
    let (cc, sc) = configs(SUITE, policy);
    let (c, s) = tokio::io::duplex(1 << 20);
    let (connector, acceptor) = (Connector::new(cc), Acceptor::new(sc));
    let (client, server) = tokio::join!(connector.connect(c), acceptor.accept(s));
    let mut client = client.unwrap();
    // A hostile peer: takes every byte, answers nothing.
    let (mut raw, _conn) = server.unwrap().into_inner();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while raw.read(&mut buf).await.unwrap_or(0) > 0 {}
    });
    client.get_mut().1.request_key_update().unwrap();
    client.flush().await.unwrap();
    let err = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Err(e) = client.write_all(&[0u8; 1024]).await {
                break e;
            }
            if let Err(e) = client.flush().await {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("never timed out");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
}
