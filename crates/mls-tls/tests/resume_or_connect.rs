//! `Connector::resume_or_connect`: resumes when it can, falls back to a new
//! session exactly when the stored session is gone (SPEC 8), and returns
//! every other failure.

use std::sync::Arc;
use std::time::Duration;

use mls_tls::alert::AlertDescription;
use mls_tls::conn::{ClientConfig, ServerConfig};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::{
    MemoryBackend, Precondition, SessionBackend, SessionId, SessionStore, StoredSession,
};
use mls_tls::tokio::{Acceptor, Connector, Established, TlsStream};
use mls_tls::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;
const DEADLINE: Duration = Duration::from_secs(30);

struct Setup {
    connector: Connector,
    /// The stores' backends, reachable behind the stores' backs.
    client_store: Arc<MemoryBackend>,
    server_store: Arc<MemoryBackend>,
    addr: std::net::SocketAddr,
}

/// A server that accepts forever and echoes one 4-byte message per
/// connection (errors end that connection only).
async fn setup() -> Setup {
    let client_store = Arc::<MemoryBackend>::default();
    let server_store = Arc::<MemoryBackend>::default();
    let client = ClientConfig::new(
        Identity::generate("client", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::with_backend(client_store.clone())),
    );
    let server = ServerConfig::new(
        Identity::generate("server", SUITE).unwrap(),
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::with_backend(server_store.clone())),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::new(Arc::new(server));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut msg = [0u8; 4];
                if tls.read_exact(&mut msg).await.is_ok() {
                    let _ = tls.write_all(&msg).await;
                    let _ = tls.flush().await;
                }
            });
        }
    });
    Setup {
        connector: Connector::new(Arc::new(client)),
        client_store,
        server_store,
        addr,
    }
}

impl Setup {
    /// Rewrites the client's stored session `id` with `f`.
    fn rewrite(&self, id: &SessionId, f: impl FnOnce(&mut StoredSession)) {
        let record = self.client_store.load(id).unwrap().unwrap();
        let mut session = StoredSession::from_bytes(&record.data).unwrap();
        f(&mut session);
        assert!(self
            .client_store
            .save(&session.to_record(), Precondition::Version(record.version))
            .unwrap());
    }

    async fn run(
        &self,
        session: Option<&SessionId>,
    ) -> std::io::Result<(TlsStream<TcpStream>, Established)> {
        let addr = self.addr;
        tokio::time::timeout(
            DEADLINE,
            self.connector
                .resume_or_connect(session, || TcpStream::connect(addr)),
        )
        .await
        .expect("no deadlock")
    }

    /// A connection that carries data; returns its session id.
    async fn echo(&self, session: Option<&SessionId>) -> (SessionId, Established) {
        let (mut tls, how) = self.run(session).await.unwrap();
        tls.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        tls.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");
        let id = tls.get_ref().1.session_id().unwrap().clone();
        (id, how)
    }
}

#[tokio::test]
async fn resumes_a_known_session_and_starts_one_without() {
    let s = setup().await;
    let (id, how) = s.echo(None).await;
    assert_eq!(how, Established::New { fallback: None });
    let (again, how) = s.echo(Some(&id)).await;
    assert_eq!(how, Established::Resumed);
    assert_eq!(again, id);
}

#[tokio::test]
async fn a_session_missing_here_falls_back_to_a_new_one() {
    let s = setup().await;
    let (id, _) = s.echo(None).await;
    assert!(s.client_store.delete(&id).unwrap());
    let (new, how) = s.echo(Some(&id)).await;
    assert!(
        matches!(
            how,
            Established::New {
                fallback: Some(Error::UnknownSession(_))
            }
        ),
        "{how:?}"
    );
    assert_ne!(new, id);
}

#[tokio::test]
async fn a_session_the_server_forgot_falls_back_to_a_new_one() {
    let s = setup().await;
    let (id, _) = s.echo(None).await;
    assert!(s.server_store.delete(&id).unwrap());
    let (new, how) = s.echo(Some(&id)).await;
    assert_eq!(
        how,
        Established::New {
            fallback: Some(Error::AlertReceived(AlertDescription::HandshakeFailure))
        }
    );
    assert_ne!(new, id);
}

/// A record written before the group moved to plain memory (snapshot
/// format 1) is a session to forget: deleted, and a new one made.
#[tokio::test]
async fn an_old_format_record_is_deleted_and_replaced() {
    let s = setup().await;
    let (id, _) = s.echo(None).await;
    s.rewrite(&id, |session| {
        session.group = b"MLSTLS-GROUP-1\0\0\0\x12openmls_group_data"
            .to_vec()
            .into();
    });
    let (new, how) = s.echo(Some(&id)).await;
    assert!(
        matches!(how, Established::New { fallback: Some(Error::UnknownSession(ref why)) } if why.contains("format 1")),
        "{how:?}"
    );
    assert_ne!(new, id);
    assert!(
        s.client_store.load(&id).unwrap().is_none(),
        "the old record is deleted"
    );
}

/// A damaged record is not "gone": it is a store failure the caller sees,
/// and nothing is deleted.
#[tokio::test]
async fn a_damaged_record_is_an_error_not_a_fallback() {
    let s = setup().await;
    let (id, _) = s.echo(None).await;
    s.rewrite(&id, |session| session.group = b"garbage".to_vec().into());
    let err = s.run(Some(&id)).await.unwrap_err();
    assert!(
        matches!(Error::from_io(&err), Some(Error::Store(_))),
        "{err:?}"
    );
    assert!(s.client_store.load(&id).unwrap().is_some());
}

/// A transport that cannot connect is returned, not retried.
#[tokio::test]
async fn a_transport_error_is_returned() {
    let s = setup().await;
    let (id, _) = s.echo(None).await;
    let err = s
        .connector
        .resume_or_connect(Some(&id), || async {
            Err::<TcpStream, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(Error::from_io(&err).is_none());
}
