//! The real `mlstls` binary: keys, trust files, stdio client against an
//! echo server, a tunnel that survives a cut connection, refused peers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

mod harness;
use harness::{assert_success, free_port, keygen, run, s, wait_listening, Dir, Proc, BIN};

/// A client run against an echo server sent `hello` and got it back.
fn assert_echoed_hello(out: &Output) {
    assert_success(out);
    assert_eq!(out.stdout, b"hello");
}

/// `mlstls client` to `127.0.0.1:port` with `DIR/identity.id`, trusting
/// the server's public line.
fn client(dir: &Dir, identity: &str, port: u16) -> Command {
    client_trusting(dir, identity, port, "server.pub")
}

/// `mlstls client` as [`client`], with `DIR/trust` as the trust file.
fn client_trusting(dir: &Dir, identity: &str, port: u16, trust: &str) -> Command {
    let mut c = Command::new(BIN);
    c.arg("client")
        .arg("--connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--identity")
        .arg(dir.p(&format!("{identity}.id")))
        .arg("--trust")
        .arg(dir.p(trust));
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

/// Reads a server's stderr until a line contains `needle` (the server
/// logs a refusal a moment after the client sees it); fails loudly after
/// `GUARD` or at the end of the log. Returns the log so far.
fn log_until(srv: &mut Proc, needle: &str) -> String {
    use std::io::BufRead;
    let stderr = srv.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut log = String::new();
    loop {
        match rx.recv_timeout(GUARD) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(needle) {
                    return log;
                }
            }
            Err(_) => panic!("no {needle:?} in the server's log:\n{log}"),
        }
    }
}

