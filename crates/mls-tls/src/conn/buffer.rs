//! A byte queue for received plaintext: appended at the back, read from the
//! front, compacted only when that is cheap.

#[derive(Debug, Default)]
pub(crate) struct ByteQueue {
    buf: Vec<u8>,
    start: usize,
}

impl ByteQueue {
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Copies up to `out.len()` bytes out; returns how many.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        if self.start == self.buf.len() {
            // Drained: free the memory rather than keep it for an idle peer.
            self.buf = Vec::new();
            self.start = 0;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_across_compaction() {
        let mut q = ByteQueue::default();
        let mut expect = Vec::new();
        let mut got = Vec::new();
        for i in 0..2000u32 {
            let chunk: Vec<u8> = (0..(i % 300)).map(|j| (i + j) as u8).collect();
            q.extend(&chunk);
            expect.extend_from_slice(&chunk);
            let mut out = [0u8; 97];
            let n = q.read(&mut out);
            got.extend_from_slice(&out[..n]);
        }
        let mut rest = vec![0u8; q.len()];
        q.read(&mut rest);
        got.extend_from_slice(&rest);
        assert_eq!(got, expect);
        assert!(q.is_empty());
    }
}
