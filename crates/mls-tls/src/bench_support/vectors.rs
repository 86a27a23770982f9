//! MLS-TLS test vectors (issue 16; format in `docs/INTEROP.md`): one
//! connection through a new session, a key update by each side, a cut, and
//! a resumption with early data, with every record on the wire, every
//! handshake message, the client's KeyPackage private keys (what a passive
//! verifier needs to join from the Welcome, as in RFC 9420's passive-client
//! vectors) and, per epoch, the exported traffic secrets, keys and IVs.
//!
//! The crypto providers draw their randomness from the operating system
//! and cannot be seeded, so a new run gives different (equally valid)
//! vectors: the committed files are checked for consistency by code that
//! shares nothing with this generator (`crates/mlstls-cli/tests/test_vectors.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openmls_traits::types::HpkePrivateKey;
use serde::Deserialize;
use serde_json::{json, Value};

use super::capture::{io, open_all, read_all, split_records, take, Collect, Wire};
use crate::conn::{ClientConfig, ClientConnection, ConnectionCore, ServerConfig, ServerConnection};
use crate::credentials::{AcceptAnyPeer, Identity};
use crate::crypto::CipherSuite;
use crate::error::Error;
use crate::message::{HandshakeJoiner, HandshakeType};
use crate::record::ContentType;
use crate::store::SessionStore;

/// The format tag at the top of every vectors file.
pub const FORMAT: &str = "mls-tls-test-vectors/1";
/// The extra exporter output recorded per epoch the client reaches.
pub const EXPORTER_LABEL: &str = "MLS-TLS test vector";
/// Its context.
pub const EXPORTER_CONTEXT: &[u8] = b"context";
/// Its length in bytes.
pub const EXPORTER_LEN: usize = 32;
/// Early data the resuming client sends before the response.
const EARLY: &[u8] = b"early data, before the ResumptionResponse";

/// The private keys of the client's KeyPackage as OpenMLS stores them (the
/// KeyPackageBundle's JSON; unknown fields are ignored).
#[derive(Deserialize)]
struct BundleKeys {
    private_init_key: HpkePrivateKey,
    private_encryption_key: EncryptionKey,
}

#[derive(Deserialize)]
struct EncryptionKey {
    key: HpkePrivateKey,
}

/// Generates the vectors for `suite` as a JSON document (pretty-printed,
/// with a final newline).
pub fn generate(suite: CipherSuite) -> Result<String, Error> {
    let value = generate_value(suite)?;
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| {
        Error::Internal(if e.is_io() {
            "vectors: JSON"
        } else {
            "vectors: JSON encoding"
        })
    })?;
    text.push('\n');
    Ok(text)
}

fn generate_value(suite: CipherSuite) -> Result<Value, Error> {
    let log = Arc::new(Collect::default());
    let cc = Arc::new(
        ClientConfig::new(
            Identity::generate("client", suite)?,
            Arc::new(AcceptAnyPeer),
            Arc::new(SessionStore::in_memory()?),
        )
        .key_log(log.clone()),
    );
    let sc = Arc::new(ServerConfig::new(
        Identity::generate("server", suite)?,
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory()?),
    ));
    let mut exporters = BTreeMap::new();

    // Connection 0: a new session, an update by each side, then a cut.
    let mut c = ClientConnection::new(cc.clone())?;
    let keys = key_package_keys(&c)?;
    let mut s = ServerConnection::new(sc.clone());
    let mut wire0 = Wire::default();
    wire0.pump(&mut c, &mut s)?;
    exporter(&c, &mut exporters)?;
    wire0.data(&mut c, &mut s)?;
    // The server first: a passive copy of the client can follow its commit.
    wire0.update(&mut c, &mut s, false)?;
    exporter(&c, &mut exporters)?;
    wire0.update(&mut c, &mut s, true)?;
    exporter(&c, &mut exporters)?;
    let id = c
        .session_id()
        .cloned()
        .ok_or(Error::Internal("vectors: no session id"))?;
    drop((c, s));

    // Connection 1: the client resumes with early data; then data and
    // close_notify both ways.
    let mut c = ClientConnection::resume(cc, &id)?;
    let mut s = ServerConnection::new(sc);
    if !c.is_sending_early_data() {
        return Err(Error::Internal(
            "vectors: the resumption allows no early data",
        ));
    }
    super::capture::write_all(&mut c, EARLY)?;
    let mut wire1 = Wire::default();
    wire1.pump(&mut c, &mut s)?;
    let mut early = Vec::new();
    if let Some(mut r) = s.early_data() {
        std::io::Read::read_to_end(&mut r, &mut early).map_err(io)?;
    }
    if early != EARLY || !c.is_early_data_accepted() {
        return Err(Error::Internal("vectors: early data not delivered"));
    }
    exporter(&c, &mut exporters)?;
    wire1.data(&mut c, &mut s)?;
    c.send_close_notify();
    wire1.pump(&mut c, &mut s)?;
    s.send_close_notify();
    wire1.pump(&mut c, &mut s)?;
    if !read_all(&mut c)?.is_empty() || !take(&mut c)?.is_empty() {
        return Err(Error::Internal("vectors: bytes after close_notify"));
    }

    let secrets = log.keys()?;
    let aead = suite.aead();
    let epochs: BTreeSet<u64> = secrets.keys().map(|(_, e)| *e).collect();
    let mut epoch_rows = Vec::new();
    for epoch in epochs {
        let (Some(cs), Some(ss)) = (secrets.get(&(true, epoch)), secrets.get(&(false, epoch)))
        else {
            return Err(Error::Internal(
                "vectors: an epoch with one direction's secret",
            ));
        };
        let (ck, sk) = (cs.derive_keys(aead)?, ss.derive_keys(aead)?);
        let mut row = json!({
            "epoch": epoch,
            "client_traffic_secret": hex::encode(cs.secret_bytes()),
            "server_traffic_secret": hex::encode(ss.secret_bytes()),
            "client_key": hex::encode(ck.key()),
            "client_iv": hex::encode(ck.iv()),
            "server_key": hex::encode(sk.key()),
            "server_iv": hex::encode(sk.iv()),
        });
        if let Some(value) = exporters.get(&epoch) {
            row["exporter"] = json!({
                "label": EXPORTER_LABEL,
                "context": hex::encode(EXPORTER_CONTEXT),
                "length": EXPORTER_LEN,
                "value": hex::encode(value),
            });
        }
        epoch_rows.push(row);
    }
    let connections = vec![
        connection(
            "new session, an update by each side, cut",
            suite,
            &wire0,
            &secrets,
        )?,
        connection(
            "resumption by the client with early data, then close_notify both ways",
            suite,
            &wire1,
            &secrets,
        )?,
    ];
    Ok(json!({
        "format": FORMAT,
        "description": "MLS-TLS (draft-kohbrok-mls-tls, draft-kohbrok-mls-two-party-profile) test vectors; see docs/INTEROP.md",
        "generator": concat!("mlstls vectors ", env!("CARGO_PKG_VERSION")),
        "randomness": "not seeded (the crypto providers draw from the operating system): check the vectors, do not expect to regenerate them byte for byte",
        "cipher_suite": suite.code_point(),
        "cipher_suite_name": suite.name(),
        "group_id": hex::encode(&id.0),
        "client": {
            "init_priv": hex::encode(&*keys.private_init_key),
            "encryption_priv": hex::encode(&*keys.private_encryption_key.key),
        },
        "epochs": epoch_rows,
        "connections": connections,
    }))
}