/// Runs a client with `input` on stdin and extra arguments.
fn client_run(dir: &Dir, identity: &str, port: u16, extra: &[&str], input: &[u8]) -> Output {
    let mut child = client(dir, identity, port)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A client that fails may exit before reading its input.
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

#[test]
fn client_summary_names_the_server_suite_and_epoch_at_v_and_quiet_hides_it() {
    let dir = Dir::new("summary");
    keygen(&dir, "server");
    let client_line = keygen(&dir, "client");
    let port = free_port();
    let mut srv = server(&dir, port, &["--echo", "-v"]);
    let out = client_run(&dir, "client", port, &["-v"], b"hello");
    assert_echoed_hello(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let summary = err
        .lines()
        .find(|l| l.starts_with(&format!("connected to 127.0.0.1:{port}")))
        .unwrap_or_else(|| panic!("no summary in:\n{err}"));
    for part in [
        "server 'server' (key ",
        "mlkem768x25519-aes128gcm-sha256-ed25519 (0x004F)",
        "new session",
        "epoch 1",
    ] {
        assert!(summary.contains(part), "{part:?} not in {summary:?}");
    }
    // --quiet: nothing but the data.
    let out = client_run(&dir, "client", port, &["-v", "--quiet"], b"hello");
    assert_echoed_hello(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("connected to"), "{err}");
    // The server's line per connection: address, name, key, suite.
    let log = log_until(&mut srv, "client 'client'");
    let fingerprint = &client_line.split_whitespace().nth(2).unwrap()[..16];
    let line = log
        .lines()
        .find(|l| l.contains("client 'client'"))
        .unwrap_or_else(|| panic!("no connection line in:\n{log}"));
    assert!(line.starts_with("127.0.0.1:"), "{line}");
    assert!(line.contains(fingerprint), "{line}");
    assert!(line.contains("(0x004F), new session, epoch 1"), "{line}");
}

#[test]
fn key_updates_are_logged_at_v_and_sizes_take_units() {
    let dir = Dir::new("updates");
    keygen(&dir, "server");
    keygen(&dir, "client");
    let port = free_port();
    let _srv = server(&dir, port, &["--echo"]);
    let input = vec![7u8; 300_000];
    let out = client_run(
        &dir,
        "client",
        port,
        &["-v", "--update-after-bytes", "64 KiB"],
        &input,
    );
    assert_success(&out);
    assert!(out.stdout == input, "echo differs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key update started"), "{err}");
    assert!(
        err.contains("own key update confirmed") || err.contains("peer's key update applied"),
        "{err}"
    );
    // Plain bytes and units without a space parse too.
    for size in ["1GiB", "1048576", "2MiB"] {
        let out = client(&dir, "client", free_port())
            .args(["--update-after-bytes", size])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot connect"), "{size}: {err}");
    }
    let out = client(&dir, "client", free_port())
        .args(["--update-after-bytes", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a size"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_shows_the_library_defaults() {
    for cmd in ["client", "server"] {
        let out = run(&[cmd, "--help"]);
        assert_success(&out);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("[default: 1GiB]"), "{help}");
        assert!(help.contains("[default: 120]"), "{help}");
    }
}

#[test]
fn client_refuses_server_only_flags() {
    let dir = Dir::new("clientauth");
    keygen(&dir, "client");
    let out = client(&dir, "client", free_port())
        .args(["--client-auth", "optional"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--client-auth"), "{err}");
    assert!(!err.contains("cannot connect"), "{err}");
}

#[test]
fn server_name_without_ca_is_warned_about() {
    let dir = Dir::new("sniwarn");
    keygen(&dir, "client");
    std::fs::write(dir.p("server.pub"), "").unwrap();
    let out = client(&dir, "client", free_port())
        .args(["--server-name", "server.example"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--server-name only applies to X.509"), "{err}");
}

#[test]
fn suites_lists_every_suite_with_the_default_marked() {
    let out = run(&["suites"]);
    assert_success(&out);
    let list = String::from_utf8(out.stdout).unwrap();
    assert_eq!(list.lines().count(), 10, "{list}");
    let default: Vec<_> = list.lines().filter(|l| l.contains("(default)")).collect();
    assert_eq!(default.len(), 1, "{list}");
    assert!(
        default[0].starts_with("0x004F  mlkem768x25519-aes128gcm-sha256-ed25519 ")
            && default[0].contains("post-quantum"),
        "{list}"
    );
    assert!(
        list.lines().any(
            |l| l.starts_with("0x0001  x25519-aes128gcm-sha256-ed25519 ") && l.contains("classic")
        ),
        "{list}"
    );
}

#[test]
fn client_rejecting_the_server_names_its_key_name_and_trust_file() {
    let dir = Dir::new("rejectserver");
    keygen(&dir, "server");
    keygen(&dir, "client");
    let other = keygen(&dir, "other");
    std::fs::write(dir.p("other-only.pub"), other).unwrap();
    let port = free_port();
    let mut srv = server(&dir, port, &["--echo"]);
    let out = client_trusting(&dir, "client", port, "other-only.pub")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("we rejected the server"), "{err}");
    assert!(err.contains("the server's key "), "{err}");
    assert!(
        err.contains("(name 'server') is not in") && err.contains("other-only.pub"),
        "{err}"
    );
    // The server's log names the refusing side too.
    log_until(
        &mut srv,
        "the client rejected our identity (bad_certificate)",
    );
}

#[test]
fn untrusted_client_is_told_to_add_its_public_line() {
    let dir = Dir::new("addline");
    keygen(&dir, "server");
    keygen(&dir, "client");
    keygen(&dir, "mallory");
    let port = free_port();
    let _srv = server(&dir, port, &["--echo"]);
    let out = client(&dir, "mallory", port)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("the server rejected our identity (bad_certificate)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("`mlstls pubkey {}`", s(&dir.p("mallory.id")))),
        "{err}"
    );
    assert!(!err.contains("or it does not trust us"), "{err}");
}

#[test]
fn suite_mismatch_says_the_suites_differ() {
    let dir = Dir::new("suites");
    keygen(&dir, "server");
    let id = dir.p("client.id");
    let out = run(&[
        "keygen",
        "--out",
        s(&id),
        "--name",
        "client",
        "--suite",
        "0x0001",
    ]);
    assert_success(&out);
    std::fs::write(dir.p("client.pub"), &out.stdout).unwrap();
    let port = free_port();
    let mut srv = server(&dir, port, &["--echo"]);
    let out = client(&dir, "client", port)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("handshake_failure"), "{err}");
    assert!(err.contains("ciphersuites differ"), "{err}");
    assert!(
        err.contains("x25519-aes128gcm-sha256-ed25519 (0x0001)") && err.contains("client.id"),
        "{err}"
    );
    // The refusing side's log has the details.
    log_until(
        &mut srv,
        "ciphersuite x25519-aes128gcm-sha256-ed25519 (0x0001) not offered",
    );
}

#[test]
fn identity_file_given_as_trust_file_is_one_clear_line() {
    let dir = Dir::new("trustid");
    keygen(&dir, "server");
    keygen(&dir, "client");
    let out = client_trusting(&dir, "client", free_port(), "server.id")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("UTF-8"), "{err}");
    assert!(err.contains("identity file"), "{err}");
    assert!(err.contains("mlstls pubkey"), "{err}");
}

#[test]
fn ca_with_an_existing_output_writes_nothing() {
    let dir = Dir::new("caexists");
    std::fs::write(dir.p("ca.pem"), "keep me").unwrap();
    let out = run(&[
        "ca",
        "--cert",
        s(&dir.p("ca.pem")),
        "--key",
        s(&dir.p("ca.key")),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert!(!dir.p("ca.key").exists(), "an orphan CA key was left");
    assert_eq!(std::fs::read_to_string(dir.p("ca.pem")).unwrap(), "keep me");
}

#[test]
fn x509_names_must_be_dns_names_or_ip_addresses() {
    let dir = Dir::new("x509names");
    x509_pki(&dir, &[]);
    let keygen_x509 = |name: &str, out: &str| {
        run(&[
            "keygen",
            "--out",
            s(&dir.p(out)),
            "--name",
            name,
            "--x509",
            "--ca-cert",
            s(&dir.p("ca.pem")),
            "--ca-key",
            s(&dir.p("ca.key")),
        ])
    };
    let out = keygen_x509("not a dns name", "bad.id");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a DNS name or IP address"), "{err}");
    assert!(!dir.p("bad.id").exists());
    // An IP address works: the client checks it against --connect's host.
    assert_success(&keygen_x509("127.0.0.1", "server.test.id"));
    assert_success(&keygen_x509("client.test", "client.test.id"));
    let port = free_port();
    let _srv = x509_server(&dir, port, &[]);
    let mut child = Command::new(BIN)
        .args(["client", "--connect", &format!("127.0.0.1:{port}")])
        .args(["--identity", s(&dir.p("client.test.id"))])
        .args(["--ca", s(&dir.p("ca.pem"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"hello");
    assert_echoed_hello(&child.wait_with_output().unwrap());
}

/// Base64 of PEM text (one block), decoded without a crate.
fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = b64.bytes().filter(|&c| c != b'=').map(val).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &v)| n | (u32::from(v) << (18 - 6 * i)));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out[..c.len() - 1].to_vec()
        })
        .collect()
}

#[test]
fn pubkey_pem_is_the_key_of_the_public_line() {
    let dir = Dir::new("pubkeypem");
    let line = keygen(&dir, "laptop");
    let out = run(&["pubkey", "--pem", s(&dir.p("laptop.id"))]);
    assert_success(&out);
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let der = pem_body(&pem);
    // Ed25519 SubjectPublicKeyInfo: fixed prefix, then the raw key.
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    let key = line.split_whitespace().nth(2).unwrap();
    assert_eq!(hex, format!("302a300506032b6570032100{key}"));
    // ML-DSA keys have no certificate form here: one clear line.
    let out = run(&[
        "keygen",
        "--out",
        s(&dir.p("pq.id")),
        "--suite",
        "mlkem768-aes256gcm-sha384-mldsa65",
    ]);
    assert_success(&out);
    let out = run(&["pubkey", "--pem", s(&dir.p("pq.id"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ML-DSA"));
}

/// The README's flow for a real CA: `pubkey --pem`, openssl issues a
/// certificate for that key, `attach-chain` makes the X.509 identity.
/// Skipped where openssl is not installed.
#[test]
fn pubkey_pem_certified_by_openssl_attaches() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not installed: skipped");
        return;
    }
    let dir = Dir::new("openssl");
    x509_pki(&dir, &["server.test"]);
    keygen(&dir, "laptop");
    let out = run(&["pubkey", "--pem", s(&dir.p("laptop.id"))]);
    assert_success(&out);
    std::fs::write(dir.p("laptop.spki.pem"), &out.stdout).unwrap();
    std::fs::write(
        dir.p("ext.cnf"),
        "subjectAltName=DNS:laptop.test\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-new", "-subj", "/CN=laptop.test", "-days", "90"])
        .args(["-force_pubkey", s(&dir.p("laptop.spki.pem"))])
        .args(["-CA", s(&dir.p("ca.pem")), "-CAkey", s(&dir.p("ca.key"))])
        .args(["-extfile", s(&dir.p("ext.cnf"))])
        .args(["-out", s(&dir.p("laptop.pem"))])
        .output()
        .unwrap();
    assert_success(&out);
    let out = run(&[
        "attach-chain",
        "--identity",
        s(&dir.p("laptop.id")),
        "--chain",
        s(&dir.p("laptop.pem")),
        "--out",
        s(&dir.p("laptop.test.id")),
    ]);
    assert_success(&out);
    let port = free_port();
    let _srv = x509_server(&dir, port, &[]);
    let out = x509_client(&dir, "laptop.test", port, "server.test");
    assert_echoed_hello(&out);
}

/// A deadlock guard: far above what any step here needs.
const GUARD: Duration = Duration::from_secs(60);

/// Sends `signal` (INT, TERM) to a process, as a shell's `kill` does.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child to exit by itself; fails loudly after `GUARD`.
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + GUARD;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not exit within {GUARD:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A plain TCP echo service for one connection; reports how that
/// connection ended: `Ok(bytes)` for a clean end of stream (FIN), `Err`
/// for a reset.
fn forward_target() -> (u16, std::sync::mpsc::Receiver<Result<usize, String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let Ok((mut c, _)) = l.accept() else { return };
        let mut total = 0;
        let mut buf = [0u8; 4096];
        let end = loop {
            match c.read(&mut buf) {
                Ok(0) => break Ok(total),
                Ok(n) => {
                    total += n;
                    if c.write_all(&buf[..n]).is_err() {
                        break Err("write failed".to_string());
                    }
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        let _ = tx.send(end);
    });
    (port, rx)
}

/// A stdio client through a forwarding server, with `hello` echoed
/// back: the stream is established and flowing. Returns the server, the
/// client (stdin still open) and how the forward connection ends.
fn flowing_stream(dir: &Dir) -> (Proc, Proc, std::sync::mpsc::Receiver<Result<usize, String>>) {
    keygen(dir, "server");
    keygen(dir, "client");
    let (target, ended) = forward_target();
    let port = free_port();
    let forward = format!("127.0.0.1:{target}");
    let srv = server(dir, port, &["--forward", &forward, "-v"]);
    let mut child = client(dir, "client", port)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(b"hello").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut got = [0u8; 5];
        let _ = tx.send(stdout.read_exact(&mut got).map(|()| got));
    });
    let got = rx.recv_timeout(GUARD).expect("no echo").unwrap();
    assert_eq!(&got, b"hello");
    (srv, Proc(child), ended)
}

#[test]
fn sigint_ends_the_clients_stream_cleanly_and_the_server_closes_its_forward() {
    let dir = Dir::new("sigclient");
    let (mut srv, mut cli, ended) = flowing_stream(&dir);
    signal(cli.0.id(), "INT");
    let status = wait_exit(&mut cli.0, "the client");
    let mut err = String::new();
    cli.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // Ended by the signal (the shells' 128 + 2), not killed by it.
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    // The server ends the forward connection at once, cleanly (FIN),
    // instead of waiting minutes for the client to resume.
    let end = ended
        .recv_timeout(GUARD)
        .expect("forward connection still open");
    assert_eq!(end, Ok(5));
    log_until(&mut srv, "the client was interrupted");
}

#[test]
fn sigterm_stops_the_server_after_telling_its_clients() {
    let dir = Dir::new("sigserver");
    let (mut srv, mut cli, ended) = flowing_stream(&dir);
    signal(srv.0.id(), "TERM");
    let status = wait_exit(&mut srv.0, "the server");
    assert!(status.success(), "{status}");
    let end = ended
        .recv_timeout(GUARD)
        .expect("forward connection still open");
    assert_eq!(end, Ok(5));
    // The client is told why its stream ended, on one line.
    drop(cli.0.stdin.take());
    let status = wait_exit(&mut cli.0, "the client");
    let mut err = String::new();
    cli.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the server is shutting down"), "{err}");
}

#[test]
fn a_second_sigint_exits_at_once() {
    use std::io::BufRead;
    let dir = Dir::new("sigtwice");
    keygen(&dir, "server");
    keygen(&dir, "client");
    // A server that never answers: the tunnel's handshake hangs, so the
    // first signal has a stream to wait for.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let local = free_port();
    let mut cli = Proc(
        client(&dir, "client", port)
            .args(["--listen", &format!("127.0.0.1:{local}"), "-v"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = cli.0.stderr.take().unwrap();
    thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let mut wait_for = |needle: &str| loop {
        let line = rx
            .recv_timeout(GUARD)
            .unwrap_or_else(|_| panic!("no {needle:?} in:\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if line.contains(needle) {
            return log.clone();
        }
    };
    wait_listening(local);
    let _conn = TcpStream::connect(("127.0.0.1", local)).unwrap();
    wait_for("new local connection");
    signal(cli.0.id(), "INT");
    wait_for("SIGINT: ending the stream");
    signal(cli.0.id(), "INT");
    let status = wait_exit(&mut cli.0, "the client");
    let log = wait_for("SIGINT again: exiting at once");
    assert_eq!(status.code(), Some(130), "{log}");
    drop(silent);
}
