//! Record layer behaviour (SPEC section 2 and the candidate key of
//! section 7): round trips, tampering, malformed records, sequence numbers,
//! candidate keys and deframing in every split.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use mls_tls::alert::AlertDescription;
use mls_tls::error::{Error, PeerMisbehaved};
use mls_tls::record::{
    write_plaintext, ContentType, Deframer, RecordOpener, RecordSealer, HEADER_LEN,
    MAX_FRAGMENT_LEN,
};
use mls_tls::schedule::{AeadAlgorithm, TrafficKeys};
use proptest::prelude::*;

fn keys(aead: AeadAlgorithm, seed: u8) -> TrafficKeys {
    TrafficKeys::from_raw(aead, &vec![seed; aead.key_len()], &[seed ^ 0x5a; 12]).unwrap()
}

fn pair(aead: AeadAlgorithm, seed: u8) -> (RecordSealer, RecordOpener) {
    let mut s = RecordSealer::new();
    s.install(keys(aead, seed)).unwrap();
    let mut o = RecordOpener::new();
    o.install(keys(aead, seed)).unwrap();
    (s, o)
}

/// Deframes and opens every record in `wire`, returning the messages, or
/// the first error. Incomplete trailing bytes are an error too.
fn open_all(opener: &mut RecordOpener, wire: &[u8]) -> Result<Vec<(ContentType, Vec<u8>)>, Error> {
    let mut d = Deframer::new();
    let mut out = Vec::new();
    let mut rest = wire;
    loop {
        let n = d.push(rest);
        rest = &rest[n..];
        while let Some(rec) = d.next_record()? {
            let m = opener.open(rec)?;
            out.push((m.typ, m.payload.to_vec()));
        }
        if rest.is_empty() {
            break;
        }
    }
    if d.has_partial_record() {
        return Err(Error::ApiMisuse("truncated stream"));
    }
    Ok(out)
}

fn alert_of(r: Result<Vec<(ContentType, Vec<u8>)>, Error>) -> Option<AlertDescription> {
    r.expect_err("must be rejected").alert()
}

/// Encrypts an arbitrary TLSInnerPlaintext with AES-128-GCM keys of `seed`,
/// to build records the sealer refuses to make.
fn raw_record(seed: u8, seq: u64, inner: &[u8]) -> Vec<u8> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[seed; 16]).unwrap());
    let mut nonce = [seed ^ 0x5a; 12];
    for (b, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    let len = (inner.len() + 16) as u16;
    let header = [23, 3, 3, (len >> 8) as u8, len as u8];
    let mut body = inner.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(header),
        &mut body,
    )
    .unwrap();
    let mut rec = header.to_vec();
    rec.extend_from_slice(&body);
    rec
}

fn aead_strategy() -> impl Strategy<Value = AeadAlgorithm> {
    prop::sample::select(AeadAlgorithm::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trip_every_aead_size_and_padding(
        aead in aead_strategy(),
        size in 0..=MAX_FRAGMENT_LEN,
        pad_frac in 0.0f64..1.0,
        typ_pick in 0u8..3,
        fill in any::<u8>(),
    ) {
        let typ = match (typ_pick, size) {
            (_, 0) | (0, _) => ContentType::ApplicationData,
            (1, _) => ContentType::Handshake,
            _ => ContentType::Alert,
        };
        let padding = ((MAX_FRAGMENT_LEN - size) as f64 * pad_frac) as usize;
        let (mut s, mut o) = pair(aead, 9);
        let content: Vec<u8> = (0..size).map(|i| fill.wrapping_add(i as u8)).collect();
        let mut wire = vec![0; HEADER_LEN];
        wire.extend_from_slice(&content);
        s.seal_in_place_padded(typ, &mut wire, 0, padding).unwrap();
        prop_assert_eq!(wire.len(), HEADER_LEN + size + 1 + padding + 16);
        prop_assert_eq!(open_all(&mut o, &wire).unwrap(), vec![(typ, content)]);
    }

    #[test]
    fn flipping_any_payload_byte_is_bad_record_mac(
        aead in aead_strategy(),
        size in 0usize..2000,
        pos_frac in 0.0f64..1.0,
        flip in 1u8..=255,
    ) {
        let (mut s, mut o) = pair(aead, 3);
        let mut wire = Vec::new();
        s.seal(ContentType::ApplicationData, &vec![7; size], &mut wire).unwrap();
        let payload_len = wire.len() - HEADER_LEN;
        let pos = HEADER_LEN + ((payload_len as f64 * pos_frac) as usize).min(payload_len - 1);
        wire[pos] ^= flip;
        prop_assert_eq!(alert_of(open_all(&mut o, &wire)), Some(AlertDescription::BadRecordMac));
    }

    #[test]
    fn deframer_yields_the_same_records_for_every_split(
        sizes in prop::collection::vec(0usize..3000, 1..8),
        cuts in prop::collection::vec(0.0f64..1.0, 0..12),
    ) {
        let (mut s, _) = pair(AeadAlgorithm::Aes128Gcm, 1);
        let mut wire = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            if i % 3 == 1 && *size > 0 {
                write_plaintext(ContentType::Handshake, &vec![i as u8; *size], &mut wire).unwrap();
            } else {
                s.seal(ContentType::ApplicationData, &vec![i as u8; *size], &mut wire).unwrap();
            }
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| (c * wire.len() as f64) as usize).collect();
        points.push(0);
        points.push(wire.len());
        points.sort();
        let whole = deframe_raw(&[&wire[..]]);
        let pieces: Vec<&[u8]> = points.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
        prop_assert_eq!(&deframe_raw(&pieces), &whole);
        prop_assert_eq!(whole.iter().map(Vec::len).sum::<usize>(), wire.len());
        prop_assert!(whole.len() >= sizes.len());
    }
}

