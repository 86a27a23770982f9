//! `mlstls demo` end to end: the built binary, its summary table, its exit
//! status and its clean-up. No timing assertions.

use std::process::{Command, Output, Stdio};

/// Runs `mlstls` with `args`; returns its output and its process id.
fn mlstls(args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_mlstls"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mlstls");
    let pid = child.id();
    (child.wait_with_output().expect("run mlstls"), pid)
}

/// Whether the run with process id `pid` left its temporary directory.
fn left_temp_dir(pid: u32) -> bool {
    let prefix = format!("mlstls-demo-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .expect("read the temporary directory")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
}

/// Checks a successful run's output and returns its stdout.
fn assert_passed(out: &Output, pid: u32) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "status {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for row in [
        "handshake",
        "throughput",
        "key updates",
        "update round",
        "cut",
        "resumption",
        "early data",
        "bytes on the wire",
    ] {
        assert!(stdout.contains(row), "no {row:?} row in:\n{stdout}");
    }
    // The compromise step: each property checked by trying (issue 16).
    for (row, what) in [
        ("  FS ", "records decrypted with the stolen state (checked)"),
        ("  PCS ", "after the client's own update: 0 of"),
        ("  exposed ", "records decrypted with the stolen state"),
    ] {
        let line = stdout.lines().find(|l| l.starts_with(row));
        assert!(
            line.is_some_and(|l| l.contains(what)),
            "no {row:?} row with {what:?} in:\n{stdout}"
        );
    }
    let fs = stdout
        .lines()
        .find(|l| l.starts_with("  FS "))
        .unwrap_or("");
    assert!(fs.contains(": 0 of "), "{fs}");
    assert_eq!(
        stdout.lines().last(),
        Some("demo: all checks passed"),
        "{stdout}"
    );
    assert!(
        !left_temp_dir(pid),
        "the temporary directory is left behind"
    );
    stdout
}

#[test]
fn demo_32_mib_passes_every_check() {
    let (out, pid) = mlstls(&["demo", "--mib", "32", "--no-progress"]);
    let stdout = assert_passed(&out, pid);
    assert!(stdout.contains("32 MiB"), "{stdout}");
    assert!(
        stdout.contains("(0x004F)"),
        "not the default suite:\n{stdout}"
    );
}

#[test]
fn demo_on_a_classic_suite() {
    let (out, pid) = mlstls(&["demo", "--mib", "8", "--no-progress", "--suite", "0x0001"]);
    let stdout = assert_passed(&out, pid);
    assert!(
        stdout.contains("x25519-aes128gcm-sha256-ed25519 (0x0001)"),
        "{stdout}"
    );
}

/// A bare `mlstls` shows the help (the demo is `mlstls demo`): it does
/// not start a 256 MiB run.
#[test]
fn no_subcommand_shows_help() {
    let (out, pid) = mlstls(&[]);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let help = String::from_utf8_lossy(&out.stderr);
    assert!(help.contains("Usage: mlstls"), "{help}");
    assert!(help.contains("demo"), "{help}");
    assert!(!left_temp_dir(pid));
}

#[test]
fn unknown_suite_fails_with_one_line() {
    let (out, _) = mlstls(&["demo", "--suite", "rot13", "--no-progress"]);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("mlstls: --suite: unknown cipher suite"),
        "{stderr}"
    );
}
