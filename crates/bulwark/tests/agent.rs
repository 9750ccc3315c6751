//! The node agent end to end with the real binary: `serve`, an operator registers and
//! binds a node, `agent enroll`, then `agent run` renews its certificate over mTLS, writes
//! the env's secrets file (0400 in a 0700 directory), follows changes, keeps the last
//! good file while the server is away and catches up when it is back. Its logs are JSON
//! and name no value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::Server;
use common::node::enrolled;
use serde_json::json;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn put(op: &common::oauth::Session<'_>, name: &str, value: &str) {
    let body = json!({"value": base64::engine::general_purpose::STANDARD.encode(value)});
    let r = op
        .call(
            "PUT",
            &format!("/v1/orgs/acme/apps/web/envs/prod/secrets/{name}"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_then_run_keeps_the_secrets_file_current_and_survives_an_outage() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let node_port = free_port().to_string();
    let node_listen = format!("127.0.0.1:{node_port}");
    // 200 s certificates (back-dated 5 min) are always past half-life: the agent renews
    // at every round, which this test wants to see.
    let args = [
        "--rate-limit-rps",
        "0",
        "--node-listen",
        node_listen.as_str(),
        "--node-cert-ttl-secs",
        "200",
    ];
    let s = Server::start_in(&dir, &args, &[]);
    let (id, secret) = s.bootstrap("none");
    let op = s
        .token(&id, &secret, "admin read secrets:write audit:read", None)
        .await;
    let (tmp, enrolled_chain) = bound_node(
        &s,
        &op,
        &[("db-password", "hunter2-first"), ("api-key", "k-123")],
    )
    .await;

    let agent_dir = tmp.path().join("n1");
    let (mut agent, logs, raw) = spawn_agent(&agent_dir, "1");
    let count = |msg: &str| {
        logs.lock()
            .unwrap()
            .iter()
            .filter(|l| l["msg"] == msg)
            .count()
    };

    let file = agent_dir.join("secrets").join("env");
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    wait_for("the secrets file", 20, || file.exists());
    assert_eq!(
        read(),
        "BULWARK_SECRETS_V1\nAPI_KEY=k-123\nDB_PASSWORD=hunter2-first\n"
    );
    assert_eq!(mode(&file), 0o400);
    assert_eq!(mode(&agent_dir.join("secrets")), 0o700);

    // It renewed over mTLS: a new certificate for the same id, journaled as cert.issue.
    wait_for("a renewal", 20, || count("certificate renewed") >= 1);
    let chain = std::fs::read_to_string(agent_dir.join("node.pem")).unwrap();
    let (old, new) = (
        bulwark_pki::summarize(&enrolled_chain).unwrap(),
        bulwark_pki::summarize(&chain).unwrap(),
    );
    assert_ne!(old.serial, new.serial);
    assert_eq!(
        bulwark_pki::spiffe_ids(&rustls_der(&chain)),
        vec!["spiffe://bulwark.local/org/acme/node/n1".to_owned()]
    );
    assert!(!agent_dir.join("node.key.next").exists());
    assert_eq!(mode(&agent_dir.join("node.key")), 0o600);

    // A change reaches the file.
    put(&op, "db-password", "hunter2-second").await;
    wait_for("the new value", 20, || read().contains("hunter2-second"));

    // The server goes away: the agent retries with backoff and keeps the last good file.
    s.stop();
    let failed_before = count("round failed; the last good secrets file is kept");
    wait_for("failed rounds", 20, || {
        count("round failed; the last good secrets file is kept") >= failed_before + 2
    });
    assert!(
        read().contains("hunter2-second"),
        "the last good file is kept"
    );
    assert_eq!(mode(&file), 0o400);

    // Back (same data, same node port): the agent catches up.
    let s = Server::start_in(&dir, &args, &[]);
    let op = s
        .token(&id, &secret, "admin read secrets:write audit:read", None)
        .await;
    put(&op, "db-password", "hunter2-third").await;
    wait_for("recovery", 90, || read().contains("hunter2-third"));

    // Every read and renewal is in the journal.
    let entries = op.get("/v1/orgs/acme/audit/entries?limit=500").await.json();
    let actions: Vec<String> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(actions.iter().any(|a| a == "cert.issue"));
    assert!(
        actions.iter().filter(|a| *a == "secret.read").count() >= 3,
        "{actions:?}"
    );

    // SIGTERM: a clean exit. No value in its logs.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(agent.id().to_string())
        .status();
    let status = agent.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let text = raw.lock().unwrap().clone();
    for value in ["hunter2", "k-123"] {
        assert!(!text.contains(value), "the agent logged a value");
    }
}

fn rustls_der(chain_pem: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_acts_on_signed_events_at_once() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let (id, secret) = s.bootstrap("none");
    let op = s
        .token(&id, &secret, "admin read secrets:write audit:read", None)
        .await;
    let (tmp, _) = bound_node(&s, &op, &[("db-password", "first")]).await;
    let agent_dir = tmp.path().join("n1");
    // An hour between rounds: anything sooner is the event bus's doing.
    let (mut agent, logs, _raw) = spawn_agent(&agent_dir, "3600");
    let count = |msg: &str| {
        logs.lock()
            .unwrap()
            .iter()
            .filter(|l| l["msg"] == msg)
            .count()
    };
    let file = agent_dir.join("secrets").join("env");
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    wait_for("the first file", 20, || read().contains("first"));
    wait_for("the stream", 20, || {
        count("following the event stream") >= 1
    });

    // secrets.changed (published by the server on a write to a bound env): refetched now.
    put(&op, "db-password", "second").await;
    wait_for("the changed value", 10, || read().contains("second"));
    assert!(count("event admitted") >= 1);

    // cert.renew: renewed now.
    let before = std::fs::read_to_string(agent_dir.join("node.pem")).unwrap();
    let r = op
        .post(
            "/v1/orgs/acme/nodes/n1/events",
            json!({"type": "cert.renew"}),
        )
        .await;
    assert_eq!(r.status, 201);
    wait_for("a renewal", 10, || count("certificate renewed") >= 1);
    assert_ne!(
        std::fs::read_to_string(agent_dir.join("node.pem")).unwrap(),
        before
    );

    // Resume: the agent is stopped, 100 envelopes are published, a new agent resumes
    // from its cursor and admits all 100, in order, exactly once.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(agent.id().to_string())
        .status();
    assert!(agent.wait().unwrap().success());
    let mut seqs = Vec::new();
    for i in 0..100 {
        let r = op
            .post(
                "/v1/orgs/acme/nodes/n1/events",
                json!({"type": "test.tick", "payload": {"i": i}}),
            )
            .await;
        assert_eq!(r.status, 201);
        seqs.push(r.json()["seq"].as_u64().unwrap());
    }
    let (mut agent, logs, _) = spawn_agent(&agent_dir, "3600");
    let ticks = || {
        logs.lock()
            .unwrap()
            .iter()
            .filter(|l| l["msg"] == "event admitted" && l["kind"] == "test.tick")
            .map(|l| l["seq"].as_u64().unwrap())
            .collect::<Vec<u64>>()
    };
    wait_for("the 100 resumed events", 20, || ticks().len() >= 100);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ticks(), seqs, "all 100, in order, exactly once");

    // node.quarantine: the file is wiped and the agent stops.
    assert_eq!(
        op.post("/v1/orgs/acme/nodes/n1/quarantine", json!({}))
            .await
            .status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = agent.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    assert!(!file.exists(), "the secrets file was wiped");
    assert!(agent_dir.join("events.cursor").exists());
}

/// acme/web/prod with `secrets`, and node n1 enrolled (into `<tmp>/n1`) and bound to it;
/// the temporary directory and n1's enrolment chain.
async fn bound_node(
    s: &Server,
    op: &common::oauth::Session<'_>,
    secrets: &[(&str, &str)],
) -> (tempfile::TempDir, String) {
    for (path, name) in [
        ("/v1/orgs", "acme"),
        ("/v1/orgs/acme/apps", "web"),
        ("/v1/orgs/acme/apps/web/envs", "prod"),
    ] {
        assert_eq!(op.post(path, json!({"name": name})).await.status, 201);
    }
    for (name, value) in secrets {
        put(op, name, value).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (chain, _) = enrolled(s, op, "acme", "n1", tmp.path()).await;
    let r = op
        .post(
            "/v1/orgs/acme/relations",
            json!({"scope": "org/acme/app/web/env/prod", "relation": "bound_node", "subject": "node:acme_n1"}),
        )
        .await;
    assert_eq!(r.status, 201);
    (tmp, chain)
}

type Logs = Arc<Mutex<Vec<serde_json::Value>>>;

/// `bulwark agent run` on `dir`: the process, its JSON log lines and its raw output (to
/// grep for values that must never appear).
fn spawn_agent(dir: &Path, interval: &str) -> (std::process::Child, Logs, Arc<Mutex<String>>) {
    let mut agent = Command::new(common::BIN)
        .args(["agent", "run", "--interval", interval, "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let logs: Logs = Arc::default();
    let raw: Arc<Mutex<String>> = Arc::default();
    let (sink, text) = (logs.clone(), raw.clone());
    let out = agent.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            text.lock().unwrap().push_str(&line);
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("agent log line is not JSON: {line}"));
            sink.lock().unwrap().push(v);
        }
    });
    (agent, logs, raw)
}
