//! Cutting a byte stream into records.

use std::io;

use super::{HEADER_LEN, MAX_CIPHERTEXT_LEN, MAX_FRAGMENT_LEN, MAX_RECORD_LEN, RECORD_VERSION};
use crate::error::{Error, InvalidMessage, PeerMisbehaved};

/// Buffer space: room for two maximal records, so one read can take in more
/// than one record while a partial record waits for its tail.
const BUFFER_LEN: usize = 2 * MAX_RECORD_LEN;

/// One record as it came off the wire, not yet authenticated.
///
/// The payload borrows the deframer's buffer mutably so that it can be
/// decrypted in place.
#[derive(Debug)]
pub struct OpaqueRecord<'a> {
    /// The 5-byte header exactly as received (the AEAD's additional data).
    pub header: [u8; HEADER_LEN],
    /// The payload: plaintext content or ciphertext and tag.
    pub payload: &'a mut [u8],
}

impl OpaqueRecord<'_> {
    /// The outer content type byte.
    pub fn outer_type(&self) -> u8 {
        self.header[0]
    }
}

/// An incremental record deframer.
///
/// Bytes go in through [`Deframer::read_from`] or [`Deframer::push`] in any
/// split; complete records come out of [`Deframer::next_record`]. A header is
/// checked as soon as its five bytes are present, so a bad length or version
/// is rejected before more than one maximal record is buffered.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Start of the bytes not yet returned as records.
    start: usize,
    /// End of the received bytes.
    end: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deframer {
    /// An empty deframer. Its buffer is allocated on first use.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes received but not yet returned as records.
    pub fn buffered_len(&self) -> usize {
        self.end - self.start
    }

    /// Whether a partial record is waiting for more bytes.
    pub fn has_partial_record(&self) -> bool {
        self.buffered_len() > 0
    }

    /// Reads once from `rd` into free buffer space and returns how many bytes
    /// were read (0 means end of stream). Fails with `WouldBlock`-free
    /// `io::ErrorKind::Other` if the buffer is full of complete records that
    /// the caller has not taken yet.
    pub fn read_from(&mut self, rd: &mut dyn io::Read) -> io::Result<usize> {
        let space = self.free_space();
        if space.is_empty() {
            return Err(io::Error::other(
                "record buffer full: process the buffered records before reading more",
            ));
        }
        match rd.read(space) {
            Ok(n) => {
                self.end += n.min(self.buf.len() - self.end);
                if n == 0 {
                    self.release_if_empty();
                }
                Ok(n)
            }
            Err(e) => {
                // Mostly `WouldBlock` on an idle connection: keep no buffer
                // for it.
                self.release_if_empty();
                Err(e)
            }
        }
    }

    /// Frees the buffer if it holds no bytes, so an idle connection keeps no
    /// receive buffer (it is allocated again by the next read). Reading a
    /// whole buffer's worth costs far more than the allocation.
    pub fn release_if_empty(&mut self) {
        if self.buffered_len() == 0 {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops every buffered byte, complete records and partial one alike:
    /// after the peer's `close_notify` nothing more of that direction is
    /// read (SPEC 9).
    pub fn discard(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.end = 0;
    }

    /// Copies as much of `data` as fits and returns how many bytes were
    /// taken; the rest must be pushed again after taking records out.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let space = self.free_space();
        let n = space.len().min(data.len());
        space[..n].copy_from_slice(&data[..n]);
        self.end += n;
        n
    }

    /// The next complete record, `Ok(None)` if more bytes are needed, or the
    /// error for a header that no valid record can have.
    pub fn next_record(&mut self) -> Result<Option<OpaqueRecord<'_>>, Error> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let header: [u8; HEADER_LEN] = [avail[0], avail[1], avail[2], avail[3], avail[4]];
        let len = check_header(&header)?;
        if avail.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload_start = self.start + HEADER_LEN;
        self.start = payload_start + len;
        if self.start == self.end {
            // Everything taken: the next read starts at the front again. The
            // returned payload stays valid, it is not overwritten until then.
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(OpaqueRecord {
            header,
            payload: &mut self.buf[payload_start..payload_start + len],
        }))
    }

    /// Free space at the end of the buffer, compacting first when the record
    /// being received would not otherwise fit.
    fn free_space(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; BUFFER_LEN];
        }
        let tail_full = self.end == self.buf.len();
        if self.start > 0 && (tail_full || self.buf.len() - self.start < MAX_RECORD_LEN) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }
}