/// Deframes `pieces` fed one after another, returning each record's header
/// and payload bytes concatenated.
fn deframe_raw(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut d = Deframer::new();
    let mut out = Vec::new();
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            let n = d.push(rest);
            rest = &rest[n..];
            while let Some(r) = d.next_record().unwrap() {
                let mut v = r.header.to_vec();
                v.extend_from_slice(r.payload);
                out.push(v);
            }
        }
    }
    assert!(!d.has_partial_record());
    out
}

#[test]
fn deframer_one_byte_at_a_time_matches_whole() {
    let (mut s, _) = pair(AeadAlgorithm::ChaCha20Poly1305, 4);
    let mut wire = Vec::new();
    write_plaintext(ContentType::Handshake, &[1; 40_000], &mut wire).unwrap();
    for size in [0, 1, 100, MAX_FRAGMENT_LEN] {
        s.seal(ContentType::ApplicationData, &vec![2; size], &mut wire)
            .unwrap();
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    let records = deframe_raw(&bytes);
    assert_eq!(records, deframe_raw(&[&wire[..]]));
    assert_eq!(records.len(), 3 + 4);
    assert_eq!(records.iter().map(Vec::len).sum::<usize>(), wire.len());
}

#[test]
fn many_records_in_one_read() {
    let (mut s, mut o) = pair(AeadAlgorithm::Aes256Gcm, 5);
    let mut wire = Vec::new();
    for i in 0..500u32 {
        s.seal(ContentType::ApplicationData, &i.to_be_bytes(), &mut wire)
            .unwrap();
    }
    let mut d = Deframer::new();
    let mut reader = &wire[..];
    let mut got = Vec::new();
    loop {
        let n = d.read_from(&mut reader).unwrap();
        while let Some(r) = d.next_record().unwrap() {
            got.push(o.open(r).unwrap().payload.to_vec());
        }
        if n == 0 {
            break;
        }
    }
    assert_eq!(got.len(), 500);
    assert_eq!(got[499], 499u32.to_be_bytes());
}

#[test]
fn large_content_is_split_into_full_records() {
    let (mut s, mut o) = pair(AeadAlgorithm::Aes128Gcm, 6);
    let mut wire = Vec::new();
    s.seal(
        ContentType::ApplicationData,
        &vec![3; 3 * MAX_FRAGMENT_LEN + 1],
        &mut wire,
    )
    .unwrap();
    let msgs = open_all(&mut o, &wire).unwrap();
    let sizes: Vec<usize> = msgs.iter().map(|m| m.1.len()).collect();
    assert_eq!(
        sizes,
        [MAX_FRAGMENT_LEN, MAX_FRAGMENT_LEN, MAX_FRAGMENT_LEN, 1]
    );
}

#[test]
fn malformed_records_get_their_spec_alerts() {
    use AlertDescription as A;
    let fresh = || {
        let mut o = RecordOpener::new();
        o.install(keys(AeadAlgorithm::Aes128Gcm, 8)).unwrap();
        o
    };
    let mut oversized = vec![23, 3, 3, 0x41, 0x01];
    oversized.resize(HEADER_LEN + 0x4101, 0);
    let mut oversized_plain = vec![22, 3, 3, 0x40, 0x01];
    oversized_plain.resize(HEADER_LEN + 0x4001, 1);
    let good = raw_record(8, 0, b"hello\x17");
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 1);
    truncated[4] -= 1; // a consistent header for a record missing its last byte
    let mut wrong_version = good.clone();
    wrong_version[2] = 1;
    let mut too_short = vec![23, 3, 3, 0, 16];
    too_short.extend_from_slice(&[0; 16]);

    let cases: Vec<(&str, Vec<u8>, A)> = vec![
        ("oversized ciphertext", oversized, A::RecordOverflow),
        ("oversized plaintext", oversized_plain, A::RecordOverflow),
        ("truncated", truncated, A::BadRecordMac),
        ("too short for a tag", too_short, A::BadRecordMac),
        ("wrong version", wrong_version, A::DecodeError),
        (
            "unknown inner type",
            raw_record(8, 0, b"hello\x18"),
            A::UnexpectedMessage,
        ),
        (
            "inner change_cipher_spec",
            raw_record(8, 0, b"\x01\x14"),
            A::UnexpectedMessage,
        ),
        (
            "all-zero inner plaintext",
            raw_record(8, 0, &[0; 10]),
            A::UnexpectedMessage,
        ),
        (
            "empty handshake",
            raw_record(8, 0, b"\x16\0\0"),
            A::UnexpectedMessage,
        ),
        (
            "empty alert",
            raw_record(8, 0, b"\x15"),
            A::UnexpectedMessage,
        ),
        (
            "empty plaintext handshake",
            vec![22, 3, 3, 0, 0],
            A::UnexpectedMessage,
        ),
        (
            "empty plaintext alert",
            vec![21, 3, 3, 0, 0],
            A::UnexpectedMessage,
        ),
        (
            "change_cipher_spec record",
            vec![20, 3, 3, 0, 1, 1],
            A::UnexpectedMessage,
        ),
        (
            "inner plaintext over 2^14+1",
            raw_record(8, 0, &{
                let mut v = vec![1u8; MAX_FRAGMENT_LEN + 1];
                v.push(23);
                v
            }),
            A::RecordOverflow,
        ),
    ];
    for (name, wire, alert) in cases {
        assert_eq!(
            alert_of(open_all(&mut fresh(), &wire)),
            Some(alert),
            "{name}"
        );
    }
    // Sanity: the crafting helper makes records that do open.
    assert_eq!(
        open_all(&mut fresh(), &good).unwrap(),
        vec![(ContentType::ApplicationData, b"hello".to_vec())]
    );
    // Empty application data is allowed, and any amount of padding.
    let padded = raw_record(8, 0, &[23, 0, 0, 0, 0, 0]);
    assert_eq!(
        open_all(&mut fresh(), &padded).unwrap(),
        vec![(ContentType::ApplicationData, vec![])]
    );
}

