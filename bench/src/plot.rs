//! The PNG: bulk throughput (bars) and resumed first-byte time against RTT
//! (lines), both stacks. Text uses the DejaVu Sans font shipped in
//! `assets/`, so no system font library is needed.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::report::Report;
use crate::stacks::{BoxError, Kx};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

const OURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(120, 170, 220)];
const THEIRS: [RGBColor; 2] = [RGBColor(214, 39, 40), RGBColor(240, 140, 130)];

fn shade(kx: Kx) -> usize {
    match kx {
        Kx::Hybrid => 0,
        Kx::Classical => 1,
    }
}

/// Draws the plot of `report` to `path` (PNG).
pub(crate) fn draw(report: &Report, path: &Path) -> Result<(), BoxError> {
    register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| "bad embedded font")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    throughput(report, &left)?;
    first_byte(report, &right)?;
    root.present()?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn throughput(report: &Report, area: &Area<'_>) -> Result<(), BoxError> {
    // One group per (pairing, direction); two bars per group.
    let mut groups = Vec::new();
    for kx in Kx::ALL {
        for (id, dir) in [("bulk.c2s_mbps", "c→s"), ("bulk.s2c_mbps", "s→c")] {
            if let Some(r) = report.row(id, Some(kx)) {
                groups.push((kx, dir, r.ours_median, r.theirs_median));
            }
        }
    }
    let top = groups.iter().map(|g| g.2.max(g.3)).fold(1.0, f64::max) * 1.15;
    let n = groups.len().max(1) as f64;
    let labels: Vec<String> = groups
        .iter()
        .map(|(kx, dir, ..)| {
            format!(
                "{} {dir}",
                if *kx == Kx::Hybrid {
                    "hybrid"
                } else {
                    "classical"
                }
            )
        })
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Bulk throughput, loopback TCP, 16 KiB writes",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("MB/s (10^6 B/s)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_labels(groups.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (i, (kx, _, ours, theirs)) in groups.iter().enumerate() {
        let x = i as f64;
        let s = shade(*kx);
        chart.draw_series([
            Rectangle::new([(x + 0.12, 0.0), (x + 0.48, *ours)], OURS[s].filled()),
            Rectangle::new([(x + 0.52, 0.0), (x + 0.88, *theirs)], THEIRS[s].filled()),
        ])?;
    }
    // Legend entries as empty series.
    for (name, color) in [("MLS-TLS", OURS[0]), ("rustls", THEIRS[0])] {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

fn first_byte(report: &Report, area: &Area<'_>) -> Result<(), BoxError> {
    // (rtt, ours, theirs) per pairing, from the resume rows.
    let mut lines = Vec::new();
    for kx in Kx::ALL {
        let mut pts = Vec::new();
        for r in &report.rows {
            if r.kx == Some(kx) {
                if let Some(rtt) = r.id.strip_prefix("resume.first_byte_ms.rtt") {
                    if let Ok(rtt) = rtt.parse::<f64>() {
                        pts.push((rtt, r.ours_median, r.theirs_median));
                    }
                }
            }
        }
        if !pts.is_empty() {
            lines.push((kx, pts));
        }
    }
    let max_rtt = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(1.0, f64::max);
    let max_t = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1.max(x.2)))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Resumption with early data: first response byte",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_rtt * 1.05, 0.0..max_t)?;
    chart
        .configure_mesh()
        .x_desc("relay round-trip time (ms)")
        .y_desc("time to first response byte (ms)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    // The one-round-trip line: what TLS 0-RTT achieves at best.
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (max_rtt, max_rtt)],
            BLACK.mix(0.3).stroke_width(1),
        ))?
        .label("1 RTT")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.3)));
    for (kx, pts) in &lines {
        let s = shade(*kx);
        let name = if *kx == Kx::Hybrid {
            "hybrid"
        } else {
            "classical"
        };
        for (ours, color, who) in [(true, OURS[s], "MLS-TLS"), (false, THEIRS[s], "rustls")] {
            let data: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.0, if ours { p.1 } else { p.2 }))
                .collect();
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
                .label(format!("{who} {name}"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(data.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
