//! Forward secrecy and post-compromise security, shown by trying (issue 16).
//!
//! [`run`] drives one connection in memory through key updates with every
//! byte on the wire captured. At epoch `n` a thief copies what the client
//! keeps at rest: its session store file (with SQLite's side files) and its
//! identity file. The [`Thief`] then works from that copy and the capture
//! alone. It is written from the record layer, the documented store
//! formats and OpenMLS, and never from the engine or the connection. It
//! restores the stolen group, derives every traffic key it can, follows
//! every commit it can process, and tries every key at every position on
//! every captured record.
//!
//! Which epoch each record really belongs to comes from the client's key
//! log, which the thief does not have. The [`Report`] sets one against
//! the other. The claims:
//! - the compromise is real: the thief opens every record of epoch `n`;
//! - forward secrecy: it opens no record of an epoch before `n`;
//! - post-compromise security: it opens no record after the client's own
//!   next update, whose fresh path secret goes to the server's key. An
//!   update the server makes first does not heal: the thief, holding the
//!   client's leaf key, follows it. The scenario shows that too.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{MlsGroup, MlsMessageIn, ProcessedMessageContent, ProtocolMessage};

use crate::conn::{ClientConfig, ClientConnection, ConnectionCore, ServerConfig, ServerConnection};
use crate::credentials::{AcceptAnyPeer, Identity};
use crate::crypto::{CipherSuite, CryptoBackend};
use crate::error::Error;
use crate::keylog::KeyLog;
use crate::message::{HandshakeJoiner, HandshakeType};
use crate::profile::provider::MlsProvider;
use crate::record::{ContentType, Deframer, OpaqueRecord, RecordOpener, HEADER_LEN};
use crate::schedule::{TrafficSecret, TrafficSecrets};
use crate::store::snapshot::GroupStorage;
use crate::store::{SessionBackend, SessionStore, SqliteBackend, StoredSession};

/// The epoch at which the thief copies the client's files.
pub const STOLEN_AT: u64 = 4;

/// One captured record and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Client to server (else server to client).
    pub to_server: bool,
    /// The epoch whose keys protect it (from the key log); `None` for a
    /// plaintext record.
    pub epoch: Option<u64>,
    /// Whether it carries application data (known from the key log).
    pub application_data: bool,
    /// Whether the thief opened it.
    pub opened_by_thief: bool,
}

/// What [`run`] found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The suite of the connection.
    pub suite: CipherSuite,
    /// The epoch at which the client's files were copied.
    pub stolen_at: u64,
    /// The epoch the client's own first update after the theft reached:
    /// from here on, post-compromise security should hold.
    pub healed_at: u64,
    /// The last epoch of the connection.
    pub last_epoch: u64,
    /// Every captured record, in wire order per direction.
    pub records: Vec<RecordOutcome>,
    /// Epochs whose keys the thief derived.
    pub thief_epochs: BTreeSet<u64>,
}

impl Report {
    /// (records the thief opened, records) among encrypted records whose
    /// epoch is in `epochs`.
    pub fn opened_in(&self, epochs: std::ops::RangeInclusive<u64>) -> (usize, usize) {
        let of: Vec<_> = self
            .records
            .iter()
            .filter(|r| r.epoch.is_some_and(|e| epochs.contains(&e)))
            .collect();
        (of.iter().filter(|r| r.opened_by_thief).count(), of.len())
    }
}

