//! The single-use port: consume a key once. Join tokens today (the enrol path checks and
//! uses a token in one step under the sequencer; with several replicas, consuming the
//! token's digest here first gives the same "exactly one enrolment" guarantee across
//! them), exec grants later.
//!
//! Unlike the replay cache, a consumed key is a credential's use: the TTL must cover the
//! credential's whole validity (a join token's `expires_at`), and there is no way to give
//! a use back (a failure after consuming burns the token: fail closed, mint another).
//!
//! A Redis implementation is the same `SET … NX PX` as the replay cache, under its own
//! prefix; a PostgreSQL one an `INSERT … ON CONFLICT DO NOTHING` with an expiry column.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bulwark_core::Clock;

use crate::key::{Capacity, Key, check_ttl};
use crate::table::{Expiring, Tables};
use crate::{BoxFuture, SharedError};

/// What consuming a key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// This call consumed it.
    First,
    /// It was consumed before (and its TTL has not passed).
    AlreadyUsed,
}

/// Single-use consumption.
pub trait SingleUse: Send + Sync + fmt::Debug {
    /// Consumes `key` in `namespace`, remembering the use for `ttl`: [`Use::First`] for
    /// exactly one of any number of concurrent calls with one key (on any replica sharing
    /// the backend), [`Use::AlreadyUsed`] for the others. Errors mean "no answer", never
    /// "first".
    fn consume<'a>(
        &'a self,
        namespace: &'a str,
        key: Key,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Use, SharedError>>;
}

/// The in-memory implementation: one bounded table per namespace; a full one refuses
/// ([`SharedError::Exhausted`]) rather than forget a use.
pub struct MemorySingleUse {
    clock: Arc<dyn Clock>,
    tables: Tables<Expiring>,
}

impl MemorySingleUse {
    /// Reading time from `clock`, bounded by `capacity`.
    pub fn new(clock: Arc<dyn Clock>, capacity: Capacity) -> Self {
        Self {
            clock,
            tables: Tables::new("single_use", capacity),
        }
    }

    fn take(&self, namespace: &str, key: Key, ttl: Duration) -> Result<Use, SharedError> {
        check_ttl(ttl)?;
        let now = self.clock.now();
        self.tables.with(namespace, now, |table| {
            let mut shard = table.shard(&key)?;
            match shard.insert_if_absent(key, now, ttl, table.per_shard()) {
                Ok(true) => Ok(Use::First),
                Ok(false) => Ok(Use::AlreadyUsed),
                Err(()) => Err(self.tables.full(namespace, table.capacity())),
            }
        })
    }
}

impl fmt::Debug for MemorySingleUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySingleUse")
            .field("capacity", self.tables.capacity())
            .finish_non_exhaustive()
    }
}

impl SingleUse for MemorySingleUse {
    fn consume<'a>(
        &'a self,
        namespace: &'a str,
        key: Key,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Use, SharedError>> {
        Box::pin(async move { self.take(namespace, key, ttl) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_core::ManualClock;

    const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

    fn store(capacity: Capacity) -> (Arc<ManualClock>, MemorySingleUse) {
        let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
        (clock.clone(), MemorySingleUse::new(clock, capacity))
    }

    fn token(i: u32) -> Key {
        Key::from_parts(&[format!("bwj_{i}").as_bytes()])
    }

    #[tokio::test]
    async fn a_token_is_consumed_once_for_its_whole_validity() {
        let (clock, s) = store(Capacity::new(10));
        assert_eq!(s.consume("join", token(1), TOKEN_TTL).await, Ok(Use::First));
        clock.advance(TOKEN_TTL - Duration::from_millis(1));
        assert_eq!(
            s.consume("join", token(1), TOKEN_TTL).await,
            Ok(Use::AlreadyUsed)
        );
        assert_eq!(s.consume("join", token(2), TOKEN_TTL).await, Ok(Use::First));
        assert_eq!(s.consume("exec", token(1), TOKEN_TTL).await, Ok(Use::First));
        // Past its TTL the use is forgotten (the token itself has expired by then: the
        // caller still checks expiry; this port only remembers uses).
        clock.advance(Duration::from_millis(1));
        assert_eq!(s.consume("join", token(1), TOKEN_TTL).await, Ok(Use::First));
    }

    #[tokio::test]
    async fn full_refuses_and_keeps_every_use() {
        let (clock, s) = store(Capacity::new(2));
        assert_eq!(s.consume("join", token(1), TOKEN_TTL).await, Ok(Use::First));
        assert_eq!(s.consume("join", token(2), TOKEN_TTL).await, Ok(Use::First));
        assert!(matches!(
            s.consume("join", token(3), TOKEN_TTL).await,
            Err(SharedError::Exhausted {
                port: "single_use",
                capacity: 2,
                ..
            })
        ));
        assert_eq!(
            s.consume("join", token(1), TOKEN_TTL).await,
            Ok(Use::AlreadyUsed)
        );
        assert_eq!(
            s.consume("join", token(2), TOKEN_TTL).await,
            Ok(Use::AlreadyUsed)
        );
        clock.advance(TOKEN_TTL);
        assert_eq!(s.consume("join", token(3), TOKEN_TTL).await, Ok(Use::First));
        assert_eq!(
            s.consume("join", token(4), Duration::ZERO).await,
            Err(SharedError::Invalid { what: "ttl" })
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_hundred_races_on_one_token_each_have_exactly_one_winner() {
        let (_, s) = store(Capacity::new(1 << 16));
        let s = Arc::new(s);
        for round in 0..200u32 {
            let barrier = Arc::new(tokio::sync::Barrier::new(16));
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (s, barrier) = (s.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        s.consume("join", token(round), TOKEN_TTL).await
                    })
                })
                .collect();
            let mut first = 0;
            for t in tasks {
                if t.await.unwrap().unwrap() == Use::First {
                    first += 1;
                }
            }
            assert_eq!(first, 1, "round {round}");
        }
    }
}
