//! Rows measured without sockets: full handshakes and key update rounds.
//! Both sides run in one thread; each side's CPU time is the thread CPU
//! time spent in the calls that side makes (constructor, `read_tls`,
//! processing, `write_tls`, starting an update). Thread CPU time, not wall
//! time, so that being preempted by other processes does not count.

use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};

use mls_tls::bench_support::MlsOps;
use mls_tls::conn::{ClientConnection, ServerConnection};

use crate::report::{Better, Row};
use crate::stacks::{server_name, BoxError, Endpoint, Kx, MlsStack, RustlsStack};

/// CPU time spent by each side and what crossed the wire.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    client: Duration,
    server: Duration,
    bytes: usize,
    /// Non-empty transmissions: one per direction change.
    flights: usize,
}

fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn timed<R>(acc: &mut Duration, f: impl FnOnce() -> R) -> R {
    let start = thread_cpu();
    let r = f();
    *acc += thread_cpu().saturating_sub(start);
    r
}

/// Moves everything `from` wants to write into `to` and lets `to` process
/// it. Returns the number of bytes moved.
fn transfer(
    from: &mut dyn Endpoint,
    from_cpu: &mut Duration,
    to: &mut dyn Endpoint,
    to_cpu: &mut Duration,
) -> Result<usize, BoxError> {
    let mut wire = Vec::new();
    timed(from_cpu, || -> std::io::Result<()> {
        while from.wants_write() {
            from.write_tls(&mut wire)?;
        }
        Ok(())
    })?;
    if wire.is_empty() {
        return Ok(0);
    }
    timed(to_cpu, || -> Result<(), BoxError> {
        let mut rd = &wire[..];
        while !rd.is_empty() {
            to.read_tls(&mut rd)?;
            to.process()?;
        }
        Ok(())
    })?;
    Ok(wire.len())
}

/// Exchanges flights until neither side has anything to send.
fn settle(
    client: &mut dyn Endpoint,
    server: &mut dyn Endpoint,
    cost: &mut Cost,
) -> Result<(), BoxError> {
    for _ in 0..32 {
        let up = transfer(client, &mut cost.client, server, &mut cost.server)?;
        let down = transfer(server, &mut cost.server, client, &mut cost.client)?;
        cost.bytes += up + down;
        cost.flights += usize::from(up > 0) + usize::from(down > 0);
        if up == 0 && down == 0 {
            if client.is_handshaking() || server.is_handshaking() {
                return Err("handshake stalled".into());
            }
            return Ok(());
        }
    }
    Err("no quiescence after 32 exchanges".into())
}

/// One full handshake, then `updates` key update rounds (client-initiated).
fn run_pair(
    client: &mut dyn Endpoint,
    server: &mut dyn Endpoint,
    mut hs: Cost,
    updates: usize,
) -> Result<(Cost, Vec<Cost>), BoxError> {
    settle(client, server, &mut hs)?;
    let mut ups = Vec::with_capacity(updates);
    for _ in 0..updates {
        let mut up = Cost::default();
        timed(&mut up.client, || client.key_update())?;
        settle(client, server, &mut up)?;
        // A one-byte ping-pong: rustls sends its answering KeyUpdate only
        // with its next record, and it ends the round the same way for us.
        let flights = up.flights;
        timed(&mut up.client, || client.send_app(b"p"))?;
        settle(client, server, &mut up)?;
        timed(&mut up.server, || {
            server.drain_app();
            server.send_app(b"q")
        })?;
        settle(client, server, &mut up)?;
        timed(&mut up.client, || client.drain_app());
        up.flights = flights;
        ups.push(up);
    }
    Ok((hs, ups))
}

fn mls_once(stack: &MlsStack, updates: usize) -> Result<(Cost, Vec<Cost>), BoxError> {
    let mut hs = Cost::default();
    let mut c = timed(&mut hs.client, || {
        ClientConnection::new(stack.client.clone())
    })?;
    let mut s = timed(&mut hs.server, || {
        ServerConnection::new(stack.server.clone())
    });
    run_pair(&mut c, &mut s, hs, updates)
}

fn rustls_once(stack: &RustlsStack, updates: usize) -> Result<(Cost, Vec<Cost>), BoxError> {
    let mut hs = Cost::default();
    let mut c = timed(&mut hs.client, || {
        rustls::ClientConnection::new(stack.client_full.clone(), server_name())
    })?;
    let mut s = timed(&mut hs.server, || {
        rustls::ServerConnection::new(stack.server.clone())
    })?;
    run_pair(&mut c, &mut s, hs, updates)
}

