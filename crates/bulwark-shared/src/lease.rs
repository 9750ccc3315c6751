//! The leader lease port: a named lease held by one holder at a time, for a TTL, with a
//! fencing epoch that grows with every new tenure. A holder acts as leader only while it
//! holds the lease, and writes its epoch where the protected resource can check it (the
//! journal's head row, in the same transaction): a holder that lost the lease without
//! knowing (paused, partitioned) is then refused by the resource itself.
//!
//! Timing is the holder's job: it must stop acting before `ttl` has passed since it *sent*
//! its last successful acquire or renew (measured on its own clock, minus a margin for
//! clock drift), whatever the backend's clock says.
//!
//! A Redis implementation keeps `{holder, epoch}` under the name (`SET NX PX` to acquire,
//! with the epoch from `INCR` of a counter that is never deleted; renew and release as
//! Lua scripts comparing holder and epoch); a PostgreSQL one a row per name updated under
//! `SELECT … FOR UPDATE` on the database clock.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bulwark_core::Clock;

use crate::key::{check_namespace, check_ttl};
use crate::{BoxFuture, SharedError};

/// Longest holder identity, in bytes.
pub const MAX_HOLDER_LEN: usize = 256;

/// A tenure: `holder` holds `name` as of epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name.
    pub name: String,
    /// Who holds it (e.g. a replica's instance id).
    pub holder: String,
    /// The fencing epoch: strictly greater than that of every earlier tenure of `name`.
    pub epoch: u64,
}

/// What asking for a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease, for the TTL it asked.
    Granted(Lease),
    /// Another holder has it.
    Held {
        /// That holder.
        by: String,
    },
    /// (renew only) The caller's tenure is over (expired or released) and nobody holds
    /// the lease: stop acting as holder; acquiring again starts a new epoch.
    Lost,
}

/// A leader lease.
pub trait LeaderLease: Send + Sync + fmt::Debug {
    /// Acquires `name` for `holder` for `ttl`: granted if nobody holds it (a new tenure:
    /// a new, greater epoch) or if `holder` holds it already (the same tenure, extended);
    /// otherwise [`LeaseOutcome::Held`].
    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<LeaseOutcome, SharedError>>;

    /// Extends `lease` by `ttl` from now if it is still the current tenure (same holder,
    /// same epoch, not expired); otherwise [`LeaseOutcome::Held`] or
    /// [`LeaseOutcome::Lost`].
    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<LeaseOutcome, SharedError>>;

    /// Ends `lease` if it is still the current tenure; does nothing otherwise.
    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), SharedError>>;
}

#[derive(Default)]
struct Record {
    /// The holder and the end of its tenure.
    holder: Option<(String, Duration)>,
    /// The last tenure's epoch (0: none yet). Kept after release and expiry, so epochs
    /// never repeat.
    epoch: u64,
}

impl Record {
    /// The holder, if its tenure has not ended at `now`.
    fn live(&self, now: Duration) -> Option<&str> {
        self.holder
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(h, _)| h.as_str())
    }
}

/// The in-memory lease: in one process there is one holder, which is always granted;
/// the epoch grows with every new tenure. Epochs start again at 1 in a new process (a
/// shared backend keeps them).
pub struct MemoryLease {
    clock: Arc<dyn Clock>,
    records: Mutex<HashMap<String, Record>>,
    max_names: usize,
}

impl MemoryLease {
    /// Leases on `clock`, at most `max_names` names.
    pub fn new(clock: Arc<dyn Clock>, max_names: usize) -> Self {
        Self {
            clock,
            records: Mutex::default(),
            max_names,
        }
    }

    fn take(&self, name: &str, holder: &str, ttl: Duration) -> Result<LeaseOutcome, SharedError> {
        check_namespace(name)?;
        check_holder(holder)?;
        check_ttl(ttl)?;
        let now = self.clock.now();
        let until = now.checked_add(ttl).unwrap_or(Duration::MAX);
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if !records.contains_key(name) && records.len() >= self.max_names {
            return Err(SharedError::Exhausted {
                port: "lease",
                namespace: name.to_owned(),
                capacity: self.max_names,
            });
        }
        let r = records.entry(name.to_owned()).or_default();
        match r.live(now) {
            Some(h) if h != holder => Ok(LeaseOutcome::Held { by: h.to_owned() }),
            Some(_) => {
                r.holder = Some((holder.to_owned(), until));
                Ok(LeaseOutcome::Granted(Lease {
                    name: name.to_owned(),
                    holder: holder.to_owned(),
                    epoch: r.epoch,
                }))
            }
            None => {
                let epoch = r.epoch.checked_add(1).ok_or(SharedError::Exhausted {
                    port: "lease",
                    namespace: name.to_owned(),
                    capacity: usize::MAX,
                })?;
                r.epoch = epoch;
                r.holder = Some((holder.to_owned(), until));
                Ok(LeaseOutcome::Granted(Lease {
                    name: name.to_owned(),
                    holder: holder.to_owned(),
                    epoch,
                }))
            }
        }
    }

    fn extend(&self, lease: &Lease, ttl: Duration) -> Result<LeaseOutcome, SharedError> {
        check_ttl(ttl)?;
        let now = self.clock.now();
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(r) = records.get_mut(&lease.name) else {
            return Ok(LeaseOutcome::Lost);
        };
        match r.live(now) {
            Some(h) if h == lease.holder && r.epoch == lease.epoch => {
                r.holder = Some((
                    lease.holder.clone(),
                    now.checked_add(ttl).unwrap_or(Duration::MAX),
                ));
                Ok(LeaseOutcome::Granted(lease.clone()))
            }
            Some(h) => Ok(LeaseOutcome::Held { by: h.to_owned() }),
            None => Ok(LeaseOutcome::Lost),
        }
    }

