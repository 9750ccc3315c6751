//! Projections: in-memory views folded from `state` entries.
//!
//! Each projection owns its view behind its own lock and is applied in journal order:
//! at start-up to every stored entry, then to each durable batch before the callers of
//! that batch are answered (append → apply → respond). Reads never touch the store.

use crate::entry::{Entry, Kind};

/// A view derived from the journal.
pub trait Projection: Send + Sync + 'static {
    /// A stable name, for logs and readiness.
    fn name(&self) -> &'static str;

    /// Folds one `state` entry into the view. Must be deterministic: the same entries in the
    /// same order always give the same view.
    fn apply(&self, entry: &Entry);
}

/// Applies `entry` to every projection if it is a state entry.
pub fn fold(projections: &[std::sync::Arc<dyn Projection>], entry: &Entry) {
    if entry.kind == Kind::State {
        for p in projections {
            p.apply(entry);
        }
    }
}
