//! Encryption at rest (`store::Sealed`): what the wrapped backend holds is
//! ciphertext bound to its session and version; a record that does not
//! open is a missing session (new handshake), logged with its key id and
//! never its key, and kept; keys rotate; key files are private.

use std::sync::Arc;

use mls_tls::conn::{ClientConfig, ServerConfig};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::{
    conformance, KeyRing, MemoryBackend, Precondition, Sealed, SessionBackend, SessionRecord,
    SessionStore,
};
use mls_tls::tokio::{Acceptor, Connector, Established};
use mls_tls::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const K1: &str = "11111111111111111111111111111111111111111111111111111111111111aa";
const K2: &str = "22222222222222222222222222222222222222222222222222222222222222bb";

fn ring(text: &str) -> KeyRing {
    KeyRing::parse(text).unwrap()
}

fn sealed(text: &str) -> Sealed<Arc<MemoryBackend>> {
    Sealed::new(Arc::default(), ring(text))
}

fn missing(r: Result<Option<SessionRecord>, Error>, why: &str) {
    assert!(
        matches!(r, Err(Error::UnknownSession(ref m)) if m.contains(why)),
        "{why}: {r:?}"
    );
}

#[test]
fn the_wrapped_backend_holds_only_ciphertext() {
    let s = sealed(&format!("1:{K1}"));
    let r = conformance::record(3, 1, 100);
    s.save(&r, Precondition::Absent).unwrap();
    let raw = s.inner().load(r.id()).unwrap().unwrap();
    assert!(raw.data.starts_with(b"MLSTLS-SEALED-1\0\0\0\x01"));
    assert!(
        !raw.data.windows(16).any(|w| w == [3u8; 16]),
        "plaintext at rest"
    );
    assert_eq!(raw.info, r.info, "the index fields stay readable");
    // Two seals of the same record differ (fresh nonce).
    let s2 = sealed(&format!("1:{K1}"));
    s2.save(&r, Precondition::Absent).unwrap();
    assert_ne!(s2.inner().load(r.id()).unwrap().unwrap().data, raw.data);
}

#[test]
fn a_tampered_moved_or_foreign_record_is_missing_and_kept() {
    let s = sealed(&format!("1:{K1}"));
    let r = conformance::record(1, 1, 100);
    s.save(&r, Precondition::Absent).unwrap();
    let good = s.inner().load(r.id()).unwrap().unwrap();

    // One bit flipped in the ciphertext.
    let mut bad = good.clone();
    let last = bad.data.len() - 1;
    bad.data[last] ^= 1;
    s.inner().delete(r.id()).unwrap();
    s.inner().save(&bad, Precondition::Absent).unwrap();
    missing(s.load(r.id()), "does not authenticate under key id 1");
    assert!(s.inner().load(r.id()).unwrap().is_some(), "kept");

    // The sealed data of session 1 under session 2's id.
    let mut moved = good.clone();
    moved.info.id = conformance::record(2, 1, 100).info.id;
    s.inner().save(&moved, Precondition::Absent).unwrap();
    missing(s.load(moved.id()), "does not authenticate");

    // An old version's blob put back under a newer version number.
    let mut rolled = good.clone();
    rolled.version = 2;
    s.inner().delete(r.id()).unwrap();
    s.inner().save(&rolled, Precondition::Absent).unwrap();
    missing(s.load(r.id()), "does not authenticate");

    // Another store with its own key 1.
    let other = sealed(&format!("1:{K2}"));
    other.inner().save(&good, Precondition::Absent).unwrap();
    missing(other.load(r.id()), "does not authenticate under key id 1");

    // Not sealed at all (written before sealing was turned on, or forged).
    let plain = sealed(&format!("1:{K1}"));
    plain.inner().save(&r, Precondition::Absent).unwrap();
    missing(plain.load(r.id()), "not sealed");

    // Truncated.
    let mut short = good.clone();
    short.data.truncate(20);
    let t = sealed(&format!("1:{K1}"));
    t.inner().save(&short, Precondition::Absent).unwrap();
    missing(t.load(r.id()), "truncated");
}

#[test]
fn keys_rotate_new_key_writes_old_keys_read() {
    let backend = Arc::<MemoryBackend>::default();
    let old = Sealed::new(backend.clone(), ring(&format!("1:{K1}")));
    let r1 = conformance::record(1, 1, 100);
    old.save(&r1, Precondition::Absent).unwrap();

    let rotated = Sealed::new(backend.clone(), ring(&format!("1:{K1}\n2:{K2}")));
    assert_eq!(rotated.load(r1.id()).unwrap().unwrap(), r1, "old key reads");
    let r2 = conformance::record(1, 2, 200);
    assert!(rotated.save(&r2, Precondition::Version(1)).unwrap());
    let raw = backend.load(r1.id()).unwrap().unwrap();
    assert_eq!(&raw.data[15..19], &[0, 0, 0, 2], "the newest key writes");

    // A process still on the old ring: the record is under a key it
    // lacks; it is treated as missing and not deleted.
    missing(
        old.load(r1.id()),
        "key id 2, which this store's key ring lacks",
    );
    assert!(
        backend.load(r1.id()).unwrap().is_some(),
        "kept for a process with key 2"
    );
    // Key 1 retired: key-2 records still read.
    let only2 = Sealed::new(backend.clone(), ring(&format!("2:{K2}")));
    assert_eq!(only2.load(r1.id()).unwrap().unwrap(), r2);
}