    fn end(&self, lease: &Lease) {
        let now = self.clock.now();
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let current = records
            .get_mut(&lease.name)
            .filter(|r| r.live(now) == Some(lease.holder.as_str()) && r.epoch == lease.epoch);
        if let Some(r) = current {
            r.holder = None;
        }
    }
}

fn check_holder(holder: &str) -> Result<(), SharedError> {
    if holder.is_empty() || holder.len() > MAX_HOLDER_LEN || holder.chars().any(char::is_control) {
        Err(SharedError::Invalid { what: "holder" })
    } else {
        Ok(())
    }
}

impl fmt::Debug for MemoryLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLease")
            .field("max_names", &self.max_names)
            .finish_non_exhaustive()
    }
}

impl LeaderLease for MemoryLease {
    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<LeaseOutcome, SharedError>> {
        Box::pin(async move { self.take(name, holder, ttl) })
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<LeaseOutcome, SharedError>> {
        Box::pin(async move { self.extend(lease, ttl) })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(async move {
            self.end(lease);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_core::ManualClock;

    const TTL: Duration = Duration::from_secs(10);

    fn leases() -> (Arc<ManualClock>, MemoryLease) {
        let clock = Arc::new(ManualClock::at_secs(5_000));
        (clock.clone(), MemoryLease::new(clock, 8))
    }

    fn granted(o: Result<LeaseOutcome, SharedError>) -> Lease {
        match o {
            Ok(LeaseOutcome::Granted(l)) => l,
            other => panic!("not granted: {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_one_holder_of_a_process_is_always_granted() {
        let (clock, l) = leases();
        let a = granted(l.acquire("sequencer", "replica-a", TTL).await);
        assert_eq!(a.epoch, 1);
        // Acquiring again, or renewing, keeps the tenure and its epoch.
        assert_eq!(granted(l.acquire("sequencer", "replica-a", TTL).await), a);
        clock.advance(TTL - Duration::from_millis(1));
        assert_eq!(granted(l.renew(&a, TTL).await), a);
        clock.advance(TTL - Duration::from_millis(1));
        assert_eq!(granted(l.renew(&a, TTL).await), a);
        // Another name is another lease.
        assert_eq!(
            granted(l.acquire("checkpointer", "replica-a", TTL).await).epoch,
            1
        );
    }

    #[tokio::test]
    async fn another_holder_waits_and_a_new_tenure_has_a_greater_epoch() {
        let (clock, l) = leases();
        let a = granted(l.acquire("sequencer", "replica-a", TTL).await);
        assert_eq!(
            l.acquire("sequencer", "replica-b", TTL).await,
            Ok(LeaseOutcome::Held {
                by: "replica-a".into()
            })
        );
        // a's tenure runs out: b takes over with a greater epoch; a's renewal is refused.
        clock.advance(TTL);
        let b = granted(l.acquire("sequencer", "replica-b", TTL).await);
        assert!(b.epoch > a.epoch);
        assert_eq!(
            l.renew(&a, TTL).await,
            Ok(LeaseOutcome::Held {
                by: "replica-b".into()
            })
        );
        // a releasing its stale lease does not end b's tenure.
        l.release(&a).await.unwrap();
        assert_eq!(granted(l.renew(&b, TTL).await), b);
        // b releases: a new tenure (even of a former holder) has a greater epoch still.
        l.release(&b).await.unwrap();
        assert_eq!(l.renew(&b, TTL).await, Ok(LeaseOutcome::Lost));
        let a2 = granted(l.acquire("sequencer", "replica-a", TTL).await);
        assert!(a2.epoch > b.epoch);
        // An expired tenure is lost too, even if nobody took over.
        clock.advance(TTL);
        assert_eq!(l.renew(&a2, TTL).await, Ok(LeaseOutcome::Lost));
        // A renewal naming an old epoch of the current holder is refused.
        let a3 = granted(l.acquire("sequencer", "replica-a", TTL).await);
        assert_eq!(
            l.renew(&a2, TTL).await,
            Ok(LeaseOutcome::Held {
                by: "replica-a".into()
            })
        );
        assert_eq!(a3.epoch, a2.epoch + 1);
    }

    #[tokio::test]
    async fn bounded_names_and_checked_arguments() {
        let (_, l) = leases();
        for i in 0..8 {
            granted(l.acquire(&format!("l{i}"), "me", TTL).await);
        }
        assert!(matches!(
            l.acquire("l8", "me", TTL).await,
            Err(SharedError::Exhausted {
                port: "lease",
                capacity: 8,
                ..
            })
        ));
        assert_eq!(
            l.acquire("l0", "", TTL).await,
            Err(SharedError::Invalid { what: "holder" })
        );
        assert_eq!(
            l.acquire("l0", "me", Duration::ZERO).await,
            Err(SharedError::Invalid { what: "ttl" })
        );
        let unknown = Lease {
            name: "nope".into(),
            holder: "me".into(),
            epoch: 1,
        };
        assert_eq!(l.renew(&unknown, TTL).await, Ok(LeaseOutcome::Lost));
        l.release(&unknown).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_holders_one_wins() {
        let (_, l) = leases();
        let l = Arc::new(l);
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (l, barrier) = (l.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    l.acquire("sequencer", &format!("replica-{i}"), TTL).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            if let Ok(LeaseOutcome::Granted(lease)) = t.await.unwrap() {
                winners.push(lease);
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(winners[0].epoch, 1);
    }
}
