//! Backup and restore against the real binary: a good backup restores; a substituted,
//! tampered or stale backup is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{BIN, Server};

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn checkpoint(s: &Server) -> String {
    String::from_utf8(s.get("/v1/audit/log/checkpoint").await.body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_and_substitutes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let backup = tmp.path().join("journal.backup");

    // Backup while the server runs; keep its checkpoint apart as the trusted one.
    let s = Server::start_in(&dir, &[], &[]);
    let trusted = tmp.path().join("trusted.checkpoint");
    std::fs::write(&trusted, checkpoint(&s).await).unwrap();
    let out = run(&["backup", "--data-dir", p(&dir), "--out", p(&backup)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);

    // Refused while the server runs, and without --replace.
    let r = run(&[
        "restore",
        "--data-dir",
        p(&dir),
        "--from",
        p(&backup),
        "--trusted-checkpoint",
        p(&trusted),
        "--replace",
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("stop it first"));
    drop(s);
    let r = run(&[
        "restore",
        "--data-dir",
        p(&dir),
        "--from",
        p(&backup),
        "--trusted-checkpoint",
        p(&trusted),
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--replace"));

    // A restart moved the log on; restoring the backup brings it back to the trusted state.
    let s = Server::start_in(&dir, &[], &[]);
    drop(s);
    let r = run(&[
        "restore",
        "--data-dir",
        p(&dir),
        "--from",
        p(&backup),
        "--trusted-checkpoint",
        p(&trusted),
        "--replace",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        std::fs::read_dir(&dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("journal.db.replaced-")
        }),
        "the old journal is set aside, not deleted"
    );
    let s = Server::start_in(&dir, &[], &[]);
    assert_eq!(s.get("/readyz").await.status, 200);
    drop(s);

    // A substituted backup: another instance's journal.
    let other = tmp.path().join("other");
    drop(Server::start_in(&other, &[], &[]));
    let other_backup = tmp.path().join("other.backup");
    assert!(
        run(&["backup", "--data-dir", p(&other), "--out", p(&other_backup)])
            .status
            .success()
    );
    let r = run(&[
        "restore",
        "--data-dir",
        p(&dir),
        "--from",
        p(&other_backup),
        "--trusted-checkpoint",
        p(&trusted),
        "--replace",
    ]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("refusing the backup"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );

    // A tampered backup: one row rewritten.
    let tampered = tmp.path().join("tampered.backup");
    std::fs::copy(&backup, &tampered).unwrap();
    let conn = rusqlite::Connection::open(&tampered).unwrap();
    conn.execute_batch("DROP TRIGGER journal_no_update; UPDATE journal SET body = CAST('{}' AS BLOB) WHERE seq = 1;").unwrap();
    drop(conn);
    let r = run(&[
        "restore",
        "--data-dir",
        p(&dir),
        "--from",
        p(&tampered),
        "--trusted-checkpoint",
        p(&trusted),
        "--replace",
    ]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("divergent seq Some(1)"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );

    // A stale backup: older than the trusted checkpoint.
    let s = Server::start_in(&dir, &[], &[]);
    let newer = tmp.path().join("newer.checkpoint");
    std::fs::write(&newer, checkpoint(&s).await).unwrap();
    drop(s);
    let r = run(&[
        "restore",
        "--data-dir",
        p(&dir),
        "--from",
        p(&backup),
        "--trusted-checkpoint",
        p(&newer),
        "--replace",
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("refusing the backup"));
}

fn mirror(base: &str, mdir: &Path, ca: &Path) -> (i32, serde_json::Value) {
    let out = run(&[
        "audit",
        "mirror",
        "--from",
        base,
        "--dir",
        p(mdir),
        "--ca",
        p(ca),
    ]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no report: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_follows_the_log_and_alarms_on_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mdir = tmp.path().join("mirror");
    let backup = tmp.path().join("journal.backup");
    let trusted = tmp.path().join("trusted.checkpoint");

    // First life: back up at size 5.
    let s = Server::start_in(&dir, &[], &[]);
    std::fs::write(&trusted, checkpoint(&s).await).unwrap();
    assert!(
        run(&["backup", "--data-dir", p(&dir), "--out", p(&backup)])
            .status
            .success()
    );
    let ca = dir.join("ca.pem");
    let base = format!("https://localhost:{}", s.addr.port());
    let (code, r) = mirror(&base, &mdir, &ca);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["size"], 5);
    drop(s);

    // Second life: the log grows; the mirror follows consistently.
    let s = Server::start_in(&dir, &[], &[]);
    let base = format!("https://localhost:{}", s.addr.port());
    let (code, r) = mirror(&base, &mdir, &ca);
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        (r["size"].as_u64(), r["previous_size"].as_u64()),
        (Some(6), Some(5))
    );
    drop(s);

    // Someone rolls the journal back to the backup and lets it grow again: a fork.
    assert!(
        run(&[
            "restore",
            "--data-dir",
            p(&dir),
            "--from",
            p(&backup),
            "--trusted-checkpoint",
            p(&trusted),
            "--replace"
        ])
        .status
        .success()
    );
    let s = Server::start_in(&dir, &[], &[]);
    let base = format!("https://localhost:{}", s.addr.port());
    let (code, r) = mirror(&base, &mdir, &ca);
    assert_eq!(code, 2, "{r}");
    assert_eq!(r["ok"], false);
    assert!(r["alarm"].as_str().unwrap().contains("split view"), "{r}");
}
