//! Secrets against the running server: versions, the audited read path and its headers,
//! writers who cannot read, delete and destroy, a moved ciphertext caught as an integrity
//! failure, fail-closed reads while the journal cannot append, and the value found
//! nowhere it should not be.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::Server;
use common::oauth::Session;
use serde_json::{Value, json};

const SECRET: &[u8] = b"s3cr3t-VALUE-7e1d9a4b";
const PROD: &str = "/v1/orgs/acme/apps/web/envs/prod/secrets";

/// An org with `web/prod` and `web/staging`, and a service principal holding `relations`
/// (scope, relation) with every scope in its token.
struct Fixture<'a> {
    op: Session<'a>,
}

async fn fixture(s: &Server) -> Fixture<'_> {
    let (id, secret) = s.bootstrap("none");
    let op = s
        .token(&id, &secret, "admin read secrets:write audit:read", None)
        .await;
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "acme"})).await.status,
        201
    );
    assert_eq!(
        op.post("/v1/orgs/acme/apps", json!({"name": "web"}))
            .await
            .status,
        201
    );
    for env in ["prod", "staging"] {
        let r = op
            .post("/v1/orgs/acme/apps/web/envs", json!({"name": env}))
            .await;
        assert_eq!(r.status, 201);
    }
    Fixture { op }
}

