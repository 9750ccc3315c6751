//! The group-commit appender: one writer thread owns the store, batches every append that
//! is waiting into one durable transaction, and answers each caller only once its entry is
//! durable, with its `seq`.
//!
//! If the store fails, every caller of the batch gets an error, nothing is acknowledged
//! that was not written, the in-memory tree does not advance, and [`Ledger::is_healthy`]
//! stays false until an append succeeds again. After a failure the writer re-reads the
//! store's size before the next batch, so a commit that succeeded despite a reported error
//! is picked up rather than overwritten.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bulwark_crypto::SigningKey;
use thiserror::Error;
use tokio::sync::oneshot;

use crate::checkpoint::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
use crate::entry::{Draft, Entry, EntryError, Prepared};
use crate::journal::{Journal, StoreError, StoredCheckpoint, StoredEntry, StoredSnapshot};
use crate::merkle::{Hash, Tree, leaf_hash};
use crate::projection::{Projection, fold};

/// Settings of the appender.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The checkpoint origin line, `bulwark/<instance id>`.
    pub origin: String,
    /// A checkpoint is signed after a batch at most this often.
    pub checkpoint_interval: Duration,
    /// Most entries in one transaction.
    pub max_batch: usize,
    /// A signed snapshot of the projections is written after this many new entries (0:
    /// never), so that start-up folds only the tail.
    pub snapshot_every: u64,
}

/// An acknowledged, durable append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The entry's position.
    pub seq: u64,
    /// Its leaf hash.
    pub leaf: Hash,
}

/// Why an append was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The store refused or failed the write; nothing was acknowledged.
    #[error("journal unavailable: {0}")]
    Unavailable(String),
    /// The entry could not be encoded.
    #[error("entry rejected: {0}")]
    Rejected(String),
    /// The appender has stopped.
    #[error("journal closed")]
    Closed,
}

/// Why the journal could not be opened: the store disagrees with what the journal signed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored entry does not match its recorded hash, position or form.
    #[error("entry {seq} is corrupt or tampered with: {why}")]
    Tampered {
        /// The first divergent seq.
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// The latest checkpoint does not verify or disagrees with the stored entries.
    #[error("checkpoint at size {size} does not match the stored journal: {why}")]
    Checkpoint {
        /// The checkpoint's size.
        size: u64,
        /// What is wrong.
        why: String,
    },
    /// The signer name is invalid.
    #[error(transparent)]
    Note(#[from] NoteError),
}

#[expect(
    clippy::large_enum_variant,
    reason = "appends are the hot variant; boxing them would add an allocation per append"
)]
enum Request {
    Append(Prepared, oneshot::Sender<Result<Appended, AppendError>>),
    Checkpoint(oneshot::Sender<Result<String, AppendError>>),
}

struct Shared {
    reader: std::sync::Mutex<Box<dyn crate::journal::JournalRead>>,
    tree: RwLock<Tree>,
    checkpoint: RwLock<Option<String>>,
    healthy: AtomicBool,
    verifier: NoteVerifier,
    origin: String,
}

