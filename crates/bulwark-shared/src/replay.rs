//! The replay cache port: "was this key seen within its TTL? if not, remember it", as one
//! atomic step. Used for DPoP proof `jti`s, `private_key_jwt` assertion `jti`s and event
//! nonces; the caller chooses the namespace (`dpop`, `assertion`, `event/<org>`) and the
//! TTL (as long as the proof could still be accepted).
//!
//! A Redis implementation is `SET <prefix><namespace>:<hex key> 1 NX PX <ttl ms>`: "OK" is
//! [`Seen::Fresh`], nil is [`Seen::Replayed`], an out-of-memory refusal (the instance must
//! run `maxmemory-policy noeviction`: an evicting policy would forget live entries) is
//! [`SharedError::Exhausted`], anything else [`SharedError::Unavailable`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bulwark_core::Clock;

use crate::key::{Capacity, Key, check_ttl};
use crate::table::{Expiring, Tables};
use crate::{BoxFuture, SharedError};

/// What the replay cache says of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen within its TTL; it is remembered now.
    Fresh,
    /// Seen before and still remembered: a replay.
    Replayed,
}

/// The replay cache.
pub trait ReplayCache: Send + Sync + fmt::Debug {
    /// If `key` was seen in `namespace` within its TTL: [`Seen::Replayed`]. Otherwise
    /// remembers it for `ttl` and answers [`Seen::Fresh`]. Atomic: of any number of
    /// concurrent calls with one key (on any replica sharing the backend), at most one is
    /// answered `Fresh`. Errors mean "no answer", never "fresh": a full namespace is
    /// [`SharedError::Exhausted`] (nothing live is forgotten to make room).
    fn check_and_insert<'a>(
        &'a self,
        namespace: &'a str,
        key: Key,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, SharedError>>;
}

/// The in-memory replay cache: one table per namespace, bounded by [`Capacity`], each key
/// remembered until its own expiry (exactly: no generations rounding it).
pub struct MemoryReplayCache {
    clock: Arc<dyn Clock>,
    tables: Tables<Expiring>,
}

impl MemoryReplayCache {
    /// A cache reading time from `clock`, bounded by `capacity`.
    pub fn new(clock: Arc<dyn Clock>, capacity: Capacity) -> Self {
        Self {
            clock,
            tables: Tables::new("replay", capacity),
        }
    }

    fn check(&self, namespace: &str, key: Key, ttl: Duration) -> Result<Seen, SharedError> {
        check_ttl(ttl)?;
        let now = self.clock.now();
        self.tables.with(namespace, now, |table| {
            let mut shard = table.shard(&key)?;
            match shard.insert_if_absent(key, now, ttl, table.per_shard()) {
                Ok(true) => Ok(Seen::Fresh),
                Ok(false) => Ok(Seen::Replayed),
                Err(()) => Err(self.tables.full(namespace, table.capacity())),
            }
        })
    }
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("capacity", self.tables.capacity())
            .finish_non_exhaustive()
    }
}

