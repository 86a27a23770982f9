//! Forward secrecy and post-compromise security, checked by trying
//! (issue 16): a thief copies the client's store and identity files at
//! epoch n and attacks a full capture of the connection with them. The
//! thief (`mls_tls::bench_support::compromise::Thief`) is built from the
//! record layer, the store formats and OpenMLS only; which epoch a record
//! belongs to comes from the client's key log, which the thief lacks.

use mls_tls::bench_support::compromise::{self, Report, STOLEN_AT};
use mls_tls::CipherSuite;

fn scenario(code: u16) -> Report {
    let suite = CipherSuite::from_code_point(code).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "mlstls-compromise-{code:04x}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let report = compromise::run(suite, &dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    report
}

fn check(report: &Report) {
    let n = report.stolen_at;
    assert_eq!(n, STOLEN_AT);
    // The server updated first (n + 1), then the client (n + 2).
    assert_eq!(report.healed_at, n + 2, "{report:?}");
    assert!(report.last_epoch >= report.healed_at + 2);
    // Every record of every epoch was captured and labelled.
    for epoch in 1..=report.last_epoch {
        let app = report
            .records
            .iter()
            .filter(|r| r.epoch == Some(epoch) && r.application_data)
            .count();
        assert!(app >= 2, "epoch {epoch}: {app} data records captured");
    }

    // The compromise is real: every record of epoch n opens.
    let (opened, all) = report.opened_in(n..=n);
    assert!(all > 0);
    assert_eq!(opened, all, "epoch {n}: the stolen state opens everything");
    // ... and the server's own update does not heal it: the thief follows.
    let (opened, all) = report.opened_in(n + 1..=n + 1);
    assert_eq!(
        opened,
        all,
        "epoch {}: the thief follows the peer's commit",
        n + 1
    );

    // Forward secrecy: nothing before the theft.
    let (opened, all) = report.opened_in(1..=n - 1);
    assert!(all > 0);
    assert_eq!(
        opened, 0,
        "FS: {opened} of {all} records before epoch {n} opened"
    );
    // Post-compromise security: nothing after the client's own update.
    let (opened, all) = report.opened_in(report.healed_at..=report.last_epoch);
    assert!(all > 0);
    assert_eq!(
        opened, 0,
        "PCS: {opened} of {all} records after the client's update opened"
    );
    assert!(report
        .thief_epochs
        .iter()
        .all(|e| (n..report.healed_at).contains(e)));
}

#[test]
fn stolen_client_state_opens_its_epoch_only_0x0001() {
    check(&scenario(0x0001));
}

#[test]
fn stolen_client_state_opens_its_epoch_only_0x004f() {
    check(&scenario(0x004F));
}
