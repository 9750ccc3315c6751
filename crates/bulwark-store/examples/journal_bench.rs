//! Journal load figures on the real SQLite store (a measuring instrument, not a test).
//!
//! `cargo run --release -p bulwark-store --example journal_bench [DIR]`
//!
//! Prints: the disk's own figures (a lone fsync'd commit; 1,000-row transactions), the
//! writer's own capacity (a queue that never runs dry), durable appends/s through the
//! group-commit appender with 1, 16 and 256 concurrent writers, and the time to verify a
//! 1,000,000-entry journal from the file. Bounded: a few seconds per
//! phase.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulwark_crypto::SigningKey;
use bulwark_ledger::entry::{Draft, EntryData, Kind};
use bulwark_ledger::journal::{Journal, StoredEntry};
use bulwark_ledger::merkle::leaf_hash;
use bulwark_ledger::verify::Verifier;
use bulwark_ledger::{Ledger, LedgerConfig};
use bulwark_store::SqliteJournal;

#[derive(serde::Serialize)]
struct Read<'a> {
    secret: &'a str,
    version: u64,
}
impl EntryData for Read<'_> {}

fn draft(n: u64) -> Draft {
    Draft::new(
        Kind::Access,
        "secret.read",
        "org/acme/app/web/env/prod/secret/db_password",
    )
    .org("acme")
    .actor("svc:deployer")
    .corr_id(format!("req-{n}"))
    .data(&Read {
        secret: "db_password",
        version: 3,
    })
    .unwrap()
}

fn disk_figures(dir: &std::path::Path) {
    let conn = rusqlite::Connection::open(dir.join("disk.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        .unwrap();
    let body = vec![7u8; 200];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        conn.execute("INSERT INTO t (body) VALUES (?1)", [&body])
            .unwrap();
        n += 1;
    }
    println!(
        "disk: lone fsync'd commits: {:.0}/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let mut rows = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let tx = conn.unchecked_transaction().unwrap();
        for _ in 0..1000 {
            tx.execute("INSERT INTO t (body) VALUES (?1)", [&body])
                .unwrap();
        }
        tx.commit().unwrap();
        rows += 1000;
    }
    println!(
        "disk: rows in 1,000-row transactions: {:.0}/s",
        rows as f64 / start.elapsed().as_secs_f64()
    );
}

fn ledger(journal: Box<dyn Journal>) -> Ledger {
    Ledger::open(
        journal,
        SigningKey::generate().unwrap(),
        LedgerConfig {
            origin: "bulwark/bench".into(),
            checkpoint_interval: Duration::from_secs(1),
            max_batch: 4096,
            snapshot_every: 0,
        },
        vec![],
    )
    .unwrap()
}

async fn appends(dir: &std::path::Path, writers: u64, secs: u64) -> f64 {
    let path = dir.join(format!("appends-{writers}.db"));
    let ledger = ledger(Box::new(SqliteJournal::open(&path).unwrap()));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (l, done, stop) = (ledger.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    l.append(draft(w * 1_000_000_000 + i)).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn saturated(dir: &std::path::Path, store: &str) -> f64 {
    let journal: Box<dyn Journal> = if store == "sqlite" {
        Box::new(SqliteJournal::open(&dir.join("saturated.db")).unwrap())
    } else {
        Box::new(bulwark_store::MemoryJournal::new())
    };
    let ledger = ledger(journal);
    let drafts: Vec<Draft> = (0..300_000).map(draft).collect();
    let start = Instant::now();
    let appends: Vec<_> = drafts.into_iter().map(|d| ledger.append(d)).collect();
    for r in futures_util::future::join_all(appends).await {
        r.unwrap();
    }
    300_000.0 / start.elapsed().as_secs_f64()
}

fn verify_million(dir: &std::path::Path) {
    let path = dir.join("million.db");
    let mut j = SqliteJournal::open(&path).unwrap();
    let total = 1_000_000u64;
    let mut seq = 0;
    while seq < total {
        let batch: Vec<StoredEntry> = (seq..(seq + 10_000).min(total))
            .map(|s| {
                let body = draft(s)
                    .sequence(s, 1_700_000_000_000 + s)
                    .canonical()
                    .unwrap();
                StoredEntry {
                    seq: s,
                    leaf_hash: leaf_hash(&body),
                    body,
                }
            })
            .collect();
        j.append(seq, &batch).unwrap();
        seq += batch.len() as u64;
    }
    drop(j);
    let start = Instant::now();
    let ro = SqliteJournal::open_read_only(&path).unwrap();
    let mut v = Verifier::new();
    let mut from = 0;
    while from < total {
        let chunk = ro.read(from, (from + 16_384).min(total)).unwrap();
        v.entries(&chunk, threads());
        from += chunk.len() as u64;
    }
    let report = v.finish(None);
    assert!(report.ok);
    println!(
        "verify 1,000,000 entries from SQLite (read, re-parse, re-hash, rebuild tree): {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let tmp = std::env::args().nth(1).map(std::path::PathBuf::from);
    let holder = tempfile::tempdir_in(tmp.as_deref().unwrap_or(std::path::Path::new("."))).unwrap();
    let dir = holder.path();
    disk_figures(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The writer's own capacity: 300,000 appends queued at once, so that its queue never
    // runs dry (no caller round trips in the way).
    for store in ["sqlite", "memory"] {
        let rate = rt.block_on(saturated(dir, store));
        println!("saturated writer ({store} store): {rate:.0} appends/s");
    }
    for writers in [1, 16, 256] {
        let rate = rt.block_on(appends(dir, writers, 5));
        println!("durable appends/s with {writers} writers: {rate:.0}");
    }
    verify_million(dir);
}

/// Threads for verification: one per core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