#[test]
fn plaintext_after_first_ciphertext_is_unexpected() {
    let (mut s, mut o) = pair(AeadAlgorithm::Aes128Gcm, 2);
    let mut wire = Vec::new();
    write_plaintext(ContentType::Handshake, b"first flight", &mut wire).unwrap();
    s.seal(ContentType::ApplicationData, b"data", &mut wire)
        .unwrap();
    assert_eq!(open_all(&mut o, &wire).unwrap().len(), 2);
    assert!(o.is_encrypted());
    let mut late = Vec::new();
    write_plaintext(ContentType::Alert, &[2, 10], &mut late).unwrap();
    let err = open_all(&mut o, &late).unwrap_err();
    assert_eq!(err, PeerMisbehaved::PlaintextAfterEncryption.into());
    assert_eq!(err.alert(), Some(AlertDescription::UnexpectedMessage));
}

#[test]
fn ciphertext_before_keys_is_unexpected() {
    let (mut s, _) = pair(AeadAlgorithm::Aes128Gcm, 2);
    let mut wire = Vec::new();
    s.seal(ContentType::ApplicationData, b"early", &mut wire)
        .unwrap();
    let err = open_all(&mut RecordOpener::new(), &wire).unwrap_err();
    assert_eq!(err, PeerMisbehaved::EncryptedBeforeKeys.into());
}

#[test]
fn flipping_header_bytes_never_yields_a_message() {
    let (mut s, mut o) = pair(AeadAlgorithm::Aes128Gcm, 2);
    let mut first = Vec::new();
    s.seal(ContentType::ApplicationData, b"x", &mut first)
        .unwrap();
    open_all(&mut o, &first).unwrap();
    let mut wire = Vec::new();
    s.seal(ContentType::ApplicationData, &[9; 100], &mut wire)
        .unwrap();
    for pos in 0..HEADER_LEN {
        for flip in [1u8, 0x80, 0xff] {
            let mut bad = wire.clone();
            bad[pos] ^= flip;
            let mut o2 = RecordOpener::new();
            o2.install(keys(AeadAlgorithm::Aes128Gcm, 2)).unwrap();
            open_all(&mut o2, &first).unwrap();
            let r = open_all(&mut o2, &bad);
            assert!(r.is_err(), "header byte {pos} ^ {flip:#x} accepted");
        }
    }
}