/// A handle to the journal: append, read the tree, read checkpoints. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Ledger {
    /// Opens the journal: re-verifies every stored entry (canonical form, position, leaf
    /// hash) and the latest checkpoint (signature, root at its size), folds the entries
    /// into `projections`, and starts the writer thread.
    pub fn open(
        journal: Box<dyn Journal>,
        key: SigningKey,
        config: LedgerConfig,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, OpenError> {
        let signer_name = config.origin.clone();
        let verifier = NoteVerifier::from_vkey(&NoteSigner::new(&signer_name, &key)?.vkey())?;
        let size = journal.size()?;
        // A signed snapshot lets start-up parse and fold only the tail; every body is
        // still re-hashed against its recorded leaf hash, which is cheap.
        let mut snapshot = read_snapshot(journal.as_ref(), &key, &config.origin)?;
        // A snapshot taken before a projection existed cannot restore it: fold the whole
        // log instead (the next snapshot will carry every view).
        if let Some(s) = &snapshot
            && let Some(p) = projections.iter().find(|p| !s.views.contains_key(p.name()))
        {
            tracing::info!(
                view = p.name(),
                "the latest snapshot predates this view; folding the whole journal"
            );
            snapshot = None;
        }
        let snap_size = snapshot.as_ref().map_or(0, |s| s.size).min(size);
        let mut tail: Vec<Entry> = Vec::new();
        let mut tree = Tree::new();
        let mut from = 0;
        while from < size {
            let chunk = journal.read(from, (from + 4096).min(size))?;
            if chunk.is_empty() {
                return Err(OpenError::Tampered {
                    seq: from,
                    why: "missing".into(),
                });
            }
            for stored in chunk {
                let seq = tree.size();
                if seq < snap_size {
                    check_hash(&stored, seq)?;
                } else {
                    let entry = check_stored(&stored, seq)?;
                    if snapshot.is_some() {
                        tail.push(entry);
                    } else {
                        fold(&projections, &entry);
                    }
                }
                tree.push(stored.leaf_hash);
            }
            from = tree.size();
        }
        let latest = journal.latest_checkpoint()?;
        if let Some(cp) = &latest {
            let parsed = verifier
                .verify(&cp.note)
                .map_err(|e| OpenError::Checkpoint {
                    size: cp.size,
                    why: e.to_string(),
                })?;
            let root = tree
                .root_at(parsed.size)
                .map_err(|_| OpenError::Checkpoint {
                    size: parsed.size,
                    why: format!("the store holds only {} entries", tree.size()),
                })?;
            if root != parsed.root || parsed.origin != config.origin {
                return Err(OpenError::Checkpoint {
                    size: parsed.size,
                    why: "root hash differs".into(),
                });
            }
        }
        if let Some(snap) = &snapshot {
            let prefix = tree.root_at(snap.size).ok();
            if snap.size > size || prefix != Some(snap.root) {
                return Err(snapshot_err(&format!(
                    "the snapshot at {} commits to another log prefix",
                    snap.size
                )));
            }
            for p in &projections {
                let state = snap
                    .views
                    .get(p.name())
                    .ok_or_else(|| snapshot_err(&format!("no view `{}`", p.name())))?;
                p.restore(state).map_err(|e| snapshot_err(&e))?;
            }
            for entry in &tail {
                fold(&projections, entry);
            }
        }
        let shared = Arc::new(Shared {
            reader: std::sync::Mutex::new(journal.reader()?),
            tree: RwLock::new(tree),
            checkpoint: RwLock::new(latest.map(|c| c.note)),
            healthy: AtomicBool::new(true),
            verifier,
            origin: config.origin.clone(),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            journal,
            key,
            config,
            shared: shared.clone(),
            projections,
            resync: false,
            last_checkpoint: Instant::now(),
            checkpointed_size: None,
            snapshot_size: snap_size,
        };
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer: {e}")))?;
        Ok(Self { tx, shared })
    }

    /// Appends an entry; resolves once it is durable.
    pub async fn append(&self, draft: Draft) -> Result<Appended, AppendError> {
        self.enqueue(draft)?.await
    }

    /// Queues an entry now, synchronously, and returns what resolves once it is durable:
    /// entries queued one after the other (e.g. under a lock) are sequenced in that order,
    /// while their durability is awaited outside the lock and shared by one group commit.
    pub fn enqueue(
        &self,
        draft: Draft,
    ) -> Result<impl std::future::Future<Output = Result<Appended, AppendError>> + use<>, AppendError>
    {
        let (tx, rx) = oneshot::channel();
        // Encoding and most of the hashing happen here, on the caller's task.
        let prepared = draft.prepare();
        self.tx
            .send(Request::Append(prepared, tx))
            .map_err(|_| AppendError::Closed)?;
        Ok(async move { rx.await.map_err(|_| AppendError::Closed)? })
    }

    /// Signs and stores a checkpoint of the current tree now; returns the note.
    pub async fn checkpoint_now(&self) -> Result<String, AppendError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Checkpoint(tx))
            .map_err(|_| AppendError::Closed)?;
        rx.await.map_err(|_| AppendError::Closed)?
    }

    /// The latest signed checkpoint note, if any.
    pub fn latest_checkpoint(&self) -> Option<String> {
        self.shared.checkpoint.read().ok().and_then(|c| c.clone())
    }

    /// Runs `f` with read access to the tree (for proofs and tiles).
    pub fn with_tree<T>(&self, f: impl FnOnce(&Tree) -> T) -> Option<T> {
        self.shared.tree.read().ok().map(|t| f(&t))
    }

    /// Reads durable entries `from..to` (blocking: call from a blocking context).
    pub fn read_entries(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        let to = to.min(self.size());
        self.shared
            .reader
            .lock()
            .map_err(|_| StoreError::Unavailable("reader lock poisoned".into()))?
            .read(from, to)
    }

    /// Number of durable entries.
    pub fn size(&self) -> u64 {
        self.with_tree(Tree::size).unwrap_or(0)
    }

    /// Whether the last append (if any) succeeded.
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// The checkpoint verifier (its vkey is published).
    pub fn verifier(&self) -> &NoteVerifier {
        &self.shared.verifier
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }
}

