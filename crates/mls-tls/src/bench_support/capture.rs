//! In-memory connections with every byte on the wire captured, and the
//! record labelling the compromise scenario and the test vectors share:
//! which key opens which captured record, told by the client's key log.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Mutex;

use crate::conn::ConnectionCore;
use crate::crypto::CipherSuite;
use crate::error::Error;
use crate::keylog::KeyLog;
use crate::record::{ContentType, Deframer, OpaqueRecord, RecordOpener, HEADER_LEN};
use crate::schedule::TrafficSecret;

/// A record opened with a key: its epoch, content type and content.
#[derive(Clone)]
pub(crate) struct Opened {
    pub(crate) epoch: u64,
    pub(crate) typ: ContentType,
    pub(crate) content: Vec<u8>,
    /// Its position in its key's run: the record sequence number.
    pub(crate) sequence: u64,
}

/// Opens what the keys open: every key is tried as a run starting at
/// every record not opened yet, since a key's sequence numbers start at
/// the first record it protects.
pub(crate) fn open_all(
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
                    sequence: (end - start) as u64,
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
pub(crate) fn split_records(stream: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
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

pub(crate) fn io(e: std::io::Error) -> Error {
    Error::Store(format!("compromise scenario files: {e}"))
}

/// The key log: ground truth for which epoch each record belongs to.
#[derive(Debug, Default)]
pub(crate) struct Collect(Mutex<Vec<(bool, u64, Vec<u8>)>>);

impl KeyLog for Collect {
    fn log(&self, label: &str, _group_id: &[u8], epoch: u64, secret: &[u8]) {
        let to_server = label == "MLSTLS_CLIENT_TRAFFIC_SECRET";
        if let Ok(mut all) = self.0.lock() {
            all.push((to_server, epoch, secret.to_vec()));
        }
    }
}

impl Collect {
    pub(crate) fn keys(&self) -> Result<BTreeMap<(bool, u64), TrafficSecret>, Error> {
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
pub(crate) struct Wire {
    pub(crate) to_server: Vec<u8>,
    pub(crate) to_client: Vec<u8>,
    rounds: u64,
}

impl Wire {
    pub(crate) fn pump(
        &mut self,
        c: &mut ConnectionCore,
        s: &mut ConnectionCore,
    ) -> Result<(), Error> {
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
    pub(crate) fn data(
        &mut self,
        c: &mut ConnectionCore,
        s: &mut ConnectionCore,
    ) -> Result<(), Error> {
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
    pub(crate) fn update(
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

pub(crate) fn take(from: &mut ConnectionCore) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut out).map_err(io)?;
    }
    Ok(out)
}

pub(crate) fn feed(to: &mut ConnectionCore, mut bytes: &[u8]) -> Result<(), Error> {
    while !bytes.is_empty() {
        to.read_tls(&mut bytes).map_err(io)?;
        to.process_new_packets()?;
    }
    Ok(())
}

pub(crate) fn write_all(conn: &mut ConnectionCore, mut data: &[u8]) -> Result<(), Error> {
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

pub(crate) fn read_all(conn: &mut ConnectionCore) -> Result<Vec<u8>, Error> {
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
