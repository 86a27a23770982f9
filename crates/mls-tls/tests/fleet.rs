//! Sessions shared by a fleet (issue 15), on a real PostgreSQL: two servers
//! with their own configs and pools behind a round-robin balancer; a client
//! cut from one resumes on the other with early data; two resumptions of
//! one session racing on the two servers have exactly one winner and never
//! split the session.

mod pg;

use std::time::Duration;

use pg::fleet::{self, Client, Server, DEADLINE};
use proptest::prelude::*;
use tokio::sync::mpsc;

struct Fleet {
    a: Server,
    b: Server,
    balancer: std::net::SocketAddr,
    events: mpsc::UnboundedReceiver<fleet::Outcome>,
}

async fn fleet() -> Fleet {
    let url = pg::fresh_database();
    let identity = fleet::server_identity();
    let (tx, events) = mpsc::unbounded_channel();
    let a = fleet::server('A', &url, &identity, Default::default(), tx.clone()).await;
    let b = fleet::server('B', &url, &identity, Default::default(), tx).await;
    let balancer = fleet::balancer(vec![a.addr, b.addr]).await;
    Fleet {
        a,
        b,
        balancer,
        events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_from_a_resumes_on_b_with_early_data() {
    tokio::time::timeout(DEADLINE, async {
        let f = fleet().await;
        let client = Client::new();
        // Round robin: the first connection lands on A.
        let (tls, who) = client.connect(f.balancer).await;
        assert_eq!(who, 'A');
        let id = tls.get_ref().1.session_id().unwrap().clone();
        assert_eq!(f.b.store.list().unwrap().len(), 1, "B sees A's session");
        drop(tls); // cut

        // The next lands on B, which resumes A's session from the database
        // and answers the early data.
        let (mut tls, who, early) = client.resume(&id, f.balancer, b"erly").await.unwrap();
        assert_eq!(who, 'B');
        assert!(early, "the early data was accepted as such");
        assert_eq!(tls.get_ref().1.session_id(), Some(&id));
        assert_eq!(fleet::ask(&mut tls, b"more").await.unwrap(), 'B');
        drop(tls);

        // And back on A: the session moved on in the database, not split.
        let (mut tls, who, _) = client.resume(&id, f.balancer, b"back").await.unwrap();
        assert_eq!(who, 'A');
        assert_eq!(fleet::ask(&mut tls, b"last").await.unwrap(), 'A');
        assert_eq!(f.a.store.list().unwrap().len(), 1);
    })
    .await
    .expect("deadline");
}

/// Where the two racing resumptions go and how far apart they start.
#[derive(Debug, Clone)]
struct Race {
    first: char,
    second: char,
    /// Microseconds between the two starts.
    gap_us: u64,
    /// Which twin starts first.
    twin_first: bool,
}

fn races() -> impl Strategy<Value = Race> {
    (
        prop::sample::select(vec!['A', 'B']),
        prop::sample::select(vec!['A', 'B']),
        prop_oneof![Just(0u64), 0u64..3000],
        any::<bool>(),
    )
        .prop_map(|(first, second, gap_us, twin_first)| Race {
            first,
            second,
            gap_us,
            twin_first,
        })
}

/// Two copies of one client resume the same session at once, on servers
/// chosen by the case (both sharing the database): exactly one resumption
/// completes, the other connection fails with an error (no hang, no
/// success), and afterwards the winner resumes on both servers in turn
/// (one session, not two) while the loser cannot resume.
#[test]
fn racing_resumptions_have_exactly_one_winner() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = std::cell::RefCell::new(rt.block_on(fleet()));
    let config = ProptestConfig {
        cases: 10,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&races(), |race| {
            let mut f = f.borrow_mut();
            rt.block_on(async { tokio::time::timeout(DEADLINE, one_race(&mut f, &race)).await })
                .map_err(|_| TestCaseError::fail(format!("{race:?}: deadline")))?
        })
        .unwrap();
}

/// One more round trip on the winning connection: its server has then
/// processed the client's EpochKeyUpdate and stored it, so what follows
/// starts from a settled session. (A resumption racing that save reads
/// the session again: `tests/resume_race.rs`.)
async fn settle(
    tls: &mut mls_tls::tokio::TlsStream<tokio::net::TcpStream>,
    race: &Race,
) -> Result<(), TestCaseError> {
    fleet::ask(tls, b"sync")
        .await
        .map(drop)
        .map_err(|e| TestCaseError::fail(format!("{race:?}: the winner's connection: {e}")))
}

async fn one_race(f: &mut Fleet, race: &Race) -> Result<(), TestCaseError> {
    let addr = |s: char| if s == 'A' { f.a.addr } else { f.b.addr };
    let client = Client::new();
    let (tls, _) = client.connect(f.a.addr).await;
    let id = tls.get_ref().1.session_id().unwrap().clone();
    drop(tls);
    let twin = client.twin(&id);
    let (one, two) = if race.twin_first {
        (&twin, &client)
    } else {
        (&client, &twin)
    };
    let (first, second) = (addr(race.first), addr(race.second));
    let gap = Duration::from_micros(race.gap_us);
    let (r1, r2) = tokio::join!(one.resume(&id, first, b"one!"), async {
        tokio::time::sleep(gap).await;
        two.resume(&id, second, b"two!").await
    });
    let (winner, loser, won_at) = match (r1, r2) {
        (Ok((mut tls, who, _)), Err(e)) => {
            settle(&mut tls, race).await?;
            prop_assert!(e.kind() != std::io::ErrorKind::TimedOut, "{race:?}: {e}");
            (one, two, who)
        }
        (Err(e), Ok((mut tls, who, _))) => {
            settle(&mut tls, race).await?;
            prop_assert!(e.kind() != std::io::ErrorKind::TimedOut, "{race:?}: {e}");
            (two, one, who)
        }
        (Ok(_), Ok(_)) => {
            return Err(TestCaseError::fail(format!(
                "{race:?}: both resumed: split"
            )))
        }
        (Err(a), Err(b)) => {
            return Err(TestCaseError::fail(format!(
                "{race:?}: neither resumed: {a} / {b}"
            )))
        }
    };
    prop_assert!(won_at == race.first || won_at == race.second);
    // One session: the winner goes on, on either server.
    for server in ['A', 'B'] {
        let (mut tls, who, _) = winner
            .resume(&id, addr(server), b"next")
            .await
            .map_err(|e| TestCaseError::fail(format!("{race:?}: winner on {server}: {e}")))?;
        prop_assert_eq!(who, server);
        prop_assert_eq!(fleet::ask(&mut tls, b"data").await.unwrap(), server);
    }
    // The loser's copy is behind: it cannot resume.
    if let Ok(Ok((_, who, _))) = tokio::time::timeout(
        Duration::from_secs(10),
        loser.resume(&id, addr('A'), b"late"),
    )
    .await
    {
        return Err(TestCaseError::fail(format!(
            "{race:?}: the loser resumed on {who} after the winner moved on"
        )));
    }
    // Server-side failures were clean errors, never a panic.
    while let Ok((name, outcome)) = f.events.try_recv() {
        if let Err(e) = outcome {
            prop_assert!(!e.contains("panic"), "{name}: {e}");
        }
    }
    prop_assert_eq!(
        f.a.store
            .list()
            .unwrap()
            .iter()
            .filter(|s| s.id == id)
            .count(),
        1
    );
    Ok(())
}
