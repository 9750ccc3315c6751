//! Keyed GCRA rate limits beyond the per-client one of the hardening stack: per org and
//! per node on the secret read path (DESIGN.md §4 "Secrets").

use std::hash::Hash;
use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A GCRA limiter keyed by `K`; `None` rate disables it.
pub struct KeyedRate<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedRate<K> {
    /// `per_second` requests per key with `burst`; 0 disables.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Admits one request for `key`, or says after how many whole seconds (≥ 1) to retry.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        l.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets keys that are back to a full bucket (call periodically).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_limited_independently() {
        let r: KeyedRate<String> = KeyedRate::new(1, 2);
        assert!(r.check(&"a".into()).is_ok());
        assert!(r.check(&"a".into()).is_ok());
        let wait = r.check(&"a".into()).unwrap_err();
        assert!(wait >= 1);
        assert!(r.check(&"b".into()).is_ok(), "another key is not affected");
        let off: KeyedRate<String> = KeyedRate::new(0, 0);
        for _ in 0..100 {
            assert!(off.check(&"a".into()).is_ok());
        }
    }
}
