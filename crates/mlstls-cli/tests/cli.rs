//! The real `mlstls` binary: keys, trust files, stdio client against an
//! echo server, a tunnel that survives a cut connection, refused peers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mlstls");

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("mlstls-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn p(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the child when dropped, so failed tests leave no servers behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// The command succeeded; its stderr is the failure message otherwise.
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client run against an echo server sent `hello` and got it back.
fn assert_echoed_hello(out: &Output) {
    assert_success(out);
    assert_eq!(out.stdout, b"hello");
}

/// keygen NAME into DIR/NAME.id, its public line into DIR/NAME.pub.
fn keygen(dir: &Dir, name: &str) -> String {
    let id = dir.p(&format!("{name}.id"));
    let out = run(&["keygen", "--out", id.to_str().unwrap(), "--name", name]);
    assert_success(&out);
    let line = String::from_utf8(out.stdout).unwrap();
    std::fs::write(dir.p(&format!("{name}.pub")), &line).unwrap();
    line
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `mlstls client` to `127.0.0.1:port` with `DIR/identity.id`, trusting
/// the server's public line.
fn client(dir: &Dir, identity: &str, port: u16) -> Command {
    let mut c = Command::new(BIN);
    c.arg("client")
        .arg("--connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--identity")
        .arg(dir.p(&format!("{identity}.id")))
        .arg("--trust")
        .arg(dir.p("server.pub"));
    c
}

fn server(dir: &Dir, port: u16, mode: &[&str]) -> Proc {
    let child = Command::new(BIN)
        .arg("server")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--identity")
        .arg(dir.p("server.id"))
        .arg("--trust")
        .arg(dir.p("client.pub"))
        .args(mode)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port);
    Proc(child)
}

#[test]
fn keygen_writes_private_file_and_pubkey_repeats_the_line() {
    let dir = Dir::new("keygen");
    let line = keygen(&dir, "alice");
    assert!(
        line.starts_with("mlstls-key mlkem768x25519-aes128gcm-sha256-ed25519 "),
        "{line}"
    );
    assert!(line.trim_end().ends_with(" alice"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.p("alice.id"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = run(&["pubkey", s(&dir.p("alice.id"))]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), line);
    // Never overwritten; missing files are one clear line.
    let again = run(&["keygen", "--out", s(&dir.p("alice.id"))]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let missing = run(&["pubkey", s(&dir.p("nope.id"))]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn stdio_client_against_echo_server() {
    let dir = Dir::new("stdio");
    keygen(&dir, "server");
    keygen(&dir, "client");
    let port = free_port();
    let _srv = server(&dir, port, &["--echo"]);
    let mut child = client(&dir, "client", port)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = {
        let input = input.clone();
        thread::spawn(move || stdin.write_all(&input).unwrap())
    };
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_success(&out);
    assert!(
        out.stdout == input,
        "echo differs ({} bytes)",
        out.stdout.len()
    );
}

#[test]
fn untrusted_peer_is_refused_on_both_sides() {
    let dir = Dir::new("refuse");
    keygen(&dir, "server");
    keygen(&dir, "client");
    keygen(&dir, "mallory");
    let port = free_port();
    let mut srv = server(&dir, port, &["--echo"]);
    let out = client(&dir, "mallory", port)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let client_err = String::from_utf8_lossy(&out.stderr);
    assert!(client_err.contains("bad_certificate"), "{client_err}");
    assert!(client_err.contains("trust file"), "{client_err}");
    let _ = srv.0.kill();
    let mut log = String::new();
    srv.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    // The refusing side's log names the key, the name and the trust file.
    assert!(
        log.contains("(name 'mallory') is not in") && log.contains("client.pub"),
        "{log}"
    );
}

/// A TCP proxy whose connections the test can cut, as a network would.
struct Cutter {
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Cutter {
    fn start(listen: u16, target: u16) -> Self {
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let l = TcpListener::bind(("127.0.0.1", listen)).unwrap();
        let live2 = live.clone();
        thread::spawn(move || {
            for inbound in l.incoming() {
                let Ok(inbound) = inbound else { return };
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                live2.lock().unwrap().push(inbound.try_clone().unwrap());
                live2.lock().unwrap().push(outbound.try_clone().unwrap());
                for (mut a, mut b) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut a, &mut b);
                        let _ = b.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Self { live }
    }

    fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn tunnel_survives_a_cut_upstream_connection() {
    let dir = Dir::new("tunnel");
    keygen(&dir, "server");
    keygen(&dir, "client");
    // A plain TCP echo service behind the server.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in echo.incoming() {
            let Ok(mut c) = c else { return };
            thread::spawn(move || {
                let mut r = c.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut c);
                let _ = c.shutdown(Shutdown::Write);
            });
        }
    });
    let server_port = free_port();
    let forward = format!("127.0.0.1:{echo_port}");
    let _srv = server(&dir, server_port, &["--forward", &forward]);
    let proxy_port = free_port();
    let cutter = Cutter::start(proxy_port, server_port);
    let local_port = free_port();
    let _client = Proc(
        client(&dir, "client", proxy_port)
            .args(["--listen", &format!("127.0.0.1:{local_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(local_port);

    // Several concurrent local connections, each streaming its own pattern.
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..4u8)
        .map(|k| {
            let started = started.clone();
            thread::spawn(move || {
                let data: Vec<u8> = (0..400_000u32)
                    .map(|i| (i as u8).wrapping_mul(k + 1))
                    .collect();
                let mut c = TcpStream::connect(("127.0.0.1", local_port)).unwrap();
                let mut r = c.try_clone().unwrap();
                let reader = thread::spawn(move || {
                    let mut got = vec![0u8; 1];
                    r.read_exact(&mut got).unwrap();
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    r.read_to_end(&mut got).unwrap();
                    got
                });
                for chunk in data.chunks(5_000) {
                    c.write_all(chunk).unwrap();
                    thread::sleep(Duration::from_millis(10));
                }
                c.shutdown(Shutdown::Write).unwrap();
                (data, reader.join().unwrap())
            })
        })
        .collect();
    // Once every stream is flowing, cut all upstream connections, twice.
    while started.load(std::sync::atomic::Ordering::SeqCst) < 4 {
        thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..2 {
        cutter.cut();
        thread::sleep(Duration::from_millis(300));
    }
    for w in workers {
        let (sent, got) = w.join().unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "stream corrupted across the cut");
    }
}

#[test]
fn server_speaking_something_else_is_one_clear_line() {
    let dir = Dir::new("garbage");
    keygen(&dir, "server");
    keygen(&dir, "client");
    // A plain TCP service that answers like an HTTP server.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            let _ = c.shutdown(Shutdown::Both);
        }
    });
    let out = client(&dir, "client", port)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("mlstls server") || err.contains("handshake"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // A refused connection is one line too.
    let out = client(&dir, "client", free_port())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

/// `mlstls ca` into DIR/ca.pem + DIR/ca.key, then X.509 identities
/// `NAME.id` certified for `NAME` (a DNS name).
fn x509_pki(dir: &Dir, names: &[&str]) {
    let out = run(&[
        "ca",
        "--cert",
        s(&dir.p("ca.pem")),
        "--key",
        s(&dir.p("ca.key")),
    ]);
    assert_success(&out);
    for name in names {
        let out = run(&[
            "keygen",
            "--out",
            s(&dir.p(&format!("{name}.id"))),
            "--name",
            name,
            "--x509",
            "--ca-cert",
            s(&dir.p("ca.pem")),
            "--ca-key",
            s(&dir.p("ca.key")),
        ]);
        assert_success(&out);
    }
}

/// An echo server with identity `DIR/server.test.id` trusting the CA.
fn x509_server(dir: &Dir, port: u16, extra: &[&str]) -> Proc {
    let child = Command::new(BIN)
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--echo"])
        .args([
            "--identity",
            s(&dir.p("server.test.id")),
            "--ca",
            s(&dir.p("ca.pem")),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port);
    Proc(child)
}

/// `mlstls client` with identity `DIR/NAME.id`, the CA and a server name;
/// sends `hello` and returns the result.
fn x509_client(dir: &Dir, name: &str, port: u16, server_name: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(["client", "--connect", &format!("127.0.0.1:{port}")])
        .args(["--identity", s(&dir.p(&format!("{name}.id")))])
        .args(["--ca", s(&dir.p("ca.pem")), "--server-name", server_name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A client that refuses the server may exit before reading stdin.
    let _ = child.stdin.take().unwrap().write_all(b"hello");
    child.wait_with_output().unwrap()
}

#[test]
fn x509_identities_connect_with_ca_and_server_name() {
    let dir = Dir::new("x509");
    x509_pki(&dir, &["server.test", "client.test"]);
    let port = free_port();
    let _srv = x509_server(&dir, port, &["--server-name", "server.test"]);
    let out = x509_client(&dir, "client.test", port, "server.test");
    assert_echoed_hello(&out);
}

#[test]
fn x509_wrong_server_name_is_refused_by_the_client() {
    let dir = Dir::new("x509name");
    x509_pki(&dir, &["server.test", "client.test"]);
    let port = free_port();
    let _srv = x509_server(&dir, port, &[]);
    let out = x509_client(&dir, "client.test", port, "other.test");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not valid for server name other.test"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn x509_client_auth_required_and_optional() {
    let dir = Dir::new("x509auth");
    x509_pki(&dir, &["server.test"]);
    keygen(&dir, "anon");
    // Required (the default with --ca): a bare key is refused.
    let port = free_port();
    let mut srv = x509_server(&dir, port, &[]);
    let out = x509_client(&dir, "anon", port, "server.test");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad_certificate"), "{err}");
    let _ = srv.0.kill();
    let mut log = String::new();
    srv.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("X.509 certificate is required"), "{log}");
    // Optional: the same client is let in anonymously.
    let port = free_port();
    let _srv = x509_server(&dir, port, &["--client-auth", "optional"]);
    let out = x509_client(&dir, "anon", port, "server.test");
    assert_echoed_hello(&out);
}

#[test]
fn x509_setup_mistakes_are_one_clear_line() {
    let dir = Dir::new("x509mistakes");
    x509_pki(&dir, &["server.test"]);
    // ML-DSA keys cannot be certified here.
    let out = run(&[
        "keygen",
        "--out",
        s(&dir.p("pq.id")),
        "--name",
        "pq.test",
        "--suite",
        "mlkem768-aes256gcm-sha384-mldsa65",
        "--x509",
        "--ca-cert",
        s(&dir.p("ca.pem")),
        "--ca-key",
        s(&dir.p("ca.key")),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ML-DSA"), "{err}");
    assert!(!dir.p("pq.id").exists());
    // A server whose certificate does not name --server-name does not start.
    let out = run(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--echo",
        "--identity",
        s(&dir.p("server.test.id")),
        "--ca",
        s(&dir.p("ca.pem")),
        "--server-name",
        "elsewhere.test",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not valid for server name elsewhere.test"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // Neither --trust nor --ca: told what to give.
    let out = run(&[
        "client",
        "--connect",
        "127.0.0.1:1",
        "--identity",
        s(&dir.p("server.test.id")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trust"));
}

/// A certificate from the test CA in DIR for the Ed25519 key of a public
/// line, as an outside CA would issue it (PEM).
fn issue_for_line(dir: &Dir, line: &str, name: &str) -> String {
    struct Key(Vec<u8>);
    impl rcgen::PublicKeyData for Key {
        fn der_bytes(&self) -> &[u8] {
            &self.0
        }
        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_ED25519
        }
    }
    let hex = line.split_whitespace().nth(2).unwrap();
    let key: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.p("ca.key")).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(dir.p("ca.pem")).unwrap(), ca_key)
            .unwrap();
    rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&Key(key), &issuer)
        .unwrap()
        .pem()
}

#[test]
fn attach_chain_turns_a_key_certified_elsewhere_into_an_x509_identity() {
    let dir = Dir::new("x509attach");
    x509_pki(&dir, &["server.test"]);
    let line = keygen(&dir, "laptop");
    std::fs::write(
        dir.p("laptop.pem"),
        issue_for_line(&dir, &line, "laptop.test"),
    )
    .unwrap();
    let attach = |chain: &str, out: &str| {
        run(&[
            "attach-chain",
            "--identity",
            s(&dir.p("laptop.id")),
            "--chain",
            s(&dir.p(chain)),
            "--out",
            s(&dir.p(out)),
        ])
    };
    let out = attach("laptop.pem", "laptop.test.id");
    assert_success(&out);
    let port = free_port();
    let _srv = x509_server(&dir, port, &[]);
    let out = x509_client(&dir, "laptop.test", port, "server.test");
    assert_echoed_hello(&out);
    // A certificate for another key is refused, saying why.
    let other = keygen(&dir, "other");
    std::fs::write(
        dir.p("other.pem"),
        issue_for_line(&dir, &other, "laptop.test"),
    )
    .unwrap();
    let out = attach("other.pem", "wrong.id");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match the MLS signature key"),
        "{err}"
    );
    assert!(!dir.p("wrong.id").exists());
}
