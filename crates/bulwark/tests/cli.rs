//! The secrets CLI against the running server: `login` (secret on stdin, profile 0600 in a
//! 0700 directory, DPoP-bound session), `secrets put|get|list|delete` with values from
//! stdin or files, and `secrets render` writing the `BULWARK_SECRETS_V1` file 0400.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output, Stdio};

use common::Server;
use serde_json::json;

fn run(profile: &std::path::Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(common::BIN)
        .args(args)
        .env("BULWARK_PROFILE", profile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_put_get_list_render_delete() {
    let s = Server::start(&[]);
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, "admin read", None).await;
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
    // A DPoP-bound principal (the default) that writes and reads prod.
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "cli"}),
        )
        .await;
    let (cid, csec) = (
        r.json()["client_id"].as_str().unwrap().to_owned(),
        r.json()["client_secret"].as_str().unwrap().to_owned(),
    );
    for rel in ["deployer", "secret_reader"] {
        let r = op
            .post("/v1/orgs/acme/relations", json!({"scope": "org/acme/app/web/env/prod", "relation": rel, "subject": format!("service:{cid}")}))
            .await;
        assert_eq!(r.status, 201);
    }

    let home = tempfile::tempdir().unwrap();
    let profile = home.path().join("cfg/bulwark/profile.json");
    let ca = s.dir.join("ca.pem");
    let server = s.url("");
    let out = run(
        &profile,
        &[
            "login",
            "--server",
            &server,
            "--ca",
            ca.to_str().unwrap(),
            "--client-id",
            &cid,
        ],
        format!("{csec}\n").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&profile), 0o600);
    assert_eq!(mode(profile.parent().unwrap()), 0o700);
    let wrong = run(
        &home.path().join("other.json"),
        &[
            "login",
            "--server",
            &server,
            "--ca",
            ca.to_str().unwrap(),
            "--client-id",
            &cid,
        ],
        b"bws_wrong\n",
    );
    assert!(!wrong.status.success());

    let env = ["--env", "acme/web/prod"];
    let binary: &[u8] = &[0, 1, 2, 255, b'\n'];
    let put = |name: &str, stdin: &[u8]| {
        let mut a = vec!["secrets", "put"];
        a.extend(env);
        a.push(name);
        run(&profile, &a, stdin)
    };
    assert!(put("db-password", b"hunter2").status.success());
    assert!(put("blob", binary).status.success());
    let file = home.path().join("cert.pem");
    std::fs::write(&file, "-----BEGIN CERT-----\nabc\n").unwrap();
    let mut a = vec!["secrets", "put"];
    a.extend(env);
    a.extend(["tls_cert", "--file", file.to_str().unwrap()]);
    assert!(run(&profile, &a, b"").status.success());

    let get = |name: &str| {
        let mut a = vec!["secrets", "get"];
        a.extend(env);
        a.push(name);
        run(&profile, &a, b"")
    };
    let out = get("db-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hunter2");
    assert_eq!(get("blob").stdout, binary);

    let mut a = vec!["secrets", "list"];
    a.extend(env);
    let out = run(&profile, &a, b"");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "blob\t1\ndb-password\t1\ntls_cert\t1\n"
    );

    // Render: sorted keys, base64 where needed, 0400 in a 0700 directory.
    let target = home.path().join("run/secrets/app.env");
    let mut a = vec!["secrets", "render"];
    a.extend(env);
    a.extend(["--out", target.to_str().unwrap()]);
    let out = run(&profile, &a, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&target), 0o400);
    assert_eq!(mode(target.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&target).unwrap();
    assert_eq!(
        text,
        "BULWARK_SECRETS_V1\nBLOB=base64:AAEC/wo=\nDB_PASSWORD=hunter2\nTLS_CERT=base64:LS0tLS1CRUdJTiBDRVJULS0tLS0KYWJjCg==\n"
    );
    // A second render replaces the file atomically (even though it is 0400).
    assert!(put("db-password", b"rotated").status.success());
    assert!(run(&profile, &a, b"").status.success());
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .contains("DB_PASSWORD=rotated")
    );

    let mut a = vec!["secrets", "delete"];
    a.extend(env);
    a.push("blob");
    assert!(run(&profile, &a, b"").status.success());
    let out = get("blob");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    // The values never reached the server's logs.
    let logs = serde_json::to_string(&*s.logs.lock().unwrap()).unwrap();
    assert!(!logs.contains("hunter2") && !logs.contains(&csec));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_certs_one_command_each() {
    let s = Server::start(&[]);
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, "admin read certs:issue", None).await;
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
    let (_k, csr) = bulwark_pki::ca::make_csr(bulwark_pki::ca::KeyAlg::P256).unwrap();
    let r = op
        .post(
            "/v1/orgs/acme/certificates",
            json!({"csr": csr, "service": "payments"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let serial = r.json()["serial"].as_str().unwrap().to_owned();
    // An org admin (DPoP-bound by default) logs in once.
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "oncall"}),
        )
        .await;
    let (cid, csec) = (
        r.json()["client_id"].as_str().unwrap().to_owned(),
        r.json()["client_secret"].as_str().unwrap().to_owned(),
    );
    let r = op
        .post(
            "/v1/orgs/acme/relations",
            json!({"scope": "org/acme", "relation": "admin", "subject": format!("service:{cid}")}),
        )
        .await;
    assert_eq!(r.status, 201);
    let home = tempfile::tempdir().unwrap();
    let profile = home.path().join("cfg/bulwark/profile.json");
    let ca = s.dir.join("ca.pem");
    let out = run(
        &profile,
        &[
            "login",
            "--server",
            &s.url(""),
            "--ca",
            ca.to_str().unwrap(),
            "--client-id",
            &cid,
        ],
        format!("{csec}\n").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ok = |args: &[&str]| {
        let out = run(&profile, args, b"");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let v = ok(&[
        "certs",
        "revoke",
        "--org",
        "acme",
        &serial,
        "--reason",
        "superseded",
    ]);
    assert!(v["seq"].is_u64());
    let v = ok(&["certs", "list", "--org", "acme"]);
    assert_eq!(v["certificates"][0]["serial"], serial.as_str());
    assert_eq!(v["certificates"][0]["reason"], "superseded");
    let v = ok(&["nodes", "quarantine", "--org", "acme", "n1"]);
    assert_eq!(v["quarantined"], true);
    let v = ok(&["nodes", "list", "--org", "acme"]);
    assert_eq!(v["nodes"][0]["quarantined"], true);
    let v = ok(&["nodes", "release", "--org", "acme", "n1"]);
    assert_eq!(v["quarantined"], false);
    // Another org's names: refused with the server's problem.
    let out = run(
        &profile,
        &["nodes", "quarantine", "--org", "other", "n1"],
        b"",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission_denied"));
}
