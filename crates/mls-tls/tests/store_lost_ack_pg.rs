//! Saves "in doubt" against a real PostgreSQL (from a hostile review). A proxy
//! between the server's PostgresBackend and the database forwards a chosen
//! statement (UPDATE / INSERT / DELETE on mlstls_sessions), then either
//! drops the database's whole answer and resets the backend's connection
//! (the statement committed, the backend reports an error), or holds the
//! statement until after the backend's timeout (it commits later).
//!
//! The connections are an in-memory pair (wire::pump); the server's store
//! is `Sealed<PostgresBackend>` through the proxy, the client's in memory.

mod pg;
mod wire;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::error::Error;
use mls_tls::store::{
    KeyRing, MemoryBackend, PostgresBackend, PostgresOptions, Sealed, SessionId, SessionStore,
};
use mls_tls::time::{Clock, ManualClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wire::{feed, pump, read_all, take};

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;
const KEYS: &str = "1:4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b";
const TIMEOUT: Duration = Duration::from_millis(1000);

// ------------------------------------------------------------------ proxy

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Forward the statement, drop the database's answer, reset the client.
    DropReply,
    /// Hold the statement (and everything after it on that link) this long.
    Delay(Duration),
    /// Forward the statement; from then on the database's answers on that
    /// link vanish and the link stays open (a half-dead TCP path).
    BlackHole,
}

#[derive(Default)]
struct Shared {
    /// (SQL substring, fault): fires once, on the next Execute of a
    /// statement whose Parse contained the substring.
    armed: Mutex<Option<(&'static str, Fault)>>,
    fired: AtomicUsize,
    /// Parse messages seen (statements the backend sent).
    statements: AtomicUsize,
}

struct LieProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl LieProxy {
    fn new(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((down, _)) = listener.accept().await else {
                        return;
                    };
                    let sh = sh.clone();
                    tokio::spawn(async move {
                        if let Ok(up) = TcpStream::connect(upstream).await {
                            link(down, up, sh).await;
                        }
                    });
                }
            });
        });
        Self { addr, shared }
    }

    fn arm(&self, sql: &'static str, fault: Fault) {
        *self.shared.armed.lock().unwrap() = Some((sql, fault));
    }

    fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }
}

/// Splits complete frontend/backend messages off `buf`; `untyped` for the
/// first frontend message (the startup message has no type byte).
fn messages(buf: &mut Vec<u8>, untyped: &mut bool) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let (typ, hdr) = if *untyped {
            (0u8, 0usize)
        } else {
            (*buf.first().unwrap_or(&0), 1)
        };
        if buf.len() < hdr + 4 {
            return out;
        }
        let len = u32::from_be_bytes(buf[hdr..hdr + 4].try_into().unwrap()) as usize;
        if buf.len() < hdr + len {
            return out;
        }
        let msg: Vec<u8> = buf.drain(..hdr + len).collect();
        *untyped = false;
        out.push((typ, msg));
    }
}

