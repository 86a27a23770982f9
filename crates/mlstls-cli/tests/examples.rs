//! The library's examples, compiled into this test and run against files
//! the `mlstls` tool makes (identity files, trust files, a CA): what a Rust
//! developer following the crate docs would do.

#[allow(dead_code)]
#[path = "../../mls-tls/examples/tokio_server.rs"]
mod tokio_server;

#[allow(dead_code)]
#[path = "../../mls-tls/examples/tokio_client.rs"]
mod tokio_client;

#[allow(dead_code)]
#[path = "../../mls-tls/examples/x509_client.rs"]
mod x509_client;

mod harness;
use harness::{ok, run, s, Dir};

/// Runs `mlstls` with `args`; returns stdout.
fn mlstls(args: &[&str]) -> String {
    ok(&run(args))
}

/// Identity and trust files for `name`, and its line in `trust` of the peer.
fn keygen(dir: &Dir, name: &str, trust: &str) {
    let line = harness::keygen(dir, name);
    std::fs::write(dir.p(trust), line).unwrap();
}

#[test]
fn tokio_examples_connect_then_resume_with_files_the_tool_made() {
    let dir = Dir::new("tokio");
    keygen(&dir, "server", "servers.pub");
    keygen(&dir, "client", "clients.pub");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = tokio_server::config(
            &dir.p("server.id"),
            &dir.p("clients.pub"),
            &dir.p("server.db"),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(tokio_server::serve(listener, server));
        let client = tokio_client::config(
            &dir.p("client.id"),
            &dir.p("servers.pub"),
            &dir.p("client.db"),
        )
        .unwrap();
        let (echo, resumed) = tokio_client::run(&addr, client.clone(), b"first")
            .await
            .unwrap();
        assert_eq!((echo.as_slice(), resumed), (&b"first"[..], false));
        // The second run resumes from the file store, its data as early data.
        let (echo, resumed) = tokio_client::run(&addr, client.clone(), b"second")
            .await
            .unwrap();
        assert_eq!((echo.as_slice(), resumed), (&b"second"[..], true));
        // A client the server's trust file does not list is refused.
        keygen(&dir, "mallory", "unused.pub");
        let mallory =
            tokio_client::config(&dir.p("mallory.id"), &dir.p("servers.pub"), &dir.p("m.db"))
                .unwrap();
        let err = tokio_client::run(&addr, mallory, b"x").await.unwrap_err();
        assert!(err.to_string().contains("bad_certificate"), "{err}");
    });
}

#[test]
fn x509_example_authenticates_the_server_by_certificate() {
    let dir = Dir::new("x509");
    let (ca, ca_key) = (dir.p("ca.pem"), dir.p("ca.key"));
    mlstls(&["ca", "--cert", s(&ca), "--key", s(&ca_key)]);
    let server_id = dir.p("server.id");
    mlstls(&[
        "keygen",
        "--x509",
        "--ca-cert",
        s(&ca),
        "--ca-key",
        s(&ca_key),
        "--name",
        "localhost",
        "--out",
        s(&server_id),
    ]);
    keygen(&dir, "client", "clients.pub");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server =
            tokio_server::config(&server_id, &dir.p("clients.pub"), &dir.p("server.db")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(tokio_server::serve(listener, server));
        let client = x509_client::config(&dir.p("client.id"), &ca, "localhost").unwrap();
        let (echo, peer) = x509_client::run(&addr, client, b"certified").await.unwrap();
        assert_eq!(echo, b"certified");
        assert!(peer.contains("localhost"), "{peer}");
        // The same server under another name is refused.
        let wrong = x509_client::config(&dir.p("client.id"), &ca, "other.example").unwrap();
        assert!(x509_client::run(&addr, wrong, b"x").await.is_err());
    });
}