/// The canonical snapshot body.
fn snapshot_body(
    origin: &str,
    size: u64,
    root: &Hash,
    projections: &[Arc<dyn Projection>],
) -> Result<Vec<u8>, EntryError> {
    let views: serde_json::Map<String, serde_json::Value> = projections
        .iter()
        .map(|p| (p.name().to_owned(), p.snapshot()))
        .collect();
    let body = serde_json::json!({
        "origin": origin,
        "root": crate::verify::hex(root),
        "size": size,
        "views": views,
    });
    serde_jcs::to_vec(&body).map_err(EntryError::Data)
}

fn snapshot_err(e: &dyn std::fmt::Display) -> OpenError {
    OpenError::Tampered {
        seq: 0,
        why: format!("projection snapshot rejected: {e}"),
    }
}

/// A snapshot whose signature verified.
struct Snapshot {
    size: u64,
    root: Hash,
    views: serde_json::Map<String, serde_json::Value>,
}

/// Reads and authenticates the latest snapshot. A snapshot that does not verify stops the
/// open: a view forged beside an intact journal is tampering too.
fn read_snapshot(
    journal: &dyn Journal,
    key: &SigningKey,
    origin: &str,
) -> Result<Option<Snapshot>, OpenError> {
    let Some(s) = journal.latest_snapshot()? else {
        return Ok(None);
    };
    if !key.verifying_key().verify(&s.body, &s.signature) {
        return Err(snapshot_err(&"bad signature"));
    }
    let v: serde_json::Value = serde_json::from_slice(&s.body).map_err(|e| snapshot_err(&e))?;
    let field = |name: &str| v.get(name).cloned().unwrap_or_default();
    if field("origin") != origin || field("size").as_u64() != Some(s.size) {
        return Err(snapshot_err(&"origin or size mismatch"));
    }
    let root = field("root")
        .as_str()
        .and_then(crate::verify::unhex)
        .ok_or_else(|| snapshot_err(&"no root"))?;
    let views = field("views")
        .as_object()
        .cloned()
        .ok_or_else(|| snapshot_err(&"no views"))?;
    Ok(Some(Snapshot {
        size: s.size,
        root,
        views,
    }))
}

/// Checks an entry's position and that its body matches its recorded leaf hash.
fn check_hash(stored: &StoredEntry, expected_seq: u64) -> Result<(), OpenError> {
    if stored.seq != expected_seq {
        return Err(OpenError::Tampered {
            seq: expected_seq,
            why: "gap or reordering in the journal".into(),
        });
    }
    if leaf_hash(&stored.body) != stored.leaf_hash {
        return Err(OpenError::Tampered {
            seq: expected_seq,
            why: "body does not match its recorded leaf hash".into(),
        });
    }
    Ok(())
}