/// Validates a header and returns its payload length.
fn check_header(header: &[u8; HEADER_LEN]) -> Result<usize, Error> {
    let typ = header[0];
    let max = match typ {
        21 | 22 => MAX_FRAGMENT_LEN,
        23 => MAX_CIPHERTEXT_LEN,
        t => return Err(PeerMisbehaved::UnknownContentType(t).into()),
    };
    let version = u16::from_be_bytes([header[1], header[2]]);
    if version != RECORD_VERSION {
        return Err(InvalidMessage::BadRecordVersion(version).into());
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > max {
        return Err(InvalidMessage::RecordOverflow { len, max }.into());
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertDescription;

    fn first_error(bytes: &[u8]) -> Error {
        let mut d = Deframer::new();
        d.push(bytes);
        d.next_record().unwrap_err()
    }

    #[test]
    fn bad_headers_get_their_alerts() {
        use AlertDescription as A;
        let cases: [(&[u8], A); 5] = [
            (&[20, 3, 3, 0, 1], A::UnexpectedMessage),
            (&[99, 3, 3, 0, 1], A::UnexpectedMessage),
            (&[22, 3, 1, 0, 1], A::DecodeError),
            (&[22, 3, 3, 0x40, 0x01], A::RecordOverflow),
            (&[23, 3, 3, 0x41, 0x01], A::RecordOverflow),
        ];
        for (bytes, alert) in cases {
            assert_eq!(first_error(bytes).alert(), Some(alert), "{bytes:?}");
        }
    }

    #[test]
    fn largest_allowed_lengths_are_accepted() {
        let mut d = Deframer::new();
        let mut rec = vec![23, 3, 3, 0x41, 0x00];
        rec.resize(HEADER_LEN + MAX_CIPHERTEXT_LEN, 7);
        assert_eq!(d.push(&rec), rec.len());
        let r = d.next_record().unwrap().unwrap();
        assert_eq!(r.payload.len(), MAX_CIPHERTEXT_LEN);
    }

    #[test]
    fn header_rejected_before_payload_arrives() {
        let mut d = Deframer::new();
        d.push(&[22, 3, 3, 0xff, 0xff]);
        assert!(d.next_record().is_err());
    }

    #[test]
    fn partial_record_waits() {
        let mut d = Deframer::new();
        d.push(&[22, 3, 3, 0, 3, 1, 2]);
        assert!(d.next_record().unwrap().is_none());
        d.push(&[3]);
        assert_eq!(d.next_record().unwrap().unwrap().payload, &[1, 2, 3]);
        assert!(d.next_record().unwrap().is_none());
        assert_eq!(d.buffered_len(), 0);
    }

    #[test]
    fn empty_buffer_is_released_and_a_partial_record_kept() {
        let mut d = Deframer::new();
        d.push(&[22, 3, 3, 0, 2, 1]);
        d.release_if_empty();
        assert_eq!(d.buffered_len(), 1 + HEADER_LEN, "partial record kept");
        d.push(&[2]);
        assert_eq!(d.next_record().unwrap().unwrap().payload, &[1, 2]);
        d.release_if_empty();
        assert_eq!(d.buf.capacity(), 0);
        d.push(&[22, 3, 3, 0, 1, 9]);
        assert_eq!(d.next_record().unwrap().unwrap().payload, &[9]);
    }

    /// A read that brings nothing (would block, end of stream, an error)
    /// leaves no buffer behind: an idle connection whose last operation
    /// was a write polls the transport too (issue 14: 33 KiB per idle
    /// connection held this way).
    #[test]
    fn a_read_that_brings_nothing_keeps_no_buffer() {
        struct Never(io::ErrorKind);
        impl io::Read for Never {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(self.0.into())
            }
        }
        for kind in [io::ErrorKind::WouldBlock, io::ErrorKind::ConnectionReset] {
            let mut d = Deframer::new();
            assert!(d.read_from(&mut Never(kind)).is_err());
            assert_eq!(d.buf.capacity(), 0, "{kind:?}");
        }
        let mut d = Deframer::new();
        assert_eq!(d.read_from(&mut &[][..]).unwrap(), 0);
        assert_eq!(d.buf.capacity(), 0, "end of stream");
        // A partial record is kept across an empty read.
        let mut d = Deframer::new();
        d.read_from(&mut &[22u8, 3, 3, 0, 2, 1][..]).unwrap();
        assert!(d.read_from(&mut Never(io::ErrorKind::WouldBlock)).is_err());
        assert_eq!(d.buffered_len(), 1 + HEADER_LEN);
    }

    #[test]
    fn full_buffer_refuses_reads_until_drained() {
        let mut d = Deframer::new();
        let mut rec = vec![23, 3, 3, 0x41, 0x00];
        rec.resize(MAX_RECORD_LEN, 0);
        assert_eq!(d.push(&rec), rec.len());
        assert_eq!(d.push(&rec), rec.len());
        assert_eq!(d.push(&rec), 0);
        assert!(d.read_from(&mut &[1u8][..]).is_err());
        d.next_record().unwrap().unwrap();
        assert_eq!(d.read_from(&mut &rec[..]).unwrap(), MAX_RECORD_LEN);
    }
}