/// The private keys of the client's KeyPackage, read from its storage
/// before the ServerHello arrives.
fn key_package_keys(c: &ClientConnection) -> Result<BundleKeys, Error> {
    let storage = c.engine.hello_storage().ok_or(Error::Internal(
        "vectors: the client is not awaiting its ServerHello",
    ))?;
    let values = storage
        .storage()
        .values
        .read()
        .map_err(|_| Error::Internal("vectors: storage lock poisoned"))?;
    let mut found = values
        .values()
        .filter_map(|v| serde_json::from_slice::<BundleKeys>(v).ok());
    match (found.next(), found.next()) {
        (Some(keys), None) => Ok(keys),
        _ => Err(Error::Internal(
            "vectors: not exactly one KeyPackage bundle stored",
        )),
    }
}

/// Records the client's extra exporter output for its current epoch.
fn exporter(c: &ConnectionCore, out: &mut BTreeMap<u64, Vec<u8>>) -> Result<(), Error> {
    if let Some(epoch) = c.epoch() {
        let value = c
            .engine
            .export_secret(EXPORTER_LABEL, EXPORTER_CONTEXT, EXPORTER_LEN)?;
        out.insert(epoch, value);
    }
    Ok(())
}

/// One connection's records (both directions, in wire order) and the
/// handshake messages they carry.
fn connection(
    name: &str,
    suite: CipherSuite,
    wire: &Wire,
    secrets: &BTreeMap<(bool, u64), crate::schedule::TrafficSecret>,
) -> Result<Value, Error> {
    let mut records = Vec::new();
    let mut messages = Vec::new();
    for (to_server, stream) in [(true, &wire.to_server), (false, &wire.to_client)] {
        let direction = if to_server {
            "client_to_server"
        } else {
            "server_to_client"
        };
        let recs = split_records(stream)?;
        let keys = secrets
            .iter()
            .filter(|((d, _), _)| *d == to_server)
            .map(|((_, e), s)| (*e, s))
            .collect();
        let opened = open_all(suite, &recs, &keys)?;
        let mut joiner = HandshakeJoiner::new(1 << 24);
        for (i, (rec, o)) in recs.iter().zip(&opened).enumerate() {
            let (typ, content, epoch, sequence) = match o {
                Some(o) => (o.typ, o.content.clone(), Some(o.epoch), Some(o.sequence)),
                None => {
                    let typ = ContentType::from_u8(rec[0])
                        .ok_or(Error::Internal("vectors: a record no key opens"))?;
                    if typ == ContentType::ApplicationData {
                        return Err(Error::Internal("vectors: a record no key opens"));
                    }
                    (typ, rec[5..].to_vec(), None, None)
                }
            };
            records.push(json!({
                "direction": direction,
                "index": i,
                "epoch": epoch,
                "sequence": sequence,
                "content_type": typ.to_u8(),
                "content": hex::encode(&content),
                "record": hex::encode(rec),
            }));
            if typ == ContentType::Handshake {
                joiner.push(&content)?;
                while let Some(m) = joiner.next_message()? {
                    messages.push(json!({
                        "direction": direction,
                        "record_index": i,
                        "record_epoch": epoch,
                        "type": handshake_name(m.typ),
                        "msg_type": m.typ.to_u8(),
                        "message": hex::encode(m.encode()),
                    }));
                }
            }
        }
    }
    Ok(json!({ "name": name, "handshake_messages": messages, "records": records }))
}

fn handshake_name(t: HandshakeType) -> &'static str {
    match t {
        HandshakeType::ClientHello => "client_hello",
        HandshakeType::ServerHello => "server_hello",
        HandshakeType::ConnectionUpdate => "connection_update",
        HandshakeType::EpochKeyUpdate => "epoch_key_update",
        HandshakeType::ResumptionRequest => "resumption_request",
        HandshakeType::ResumptionResponse => "resumption_response",
    }
}
