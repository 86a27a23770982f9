//! The PostgreSQL backend on a real PostgreSQL (see `pg/mod.rs`): the
//! backend contract, sealing over every backend, calls from every kind of
//! thread, the versioned schema, one winner per precondition, and database
//! failures as store errors.

mod pg;

use std::sync::{Arc, Barrier};

use mls_tls::store::{
    conformance, KeyRing, MemoryBackend, PostgresBackend, PostgresOptions, Precondition,
    SessionBackend, SessionStore, SqliteBackend, POSTGRES_SCHEMA_VERSION,
};
use mls_tls::Error;

fn keys() -> KeyRing {
    KeyRing::parse(&format!("1:{}", "5a".repeat(32))).unwrap()
}

fn backend() -> PostgresBackend {
    PostgresBackend::connect(&pg::fresh_database()).unwrap()
}

#[test]
fn postgres_backend_conforms() {
    conformance::check(&backend());
}

#[test]
fn sealing_conforms_over_every_backend() {
    use mls_tls::store::Sealed;
    conformance::check(&Sealed::new(MemoryBackend::default(), keys()));
    conformance::check(&Sealed::new(SqliteBackend::in_memory().unwrap(), keys()));
    conformance::check(&Sealed::new(backend(), keys()));
}

/// What PostgreSQL holds for a store opened with `open_postgres` is sealed:
/// the data column starts with the sealed format's magic and holds none of
/// the plaintext.
#[test]
fn a_postgres_store_holds_sealed_records_only() {
    let url = pg::fresh_database();
    let store = Arc::new(mls_tls::store::Sealed::new(
        PostgresBackend::connect(&url).unwrap(),
        keys(),
    ));
    let r = conformance::record(7, 1, 100);
    assert!(store.save(&r, Precondition::Absent).unwrap());
    let raw = pg::query(&url, "SELECT encode(data, 'hex') FROM mlstls_sessions").unwrap();
    assert_eq!(raw.len(), 1);
    assert!(
        raw[0].starts_with(&hex::encode(b"MLSTLS-SEALED-1")),
        "{}",
        raw[0]
    );
    assert!(
        !raw[0].contains(&hex::encode([7u8; 32])),
        "plaintext in the database"
    );
    // And the store reads it back through the key.
    assert_eq!(store.load(r.id()).unwrap().unwrap(), r);
    let sessions = SessionStore::open_postgres(&url, keys()).unwrap();
    assert_eq!(sessions.list().unwrap().len(), 1);
}

/// The trait is synchronous and called from tokio tasks (the adapter) and
/// from plain threads: every context works, and so does dropping the
/// backend inside a runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callable_from_a_multi_thread_runtime() {
    let b = backend();
    let r = conformance::record(11, 1, 100);
    let b = tokio::spawn(async move {
        assert!(b.save(&r, Precondition::Absent).unwrap());
        assert_eq!(b.load(r.id()).unwrap().unwrap(), r);
        assert!(b.delete(r.id()).unwrap());
        b
    })
    .await
    .unwrap();
    conformance::check(&b);
    drop(b); // inside the runtime: must not panic
}

#[tokio::test(flavor = "current_thread")]
async fn callable_from_a_current_thread_runtime() {
    let b = backend();
    conformance::check(&b);
    let r = conformance::record(2, 1, 100);
    assert!(b.save(&r, Precondition::Absent).unwrap());
    drop(b);
}