#[test]
fn sequence_numbers_restart_when_keys_are_installed() {
    for aead in AeadAlgorithm::ALL {
        let (mut s, mut o) = pair(aead, 1);
        let mut wire = Vec::new();
        for _ in 0..3 {
            s.seal(ContentType::ApplicationData, b"a", &mut wire)
                .unwrap();
        }
        open_all(&mut o, &wire).unwrap();
        assert_eq!((s.sequence(), o.sequence()), (Some(3), Some(3)));
        s.install(keys(aead, 2)).unwrap();
        o.install(keys(aead, 2)).unwrap();
        assert_eq!((s.sequence(), o.sequence()), (Some(0), Some(0)));
        let mut next = Vec::new();
        s.seal(ContentType::ApplicationData, b"b", &mut next)
            .unwrap();
        assert_eq!(open_all(&mut o, &next).unwrap()[0].1, b"b");
        // A receiver that did not restart its sequence number cannot open it.
        let mut stale = RecordOpener::new();
        stale.install(keys(aead, 2)).unwrap();
        open_all(&mut stale, &raw_seq_filler(aead, 2)).unwrap();
        assert_eq!(
            alert_of(open_all(&mut stale, &next)),
            Some(AlertDescription::BadRecordMac)
        );
    }
}

/// One record under keys `seed` at sequence 0, to advance a receiver.
fn raw_seq_filler(aead: AeadAlgorithm, seed: u8) -> Vec<u8> {
    let (mut s, _) = pair(aead, seed);
    let mut w = Vec::new();
    s.seal(ContentType::ApplicationData, b"filler", &mut w)
        .unwrap();
    w
}

#[test]
fn candidate_key_is_tried_once_and_promoted() {
    let aead = AeadAlgorithm::Aes128Gcm;
    let (mut old_sender, mut o) = pair(aead, 1);
    let mut new_sender = RecordSealer::new();
    new_sender.install(keys(aead, 2)).unwrap();

    let mut wire = Vec::new();
    old_sender
        .seal(ContentType::ApplicationData, b"old 0", &mut wire)
        .unwrap();
    open_all(&mut o, &wire).unwrap();
    o.set_candidate(keys(aead, 2)).unwrap();
    assert!(o.has_candidate());

    // Records under the old key still open; the candidate waits.
    let mut wire = Vec::new();
    old_sender
        .seal(ContentType::ApplicationData, b"old 1", &mut wire)
        .unwrap();
    assert_eq!(open_all(&mut o, &wire).unwrap()[0].1, b"old 1");
    assert!(o.has_candidate());
    assert_eq!(o.sequence(), Some(2));

    // The first record under the new key promotes the candidate (at seq 0).
    let mut wire = Vec::new();
    new_sender
        .seal(ContentType::ApplicationData, b"new 0", &mut wire)
        .unwrap();
    new_sender
        .seal(ContentType::ApplicationData, b"new 1", &mut wire)
        .unwrap();
    let got = open_all(&mut o, &wire).unwrap();
    assert_eq!(got[0].1, b"new 0");
    assert_eq!(got[1].1, b"new 1");
    assert!(!o.has_candidate());
    assert_eq!(o.sequence(), Some(2));

    // The old key is gone.
    let mut wire = Vec::new();
    old_sender
        .seal(ContentType::ApplicationData, b"old 2", &mut wire)
        .unwrap();
    assert_eq!(
        alert_of(open_all(&mut o, &wire)),
        Some(AlertDescription::BadRecordMac)
    );
}

#[test]
fn candidate_failure_is_bad_record_mac_and_uses_up_the_trial() {
    let aead = AeadAlgorithm::ChaCha20Poly1305;
    let (_, mut o) = pair(aead, 1);
    o.set_candidate(keys(aead, 2)).unwrap();
    let (mut stranger, _) = pair(aead, 3);
    let mut wire = Vec::new();
    stranger
        .seal(ContentType::ApplicationData, b"?", &mut wire)
        .unwrap();
    assert_eq!(
        alert_of(open_all(&mut o, &wire)),
        Some(AlertDescription::BadRecordMac)
    );
    assert!(!o.has_candidate());
}

#[test]
fn candidate_without_current_key_is_installed_directly() {
    let aead = AeadAlgorithm::Aes256Gcm;
    let mut o = RecordOpener::new();
    o.set_candidate(keys(aead, 4)).unwrap();
    assert!(o.has_keys() && !o.has_candidate());
    let (mut s, _) = pair(aead, 4);
    let mut wire = Vec::new();
    s.seal(ContentType::Handshake, b"hs", &mut wire).unwrap();
    assert_eq!(
        open_all(&mut o, &wire).unwrap(),
        vec![(ContentType::Handshake, b"hs".to_vec())]
    );
}
