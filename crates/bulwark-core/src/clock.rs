//! Time, behind a trait so that expiry and staleness rules can be tested deterministically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Now, as a duration since the Unix epoch.
    fn now(&self) -> Duration;

    /// Now, in whole seconds since the Unix epoch.
    fn now_secs(&self) -> u64 {
        self.now().as_secs()
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // A clock before 1970 is a broken host; report the epoch rather than panic.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that moves only when told to, so tests can step through expiry without
/// sleeping. Nanosecond resolution (a `u64` of nanoseconds reaches the year 2554; later
/// instants saturate).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Duration) -> Self {
        Self {
            nanos: AtomicU64::new(saturating_nanos(start)),
        }
    }

    /// A clock reading `secs` whole seconds since the epoch.
    pub fn at_secs(secs: u64) -> Self {
        Self::new(Duration::from_secs(secs))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = saturating_nanos(by);
        // `fetch_update` with a closure that never fails cannot return `Err`.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the clock to `to` (backwards too: a host clock can step back).
    pub fn set(&self, to: Duration) {
        self.nanos.store(saturating_nanos(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_secs(1_000);
        assert_eq!(c.now_secs(), 1_000);
        c.advance(Duration::from_millis(1_500));
        assert_eq!(c.now(), Duration::from_millis(1_001_500));
        c.set(Duration::from_secs(10));
        assert_eq!(c.now_secs(), 10);
        c.advance(Duration::MAX);
        assert_eq!(c.now(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_secs() > 1_577_836_800);
    }
}