impl ReplayCache for MemoryReplayCache {
    fn check_and_insert<'a>(
        &'a self,
        namespace: &'a str,
        key: Key,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, SharedError>> {
        Box::pin(async move { self.check(namespace, key, ttl) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_core::ManualClock;

    const MIN: Duration = Duration::from_secs(60);

    fn cache(capacity: Capacity) -> (Arc<ManualClock>, MemoryReplayCache) {
        let clock = Arc::new(ManualClock::at_secs(1_000_000));
        (clock.clone(), MemoryReplayCache::new(clock, capacity))
    }

    fn jti(i: u32) -> Key {
        Key::from_parts(&[b"thumbprint", &i.to_be_bytes()])
    }

    #[tokio::test]
    async fn a_key_is_fresh_once_then_replayed_until_its_ttl_ends() {
        let (clock, c) = cache(Capacity::new(100));
        assert_eq!(
            c.check_and_insert("dpop", jti(1), MIN).await,
            Ok(Seen::Fresh)
        );
        assert_eq!(
            c.check_and_insert("dpop", jti(1), MIN).await,
            Ok(Seen::Replayed)
        );
        // Namespaces are separate: the same key elsewhere is another use.
        assert_eq!(
            c.check_and_insert("assertion", jti(1), MIN).await,
            Ok(Seen::Fresh)
        );
        clock.advance(MIN - Duration::from_millis(1));
        assert_eq!(
            c.check_and_insert("dpop", jti(1), MIN).await,
            Ok(Seen::Replayed)
        );
        // A replay does not extend the first TTL.
        clock.advance(Duration::from_millis(1));
        assert_eq!(
            c.check_and_insert("dpop", jti(1), MIN).await,
            Ok(Seen::Fresh)
        );
        assert_eq!(
            c.check_and_insert("dpop", jti(1), MIN).await,
            Ok(Seen::Replayed)
        );
    }

    #[tokio::test]
    async fn full_means_refused_never_forgotten() {
        let (clock, c) = cache(Capacity::new(3));
        for i in 0..3 {
            assert_eq!(
                c.check_and_insert("dpop", jti(i), MIN).await,
                Ok(Seen::Fresh)
            );
        }
        let full = c.check_and_insert("dpop", jti(3), MIN).await;
        assert_eq!(
            full,
            Err(SharedError::Exhausted {
                port: "replay",
                namespace: "dpop".into(),
                capacity: 3
            })
        );
        // Every remembered key is still refused: none was evicted for the newcomer.
        for i in 0..3 {
            assert_eq!(
                c.check_and_insert("dpop", jti(i), MIN).await,
                Ok(Seen::Replayed)
            );
        }
        // Another namespace is not affected by this one being full.
        assert_eq!(
            c.check_and_insert("event/globex", jti(3), MIN).await,
            Ok(Seen::Fresh)
        );
        // Once entries expire there is room again.
        clock.advance(MIN);
        assert_eq!(
            c.check_and_insert("dpop", jti(3), MIN).await,
            Ok(Seen::Fresh)
        );
    }

    #[tokio::test]
    async fn a_family_caps_each_of_its_namespaces_on_its_own() {
        let (_, c) = cache(Capacity::new(100).family("event", 2));
        for i in 0..2 {
            assert_eq!(
                c.check_and_insert("event/acme", jti(i), MIN).await,
                Ok(Seen::Fresh)
            );
        }
        assert!(matches!(
            c.check_and_insert("event/acme", jti(9), MIN).await,
            Err(SharedError::Exhausted { capacity: 2, .. })
        ));
        // acme flooding its nonces leaves globex's room untouched.
        assert_eq!(
            c.check_and_insert("event/globex", jti(9), MIN).await,
            Ok(Seen::Fresh)
        );
        assert_eq!(
            c.check_and_insert("dpop", jti(9), MIN).await,
            Ok(Seen::Fresh)
        );
    }

    #[tokio::test]
    async fn bad_arguments_are_refused_not_guessed() {
        let (_, c) = cache(Capacity::new(10));
        assert_eq!(
            c.check_and_insert("dpop", jti(1), Duration::ZERO).await,
            Err(SharedError::Invalid { what: "ttl" })
        );
        assert_eq!(
            c.check_and_insert("", jti(1), MIN).await,
            Err(SharedError::Invalid { what: "namespace" })
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_tasks_racing_one_key_exactly_one_is_fresh() {
        for round in 0..50u32 {
            let (_, c) = cache(Capacity::new(1 << 20));
            let c = Arc::new(c);
            let barrier = Arc::new(tokio::sync::Barrier::new(32));
            let tasks: Vec<_> = (0..32)
                .map(|_| {
                    let (c, barrier) = (c.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        c.check_and_insert("dpop", jti(round), MIN).await
                    })
                })
                .collect();
            let mut fresh = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(Seen::Fresh) => fresh += 1,
                    Ok(Seen::Replayed) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(fresh, 1, "round {round}");
        }
    }

    #[tokio::test]
    async fn a_large_cache_is_sharded_and_still_exact_per_key() {
        let (clock, c) = cache(Capacity::new(1 << 20));
        for i in 0..5_000 {
            assert_eq!(
                c.check_and_insert("dpop", jti(i), MIN).await,
                Ok(Seen::Fresh)
            );
        }
        for i in 0..5_000 {
            assert_eq!(
                c.check_and_insert("dpop", jti(i), MIN).await,
                Ok(Seen::Replayed)
            );
        }
        clock.advance(MIN);
        for i in 0..5_000 {
            assert_eq!(
                c.check_and_insert("dpop", jti(i), MIN).await,
                Ok(Seen::Fresh)
            );
        }
    }
}
