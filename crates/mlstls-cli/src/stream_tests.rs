//! Two streams over a link that is cut: at every byte of every frame in
//! a deterministic sweep, and at random points (proptest), with local
//! sides that take random amounts. Every run must end with each side's
//! output identical to the other's input and both done: no byte
//! skipped, none delivered twice, no endless loop.
use super::*;
use proptest::prelude::*;

/// One side: its stream, the input still to offer, what it delivered.
struct Side {
    stream: Stream,
    input: Vec<u8>,
    offered: usize,
    output: Vec<u8>,
    shut: bool,
    decoder: Decoder,
}

impl Side {
    fn new(id: u64, input: Vec<u8>, frame: usize, server: bool) -> Self {
        Self {
            stream: Stream::with_frame_size(id, frame, server),
            input,
            offered: 0,
            output: Vec::new(),
            shut: false,
            decoder: Decoder::default(),
        }
    }

    /// Local work: read up to `chunk` input, write up to `chunk` output.
    fn local(&mut self, chunk: usize) {
        let room = self.stream.local_room().min(chunk);
        let n = room.min(self.input.len() - self.offered);
        if n > 0 {
            let (a, b) = (self.offered, self.offered + n);
            let data = self.input[a..b].to_vec();
            self.stream.on_local_data(&data);
            self.offered = b;
        }
        if self.offered == self.input.len() {
            self.stream.on_local_eof();
        }
        let d = self.stream.deliverable();
        let n = d.len().min(chunk);
        self.output.extend_from_slice(&d[..n]);
        self.stream.on_delivered(n);
        if self.stream.wants_local_shutdown() {
            assert!(!self.shut, "shut down twice");
            self.shut = true;
            self.stream.on_local_shutdown();
        }
    }

    fn transmit(&mut self, wire: &mut Vec<u8>) {
        while let Some(f) = self.stream.poll_transmit() {
            f.encode(wire);
        }
    }
}

/// Runs a transfer; `cuts` are the numbers of bytes after which the
/// link is cut (counted over both directions, in order). Returns the
/// number of links used.
fn run(a_in: Vec<u8>, b_in: Vec<u8>, cuts: &[usize], chunk: usize, step: usize) -> usize {
    run_framed(a_in, b_in, cuts, chunk, step, MAX_DATA)
}

fn run_framed(
    a_in: Vec<u8>,
    b_in: Vec<u8>,
    cuts: &[usize],
    chunk: usize,
    step: usize,
    frame: usize,
) -> usize {
    let (a_len, b_len) = (a_in.len(), b_in.len());
    let mut a = Side::new(7, a_in.clone(), frame, false);
    let mut b = Side::new(7, b_in.clone(), frame, true);
    let mut cuts = cuts.to_vec();
    cuts.sort_unstable();
    cuts.reverse();
    let mut moved = 0usize;
    let mut links = 0;
    'link: for _ in 0..cuts.len() + 2 {
        links += 1;
        let (mut ab, mut ba) = (Vec::new(), Vec::new());
        a.stream.on_connect().encode(&mut ab);
        b.stream.on_connect().encode(&mut ba);
        a.decoder = Decoder::default();
        b.decoder = Decoder::default();
        for _round in 0..100_000 {
            a.local(chunk);
            b.local(chunk);
            a.transmit(&mut ab);
            b.transmit(&mut ba);
            if a.stream.is_done() && b.stream.is_done() && ab.is_empty() && ba.is_empty() {
                break 'link;
            }
            // Move up to `step` bytes each way, cutting where told.
            let mut cut_now = false;
            for (wire, to) in [(&mut ab, &mut b), (&mut ba, &mut a)] {
                let mut n = wire.len().min(step);
                if let Some(&c) = cuts.last() {
                    if c < moved + n {
                        n = c - moved;
                        cut_now = true;
                    }
                }
                to.decoder.push(&wire[..n]);
                wire.drain(..n);
                moved += n;
                while let Some(f) = to.decoder.next_frame().unwrap() {
                    to.stream.on_frame(f).unwrap();
                }
                if cut_now {
                    break;
                }
            }
            if cut_now {
                while cuts.last().is_some_and(|&c| c <= moved) {
                    cuts.pop();
                }
                a.stream.on_disconnect();
                b.stream.on_disconnect();
                continue 'link;
            }
        }
        panic!("no progress on a link");
    }
    assert!(a.stream.is_done() && b.stream.is_done(), "not done");
    assert_eq!(a.output.len(), b_len);
    assert_eq!(b.output.len(), a_len);
    assert!(a.output == b_in, "a's output differs from b's input");
    assert!(b.output == a_in, "b's output differs from a's input");
    links
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed ^ (i >> 8) as u8)
        })
        .collect()
}