fn rate(d: Duration) -> f64 {
    1.0 / d.as_secs_f64()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The MLS operations alone of one handshake and `updates` rounds
/// (`mls_tls::bench_support::MlsOps`), on the same thread CPU clock.
fn mls_ops_once(ops: &MlsOps, updates: usize) -> Result<(Cost, Vec<Cost>), BoxError> {
    let (hs, ups) = ops.run(updates, &thread_cpu)?;
    let cost = |c: mls_tls::bench_support::SideCost| Cost {
        client: c.client,
        server: c.server,
        ..Cost::default()
    };
    Ok((cost(hs), ups.into_iter().map(cost).collect()))
}

/// Samples of one stack: handshakes and update rounds.
#[derive(Default)]
struct Samples {
    hs: Vec<Cost>,
    up: Vec<Cost>,
}

/// Handshake and key update rows for `kx`: `rounds` handshakes of each
/// stack, alternating, each followed by `updates` update rounds.
pub(crate) fn rows(kx: Kx, rounds: usize, updates: usize) -> Result<Vec<Row>, BoxError> {
    let (mls, tls) = (MlsStack::new(kx)?, RustlsStack::new(kx)?);
    let ops = MlsOps::new(kx.suite())?;
    // One unmeasured round each: lazy initialisation, caches.
    mls_once(&mls, 1)?;
    rustls_once(&tls, 1)?;
    mls_ops_once(&ops, 1)?;
    let (mut ours, mut theirs, mut alone) =
        (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..rounds.max(1) {
        let (h, u) = mls_once(&mls, updates)?;
        ours.hs.push(h);
        ours.up.extend(u);
        let (h, u) = rustls_once(&tls, updates)?;
        theirs.hs.push(h);
        theirs.up.extend(u);
        let (h, u) = mls_ops_once(&ops, updates)?;
        alone.hs.push(h);
        alone.up.extend(u);
    }
    let k = Some(kx);
    let col = |v: &[Cost], f: fn(&Cost) -> f64| v.iter().map(f).collect::<Vec<f64>>();
    let pair = |id: &str, label: &str, unit: &str, better, f: fn(&Cost) -> f64, up: bool| {
        let (o, t) = if up {
            (&ours.up, &theirs.up)
        } else {
            (&ours.hs, &theirs.hs)
        };
        Row::new(id, k, label, unit, better, col(o, f), col(t, f))
    };
    // Ours against the MLS operations alone, in the same run.
    let vs_ops = |id: &str, label: &str, f: fn(&Cost) -> f64, up: bool| {
        let (o, a) = if up {
            (&ours.up, &alone.up)
        } else {
            (&ours.hs, &alone.hs)
        };
        Row::new(id, k, label, "µs", Better::Lower, col(o, f), col(a, f))
            .baseline("MLS operations alone")
    };
    Ok(vec![
        vs_ops(
            "handshake.overhead_client",
            "full handshake, client CPU, ours / MLS operations",
            |c| us(c.client),
            false,
        )
        .note("MLS operations alone: provider, KeyPackage, join from the Welcome, exporter (mls_tls::bench_support::MlsOps)"),
        vs_ops(
            "handshake.overhead_server",
            "full handshake, server CPU, ours / MLS operations",
            |c| us(c.server),
            false,
        )
        .note("MLS operations alone: provider, KeyPackage validation, group creation, add, merge, Welcome, exporter"),
        vs_ops(
            "keyupdate.overhead",
            "key update round, CPU both sides, ours / MLS operations",
            |c| us(c.client + c.server),
            true,
        )
        .note("MLS operations alone: commit with UpdatePath; process and merge it, exporter, EpochKeyUpdate; merge and process that, exporter"),
        pair(
            "handshake.client_per_s",
            "full handshake, client CPU",
            "handshakes/s",
            Better::Higher,
            |c| rate(c.client),
            false,
        ),
        pair(
            "handshake.server_per_s",
            "full handshake, server CPU",
            "handshakes/s",
            Better::Higher,
            |c| rate(c.server),
            false,
        ),
        pair(
            "handshake.client_cpu_us",
            "full handshake, client CPU",
            "µs",
            Better::Lower,
            |c| us(c.client),
            false,
        ),
        pair(
            "handshake.server_cpu_us",
            "full handshake, server CPU",
            "µs",
            Better::Lower,
            |c| us(c.server),
            false,
        ),
        pair(
            "handshake.bytes",
            "full handshake, bytes on the wire (both ways)",
            "B",
            Better::Lower,
            |c| c.bytes as f64,
            false,
        )
        .note("records included; rustls sends its session tickets in this count too"),
        pair(
            "handshake.flights",
            "full handshake, flights until both idle",
            "flights",
            Better::Lower,
            |c| c.flights as f64,
            false,
        ),
        pair(
            "keyupdate.cpu_us",
            "key update round, CPU both sides",
            "µs",
            Better::Lower,
            |c| us(c.client + c.server),
            true,
        )
        .note("ours: request_key_update (ConnectionUpdate + EpochKeyUpdate); rustls: refresh_traffic_keys (KeyUpdate, peer answers with its own); both followed by a 1-byte ping-pong, included in CPU and bytes"),
        pair(
            "keyupdate.client_cpu_us",
            "key update round, initiator CPU",
            "µs",
            Better::Lower,
            |c| us(c.client),
            true,
        ),
        pair(
            "keyupdate.server_cpu_us",
            "key update round, responder CPU",
            "µs",
            Better::Lower,
            |c| us(c.server),
            true,
        ),
        pair(
            "keyupdate.bytes",
            "key update round, bytes on the wire (both ways)",
            "B",
            Better::Lower,
            |c| c.bytes as f64,
            true,
        ),
        pair(
            "keyupdate.flights",
            "key update round, flights until both idle",
            "flights",
            Better::Lower,
            |c| c.flights as f64,
            true,
        )
        .note("flights from the update request until both are idle, before the ping-pong; 2 = one round trip, 1 = the answer rides on the next record"),
    ])
}
