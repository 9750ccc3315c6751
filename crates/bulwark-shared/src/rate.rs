//! The keyed rate limit port: GCRA (the generic cell rate algorithm, a token bucket kept
//! as one "theoretical arrival time" per key). Per client on the hardening stack, per org
//! and per node on the secret read path; the caller says which [`Quota`] applies.
//!
//! GCRA: with emission interval `T` (one request's worth of time) and tolerance
//! `τ = T·(burst − 1)`, a request at `now` for a key whose theoretical arrival time is
//! `tat` (`now` if unknown) is allowed if `now ≥ max(tat, now) − τ`, and then
//! `tat = max(tat, now) + T`; otherwise it is limited until `max(tat, now) − τ`. A key whose
//! `tat` has passed is back to a full burst and can be forgotten without changing any
//! answer: that is how the memory implementation stays bounded by the recently active
//! keys (and a Redis one: `PX` = `tat − now`).
//!
//! A Redis implementation is one Lua script (read the server's `TIME`, compute as above,
//! `SET key tat PX (tat − now)`), so every replica shares one clock and one bucket.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bulwark_core::Clock;

use crate::key::{Capacity, Key};
use crate::table::{Slot, Tables};
use crate::{BoxFuture, SharedError};

/// A full shard is swept for idle keys at most this often (a sweep is linear in the
/// shard's size; a flood of new keys must not make every request pay it).
const FULL_SWEEP_GAP: Duration = Duration::from_millis(250);
/// Any shard is swept for idle keys at least this often while in use.
const IDLE_SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How many requests a key may make: one per `interval`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    interval: Duration,
    burst: NonZeroU32,
}

impl Quota {
    /// `per_second` requests a second, in bursts of up to `burst`.
    pub fn per_second(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.get(),
            burst,
        }
    }

    /// One request per `interval` (at least a nanosecond), in bursts of up to `burst`;
    /// `None` for a zero interval or one so long that a burst overflows.
    pub fn every(interval: Duration, burst: NonZeroU32) -> Option<Self> {
        (!interval.is_zero() && interval.checked_mul(burst.get()).is_some())
            .then_some(Self { interval, burst })
    }

    /// The time one request uses up.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The largest burst.
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// `τ`: how far ahead of `now` a key's arrival time may run.
    fn tolerance(&self) -> Duration {
        self.interval
            .checked_mul(self.burst.get() - 1)
            .unwrap_or(Duration::MAX)
    }
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Within the quota (and counted).
    Allowed,
    /// Over it; the same request would be allowed after `retry_after` (round up for a
    /// `Retry-After` header). Not counted.
    Limited {
        /// How long until one request is allowed again.
        retry_after: Duration,
    },
}

/// A keyed GCRA rate limiter.
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// Counts one request of `key` in `namespace` against `quota`. Concurrent calls for
    /// one key are serialised (on any replica sharing the backend): a quota cannot be
    /// exceeded by racing. Errors mean "no answer", never "allowed".
    fn check<'a>(
        &'a self,
        namespace: &'a str,
        key: Key,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Rate, SharedError>>;
}

/// One shard's arrival times.
#[derive(Default)]
pub(crate) struct Cells {
    tat: HashMap<Key, Duration>,
    swept: Duration,
}

impl Cells {
    /// Forgets keys back to a full burst (their arrival time is not after `now`).
    fn forget_idle(&mut self, now: Duration) {
        self.tat.retain(|_, tat| *tat > now);
        if self.tat.capacity() > 4 * self.tat.len() + 64 {
            self.tat.shrink_to_fit();
        }
        self.swept = now;
    }

    fn due(&self, now: Duration, gap: Duration) -> bool {
        // A clock that stepped back makes a sweep due too.
        now < self.swept || now - self.swept >= gap
    }

