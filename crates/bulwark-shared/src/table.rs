//! The in-memory tables behind the memory ports: one table per namespace, each split into
//! shards (by the first byte of the key digest) so that a busy namespace is not one lock.
//!
//! An operation runs while holding the namespace map's read lock, so a namespace can only
//! be dropped (under the write lock) when no operation is using it: an entry is never
//! written into a table that has just been forgotten.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use crate::SharedError;
use crate::key::{Capacity, Key, check_namespace};

/// Tables at least this large are split into [`SHARDS`] shards; smaller ones are one
/// shard, so their capacity is exact.
const SHARD_FROM: usize = 16 * 1024;
/// Shards of a large table.
const SHARDS: usize = 16;

/// What a shard holds.
pub(crate) trait Slot: Default + Send {
    /// Live entries.
    fn live(&mut self, now: Duration) -> usize;
}

/// One namespace's table.
pub(crate) struct Table<S> {
    shards: Box<[Mutex<S>]>,
    per_shard: usize,
    capacity: usize,
}

impl<S: Slot> Table<S> {
    fn new(capacity: usize) -> Self {
        let n = if capacity >= SHARD_FROM { SHARDS } else { 1 };
        Self {
            shards: (0..n).map(|_| Mutex::new(S::default())).collect(),
            per_shard: capacity.div_ceil(n),
            capacity,
        }
    }

    /// The shard holding `key`. A poisoned lock is taken over: the shard's data stays
    /// consistent (every update is a single insert or remove).
    pub(crate) fn shard(&self, key: &Key) -> Result<MutexGuard<'_, S>, SharedError> {
        self.shards
            .get(key.shard(self.shards.len()))
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
            .ok_or_else(|| SharedError::unavailable("memory", "no shard for the key"))
    }

    /// Live entries a shard may hold.
    pub(crate) fn per_shard(&self) -> usize {
        self.per_shard
    }

    /// The namespace's capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn live(&self, now: Duration) -> usize {
        self.shards
            .iter()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner).live(now))
            .sum()
    }
}

/// The namespaces of one port.
pub(crate) struct Tables<S> {
    port: &'static str,
    capacity: Capacity,
    map: RwLock<HashMap<String, Table<S>>>,
}

impl<S: Slot> Tables<S> {
    pub(crate) fn new(port: &'static str, capacity: Capacity) -> Self {
        Self {
            port,
            capacity,
            map: RwLock::default(),
        }
    }

