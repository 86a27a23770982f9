//! MLS-TLS side by side with rustls (TLS 1.3), on one machine, in one run:
//! full handshakes, bulk throughput, the record layer, key updates,
//! resumption with early data through a delaying relay, and memory per
//! idle connection. Every figure is measured for both stacks alternately;
//! the median of each, their ratio and every sample are reported.
//!
//! Entry points: `mlstls bench compare` and the `mlstls-bench` binary, both
//! parsing [`Options`] and calling [`run`].

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clap::{Args, ValueEnum};
use mls_tls::bench_support::record_bench;
use mls_tls::schedule::AeadAlgorithm;

mod bulk;
mod inmem;
pub mod load;
pub mod memory;
mod plot;
pub mod report;
mod resume;
pub mod stacks;
mod targets;

pub use report::{Better, Report, Row};
pub use stacks::{Impl, Kx};

/// The measurements a run can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// Full handshakes in memory, CPU per side and bytes.
    Handshake,
    /// Bulk throughput over loopback TCP, each direction.
    Bulk,
    /// Record layer vs raw AEAD (ours only).
    Record,
    /// Key update round in memory.
    Keyupdate,
    /// Resumption with early data through a delaying relay.
    Resume,
    /// Memory per idle connection.
    Memory,
}

/// Settings of a comparison run (`mlstls bench compare --help`).
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Tiny sizes and counts, few repetitions: checks the harness in well
    /// under a minute; the numbers mean little.
    #[arg(long)]
    pub quick: bool,
    /// Where every sample is written as JSON.
    #[arg(long, default_value = "target/bench-compare.json")]
    pub json: PathBuf,
    /// Where the plot (PNG) is written.
    #[arg(long, default_value = "target/bench-compare.png")]
    pub plot: PathBuf,
    /// Do not draw the plot.
    #[arg(long)]
    pub no_plot: bool,
    /// Sections to run (default all).
    #[arg(long = "only", value_enum, value_delimiter = ',')]
    pub only: Vec<Section>,
    /// Key exchange pairings to run (default both).
    #[arg(long = "kx", value_enum, value_delimiter = ',')]
    pub kx: Vec<KxArg>,
    /// MiB per bulk transfer [default: 1024, quick 2].
    #[arg(long)]
    pub mib: Option<usize>,
    /// Bulk connections per stack and pairing [default: 3, quick 1].
    #[arg(long)]
    pub bulk_reps: Option<usize>,
    /// Full handshakes per stack and pairing [default: 100, quick 3].
    #[arg(long)]
    pub handshakes: Option<usize>,
    /// Key update rounds after each handshake [default: 2, quick 1].
    #[arg(long)]
    pub updates: Option<usize>,
    /// Relay round-trip times in ms for the resumption rows.
    #[arg(long = "rtt", value_delimiter = ',')]
    pub rtts: Vec<u64>,
    /// Resumptions per stack, pairing and RTT [default: 15, quick 2].
    #[arg(long)]
    pub resumptions: Option<usize>,
    /// Idle connections per stack for the memory row [default: 10000,
    /// quick 16].
    #[arg(long)]
    pub conns: Option<usize>,
    /// Measure memory in this process instead of one fresh process per
    /// stack (later stacks then reuse memory the earlier ones freed).
    #[arg(long)]
    pub memory_in_process: bool,
    /// Keep MLS-TLS sessions of the memory row in SQLite files under this
    /// directory (e.g. on tmpfs) instead of memory, to tell stored sessions
    /// from connection state.
    #[arg(long)]
    pub memory_store_dir: Option<PathBuf>,
    /// Internal: measure memory of one stack and print it as JSON.
    #[arg(long, hide = true, value_names = ["IMPL", "KX"], num_args = 2)]
    pub memory_child: Vec<String>,
    /// How to start this program again with `--memory-child`: set by the
    /// entry point (program and arguments up to the options); without it
    /// memory is measured in process.
    #[arg(skip)]
    pub child: Option<Vec<OsString>>,
}

/// [`Kx`] on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KxArg {
    /// 0x004F vs X25519MLKEM768.
    Hybrid,
    /// 0x0001 vs X25519.
    Classical,
}

impl From<KxArg> for Kx {
    fn from(k: KxArg) -> Self {
        match k {
            KxArg::Hybrid => Kx::Hybrid,
            KxArg::Classical => Kx::Classical,
        }
    }
}

/// Options with every field filled in, quick or full.
struct Plan {
    sections: Vec<Section>,
    kxs: Vec<Kx>,
    bulk_bytes: usize,
    bulk_reps: usize,
    handshakes: usize,
    updates: usize,
    rtts: Vec<u64>,
    resumptions: usize,
    conns: usize,
    record_samples: usize,
    record_millis: u64,
}

