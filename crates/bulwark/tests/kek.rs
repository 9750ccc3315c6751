//! KEK rotation: killed half-way (SIGKILL), refused by the server until finished, resumed,
//! and afterwards every secret version still decrypts under the new KEK.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::Server;
use serde_json::{Value, json};

const N: usize = 300;
const BASE: &str = "/v1/orgs/acme/apps/web/envs/prod/secrets";

fn value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(i % 17))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_resumes_and_every_secret_still_decrypts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    let (id, secret) = s.bootstrap("none");
    let op = s
        .token(&id, &secret, "admin read secrets:write", None)
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
    assert_eq!(
        op.post("/v1/orgs/acme/apps/web/envs", json!({"name": "prod"}))
            .await
            .status,
        201
    );
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "reader", "token_binding": "none"}),
        )
        .await;
    let (rid, rsec) = (
        r.json()["client_id"].as_str().unwrap().to_owned(),
        r.json()["client_secret"].as_str().unwrap().to_owned(),
    );
    let r = op
        .post("/v1/orgs/acme/relations", json!({"scope": "org/acme/app/web/env/prod", "relation": "secret_reader", "subject": format!("service:{rid}")}))
        .await;
    assert_eq!(r.status, 201);
    for i in 0..N {
        let r = op
            .call(
                "PUT",
                &format!("{BASE}/s{i}"),
                Some(json!({"value": STANDARD.encode(value(i))})),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // A second version, a destroyed version and a deleted secret ride along.
    let put = |name: &str, v: &str| {
        let op = &op;
        let (path, body) = (
            format!("{BASE}/{name}"),
            json!({"value": STANDARD.encode(v)}),
        );
        async move { op.call("PUT", &path, Some(body)).await.status }
    };
    assert_eq!(put("s0", "second").await, 201);
    assert_eq!(
        op.post(&format!("{BASE}/s1/versions/1/destroy"), json!({}))
            .await
            .status,
        200
    );
    assert_eq!(put("s1", "after-destroy").await, 201);
    assert_eq!(
        op.call("DELETE", &format!("{BASE}/s2"), None).await.status,
        200
    );
    let reader = s.token(&rid, &rsec, "secrets:read", None).await;
    let old_kid = reader.get(&format!("{BASE}/s3")).await.headers["x-bulwark-secret-kid"]
        .to_str()
        .unwrap()
        .to_owned();
    drop((op, reader));

    // Not beside a running server, whatever its admin socket.
    let out = Command::new(common::BIN)
        .args(["keys", "rotate-kek", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop();

    // One corrupt row must not hold the rotation hostage.
    let db = rusqlite::Connection::open(dir.join("secrets.db")).unwrap();
    db.execute("UPDATE secret_versions SET ciphertext = X'00112233445566778899AABBCCDDEEFF0011223344556677' WHERE name = 's299'", [])
        .unwrap();
    drop(db);

    // Rotate, and kill -9 the rotation a little way in.
    let mut child = Command::new(common::BIN)
        .args(["keys", "rotate-kek", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut killed_at = None;
    for line in stderr.lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let done = v["rewrapped"].as_u64().unwrap_or(0);
        if done >= 40 {
            child.kill().unwrap();
            killed_at = Some(done);
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed_at.is_some() && !status.success(),
        "the rotation finished before it could be interrupted"
    );
    assert!(dir.join("kek.next.key").exists());

    // The server refuses to start on a half-rotated directory.
    let out = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .env("BULWARK_NODE_LISTEN", "127.0.0.1:0")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rotate-kek"));

    // Resume.
    let out = Command::new(common::BIN)
        .args(["keys", "rotate-kek", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["old_kid"], old_kid.as_str());
    let done = report["rewrapped"].as_u64().unwrap()
        + report["recovered"].as_u64().unwrap()
        + report["already"].as_u64().unwrap();
    assert_eq!(done + 1, report["versions"].as_u64().unwrap(), "{report}");
    assert!(
        report["already"].as_u64().unwrap() + report["recovered"].as_u64().unwrap() >= 40,
        "{report}"
    );
    assert!(!dir.join("kek.next.key").exists());
    assert_eq!(
        report["unreadable"],
        json!(["org/acme/app/web/env/prod/secret/s299@1"])
    );
    let new_kid = report["new_kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);

    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    let reader = s.token(&rid, &rsec, "secrets:read", None).await;
    let r = reader.get(&format!("{BASE}/s299")).await;
    assert_eq!((r.status, r.code().as_str()), (500, "integrity_failure"));
    for i in 3..N - 1 {
        let r = reader.get(&format!("{BASE}/s{i}")).await;
        assert_eq!(r.status, 200, "s{i}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            STANDARD
                .decode(r.json()["value"].as_str().unwrap())
                .unwrap(),
            value(i).as_bytes()
        );
        assert_eq!(r.headers["x-bulwark-secret-kid"], new_kid.as_str());
    }
    let v = |r: common::Response| {
        STANDARD
            .decode(r.json()["value"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(v(reader.get(&format!("{BASE}/s0")).await), b"second");
    assert_eq!(
        v(reader.get(&format!("{BASE}/s0?version=1")).await),
        value(0).as_bytes()
    );
    assert_eq!(v(reader.get(&format!("{BASE}/s1")).await), b"after-destroy");
    assert_eq!(
        reader.get(&format!("{BASE}/s1?version=1")).await.status,
        404
    );
    assert_eq!(reader.get(&format!("{BASE}/s2")).await.status, 404);
    drop(reader);
    s.stop();
    let out = Command::new(common::BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the journal verifies after the rotation"
    );
}
