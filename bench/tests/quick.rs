//! The quick mode runs in CI to keep the harness working. Structural checks
//! only: every row for both stacks, parsable JSON, bytes moved, early data
//! accepted. No assertion on timing.

use mlstls_bench::{run, Kx, Options, Report};

fn quick_options(dir: &std::path::Path) -> Options {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
    }
    let json = dir.join("compare.json");
    let plot = dir.join("compare.png");
    Cli::parse_from([
        "test".as_ref(),
        "--quick".as_ref(),
        "--json".as_ref(),
        json.as_os_str(),
        "--plot".as_ref(),
        plot.as_os_str(),
    ])
    .options
}

#[test]
fn quick_run_reports_every_row_for_both_stacks() {
    let dir = std::env::temp_dir().join(format!("mlstls-bench-quick-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = quick_options(&dir);
    let report = run(&options).unwrap();

    let saved: Report = serde_json::from_slice(&std::fs::read(&options.json).unwrap()).unwrap();
    assert_eq!(saved.rows.len(), report.rows.len());
    assert!(std::fs::metadata(&options.plot).unwrap().len() > 0);

    let per_kx = [
        "handshake.client_per_s",
        "handshake.server_per_s",
        "handshake.client_cpu_us",
        "handshake.server_cpu_us",
        "handshake.bytes",
        "bulk.c2s_mbps",
        "bulk.s2c_mbps",
        "keyupdate.cpu_us",
        "keyupdate.bytes",
        "keyupdate.flights",
        "resume.first_byte_ms.rtt0",
        "resume.round_trips.rtt4",
        "resume.early_data_accepted",
        "memory.idle_kib",
    ];
    for kx in Kx::ALL {
        for id in per_kx {
            let row = saved
                .row(id, Some(kx))
                .unwrap_or_else(|| panic!("row {id} missing for {kx}"));
            assert!(!row.ours.is_empty() && !row.theirs.is_empty(), "{id} {kx}");
            assert!(
                row.ours.iter().chain(&row.theirs).all(|x| x.is_finite()),
                "{id} {kx}"
            );
        }
        for id in ["handshake.bytes", "keyupdate.bytes"] {
            let row = saved.row(id, Some(kx)).unwrap();
            assert!(
                row.ours.iter().chain(&row.theirs).all(|&b| b > 0.0),
                "{id} {kx}"
            );
        }
        let early = saved.row("resume.early_data_accepted", Some(kx)).unwrap();
        assert!(
            early.ours.iter().all(|&x| x == 1.0),
            "ours refused early data: {kx}"
        );
        assert!(
            early.theirs.iter().all(|&x| x == 1.0),
            "rustls refused early data: {kx}"
        );
    }
    assert!(saved.row("record.aes128gcm_mbps", None).is_some());
    assert!(!saved.targets.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
