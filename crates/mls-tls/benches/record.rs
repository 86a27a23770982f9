//! Seal+open of 16 KiB records through the record layer and, in the same
//! run, the raw aws-lc-rs AEAD over the same buffer size.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mls_tls::bench_support::{RawAeadRoundTrip, RecordRoundTrip};
use mls_tls::record::MAX_FRAGMENT_LEN;
use mls_tls::schedule::AeadAlgorithm;

fn record_seal_open(c: &mut Criterion) {
    for aead in AeadAlgorithm::ALL {
        let mut group = c.benchmark_group(format!("seal+open 16KiB/{}", aead.name()));
        group.throughput(Throughput::Bytes(MAX_FRAGMENT_LEN as u64));
        let mut ours = RecordRoundTrip::new(aead, MAX_FRAGMENT_LEN);
        group.bench_function("record layer", |b| b.iter(|| ours.run_once()));
        let mut raw = RawAeadRoundTrip::new(aead, MAX_FRAGMENT_LEN);
        group.bench_function("raw aws-lc-rs", |b| b.iter(|| raw.run_once()));
        group.finish();
    }
}

criterion_group!(benches, record_seal_open);
criterion_main!(benches);