/// Checks one stored entry against its position and recorded hash.
pub fn check_stored(stored: &StoredEntry, expected_seq: u64) -> Result<Entry, OpenError> {
    let tampered = |why: &str| OpenError::Tampered {
        seq: expected_seq,
        why: why.into(),
    };
    if stored.seq != expected_seq {
        return Err(tampered("gap or reordering in the journal"));
    }
    if leaf_hash(&stored.body) != stored.leaf_hash {
        return Err(tampered("body does not match its recorded leaf hash"));
    }
    let entry = Entry::from_canonical(&stored.body).map_err(|e| match e {
        EntryError::NotCanonical => tampered("not in canonical form"),
        other => tampered(&other.to_string()),
    })?;
    if entry.seq != expected_seq {
        return Err(tampered("entry's own seq differs from its position"));
    }
    Ok(entry)
}

struct Writer {
    journal: Box<dyn Journal>,
    key: SigningKey,
    config: LedgerConfig,
    shared: Arc<Shared>,
    projections: Vec<Arc<dyn Projection>>,
    resync: bool,
    last_checkpoint: Instant,
    checkpointed_size: Option<u64>,
    snapshot_size: u64,
}

type Waiter = oneshot::Sender<Result<Appended, AppendError>>;

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Request>) {
        loop {
            // Idle wake-ups cover the tail with a checkpoint; never spin, even at interval 0.
            let idle = self
                .config
                .checkpoint_interval
                .max(Duration::from_millis(50));
            let first = match rx.recv_timeout(idle) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    // Quiet period: make sure the tail is covered by a checkpoint, and
                    // after a failure find out whether the store takes writes again.
                    if self.shared.healthy.load(Ordering::Acquire) {
                        let _ = self.maybe_checkpoint(true);
                    } else {
                        self.probe_store();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut drafts: Vec<(Prepared, Waiter)> = Vec::new();
            let mut checkpoints = Vec::new();
            let mut next = Some(first);
            while let Some(r) = next.take() {
                match r {
                    Request::Append(d, w) => drafts.push((d, w)),
                    Request::Checkpoint(w) => checkpoints.push(w),
                }
                if drafts.len() < self.config.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !drafts.is_empty() {
                self.commit(drafts);
            }
            self.maybe_snapshot();
            if checkpoints.is_empty() {
                let _ = self.maybe_checkpoint(false);
            } else {
                let result = self.maybe_checkpoint(true);
                for w in checkpoints {
                    let _ = w.send(result.clone());
                }
            }
        }
    }

    fn fail_all(&self, waiters: Vec<Waiter>, why: &str) {
        self.shared.healthy.store(false, Ordering::Release);
        for w in waiters {
            let _ = w.send(Err(AppendError::Unavailable(why.to_owned())));
        }
    }

    /// Brings the in-memory tree up to the store after an uncertain failure.
    fn resync(&mut self) -> Result<(), StoreError> {
        let have = self.shared.tree.read().map(|t| t.size()).unwrap_or(0);
        let size = self.journal.size()?;
        if size > have {
            let extra = self.journal.read(have, size)?;
            let mut entries = Vec::with_capacity(extra.len());
            for (i, stored) in extra.iter().enumerate() {
                let entry = check_stored(stored, have + i as u64)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                entries.push(entry);
            }
            if let Ok(mut tree) = self.shared.tree.write() {
                for (stored, entry) in extra.iter().zip(&entries) {
                    tree.push(stored.leaf_hash);
                    fold(&self.projections, entry);
                }
            }
        }
        self.resync = false;
        Ok(())
    }

    fn commit(&mut self, drafts: Vec<(Prepared, Waiter)>) {
        if self.resync
            && let Err(e) = self.resync()
        {
            let waiters = drafts.into_iter().map(|(_, w)| w).collect();
            self.fail_all(waiters, &e.to_string());
            return;
        }
        let start = self.shared.tree.read().map(|t| t.size()).unwrap_or(0);
        let ts = now_ms();
        let mut stored = Vec::with_capacity(drafts.len());
        let mut accepted: Vec<(Entry, Waiter)> = Vec::with_capacity(drafts.len());
        for (draft, waiter) in drafts {
            let (entry, body, leaf) = draft.sequence(start + stored.len() as u64, ts);
            stored.push(StoredEntry {
                seq: entry.seq,
                body,
                leaf_hash: leaf,
            });
            accepted.push((entry, waiter));
        }
        if stored.is_empty() {
            return;
        }
        let began = Instant::now();
        let result = self.journal.append(start, &stored);
        // Named as in DESIGN.md §4 (the server's recorder renders them).
        metrics::histogram!("audit_append_latency_seconds").record(began.elapsed().as_secs_f64());
        if let Err(e) = result {
            self.resync = true;
            let waiters = accepted.into_iter().map(|(_, w)| w).collect();
            self.fail_all(waiters, &e.to_string());
            return;
        }
        self.shared.healthy.store(true, Ordering::Release);
        metrics::counter!("audit_appends_total").increment(stored.len() as u64);
        if let Ok(mut tree) = self.shared.tree.write() {
            for s in &stored {
                tree.push(s.leaf_hash);
            }
        }
        for ((entry, waiter), s) in accepted.into_iter().zip(&stored) {
            fold(&self.projections, &entry);
            let _ = waiter.send(Ok(Appended {
                seq: s.seq,
                leaf: s.leaf_hash,
            }));
        }
    }

    /// After a failure, with no traffic to prove recovery: re-store the latest checkpoint
    /// (an idempotent write that needs the same lock as an append).
    fn probe_store(&mut self) {
        if self.resync && self.resync().is_err() {
            return;
        }
        let latest = self.shared.checkpoint.read().ok().and_then(|c| c.clone());
        let size = self.shared.tree.read().map(|t| t.size()).unwrap_or(0);
        let ok = match (latest, self.checkpointed_size) {
            (Some(note), Some(cp_size)) => self
                .journal
                .put_checkpoint(&StoredCheckpoint {
                    size: cp_size,
                    note,
                })
                .is_ok(),
            _ => self.maybe_checkpoint(true).is_ok() || size == 0,
        };
        if ok {
            self.shared.healthy.store(true, Ordering::Release);
        }
    }

    /// Writes a signed snapshot of the projections when enough entries have passed.
    fn maybe_snapshot(&mut self) {
        let every = self.config.snapshot_every;
        let Ok((size, root)) = self.shared.tree.read().map(|t| (t.size(), t.root())) else {
            return;
        };
        if every == 0 || size < self.snapshot_size + every {
            return;
        }
        let Ok(body) = snapshot_body(&self.config.origin, size, &root, &self.projections) else {
            return;
        };
        let signature = self.key.sign(&body).to_vec();
        match self.journal.put_snapshot(&StoredSnapshot {
            size,
            body,
            signature,
        }) {
            Ok(()) => self.snapshot_size = size,
            // Only costs start-up time later; retried after the next batch.
            Err(_) => metrics::counter!("journal_snapshot_failures_total").increment(1),
        }
    }

    /// Signs a checkpoint of the current size if it is not yet covered and either `force`
    /// or the interval has passed.
    fn maybe_checkpoint(&mut self, force: bool) -> Result<String, AppendError> {
        let (size, root) = self
            .shared
            .tree
            .read()
            .map(|t| (t.size(), t.root()))
            .map_err(|_| AppendError::Closed)?;
        if self.checkpointed_size == Some(size) {
            return self
                .shared
                .checkpoint
                .read()
                .ok()
                .and_then(|c| c.clone())
                .ok_or(AppendError::Closed);
        }
        if !force && self.last_checkpoint.elapsed() < self.config.checkpoint_interval {
            return Err(AppendError::Unavailable("checkpoint not due".into()));
        }
        let signer = NoteSigner::new(&self.config.origin, &self.key)
            .map_err(|e| AppendError::Rejected(e.to_string()))?;
        let note = signer.sign(&Checkpoint {
            origin: self.config.origin.clone(),
            size,
            root,
        });
        self.journal
            .put_checkpoint(&StoredCheckpoint {
                size,
                note: note.clone(),
            })
            .map_err(|e| AppendError::Unavailable(e.to_string()))?;
        self.last_checkpoint = Instant::now();
        self.checkpointed_size = Some(size);
        if let Ok(mut c) = self.shared.checkpoint.write() {
            *c = Some(note.clone());
        }
        Ok(note)
    }
}