async fn link(mut down: TcpStream, mut up: TcpStream, sh: Arc<Shared>) {
    let (mut cbuf, mut sbuf) = (Vec::new(), Vec::new());
    let (mut startup, mut never) = (true, false);
    let mut target = None::<Fault>; // the last Parse matched the armed SQL
    let mut dropping = false;
    let mut hole = false;
    let (mut b1, mut b2) = (vec![0u8; 65536], vec![0u8; 65536]);
    'outer: loop {
        let (mut dr, mut dw) = down.split();
        let (mut ur, mut uw) = up.split();
        tokio::select! {
            n = dr.read(&mut b1) => {
                let Ok(n @ 1..) = n else { break 'outer };
                cbuf.extend_from_slice(&b1[..n]);
                for (typ, msg) in messages(&mut cbuf, &mut startup) {
                    if std::env::var("R4DEBUG").is_ok() { eprintln!("C> {} {}", typ as char, msg.len()); }
                    match typ {
                        b'P' => {
                            sh.statements.fetch_add(1, Ordering::SeqCst);
                            let mut armed = sh.armed.lock().unwrap();
                            target = None;
                            if let Some((sql, fault)) = *armed {
                                if msg.windows(sql.len()).any(|w| w == sql.as_bytes()) {
                                    target = Some(fault);
                                    let _ = armed.take();
                                }
                            }
                        }
                        b'E' => {
                            if let Some(fault) = target.take() {
                                sh.fired.fetch_add(1, Ordering::SeqCst);
                                match fault {
                                    Fault::DropReply => dropping = true,
                                    Fault::BlackHole => { dropping = true; hole = true; }
                                    Fault::Delay(d) => tokio::time::sleep(d).await,
                                }
                            }
                        }
                        _ => {}
                    }
                    if uw.write_all(&msg).await.is_err() { break 'outer; }
                }
            }
            n = ur.read(&mut b2) => {
                let Ok(n @ 1..) = n else { break 'outer };
                sbuf.extend_from_slice(&b2[..n]);
                for (typ, msg) in messages(&mut sbuf, &mut never) {
                    if std::env::var("R4DEBUG").is_ok() { eprintln!("S> {} {}", typ as char, msg.len()); }
                    if dropping {
                        if typ == b'Z' && !hole {
                            // The statement's Sync is answered: committed.
                            break 'outer;
                        }
                        continue;
                    }
                    if dw.write_all(&msg).await.is_err() { break 'outer; }
                }
            }
        }
    }
    // Reset the backend's side without forwarding anything more.
    #[allow(deprecated)] // an abortive close (RST) is the point here
    let _ = down.set_linger(Some(Duration::ZERO));
    drop(down);
    drop(up);
}

// ------------------------------------------------------------------ setup

struct T {
    clock: Arc<ManualClock>,
    proxy: LieProxy,
    url: String,
    cc: Arc<ClientConfig>,
    sc: Arc<ServerConfig>,
}

fn setup() -> T {
    let url = pg::fresh_database();
    let (db, _) = pg::fleet::reroute(&url, "127.0.0.1:1".parse().unwrap());
    // The schema first, directly (a fresh database's first DDL is slow).
    drop(PostgresBackend::connect(&url).unwrap());
    let proxy = LieProxy::new(db);
    let (_, via) = pg::fleet::reroute(&url, proxy.addr);
    let backend = PostgresBackend::connect_with(
        &via,
        PostgresOptions {
            pool_size: 4,
            timeout: TIMEOUT,
            threads: 1,
        },
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new());
    let sstore = SessionStore::with_backend(Sealed::new(backend, KeyRing::parse(KEYS).unwrap()));
    let cc = Arc::new(
        ClientConfig::new(
            Identity::generate("client", SUITE).unwrap(),
            Arc::new(AcceptAnyPeer),
            Arc::new(SessionStore::with_backend(Arc::new(
                MemoryBackend::default(),
            ))),
        )
        .clock(clock.clone())
        .update_policy(UpdatePolicy::manual()),
    );
    let sc = Arc::new(
        ServerConfig::new(
            Identity::generate("server", SUITE).unwrap(),
            Arc::new(AcceptAnyPeer),
            Arc::new(sstore),
        )
        .clock(clock.clone())
        .update_policy(UpdatePolicy::manual()),
    );
    T {
        clock,
        proxy,
        url,
        cc,
        sc,
    }
}

/// The stored version of `id`, read directly (not via the proxy).
fn db_version(t: &T, id: &SessionId) -> Option<u64> {
    let hex: String = id.0.iter().map(|b| format!("{b:02x}")).collect();
    let rows = pg::query(
        &t.url,
        &format!("SELECT version FROM mlstls_sessions WHERE id = '\\x{hex}'::bytea"),
    )
    .unwrap();
    rows.first().map(|v| v.parse().unwrap())
}

fn connect(t: &T) -> (ClientConnection, ServerConnection) {
    let mut c = ClientConnection::new(t.cc.clone()).unwrap();
    let mut s = ServerConnection::new(t.sc.clone());
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(1), Some(1)));
    (c, s)
}

/// Data both ways.
fn data_flows(c: &mut ClientConnection, s: &mut ServerConnection) -> Result<(), Error> {
    c.writer().write_all(b"c->s").unwrap();
    s.writer().write_all(b"s->c").unwrap();
    pump(c, s)?;
    assert_eq!(read_all(s), b"c->s");
    assert_eq!(read_all(c), b"s->c");
    Ok(())
}

fn resume_works(t: &T, id: &SessionId) -> Result<(), Error> {
    let mut c = ClientConnection::resume(t.cc.clone(), id)?;
    let mut s = ServerConnection::new(t.sc.clone());
    pump(&mut c, &mut s)?;
    data_flows(&mut c, &mut s)?;
    assert_eq!(c.epoch(), s.epoch());
    Ok(())
}

/// Runs the server's timers until nothing waits (bounded).
fn tick(t: &T, s: &mut ServerConnection, c: &mut ClientConnection, secs: u64) {
    for _ in 0..secs {
        t.clock.advance(Duration::from_secs(1));
        let _ = s.handle_timeout(t.clock.now());
        let _ = c.handle_timeout(t.clock.now());
        let _ = pump(c, s);
    }
}

const UPD: &str = "UPDATE mlstls_sessions";
const DEL: &str = "DELETE FROM mlstls_sessions";
const INS: &str = "INSERT INTO mlstls_sessions";

fn lost(t: &T, sql: &'static str) {
    t.proxy.arm(sql, Fault::DropReply);
}

fn late(t: &T, sql: &'static str) {
    t.proxy.arm(sql, Fault::Delay(TIMEOUT + TIMEOUT / 2));
}

fn is_store(r: &Result<(), Error>) -> bool {
    matches!(r, Err(Error::Store(_)))
}

// ------------------------------------------------- lost reply at each save

#[test]
fn lost_reply_of_our_key_update() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    let v0 = db_version(&t, &id).unwrap();
    lost(&t, UPD);
    let r = s.request_key_update();
    assert_eq!(t.proxy.fired(), 1);
    assert!(is_store(&r), "{r:?}");
    assert_eq!(db_version(&t, &id), Some(v0 + 1), "it committed");
    data_flows(&mut c, &mut s).unwrap();
    t.clock.advance(Duration::from_secs(2));
    s.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    data_flows(&mut c, &mut s).unwrap();
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_the_peers_key_update() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    let v0 = db_version(&t, &id).unwrap();
    lost(&t, UPD);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(t.proxy.fired(), 1);
    assert_eq!(db_version(&t, &id), Some(v0 + 1), "it committed");
    assert_eq!(s.epoch(), Some(1), "waits");
    data_flows(&mut c, &mut s).unwrap();
    tick(&t, &mut s, &mut c, 10);
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    data_flows(&mut c, &mut s).unwrap();
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_the_epoch_key_update() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    s.request_key_update().unwrap();
    let v1 = db_version(&t, &id).unwrap();
    lost(&t, UPD);
    pump(&mut c, &mut s).unwrap();
    assert_eq!(t.proxy.fired(), 1);
    assert_eq!(db_version(&t, &id), Some(v1 + 1), "it committed");
    data_flows(&mut c, &mut s).unwrap();
    tick(&t, &mut s, &mut c, 10);
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    data_flows(&mut c, &mut s).unwrap();
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_a_resumption() {
    let t = setup();
    let (c, s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    drop((c, s));
    lost(&t, UPD);
    let r = (|| {
        let mut c = ClientConnection::resume(t.cc.clone(), &id)?;
        let mut s = ServerConnection::new(t.sc.clone());
        pump(&mut c, &mut s)?;
        data_flows(&mut c, &mut s)
    })();
    assert_eq!(t.proxy.fired(), 1);
    assert!(r.is_err(), "the resumption's save failed, yet {r:?}");
    resume_works(&t, &id).unwrap();
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_terminate() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    lost(&t, DEL);
    let r = s.terminate();
    assert_eq!(t.proxy.fired(), 1);
    if r.is_err() {
        s.terminate().unwrap();
    }
    assert_eq!(db_version(&t, &id), None);
    let _ = feed(&mut c, &take(&mut s));
    drop((c, s));
    assert!(resume_works(&t, &id).is_err());
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_our_key_update_then_terminate() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    lost(&t, UPD);
    assert!(is_store(&s.request_key_update()));
    let r = s.terminate();
    if r.is_err() {
        s.terminate().unwrap();
    }
    assert_eq!(db_version(&t, &id), None);
    let _ = feed(&mut c, &take(&mut s));
    drop((c, s));
    assert!(resume_works(&t, &id).is_err());
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_the_peers_update_then_terminate() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    lost(&t, UPD);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    let r = s.terminate();
    if r.is_err() {
        s.terminate().unwrap();
    }
    assert_eq!(db_version(&t, &id), None);
    let _ = feed(&mut c, &take(&mut s));
    drop((c, s));
    assert!(resume_works(&t, &id).is_err());
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_our_key_update_then_close() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    lost(&t, UPD);
    assert!(is_store(&s.request_key_update()));
    s.send_close_notify();
    let _ = feed(&mut c, &take(&mut s));
    c.send_close_notify();
    let _ = feed(&mut s, &take(&mut c));
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_the_peers_update_then_our_close() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    lost(&t, UPD);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    s.send_close_notify();
    let _ = feed(&mut c, &take(&mut s));
    c.send_close_notify();
    let _ = feed(&mut s, &take(&mut c));
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_the_write_back_on_our_close() {
    // The peer's update lands (reply lost), then our close_notify's
    // write-back of memory's state also loses its reply.
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    lost(&t, UPD);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    lost(&t, UPD);
    s.send_close_notify();
    let _ = feed(&mut c, &take(&mut s));
    c.send_close_notify();
    let _ = feed(&mut s, &take(&mut c));
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn lost_reply_of_a_new_session() {
    let t = setup();
    lost(&t, INS);
    let mut c = ClientConnection::new(t.cc.clone()).unwrap();
    let mut s = ServerConnection::new(t.sc.clone());
    let r = pump(&mut c, &mut s);
    assert_eq!(t.proxy.fired(), 1);
    assert!(r.is_err() || data_flows(&mut c, &mut s).is_err());
    let rows = pg::query(&t.url, "SELECT count(*) FROM mlstls_sessions").unwrap();
    assert_eq!(rows, vec!["0".to_string()], "orphan left");
}

// ------------------------------------------ statements after the timeout

#[test]
fn late_our_key_update() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    let v0 = db_version(&t, &id).unwrap();
    late(&t, UPD);
    let start = Instant::now();
    assert!(is_store(&s.request_key_update()));
    assert!(start.elapsed() < TIMEOUT * 3);
    // Retry at once, while the statement is still held.
    let r = s.request_key_update();
    pump(&mut c, &mut s).unwrap();
    std::thread::sleep(TIMEOUT);
    eprintln!("retry: {r:?}, db v{:?} (v0 {v0})", db_version(&t, &id));
    if r.is_err() {
        t.clock.advance(Duration::from_secs(2));
        s.request_key_update().unwrap();
        pump(&mut c, &mut s).unwrap();
    }
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    data_flows(&mut c, &mut s).unwrap();
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn late_peers_key_update() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    late(&t, UPD);
    c.request_key_update().unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(s.epoch(), Some(1));
    // The retry at 1 s runs while the statement is still held.
    tick(&t, &mut s, &mut c, 1);
    std::thread::sleep(TIMEOUT);
    tick(&t, &mut s, &mut c, 20);
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    data_flows(&mut c, &mut s).unwrap();
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn late_epoch_key_update() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    s.request_key_update().unwrap();
    late(&t, UPD);
    pump(&mut c, &mut s).unwrap();
    data_flows(&mut c, &mut s).unwrap();
    tick(&t, &mut s, &mut c, 1);
    std::thread::sleep(TIMEOUT);
    tick(&t, &mut s, &mut c, 20);
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
    data_flows(&mut c, &mut s).unwrap();
    drop((c, s));
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn late_terminate() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    late(&t, DEL);
    let r = s.terminate();
    if r.is_err() {
        s.terminate().unwrap();
    }
    std::thread::sleep(TIMEOUT);
    assert_eq!(db_version(&t, &id), None);
    let _ = feed(&mut c, &take(&mut s));
    drop((c, s));
    assert!(resume_works(&t, &id).is_err());
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn late_update_then_terminate() {
    // Our update's statement is still held when terminate deletes: the
    // late UPDATE must not resurrect anything (it matches no row).
    let t = setup();
    let (mut c, mut s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    late(&t, UPD);
    assert!(is_store(&s.request_key_update()));
    let r = s.terminate();
    if r.is_err() {
        s.terminate().unwrap();
    }
    std::thread::sleep(TIMEOUT);
    assert_eq!(db_version(&t, &id), None);
    let _ = feed(&mut c, &take(&mut s));
    drop((c, s));
    assert!(resume_works(&t, &id).is_err());
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

#[test]
fn late_resumption() {
    let t = setup();
    let (c, s) = connect(&t);
    let id = s.session_id().unwrap().clone();
    drop((c, s));
    late(&t, UPD);
    let r = (|| {
        let mut c = ClientConnection::resume(t.cc.clone(), &id)?;
        let mut s = ServerConnection::new(t.sc.clone());
        pump(&mut c, &mut s)?;
        data_flows(&mut c, &mut s)
    })();
    assert!(r.is_err(), "{r:?}");
    std::thread::sleep(TIMEOUT);
    resume_works(&t, &id).unwrap();
    assert!(t.proxy.fired() >= 1, "the fault never fired");
}

/// A statement times out because its link went silent (not closed). The
/// backend gives up after its timeout, but the pooled connection goes back
/// to the pool: every later call that draws it waits the full timeout and
/// fails, for as long as the dead link lives (keepalives never fire on a
/// link with unanswered data in flight).
#[test]
fn a_timed_out_connection_is_not_reused() {
    let t = setup();
    let (mut c, mut s) = connect(&t);
    t.proxy.arm(UPD, Fault::BlackHole);
    assert!(is_store(&s.request_key_update()));
    assert_eq!(t.proxy.fired(), 1);
    data_flows(&mut c, &mut s).unwrap();
    // Each retry (one read-back plus one save) after the first timeout.
    let mut failed = Vec::new();
    for i in 0..8 {
        t.clock.advance(Duration::from_secs(2));
        let start = Instant::now();
        match s.request_key_update() {
            Ok(()) => break,
            Err(e) => failed.push((i, start.elapsed(), e)),
        }
        data_flows(&mut c, &mut s).unwrap();
    }
    assert!(
        failed.is_empty(),
        "retries after one timeout kept failing on the dead pooled connection: {failed:?}"
    );
    pump(&mut c, &mut s).unwrap();
    assert_eq!((c.epoch(), s.epoch()), (Some(2), Some(2)));
}
