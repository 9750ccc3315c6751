//! The storage contract of the journal, implemented by `bulwark-store` (memory, SQLite, and
//! later PostgreSQL with several replicas).
//!
//! Shaped for a shared store: one sequencer position (`size`), idempotent appends at an
//! explicit position (a replica that retries a batch it may have written gets `Ok` for the
//! identical bytes and `Conflict` for different ones), and reads by range.

use thiserror::Error;

/// Errors of a journal store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or refused the write (disk full, read-only, I/O).
    #[error("journal store unavailable: {0}")]
    Unavailable(String),
    /// An append at a position that already holds different bytes, or beyond the end.
    #[error("append conflict at seq {seq}: {why}")]
    Conflict {
        /// The first position in conflict.
        seq: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// The stored data is not what the journal wrote (tampering or corruption).
    #[error("journal store corrupt: {0}")]
    Corrupt(String),
}

/// One stored entry with the leaf hash recorded when it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Position.
    pub seq: u64,
    /// Canonical bytes.
    pub body: Vec<u8>,
    /// `leaf_hash(body)` as computed at append time.
    pub leaf_hash: [u8; 32],
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size it commits to.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// A signed snapshot of the projections at a tree size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// Tree size the views were folded up to.
    pub size: u64,
    /// Canonical JSON `{origin, root, size, views}`.
    pub body: Vec<u8>,
    /// Ed25519 signature over `body` by the ledger key.
    pub signature: Vec<u8>,
}

/// A read-only handle on a store, usable beside the writer (HTTP reads, tiles, mirrors).
pub trait JournalRead: Send + 'static {
    /// Entries with `from <= seq < to`, in order.
    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError>;
}

/// The journal's store. Appends are durable (fsynced) when they return `Ok`.
pub trait Journal: Send + 'static {
    /// A separate read handle that sees every committed append.
    fn reader(&self) -> Result<Box<dyn JournalRead>, StoreError>;

    /// Number of entries stored.
    fn size(&self) -> Result<u64, StoreError>;

    /// Appends `entries` at positions `first..first + entries.len()` in one durable
    /// transaction: all or nothing.
    fn append(&mut self, first: u64, entries: &[StoredEntry]) -> Result<(), StoreError>;

    /// Entries with `from <= seq < to`, in order.
    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError>;

    /// Stores a signed checkpoint.
    fn put_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), StoreError>;

    /// Every stored checkpoint, by size.
    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// The latest stored checkpoint.
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The leaf hashes recorded for `from <= seq < to`, in order (start-up fast path).
    fn leaf_hashes(&self, from: u64, to: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(self
            .read(from, to)?
            .into_iter()
            .map(|e| e.leaf_hash)
            .collect())
    }

    /// Stores a projection snapshot.
    fn put_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<(), StoreError>;

    /// The latest stored snapshot.
    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError>;
}