    pub(crate) fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    /// Runs `f` on `namespace`'s table (made on first use).
    pub(crate) fn with<R>(
        &self,
        namespace: &str,
        now: Duration,
        f: impl FnOnce(&Table<S>) -> Result<R, SharedError>,
    ) -> Result<R, SharedError> {
        check_namespace(namespace)?;
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(t) = map.get(namespace) {
                return f(t);
            }
        }
        {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            if !map.contains_key(namespace) {
                if map.len() >= self.capacity.max_namespaces {
                    // Nobody is inside a table while the write lock is held: dropping the
                    // empty ones loses nothing.
                    map.retain(|_, t| t.live(now) > 0);
                }
                if map.len() >= self.capacity.max_namespaces {
                    return Err(SharedError::Exhausted {
                        port: self.port,
                        namespace: namespace.to_owned(),
                        capacity: self.capacity.max_namespaces,
                    });
                }
                map.insert(
                    namespace.to_owned(),
                    Table::new(self.capacity.of(namespace)),
                );
            }
        }
        // Taken again as a reader, so that `f` never runs under the write lock. The
        // table may have been dropped in between (only if empty): then it is made anew.
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        match map.get(namespace) {
            Some(t) => f(t),
            None => {
                drop(map);
                self.with(namespace, now, f)
            }
        }
    }

    /// `Exhausted` for `namespace`.
    pub(crate) fn full(&self, namespace: &str, capacity: usize) -> SharedError {
        SharedError::Exhausted {
            port: self.port,
            namespace: namespace.to_owned(),
            capacity,
        }
    }

    /// Namespaces held (tests).
    #[cfg(test)]
    pub(crate) fn namespaces(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Keys that expire, each at its own time: the replay cache and single-use consumption.
#[derive(Default)]
pub(crate) struct Expiring {
    live: HashMap<Key, Duration>,
    /// Expiry times, soonest first (`live` and this hold the same entries).
    order: BinaryHeap<Reverse<(Duration, Key)>>,
}

impl Expiring {
    /// Forgets what expired at or before `now`.
    fn prune(&mut self, now: Duration) {
        while let Some(Reverse((at, key))) = self.order.peek().copied() {
            if at > now {
                break;
            }
            self.order.pop();
            if self.live.get(&key) == Some(&at) {
                self.live.remove(&key);
            }
        }
    }

    /// Remembers `key` until `now + ttl` unless it is live: `Ok(true)` if it was
    /// inserted, `Ok(false)` if it was live already, `Err(())` if the shard holds
    /// `capacity` live keys (nothing live is forgotten to make room).
    pub(crate) fn insert_if_absent(
        &mut self,
        key: Key,
        now: Duration,
        ttl: Duration,
        capacity: usize,
    ) -> Result<bool, ()> {
        self.prune(now);
        if self.live.contains_key(&key) {
            return Ok(false);
        }
        if self.live.len() >= capacity {
            return Err(());
        }
        let at = now.checked_add(ttl).unwrap_or(Duration::MAX);
        self.live.insert(key, at);
        self.order.push(Reverse((at, key)));
        Ok(true)
    }
}

impl Slot for Expiring {
    fn live(&mut self, now: Duration) -> usize {
        self.prune(now);
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u32) -> Key {
        Key::from_parts(&[&i.to_be_bytes()])
    }

    #[test]
    fn expiring_keys_leave_at_their_own_time() {
        let mut e = Expiring::default();
        let s = Duration::from_secs;
        assert_eq!(e.insert_if_absent(k(1), s(10), s(5), 2), Ok(true));
        assert_eq!(e.insert_if_absent(k(2), s(10), s(50), 2), Ok(true));
        assert_eq!(e.insert_if_absent(k(1), s(14), s(5), 2), Ok(false));
        assert_eq!(e.insert_if_absent(k(3), s(14), s(5), 2), Err(()));
        // At 15 the first expired (live while now < 10 + 5): room for another.
        assert_eq!(e.insert_if_absent(k(3), s(15), s(5), 2), Ok(true));
        assert_eq!(e.live(s(15)), 2);
        assert_eq!(e.live(s(60)), 0);
        assert!(e.order.is_empty());
    }

    #[test]
    fn only_empty_namespaces_are_dropped_when_at_the_cap() {
        let t: Tables<Expiring> = Tables::new("replay", Capacity::new(10).namespaces(2));
        let now = Duration::from_secs(100);
        let put = |ns: &str, now: Duration| {
            t.with(ns, now, |table| {
                let mut s = table.shard(&k(1))?;
                Ok(s.insert_if_absent(k(1), now, Duration::from_secs(10), 10))
            })
        };
        assert_eq!(put("a", now), Ok(Ok(true)));
        assert_eq!(put("b", now), Ok(Ok(true)));
        assert!(matches!(
            put("c", now),
            Err(SharedError::Exhausted { capacity: 2, .. })
        ));
        assert_eq!(t.namespaces(), 2);
        // Once `a` and `b` hold nothing live, a new namespace takes their place.
        let later = now + Duration::from_secs(10);
        assert_eq!(put("c", later), Ok(Ok(true)));
        assert_eq!(t.namespaces(), 1);
        assert!(t.with("Bad", now, |_| Ok(())).is_err());
    }

    #[test]
    fn large_tables_are_sharded_small_ones_exact() {
        let small: Table<Expiring> = Table::new(100);
        assert_eq!(
            (small.shards.len(), small.per_shard(), small.capacity()),
            (1, 100, 100)
        );
        let large: Table<Expiring> = Table::new(1 << 20);
        assert_eq!(large.shards.len(), SHARDS);
        assert_eq!(large.per_shard(), (1 << 20) / SHARDS);
    }
}
