//! Review 14: the tokio adapter after `terminate()` (is_handshaking() turns
//! true again on d90c226, and the adapter's shutdown waits for a
//! "resumption" to finish).

use std::sync::Arc;
use std::time::Duration;

use mls_tls::conn::{ClientConfig, ServerConfig, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::SessionStore;
use mls_tls::tokio::{Acceptor, Connector};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

/// `shutdown()` of a client stream after `terminate()` completes at once
/// (close_notify was already queued; nothing is left to wait for). On
/// d90c226 it waits for the handshake deadline (10 s by default) and then
/// fails with "handshake not completed in time".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_shutdown_after_terminate_waits_for_the_handshake_deadline() {
    let store = || Arc::new(SessionStore::in_memory().unwrap());
    let cc = Arc::new(
        ClientConfig::new(
            Identity::generate("client", SUITE).unwrap(),
            Arc::new(AcceptAnyPeer),
            store(),
        )
        .update_policy(UpdatePolicy::manual()),
    );
    let sc = Arc::new(
        ServerConfig::new(
            Identity::generate("server", SUITE).unwrap(),
            Arc::new(AcceptAnyPeer),
            store(),
        )
        .update_policy(UpdatePolicy::manual()),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (c, s) = (c.unwrap(), s.unwrap().0);
    let connector = Connector::new(cc.clone());
    let acceptor = Acceptor::new(sc);
    let (client, server) = tokio::join!(connector.connect(c), acceptor.accept(s));
    let (mut client, _server) = (client.unwrap(), server.unwrap());
    client.get_mut().1.terminate().unwrap();
    assert!(cc.store().list().unwrap().is_empty());
    let r = tokio::time::timeout(Duration::from_secs(3), client.shutdown()).await;
    assert!(matches!(r, Ok(Ok(()))), "shutdown after terminate(): {r:?}");
}
