//! The `mlstls` binary with a PostgreSQL session store and store keys:
//! `store-key new|rotate`, `--store postgres://…` (refused without a key),
//! `--store-key` for SQLite, and `sessions` on both kinds of store. The
//! database is a real PostgreSQL (see the harness in mls-tls's tests).

#[path = "../../mls-tls/tests/pg/mod.rs"]
mod pg;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

mod harness;
use harness::{free_port, keygen, ok, run, Dir, Proc, BIN};

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");
    err
}

fn server(dir: &Dir, port: u16, store: &[&str]) -> Proc {
    // Killed and reaped when dropped, also when it never listens.
    let child = Proc(
        Command::new(BIN)
            .args(["server", "--echo", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--identity",
                &dir.s("server.id"),
                "--trust",
                &dir.s("client.pub"),
            ])
            .args(store)
            .env_remove("MLSTLS_STORE_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("the server does not listen on {port}");
}

/// `mlstls client` sends `hello` and expects it back.
fn echo(dir: &Dir, port: u16, store: &[&str]) {
    let mut child = Command::new(BIN)
        .args(["client", "--connect", &format!("127.0.0.1:{port}")])
        .args([
            "--identity",
            &dir.s("client.id"),
            "--trust",
            &dir.s("server.pub"),
        ])
        .args(store)
        .env_remove("MLSTLS_STORE_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok(&out), "hello");
}

fn mode(p: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn store_key_files_are_created_private_never_overwritten_and_rotate() {
    let dir = Dir::new("keys");
    let key = dir.s("store.key");
    assert!(ok(&run(&["store-key", "new", &key])).contains("key id 1"));
    assert_eq!(mode(&key), 0o600);
    let before = std::fs::read(&key).unwrap();
    assert!(failed(&run(&["store-key", "new", &key])).contains("exists"));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    assert!(ok(&run(&["store-key", "rotate", &key])).contains("key id 2"));
    assert_eq!(mode(&key), 0o600);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    keygen(&dir, "server");
    keygen(&dir, "client");
    let port = free_port();
    let out = Command::new(BIN)
        .args(["server", "--echo", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--identity",
            &dir.s("server.id"),
            "--trust",
            &dir.s("client.pub"),
        ])
        .args(["--store-key", &key])
        .output()
        .unwrap();
    assert!(failed(&out).contains("chmod 600"));
}

#[test]
fn a_postgres_store_without_a_key_is_refused_saying_how_to_make_one() {
    let dir = Dir::new("nokey");
    keygen(&dir, "server");
    keygen(&dir, "client");
    let url = pg::fresh_database();
    let out = Command::new(BIN)
        .args([
            "server",
            "--echo",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args([
            "--identity",
            &dir.s("server.id"),
            "--trust",
            &dir.s("client.pub"),
        ])
        .args(["--store", &url])
        .env_remove("MLSTLS_STORE_KEY")
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(
        err.contains("mlstls store-key new") && err.contains("--store-key"),
        "{err}"
    );
    // A database that is not there is one clear line, too.
    let port = free_port();
    let key = dir.s("k");
    ok(&run(&["store-key", "new", &key]));
    let out = Command::new(BIN)
        .args([
            "server",
            "--echo",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args([
            "--identity",
            &dir.s("server.id"),
            "--trust",
            &dir.s("client.pub"),
        ])
        .args(["--store", &format!("postgres://u:pw@127.0.0.1:{port}/db")])
        .args(["--store-key", &key])
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(err.contains("PostgreSQL") && !err.contains("pw@"), "{err}");
}

/// A server on PostgreSQL and a client on an SQLite file sealed with the
/// same key file: they talk, and `sessions` lists, deletes and
/// sweeps on both stores.
#[test]
fn server_on_postgres_client_on_sealed_sqlite_and_sessions_on_both() {
    let dir = Dir::new("pg");
    keygen(&dir, "server");
    keygen(&dir, "client");
    let url = pg::fresh_database();
    let key = dir.s("store.key");
    ok(&run(&["store-key", "new", &key]));
    let port = free_port();
    let _srv = server(&dir, port, &["--store", &url, "--store-key", &key]);
    let client_store = dir.s("client.sessions");
    echo(&dir, port, &["--store", &client_store, "--store-key", &key]);

    let list = |store: &str| ok(&run(&["sessions", "list", "--store", store]));
    let on_server = list(&url);
    let on_client = list(&client_store);
    assert_eq!(on_server.lines().count(), 1, "{on_server}");
    assert_eq!(on_client.lines().count(), 1, "{on_client}");
    let id = on_server.split(' ').next().unwrap().to_string();
    assert!(on_client.starts_with(&id), "one session, both sides");
    // The server's database holds it sealed.
    let raw = pg::query(
        &url,
        "SELECT encode(substr(data, 1, 15), 'escape') FROM mlstls_sessions",
    )
    .unwrap();
    assert_eq!(raw, vec!["MLSTLS-SEALED-1".to_string()]);

    // A second server process on the same database and key sees the
    // session and serves the client (a new session: each `client` run
    // makes one; resumption across servers is in mls-tls's fleet tests).
    let port2 = free_port();
    let _srv2 = server(&dir, port2, &["--store", &url, "--store-key", &key]);
    echo(
        &dir,
        port2,
        &["--store", &client_store, "--store-key", &key],
    );
    assert_eq!(list(&url).lines().count(), 2);
    assert_eq!(list(&client_store).lines().count(), 2);

    ok(&run(&["sessions", "delete", "--store", &url, &id]));
    assert_eq!(list(&url).lines().count(), 1);
    assert!(!list(&url).contains(&id));
    assert!(failed(&run(&["sessions", "delete", "--store", &url, &id])).contains("no session"));
    ok(&run(&["sessions", "delete", "--store", &client_store, &id]));
    // Sweep: kept by the default lifetime, gone with a lifetime of zero.
    assert!(ok(&run(&["sessions", "sweep", "--store", &url])).contains("deleted 0"));
    thread::sleep(Duration::from_millis(1100));
    let swept = ok(&run(&[
        "sessions",
        "sweep",
        "--store",
        &url,
        "--session-lifetime",
        "0",
    ]));
    assert!(swept.contains("deleted 1"), "{swept}");
    assert!(list(&url).is_empty());
    assert!(Path::new(&client_store).exists());
}
