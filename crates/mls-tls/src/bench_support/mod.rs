//! Shared measurement loops for `benches/record.rs`, `mlstls bench` and
//! the comparison bench, so all measure exactly the same thing. Only with
//! the `bench` feature; not a stable API.

mod capture;
pub mod compromise;
mod mls_ops;
pub mod vectors;

pub use mls_ops::{MlsOps, SideCost};

use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey};

use crate::record::{ContentType, OpaqueRecord, RecordOpener, RecordSealer, HEADER_LEN};
use crate::schedule::{AeadAlgorithm, TrafficKeys};

/// Seals one record and opens it again through the record layer, in place in
/// one buffer, as a connection's send and receive paths do.
pub struct RecordRoundTrip {
    sealer: RecordSealer,
    opener: RecordOpener,
    buf: Vec<u8>,
    content_len: usize,
}

impl RecordRoundTrip {
    /// A loop over records of `content_len` bytes of application data.
    pub fn new(aead: AeadAlgorithm, content_len: usize) -> Self {
        let keys = || TrafficKeys::from_raw(aead, &vec![0x42; aead.key_len()], &[7; 12]).unwrap();
        let mut sealer = RecordSealer::new();
        sealer.install(keys()).unwrap();
        let mut opener = RecordOpener::new();
        opener.install(keys()).unwrap();
        let mut buf = Vec::with_capacity(HEADER_LEN + content_len + 1 + 16);
        buf.resize(HEADER_LEN + content_len, 0xab);
        Self {
            sealer,
            opener,
            buf,
            content_len,
        }
    }

    /// One seal and one open. Panics if the record does not open to the
    /// content that was sealed (it would be a bug, not a measurement).
    pub fn run_once(&mut self) {
        self.sealer
            .seal_in_place(ContentType::ApplicationData, &mut self.buf, 0)
            .unwrap();
        let (header, payload) = self.buf.split_at_mut(HEADER_LEN);
        let record = OpaqueRecord {
            header: [header[0], header[1], header[2], header[3], header[4]],
            payload,
        };
        let msg = self.opener.open(record).unwrap();
        assert_eq!(msg.payload.len(), self.content_len);
        self.buf.truncate(HEADER_LEN + self.content_len);
    }
}

/// The same work straight on aws-lc-rs: seal in place, then open in place,
/// over a buffer of the same size, with a 5-byte AAD.
pub struct RawAeadRoundTrip {
    key: LessSafeKey,
    buf: Vec<u8>,
    content_len: usize,
    seq: u64,
}

impl RawAeadRoundTrip {
    /// A loop over `content_len + 1` byte plaintexts (content and type byte,
    /// the same bytes the record layer encrypts).
    pub fn new(aead: AeadAlgorithm, content_len: usize) -> Self {
        let key = UnboundKey::new(aead.backend(), &vec![0x42; aead.key_len()]).unwrap();
        let mut buf = Vec::with_capacity(content_len + 1 + 16);
        buf.resize(content_len + 1, 0xab);
        Self {
            key: LessSafeKey::new(key),
            buf,
            content_len,
            seq: 0,
        }
    }

    fn nonce(&self) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.seq.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    /// One seal and one open.
    pub fn run_once(&mut self) {
        let aad = [23, 3, 3, 0, 0];
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(), Aad::from(aad), &mut self.buf)
            .unwrap();
        self.buf.extend_from_slice(tag.as_ref());
        let plain = self
            .key
            .open_in_place(self.nonce(), Aad::from(aad), &mut self.buf)
            .unwrap();
        assert_eq!(plain.len(), self.content_len + 1);
        self.buf.truncate(self.content_len + 1);
        self.seq += 1;
    }
}

/// Runs `f` repeatedly for about `duration` and returns the mean time of
/// one call.
pub fn time_per_call(duration: Duration, mut f: impl FnMut()) -> Duration {
    // Warm up caches and the CPU's clock before timing.
    for _ in 0..16 {
        f();
    }
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < duration {
        for _ in 0..32 {
            f();
        }
        calls += 32;
    }
    start.elapsed() / calls
}

/// One row of the record benchmark: both loops timed alternately, `rounds`
/// times each, reporting the median of each.
#[derive(Debug, Clone, Copy)]
pub struct RecordBenchRow {
    /// The AEAD measured.
    pub aead: AeadAlgorithm,
    /// Record content length.
    pub content_len: usize,
    /// Median time of one seal+open through the record layer.
    pub record: Duration,
    /// Median time of one raw seal+open.
    pub raw: Duration,
}

impl RecordBenchRow {
    /// Throughput in MB/s (10^6 bytes) of content sealed and opened.
    pub fn record_mbps(&self) -> f64 {
        self.content_len as f64 / self.record.as_secs_f64() / 1e6
    }

    /// Throughput in MB/s of the raw AEAD.
    pub fn raw_mbps(&self) -> f64 {
        self.content_len as f64 / self.raw.as_secs_f64() / 1e6
    }

    /// Record-layer throughput divided by raw AEAD throughput.
    pub fn ratio(&self) -> f64 {
        self.raw.as_secs_f64() / self.record.as_secs_f64()
    }
}