#[test]
fn callable_from_plain_threads_at_once() {
    let b = Arc::new(backend());
    let handles: Vec<_> = (1..=8u8)
        .map(|i| {
            let b = b.clone();
            std::thread::spawn(move || {
                let mut r = conformance::record(i, 1, 100);
                assert!(b.save(&r, Precondition::Absent).unwrap());
                for v in 2..=5 {
                    r = conformance::record(i, v, 100 + v);
                    assert!(b.save(&r, Precondition::Version(v - 1)).unwrap());
                }
                assert_eq!(b.load(r.id()).unwrap().unwrap(), r);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(b.list().unwrap().len(), 8);
}

/// Servers (separate pools) racing to write the same next version: the one
/// statement with the version precondition lets exactly one win.
#[test]
fn racing_saves_of_one_version_have_exactly_one_winner() {
    let url = pg::fresh_database();
    let servers: Vec<Arc<PostgresBackend>> = (0..4)
        .map(|_| Arc::new(PostgresBackend::connect(&url).unwrap()))
        .collect();
    let base = conformance::record(9, 1, 100);
    assert!(servers[0].save(&base, Precondition::Absent).unwrap());
    for round in 1..=10u64 {
        let barrier = Arc::new(Barrier::new(servers.len() * 2));
        let handles: Vec<_> = servers
            .iter()
            .flat_map(|s| [s.clone(), s.clone()])
            .enumerate()
            .map(|(n, s)| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut r = conformance::record(9, round + 1, 1000 + n as u64);
                    r.data[0] = n as u8;
                    barrier.wait();
                    (
                        n,
                        r.clone(),
                        s.save(&r, Precondition::Version(round)).unwrap(),
                    )
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|(_, _, won)| *won).collect();
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        assert_eq!(
            servers[1].load(base.id()).unwrap().unwrap(),
            winners[0].1,
            "the stored record is the winner's"
        );
    }
}

/// The schema is created once, versioned, and servers starting together
/// do not trip over each other; a newer schema than this build knows is
/// refused with a clear error.
#[test]
fn the_schema_is_versioned_and_migrated_once() {
    let url = pg::fresh_database();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresBackend::connect(&url).map(drop))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(
        pg::query(&url, "SELECT version FROM mlstls_schema_version").unwrap(),
        vec![POSTGRES_SCHEMA_VERSION.to_string()]
    );
    pg::admin(&url, "UPDATE mlstls_schema_version SET version = 99").unwrap();
    let err = PostgresBackend::connect(&url).unwrap_err();
    assert!(
        matches!(err, Error::Store(ref m) if m.contains("version 99") && m.contains("upgrade")),
        "{err:?}"
    );
}

/// Every database failure is an `Error::Store` saying what failed: no
/// server, a missing table, out-of-range values; never a panic.
#[test]
fn database_failures_are_store_errors() {
    // Nothing listens on this port (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = PostgresOptions {
        timeout: std::time::Duration::from_secs(3),
        ..PostgresOptions::default()
    };
    let err = PostgresBackend::connect_with(&format!("postgres://x@127.0.0.1:{port}/db"), options)
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(ref m) if m.contains("PostgreSQL")),
        "{err:?}"
    );
    let err = PostgresBackend::connect("postgres://x@127.0.0.1:notaport/db").unwrap_err();
    assert!(
        matches!(err, Error::Store(ref m) if m.contains("URL")),
        "{err:?}"
    );

    let url = pg::fresh_database();
    let b = PostgresBackend::connect(&url).unwrap();
    let r = conformance::record(3, 1, 100);
    assert!(b.save(&r, Precondition::Absent).unwrap());
    for damage in [
        "UPDATE mlstls_sessions SET suite = 99999",
        "UPDATE mlstls_sessions SET suite = 1, initial_role = 7",
        "UPDATE mlstls_sessions SET initial_role = 0, version = -1",
        "UPDATE mlstls_sessions SET version = 1, created = -5",
    ] {
        pg::admin(&url, damage).unwrap();
        let err = b.load(r.id()).unwrap_err();
        assert!(matches!(err, Error::Store(_)), "{damage}: {err:?}");
    }
    let mut too_big = conformance::record(4, 1, 100);
    too_big.version = u64::MAX;
    assert!(matches!(
        b.save(&too_big, Precondition::Absent),
        Err(Error::Store(ref m)) if m.contains("bigint")
    ));
    pg::admin(&url, "DROP TABLE mlstls_sessions").unwrap();
    for err in [
        b.load(r.id()).unwrap_err(),
        b.save(&r, Precondition::Absent).unwrap_err(),
        b.list().unwrap_err(),
        b.delete(r.id()).unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::Store(ref m) if m.contains("mlstls_sessions") && m.contains("42P01")),
            "{err:?}"
        );
    }
}

/// A saved record is visible at once to another server's pool (the commit
/// returned before `save` did), and a record from one pool is deleted by
/// the other's sweep.
#[test]
fn another_pool_sees_a_save_at_once() {
    let url = pg::fresh_database();
    let (a, b) = (
        PostgresBackend::connect(&url).unwrap(),
        PostgresBackend::connect(&url).unwrap(),
    );
    let r = conformance::record(5, 1, 100);
    assert!(a.save(&r, Precondition::Absent).unwrap());
    assert_eq!(b.load(r.id()).unwrap().unwrap(), r);
    assert_eq!(
        b.delete_unused_since(r.info.last_used + std::time::Duration::from_secs(1))
            .unwrap(),
        1
    );
    assert!(a.load(r.id()).unwrap().is_none());
}