    fn check(&mut self, key: Key, now: Duration, quota: Quota, capacity: usize) -> Option<Rate> {
        if self.due(now, IDLE_SWEEP_EVERY) {
            self.forget_idle(now);
        }
        let known = self.tat.get(&key).copied();
        let tat = known.unwrap_or(now).max(now);
        let allow_at = tat.saturating_sub(quota.tolerance());
        if now < allow_at {
            return Some(Rate::Limited {
                retry_after: allow_at - now,
            });
        }
        if known.is_none() && self.tat.len() >= capacity {
            if self.due(now, FULL_SWEEP_GAP) {
                self.forget_idle(now);
            }
            if self.tat.len() >= capacity {
                return None;
            }
        }
        self.tat.insert(
            key,
            tat.checked_add(quota.interval).unwrap_or(Duration::MAX),
        );
        Some(Rate::Allowed)
    }
}

impl Slot for Cells {
    fn live(&mut self, now: Duration) -> usize {
        self.forget_idle(now);
        self.tat.len()
    }
}

/// The in-memory limiter: one table of arrival times per namespace, bounded by
/// [`Capacity`] (keys tracked at once). Idle keys are forgotten as it goes (every 10 s,
/// and when a shard is full), so many keys cannot exhaust it unless they are all active
/// at once; then a new key is refused ([`SharedError::Exhausted`]) rather than let
/// through uncounted or counted by forgetting an active key's debt.
pub struct MemoryRateLimiter {
    clock: Arc<dyn Clock>,
    tables: Tables<Cells>,
}

impl MemoryRateLimiter {
    /// A limiter reading time from `clock`, tracking at most `capacity` keys.
    pub fn new(clock: Arc<dyn Clock>, capacity: Capacity) -> Self {
        Self {
            clock,
            tables: Tables::new("rate", capacity),
        }
    }

    fn count(&self, namespace: &str, key: Key, quota: Quota) -> Result<Rate, SharedError> {
        let now = self.clock.now();
        self.tables.with(namespace, now, |table| {
            table
                .shard(&key)?
                .check(key, now, quota, table.per_shard())
                .ok_or_else(|| self.tables.full(namespace, table.capacity()))
        })
    }

    /// Keys tracked in `namespace` now (after forgetting idle ones).
    pub fn tracked(&self, namespace: &str) -> Result<usize, SharedError> {
        let now = self.clock.now();
        self.tables
            .with(namespace, now, |table| Ok(table.live(now)))
    }
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("capacity", self.tables.capacity())
            .finish_non_exhaustive()
    }
}

