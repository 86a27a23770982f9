//! A server that loses its database (issue 15): its live connections go on
//! carrying application data, transitions that need the database fail with
//! a clear store error, and everything works again once the database is
//! back. The database is "lost" by cutting a TCP proxy between the server
//! and PostgreSQL (open connections die, new ones are refused), which
//! leaves the shared test cluster running for the other tests.

mod pg;

use std::time::Duration;

use mls_tls::conn::Connection;
use mls_tls::store::PostgresOptions;
use pg::fleet::{self, Client, CutProxy, DEADLINE};
use tokio::sync::mpsc;

fn options() -> PostgresOptions {
    PostgresOptions {
        pool_size: 4,
        timeout: Duration::from_secs(2),
        threads: 1,
    }
}

struct Outage {
    proxy: CutProxy,
    server: fleet::Server,
    events: mpsc::UnboundedReceiver<fleet::Outcome>,
}

async fn setup() -> Outage {
    let url = pg::fresh_database();
    let (db, _) = fleet::reroute(&url, "127.0.0.1:1".parse().unwrap());
    let proxy = CutProxy::new(db);
    let (_, via_proxy) = fleet::reroute(&url, proxy.addr);
    let (tx, events) = mpsc::unbounded_channel();
    let server = fleet::server('A', &via_proxy, &fleet::server_identity(), options(), tx).await;
    Outage {
        proxy,
        server,
        events,
    }
}

/// The next server-side connection outcome that is an error.
async fn next_error(events: &mut mpsc::UnboundedReceiver<fleet::Outcome>) -> String {
    loop {
        let (_, outcome) = events.recv().await.expect("server events");
        if let Err(e) = outcome {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_loses_its_database_keeps_carrying_data_and_recovers() {
    tokio::time::timeout(DEADLINE * 2, async {
        let mut o = setup().await;
        let client = Client::new();
        let (mut live, _) = client.connect(o.server.addr).await;
        // A second session, parked (its connection closed), to resume.
        let (parked, _) = client.connect(o.server.addr).await;
        let id = parked.get_ref().1.session_id().unwrap().clone();
        drop(parked);

        o.proxy.cut();
        // The live connection needs no database to carry data.
        for _ in 0..20 {
            assert_eq!(fleet::ask(&mut live, b"data").await.unwrap(), 'A');
        }
        // A new session cannot be stored: the handshake fails, the client
        // sees an error (no hang), the server a store error naming why.
        let tcp = tokio::net::TcpStream::connect(o.server.addr).await.unwrap();
        let new = async {
            let mut tls = client.connector.connect(tcp).await?;
            fleet::ask(&mut tls, b"new?").await
        };
        assert!(new.await.is_err(), "a session without a database");
        let e = next_error(&mut o.events).await;
        assert!(e.contains("Store") && e.contains("PostgreSQL"), "{e}");
        // A resumption cannot be stored either.
        assert!(client.resume(&id, o.server.addr, b"res?").await.is_err());
        let e = next_error(&mut o.events).await;
        assert!(e.contains("Store") && e.contains("PostgreSQL"), "{e}");
        // Still carrying data.
        assert_eq!(fleet::ask(&mut live, b"more").await.unwrap(), 'A');

        o.proxy.restore();
        // New sessions and resumptions work again, on the same pool.
        let (mut fresh, _) = client.connect(o.server.addr).await;
        assert_eq!(fleet::ask(&mut fresh, b"back").await.unwrap(), 'A');
        assert_eq!(fleet::ask(&mut live, b"live").await.unwrap(), 'A');
        let (mut resumed, who, early) = client.resume(&id, o.server.addr, b"agan").await.unwrap();
        // The client resends its stored request (no early data under it).
        assert!(who == 'A' && !early);
        assert_eq!(fleet::ask(&mut resumed, b"done").await.unwrap(), 'A');
    })
    .await
    .expect("deadline");
}

/// A key update while the server's database is away (issue 15): the
/// server cannot store the peer's ConnectionUpdate, so it rolls back,
/// keeps the message and sends nothing for it (SPEC 10); the connection
/// carries on under the current keys; once the database is back the
/// server applies the update on a later try, and updates work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_update_during_an_outage_waits_and_the_link_carries_on() {
    tokio::time::timeout(DEADLINE * 3, async {
        let mut o = setup().await;
        let client = Client::new();
        let (mut live, _) = client.connect(o.server.addr).await;
        let epoch = live.get_ref().1.epoch().unwrap();

        o.proxy.cut();
        let Connection::Client(c) = live.get_mut().1 else {
            unreachable!()
        };
        c.request_key_update().unwrap();
        for _ in 0..5 {
            assert_eq!(fleet::ask(&mut live, b"upd?").await.unwrap(), 'A');
        }
        assert_eq!(live.get_ref().1.epoch(), Some(epoch), "not applied yet");
        let server_error =
            tokio::time::timeout(Duration::from_secs(3), next_error(&mut o.events)).await;
        assert!(server_error.is_err(), "the server failed: {server_error:?}");
        o.proxy.restore();
        // The server tries again (backing off, at most every 8 s): data
        // flows meanwhile, and the update lands.
        while live.get_ref().1.epoch() == Some(epoch) {
            assert_eq!(fleet::ask(&mut live, b"post").await.unwrap(), 'A');
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(live.get_ref().1.epoch(), Some(epoch + 1));
        let Connection::Client(c) = live.get_mut().1 else {
            unreachable!()
        };
        c.request_key_update().unwrap();
        while live.get_ref().1.epoch() == Some(epoch + 1) {
            assert_eq!(fleet::ask(&mut live, b"upd!").await.unwrap(), 'A');
        }
        assert_eq!(live.get_ref().1.epoch(), Some(epoch + 2));
    })
    .await
    .expect("deadline");
}
