//! SIGINT and SIGTERM: the first asks every stream to end cleanly (a
//! RESET saying why, then close_notify), the second exits at once.

use std::sync::atomic::{AtomicI32, Ordering};

use tokio::sync::watch;

/// The first signal received (its number), 0 before one.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Resolves once a stop was asked for; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Stop(watch::Receiver<bool>, &'static str);

impl Stop {
    /// Waits for the stop; returns at once once it was asked for
    /// (cancel-safe, so it can be a `select!` branch in a loop).
    pub(crate) async fn stopped(&mut self) {
        loop {
            if *self.0.borrow_and_update() {
                return;
            }
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Why the stream ends, for the peer's log (a RESET's reason).
    pub(crate) fn reason(&self) -> &'static str {
        self.1
    }
}

/// The exit status for a process ended by the signal received, the
/// shells' `128 + number`; `None` when there was none.
pub(crate) fn exit_status() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => Some(128 + n),
    }
}

/// Listens for SIGINT and SIGTERM (Ctrl-C elsewhere); needs the runtime.
/// `what` says what the first signal does, for our log; `reason` tells
/// the peer why its streams end.
pub(crate) fn install(what: &'static str, reason: &'static str) -> Result<Stop, String> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let (name, number) = tokio::select! {
                    _ = int.recv() => ("SIGINT", 2),
                    _ = term.recv() => ("SIGTERM", 15),
                };
                if !first {
                    eprintln!("mlstls: {name} again: exiting at once");
                    std::process::exit(128 + number);
                }
                first = false;
                RECEIVED.store(number, Ordering::SeqCst);
                crate::report::say(&format!("mlstls: {name}: {what} (again to exit at once)"));
                let _ = tx.send(true);
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let mut first = true;
        while tokio::signal::ctrl_c().await.is_ok() {
            if !first {
                std::process::exit(130);
            }
            first = false;
            RECEIVED.store(2, Ordering::SeqCst);
            crate::report::say(&format!("mlstls: interrupted: {what}"));
            let _ = tx.send(true);
        }
    });
    Ok(Stop(rx, reason))
}