impl Plan {
    fn new(o: &Options) -> Self {
        let q = o.quick;
        let pick =
            |v: Option<usize>, full: usize, quick: usize| v.unwrap_or(if q { quick } else { full });
        let mut rtts = if o.rtts.is_empty() {
            if q {
                vec![0, 4]
            } else {
                vec![0, 10, 50]
            }
        } else {
            o.rtts.clone()
        };
        rtts.sort_unstable();
        rtts.dedup();
        Self {
            sections: if o.only.is_empty() {
                vec![
                    Section::Handshake,
                    Section::Bulk,
                    Section::Record,
                    Section::Keyupdate,
                    Section::Resume,
                    Section::Memory,
                ]
            } else {
                o.only.clone()
            },
            kxs: if o.kx.is_empty() {
                Kx::ALL.to_vec()
            } else {
                o.kx.iter().map(|&k| k.into()).collect()
            },
            bulk_bytes: pick(o.mib, 1024, 2) << 20,
            bulk_reps: pick(o.bulk_reps, 3, 1),
            handshakes: pick(o.handshakes, 100, 3),
            updates: pick(o.updates, 2, 1),
            rtts,
            resumptions: pick(o.resumptions, 15, 2),
            conns: pick(o.conns, 10_000, 16),
            record_samples: if q { 3 } else { 7 },
            record_millis: if q { 20 } else { 300 },
        }
    }

    fn has(&self, s: Section) -> bool {
        self.sections.contains(&s)
    }
}

type BoxError = stacks::BoxError;

/// Runs the comparison: prints progress on stderr and the table on stdout,
/// writes the JSON (and the plot), and returns the report.
pub fn run(o: &Options) -> Result<Report, BoxError> {
    if let [which, kx] = &o.memory_child[..] {
        return memory_child(which, kx, o);
    }
    let plan = Plan::new(o);
    if cfg!(debug_assertions) && !o.quick {
        eprintln!("warning: unoptimized build; use --release for meaningful numbers");
    }
    let mut settings = vec![
        format!("load average before the run: {}", load_average()),
        format!(
            "bulk: {} MiB x {} per stack",
            plan.bulk_bytes >> 20,
            plan.bulk_reps
        ),
        format!(
            "handshakes: {} per stack, {} key updates each",
            plan.handshakes, plan.updates
        ),
        format!(
            "resumption: {} per stack and RTT {:?} ms",
            plan.resumptions, plan.rtts
        ),
        format!("memory: {} idle connections per stack", plan.conns),
    ];
    let mut rows = Vec::new();
    let progress = |what: &str| {
        eprintln!("[compare] {what}");
    };
    for &kx in &plan.kxs {
        if plan.has(Section::Handshake) || plan.has(Section::Keyupdate) {
            progress(&format!("handshakes and key updates, {kx}"));
            let got = inmem::rows(kx, plan.handshakes, plan.updates.max(1))?;
            rows.extend(got.into_iter().filter(|r| {
                (plan.has(Section::Handshake) && r.id.starts_with("handshake."))
                    || (plan.has(Section::Keyupdate) && r.id.starts_with("keyupdate."))
            }));
        }
        if plan.has(Section::Bulk) {
            progress(&format!("bulk throughput, {kx}"));
            rows.extend(bulk::rows(kx, plan.bulk_bytes, plan.bulk_reps)?);
        }
        if plan.has(Section::Resume) {
            progress(&format!("resumption through the relay, {kx}"));
            rows.extend(resume::rows(kx, &plan.rtts, plan.resumptions)?);
        }
    }
    if plan.has(Section::Record) {
        progress("record layer vs raw AEAD");
        rows.push(record_row(&plan));
    }
    if plan.has(Section::Memory) {
        for &kx in &plan.kxs {
            progress(&format!("memory per idle connection, {kx}"));
            let (row, note) = memory_row(kx, plan.conns, o)?;
            settings.push(note);
            rows.push(row);
        }
    }
    rows.sort_by_key(|r| section_rank(&r.id));
    let mut report = Report {
        quick: o.quick,
        release: !cfg!(debug_assertions),
        machine: report::machine(),
        settings,
        rows,
        targets: Vec::new(),
    };
    report.targets = targets::check(&report);
    print(&report);
    write_json(&report, &o.json)?;
    if !o.no_plot {
        plot::draw(&report, &o.plot)?;
        println!("plot: {}", o.plot.display());
    }
    Ok(report)
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews
/// wall-clock rows (bulk, resumption), not the CPU-time rows.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Table order: the order of the rows in the issue.
fn section_rank(id: &str) -> usize {
    [
        "handshake.",
        "bulk.",
        "record.",
        "keyupdate.",
        "resume.",
        "new.",
        "memory.",
    ]
    .iter()
    .position(|p| id.starts_with(p))
    .unwrap_or(usize::MAX)
}

fn print(r: &Report) {
    println!("MLS-TLS vs rustls 0.23 (aws-lc-rs, TLS 1.3), {}", r.machine);
    println!(
        "{} build{}",
        if r.release { "release" } else { "debug" },
        if r.quick {
            ", --quick (numbers not meaningful)"
        } else {
            ""
        }
    );
    for s in &r.settings {
        println!("  {s}");
    }
    println!();
    print!("{}", r.table());
    println!();
    println!("targets:");
    for t in &r.targets {
        println!(
            "  [{}] {}: {}",
            if t.met { "met" } else { "MISSED" },
            t.name,
            t.detail
        );
    }
}

fn write_json(r: &Report, path: &std::path::Path) -> Result<(), BoxError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(r)?)?;
    println!("samples: {}", path.display());
    Ok(())
}