/// Runs the scenario for `suite` with files under `dir` (which must
/// exist): handshake, updates to epoch [`STOLEN_AT`], the theft, data,
/// a server update, the client's update, two more updates, data after
/// each step in both directions; then the thief's attack.
pub fn run(suite: CipherSuite, dir: &Path) -> Result<Report, Error> {
    let log = Arc::new(Collect::default());
    let client_store = dir.join("client.db");
    let client_identity = Identity::generate("client", suite)?;
    let identity_file = dir.join("client.id");
    std::fs::write(&identity_file, &*client_identity.to_bytes()?).map_err(io)?;
    let cc = ClientConfig::new(
        client_identity,
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::open(&client_store)?),
    )
    .key_log(log.clone());
    let sc = ServerConfig::new(
        Identity::generate("server", suite)?,
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::open(dir.join("server.db"))?),
    );
    let mut wire = Wire::default();
    let mut c = ClientConnection::new(Arc::new(cc))?;
    let mut s = ServerConnection::new(Arc::new(sc));
    wire.pump(&mut c, &mut s)?;
    wire.data(&mut c, &mut s)?;
    let mut client_turn = true;
    while c.epoch() < Some(STOLEN_AT) {
        wire.update(&mut c, &mut s, client_turn)?;
        client_turn = !client_turn;
    }
    let stolen_at = c.epoch().unwrap_or_default();
    // The theft: a copy of everything the client has at rest.
    let loot = dir.join("stolen");
    std::fs::create_dir_all(&loot).map_err(io)?;
    let stolen_store = copy_with_side_files(&client_store, &loot)?;
    std::fs::copy(&identity_file, loot.join("client.id")).map_err(io)?;
    wire.data(&mut c, &mut s)?;
    // The server updates first: the thief can follow this one.
    wire.update(&mut c, &mut s, false)?;
    // The client's own update: fresh randomness the thief never saw.
    wire.update(&mut c, &mut s, true)?;
    let healed_at = c.epoch().unwrap_or_default();
    wire.update(&mut c, &mut s, false)?;
    wire.update(&mut c, &mut s, true)?;
    let last_epoch = c.epoch().unwrap_or_default();

    let mut thief = Thief::from_store_copy(&stolen_store)?;
    let to_server = split_records(&wire.to_server)?;
    let to_client = split_records(&wire.to_client)?;
    let (opened_c, opened_s) = thief.attack(&to_server, &to_client)?;
    let truth = log.keys()?;
    let mut records = Vec::new();
    for (to_server, recs, opened) in [(true, &to_server, opened_c), (false, &to_client, opened_s)] {
        let keys: BTreeMap<u64, &TrafficSecret> = truth
            .iter()
            .filter(|((dir, _), _)| *dir == to_server)
            .map(|((_, e), s)| (*e, s))
            .collect();
        let labels = open_all(suite, recs, &keys)?;
        for (i, label) in labels.into_iter().enumerate() {
            records.push(RecordOutcome {
                to_server,
                epoch: label.as_ref().map(|o| o.epoch),
                application_data: label
                    .as_ref()
                    .is_some_and(|o| o.typ == ContentType::ApplicationData),
                opened_by_thief: opened[i],
            });
        }
    }
    Ok(Report {
        suite,
        stolen_at,
        healed_at,
        last_epoch,
        records,
        thief_epochs: thief.epochs.clone(),
    })
}

/// A thief holding a copy of a party's session store.
pub struct Thief {
    groups: Vec<StolenGroup>,
    /// Every epoch whose traffic secrets were derived: (to_server, epoch)
    /// to secret.
    secrets: BTreeMap<(bool, u64), TrafficSecret>,
    /// The epochs in `secrets`.
    pub epochs: BTreeSet<u64>,
}

struct StolenGroup {
    suite: CipherSuite,
    crypto: CryptoBackend,
    storage: GroupStorage,
    group: MlsGroup,
}

impl StolenGroup {
    /// The traffic secrets of the group's current epoch, as MLS-TLS
    /// exports them (draft-kohbrok-mls-tls: exporter labels per direction).
    fn secrets(&self) -> Result<TrafficSecrets, Error> {
        TrafficSecrets::from_exporter(self.suite.hash(), |label, len| {
            self.group
                .export_secret(&self.crypto, label, &[], len)
                .map_err(crate::error::mls_err)
        })
    }
}

