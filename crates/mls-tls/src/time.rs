//! Time as an input (SPEC 9a). The sans-I/O connection reads no clock of
//! its own: it takes the time from the [`Clock`] in its configuration and
//! from [`handle_timeout`](crate::conn::ConnectionCore::handle_timeout),
//! so every timer can be driven by a virtual clock in tests
//! ([`ManualClock`]), as quinn-proto does with its explicit `now` and
//! rustls with its `TimeProvider`.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Where a connection gets the time.
///
/// - [`Clock::now`] is monotonic time for the protocol's timers (handshake
///   and update-confirmation timeouts, the update interval).
/// - [`Clock::system_time`] is wall-clock time for certificate validity and
///   the created / last-used times of stored sessions.
pub trait Clock: Send + Sync + core::fmt::Debug {
    /// Monotonic time.
    fn now(&self) -> Instant;
    /// Wall-clock time.
    fn system_time(&self) -> SystemTime;
}

/// The operating system's clocks (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_time(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A virtual clock that moves only when told, for deterministic tests of
/// timers: both its monotonic and its wall-clock time advance together.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use mls_tls::time::{Clock, ManualClock};
///
/// let clock = Arc::new(ManualClock::new());
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(11));
/// assert_eq!(clock.now() - t0, Duration::from_secs(11));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    wall_start: SystemTime,
    elapsed: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the present system time.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A clock whose wall-clock time starts at `wall` (e.g. a certificate's
    /// validity window in a test).
    pub fn starting_at(wall: SystemTime) -> Self {
        Self {
            start: Instant::now(),
            wall_start: wall,
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn system_time(&self) -> SystemTime {
        self.wall_start + self.elapsed()
    }
}