/// Record layer vs raw aws-lc-rs AEAD, AES-128-GCM, 16 KiB records: the
/// same loops as `mlstls bench record`, one alternating round per sample.
fn record_row(plan: &Plan) -> Row {
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..plan.record_samples {
        let r = record_bench(
            AeadAlgorithm::Aes128Gcm,
            mls_tls::record::MAX_FRAGMENT_LEN,
            1,
            Duration::from_millis(plan.record_millis),
        );
        ours.push(r.record_mbps());
        raw.push(r.raw_mbps());
    }
    Row::new(
        "record.aes128gcm_mbps",
        None,
        "record layer seal+open, AES-128-GCM, 16 KiB",
        "MB/s",
        Better::Higher,
        ours,
        raw,
    )
    .baseline("raw AEAD")
    .note("ours vs aws-lc-rs seal+open on the same buffer (no rustls figure)")
}

/// Memory rows: a fresh process per stack when the entry point says how to
/// start one, else in this process.
fn memory_row(kx: Kx, conns: usize, o: &Options) -> Result<(Row, String), BoxError> {
    let mut samples = Vec::new();
    for which in [Impl::Ours, Impl::Rustls] {
        let s = match (&o.child, o.memory_in_process) {
            (Some(cmd), false) => spawn_child(cmd, which, kx, conns, o)?,
            _ => {
                let mut s = memory::measure(which, kx, conns, o.memory_store_dir.as_deref())?;
                s.transport += ", in process (after the other rows)";
                s
            }
        };
        samples.push(s);
    }
    let kib = |s: &memory::MemSample| s.per_conn_bytes / 1024.0;
    let note = format!(
        "memory {kx}: {} connections each ({}){}",
        samples[0].count,
        samples[0].transport,
        samples[0]
            .limited_by
            .as_ref()
            .map_or(String::new(), |l| format!("; fewer than asked: {l}"))
    );
    let row = Row::new(
        "memory.idle_kib",
        Some(kx),
        "memory per idle connection (client + server end)",
        "KiB",
        Better::Lower,
        vec![kib(&samples[0])],
        vec![kib(&samples[1])],
    )
    .note(format!(
        "VmRSS growth / count over {} (ours) and {} (rustls) connections, {}; one sample each; MLS-TLS sessions kept in its in-memory store count too",
        samples[0].count, samples[1].count, samples[0].transport
    ));
    Ok((row, note))
}

fn impl_name(i: Impl) -> &'static str {
    match i {
        Impl::Ours => "ours",
        Impl::Rustls => "rustls",
    }
}

fn kx_name(k: Kx) -> &'static str {
    match k {
        Kx::Hybrid => "hybrid",
        Kx::Classical => "classical",
    }
}

fn spawn_child(
    cmd: &[OsString],
    which: Impl,
    kx: Kx,
    conns: usize,
    o: &Options,
) -> Result<memory::MemSample, BoxError> {
    let (prog, args) = cmd.split_first().ok_or("empty child command")?;
    let mut child = Command::new(prog);
    child
        .args(args)
        .args(["--memory-child", impl_name(which), kx_name(kx)])
        .args(["--conns", &conns.to_string()]);
    if let Some(dir) = &o.memory_store_dir {
        child.arg("--memory-store-dir").arg(dir);
    }
    let out = child.output()?;
    if !out.status.success() {
        return Err(format!(
            "memory child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let line = text.lines().last().ok_or("memory child printed nothing")?;
    let mut s: memory::MemSample = serde_json::from_str(line)?;
    s.transport += ", fresh process per stack";
    Ok(s)
}

/// The child side: one measurement, one JSON line on stdout.
fn memory_child(which: &str, kx: &str, o: &Options) -> Result<Report, BoxError> {
    let which = match which {
        "ours" => Impl::Ours,
        "rustls" => Impl::Rustls,
        _ => return Err(format!("unknown implementation {which}").into()),
    };
    let kx = match kx {
        "hybrid" => Kx::Hybrid,
        "classical" => Kx::Classical,
        _ => return Err(format!("unknown pairing {kx}").into()),
    };
    let s = memory::measure(
        which,
        kx,
        o.conns.unwrap_or(10_000),
        o.memory_store_dir.as_deref(),
    )?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", serde_json::to_string(&s)?)?;
    Ok(Report {
        quick: o.quick,
        release: !cfg!(debug_assertions),
        machine: report::machine(),
        settings: Vec::new(),
        rows: Vec::new(),
        targets: Vec::new(),
    })
}
