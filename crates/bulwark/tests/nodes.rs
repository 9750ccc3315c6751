//! Node enrolment end to end: an admin registers a node and mints a join token, `bulwark
//! agent enroll` makes the key on the node and gets a certificate that chains to the
//! instance root; a join token works once, also when two requests race for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use common::Server;
use common::node::{enrolled, node_addr, node_get};
use serde_json::json;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_enrols_once_per_token_and_gets_a_chaining_certificate() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, "admin read audit:read", None).await;
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "acme"})).await.status,
        201
    );
    assert_eq!(
        op.post("/v1/orgs/acme/nodes", json!({"name": "n1"}))
            .await
            .status,
        201
    );
    let r = op.post("/v1/orgs/acme/nodes", json!({"name": "n1"})).await;
    assert_eq!((r.status, r.code().as_str()), (409, "already_exists"));
    assert_eq!(
        op.post("/v1/orgs/acme/nodes/ghost/join-tokens", json!({}))
            .await
            .status,
        404
    );
    let r = op
        .post("/v1/orgs/acme/nodes/n1/join-tokens", json!({}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.headers["cache-control"], "no-store");
    let token = r.json()["token"].as_str().unwrap().to_owned();

    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("agent");
    let enroll = |token: &str| {
        Command::new(common::BIN)
            .args(["agent", "enroll", "--server", &s.url(""), "--ca"])
            .arg(s.dir.join("ca.pem"))
            .args(["--token", token, "--dir"])
            .arg(&agent)
            .output()
            .unwrap()
    };
    let out = enroll(&token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&agent), 0o700);
    assert_eq!(mode(&agent.join("node.key")), 0o600);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent.join("node.json")).unwrap()).unwrap();
    assert_eq!(meta["spiffe_id"], "spiffe://bulwark.local/org/acme/node/n1");
    // The chain verifies with openssl against the instance root.
    let chain = std::fs::read_to_string(agent.join("node.pem")).unwrap();
    let certs: Vec<&str> = chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    assert_eq!(certs.len(), 2, "leaf and intermediate");
    std::fs::write(tmp.path().join("leaf.pem"), certs[0]).unwrap();
    std::fs::write(tmp.path().join("inter.pem"), certs[1]).unwrap();
    let v = Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(agent.join("ca.pem"))
        .arg("-untrusted")
        .arg(tmp.path().join("inter.pem"))
        .arg(tmp.path().join("leaf.pem"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // The same token again: refused, counted.
    let again = enroll(&token);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already used"));
    assert!(
        s.metric(r#"auth_failures_total{reason="join_token_used"}"#)
            .await
            >= 1.0
    );
    assert!(!enroll("bwj_not-a-token").status.success());

    // Two requests racing with one token: exactly one certificate.
    assert_eq!(
        op.post("/v1/orgs/acme/nodes", json!({"name": "n2"}))
            .await
            .status,
        201
    );
    let r = op
        .post(
            "/v1/orgs/acme/nodes/n2/join-tokens",
            json!({"ttl_secs": 120}),
        )
        .await;
    let t2 = r.json()["token"].as_str().unwrap().to_owned();
    let request = |csr: String| {
        let body = json!({"token": t2, "csr": csr}).to_string().into_bytes();
        let s = &s;
        async move {
            s.send(
                "POST",
                "/v1/enroll",
                &[("content-type", "application/json".into())],
                Some(body),
            )
            .await
            .status
        }
    };
    let (_, csr_a) = bulwark_pki::ca::make_csr(bulwark_pki::ca::KeyAlg::P256).unwrap();
    let (_, csr_b) = bulwark_pki::ca::make_csr(bulwark_pki::ca::KeyAlg::P256).unwrap();
    let (a, b) = tokio::join!(request(csr_a), request(csr_b));
    let mut statuses = [a, b];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401]);

    // Enrolments are journaled in the org's log; the node list shows the identity.
    let entries = op.get("/v1/orgs/acme/audit/entries?limit=200").await.json();
    let enrolled = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "node.enroll")
        .count();
    assert_eq!(enrolled, 2);
    let nodes = op.get("/v1/orgs/acme/nodes").await.json();
    assert!(
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["spiffe_id"].is_string())
    );
    // Nothing of the token in the logs.
    let logs = serde_json::to_string(&*s.logs.lock().unwrap()).unwrap();
    assert!(!logs.contains(&token) && !logs.contains(&t2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_api_knows_nodes_by_certificate_and_limits_each_node() {
    use base64::Engine as _;
    let s = Server::start(&["--rate-limit-rps", "0", "--node-secret-reads-rps", "2"]);
    let node_addr = node_addr(&s);
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
    let put = json!({"value": base64::engine::general_purpose::STANDARD.encode("node-secret")});
    assert_eq!(
        op.call(
            "PUT",
            "/v1/orgs/acme/apps/web/envs/prod/secrets/db",
            Some(put)
        )
        .await
        .status,
        201
    );
    let tmp = tempfile::tempdir().unwrap();
    let (c1, k1) = enrolled(&s, &op, "acme", "n1", tmp.path()).await;
    let (c2, k2) = enrolled(&s, &op, "acme", "n2", tmp.path()).await;
    let n1 = s.tls_config_with_cert(&c1, &k1);
    let n2 = s.tls_config_with_cert(&c2, &k2);

    // Not bound yet: refused.
    let r = node_get(node_addr, n1.clone(), "/v1/nodes/n1/secrets/db")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    // Bind both nodes to prod (a journaled relation).
    for n in ["n1", "n2"] {
        let r = op
            .post("/v1/orgs/acme/relations", json!({"scope": "org/acme/app/web/env/prod", "relation": "bound_node", "subject": format!("node:acme_{n}")}))
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = node_get(node_addr, n1.clone(), "/v1/nodes/n1/secrets/db")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.headers.contains_key("x-bulwark-journal-seq"));
    let v = base64::engine::general_purpose::STANDARD
        .decode(r.json()["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(v, b"node-secret");

    // Another node's id: 403 node_mismatch (journaled).
    let r = node_get(node_addr, n1.clone(), "/v1/nodes/n2/secrets/db")
        .await
        .unwrap();
    assert_eq!((r.status, r.code().as_str()), (403, "node_mismatch"));

    // The whole env as one secrets file (each value's read journaled).
    let put = json!({"value": base64::engine::general_purpose::STANDARD.encode("k-123")});
    assert_eq!(
        op.call(
            "PUT",
            "/v1/orgs/acme/apps/web/envs/prod/secrets/api-key",
            Some(put)
        )
        .await
        .status,
        201
    );
    let r = node_get(node_addr, n2.clone(), "/v1/nodes/n2/secrets")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(
        String::from_utf8(r.body.to_vec()).unwrap(),
        "BULWARK_SECRETS_V1\nAPI_KEY=k-123\nDB=node-secret\n"
    );

    // Over its rate, n1 gets 429 per_node_rate_limited; n2 is not affected.
    let mut limited = None;
    for _ in 0..5 {
        let r = node_get(node_addr, n1.clone(), "/v1/nodes/n1/secrets/db")
            .await
            .unwrap();
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("n1 was never limited");
    assert_eq!(r.code(), "per_node_rate_limited");
    assert!(r.headers.contains_key("retry-after"));
    let r = node_get(node_addr, n2.clone(), "/v1/nodes/n2/secrets/db")
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    // Quarantine takes effect at once: the open connection is closed, the next
    // handshake refused; release restores.
    let mut open = common::node::NodeConn::open(node_addr, n2.clone())
        .await
        .unwrap();
    assert!(
        open.call("GET", "/v1/nodes/n2/secrets/db", None)
            .await
            .is_some(),
        "the connection is open (the answer may be 429: n2 read twice this second)"
    );
    assert_eq!(
        op.post("/v1/orgs/acme/nodes/n2/quarantine", json!({}))
            .await
            .status,
        200
    );
    assert!(
        open.call("GET", "/v1/nodes/n2/secrets/db", None)
            .await
            .is_none(),
        "the quarantined node's open connection was closed"
    );
    assert!(
        node_get(node_addr, n2.clone(), "/v1/nodes/n2/secrets/db")
            .await
            .is_none(),
        "the quarantined node's handshake is refused"
    );
    assert!(s.metric(r#"rejected_total{reason="peer_revoked"}"#).await >= 1.0);
    assert!(
        s.metric(r#"auth_failures_total{reason="node_quarantined"}"#)
            .await
            >= 1.0
    );
    let nodes = op.get("/v1/orgs/acme/nodes").await.json();
    assert!(
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "n2" && n["quarantined"] == true)
    );
    assert_eq!(
        op.post("/v1/orgs/acme/nodes/n2/release", json!({}))
            .await
            .status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = node_get(node_addr, n2.clone(), "/v1/nodes/n2/secrets/db")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // No certificate, or the API's own client certificates, do not make a node.
    let refused_before = s.metric("tls_handshake_failures_total").await;
    let plain = s.tls_config(&[b"http/1.1"]);
    assert!(
        node_get(node_addr, plain, "/v1/nodes/n1/secrets/db")
            .await
            .is_none_or(|r| r.status != 200)
    );
    assert!(
        s.metric("tls_handshake_failures_total").await > refused_before,
        "the handshake without a client certificate was refused"
    );
    assert!(
        s.metric(r#"auth_failures_total{reason="node_mismatch"}"#)
            .await
            >= 1.0
    );
}
