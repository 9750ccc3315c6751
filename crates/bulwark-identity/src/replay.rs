//! A bounded single-use cache for `jti`s (DPoP proofs, client assertions).
//!
//! Two generations per shard rotate every `window` seconds: an id is remembered for at
//! least `window` after it was first seen, which must be at least as long as a proof can
//! still be accepted (for DPoP: the ±30 s `iat` window, so 60 s). When a shard's current
//! generation is full of ids that may still be live, new ids are **refused**
//! (`replay_cache_full`), never admitted unremembered: forgetting would reopen replay.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::jose::Refusal;

const SHARDS: usize = 16;

struct Shard {
    current: HashSet<[u8; 32]>,
    previous: HashSet<[u8; 32]>,
    since: i64,
}

/// The cache. Keys are SHA-256 digests of whatever identifies a use (e.g. key thumbprint
/// and `jti`), so attacker-chosen strings are never stored as such.
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    window: i64,
    per_shard: usize,
}

impl ReplayCache {
    /// A cache remembering ids for at least `window_secs`, holding at most `capacity`
    /// live ids.
    pub fn new(window_secs: i64, capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        current: HashSet::new(),
                        previous: HashSet::new(),
                        since: i64::MIN,
                    })
                })
                .collect(),
            window: window_secs.max(1),
            per_shard,
        }
    }

    /// Records a first use of `parts` at `now`; refuses a second.
    pub fn first_use(&self, parts: &[&[u8]], now: i64) -> Result<(), Refusal> {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for p in parts {
            h.update(&(p.len() as u64).to_be_bytes());
            h.update(p);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(h.finish().as_ref());
        let idx = usize::from(key[0]) % SHARDS;
        let Some(shard) = self.shards.get(idx) else {
            return Err(Refusal::ReplayCacheFull);
        };
        let mut s = shard.lock().map_err(|_| Refusal::ReplayCacheFull)?;
        if now.saturating_sub(s.since) >= self.window {
            // Everything in `previous` is older than one window: forget it.
            let aged = std::mem::take(&mut s.current);
            s.previous = if now.saturating_sub(s.since) >= 2 * self.window {
                HashSet::new()
            } else {
                aged
            };
            s.since = now;
        }
        if s.current.contains(&key) || s.previous.contains(&key) {
            return Err(Refusal::Replayed);
        }
        if s.current.len() >= self.per_shard {
            return Err(Refusal::ReplayCacheFull);
        }
        s.current.insert(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_refused_until_two_windows_pass() {
        let c = ReplayCache::new(60, 1000);
        c.first_use(&[b"k", b"a"], 1000).unwrap();
        assert_eq!(c.first_use(&[b"k", b"a"], 1001), Err(Refusal::Replayed));
        // Part boundaries matter: ("ka","") is another id.
        c.first_use(&[b"ka", b""], 1001).unwrap();
        // Still remembered a full window later (it moved to `previous`).
        assert_eq!(c.first_use(&[b"k", b"a"], 1060), Err(Refusal::Replayed));
        assert_eq!(c.first_use(&[b"k", b"a"], 1119), Err(Refusal::Replayed));
        // Two windows after rotation it is forgotten (a proof that old is stale anyway).
        c.first_use(&[b"k", b"a"], 1200).unwrap();
    }

    #[test]
    fn full_means_refused_not_forgotten() {
        let c = ReplayCache::new(60, 16);
        let mut refused = 0;
        for i in 0u32..200 {
            match c.first_use(&[&i.to_be_bytes()], 5) {
                Ok(()) => {}
                Err(Refusal::ReplayCacheFull) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(refused > 0);
        for i in 0u32..200 {
            assert!(c.first_use(&[&i.to_be_bytes()], 6).is_err());
        }
    }
}