impl Thief {
    /// Reads every session of the copied SQLite store at `path` and
    /// restores its MLS group.
    pub fn from_store_copy(path: &Path) -> Result<Self, Error> {
        let backend = SqliteBackend::open(path)?;
        let mut groups = Vec::new();
        for info in backend.list()? {
            let Some(record) = backend.load(&info.id)? else {
                continue;
            };
            let session = StoredSession::from_bytes(&record.data)?;
            let storage = GroupStorage::restore(&session.group)?;
            let group = MlsGroup::load(
                storage.storage(),
                &openmls::prelude::GroupId::from_slice(&info.id.0),
            )
            .map_err(crate::error::mls_err)?
            .ok_or_else(|| Error::Store("stolen record without a group".into()))?;
            let suite = session.meta.suite;
            groups.push(StolenGroup {
                suite,
                crypto: CryptoBackend::for_suite(suite).map_err(crate::error::mls_err)?,
                storage,
                group,
            });
        }
        let mut thief = Self {
            groups,
            secrets: BTreeMap::new(),
            epochs: BTreeSet::new(),
        };
        thief.learn()?;
        Ok(thief)
    }

    /// Records the current epoch's secrets of every stolen group, and the
    /// next epoch's if a commit of the victim's was pending when copied.
    fn learn(&mut self) -> Result<bool, Error> {
        let mut new = false;
        for g in &self.groups {
            let epoch = g.group.epoch().as_u64();
            if self.epochs.insert(epoch) {
                let s = g.secrets()?;
                self.secrets.insert((true, epoch), s.client);
                self.secrets.insert((false, epoch), s.server);
                new = true;
            }
            if let Some(staged) = g.group.pending_commit() {
                if self.epochs.insert(epoch + 1) {
                    let s = TrafficSecrets::from_exporter(g.suite.hash(), |label, len| {
                        staged
                            .export_secret(&g.crypto, label, &[], len)
                            .map_err(crate::error::mls_err)
                    })?;
                    self.secrets.insert((true, epoch + 1), s.client);
                    self.secrets.insert((false, epoch + 1), s.server);
                    new = true;
                }
            }
        }
        Ok(new)
    }

    /// Tries every key on the captured records of both directions, follows
    /// every commit it can open and process, and repeats until it learns
    /// nothing more. Returns, per record, whether it was opened.
    pub fn attack(
        &mut self,
        to_server: &[Vec<u8>],
        to_client: &[Vec<u8>],
    ) -> Result<(Vec<bool>, Vec<bool>), Error> {
        let mut processed = BTreeSet::new();
        loop {
            let mut opened = Vec::new();
            let mut messages = Vec::new();
            for (dir, recs) in [(true, to_server), (false, to_client)] {
                let Some(suite) = self.groups.first().map(|g| g.suite) else {
                    return Ok((vec![false; to_server.len()], vec![false; to_client.len()]));
                };
                let keys: BTreeMap<u64, &TrafficSecret> = self
                    .secrets
                    .iter()
                    .filter(|((d, _), _)| *d == dir)
                    .map(|((_, e), s)| (*e, s))
                    .collect();
                let labels = open_all(suite, recs, &keys)?;
                opened.push(labels.iter().map(Option::is_some).collect::<Vec<_>>());
                // Handshake messages: from plaintext records and those opened.
                let mut joiner = HandshakeJoiner::new(1 << 24);
                for (i, rec) in recs.iter().enumerate() {
                    let payload = match (&labels[i], rec.first()) {
                        (None, Some(22)) => Some(rec[HEADER_LEN..].to_vec()),
                        (Some(o), _) if o.typ == ContentType::Handshake => Some(o.content.clone()),
                        _ => None,
                    };
                    if let Some(p) = payload {
                        if joiner.push(&p).is_ok() {
                            while let Ok(Some(m)) = joiner.next_message() {
                                messages.push((dir, i, m));
                            }
                        }
                    }
                }
            }
            let mut progress = false;
            for (dir, i, m) in messages {
                let commit = matches!(
                    m.typ,
                    HandshakeType::ConnectionUpdate
                        | HandshakeType::ResumptionRequest
                        | HandshakeType::ResumptionResponse
                );
                if !commit || processed.contains(&(dir, i)) {
                    continue;
                }
                if self.follow(&m.body) {
                    processed.insert((dir, i));
                    progress = true;
                }
            }
            progress |= self.learn()?;
            if !progress {
                let to_client = opened.pop().unwrap_or_default();
                let to_server = opened.pop().unwrap_or_default();
                return Ok((to_server, to_client));
            }
        }
    }