#[test]
fn uncut_transfer_both_ways() {
    assert_eq!(
        run(bytes(300_000, 1), bytes(200_000, 2), &[], 40_000, 9_000),
        1
    );
}

/// A cut at every byte position of the whole exchange, for a transfer
/// of several frames each way: every frame is cut at every point.
#[test]
fn a_cut_at_every_byte_of_every_frame() {
    let (a_in, b_in) = (bytes(3 * 100 + 17, 3), bytes(2 * 100 + 5, 4));
    // Total bytes on the wire without cuts, generously bounded.
    let total = 2 * (a_in.len() + b_in.len()) + 400;
    for cut in 0..total {
        for (chunk, step) in [(1_000, 1_000), (37, 11), (7, 300)] {
            run_framed(a_in.clone(), b_in.clone(), &[cut], chunk, step, 100);
        }
    }
}

/// Two cuts close together, so that a link is cut while the previous
/// one's resend is in flight.
#[test]
fn cuts_during_the_resend() {
    let (a_in, b_in) = (bytes(2 * 100 + 3, 5), bytes(100 + 9, 6));
    for first in 0..a_in.len() + b_in.len() + 200 {
        for gap in [1, 13, 30, 60, 200] {
            run_framed(
                a_in.clone(),
                b_in.clone(),
                &[first, first + gap],
                50,
                40,
                100,
            );
        }
    }
}

#[test]
fn empty_streams_finish_even_when_cut() {
    for cut in 0..120 {
        run(Vec::new(), Vec::new(), &[cut], 10, 7);
        run(bytes(1, 0), Vec::new(), &[cut], 10, 7);
    }
}

/// The 64 KiB loss of issue 13: more than a window in flight, cut at
/// 64 KiB boundaries of the byte count.
#[test]
fn cuts_at_64k_boundaries_lose_nothing() {
    let a_in = bytes(4 * 1024 * 1024, 9);
    let cuts: Vec<usize> = (1..6)
        .map(|i| i * 2 * 1024 * 1024 / 3 + i * 65_536)
        .collect();
    run(a_in, bytes(70_000, 1), &cuts, 65_536, 65_536);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_cuts_random_sizes(
        a_len in 0usize..5_000,
        b_len in 0usize..5_000,
        cuts in proptest::collection::vec(0usize..12_000, 0..8),
        chunk in 1usize..3_000,
        step in 1usize..3_000,
        frame in 1usize..2_000,
    ) {
        run_framed(bytes(a_len, 11), bytes(b_len, 12), &cuts, chunk, step, frame);
    }
}

#[test]
fn the_peer_cannot_acknowledge_what_was_not_sent() {
    let mut s = Stream::new(1);
    s.on_connect();
    s.on_local_data(b"abc");
    let e = s.on_frame(Frame::Hello {
        id: 1,
        from_server: true,
        resuming: false,
        delivered: 4,
        fin_delivered: false,
    });
    assert!(matches!(e, Err(StreamError::Violation(_))));
    let mut s = Stream::new(1);
    s.on_connect();
    let e = s.on_frame(Frame::Hello {
        id: 2,
        from_server: true,
        resuming: false,
        delivered: 0,
        fin_delivered: false,
    });
    assert!(matches!(e, Err(StreamError::Violation(_))), "{e:?}");
    let mut s = Stream::new(1);
    s.on_connect();
    let e = s.on_frame(Frame::Data {
        offset: 0,
        bytes: vec![1],
    });
    assert!(
        matches!(e, Err(StreamError::Violation(_))),
        "data before HELLO"
    );
}

