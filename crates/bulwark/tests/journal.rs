//! The journal against the real binary: checkpoints, tiles and proofs verify with an
//! independent verifier; `audit verify` catches a hostile DBA; a tampered journal stops
//! start-up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use bulwark_ledger::checkpoint::NoteVerifier;
use bulwark_ledger::entry::Entry;
use bulwark_ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use common::{BIN, Server};

fn unhex(s: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

fn hashes(v: &serde_json::Value) -> Vec<[u8; 32]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_tiles_and_proofs_verify_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &["--insecure-serve-entry-bundles"], &[]);

    let vkey = String::from_utf8(s.get("/v1/audit/log/key").await.body.to_vec()).unwrap();
    let verifier = NoteVerifier::from_vkey(&vkey).unwrap();
    let cli_vkey = Command::new(BIN)
        .args(["audit", "key", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(cli_vkey.stdout).unwrap(),
        vkey,
        "`audit key` prints the same key"
    );

    let note1 = String::from_utf8(s.get("/v1/audit/log/checkpoint").await.body.to_vec()).unwrap();
    let cp1 = verifier.verify(&note1).unwrap();
    assert!(cp1.origin.starts_with("bulwark/"));
    assert_eq!(cp1.size, 5, "4 key.create entries and instance.start");

    // Entry bundle 0 (partial) holds canonical entries whose hashes are the level-0 tile.
    let bundle = s
        .get(&format!("/v1/audit/log/tile/entries/000.p/{}", cp1.size))
        .await;
    assert_eq!(bundle.status, 200);
    let tile = s
        .get(&format!("/v1/audit/log/tile/0/000.p/{}", cp1.size))
        .await;
    assert_eq!(tile.body.len(), 32 * cp1.size as usize);
    let mut rest = &bundle.body[..];
    let mut i = 0;
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let body = &rest[2..2 + len];
        let entry = Entry::from_canonical(body).unwrap();
        assert_eq!(entry.seq, i as u64);
        assert_eq!(&tile.body[32 * i..32 * (i + 1)], &leaf_hash(body));
        rest = &rest[2 + len..];
        i += 1;
    }
    assert_eq!(i as u64, cp1.size);
    let first: Entry = Entry::from_canonical(
        &bundle.body[2..2 + usize::from(u16::from_be_bytes([bundle.body[0], bundle.body[1]]))],
    )
    .unwrap();
    assert_eq!(first.action, "key.create");

    // Inclusion of every entry against the checkpoint.
    for index in 0..cp1.size {
        let p = s
            .get(&format!(
                "/v1/audit/proof/inclusion?index={index}&size={}",
                cp1.size
            ))
            .await
            .json();
        let leaf = unhex(p["leaf_hash"].as_str().unwrap());
        assert!(verify_inclusion(
            index,
            cp1.size,
            &leaf,
            &hashes(&p["proof"]),
            &cp1.root
        ));
    }
    drop(s);

    // Restart: new entries, a new checkpoint consistent with the old one.
    let s = Server::start_in(&dir, &[], &[]);
    let note2 = String::from_utf8(s.get("/v1/audit/log/checkpoint").await.body.to_vec()).unwrap();
    let cp2 = verifier.verify(&note2).unwrap();
    assert_eq!(
        cp2.size,
        cp1.size + 1,
        "one more instance.start, keys not announced twice"
    );
    let p = s
        .get(&format!(
            "/v1/audit/proof/consistency?from={}&to={}",
            cp1.size, cp2.size
        ))
        .await
        .json();
    assert!(verify_consistency(
        cp1.size,
        cp2.size,
        &cp1.root,
        &cp2.root,
        &hashes(&p["proof"])
    ));

    // The appender feeds the journal metrics (the startup entries of this process).
    assert!(s.metric("audit_appends_total").await >= 1.0);
    assert!(s.metric("audit_append_latency_seconds_count").await >= 1.0);

    // Without the test flag, entry bundles are for auditors only; hashes stay public.
    let r = s.get("/v1/audit/log/tile/entries/000.p/1").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "unauthorized");
    assert_eq!(s.get("/v1/audit/log/tile/0/000.p/1").await.status, 200);
    // Malformed or missing tiles and proofs are problems, not panics.
    assert_eq!(s.get("/v1/audit/log/tile/0/001").await.status, 404);
    assert_eq!(s.get("/v1/audit/log/tile/9/000").await.status, 404);
    let r = s.get("/v1/audit/proof/inclusion?index=99&size=3").await;
    assert_eq!(r.code(), "bad_request");
    let r = s.get("/v1/audit/proof/consistency?from=x&to=3").await;
    assert_eq!(r.code(), "bad_request");

    // Local operators (admin socket) are instance auditors: entry bundles are served there.
    let stream = tokio::net::UnixStream::connect(dir.join("admin.sock"))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/v1/audit/log/tile/entries/000.p/2")
        .header("host", "admin")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = common::collect(sender.send_request(req).await.unwrap()).await;
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 4);

    // The admin socket reports the journal and the key metadata projection.
    let out = Command::new(BIN)
        .args(["admin", "status", "--json", "--socket"])
        .arg(dir.join("admin.sock"))
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["journal"]["size"], cp2.size);
    for purpose in ["ca", "kek", "signing", "ledger"] {
        assert_eq!(status["keys"][purpose][0]["status"], "active", "{purpose}");
    }
}

