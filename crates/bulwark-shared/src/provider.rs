//! [`Shared`]: the provider of every port, after rustls' `CryptoProvider` (a struct of
//! ports; the defaults come whole, and a caller replaces one with struct update syntax).

use std::sync::Arc;

use bulwark_core::{Clock, SystemClock};

use crate::fanout::{FanoutLimits, MemoryFanout};
use crate::key::Capacity;
use crate::lease::MemoryLease;
use crate::rate::MemoryRateLimiter;
use crate::replay::MemoryReplayCache;
use crate::single_use::MemorySingleUse;
use crate::{Fanout, LeaderLease, RateLimiter, ReplayCache, SingleUse};

/// Every shared-state port. Built in one place (the server's wiring) and handed to what
/// needs it; a backend replaces the ports it implements:
///
/// ```
/// # use std::sync::Arc;
/// # use bulwark_shared::{Shared, MemoryReplayCache, Capacity};
/// # let redis_replay = MemoryReplayCache::new(Arc::new(bulwark_core::SystemClock), Capacity::new(10));
/// let shared = Shared {
///     replay: Arc::new(redis_replay),
///     ..Shared::default()
/// };
/// ```
#[derive(Debug, Clone)]
pub struct Shared {
    /// Replay cache: DPoP and assertion `jti`s, event nonces.
    pub replay: Arc<dyn ReplayCache>,
    /// Keyed GCRA limits: per client, per org, per node.
    pub rate: Arc<dyn RateLimiter>,
    /// Single-use consumption: join tokens, exec grants.
    pub single_use: Arc<dyn SingleUse>,
    /// Event fan-out to the SSE subscribers of each node.
    pub fanout: Arc<dyn Fanout>,
    /// Leader leases with fencing epochs.
    pub lease: Arc<dyn LeaderLease>,
}

impl Shared {
    /// Every port in memory (one process), reading time from `clock`.
    pub fn memory(clock: Arc<dyn Clock>, limits: MemoryLimits) -> Self {
        let MemoryLimits {
            replay,
            rate,
            single_use,
            fanout,
            lease_names,
        } = limits;
        Self {
            replay: Arc::new(MemoryReplayCache::new(clock.clone(), replay)),
            rate: Arc::new(MemoryRateLimiter::new(clock.clone(), rate)),
            single_use: Arc::new(MemorySingleUse::new(clock.clone(), single_use)),
            fanout: Arc::new(MemoryFanout::with_limits(fanout)),
            lease: Arc::new(MemoryLease::new(clock, lease_names)),
        }
    }
}

impl Default for Shared {
    /// Every port in memory, on the system clock, with [`MemoryLimits::default`].
    fn default() -> Self {
        Self::memory(Arc::new(SystemClock), MemoryLimits::default())
    }
}

/// The bounds of the memory ports. The defaults are those of the in-process caches they
/// replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Replay cache: 2²⁰ live keys per namespace (like the DPoP and assertion caches), and
    /// 20,000 per `event/<org>` namespace (the per-org nonce caches).
    pub replay: Capacity,
    /// Rate limiter: 2²⁰ keys tracked per namespace.
    pub rate: Capacity,
    /// Single use: 2²⁰ live uses per namespace.
    pub single_use: Capacity,
    /// Fan-out: 8 streams per node, 1,024 envelopes buffered per subscriber.
    pub fanout: FanoutLimits,
    /// Leases: 64 names.
    pub lease_names: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            replay: Capacity::new(1 << 20)
                .family("event", 20_000)
                .namespaces(1 << 16),
            rate: Capacity::new(1 << 20),
            single_use: Capacity::new(1 << 20),
            fanout: FanoutLimits::default(),
            lease_names: 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, LeaseOutcome, Quota, Rate, Seen, Use};
    use bulwark_core::ManualClock;
    use std::num::NonZeroU32;
    use std::time::Duration;

    #[tokio::test]
    async fn every_port_answers_in_memory() {
        let clock = Arc::new(ManualClock::at_secs(1_000));
        let s = Shared::memory(clock, MemoryLimits::default());
        let k = Key::from_parts(&[b"k"]);
        let ttl = Duration::from_secs(60);
        assert_eq!(
            s.replay.check_and_insert("dpop", k, ttl).await,
            Ok(Seen::Fresh)
        );
        assert_eq!(s.single_use.consume("join", k, ttl).await, Ok(Use::First));
        let one = NonZeroU32::MIN;
        assert_eq!(
            s.rate.check("client", k, Quota::per_second(one, one)).await,
            Ok(Rate::Allowed)
        );
        let mut sub = s.fanout.subscribe("acme/n1").await.unwrap().unwrap();
        s.fanout
            .publish(
                "acme/n1",
                crate::Published {
                    seq: 1,
                    kind: "t".into(),
                    json: "{}".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(sub.recv().await.unwrap().seq, 1);
        assert!(matches!(
            s.lease.acquire("sequencer", "me", ttl).await,
            Ok(LeaseOutcome::Granted(_))
        ));
    }

    #[tokio::test]
    async fn one_port_is_overridden_the_others_stay() {
        #[derive(Debug)]
        struct Down;
        impl ReplayCache for Down {
            fn check_and_insert<'a>(
                &'a self,
                _: &'a str,
                _: Key,
                _: Duration,
            ) -> crate::BoxFuture<'a, Result<crate::Seen, crate::SharedError>> {
                Box::pin(async { Err(crate::SharedError::unavailable("redis", "down")) })
            }
        }
        let base = Shared::default();
        let s = Shared {
            replay: Arc::new(Down),
            ..base.clone()
        };
        let k = Key::from_parts(&[b"k"]);
        let ttl = Duration::from_secs(60);
        assert_eq!(
            s.replay
                .check_and_insert("dpop", k, ttl)
                .await
                .unwrap_err()
                .code(),
            "shared_state_unavailable"
        );
        // The others are the very ports of the base provider.
        assert!(Arc::ptr_eq(&s.single_use, &base.single_use));
        assert_eq!(s.single_use.consume("join", k, ttl).await, Ok(Use::First));
        assert_eq!(
            base.single_use.consume("join", k, ttl).await,
            Ok(Use::AlreadyUsed)
        );
        // The per-org nonce bound of today is the default.
        assert_eq!(MemoryLimits::default().replay.of("event/acme"), 20_000);
        assert_eq!(MemoryLimits::default().replay.of("dpop"), 1 << 20);
    }
}
