//! A real PostgreSQL for tests: the cluster named by `MLSTLS_TEST_POSTGRES`
//! (a URL whose role may create databases; `.ci/run` starts one), or else a
//! throwaway cluster this test binary starts itself on loopback. Each test
//! gets its own database, so tests run in parallel. Never skipped: if no
//! cluster can be had, the test fails saying how to fix it.
//!
//! The throwaway cluster runs as an unprivileged user (PostgreSQL refuses
//! root): as root, the user `mlstls-pg` (created with `useradd` if
//! missing); otherwise the current user. Its data and unix socket are in a
//! temporary directory, it listens on 127.0.0.1 only with trust
//! authentication, and a supervising shell stops it and removes the
//! directory when this process exits (its stdin, a pipe from us, closes).

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable naming an existing cluster.
pub const ENV: &str = "MLSTLS_TEST_POSTGRES";
const USER: &str = "mlstls-pg";

pub struct Cluster {
    /// `postgres://user@127.0.0.1:port`, without a database.
    base: String,
    /// The database to connect to for administration.
    admin_db: String,
    /// Keeps the supervising shell's stdin open for our lifetime.
    _guard: Option<std::process::ChildStdin>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The cluster shared by this test binary.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match std::env::var(ENV) {
        Ok(url) => from_url(&url),
        Err(_) => start().unwrap_or_else(|e| {
            panic!(
                "no PostgreSQL for the tests: {e}\n\
                 Fix: install PostgreSQL 13+ (Debian: apt-get install postgresql; the \
                 harness finds initdb and postgres on PATH or in /usr/lib/postgresql/*/bin), \
                 or set {ENV}=postgres://USER@HOST:PORT/DB naming a role that may create \
                 databases."
            )
        }),
    })
}

/// A new, empty database on the shared cluster; its URL.
pub fn fresh_database() -> String {
    let c = cluster();
    let name = format!(
        "mlstls_t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    admin(&c.url(&c.admin_db), &format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    c.url(&name)
}

impl Cluster {
    pub fn url(&self, db: &str) -> String {
        format!("{}/{db}", self.base)
    }
}

/// Runs `sql` on `url` on a thread of its own (callable from any context).
pub fn admin(url: &str, sql: &str) -> Result<(), String> {
    query(url, sql).map(drop)
}

/// Runs `sql` on `url`; the first column of each row, as text.
pub fn query(url: &str, sql: &str) -> Result<Vec<String>, String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let task = tokio::spawn(conn);
            let rows = client
                .simple_query(&sql)
                .await
                .map_err(|e| format!("{e:?}"))?;
            drop(client);
            let _ = task.await;
            Ok(rows
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or("").to_string())
                    }
                    _ => None,
                })
                .collect())
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_string())?
}

fn from_url(url: &str) -> Cluster {
    // Split off the database: postgres://user@host:port[/db][?params].
    let (rest, db) = match url
        .strip_prefix("postgres://")
        .or(url.strip_prefix("postgresql://"))
    {
        Some(rest) => match rest.split_once('/') {
            Some((authority, db)) => (authority.to_string(), db.to_string()),
            None => (rest.to_string(), String::new()),
        },
        None => panic!("{ENV} must be a postgres:// URL, not {url:?}"),
    };
    let db = if db.is_empty() { "postgres".into() } else { db };
    Cluster {
        base: format!("postgres://{rest}"),
        admin_db: db,
        _guard: None,
    }
}

/// Where `initdb` and `postgres` are: `MLSTLS_PG_BIN`, the newest
/// `/usr/lib/postgresql/*/bin`, or `PATH`.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("MLSTLS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        .ok_or_else(|| "initdb and postgres not found".into())
}

/// (uid, gid) to run PostgreSQL as: ourselves, or as root `mlstls-pg`.
fn run_as() -> Result<Option<(u32, u32)>, String> {
    let out = |cmd: &mut Command| -> Option<String> {
        let o = cmd.output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let me = out(Command::new("id").arg("-u")).ok_or("`id -u` failed")?;
    if me != "0" {
        return Ok(None);
    }
    if out(Command::new("id").args(["-u", USER])).is_none() {
        let ok = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status()
            .map_err(|e| format!("useradd {USER}: {e}"))?;
        // Another test binary may have created it meanwhile.
        if !ok.success() && out(Command::new("id").args(["-u", USER])).is_none() {
            return Err(format!("useradd {USER} failed"));
        }
    }
    let uid = out(Command::new("id").args(["-u", USER])).ok_or("id -u")?;
    let gid = out(Command::new("id").args(["-g", USER])).ok_or("id -g")?;
    Ok(Some((
        uid.parse().map_err(|_| "uid")?,
        gid.parse().map_err(|_| "gid")?,
    )))
}

fn command(path: &Path, user: Option<(u32, u32)>, cwd: &Path) -> Command {
    let mut cmd = Command::new(path);
    cmd.current_dir(cwd);
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt as _;
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts a throwaway cluster (see the module docs).
pub fn start() -> Result<Cluster, String> {
    start_with(&[("fsync", "off")])
}

/// Starts a throwaway cluster with extra `-c` settings (three attempts:
/// the free port we picked may be taken meanwhile).
pub fn start_with(settings: &[(&str, &str)]) -> Result<Cluster, String> {
    let bin = bin_dir()?;
    let user = run_as()?;
    let mut last = String::new();
    for _ in 0..3 {
        match try_start(&bin, user, settings) {
            Ok(c) => return Ok(c),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn try_start(
    bin: &Path,
    user: Option<(u32, u32)>,
    settings: &[(&str, &str)],
) -> Result<Cluster, String> {
    let dir = std::env::temp_dir().join(format!(
        "mlstls-pg-{}-{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let init = command(&bin.join("initdb"), user, &dir)
        .args(["-D"])
        .arg(&data)
        .args(["-U", "mlstls", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", bin.join("initdb").display()))?;
    if !init.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let port = free_port()?;
    let mut args = format!(
        "-D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 -c max_connections=300",
        data.display(),
        dir.display()
    );
    for (k, v) in settings {
        args.push_str(&format!(" -c {k}={v}"));
    }
    // The shell stops PostgreSQL and removes the directory once our end of
    // its stdin closes, that is when this process exits.
    let script = format!(
        "'{}' {args} >'{}/log' 2>&1 & pid=$!\n\
         read _ || true\n\
         kill -INT $pid; wait $pid; rm -rf '{}'",
        bin.join("postgres").display(),
        dir.display(),
        dir.display()
    );
    let mut child = command(Path::new("/bin/sh"), user, &dir)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let stdin = child.stdin.take();
    let base = format!("postgres://mlstls@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if query(&format!("{base}/postgres"), "SELECT 1").is_ok() {
            // Reap the shell when it ends, in the background.
            std::thread::spawn(move || child.wait());
            return Ok(Cluster {
                base,
                admin_db: "postgres".into(),
                _guard: stdin,
            });
        }
        if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    drop(stdin); // stops it, if it started at all, and removes the directory
    let _ = child.wait();
    let _ = std::io::stderr().write_all(log.as_bytes());
    Err(format!("postgres did not start; its log:\n{log}"))
}
pub mod fleet;