impl RateLimiter for MemoryRateLimiter {
    fn check<'a>(
        &'a self,
        namespace: &'a str,
        key: Key,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Rate, SharedError>> {
        Box::pin(async move { self.count(namespace, key, quota) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_core::ManualClock;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn limiter(capacity: Capacity) -> (Arc<ManualClock>, MemoryRateLimiter) {
        let clock = Arc::new(ManualClock::at_secs(1_000));
        (clock.clone(), MemoryRateLimiter::new(clock, capacity))
    }

    fn ip(i: u32) -> Key {
        Key::from_parts(&[&i.to_be_bytes()])
    }

    #[tokio::test]
    async fn a_burst_then_one_per_interval_keys_independent() {
        let (clock, l) = limiter(Capacity::new(100));
        let q = Quota::per_second(nz(1), nz(2));
        assert_eq!(l.check("client", ip(1), q).await, Ok(Rate::Allowed));
        assert_eq!(l.check("client", ip(1), q).await, Ok(Rate::Allowed));
        assert_eq!(
            l.check("client", ip(1), q).await,
            Ok(Rate::Limited {
                retry_after: Duration::from_secs(1)
            })
        );
        // Another key, or the same key in another namespace, is not affected.
        assert_eq!(l.check("client", ip(2), q).await, Ok(Rate::Allowed));
        assert_eq!(l.check("org-reads", ip(1), q).await, Ok(Rate::Allowed));
        // Limited requests are not counted: after exactly `retry_after` one passes.
        clock.advance(Duration::from_millis(999));
        assert!(matches!(
            l.check("client", ip(1), q).await,
            Ok(Rate::Limited { retry_after }) if retry_after == Duration::from_millis(1)
        ));
        clock.advance(Duration::from_millis(1));
        assert_eq!(l.check("client", ip(1), q).await, Ok(Rate::Allowed));
        assert!(matches!(
            l.check("client", ip(1), q).await,
            Ok(Rate::Limited { .. })
        ));
        // After burst × interval of silence the whole burst is back.
        clock.advance(Duration::from_secs(2));
        assert_eq!(l.check("client", ip(1), q).await, Ok(Rate::Allowed));
        assert_eq!(l.check("client", ip(1), q).await, Ok(Rate::Allowed));
        assert!(matches!(
            l.check("client", ip(1), q).await,
            Ok(Rate::Limited { .. })
        ));
    }

    #[tokio::test]
    async fn idle_keys_are_forgotten_so_many_keys_cannot_exhaust_it() {
        let (clock, l) = limiter(Capacity::new(100));
        let q = Quota::per_second(nz(10), nz(5));
        // Ten waves of 100 new keys each: every wave fits once the last one went idle
        // (a full shard is swept again after FULL_SWEEP_GAP).
        for wave in 0..10u32 {
            for i in 0..100 {
                assert_eq!(
                    l.check("client", ip(wave * 1000 + i), q).await,
                    Ok(Rate::Allowed),
                    "wave {wave} key {i}"
                );
            }
            assert_eq!(l.tracked("client"), Ok(100));
            // One interval (100 ms) later each key is back to a full burst (idle).
            clock.advance(FULL_SWEEP_GAP);
        }
        assert_eq!(l.tracked("client"), Ok(0));
    }

    #[tokio::test]
    async fn full_of_active_keys_refuses_new_ones_and_keeps_counting_old_ones() {
        let (clock, l) = limiter(Capacity::new(3));
        let q = Quota::per_second(nz(1), nz(2));
        for i in 0..3 {
            assert_eq!(l.check("client", ip(i), q).await, Ok(Rate::Allowed));
        }
        assert_eq!(
            l.check("client", ip(3), q).await,
            Err(SharedError::Exhausted {
                port: "rate",
                namespace: "client".into(),
                capacity: 3
            })
        );
        // The active keys' debts are intact: each has one request of its burst left.
        for i in 0..3 {
            assert_eq!(l.check("client", ip(i), q).await, Ok(Rate::Allowed));
            assert!(matches!(
                l.check("client", ip(i), q).await,
                Ok(Rate::Limited { .. })
            ));
        }
        // Once they are idle, the new key gets in.
        clock.advance(Duration::from_secs(2));
        assert_eq!(l.check("client", ip(3), q).await, Ok(Rate::Allowed));
    }

    #[tokio::test]
    async fn a_clock_stepping_back_does_not_refill_the_bucket() {
        let (clock, l) = limiter(Capacity::new(10));
        let q = Quota::per_second(nz(1), nz(1));
        assert_eq!(l.check("client", ip(1), q).await, Ok(Rate::Allowed));
        clock.set(Duration::from_secs(500));
        assert!(matches!(
            l.check("client", ip(1), q).await,
            Ok(Rate::Limited { retry_after }) if retry_after >= Duration::from_secs(500)
        ));
    }

    #[test]
    fn quotas() {
        let q = Quota::per_second(nz(500), nz(500));
        assert_eq!(q.interval(), Duration::from_millis(2));
        assert_eq!(q.burst().get(), 500);
        assert_eq!(q.tolerance(), Duration::from_millis(998));
        assert!(Quota::every(Duration::ZERO, nz(1)).is_none());
        assert!(Quota::every(Duration::MAX, nz(2)).is_none());
        let per_minute = Quota::every(Duration::from_secs(12), nz(5)).unwrap();
        assert_eq!(per_minute.tolerance(), Duration::from_secs(48));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_tasks_cannot_exceed_the_burst() {
        let (_, l) = limiter(Capacity::new(1 << 20));
        let l = Arc::new(l);
        let q = Quota::per_second(nz(1), nz(10));
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (l, barrier) = (l.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    l.check("client", ip(7), q).await
                })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() == Rate::Allowed {
                allowed += 1;
            }
        }
        // The clock does not move: exactly the burst passes.
        assert_eq!(allowed, 10);
    }
}
