//! The small variant of the load run (issue 12): 100 concurrent
//! connections streaming both ways for 10 s with key updates every MiB on
//! both sides, every byte checked, then a 3 s update storm. Not one
//! connection may fail or get stuck. The full run is `mlstls bench load`.

use std::sync::Arc;

use mlstls_bench::load::{self, LoadOptions};

#[test]
fn hundred_connections_stream_and_update_without_a_failure() {
    let opts = LoadOptions {
        conns: 100,
        secs: 10,
        storm_secs: 3,
        ..LoadOptions::full()
    };
    load::raise_fd_limit(2 * opts.conns).unwrap();
    let (client, server) = load::identities(&opts).unwrap();
    let (cc, sc) = load::configs(&opts, client, server).unwrap();
    let storm = Arc::new((*cc).clone().update_policy(load::storm_policy(&opts)));
    let rt = load::runtime().unwrap();
    let (phase, storm_phase, server) = rt.block_on(async {
        let listener = load::listener().unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(load::serve(listener, sc, async {
            let _ = stop_rx.await;
        }));
        let phase = load::clients(addr, cc, opts.conns, opts.secs, 0, false).await;
        let storm_phase = load::clients(
            addr,
            storm,
            opts.conns,
            opts.storm_secs,
            opts.conns as u64,
            true,
        )
        .await;
        let _ = stop_tx.send(());
        (phase, storm_phase, server.await.unwrap())
    });
    for (name, p) in [("stream", &phase), ("storm", &storm_phase)] {
        assert_eq!(
            (p.ok, p.failed, p.stuck),
            (opts.conns, 0, 0),
            "{name}: {:?}",
            p.errors
        );
        assert!(p.bytes > 0 && p.update_rounds > 0, "{name}: {p:?}");
    }
    assert_eq!(
        (server.ok, server.failed),
        (2 * opts.conns, 0),
        "{:?}",
        server.errors
    );
    // The storm: every connection asks every 10 ms; CPU bounds how many
    // rounds complete, but every connection updated.
    assert!(
        storm_phase.update_rounds >= opts.conns as u64,
        "{storm_phase:?}"
    );
}
