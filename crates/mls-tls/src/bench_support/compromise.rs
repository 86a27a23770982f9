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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{MlsGroup, MlsMessageIn, ProcessedMessageContent, ProtocolMessage};

use super::capture::{io, open_all, split_records, Collect, Wire};
use crate::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use crate::credentials::{AcceptAnyPeer, Identity};
use crate::crypto::{CipherSuite, CryptoBackend};
use crate::error::Error;
use crate::message::{HandshakeJoiner, HandshakeType};
use crate::profile::provider::MlsProvider;
use crate::record::{ContentType, HEADER_LEN};
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