async fn principal<'a>(
    s: &'a Server,
    op: &Session<'_>,
    name: &str,
    relations: &[(&str, &str)],
) -> (Session<'a>, String) {
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": name, "token_binding": "none"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let v = r.json();
    let id = v["client_id"].as_str().unwrap().to_owned();
    for (scope, rel) in relations {
        let r = op
            .post(
                "/v1/orgs/acme/relations",
                json!({"scope": scope, "relation": rel, "subject": format!("service:{id}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    let session = s
        .token(
            &id,
            v["client_secret"].as_str().unwrap(),
            "admin deploy secrets:read secrets:write read audit:read",
            None,
        )
        .await;
    (session, id)
}

fn put_body(value: &[u8]) -> Value {
    json!({"value": STANDARD.encode(value)})
}

fn value_of(r: &common::Response) -> Vec<u8> {
    STANDARD
        .decode(r.json()["value"].as_str().unwrap())
        .unwrap()
}

const ENV: &str = "org/acme/app/web/env/prod";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_reads_writers_delete_and_destroy() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let f = fixture(&s).await;
    let (deployer, _) = principal(&s, &f.op, "deployer", &[("org/acme/app/web", "deployer")]).await;
    let (admin, admin_id) = principal(&s, &f.op, "admin", &[("org/acme", "admin")]).await;
    let (reader, reader_id) = principal(&s, &f.op, "reader", &[(ENV, "secret_reader")]).await;

    // Writers write versions; values are binary-safe.
    let binary = [0u8, 159, 146, 150, 255];
    let r = deployer
        .call("PUT", &format!("{PROD}/db"), Some(put_body(b"first")))
        .await;
    assert_eq!((r.status, r.json()["version"].as_u64()), (201, Some(1)));
    let r = admin
        .call("PUT", &format!("{PROD}/db"), Some(put_body(SECRET)))
        .await;
    assert_eq!((r.status, r.json()["version"].as_u64()), (201, Some(2)));
    assert_eq!(
        deployer
            .call("PUT", &format!("{PROD}/bin"), Some(put_body(&binary)))
            .await
            .status,
        201
    );
    let big = vec![b'x'; 64 * 1024 + 1];
    let r = deployer
        .call("PUT", &format!("{PROD}/big"), Some(put_body(&big)))
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        deployer
            .call("PUT", &format!("{PROD}/Bad.Name"), Some(put_body(b"x")))
            .await
            .status,
        400
    );

    // ...but neither deploy nor admin rights read values.
    for who in [&deployer, &admin] {
        let r = who.get(&format!("{PROD}/db")).await;
        assert_eq!((r.status, r.code().as_str()), (403, "permission_denied"));
    }

    // The reader reads; the answer names the entry that recorded this read.
    let r = reader.get(&format!("{PROD}/db")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(value_of(&r), SECRET);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["x-bulwark-secret-version"], "2");
    let kid = r.headers["x-bulwark-secret-kid"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid.len(), 16);
    let seq: u64 = r.headers["x-bulwark-journal-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let corr = r.headers["x-request-id"].to_str().unwrap().to_owned();
    let entries =
        f.op.get(&format!("/v1/orgs/acme/audit/entries?from={seq}&limit=1"))
            .await
            .json();
    let e = &entries["entries"][0];
    assert_eq!(e["seq"], seq);
    assert_eq!(e["action"], "secret.read");
    assert_eq!(e["kind"], "access");
    assert_eq!(e["actor"], format!("service:{reader_id}"));
    assert_eq!(e["data"]["version"], 2);
    assert_eq!(e["corr_id"], corr.as_str());
    let proof = s
        .get(&format!(
            "/v1/audit/proof/inclusion?index={seq}&size={}",
            seq + 1
        ))
        .await;
    assert_eq!(proof.status, 200, "the read's inclusion proof is public");
    let r = reader.get(&format!("{PROD}/db?version=1")).await;
    assert_eq!(value_of(&r), b"first");
    assert_eq!(value_of(&reader.get(&format!("{PROD}/bin")).await), binary);
    assert_eq!(reader.get(&format!("{PROD}/nope")).await.status, 404);
    assert_eq!(
        reader.get(&format!("{PROD}/db?version=9")).await.status,
        404
    );

    // The admin grants itself the relation (journaled), and then it reads.
    let r = admin
        .post("/v1/orgs/acme/relations", json!({"scope": ENV, "relation": "secret_reader", "subject": format!("service:{admin_id}")}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(value_of(&admin.get(&format!("{PROD}/db")).await), SECRET);

    // Lists and metadata carry names and versions, never values.
    let list = reader.get(PROD).await;
    assert_eq!(
        list.json()["secrets"],
        json!([{"name": "bin", "latest_version": 1}, {"name": "db", "latest_version": 2}])
    );
    let meta = reader.get(&format!("{PROD}/db/metadata")).await;
    assert_eq!(meta.json()["versions"].as_array().unwrap().len(), 2);

    // Destroy v1 (crypto-shred): gone for good; v2 still reads.
    let r = deployer
        .post(&format!("{PROD}/db/versions/1/destroy"), json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        reader.get(&format!("{PROD}/db?version=1")).await.status,
        404
    );
    assert_eq!(reader.get(&format!("{PROD}/db")).await.status, 200);
    assert_eq!(meta_state(&reader, 1).await, "destroyed");
    // Delete: a tombstone version; the secret reads 404, old versions too.
    let r = deployer.call("DELETE", &format!("{PROD}/db"), None).await;
    assert_eq!(
        (r.status, r.json()["tombstone_version"].as_u64()),
        (200, Some(3))
    );
    assert_eq!(reader.get(&format!("{PROD}/db")).await.status, 404);
    assert_eq!(
        reader.get(&format!("{PROD}/db?version=2")).await.status,
        404
    );
    // An explicit restore brings version 2's value back as version 4 (the writer never
    // sees it); a destroyed version cannot be restored.
    let r = deployer
        .post(&format!("{PROD}/db/versions/2/restore"), json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (
            r.json()["version"].as_u64(),
            r.json()["restored_from"].as_u64()
        ),
        (Some(4), Some(2))
    );
    assert!(!String::from_utf8_lossy(&r.body).contains("s3cr3t"));
    assert_eq!(value_of(&reader.get(&format!("{PROD}/db")).await), SECRET);
    assert_eq!(
        deployer
            .post(&format!("{PROD}/db/versions/1/restore"), json!({}))
            .await
            .status,
        404
    );
    // A new put makes version 5.
    let r = deployer
        .call("PUT", &format!("{PROD}/db"), Some(put_body(b"again")))
        .await;
    assert_eq!(r.json()["version"], 5);
    assert_eq!(value_of(&reader.get(&format!("{PROD}/db")).await), b"again");
}

async fn meta_state(reader: &Session<'_>, version: usize) -> String {
    let meta = reader.get(&format!("{PROD}/db/metadata")).await.json();
    meta["versions"][version - 1]["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciphertext_moved_to_another_env_is_an_integrity_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &[], &[]);
    let f = fixture(&s).await;
    let (_reader, reader_id) = principal(
        &s,
        &f.op,
        "reader",
        &[
            (ENV, "secret_reader"),
            ("org/acme/app/web/env/staging", "secret_reader"),
        ],
    )
    .await;
    let staging = "/v1/orgs/acme/apps/web/envs/staging/secrets";
    assert_eq!(
        f.op.call("PUT", &format!("{PROD}/db"), Some(put_body(SECRET)))
            .await
            .status,
        201
    );
    assert_eq!(
        f.op.call(
            "PUT",
            &format!("{staging}/db"),
            Some(put_body(b"staging-value"))
        )
        .await
        .status,
        201
    );
    // The reader's credentials, to come back after the restart.
    let r =
        f.op.post(
            &format!("/v1/orgs/acme/principals/{reader_id}/rotate-secret"),
            json!({}),
        )
        .await;
    let reader_secret = r.json()["client_secret"].as_str().unwrap().to_owned();
    drop(f);
    s.stop();

    // A hostile DBA copies prod's row over staging's.
    let db = rusqlite::Connection::open(dir.join("secrets.db")).unwrap();
    db.execute(
        "UPDATE secret_versions SET wrapped_dek = (SELECT wrapped_dek FROM secret_versions WHERE env = 'prod'),
             ciphertext = (SELECT ciphertext FROM secret_versions WHERE env = 'prod'),
             kek_kid = (SELECT kek_kid FROM secret_versions WHERE env = 'prod')
         WHERE env = 'staging'",
        [],
    )
    .unwrap();
    drop(db);

    let s = Server::start_in(&dir, &[], &[]);
    let reader = s
        .token(&reader_id, &reader_secret, "secrets:read read", None)
        .await;
    let r = reader.get(&format!("{staging}/db")).await;
    assert_eq!((r.status, r.code().as_str()), (500, "integrity_failure"));
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(!body.contains("s3cr3t") && !body.contains("staging-value"));
    assert!(s.metric("integrity_fail_total").await >= 1.0);
    // Prod is untouched.
    assert_eq!(value_of(&reader.get(&format!("{PROD}/db")).await), SECRET);
    // The failure is journaled.
    let entries = journal_entries_of_acme(&s);
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "secret.integrity_fail"
                && e["outcome"] == "error"
                && e["data"]["why"] == "digest")
    );
}

/// Every journal entry of org `acme`, read straight from the journal file after checking
/// that the journal still verifies.
fn journal_entries_of_acme(s: &Server) -> Vec<Value> {
    let out = std::process::Command::new(common::BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(&s.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "the journal still verifies");
    let db = rusqlite::Connection::open(s.dir.join("journal.db")).unwrap();
    let mut st = db.prepare("SELECT body FROM journal ORDER BY seq").unwrap();
    let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
    rows.map(|b| serde_json::from_slice::<Value>(&b.unwrap()).unwrap())
        .filter(|e| e["org"] == "acme")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_fail_closed_while_the_journal_cannot_append_and_the_value_leaks_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(
        &dir,
        &[
            "--readiness-interval-ms",
            "100",
            "--request-timeout-ms",
            "20000",
        ],
        &[],
    );
    let f = fixture(&s).await;
    let (reader, _) = principal(&s, &f.op, "reader", &[(ENV, "secret_reader")]).await;
    assert_eq!(
        f.op.call("PUT", &format!("{PROD}/db"), Some(put_body(SECRET)))
            .await
            .status,
        201
    );
    assert_eq!(value_of(&reader.get(&format!("{PROD}/db")).await), SECRET);
    let mut bodies: Vec<String> = Vec::new();

    // Another process holds the journal's write lock: every read is refused, no byte of
    // the value leaves, and readiness says so.
    let blocker = rusqlite::Connection::open(dir.join("journal.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let r = reader.get(&format!("{PROD}/db")).await;
    assert_eq!((r.status, r.code().as_str()), (503, "audit_unavailable"));
    bodies.push(String::from_utf8_lossy(&r.body).into());
    let mut not_ready = false;
    for _ in 0..50 {
        if s.get("/readyz").await.status == 503 {
            not_ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(not_ready);
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let mut back = false;
    for _ in 0..100 {
        let r = reader.get(&format!("{PROD}/db")).await;
        if r.status == 200 {
            assert_eq!(value_of(&r), SECRET);
            back = true;
            break;
        }
        bodies.push(String::from_utf8_lossy(&r.body).into());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "reads succeed again after recovery");

    // Error bodies of every kind.
    for (who, path) in [
        (&f.op, format!("{PROD}/db")),
        (&reader, format!("{PROD}/db?version=7")),
        (&reader, format!("{PROD}/x")),
    ] {
        bodies.push(String::from_utf8_lossy(&who.get(&path).await.body).into());
    }
    let metrics = String::from_utf8(s.get("/metrics").await.body.to_vec()).unwrap();
    let logs = serde_json::to_string(&*s.logs.lock().unwrap()).unwrap();
    let b64 = STANDARD.encode(SECRET);
    let needles = [std::str::from_utf8(SECRET).unwrap(), b64.as_str()];
    for hay in bodies.iter().chain([&metrics, &logs]) {
        for n in needles {
            assert!(!hay.contains(n), "the secret leaked");
        }
    }
    // Nor is it in the journal or the stores on disk (the secret store holds ciphertext).
    drop(reader);
    drop(f);
    s.stop();
    for file in [
        "journal.db",
        "journal.db-wal",
        "secrets.db",
        "secrets.db-wal",
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "the secret is in {file}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_over_its_read_rate_gets_429_and_others_do_not() {
    let s = Server::start(&[
        "--org-secret-reads-rps",
        "1",
        "--org-secret-reads-burst",
        "3",
    ]);
    let f = fixture(&s).await;
    assert_eq!(
        f.op.post("/v1/orgs", json!({"name": "other"})).await.status,
        201
    );
    assert_eq!(
        f.op.post("/v1/orgs/other/apps", json!({"name": "web"}))
            .await
            .status,
        201
    );
    assert_eq!(
        f.op.post("/v1/orgs/other/apps/web/envs", json!({"name": "prod"}))
            .await
            .status,
        201
    );
    let (reader, _) = principal(&s, &f.op, "reader", &[(ENV, "secret_reader")]).await;
    assert_eq!(
        f.op.call("PUT", &format!("{PROD}/db"), Some(put_body(SECRET)))
            .await
            .status,
        201
    );
    // A principal of the other org, reading its own secret.
    let r =
        f.op.post(
            "/v1/orgs/other/principals",
            json!({"kind": "service", "name": "o", "token_binding": "none"}),
        )
        .await;
    let oid = r.json()["client_id"].as_str().unwrap().to_owned();
    let osec = r.json()["client_secret"].as_str().unwrap().to_owned();
    let r = f
        .op
        .post("/v1/orgs/other/relations", json!({"scope": "org/other/app/web/env/prod", "relation": "secret_reader", "subject": format!("service:{oid}")}))
        .await;
    assert_eq!(r.status, 201);
    let other = s.token(&oid, &osec, "secrets:read", None).await;
    let other_path = "/v1/orgs/other/apps/web/envs/prod/secrets/db";
    assert_eq!(
        f.op.call("PUT", other_path, Some(put_body(b"o")))
            .await
            .status,
        201
    );

    let mut limited = None;
    for _ in 0..10 {
        let r = reader.get(&format!("{PROD}/db")).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let r = limited.expect("the org was never limited");
    assert_eq!(r.code(), "per_org_rate_limited");
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // The other org is not affected.
    assert_eq!(other.get(other_path).await.status, 200);
}
