//! Property tests of the memory ports against small reference models, on a manual clock.

#![expect(clippy::unwrap_used, reason = "test helpers")]

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bulwark_core::ManualClock;
use bulwark_shared::{
    Capacity, Key, LeaderLease, LeaseOutcome, MemoryLease, MemoryRateLimiter, MemoryReplayCache,
    MemorySingleUse, Quota, Rate, RateLimiter, ReplayCache, Seen, SharedError, SingleUse, Use,
};
use proptest::prelude::*;

const START: u64 = 1_700_000_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn key(i: u8) -> Key {
    Key::from_parts(&[b"k", &[i]])
}

/// One step: move the clock, then use key `key` in namespace `ns` for `ttl_ms`.
#[derive(Debug, Clone)]
struct Step {
    advance_ms: u64,
    ns: usize,
    key: u8,
    ttl_ms: u64,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0u64..2_000, 0usize..2, 0u8..6, 1u64..3_000).prop_map(|(advance_ms, ns, key, ttl_ms)| {
            Step {
                advance_ms,
                ns,
                key,
                ttl_ms,
            }
        }),
        1..200,
    )
}

/// What the reference model says: `Some(true)` remembered now, `Some(false)` already
/// live, `None` full.
fn model_step(
    live: &mut HashMap<(usize, u8), u64>,
    now: u64,
    s: &Step,
    capacity: usize,
) -> Option<bool> {
    live.retain(|_, until| *until > now);
    if live.contains_key(&(s.ns, s.key)) {
        return Some(false);
    }
    if live.keys().filter(|(ns, _)| *ns == s.ns).count() >= capacity {
        return None;
    }
    live.insert((s.ns, s.key), now + s.ttl_ms);
    Some(true)
}