fn verify(dir: &Path, extra: &[&str]) -> (bool, serde_json::Value) {
    // `--data` is the spelling of the issue; `--data-dir` that of `serve`: both work.
    let out = Command::new(BIN)
        .args(["audit", "verify", "--data"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not a JSON report: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// Starts and stops a server with a checkpoint after every commit; returns its data dir.
fn journal_with_entries(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("data");
    let s = Server::start_in(&dir, &["--checkpoint-interval-ms", "0"], &[]);
    assert!(s.stop().success());
    let s = Server::start_in(&dir, &["--checkpoint-interval-ms", "0"], &[]);
    assert!(s.stop().success());
    dir
}

fn sql(dir: &Path, statements: &str) {
    let conn = rusqlite::Connection::open(dir.join("journal.db")).unwrap();
    conn.execute_batch(statements).unwrap();
}

#[test]
fn an_intact_journal_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = journal_with_entries(tmp.path());
    let (ok, report) = verify(&dir, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["size"], 6);
    assert_eq!(report["verified_checkpoint_size"], 6);
}

#[test]
fn dba_row_rewrite_is_reported_with_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = journal_with_entries(tmp.path());
    // A hostile DBA drops the trigger and rewrites entry 2, recomputing its recorded hash.
    let forged = r#"{"action":"key.create","actor":"system","corr_id":null,"data":{"alg":"Ed25519","kid":"attacker","purpose":"signing"},"kind":"state","org":null,"outcome":"ok","resource":"instance/keys/signing","seq":2,"ts":0}"#;
    let hash: String = leaf_hash(forged.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sql(
        &dir,
        &format!(
            "DROP TRIGGER journal_no_update; UPDATE journal SET body = CAST('{forged}' AS BLOB), leaf_hash = x'{hash}' WHERE seq = 2;"
        ),
    );
    let (ok, report) = verify(&dir, &[]);
    assert!(!ok);
    assert_eq!(report["ok"], false);
    assert_eq!(report["divergent_seq"], 2, "{report}");
    assert!(report["expected_hash"].is_string() && report["observed_hash"].is_string());

    // And the server refuses to start on it.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .env("BULWARK_NODE_LISTEN", "127.0.0.1:0")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("audit verify"), "{err}");
}

#[test]
fn a_body_rewritten_without_its_hash_is_reported_with_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = journal_with_entries(tmp.path());
    sql(
        &dir,
        "DROP TRIGGER journal_no_update; UPDATE journal SET body = CAST('{}' AS BLOB) WHERE seq = 4;",
    );
    let (ok, report) = verify(&dir, &[]);
    assert!(!ok);
    assert_eq!(report["divergent_seq"], 4, "{report}");
}

#[test]
fn deleted_last_rows_are_reported_against_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = journal_with_entries(tmp.path());
    // Keep a checkpoint outside the data directory, as an auditor would.
    let ro = rusqlite::Connection::open(dir.join("journal.db")).unwrap();
    let note: String = ro
        .query_row(
            "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(ro);
    let saved = tmp.path().join("trusted.checkpoint");
    std::fs::write(&saved, &note).unwrap();

    sql(
        &dir,
        "DROP TRIGGER journal_no_delete; DELETE FROM journal WHERE seq >= 4;",
    );
    let (ok, report) = verify(&dir, &[]);
    assert!(!ok);
    assert_eq!(report["divergent_seq"], 4, "{report}");
    assert!(report["reason"].as_str().unwrap().contains("missing"));

    // A DBA who also deletes the checkpoints is still caught by the saved one.
    sql(
        &dir,
        "DROP TRIGGER checkpoints_no_delete; DELETE FROM checkpoints WHERE size > 4;",
    );
    let (ok, _) = verify(&dir, &[]);
    assert!(
        ok,
        "without outside knowledge, a consistent prefix looks fine"
    );
    let (ok, report) = verify(&dir, &["--checkpoint", saved.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(report["divergent_seq"], 4, "{report}");
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = journal_with_entries(tmp.path());
    let other = tempfile::tempdir().unwrap();
    let other_dir = journal_with_entries(other.path());
    let out = Command::new(BIN)
        .args(["audit", "key", "--data-dir"])
        .arg(&other_dir)
        .output()
        .unwrap();
    let other_vkey = String::from_utf8(out.stdout).unwrap();
    let (ok, report) = verify(&dir, &["--vkey", other_vkey.trim()]);
    assert!(!ok, "{report}");
    let _ = base64::engine::general_purpose::STANDARD.encode([0u8]);
}

/// POSTs a note over the admin socket on an open connection; `None` once the server is gone.
async fn post_note(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    text: &str,
) -> Option<u64> {
    sender.ready().await.ok()?;
    let body = serde_json::to_vec(&serde_json::json!({ "text": text })).unwrap();
    let req = http::Request::post("/v1/admin/journal/notes")
        .header("host", "admin")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    let r = common::collect(resp).await;
    r.json()["seq"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_appends_loses_no_acknowledged_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &[], &[]);
    let sock = dir.join("admin.sock");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, String)>::new()));

    // 64 clients, each appending in a bounded loop of 20 rounds.
    let mut tasks = Vec::new();
    for client in 0..64 {
        let sock = sock.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::UnixStream::connect(&sock).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            for round in 0..20 {
                let text = format!("client {client} round {round}");
                match post_note(&mut sender, &text).await {
                    Some(seq) => acked.lock().unwrap().push((seq, text)),
                    None => return,
                }
            }
        }));
    }
    // Kill -9 part-way through.
    loop {
        let n = acked.lock().unwrap().len();
        if n >= 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let pid = s.pid();
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    for t in tasks {
        let _ = t.await;
    }
    drop(s);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300 && acked.len() < 64 * 20,
        "killed mid-run: {}",
        acked.len()
    );

    // Restart: the journal opens (it re-verifies everything), then every acknowledged
    // seq holds exactly the note that was acknowledged.
    let s = Server::start_in(&dir, &[], &[]);
    assert_eq!(s.get("/readyz").await.status, 200);
    drop(s);
    let conn = rusqlite::Connection::open(dir.join("journal.db")).unwrap();
    for (seq, text) in &acked {
        let body: Vec<u8> = conn
            .query_row(
                "SELECT body FROM journal WHERE seq = ?1",
                [*seq as i64],
                |r| r.get(0),
            )
            .unwrap_or_else(|_| panic!("acknowledged seq {seq} is missing"));
        let entry = Entry::from_canonical(&body).unwrap();
        assert_eq!(entry.action, "operator.note");
        assert_eq!(entry.data["text"], text.as_str(), "seq {seq}");
    }
    drop(conn);
    let (ok, report) = verify(&dir, &[]);
    assert!(ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_over_https_needs_auditor_access_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &["--insecure-serve-entry-bundles"], &[]);
    let url = format!("https://localhost:{}", s.addr.port());
    let out = Command::new(BIN)
        .args(["audit", "verify", "--url", &url, "--ca"])
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["size"], 5);
    drop(s);

    let s = Server::start_in(&dir, &[], &[]);
    let url = format!("https://localhost:{}", s.addr.port());
    let out = Command::new(BIN)
        .args(["audit", "verify", "--url", &url, "--ca"])
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("instance auditors only"));

    // With an operator's bearer token (operators read the instance's audit), it verifies.
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, "audit:read", None).await;
    let out = Command::new(BIN)
        .args(["audit", "verify", "--url", &url, "--ca"])
        .arg(dir.join("ca.pem"))
        .env("BULWARK_ACCESS_TOKEN", &op.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_append_fails_closed_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &["--readiness-interval-ms", "100"], &[]);
    let sock = dir.join("admin.sock");
    let connect = || async {
        let stream = tokio::net::UnixStream::connect(&sock).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender
    };
    let mut sender = connect().await;
    assert!(post_note(&mut sender, "before").await.is_some());

    // Another process takes the database's write lock and holds it (a stuck migration,
    // a backup tool gone wrong): the journal cannot commit.
    let blocker = rusqlite::Connection::open(dir.join("journal.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let body = serde_json::to_vec(&serde_json::json!({ "text": "during" })).unwrap();
    sender.ready().await.unwrap();
    let req = http::Request::post("/v1/admin/journal/notes")
        .header("host", "admin")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let r = common::collect(sender.send_request(req).await.unwrap()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.code(), "audit_unavailable");
    let mut not_ready = None;
    for _ in 0..50 {
        let r = s.get("/readyz").await;
        if r.status == 503 {
            not_ready = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = not_ready.expect("readyz stayed 200 while the journal could not append");
    assert!(r.json()["detail"].as_str().unwrap().contains("journal"));

    // The lock goes away: readiness returns by itself (the writer probes the store when
    // idle), and the next append succeeds.
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let mut ready_alone = false;
    for _ in 0..50 {
        if s.get("/readyz").await.status == 200 {
            ready_alone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready_alone, "readiness did not recover without traffic");
    let mut sender = connect().await;
    let seq = post_note(&mut sender, "after")
        .await
        .expect("appends again");
    assert_eq!(seq, 6, "nothing was half-written while failing");
    let mut ready = false;
    for _ in 0..50 {
        if s.get("/readyz").await.status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready);
}
