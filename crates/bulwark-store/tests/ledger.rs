//! The group-commit appender over the real SQLite store: durability, batching, failure
//! without acknowledgement, tamper detection at open, checkpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_crypto::SigningKey;
use bulwark_ledger::checkpoint::NoteVerifier;
use bulwark_ledger::entry::{Draft, Entry, EntryData, Kind};
use bulwark_ledger::journal::{
    Journal, JournalRead, StoreError, StoredCheckpoint, StoredEntry, StoredSnapshot,
};
use bulwark_ledger::merkle::{Tree, leaf_hash, verify_inclusion};
use bulwark_ledger::projection::Projection;
use bulwark_ledger::{AppendError, Ledger, LedgerConfig, OpenError};
use bulwark_store::SqliteJournal;

fn config() -> LedgerConfig {
    LedgerConfig {
        origin: "bulwark/test".into(),
        checkpoint_interval: Duration::from_millis(50),
        max_batch: 1024,
        snapshot_every: 20,
    }
}

fn key_bytes() -> String {
    SigningKey::generate().unwrap().encode().to_string()
}

fn open(
    path: &Path,
    key: &str,
    projections: Vec<Arc<dyn Projection>>,
) -> Result<Ledger, OpenError> {
    Ledger::open(
        Box::new(SqliteJournal::open(path).unwrap()),
        SigningKey::decode(key).unwrap(),
        config(),
        projections,
    )
}

#[derive(serde::Serialize)]
struct N {
    n: u64,
}
impl EntryData for N {}

fn draft(n: u64) -> Draft {
    Draft::new(Kind::State, "test.append", format!("test/{n}"))
        .data(&N { n })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_every_ack_is_durable() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("journal.db");
    let key = key_bytes();
    let ledger = open(&path, &key, vec![]).unwrap();
    let tasks: Vec<_> = (0..256u64)
        .map(|n| {
            let l = ledger.clone();
            tokio::spawn(async move { l.append(draft(n)).await })
        })
        .collect();
    let mut seqs: Vec<u64> = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..256).collect::<Vec<_>>());
    let note = ledger.checkpoint_now().await.unwrap();
    drop(ledger);

    // Reopened from disk: every acknowledged entry is there and the checkpoint verifies.
    let ro = SqliteJournal::open_read_only(&path).unwrap();
    assert_eq!(ro.size().unwrap(), 256);
    let mut tree = Tree::new();
    for e in ro.read(0, 256).unwrap() {
        tree.push(leaf_hash(&e.body));
    }
    let vkey = bulwark_ledger::checkpoint::NoteSigner::new(
        "bulwark/test",
        &SigningKey::decode(&key).unwrap(),
    )
    .unwrap()
    .vkey();
    let cp = NoteVerifier::from_vkey(&vkey)
        .unwrap()
        .verify(&note)
        .unwrap();
    assert_eq!(cp.size, 256);
    assert_eq!(cp.root, tree.root());
}

/// A real SQLite store behind a switch that makes every write fail, as a full or
/// read-only disk would.
struct Failing {
    inner: SqliteJournal,
    fail: Arc<AtomicBool>,
}

impl Journal for Failing {
    fn reader(&self) -> Result<Box<dyn JournalRead>, StoreError> {
        self.inner.reader()
    }
    fn size(&self) -> Result<u64, StoreError> {
        self.inner.size()
    }
    fn append(&mut self, first: u64, entries: &[StoredEntry]) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("disk I/O error (injected)".into()));
        }
        self.inner.append(first, entries)
    }
    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.read(from, to)
    }
    fn put_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("disk I/O error (injected)".into()));
        }
        self.inner.put_checkpoint(cp)
    }
    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.checkpoints()
    }
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.latest_checkpoint()
    }
    fn put_snapshot(&mut self, s: &StoredSnapshot) -> Result<(), StoreError> {
        self.inner.put_snapshot(s)
    }
    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        self.inner.latest_snapshot()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_acknowledges_nothing_and_recovers() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("journal.db");
    let fail = Arc::new(AtomicBool::new(false));
    let ledger = Ledger::open(
        Box::new(Failing {
            inner: SqliteJournal::open(&path).unwrap(),
            fail: fail.clone(),
        }),
        SigningKey::generate().unwrap(),
        config(),
        vec![],
    )
    .unwrap();
    for n in 0..3 {
        ledger.append(draft(n)).await.unwrap();
    }
    fail.store(true, Ordering::SeqCst);
    let tasks: Vec<_> = (0..32u64)
        .map(|n| {
            let l = ledger.clone();
            tokio::spawn(async move { l.append(draft(100 + n)).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(AppendError::Unavailable(_))));
    }
    assert!(!ledger.is_healthy());
    assert_eq!(ledger.size(), 3, "the tree did not advance");
    assert_eq!(
        SqliteJournal::open_read_only(&path)
            .unwrap()
            .size()
            .unwrap(),
        3
    );

    fail.store(false, Ordering::SeqCst);
    let next = ledger.append(draft(7)).await.unwrap();
    assert_eq!(next.seq, 3, "no gap, nothing half-written");
    assert!(ledger.is_healthy());
}

