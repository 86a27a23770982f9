//! A fleet for tests: servers with their own configs and pools sharing one
//! PostgreSQL database, a round-robin TCP balancer in front of them, a TCP
//! proxy between a server and its database that the test can cut, and
//! clients.
//!
//! Each server answers every 4-byte message with its name, a colon and
//! the message (`A:ping`), so the client sees who served it, and reports
//! how each connection ended on a channel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mls_tls::conn::{ClientConfig, Connection, ServerConfig, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::{
    KeyRing, MemoryBackend, PostgresBackend, PostgresOptions, Precondition, Sealed, SessionBackend,
    SessionId, SessionStore,
};
use mls_tls::tokio::{Acceptor, Connector, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const KEYS: &str = "1:4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b";

/// No automatic key updates: the tests decide when transitions happen.
pub fn manual_updates() -> UpdatePolicy {
    UpdatePolicy {
        interval: None,
        bytes: None,
        confirm_timeout: Duration::from_secs(60),
    }
}

/// How a server connection ended: the server's name and the error, if any.
pub type Outcome = (char, Result<(), String>);

pub struct Server {
    pub name: char,
    pub addr: SocketAddr,
    pub store: Arc<SessionStore>,
}

/// The identity every server of the fleet presents (one certificate, one
/// key, as servers behind one name do).
pub fn server_identity() -> Vec<u8> {
    Identity::generate("fleet", SUITE)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec()
}

/// A server on its own config and its own pool to `url`, sealing with
/// [`KEYS`]; connection outcomes go to `events`.
pub async fn server(
    name: char,
    url: &str,
    identity: &[u8],
    options: PostgresOptions,
    events: mpsc::UnboundedSender<Outcome>,
) -> Server {
    let backend = PostgresBackend::connect_with(url, options).unwrap();
    let store = Arc::new(SessionStore::with_backend(Sealed::new(
        backend,
        KeyRing::parse(KEYS).unwrap(),
    )));
    let config = ServerConfig::new(
        Identity::from_bytes(identity).unwrap(),
        Arc::new(AcceptAnyPeer),
        store.clone(),
    )
    .update_policy(manual_updates());
    let acceptor = Acceptor::new(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, events) = (acceptor.clone(), events.clone());
            tokio::spawn(async move {
                let _ = events.send((name, serve(name, &acceptor, tcp).await));
            });
        }
    });
    Server { name, addr, store }
}

async fn serve(name: char, acceptor: &Acceptor, tcp: TcpStream) -> Result<(), String> {
    let show = |e: std::io::Error| match mls_tls::Error::from_io(&e) {
        Some(inner) => format!("{inner:?}"),
        None => format!("{e}"),
    };
    let mut tls = acceptor.accept(tcp).await.map_err(show)?;
    let mut m = [0u8; 4];
    loop {
        match tls.read_exact(&mut m).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(show(e)),
        }
        let mut reply = vec![name as u8, b':'];
        reply.extend_from_slice(&m);
        tls.write_all(&reply).await.map_err(show)?;
        tls.flush().await.map_err(show)?;
    }
}

/// A round-robin TCP balancer: connection n goes to `backends[n % len]`.
pub async fn balancer(backends: Vec<SocketAddr>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next = AtomicUsize::new(0);
    tokio::spawn(async move {
        loop {
            let Ok((mut down, _)) = listener.accept().await else {
                return;
            };
            let to = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
            tokio::spawn(async move {
                if let Ok(mut up) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    addr
}

/// A TCP proxy to `upstream` that the test cuts (every connection closed,
/// new ones refused) and restores.
pub struct CutProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl CutProxy {
    /// On a thread and runtime of its own, as a real network path would
    /// be: the servers' blocking store calls cannot stall it.
    pub fn new(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let links = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let (c, l) = (cut.clone(), links.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((mut down, _)) = listener.accept().await else {
                        return;
                    };
                    if c.load(Ordering::SeqCst) {
                        continue; // dropped: the database is "gone"
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut up) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                        }
                    });
                    l.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        Self { addr, cut, links }
    }

    /// The database is unreachable: open connections die, new ones are
    /// refused.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// `postgres://…@127.0.0.1:PORT/db` → the socket address and the URL
/// with the address replaced by `via`.
pub fn reroute(url: &str, via: SocketAddr) -> (SocketAddr, String) {
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (hostport, db) = rest.split_once('/').unwrap();
    (
        hostport.parse().unwrap(),
        format!("{scheme_user}@{via}/{db}"),
    )
}

/// A client: its own identity and in-memory store.
pub struct Client {
    pub identity: Vec<u8>,
    pub store: Arc<MemoryBackend>,
    pub connector: Connector,
}

impl Client {
    pub fn new() -> Self {
        let identity = Identity::generate("client", SUITE)
            .unwrap()
            .to_bytes()
            .unwrap()
            .to_vec();
        Self::with(identity, Arc::default())
    }

    fn with(identity: Vec<u8>, store: Arc<MemoryBackend>) -> Self {
        let config = ClientConfig::new(
            Identity::from_bytes(&identity).unwrap(),
            Arc::new(AcceptAnyPeer),
            Arc::new(SessionStore::with_backend(store.clone())),
        )
        .update_policy(manual_updates());
        Self {
            identity,
            store,
            connector: Connector::new(Arc::new(config)),
        }
    }

    /// A second client process with a copy of this one's stored session
    /// `id` (the same state, so both may try to resume it).
    pub fn twin(&self, id: &SessionId) -> Self {
        let store = Arc::<MemoryBackend>::default();
        let record = self.store.load(id).unwrap().unwrap();
        assert!(store.save(&record, Precondition::Absent).unwrap());
        Self::with(self.identity.clone(), store)
    }

    /// A new session with the server at `addr`; returns it after one echo.
    pub async fn connect(&self, addr: SocketAddr) -> (TlsStream<TcpStream>, char) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = self.connector.connect(tcp).await.unwrap();
        let who = ask(&mut tls, b"ping").await.unwrap();
        (tls, who)
    }

    /// Resumes `id` at `addr` with `early` as early data, and waits for the
    /// response; returns who answered the early data.
    pub async fn resume(
        &self,
        id: &SessionId,
        addr: SocketAddr,
        early: &[u8; 4],
    ) -> std::io::Result<(TlsStream<TcpStream>, char, bool)> {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = self.connector.resume(id, tcp).await?;
        let sending_early =
            matches!(tls.get_ref().1, Connection::Client(c) if c.is_sending_early_data());
        tls.write_all(early).await?;
        tls.flush().await?;
        let accepted = sending_early
            && matches!(tls.get_ref().1, Connection::Client(c) if c.is_early_data_accepted());
        let mut reply = [0u8; 6];
        tls.read_exact(&mut reply).await?;
        assert_eq!(
            &reply[1..],
            &[b":"[0], early[0], early[1], early[2], early[3]][..]
        );
        Ok((tls, reply[0] as char, accepted))
    }
}

/// Sends a 4-byte message and returns the name of the server that echoed it.
pub async fn ask(tls: &mut TlsStream<TcpStream>, m: &[u8; 4]) -> std::io::Result<char> {
    tls.write_all(m).await?;
    tls.flush().await?;
    let mut reply = [0u8; 6];
    tls.read_exact(&mut reply).await?;
    assert_eq!(&reply[2..], m, "echo");
    Ok(reply[0] as char)
}
