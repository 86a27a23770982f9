//! `mlstls bench`: benchmarks that print numbers for this machine.

use std::time::Duration;

use clap::{Args, Subcommand};
use mls_tls::bench_support::record_bench;
use mls_tls::record::MAX_FRAGMENT_LEN;
use mls_tls::schedule::AeadAlgorithm;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Seal+open throughput of full records for each AEAD, next to the raw
    /// aws-lc-rs AEAD over the same buffer, measured alternately.
    Record(RecordArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// Record content size in bytes (at most 16384).
    #[arg(long, default_value_t = MAX_FRAGMENT_LEN)]
    size: usize,
    /// Alternating measurement rounds per AEAD; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Milliseconds per measurement.
    #[arg(long, default_value_t = 300)]
    millis: u64,
}

pub(crate) fn run(cmd: BenchCommand) -> Result<(), String> {
    match cmd {
        BenchCommand::Record(args) => record(args),
    }
}

fn record(args: RecordArgs) -> Result<(), String> {
    if args.size > MAX_FRAGMENT_LEN {
        return Err(format!(
            "--size {} exceeds the record limit of {MAX_FRAGMENT_LEN}",
            args.size
        ));
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: unoptimized build; run with --release for meaningful numbers");
    }
    println!(
        "record seal+open, {} B content, median of {} alternating rounds of {} ms",
        args.size, args.rounds, args.millis
    );
    println!(
        "{:<18} {:>14} {:>14} {:>12} {:>8}",
        "AEAD", "record MB/s", "raw MB/s", "record µs", "ratio"
    );
    for aead in AeadAlgorithm::ALL {
        let row = record_bench(
            aead,
            args.size,
            args.rounds,
            Duration::from_millis(args.millis),
        );
        println!(
            "{:<18} {:>14.0} {:>14.0} {:>12.2} {:>8.3}",
            aead.name(),
            row.record_mbps(),
            row.raw_mbps(),
            row.record.as_secs_f64() * 1e6,
            row.ratio()
        );
    }
    println!(
        "ratio = record-layer throughput / raw AEAD throughput (target >= 0.9 for AES-128-GCM)"
    );
    Ok(())
}
