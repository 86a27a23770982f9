//! What the tests of the real `mlstls` binary share: a scratch directory,
//! child processes that cannot outlive a failed test, key files, ports.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::thread;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_mlstls");

/// A scratch directory, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    /// A fresh directory named after `tag` (unique within a test binary)
    /// and this process.
    pub fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("mlstls-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    pub fn p(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// [`Dir::p`] as a string, for command arguments.
    pub fn s(&self, name: &str) -> String {
        s(&self.p(name)).to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the child when dropped, so failed tests leave no servers behind.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `mlstls args`, without a store key from the caller's environment.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("MLSTLS_STORE_KEY")
        .output()
        .unwrap()
}

/// The command succeeded (its stderr is the failure message otherwise).
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command succeeded; its stdout.
pub fn ok(out: &Output) -> String {
    assert_success(out);
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// keygen NAME into DIR/NAME.id, its public line into DIR/NAME.pub; the
/// line.
pub fn keygen(dir: &Dir, name: &str) -> String {
    let id = dir.s(&format!("{name}.id"));
    let line = ok(&run(&["keygen", "--out", &id, "--name", name]));
    std::fs::write(dir.p(&format!("{name}.pub")), &line).unwrap();
    line
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 20 s for a listener on `port`.
pub fn wait_listening(port: u16) {
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
