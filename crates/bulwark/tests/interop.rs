//! Interop: a client built on Python's authlib (client authentication, token requests,
//! `private_key_jwt`) and joserfc (DPoP proofs, thumbprints) obtains a DPoP-bound token
//! from the running server and calls a protected route with it.
//!
//! Needs `BULWARK_INTEROP_PYTHON`: a Python with the packages of
//! `tests/interop/requirements.txt` (`.ci/run` makes one). Without it the test is skipped
//! with a message, except under CI, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::Server;
use common::oauth::Key;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authlib_and_joserfc_client_gets_a_dpop_token_and_uses_it() {
    let Some(python) = std::env::var_os("BULWARK_INTEROP_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set BULWARK_INTEROP_PYTHON (see .ci/run)"
        );
        eprintln!(
            "skipped: set BULWARK_INTEROP_PYTHON to a Python with crates/bulwark/tests/interop/requirements.txt installed"
        );
        return;
    };
    let s = Server::start(&[]);
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, "admin read", None).await;
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "acme"})).await.status,
        201
    );
    let viewer = |sub: String| json!({"scope": "org/acme", "relation": "viewer", "subject": sub});

    // A DPoP-bound client (the default binding).
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "py-dpop"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let (did, dsec) = (
        r.json()["client_id"].as_str().unwrap().to_owned(),
        r.json()["client_secret"].as_str().unwrap().to_owned(),
    );
    let r = op
        .post("/v1/orgs/acme/relations", viewer(format!("service:{did}")))
        .await;
    assert_eq!(r.status, 201);

    // A private_key_jwt client whose key the Python side holds.
    let (key, pem) = Key::es_with_pem();
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "py-pkjwt", "token_binding": "none", "jwk": key.jwk()}),
        )
        .await;
    assert_eq!(r.status, 201);
    let pid = r.json()["client_id"].as_str().unwrap().to_owned();
    let r = op
        .post("/v1/orgs/acme/relations", viewer(format!("service:{pid}")))
        .await;
    assert_eq!(r.status, 201);
    let pem_path = s.dir.parent().unwrap().join("pkjwt.pem");
    std::fs::write(&pem_path, pem).unwrap();

    let input = json!({
        "base": s.url(""),
        "ca": s.dir.join("ca.pem"),
        "client_id": did,
        "client_secret": dsec,
        "pkjwt_client_id": pid,
        "pkjwt_key_pem": pem_path,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/dpop_client.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Python client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["first_error"], "use_dpop_nonce");
    assert_eq!(seen["token_type"], "DPoP");
    assert_eq!(seen["jkt_matches"], true);
    assert_eq!(seen["protected_status"], 200);
    assert_eq!(seen["protected_body"]["scope"], "org/acme");
    assert_eq!(seen["replay_status"], 401);
    assert!(
        seen["replay_challenge"]
            .as_str()
            .unwrap()
            .contains("replayed")
    );
    assert_eq!(seen["pkjwt_status"], 200);
}
