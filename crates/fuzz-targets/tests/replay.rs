//! Regression replay on stable: every committed corpus file and every
//! regression (crash) file runs through the same target function the fuzzer
//! runs, so a normal `cargo test` catches a regression without nightly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mls_tls::conn::{ClientConnection, ServerConnection};
use mlstls_fuzz_targets::{
    client_config, clock, feed, fixture_session_id, fixtures, server_config, take_output,
    SharedBackend, TARGETS,
};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut n = 0;
    for sub in ["corpus", "regressions"] {
        for path in files(&fuzz_dir().join(sub).join(target)) {
            let data = std::fs::read(&path).expect("read corpus file");
            let result = std::panic::catch_unwind(|| run(&data));
            assert!(result.is_ok(), "{target}: {} fails", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn every_corpus_and_regression_file_replays() {
    for (target, run) in TARGETS {
        let n = replay(target, *run);
        assert!(
            n > 0,
            "{target}: no corpus committed under fuzz/corpus/{target}"
        );
    }
}

/// The fixtures are what make the stateful targets reach the classifier:
/// the captured fresh resumption must still apply to the fixture server
/// (else regenerate fixtures and corpora together with the `seed` binary).
#[test]
fn captured_resumption_still_reaches_the_fixture_session() {
    let fx = fixtures();
    let flight = std::fs::read(fuzz_dir().join("corpus/server_first_flight/resume-fresh-early"))
        .expect("seed");
    let backend = SharedBackend::holding(&fx.server);
    let config = server_config(&fx.server_identity, &backend, &clock(), None);
    let mut server = ServerConnection::new(Arc::clone(&config));
    assert!(
        feed(&mut server, &flight).is_none(),
        "the captured request is accepted"
    );
    let answer = take_output(&mut server);
    assert!(!answer.is_empty(), "the server answers the resumption");
    let _ = fixture_session_id();
}

/// The pending commit is resent unchanged, so the captured server answer
/// applies to a client resuming the fixture session.
#[test]
fn captured_answer_still_completes_the_client_resumption() {
    let fx = fixtures();
    let seed = std::fs::read(fuzz_dir().join("corpus/client_flight/resume-pending")).expect("seed");
    let backend = SharedBackend::holding(&fx.client_pending);
    let config = client_config(&fx.client_identity, &backend, &clock(), None);
    let mut client = ClientConnection::resume(config, &fixture_session_id()).expect("resume");
    let _ = take_output(&mut client);
    assert!(feed(&mut client, &seed[1..]).is_none());
    assert!(!client.is_handshaking(), "the resumption completed");
    assert_eq!(
        client.epoch(),
        Some(3),
        "pending commit (2) then the response (3)"
    );
}

/// The pair harness seals under the real keys: a replayed commit reaches
/// the profile engine and is refused there (not at the AEAD), and a plain
/// update completes (the harness itself keeps both sides in step).
#[test]
fn pair_harness_reaches_the_engine() {
    use mlstls_fuzz_targets::pair::run_outcome;
    let seed = |name: &str| std::fs::read(fuzz_dir().join("corpus/pair").join(name)).expect("seed");
    for name in ["honest-update", "victim-update", "collision"] {
        let o = run_outcome(&seed(name)).expect("outcome");
        assert!(
            o.victim_error.is_none() && o.honest_error.is_none(),
            "{name}: {o:?}"
        );
        assert_eq!(o.victim_epoch, Some(2), "{name}: the update completed");
    }
    // The server's commit, replayed under the current keys after it was
    // applied: refused as unauthenticatable, the session kept (SPEC 8).
    let o = run_outcome(&seed("server-side-update-replay")).expect("outcome");
    assert!(
        matches!(o.victim_error, Some(mls_tls::Error::DecryptError(_))),
        "{o:?}"
    );
}