#[test]
fn key_rings_parse_strictly_without_echoing_keys() {
    assert_eq!(
        ring(&format!("# c\n 2:{K2} , 1:{K1} # x\n")).key_ids(),
        vec![1, 2]
    );
    for (text, why) in [
        ("", "no key"),
        ("# only a comment", "no key"),
        (K1, "ID:HEX"),
        (&format!("0:{K1}"), "number from 1"),
        (&format!("x:{K1}"), "number from 1"),
        (&format!("1:{}", &K1[2..]), "64 hex digits"),
        (&format!("1:{K1}ff"), "64 hex digits"),
        (&format!("1:{}zz", &K1[2..]), "64 hex digits"),
        (&format!("1:{K1}\n1:{K2}"), "appears twice"),
    ] {
        let err = KeyRing::parse(text).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::InvalidConfig(_)) && msg.contains(why),
            "{text}: {msg}"
        );
        assert!(
            !msg.contains(&K1[..20]) && !msg.contains(&K2[..20]),
            "a key in {msg}"
        );
    }
    assert!(!format!("{:?}", ring(&format!("1:{K1}"))).contains(&K1[..20]));
}

#[cfg(unix)]
#[test]
fn key_files_are_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mlstls-seal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.key");
    KeyRing::create_file(&path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(KeyRing::from_file(&path).unwrap().key_ids(), vec![1]);
    let before = std::fs::read(&path).unwrap();
    let err = KeyRing::create_file(&path).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "not overwritten");

    assert_eq!(KeyRing::rotate_file(&path).unwrap(), 2);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(KeyRing::from_file(&path).unwrap().key_ids(), vec![1, 2]);
    assert!(String::from_utf8(std::fs::read(&path).unwrap())
        .unwrap()
        .starts_with(std::str::from_utf8(&before).unwrap().trim_end()));

    for loose in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
        let err = KeyRing::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && err.contains(&format!("{loose:04o}")),
            "{err}"
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(KeyRing::from_file(dir.join("absent")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn key_rings_come_from_the_environment() {
    let var = "MLSTLS_TEST_SEAL_KEY_ENV";
    assert!(KeyRing::from_env(var).unwrap().is_none());
    std::env::set_var(var, format!("1:{K1},2:{K2}"));
    assert_eq!(
        KeyRing::from_env(var).unwrap().unwrap().key_ids(),
        vec![1, 2]
    );
    std::env::set_var(var, "1:nothex");
    let err = KeyRing::from_env(var).unwrap_err().to_string();
    assert!(err.contains(var), "{err}");
    std::env::remove_var(var);
}

const SUITE: CipherSuite = CipherSuite::X25519Aes128GcmSha256Ed25519;

/// End to end: a client whose stored session is sealed under a key it no
/// longer has falls back to a new handshake (`UnknownSession`), and so does
/// one whose server lost the key (the server answers handshake_failure).
#[tokio::test]
async fn an_unreadable_session_means_a_new_handshake() {
    let client_backend = Arc::<MemoryBackend>::default();
    let server_backend = Arc::<MemoryBackend>::default();
    let client_ring = || ring(&format!("1:{K1}"));
    let client_identity = Identity::generate("client", SUITE)
        .unwrap()
        .to_bytes()
        .unwrap();
    let make_client = |keys: KeyRing| {
        Connector::new(Arc::new(ClientConfig::new(
            Identity::from_bytes(&client_identity).unwrap(),
            Arc::new(AcceptAnyPeer),
            Arc::new(SessionStore::with_backend(Sealed::new(
                client_backend.clone(),
                keys,
            ))),
        )))
    };
    let server_identity = Identity::generate("server", SUITE)
        .unwrap()
        .to_bytes()
        .unwrap();
    let serve = |keys: KeyRing| {
        let server = ServerConfig::new(
            Identity::from_bytes(&server_identity).unwrap(),
            Arc::new(AcceptAnyPeer),
            Arc::new(SessionStore::with_backend(Sealed::new(
                server_backend.clone(),
                keys,
            ))),
        );
        let acceptor = Acceptor::new(Arc::new(server));
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut m = [0u8; 4];
                        if tls.read_exact(&mut m).await.is_ok() {
                            let _ = tls.write_all(&m).await;
                            let _ = tls.flush().await;
                        }
                    });
                }
            });
            addr
        }
    };
    let echo = |connector: Connector, addr, id: Option<mls_tls::store::SessionId>| async move {
        let (mut tls, how) = connector
            .resume_or_connect(id.as_ref(), || TcpStream::connect(addr))
            .await
            .unwrap();
        tls.write_all(b"ping").await.unwrap();
        let mut m = [0u8; 4];
        tls.read_exact(&mut m).await.unwrap();
        (tls.get_ref().1.session_id().unwrap().clone(), how)
    };
    let addr = serve(ring(&format!("1:{K2}"))).await;
    let (id, _) = echo(make_client(client_ring()), addr, None).await;
    let (again, how) = echo(make_client(client_ring()), addr, Some(id.clone())).await;
    assert_eq!(
        (again, how),
        (id.clone(), Established::Resumed),
        "sealed both sides"
    );

    // The client's ring no longer has key 1.
    let (new, how) = echo(
        make_client(ring(&format!("2:{K2}"))),
        addr,
        Some(id.clone()),
    )
    .await;
    assert!(
        matches!(how, Established::New { fallback: Some(Error::UnknownSession(ref m)) } if m.contains("lacks")),
        "{how:?}"
    );
    assert_ne!(new, id);
    assert!(client_backend.load(&id).unwrap().is_some(), "kept");

    // The server's ring changed (another store's key under the same id).
    let addr = serve(ring(&format!("1:{K1}"))).await;
    let (newer, how) = echo(
        make_client(ring(&format!("2:{K2}"))),
        addr,
        Some(new.clone()),
    )
    .await;
    assert!(
        matches!(
            how,
            Established::New {
                fallback: Some(Error::AlertReceived(_))
            }
        ),
        "{how:?}"
    );
    assert_ne!(newer, new);
}