const NS: [&str; 2] = ["dpop", "event/acme"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The replay cache and single-use consumption answer exactly as a map of expiry
    /// times with a per-namespace capacity: nothing live is ever forgotten, a full
    /// namespace refuses, an expired key is new again.
    #[test]
    fn replay_and_single_use_match_the_model(steps in steps(), capacity in 1usize..8) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(START)));
        let replay = MemoryReplayCache::new(clock.clone(), Capacity::new(capacity));
        let once = MemorySingleUse::new(clock.clone(), Capacity::new(capacity));
        let mut model = HashMap::new();
        let rt = rt();
        for s in &steps {
            clock.advance(Duration::from_millis(s.advance_ms));
            let now = u64::try_from(clock_ms(&clock)).unwrap();
            let want = model_step(&mut model, now, s, capacity);
            let ttl = Duration::from_millis(s.ttl_ms);
            let (r, u) = rt.block_on(async {
                (
                    replay.check_and_insert(NS[s.ns], key(s.key), ttl).await,
                    once.consume(NS[s.ns], key(s.key), ttl).await,
                )
            });
            match want {
                Some(true) => {
                    prop_assert_eq!(r, Ok(Seen::Fresh));
                    prop_assert_eq!(u, Ok(Use::First));
                }
                Some(false) => {
                    prop_assert_eq!(r, Ok(Seen::Replayed));
                    prop_assert_eq!(u, Ok(Use::AlreadyUsed));
                }
                None => {
                    prop_assert!(full(r.err(), capacity));
                    prop_assert!(full(u.err(), capacity));
                }
            }
        }
    }

    /// GCRA never lets more than `burst + elapsed / interval` requests through in any
    /// window, lets a request through at exactly `retry_after`, and always lets one
    /// through after a full refill.
    #[test]
    fn gcra_holds_its_bound_and_its_promise(
        gaps in prop::collection::vec((0u64..400, any::<bool>()), 1..300),
        per_second in 1u32..50,
        burst in 1u32..8,
    ) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(START)));
        let limiter = MemoryRateLimiter::new(clock.clone(), Capacity::new(16));
        let quota = Quota::per_second(
            NonZeroU32::new(per_second).unwrap(),
            NonZeroU32::new(burst).unwrap(),
        );
        let interval = quota.interval().as_nanos();
        let rt = rt();
        let check = || rt.block_on(limiter.check("client", key(1), quota));
        let mut allowed: Vec<u128> = Vec::new();
        for (gap, follow) in gaps {
            clock.advance(Duration::from_millis(gap));
            let now = clock_ns(&clock);
            let refilled = allowed
                .last()
                .is_none_or(|last| now - last >= interval * u128::from(burst));
            match check().unwrap() {
                Rate::Allowed => allowed.push(now),
                Rate::Limited { retry_after } => {
                    prop_assert!(!refilled, "limited after a full refill");
                    prop_assert!(!retry_after.is_zero());
                    if follow {
                        clock.advance(retry_after);
                        prop_assert_eq!(check().unwrap(), Rate::Allowed);
                        allowed.push(clock_ns(&clock));
                    }
                }
            }
        }
        // Every window [allowed[i], allowed[j]] holds at most burst + elapsed/interval.
        for i in 0..allowed.len() {
            for j in i..allowed.len() {
                let n = (j - i + 1) as u128;
                let elapsed = allowed[j] - allowed[i];
                prop_assert!(
                    n <= u128::from(burst) + elapsed / interval,
                    "{n} requests in {elapsed} ns (interval {interval}, burst {burst})"
                );
            }
        }
    }

    /// Leases answer as a model of (holder, end of tenure, epoch): at most one live
    /// holder, epochs strictly growing with every new tenure.
    #[test]
    fn leases_match_the_model(
        ops in prop::collection::vec((0u8..4, 0usize..3, 0u64..15), 1..200),
    ) {
        const TTL: Duration = Duration::from_secs(10);
        const HOLDERS: [&str; 3] = ["a", "b", "c"];
        let clock = Arc::new(ManualClock::new(Duration::from_secs(START)));
        let leases = MemoryLease::new(clock.clone(), 4);
        let rt = rt();
        // Model: current (holder, until), last epoch; each holder's last granted lease.
        let mut current: Option<(usize, u128)> = None;
        let mut epoch = 0u64;
        let mut held: [Option<bulwark_shared::Lease>; 3] = [None, None, None];
        let ttl = TTL.as_nanos();
        for (op, who, advance) in ops {
            clock.advance(Duration::from_secs(advance));
            let now = clock_ns(&clock);
            let live = current.filter(|(_, until)| now < *until).map(|(h, _)| h);
            match op {
                0 => {
                    let got = rt.block_on(leases.acquire("sequencer", HOLDERS[who], TTL)).unwrap();
                    match live {
                        Some(h) if h != who => {
                            prop_assert_eq!(got, LeaseOutcome::Held { by: HOLDERS[h].into() });
                        }
                        Some(_) => {
                            let LeaseOutcome::Granted(l) = got else {
                                return Err(TestCaseError::fail("same holder not granted"));
                            };
                            prop_assert_eq!(l.epoch, epoch);
                            current = Some((who, now + ttl));
                            held[who] = Some(l);
                        }
                        None => {
                            let LeaseOutcome::Granted(l) = got else {
                                return Err(TestCaseError::fail("vacant lease not granted"));
                            };
                            prop_assert!(l.epoch > epoch);
                            epoch = l.epoch;
                            current = Some((who, now + ttl));
                            held[who] = Some(l);
                        }
                    }
                }
                1 | 2 => {
                    let Some(lease) = held[who].clone() else { continue };
                    let ours = live == Some(who) && lease.epoch == epoch;
                    if op == 1 {
                        let got = rt.block_on(leases.renew(&lease, TTL)).unwrap();
                        match (ours, live) {
                            (true, _) => {
                                prop_assert_eq!(got, LeaseOutcome::Granted(lease));
                                current = Some((who, now + ttl));
                            }
                            (false, Some(h)) => {
                                prop_assert_eq!(got, LeaseOutcome::Held { by: HOLDERS[h].into() });
                            }
                            (false, None) => prop_assert_eq!(got, LeaseOutcome::Lost),
                        }
                    } else {
                        rt.block_on(leases.release(&lease)).unwrap();
                        if ours {
                            current = None;
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn full(e: Option<SharedError>, capacity: usize) -> bool {
    matches!(e, Some(SharedError::Exhausted { capacity: c, .. }) if c == capacity)
}

fn clock_ns(clock: &ManualClock) -> u128 {
    use bulwark_core::Clock as _;
    clock.now().as_nanos()
}

fn clock_ms(clock: &ManualClock) -> u128 {
    use bulwark_core::Clock as _;
    clock.now().as_millis()
}