#[test]
fn a_gap_is_a_violation_not_a_skip() {
    let mut s = Stream::new(1);
    s.on_connect();
    s.on_frame(Frame::Hello {
        id: 1,
        from_server: true,
        resuming: false,
        delivered: 0,
        fin_delivered: false,
    })
    .unwrap();
    let e = s.on_frame(Frame::Data {
        offset: 5,
        bytes: vec![1],
    });
    assert!(matches!(e, Err(StreamError::Violation(_))));
}

/// A restarted server forgets the stream: the resuming client is told,
/// it does not start over.
#[test]
fn a_restarted_server_resets_a_resuming_stream() {
    assert_eq!(admit(false, false), Admission::Create);
    assert_eq!(admit(false, true), Admission::Attach);
    assert_eq!(admit(true, true), Admission::Attach);
    assert_eq!(admit(true, false), Admission::Unknown);
    // A client that got the server's HELLO says it resumes.
    let mut c = Stream::new(3);
    c.on_connect();
    c.on_frame(Frame::Hello {
        id: 3,
        from_server: true,
        resuming: false,
        delivered: 0,
        fin_delivered: false,
    })
    .unwrap();
    c.on_disconnect();
    assert!(matches!(
        c.on_connect(),
        Frame::Hello { resuming: true, .. }
    ));
    let e = c.on_frame(Frame::Reset {
        code: ResetCode::UnknownStream,
        reason: String::new(),
    });
    assert!(matches!(
        e,
        Err(StreamError::Reset {
            code: ResetCode::UnknownStream,
            ..
        })
    ));
}

/// A plain MLS-TLS echo returns the client's HELLO: not taken for the
/// server's.
#[test]
fn an_echoed_hello_is_recognised() {
    let mut c = Stream::new(4);
    let hello = c.on_connect();
    assert_eq!(c.on_frame(hello), Err(StreamError::OwnHello));
    let mut wire = Vec::new();
    Stream::new_server(4).on_connect().encode(&mut wire);
    assert!(wire.starts_with(&hello_prefix()));
}

#[test]
fn plain_bytes_are_recognised() {
    let mut d = Decoder::default();
    d.push(b"hi\n");
    assert_eq!(d.next_frame(), Err(StreamError::NotAStream));
    let mut d = Decoder::default();
    d.push(&[HELLO, b'm', b'x']);
    assert_eq!(d.next_frame(), Err(StreamError::NotAStream));
    let mut d = Decoder::default();
    d.push(&[HELLO, b'm']);
    assert_eq!(d.next_frame(), Ok(None));
}

#[test]
fn frames_round_trip_when_fed_byte_by_byte() {
    let frames = vec![
        Frame::Hello {
            id: 9,
            from_server: true,
            resuming: true,
            delivered: 77,
            fin_delivered: true,
        },
        Frame::Data {
            offset: 5,
            bytes: vec![1, 2, 3],
        },
        Frame::Ack {
            delivered: 8,
            fin_delivered: false,
        },
        Frame::Fin { end: 12 },
        Frame::Reset {
            code: ResetCode::ForwardUnreachable,
            reason: "connection refused".into(),
        },
        Frame::Ping,
    ];
    let mut wire = Vec::new();
    for f in &frames {
        f.encode(&mut wire);
    }
    let mut d = Decoder::default();
    let mut got = Vec::new();
    for b in wire {
        d.push(&[b]);
        while let Some(f) = d.next_frame().unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
}