/// A view of every folded entry, and how many entries were folded into this instance
/// (restores do not count).
#[derive(Default)]
struct Counts(Mutex<Vec<(String, u64)>>, std::sync::atomic::AtomicU64);

impl Projection for Counts {
    fn name(&self) -> &'static str {
        "counts"
    }
    fn apply(&self, entry: &Entry) {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0
            .lock()
            .unwrap()
            .push((entry.resource.clone(), entry.data["n"].as_u64().unwrap()));
    }
    fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&*self.0.lock().unwrap()).unwrap()
    }
    fn restore(&self, state: &serde_json::Value) -> Result<(), String> {
        *self.0.lock().unwrap() =
            serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_rebuilds_identical_views() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("journal.db");
    let key = key_bytes();
    let live = Arc::new(Counts::default());
    let ledger = open(&path, &key, vec![live.clone()]).unwrap();
    for n in 0..50 {
        ledger.append(draft(n)).await.unwrap();
    }
    // Access entries are not folded.
    ledger
        .append(Draft::new(Kind::Access, "secret.read", "x"))
        .await
        .unwrap();
    ledger.checkpoint_now().await.unwrap();
    drop(ledger);
    let rebuilt = Arc::new(Counts::default());
    let _ledger = open(&path, &key, vec![rebuilt.clone()]).unwrap();
    let (a, b) = (
        live.0.lock().unwrap().clone(),
        rebuilt.0.lock().unwrap().clone(),
    );
    assert_eq!(a.len(), 50);
    assert_eq!(a, b);
}

/// Like [`Counts`] under another name: a view added by an upgrade.
#[derive(Default)]
struct Newer(Counts);

impl Projection for Newer {
    fn name(&self) -> &'static str {
        "newer"
    }
    fn apply(&self, entry: &Entry) {
        self.0.apply(entry);
    }
    fn snapshot(&self) -> serde_json::Value {
        self.0.snapshot()
    }
    fn restore(&self, state: &serde_json::Value) -> Result<(), String> {
        self.0.restore(state)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_added_after_the_last_snapshot_is_folded_from_the_whole_log() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("journal.db");
    let key = key_bytes();
    let ledger = open(&path, &key, vec![Arc::new(Counts::default())]).unwrap();
    for n in 0..50 {
        ledger.append(draft(n)).await.unwrap();
    }
    drop(ledger);
    let old = Arc::new(Counts::default());
    let newer = Arc::new(Newer::default());
    let _ledger = open(&path, &key, vec![old.clone(), newer.clone()]).unwrap();
    assert_eq!(
        newer.0.0.lock().unwrap().len(),
        50,
        "the new view saw every entry"
    );
    assert_eq!(old.0.lock().unwrap().len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_detects_a_rewritten_row_and_a_truncated_tail() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("journal.db");
    let key = key_bytes();
    let ledger = open(&path, &key, vec![]).unwrap();
    for n in 0..20 {
        ledger.append(draft(n)).await.unwrap();
    }
    ledger.checkpoint_now().await.unwrap();
    let proof_root = ledger
        .with_tree(|t| {
            (
                t.root(),
                t.inclusion_proof(5, 20).unwrap(),
                t.leaf(5).unwrap(),
            )
        })
        .unwrap();
    assert!(verify_inclusion(
        5,
        20,
        &proof_root.2,
        &proof_root.1,
        &proof_root.0
    ));
    drop(ledger);

    // A hostile DBA: drop the trigger, rewrite seq 7's body and its recorded hash.
    let conn = rusqlite_conn(&path);
    conn.execute_batch("DROP TRIGGER journal_no_update")
        .unwrap();
    let forged = draft(999).sequence(7, 0).canonical().unwrap();
    conn.execute(
        "UPDATE journal SET body = ?1, leaf_hash = ?2 WHERE seq = 7",
        (forged.clone(), leaf_hash(&forged).to_vec()),
    )
    .unwrap();
    drop(conn);
    match open(&path, &key, vec![]) {
        Err(OpenError::Checkpoint { size: 20, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a rewritten journal opened"),
    }

    // Body rewritten without its hash: pinned to the exact seq.
    let conn = rusqlite_conn(&path);
    conn.execute("UPDATE journal SET body = x'7b7d' WHERE seq = 3", [])
        .unwrap();
    drop(conn);
    assert!(matches!(
        open(&path, &key, vec![]),
        Err(OpenError::Tampered { seq: 3, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_detects_deleted_tail_rows_against_the_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("journal.db");
    let key = key_bytes();
    let ledger = open(&path, &key, vec![]).unwrap();
    for n in 0..20 {
        ledger.append(draft(n)).await.unwrap();
    }
    ledger.checkpoint_now().await.unwrap();
    drop(ledger);
    let conn = rusqlite_conn(&path);
    conn.execute_batch("DROP TRIGGER journal_no_delete; DELETE FROM journal WHERE seq >= 17;")
        .unwrap();
    drop(conn);
    match open(&path, &key, vec![]) {
        Err(OpenError::Checkpoint { size: 20, why }) => assert!(why.contains("17"), "{why}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a truncated journal opened"),
    }
}

fn rusqlite_conn(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
