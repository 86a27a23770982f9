//! Results: every sample of every row, the medians and ratios, printed as a
//! table and saved as JSON.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stacks::Kx;

/// Whether a larger number is the better one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput, rates.
    Higher,
    /// Times, bytes, memory.
    Lower,
}

/// One figure measured for both stacks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Stable identifier, e.g. `handshake.client_cpu_us`.
    pub id: String,
    /// The key exchange pairing, if the row has one.
    pub kx: Option<Kx>,
    /// What is measured, for the table.
    pub label: String,
    /// Unit of the samples.
    pub unit: String,
    /// What the ours column is compared with ("rustls" or "raw AEAD").
    pub baseline: String,
    /// Direction of goodness.
    pub better: Better,
    /// Every sample of this project.
    pub ours: Vec<f64>,
    /// Every sample of the baseline.
    pub theirs: Vec<f64>,
    /// Median of `ours`.
    pub ours_median: f64,
    /// Median of `theirs`.
    pub theirs_median: f64,
    /// `ours_median / theirs_median`; none when the baseline is zero.
    pub ratio: Option<f64>,
    /// Median of `ours[i] / theirs[i]` when the samples were taken in
    /// alternating pairs: steadier than `ratio` when other load on the
    /// machine drifts during the run.
    pub paired_ratio: Option<f64>,
    /// How it was measured, when the label does not say it all.
    pub note: Option<String>,
}

impl Row {
    /// A row from its samples; medians and ratio are computed here.
    pub fn new(
        id: &str,
        kx: Option<Kx>,
        label: &str,
        unit: &str,
        better: Better,
        ours: Vec<f64>,
        theirs: Vec<f64>,
    ) -> Self {
        let (om, tm) = (median(&ours), median(&theirs));
        let pairs: Vec<f64> = ours
            .iter()
            .zip(&theirs)
            .filter(|(_, &t)| t != 0.0)
            .map(|(o, t)| o / t)
            .collect();
        let paired_ratio = (ours.len() == theirs.len() && pairs.len() > 1).then(|| median(&pairs));
        Self {
            id: id.into(),
            kx,
            label: label.into(),
            unit: unit.into(),
            baseline: "rustls".into(),
            better,
            ours,
            theirs,
            ours_median: om,
            theirs_median: tm,
            ratio: (tm != 0.0 && tm.is_finite()).then(|| om / tm),
            paired_ratio,
            note: None,
        }
    }

    /// Sets the note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Sets what ours is compared with.
    pub fn baseline(mut self, baseline: &str) -> Self {
        self.baseline = baseline.into();
        self
    }
}

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `--quick` or full.
    pub quick: bool,
    /// Whether this was an optimized build.
    pub release: bool,
    /// CPU model and count, from /proc/cpuinfo.
    pub machine: String,
    /// How the run was configured, one line per setting.
    pub settings: Vec<String>,
    /// All rows, in the order of the list.
    pub rows: Vec<Row>,
    /// The performance targets, met or not.
    pub targets: Vec<Target>,
}

/// One performance target and how this run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// What is aimed at, e.g. "bulk throughput >= 1.0x rustls".
    pub name: String,
    /// Whether every measured pairing met it.
    pub met: bool,
    /// The figures behind the verdict.
    pub detail: String,
}

impl Report {
    /// The row `id` for pairing `kx`, if measured.
    pub fn row(&self, id: &str, kx: Option<Kx>) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id && r.kx == kx)
    }

    /// The table printed on stdout (also usable as Markdown).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| figure | pairing | unit | ours | baseline | ratio ours/baseline | paired ratio | better |"
        );
        let _ = writeln!(out, "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |");
        for r in &self.rows {
            let base = if r.baseline == "rustls" {
                fmt_num(r.theirs_median)
            } else {
                format!("{} ({})", fmt_num(r.theirs_median), r.baseline)
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.label,
                r.kx.map_or("-", |k| k.label()),
                r.unit,
                fmt_num(r.ours_median),
                base,
                r.ratio.map_or("n/a".into(), |x| format!("{x:.2}")),
                r.paired_ratio.map_or("-".into(), |x| format!("{x:.2}")),
                match r.better {
                    Better::Higher => "higher",
                    Better::Lower => "lower",
                }
            );
        }
        out
    }
}

/// Three significant digits or so, without exponent noise.
fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if x.is_nan() {
        "n/a".into()
    } else if a >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// The CPU model and the number of logical CPUs.
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} logical CPUs")
}
