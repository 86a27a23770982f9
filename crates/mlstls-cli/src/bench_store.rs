//! `mlstls bench store`: the session store's cost on this machine (issue
//! 15): resumption first byte with the server's sessions in SQLite or in
//! PostgreSQL, saves per second with many connections saving at once, and
//! the cost of encryption at rest per save.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use mls_tls::bench_support::time_per_call;
use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::{
    KeyRing, PostgresBackend, PostgresOptions, Precondition, Sealed, SessionBackend, SessionId,
    SessionInfo, SessionRecord, SessionStore,
};
use mls_tls::stream::StreamOwned;
use zeroize::Zeroizing;

fn e(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn bench_keys() -> Result<KeyRing, String> {
    // A fixed key: this measures, it protects nothing.
    KeyRing::parse(&format!("1:{}", "42".repeat(32))).map_err(e)
}

/// A backend that keeps nothing: what remains of a save is the wrapper's
/// own work.
struct Discard;

impl SessionBackend for Discard {
    fn load(&self, _: &SessionId) -> Result<Option<SessionRecord>, mls_tls::Error> {
        Ok(None)
    }
    fn save(&self, r: &SessionRecord, _: Precondition) -> Result<bool, mls_tls::Error> {
        std::hint::black_box(r);
        Ok(true)
    }
    fn delete(&self, _: &SessionId) -> Result<bool, mls_tls::Error> {
        Ok(false)
    }
    fn list(&self) -> Result<Vec<SessionInfo>, mls_tls::Error> {
        Ok(Vec::new())
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

pub(crate) fn run(url: &str, rounds: usize, conns: usize, secs: u64) -> Result<(), String> {
    let suite = CipherSuite::X25519Aes128GcmSha256Ed25519;
    let dir = std::env::temp_dir().join(format!("mlstls-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(e)?;
    let result = run_in(url, rounds.max(1), conns.max(1), secs.max(1), suite, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    url: &str,
    rounds: usize,
    conns: usize,
    secs: u64,
    suite: CipherSuite,
    dir: &Path,
) -> Result<(), String> {
    println!("suite {suite}; client sessions in an SQLite file (WAL, synchronous=FULL)");
    println!(
        "resumption, first response byte (connect, resume with 1 byte of early data, echo): \
         median of {rounds}, the four stores measured in turn each round"
    );
    let names = [
        "server: SQLite file",
        "server: SQLite file, sealed",
        "server: PostgreSQL, sealed",
        "server: PostgreSQL, not sealed",
    ];
    let mut beds = Vec::new();
    for n in 0..names.len() {
        let store: SessionStore = match n {
            0 => SessionStore::open(dir.join(format!("s{n}.db"))).map_err(e)?,
            1 => {
                SessionStore::open_sealed(dir.join(format!("s{n}.db")), bench_keys()?).map_err(e)?
            }
            2 => SessionStore::open_postgres(url, bench_keys()?).map_err(e)?,
            _ => SessionStore::with_backend(PostgresBackend::connect(url).map_err(e)?),
        };
        beds.push(Bed::new(suite, dir, n, Arc::new(store), rounds)?);
    }
    let mut times = vec![(Vec::new(), Vec::new()); beds.len()];
    for _ in 0..rounds {
        for (bed, (new, resumed)) in beds.iter_mut().zip(times.iter_mut()) {
            let (n, r) = bed.round()?;
            new.push(n);
            resumed.push(r);
        }
    }
    let mut record_len = 0;
    for ((bed, (mut new, mut resumed)), name) in beds.into_iter().zip(times).zip(names) {
        record_len = record_len.max(bed.finish()?);
        println!(
            "  {name:<34} new {:>7.2} ms   resumed {:>7.2} ms",
            median(&mut new).as_secs_f64() * 1e3,
            median(&mut resumed).as_secs_f64() * 1e3
        );
    }

    println!("encryption at rest, per record of {record_len} bytes (a session of this suite):");
    let record = |v: u64| SessionRecord {
        info: SessionInfo {
            id: SessionId(vec![7; 16]),
            suite,
            initial_role: mls_tls::store::InitialRole::Responder,
            peer_signature_key: vec![1; 32],
            created: std::time::SystemTime::now(),
            last_used: std::time::SystemTime::now(),
        },
        version: v,
        data: Zeroizing::new(vec![0x5a; record_len]),
    };
    let r = record(1);
    let sealed = Sealed::new(Discard, bench_keys()?);
    let window = Duration::from_millis(500);
    let mut seal: Vec<Duration> = (0..5)
        .map(|_| time_per_call(window, || drop(sealed.save(&r, Precondition::Absent))))
        .collect();
    let mut plain: Vec<Duration> = (0..5)
        .map(|_| time_per_call(window, || drop(Discard.save(&r, Precondition::Absent))))
        .collect();
    let keeper = Arc::new(mls_tls::store::MemoryBackend::default());
    let sealed_mem = Sealed::new(keeper.clone(), bench_keys()?);
    sealed_mem.save(&r, Precondition::Absent).map_err(e)?;
    let mut open: Vec<Duration> = (0..5)
        .map(|_| time_per_call(window, || drop(sealed_mem.load(r.id()))))
        .collect();
    let mut open_plain: Vec<Duration> = (0..5)
        .map(|_| time_per_call(window, || drop(keeper.load(r.id()))))
        .collect();
    println!(
        "  seal (save) {:.2} us   open (load) {:.2} us   (over a backend that keeps nothing / a map)",
        (median(&mut seal).saturating_sub(median(&mut plain))).as_secs_f64() * 1e6,
        (median(&mut open).saturating_sub(median(&mut open_plain))).as_secs_f64() * 1e6,
    );

    println!("PostgreSQL saves, {conns} connections saving at once for {secs} s, each its own session (sealed, {record_len} bytes):");
    for pool in [16, conns] {
        let backend = PostgresBackend::connect_with(
            url,
            PostgresOptions {
                pool_size: pool,
                ..PostgresOptions::default()
            },
        )
        .map_err(e)?;
        let store = Arc::new(Sealed::new(backend, bench_keys()?));
        let (rate, mut lat) = saves(&store, conns, secs, record_len, suite)?;
        println!(
            "  pool {pool:>4}: {rate:>8.0} saves/s   latency p50 {:.2} ms  p99 {:.2} ms",
            median(&mut lat).as_secs_f64() * 1e3,
            pct(&mut lat, 0.99).as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// A client and a server (on a thread of its own) whose sessions are in
/// the store under test.
struct Bed {
    cc: Arc<ClientConfig>,
    addr: std::net::SocketAddr,
    srv: thread::JoinHandle<()>,
    server_store: Arc<SessionStore>,
    client_db: std::path::PathBuf,
    last: Option<SessionId>,
}

impl Bed {
    fn new(
        suite: CipherSuite,
        dir: &Path,
        n: usize,
        server_store: Arc<SessionStore>,
        rounds: usize,
    ) -> Result<Self, String> {
        let policy = UpdatePolicy::manual();
        let client_db = dir.join(format!("c{n}.db"));
        let cc = Arc::new(
            ClientConfig::new(
                Identity::generate("client", suite).map_err(e)?,
                Arc::new(AcceptAnyPeer),
                Arc::new(SessionStore::open(&client_db).map_err(e)?),
            )
            .update_policy(policy),
        );
        let sc = Arc::new(
            ServerConfig::new(
                Identity::generate("server", suite).map_err(e)?,
                Arc::new(AcceptAnyPeer),
                server_store.clone(),
            )
            .update_policy(policy),
        );
        let listener = TcpListener::bind("127.0.0.1:0").map_err(e)?;
        let addr = listener.local_addr().map_err(e)?;
        let srv = thread::spawn(move || {
            for _ in 0..2 * rounds {
                let Ok((sock, _)) = listener.accept() else {
                    return;
                };
                let _ = sock.set_nodelay(true);
                let mut s = StreamOwned::new(ServerConnection::new(sc.clone()), sock);
                let mut byte = [0u8; 1];
                if s.read_exact(&mut byte).is_ok() && s.write_all(&byte).is_ok() {
                    let _ = s.read(&mut byte);
                }
            }
        });
        Ok(Self {
            cc,
            addr,
            srv,
            server_store,
            client_db,
            last: None,
        })
    }

    /// One new session and one resumption of it: their first-byte times.
    fn round(&mut self) -> Result<(Duration, Duration), String> {
        let mut byte = [1u8];
        let start = Instant::now();
        let sock = TcpStream::connect(self.addr).map_err(e)?;
        sock.set_nodelay(true).map_err(e)?;
        let mut c = StreamOwned::new(ClientConnection::new(self.cc.clone()).map_err(e)?, sock);
        c.write_all(&byte).map_err(e)?;
        c.read_exact(&mut byte).map_err(e)?;
        let new = start.elapsed();
        let id = c.conn.session_id().cloned().ok_or("no session")?;
        c.close().map_err(e)?;
        drop(c);

        let start = Instant::now();
        let mut conn = ClientConnection::resume(self.cc.clone(), &id).map_err(e)?;
        conn.writer().write_all(&byte).map_err(e)?;
        let sock = TcpStream::connect(self.addr).map_err(e)?;
        sock.set_nodelay(true).map_err(e)?;
        let mut c = StreamOwned::new(conn, sock);
        c.flush().map_err(e)?;
        c.read_exact(&mut byte).map_err(e)?;
        let resumed = start.elapsed();
        c.close().map_err(e)?;
        self.last = Some(id);
        Ok((new, resumed))
    }

    /// Waits for the server, empties its store; returns the size of a
    /// stored session (the client's copy, the same size as the server's).
    fn finish(self) -> Result<usize, String> {
        self.srv.join().map_err(|_| "server thread panicked")?;
        let len = match &self.last {
            Some(id) => mls_tls::store::SqliteBackend::open(&self.client_db)
                .and_then(|b| b.load(id))
                .map_err(e)?
                .map_or(0, |r| r.data.len()),
            None => 0,
        };
        for info in self.server_store.list().map_err(e)? {
            let _ = self.server_store.delete(&info.id);
        }
        Ok(len)
    }
}

/// `conns` threads each updating its own session as fast as the store
/// takes it, for `secs`: saves per second and every save's latency.
fn saves(
    store: &Arc<Sealed<PostgresBackend>>,
    conns: usize,
    secs: u64,
    len: usize,
    suite: CipherSuite,
) -> Result<(f64, Vec<Duration>), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(conns + 1));
    let run_id = std::process::id().to_be_bytes();
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            let (store, stop, count, barrier) =
                (store.clone(), stop.clone(), count.clone(), barrier.clone());
            thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut id = run_id.to_vec();
                id.extend_from_slice(&(i as u64).to_be_bytes());
                let mut r = SessionRecord {
                    info: SessionInfo {
                        id: SessionId(id),
                        suite,
                        initial_role: mls_tls::store::InitialRole::Responder,
                        peer_signature_key: vec![1; 32],
                        created: std::time::SystemTime::now(),
                        last_used: std::time::SystemTime::now(),
                    },
                    version: 1,
                    data: Zeroizing::new(vec![0x5a; len]),
                };
                let _ = store.delete(r.id());
                store.save(&r, Precondition::Absent).map_err(e)?;
                let mut lat = Vec::new();
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    r.version += 1;
                    let t = Instant::now();
                    if !store
                        .save(&r, Precondition::Version(r.version - 1))
                        .map_err(e)?
                    {
                        return Err("a save lost its precondition".into());
                    }
                    lat.push(t.elapsed());
                    count.fetch_add(1, Ordering::Relaxed);
                }
                store.delete(r.id()).map_err(e)?;
                Ok(lat)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    let done = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "a saving thread panicked")??);
    }
    if all.is_empty() {
        return Err("no save completed".into());
    }
    Ok((done as f64 / elapsed.as_secs_f64(), all))
}
