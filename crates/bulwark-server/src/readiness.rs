//! Readiness: `/readyz` is 503 until start-up completes and whenever a dependency check
//! fails. Checks report by name; the state is a small map behind a lock, read per request.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The readiness state shared by the checks and `/readyz`.
#[derive(Default)]
pub struct Readiness {
    started: AtomicBool,
    failing: Mutex<BTreeMap<&'static str, String>>,
}

impl Readiness {
    /// Not ready, no checks yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Marks start-up as complete.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Records the outcome of check `name`. Returns whether the state changed.
    pub fn report(&self, name: &'static str, outcome: Result<(), String>) -> bool {
        let Ok(mut failing) = self.failing.lock() else {
            return false;
        };
        match outcome {
            Ok(()) => failing.remove(name).is_some(),
            Err(why) => failing.insert(name, why).is_none(),
        }
    }

    /// `Ok` when ready, otherwise the reasons.
    pub fn status(&self) -> Result<(), Vec<String>> {
        if !self.started.load(Ordering::Acquire) {
            return Err(vec!["start-up has not completed".into()]);
        }
        let failing = self
            .failing
            .lock()
            .map_err(|_| vec!["readiness state poisoned".to_string()])?;
        if failing.is_empty() {
            Ok(())
        } else {
            Err(failing.iter().map(|(k, v)| format!("{k}: {v}")).collect())
        }
    }
}

/// Every `interval`: the journal's last append succeeded, and the data directory (if any)
/// takes a durable write (a probe file written and fsynced). A failing journal, a full
/// disk, a read-only remount or a probe path that cannot be written flips readiness to
/// 503 until they succeed again.
pub fn spawn_probes(
    readiness: Arc<Readiness>,
    dir: Option<PathBuf>,
    ledger: bulwark_ledger::Ledger,
    interval: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let journal = if ledger.is_healthy() {
                Ok(())
            } else {
                Err("the last journal append failed".to_owned())
            };
            let failed = journal.is_err();
            if readiness.report("journal", journal) {
                if failed {
                    tracing::error!(
                        check = "journal",
                        "readiness check failed: journal cannot append"
                    );
                } else {
                    tracing::info!(check = "journal", "readiness check recovered");
                }
            }
            let Some(dir) = &dir else { continue };
            let p = dir.join(".ready-probe");
            let outcome = tokio::task::spawn_blocking(move || {
                bulwark_fs::write_atomic(&p, b"ok\n", 0o600).map_err(|e| format!("{e:#}"))
            })
            .await
            .unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
            let failed = outcome.is_err();
            if readiness.report("storage", outcome) {
                if failed {
                    tracing::error!(
                        check = "storage",
                        "readiness check failed: data directory not writable"
                    );
                } else {
                    tracing::info!(check = "storage", "readiness check recovered");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_until_started_and_while_a_check_fails() {
        let r = Readiness::new();
        assert!(r.status().is_err());
        r.mark_started();
        assert!(r.status().is_ok());
        assert!(r.report("storage", Err("disk full".into())));
        assert_eq!(
            r.status().unwrap_err(),
            vec!["storage: disk full".to_string()]
        );
        assert!(r.report("storage", Ok(())));
        assert!(r.status().is_ok());
        assert!(!r.report("storage", Ok(())));
    }
}