    /// Processes a commit with each stolen group; true if one merged it.
    fn follow(&mut self, body: &[u8]) -> bool {
        let Ok(message) = MlsMessageIn::tls_deserialize_exact(body) else {
            return false;
        };
        let Ok(protocol) = ProtocolMessage::try_from(message) else {
            return false;
        };
        for g in &mut self.groups {
            let provider = MlsProvider::new(&g.crypto, &g.storage);
            if protocol.group_id() != g.group.group_id() {
                continue;
            }
            if g.group.pending_commit().is_some()
                && protocol.epoch().as_u64() == g.group.epoch().as_u64() + 1
            {
                // The peer built on the victim's pending commit: it was
                // confirmed, so the thief merges it too.
                if g.group.merge_pending_commit(&provider).is_err() {
                    continue;
                }
            }
            if protocol.epoch() != g.group.epoch() {
                continue;
            }
            let Ok(processed) = g.group.process_message(&provider, protocol.clone()) else {
                continue;
            };
            if let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() {
                if g.group.merge_staged_commit(&provider, *staged).is_ok() {
                    return true;
                }
            }
        }
        false
    }
}

/// A record opened with a key: its epoch, content type and content.
#[derive(Clone)]
struct Opened {
    epoch: u64,
    typ: ContentType,
    content: Vec<u8>,
}

/// Opens what the keys open: every key is tried as a run starting at
/// every record not opened yet, since a key's sequence numbers start at
/// the first record it protects.
fn open_all(
    suite: CipherSuite,
    records: &[Vec<u8>],
    keys: &BTreeMap<u64, &TrafficSecret>,
) -> Result<Vec<Option<Opened>>, Error> {
    let mut out: Vec<Option<Opened>> = vec![None; records.len()];
    for (&epoch, secret) in keys {
        let mut start = 0;
        while start < records.len() {
            let mut opener = RecordOpener::new();
            opener.install(secret.derive_keys(suite.aead())?)?;
            let mut end = start;
            while end < records.len() && out[end].is_none() {
                let mut rec = records[end].clone();
                let Some((typ, content)) = try_open(&mut opener, &mut rec) else {
                    break;
                };
                out[end] = Some(Opened {
                    epoch,
                    typ,
                    content,
                });
                end += 1;
            }
            start = end.max(start + 1);
        }
    }
    Ok(out)
}

fn try_open(opener: &mut RecordOpener, rec: &mut [u8]) -> Option<(ContentType, Vec<u8>)> {
    if rec.len() < HEADER_LEN || rec[0] != 23 {
        return None;
    }
    let (header, payload) = rec.split_at_mut(HEADER_LEN);
    let opaque = OpaqueRecord {
        header: [header[0], header[1], header[2], header[3], header[4]],
        payload,
    };
    opener
        .open(opaque)
        .ok()
        .map(|m| (m.typ, m.payload.to_vec()))
}

/// Splits a captured byte stream into whole records.
fn split_records(stream: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let mut d = Deframer::new();
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let n = d.push(rest);
        rest = &rest[n..];
        while let Some(r) = d.next_record()? {
            let mut rec = r.header.to_vec();
            rec.extend_from_slice(r.payload);
            out.push(rec);
        }
    }
    Ok(out)
}

/// Copies an SQLite file and its `-wal`/`-shm` side files into `to`, as a
/// stolen disk would hold them; returns the copy's path.
fn copy_with_side_files(db: &Path, to: &Path) -> Result<PathBuf, Error> {
    let name = db
        .file_name()
        .ok_or_else(|| Error::Store("store path has no file name".into()))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut from = db.as_os_str().to_owned();
        from.push(suffix);
        let from = PathBuf::from(from);
        if from.exists() {
            let mut target = name.to_owned();
            target.push(suffix);
            std::fs::copy(&from, to.join(target)).map_err(io)?;
        }
    }
    Ok(to.join(name))
}

fn io(e: std::io::Error) -> Error {
    Error::Store(format!("compromise scenario files: {e}"))
}

