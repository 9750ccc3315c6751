//! Projections: in-memory views folded from `state` entries.
//!
//! Each projection owns its view behind its own lock and is applied in journal order:
//! at start-up from the latest signed snapshot plus the entries after it, then to each
//! durable batch before the callers of that batch are answered (append → apply →
//! respond). Reads never touch the store.

use crate::entry::{Entry, Kind};

/// A view derived from the journal.
pub trait Projection: Send + Sync + 'static {
    /// A stable name, for logs and readiness.
    fn name(&self) -> &'static str;

    /// Folds one `state` entry into the view. Must be deterministic: the same entries in the
    /// same order always give the same view.
    fn apply(&self, entry: &Entry);

    /// The whole view as JSON, for a snapshot.
    fn snapshot(&self) -> serde_json::Value;

    /// Replaces the view with a snapshot's state.
    fn restore(&self, state: &serde_json::Value) -> Result<(), String>;
}

/// Applies `entry` to every projection if it is a state entry.
pub fn fold(projections: &[std::sync::Arc<dyn Projection>], entry: &Entry) {
    if entry.kind == Kind::State {
        for p in projections {
            p.apply(entry);
        }
    }
}