/// Measures one AEAD: `rounds` alternating timings of `per_round` each.
pub fn record_bench(
    aead: AeadAlgorithm,
    content_len: usize,
    rounds: usize,
    per_round: Duration,
) -> RecordBenchRow {
    let mut ours = RecordRoundTrip::new(aead, content_len);
    let mut raw = RawAeadRoundTrip::new(aead, content_len);
    let mut record_times = Vec::with_capacity(rounds);
    let mut raw_times = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        record_times.push(time_per_call(per_round, || ours.run_once()));
        raw_times.push(time_per_call(per_round, || raw.run_once()));
    }
    RecordBenchRow {
        aead,
        content_len,
        record: median(&mut record_times),
        raw: median(&mut raw_times),
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Per-operation timings of the profile engine, both sides in one thread
/// (so the time is the CPU of both parties together).
#[derive(Debug, Clone, Copy)]
pub struct ProfileBenchRow {
    /// The suite measured.
    pub suite: crate::crypto::CipherSuite,
    /// Median full handshake: ClientHello, ServerHello, confirmation.
    pub handshake: Duration,
    /// Median update round: ConnectionUpdate and EpochKeyUpdate.
    pub update: Duration,
    /// Median resumption round: request, response, EpochKeyUpdate.
    pub resumption: Duration,
    /// Handshake bytes on the wire per full handshake (both directions).
    pub handshake_bytes: usize,
    /// Handshake bytes per update round.
    pub update_bytes: usize,
    /// Handshake bytes per resumption round.
    pub resumption_bytes: usize,
}

/// Measures `iterations` handshakes, updates and resumptions of `suite`,
/// with sessions in `store_path` files (durable, SPEC 10) or in memory.
pub fn profile_bench(
    suite: crate::crypto::CipherSuite,
    iterations: usize,
    store_dir: Option<&std::path::Path>,
) -> Result<ProfileBenchRow, crate::Error> {
    use crate::credentials::{AcceptAnyPeer, Identity};
    use crate::message::HandshakeMessage;
    use crate::profile::engine::{Engine, Event, ProfileConfig};
    use crate::store::SessionStore;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn sends(events: Vec<Event>, bytes: &mut usize) -> Vec<HandshakeMessage> {
        let out: Vec<HandshakeMessage> = events
            .into_iter()
            .filter_map(|e| match e {
                Event::Send(m) => Some(m),
                _ => None,
            })
            .collect();
        *bytes += out.iter().map(|m| m.body.len() + 4).sum::<usize>();
        out
    }
    fn deliver(
        msgs: Vec<HandshakeMessage>,
        to: &mut Engine,
        bytes: &mut usize,
    ) -> Result<Vec<HandshakeMessage>, crate::Error> {
        let mut out = Vec::new();
        for m in msgs {
            out.extend(sends(to.handle(m, SystemTime::now())?, bytes));
        }
        Ok(out)
    }

    let store = |name: &str| -> Result<Arc<SessionStore>, crate::Error> {
        Ok(Arc::new(match store_dir {
            Some(d) => SessionStore::open(d.join(name))?,
            None => SessionStore::in_memory()?,
        }))
    };
    let config = |name: &str| -> Result<ProfileConfig, crate::Error> {
        Ok(ProfileConfig::new(
            vec![Arc::new(Identity::generate(name, suite)?)],
            Arc::new(AcceptAnyPeer),
            store(&format!("{name}.db"))?,
        ))
    };
    let (c, s) = (config("client")?, config("server")?);
    let n = iterations.max(1);
    let (mut hs, mut up, mut re) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hs_bytes, mut up_bytes, mut re_bytes) = (0, 0, 0);
    for _ in 0..n {
        let start = Instant::now();
        let (mut client, ev) = Engine::client(c.clone())?;
        let mut server = Engine::server(s.clone());
        let hello = deliver(sends(ev, &mut hs_bytes), &mut server, &mut hs_bytes)?;
        deliver(hello, &mut client, &mut hs_bytes)?;
        server.on_peer_application_data(SystemTime::now())?;
        hs.push(start.elapsed());

        let start = Instant::now();
        let update = sends(client.start_update(SystemTime::now())?, &mut up_bytes);
        let confirm = deliver(update, &mut server, &mut up_bytes)?;
        deliver(confirm, &mut client, &mut up_bytes)?;
        up.push(start.elapsed());

        let id = client
            .session_id()
            .cloned()
            .ok_or(crate::Error::ApiMisuse("no session"))?;
        let start = Instant::now();
        let (mut client, ev, _) = Engine::resume(c.clone(), &id, SystemTime::now())?;
        let mut server = Engine::server(s.clone());
        let response = deliver(sends(ev, &mut re_bytes), &mut server, &mut re_bytes)?;
        let confirm = deliver(response, &mut client, &mut re_bytes)?;
        deliver(confirm, &mut server, &mut re_bytes)?;
        re.push(start.elapsed());
    }
    Ok(ProfileBenchRow {
        suite,
        handshake: median(&mut hs),
        update: median(&mut up),
        resumption: median(&mut re),
        handshake_bytes: hs_bytes / n,
        update_bytes: up_bytes / n,
        resumption_bytes: re_bytes / n,
    })
}