/// The key log: ground truth for which epoch each record belongs to.
#[derive(Debug, Default)]
struct Collect(Mutex<Vec<(bool, u64, Vec<u8>)>>);

impl KeyLog for Collect {
    fn log(&self, label: &str, _group_id: &[u8], epoch: u64, secret: &[u8]) {
        let to_server = label == "MLSTLS_CLIENT_TRAFFIC_SECRET";
        if let Ok(mut all) = self.0.lock() {
            all.push((to_server, epoch, secret.to_vec()));
        }
    }
}

impl Collect {
    fn keys(&self) -> Result<BTreeMap<(bool, u64), TrafficSecret>, Error> {
        let all = self
            .0
            .lock()
            .map_err(|_| Error::Internal("key log lock poisoned"))?;
        let mut out = BTreeMap::new();
        for (dir, epoch, secret) in all.iter() {
            // The hash only sets the expected length; the suite's is used.
            let hash = match secret.len() {
                48 => crate::schedule::HashAlgorithm::Sha384,
                64 => crate::schedule::HashAlgorithm::Sha512,
                _ => crate::schedule::HashAlgorithm::Sha256,
            };
            out.insert((*dir, *epoch), TrafficSecret::new(hash, secret.clone())?);
        }
        Ok(out)
    }
}

/// Both directions' bytes, captured while moved.
#[derive(Default)]
struct Wire {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    rounds: u64,
}

impl Wire {
    fn pump(&mut self, c: &mut ConnectionCore, s: &mut ConnectionCore) -> Result<(), Error> {
        for _ in 0..64 {
            let a = take(c)?;
            feed(s, &a)?;
            let b = take(s)?;
            feed(c, &b)?;
            self.to_server.extend_from_slice(&a);
            self.to_client.extend_from_slice(&b);
            if a.is_empty() && b.is_empty() {
                return Ok(());
            }
        }
        Err(Error::Internal(
            "compromise scenario: connections never went quiet",
        ))
    }

    /// Application data both ways (two records each), read and checked.
    fn data(&mut self, c: &mut ConnectionCore, s: &mut ConnectionCore) -> Result<(), Error> {
        self.rounds += 1;
        for part in 0..2 {
            let msg = format!("round {} part {part}", self.rounds);
            write_all(c, msg.as_bytes())?;
            self.pump(c, s)?;
            write_all(s, msg.as_bytes())?;
            self.pump(c, s)?;
            if read_all(s)? != msg.as_bytes() || read_all(c)? != msg.as_bytes() {
                return Err(Error::Internal("compromise scenario: data lost"));
            }
        }
        Ok(())
    }

    /// One key update by the client (`by_client`) or the server, then data.
    fn update(
        &mut self,
        c: &mut ConnectionCore,
        s: &mut ConnectionCore,
        by_client: bool,
    ) -> Result<(), Error> {
        let before = c.epoch();
        if by_client {
            c.request_key_update()?;
        } else {
            s.request_key_update()?;
        }
        self.pump(c, s)?;
        self.data(c, s)?;
        if c.epoch() == before || c.epoch() != s.epoch() {
            return Err(Error::Internal(
                "compromise scenario: the update did not complete",
            ));
        }
        Ok(())
    }
}

fn take(from: &mut ConnectionCore) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut out).map_err(io)?;
    }
    Ok(out)
}

fn feed(to: &mut ConnectionCore, mut bytes: &[u8]) -> Result<(), Error> {
    while !bytes.is_empty() {
        to.read_tls(&mut bytes).map_err(io)?;
        to.process_new_packets()?;
    }
    Ok(())
}

fn write_all(conn: &mut ConnectionCore, mut data: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    while !data.is_empty() {
        let n = conn.writer().write(data).map_err(io)?;
        if n == 0 {
            return Err(Error::Internal("compromise scenario: writer full"));
        }
        data = &data[n..];
    }
    Ok(())
}

fn read_all(conn: &mut ConnectionCore) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(out),
            Err(e) => return Err(io(e)),
        }
    }
}
