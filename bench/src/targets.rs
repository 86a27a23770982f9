//! The targets of issues 6 and 14, checked against a report. Verdicts only: no
//! test asserts on them.

use std::fmt::Write as _;

use crate::report::{Report, Row, Target};

/// Checks a target over every row whose id starts with `prefix`.
fn over(
    r: &Report,
    name: &str,
    prefix: &str,
    value: fn(&Row) -> f64,
    ok: fn(f64) -> bool,
    fmt: fn(f64) -> String,
) -> Option<Target> {
    let rows: Vec<&Row> = r.rows.iter().filter(|x| x.id.starts_with(prefix)).collect();
    if rows.is_empty() {
        return None;
    }
    let mut detail = String::new();
    let mut met = true;
    for x in rows {
        let v = value(x);
        met &= ok(v);
        let _ = write!(
            detail,
            "{}{} {}: {}",
            if detail.is_empty() { "" } else { "; " },
            x.kx.map_or("", |k| k.label()),
            x.id.rsplit('.').next().unwrap_or(""),
            fmt(v)
        );
    }
    Some(Target {
        name: name.into(),
        met,
        detail,
    })
}

fn ratio(x: &Row) -> f64 {
    x.ratio.unwrap_or(f64::NAN)
}

fn ours(x: &Row) -> f64 {
    x.ours_median
}

fn times(v: f64) -> String {
    format!("{v:.2}x")
}

/// All targets the report has rows for.
pub(crate) fn check(r: &Report) -> Vec<Target> {
    [
        over(
            r,
            "bulk throughput >= 1.0x rustls",
            "bulk.",
            ratio,
            |v| v >= 1.0,
            times,
        ),
        over(
            r,
            "record layer >= 0.9x raw AEAD",
            "record.",
            ratio,
            |v| v >= 0.9,
            times,
        ),
        over(
            r,
            "handshake CPU <= 2x rustls (client)",
            "handshake.client_cpu",
            ratio,
            |v| v <= 2.0,
            times,
        ),
        over(
            r,
            "handshake CPU <= 2x rustls (server)",
            "handshake.server_cpu",
            ratio,
            |v| v <= 2.0,
            times,
        ),
        over(
            r,
            "handshake CPU <= 1.3x its MLS operations (each side)",
            "handshake.overhead",
            ratio,
            |v| v <= 1.3,
            times,
        ),
        over(
            r,
            "key update round <= 0.7 ms (0x0001) / 1.2 ms (0x004F) CPU, both sides",
            "keyupdate.cpu_us",
            |x| {
                // The issue-14 bound of the row's suite, as a fraction.
                let bound = match x.kx {
                    Some(crate::stacks::Kx::Classical) => 700.0,
                    _ => 1200.0,
                };
                x.ours_median / bound
            },
            |v| v <= 1.0,
            |v| format!("{:.0}% of its bound", v * 100.0),
        ),
        over(
            r,
            "key update round <= 1 ms CPU (both sides)",
            "keyupdate.cpu_us",
            ours,
            |v| v <= 1000.0,
            |v| format!("{:.3} ms", v / 1e3),
        ),
        over(
            r,
            "key update in one round trip",
            "keyupdate.flights",
            ours,
            |v| v <= 2.0,
            |v| format!("{v:.0} flights"),
        ),
        over(
            r,
            "resumption first byte in one round trip",
            "resume.round_trips",
            ours,
            |v| v <= 1.5,
            |v| format!("{v:.2} RTT"),
        ),
        over(
            r,
            "idle memory <= 2x rustls",
            "memory.",
            ratio,
            |v| v <= 2.0,
            times,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}
