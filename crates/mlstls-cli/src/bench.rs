//! `mlstls bench`: benchmarks that print numbers for this machine.

use std::time::Duration;

use clap::{Args, Subcommand};
use mls_tls::bench_support::{profile_bench, record_bench};
use mls_tls::crypto::CipherSuite;
use mls_tls::record::MAX_FRAGMENT_LEN;
use mls_tls::schedule::AeadAlgorithm;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Seal+open throughput of full records for each AEAD, next to the raw
    /// aws-lc-rs AEAD over the same buffer, measured alternately.
    Record(RecordArgs),
    /// Loopback TCP: bulk throughput and time to the first response byte
    /// for a new handshake and for a resumption with early data.
    Conn(ConnArgs),
    /// CPU time of the profile engine (both sides in one thread): full
    /// handshake, update round and resumption round per suite.
    Profile(ProfileArgs),
    /// Side by side with rustls (TLS 1.3) on this machine: handshakes,
    /// bulk, record layer, key updates, resumption over a delaying relay,
    /// idle memory; medians, ratios, a JSON of every sample and a plot.
    Compare(Box<mlstls_bench::Options>),
    /// Many connections at once: one server process, concurrent tokio
    /// connections streaming both ways for a while with key updates on
    /// both sides, every byte checked, then an update storm (every client
    /// asks for an update every 10 ms). Fails if any connection failed or
    /// got stuck; prints update rounds per second, memory and CPU.
    Load(LoadArgs),
    /// The session store: resumption first byte with the server's sessions
    /// in SQLite or PostgreSQL, PostgreSQL saves per second with many
    /// connections saving at once, the cost of encryption at rest per save.
    Store(StoreArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The PostgreSQL database to measure (`postgres://user@host:port/db`);
    /// the bench creates its table there and leaves no sessions behind.
    #[arg(long)]
    postgres: String,
    /// Rounds of the first-byte measurements; the median is reported.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Connections saving at once.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Seconds of saving.
    #[arg(long, default_value_t = 10)]
    secs: u64,
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Concurrent connections per phase.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// Seconds each connection of the first phase streams.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Seconds of the update storm (0: none).
    #[arg(long, default_value_t = 20)]
    storm_secs: u64,
    /// Key update after this many bytes sent plus received, both sides.
    #[arg(long, default_value_t = 1 << 20)]
    update_bytes: u64,
    /// The ciphersuite (name or code point).
    #[arg(long, default_value_t = CipherSuite::DEFAULT)]
    suite: CipherSuite,
    /// Internal: run as the server child, with identities from this file.
    #[arg(long, hide = true)]
    identities: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ConnArgs {
    /// MiB to transfer for the throughput figure.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Rounds of the first-byte measurements; the median is reported.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Suites to measure; default 0x0001 and 0x004F.
    #[arg(long = "suite")]
    suites: Vec<CipherSuite>,
    /// Keep sessions in SQLite files (WAL, synchronous=FULL).
    #[arg(long)]
    durable: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProfileArgs {
    /// Rounds of each operation; the median is reported.
    #[arg(long, default_value_t = 50)]
    iterations: usize,
    /// Suites to measure (names or code points); default 0x0001 and 0x004F.
    #[arg(long = "suite")]
    suites: Vec<CipherSuite>,
    /// Keep sessions in SQLite files (WAL, synchronous=FULL) in a temporary
    /// directory instead of memory, to include durable writes.
    #[arg(long)]
    durable: bool,
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
        BenchCommand::Profile(args) => profile(args),
        BenchCommand::Conn(args) => {
            crate::bench_conn::run(args.mib, args.rounds, args.suites, args.durable)
        }
        BenchCommand::Load(args) => load(args),
        BenchCommand::Store(args) => {
            crate::bench_store::run(&args.postgres, args.rounds, args.conns, args.secs)
        }
        BenchCommand::Compare(mut options) => {
            // Memory is measured in a fresh `mlstls bench compare` per stack.
            options.child = std::env::current_exe()
                .ok()
                .map(|exe| vec![exe.into_os_string(), "bench".into(), "compare".into()]);
            mlstls_bench::run(&options)
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }
}

fn load(args: LoadArgs) -> Result<(), String> {
    let opts = mlstls_bench::load::LoadOptions {
        conns: args.conns,
        secs: args.secs,
        storm_secs: args.storm_secs,
        update_bytes: args.update_bytes,
        suite: args.suite.code_point(),
    };
    if let Some(path) = args.identities {
        let (client, server) = mlstls_bench::load::read_identities(&path)?;
        return mlstls_bench::load::serve_child(&opts, client, server);
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: unoptimized build; run with --release for meaningful numbers");
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    mlstls_bench::load::run(
        &opts,
        &[exe.into_os_string(), "bench".into(), "load".into()],
    )
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

fn profile(args: ProfileArgs) -> Result<(), String> {
    let suites = if args.suites.is_empty() {
        vec![
            CipherSuite::X25519Aes128GcmSha256Ed25519,
            CipherSuite::DEFAULT,
        ]
    } else {
        args.suites
    };
    let dir = std::env::temp_dir().join(format!("mlstls-bench-{}", std::process::id()));
    if args.durable {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    println!(
        "profile engine, both sides in one thread, median of {} rounds, sessions {}",
        args.iterations,
        if args.durable {
            "in SQLite files (WAL, synchronous=FULL)"
        } else {
            "in memory"
        }
    );
    println!(
        "{:<44} {:>13} {:>11} {:>14} {:>9} {:>9} {:>9}",
        "suite", "handshake ms", "update ms", "resumption ms", "hs B", "upd B", "res B"
    );
    for suite in suites {
        let row = profile_bench(
            suite,
            args.iterations,
            args.durable.then_some(dir.as_path()),
        )
        .map_err(|e| e.to_string())?;
        println!(
            "{:<44} {:>13.2} {:>11.2} {:>14.2} {:>9} {:>9} {:>9}",
            suite.to_string(),
            row.handshake.as_secs_f64() * 1e3,
            row.update.as_secs_f64() * 1e3,
            row.resumption.as_secs_f64() * 1e3,
            row.handshake_bytes,
            row.update_bytes,
            row.resumption_bytes
        );
    }
    if args.durable {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
