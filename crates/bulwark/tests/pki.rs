//! The CA under attack: revoked, expired, foreign and forged client certificates against
//! the running server's node API; revocation closing open connections and landing in the
//! signed CRL; renewal over mTLS; service certificates from CSRs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use bulwark_pki::ca::{KeyAlg, SpiffeId, Workload, make_csr, sign_csr};
use common::Server;
use common::node::{NodeConn, enrolled, node_addr, node_call, node_get};
use serde_json::json;
use time::OffsetDateTime;

async fn acme<'a>(s: &'a Server, scopes: &str) -> common::oauth::Session<'a> {
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, scopes, None).await;
    for (path, name) in [
        ("/v1/orgs", "acme"),
        ("/v1/orgs/acme/apps", "web"),
        ("/v1/orgs/acme/apps/web/envs", "prod"),
    ] {
        assert_eq!(op.post(path, json!({"name": name})).await.status, 201);
    }
    op
}

/// `POST /v1/nodes/{id}/renew` with `csr` over a connection presenting `cfg`'s certificate.
async fn renew(
    node: std::net::SocketAddr,
    cfg: std::sync::Arc<rustls::ClientConfig>,
    id: &str,
    csr: impl Into<String>,
) -> common::Response {
    let path = format!("/v1/nodes/{id}/renew");
    node_call(node, cfg, "POST", &path, Some(json!({"csr": csr.into()})))
        .await
        .unwrap()
}

fn serial_of(chain_pem: &str) -> String {
    bulwark_pki::summarize(chain_pem).unwrap().serial
}

fn openssl(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_loses_its_connection_its_handshakes_and_is_in_the_crl() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    let node = node_addr(&s);
    let op = acme(&s, "admin read audit:read").await;
    let tmp = tempfile::tempdir().unwrap();
    let (chain, key) = enrolled(&s, &op, "acme", "n1", tmp.path()).await;
    let cfg = s.tls_config_with_cert(&chain, &key);
    let serial = serial_of(&chain);

    // The org lists the certificate it was issued.
    let listed = op.get("/v1/orgs/acme/certificates").await.json();
    assert!(
        listed["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["serial"] == serial.as_str() && c["revoked_at"].is_null())
    );

    // An open connection works…
    let mut open = NodeConn::open(node, cfg.clone()).await.unwrap();
    let r = open
        .call("GET", "/v1/nodes/n1/secrets", None)
        .await
        .unwrap();
    assert_eq!(
        r.status,
        403,
        "not bound yet: {}",
        String::from_utf8_lossy(&r.body)
    );

    // …another org's admin cannot revoke it (its serial is unknown there)…
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "beta"})).await.status,
        201
    );
    let r = op
        .post(
            &format!("/v1/orgs/beta/certificates/{serial}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = op
        .post("/v1/orgs/acme/certificates/NOT-HEX/revoke", json!({}))
        .await;
    assert_eq!(r.status, 400);
    let r = op
        .post(
            &format!("/v1/orgs/acme/certificates/{serial}/revoke"),
            json!({"reason": "because"}),
        )
        .await;
    assert_eq!(r.status, 400);

    // …the org's admin revokes it: journaled, the open connection is closed, the next
    // handshake refused and counted.
    let handshakes_before = s.metric("tls_handshake_failures_total").await;
    let r = op
        .post(
            &format!("/v1/orgs/acme/certificates/{serial}/revoke"),
            json!({"reason": "key_compromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["seq"].is_u64());
    assert!(
        open.call("GET", "/v1/nodes/n1/secrets", None)
            .await
            .is_none(),
        "the open connection of a revoked certificate is closed"
    );
    assert!(
        node_get(node, cfg.clone(), "/v1/nodes/n1/secrets")
            .await
            .is_none()
    );
    assert!(s.metric("tls_handshake_failures_total").await > handshakes_before);
    assert!(
        s.metric(r#"auth_failures_total{reason="cert_revoked"}"#)
            .await
            >= 1.0
    );
    assert!(s.metric(r#"rejected_total{reason="peer_revoked"}"#).await >= 1.0);
    // Revoking again changes nothing.
    let again = op
        .post(
            &format!("/v1/orgs/acme/certificates/{serial}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(again.json()["already_revoked"], true);

    // Published: the JSON list and the CRL, signed by the intermediate (openssl checks
    // the signature against the chain and lists the serial).
    let list = s.get("/v1/pki/revocations").await;
    assert_eq!(list.status, 200);
    let revoked = list.json()["revoked"].as_array().unwrap().clone();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["serial"], serial.as_str());
    assert_eq!(revoked[0]["reason"], "key_compromise");
    let crl = s.get("/v1/pki/crl").await;
    assert_eq!(crl.status, 200);
    assert_eq!(crl.headers["content-type"], "application/pkix-crl");
    let ca_chain = s.get("/v1/pki/ca").await;
    assert_eq!(ca_chain.status, 200);
    std::fs::write(tmp.path().join("crl.der"), &crl.body).unwrap();
    std::fs::write(tmp.path().join("chain.pem"), &ca_chain.body).unwrap();
    let out = openssl(
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "chain.pem",
            "-noout",
            "-text",
        ],
        tmp.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("verify OK"), "{err}");
    assert!(text.to_lowercase().contains(&serial), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");

    // The journal has the issuance and the revocation, in the org's log.
    let entries = op.get("/v1/orgs/acme/audit/entries?limit=200").await.json();
    let actions: Vec<&str> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"node.enroll") && actions.contains(&"cert.revoke"));

    // After a restart the revocation still holds (folded from the journal).
    s.stop();
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    let node = node_addr(&s);
    assert!(node_get(node, cfg, "/v1/nodes/n1/secrets").await.is_none());
    let list = s.get("/v1/pki/revocations").await.json();
    assert_eq!(list["revoked"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_expired_and_forged_certificates_are_refused() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let node = node_addr(&s);
    let op = acme(&s, "admin read").await;
    let tmp = tempfile::tempdir().unwrap();
    let (chain, key) = enrolled(&s, &op, "acme", "n1", tmp.path()).await;
    // The real node works (403: not bound, but known).
    let r = node_get(
        node,
        s.tls_config_with_cert(&chain, &key),
        "/v1/nodes/n1/secrets",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);

    let inter_pem = std::fs::read_to_string(s.dir.join("intermediate.pem")).unwrap();
    let inter_key = std::fs::read_to_string(s.dir.join("intermediate.key")).unwrap();
    let now = OffsetDateTime::now_utc();
    let n1 = SpiffeId::new("bulwark.local", "acme", Workload::Node, "n1").unwrap();
    let ours = |id: &SpiffeId, at: OffsetDateTime| {
        let (k, csr) = make_csr(KeyAlg::P256).unwrap();
        let leaf = sign_csr(&inter_pem, &inter_key, &csr, id, Workload::Node, None, at).unwrap();
        (format!("{leaf}{inter_pem}"), k.to_string())
    };

    // Another CA's certificate for the same SPIFFE id: refused at the handshake.
    let evil = bulwark_pki::ca::create_hierarchy("evil", KeyAlg::P256, now).unwrap();
    let (k, csr) = make_csr(KeyAlg::P256).unwrap();
    let leaf = sign_csr(
        &evil.intermediate.cert_pem,
        &evil.intermediate.key_pem,
        &csr,
        &n1,
        Workload::Node,
        None,
        now,
    )
    .unwrap();
    let foreign = s.tls_config_with_cert(&format!("{leaf}{}", evil.intermediate.cert_pem), &k);
    let before = s.metric("tls_handshake_failures_total").await;
    assert!(
        node_get(node, foreign, "/v1/nodes/n1/secrets")
            .await
            .is_none()
    );
    assert!(
        s.metric(r#"auth_failures_total{reason="client_cert_unknown_issuer"}"#)
            .await
            >= 1.0
    );

    // Ours, but expired: refused at the handshake.
    let (c, k) = ours(&n1, now - time::Duration::days(3));
    assert!(
        node_get(node, s.tls_config_with_cert(&c, &k), "/v1/nodes/n1/secrets")
            .await
            .is_none()
    );
    assert!(
        s.metric(r#"auth_failures_total{reason="client_cert_expired"}"#)
            .await
            >= 1.0
    );
    assert!(s.metric("tls_handshake_failures_total").await >= before + 2.0);

    // Signed by our intermediate but naming a node that never enrolled, another trust
    // domain, or a service: 401, counted.
    let ghost = SpiffeId::new("bulwark.local", "acme", Workload::Node, "ghost").unwrap();
    let elsewhere = SpiffeId::new("evil.example", "acme", Workload::Node, "n1").unwrap();
    let service = SpiffeId::new("bulwark.local", "acme", Workload::Service, "n1").unwrap();
    for (id, reason, path) in [
        (&ghost, "node_unknown", "/v1/nodes/ghost/secrets"),
        (
            &elsewhere,
            "node_cert_foreign_trust_domain",
            "/v1/nodes/n1/secrets",
        ),
        (&service, "node_cert_not_a_node", "/v1/nodes/n1/secrets"),
    ] {
        let (c, k) = ours(id, now);
        let r = node_get(node, s.tls_config_with_cert(&c, &k), path)
            .await
            .unwrap();
        assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"), "{id}");
        assert!(
            s.metric(&format!(r#"auth_failures_total{{reason="{reason}"}}"#))
                .await
                >= 1.0,
            "{reason}"
        );
    }
    // A self-signed certificate claiming n1's id: refused at the handshake.
    let (k, csr) = make_csr(KeyAlg::P256).unwrap();
    let h = bulwark_pki::ca::create_hierarchy("self", KeyAlg::P256, now).unwrap();
    let selfish = sign_csr(
        &h.root.cert_pem,
        &h.root.key_pem,
        &csr,
        &n1,
        Workload::Node,
        None,
        now,
    )
    .unwrap();
    assert!(
        node_get(
            node,
            s.tls_config_with_cert(&selfish, &k),
            "/v1/nodes/n1/secrets"
        )
        .await
        .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_renew_over_mtls_and_services_get_certificates_from_csrs() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let node = node_addr(&s);
    let op = acme(&s, "admin read audit:read certs:issue").await;
    let tmp = tempfile::tempdir().unwrap();
    let (chain, key) = enrolled(&s, &op, "acme", "n1", tmp.path()).await;
    enrolled(&s, &op, "acme", "n2", tmp.path()).await;
    let cfg = s.tls_config_with_cert(&chain, &key);

    // Renewal: a new key's CSR over the current certificate; same id, new serial.
    let (new_key, csr) = make_csr(KeyAlg::P256).unwrap();
    let r = renew(node, cfg.clone(), "n1", csr).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["spiffe_id"], "spiffe://bulwark.local/org/acme/node/n1");
    let renewed = v["certificate"].as_str().unwrap().to_owned();
    assert_ne!(serial_of(&renewed), serial_of(&chain));
    assert_eq!(v["serial"], serial_of(&renewed).as_str());
    // The renewed certificate works on the node API.
    let r = node_get(
        node,
        s.tls_config_with_cert(&renewed, &new_key),
        "/v1/nodes/n1/secrets",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "known (not bound)");
    // A certificate renews once: again with the old one is refused (a thief and the node
    // cannot both renew one certificate).
    let (_, csr) = make_csr(KeyAlg::P256).unwrap();
    let r = renew(node, cfg.clone(), "n1", csr).await;
    assert_eq!((r.status, r.code().as_str()), (409, "already_exists"));
    assert!(
        s.metric(r#"auth_failures_total{reason="renewal_reused"}"#)
            .await
            >= 1.0
    );
    // Renewing another node: 403 node_mismatch.
    let (_, csr) = make_csr(KeyAlg::P256).unwrap();
    let r = renew(node, cfg.clone(), "n2", csr).await;
    assert_eq!((r.status, r.code().as_str()), (403, "node_mismatch"));
    // A bad CSR: 400.
    let r = renew(node, cfg, "n1", "nope").await;
    assert_eq!(r.status, 400);

    // Service certificates: both key types, serverAuth + clientAuth, journaled, listed.
    for alg in [KeyAlg::P256, KeyAlg::Ed25519] {
        let (_k, csr) = make_csr(alg).unwrap();
        let r = op
            .post(
                "/v1/orgs/acme/certificates",
                json!({"csr": csr, "service": "payments"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(
            v["spiffe_id"],
            "spiffe://bulwark.local/org/acme/service/payments"
        );
        let chain = v["certificate"].as_str().unwrap();
        let parts: Vec<&str> = chain
            .split_inclusive("-----END CERTIFICATE-----\n")
            .collect();
        std::fs::write(tmp.path().join("leaf.pem"), parts[0]).unwrap();
        std::fs::write(tmp.path().join("inter.pem"), parts[1]).unwrap();
        std::fs::write(tmp.path().join("root.pem"), v["ca"].as_str().unwrap()).unwrap();
        for purpose in ["sslserver", "sslclient"] {
            let out = openssl(
                &[
                    "verify",
                    "-purpose",
                    purpose,
                    "-CAfile",
                    "root.pem",
                    "-untrusted",
                    "inter.pem",
                    "leaf.pem",
                ],
                tmp.path(),
            );
            assert!(
                out.status.success(),
                "{purpose}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let r = op
        .post(
            "/v1/orgs/acme/certificates",
            json!({"csr": "x", "service": "a/b"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = op
        .post(
            "/v1/orgs/ghost/certificates",
            json!({"csr": "x", "service": "a"}),
        )
        .await;
    assert_eq!(r.status, 404);
    // A token without `certs:issue` is refused (403), as is a non-admin.
    let (id, secret) = {
        let r = op
            .post(
                "/v1/orgs/acme/principals",
                json!({"kind": "service", "name": "ci", "token_binding": "none"}),
            )
            .await;
        assert_eq!(r.status, 201);
        let v = r.json();
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    let ci = s.token(&id, &secret, "certs:issue", None).await;
    let (_k, csr) = make_csr(KeyAlg::P256).unwrap();
    let r = ci
        .post(
            "/v1/orgs/acme/certificates",
            json!({"csr": csr, "service": "x"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "permission_denied"));
    let listed = op.get("/v1/orgs/acme/certificates").await.json();
    // n1 enrolled + renewed, n2 enrolled, two services.
    assert_eq!(listed["certificates"].as_array().unwrap().len(), 5);
    let entries = op.get("/v1/orgs/acme/audit/entries?limit=200").await.json();
    let issued = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "cert.issue")
        .count();
    assert_eq!(issued, 3);
}

/// The serial of the certificate a server presents at `addr` (client config `cfg`).
async fn served_serial(
    addr: std::net::SocketAddr,
    cfg: std::sync::Arc<rustls::ClientConfig>,
) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    bulwark_pki::serial_and_spiffe_ids(&leaf).unwrap().0
}

fn rotate_cli(
    s: &Server,
    files: Option<(&std::path::Path, &std::path::Path)>,
) -> std::process::Output {
    let mut cmd = Command::new(common::BIN);
    cmd.args(["admin", "rotate-server-cert", "--data-dir"])
        .arg(&s.dir);
    if let Some((c, k)) = files {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_rotates_without_a_restart_and_a_bad_one_is_never_loaded() {
    use std::os::unix::fs::PermissionsExt as _;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    let node = node_addr(&s);
    let op = acme(&s, "admin read").await;
    let tmp = tempfile::tempdir().unwrap();
    let (chain, key) = enrolled(&s, &op, "acme", "n1", tmp.path()).await;
    let node_cfg = s.tls_config_with_cert(&chain, &key);
    let api_cfg = s.tls_config(&[b"http/1.1"]);
    let first = served_serial(s.addr, api_cfg.clone()).await;
    assert_eq!(served_serial(node, node_cfg.clone()).await, first);
    // A connection opened before the rotation.
    let mut before = NodeConn::open(node, node_cfg.clone()).await.unwrap();

    // A fresh certificate from the intermediate: both listeners serve it at once.
    let out = rotate_cli(&s, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = v["serial"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(served_serial(s.addr, api_cfg.clone()).await, second);
    assert_eq!(served_serial(node, node_cfg.clone()).await, second);
    // The open connection carries on; clients verify the new chain as before.
    assert!(
        before
            .call("GET", "/v1/nodes/n1/secrets", None)
            .await
            .is_some()
    );
    assert_eq!(s.get("/healthz").await.status, 200);
    assert_eq!(s.logs_with("server certificate rotated").len(), 1);

    // Refused, and nothing changes: another CA's certificate, our CA's for other names,
    // our CA's but expired, a key that does not match.
    let inter_pem = std::fs::read_to_string(dir.join("intermediate.pem")).unwrap();
    let inter_key = std::fs::read_to_string(dir.join("intermediate.key")).unwrap();
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let now = OffsetDateTime::now_utc();
    let day = std::time::Duration::from_secs(86_400);
    let evil = bulwark_pki::ca::create_hierarchy("evil", KeyAlg::P256, now).unwrap();
    let foreign = bulwark_pki::issue_server_cert(
        &evil.intermediate.cert_pem,
        &evil.intermediate.key_pem,
        &names,
        day,
        now,
    )
    .unwrap();
    let wrong_names = bulwark_pki::issue_server_cert(
        &inter_pem,
        &inter_key,
        &["evil.example".to_owned()],
        day,
        now,
    )
    .unwrap();
    let expired = bulwark_pki::issue_server_cert(
        &inter_pem,
        &inter_key,
        &names,
        day,
        now - time::Duration::days(3),
    )
    .unwrap();
    // (30 days: a stored certificate with less than a third of that left is re-issued at
    // start-up.)
    let good =
        bulwark_pki::issue_server_cert(&inter_pem, &inter_key, &names, day * 30, now).unwrap();
    let cases = [
        (
            "foreign",
            format!("{}{}", foreign.cert_pem, evil.intermediate.cert_pem),
            foreign.key_pem.to_string(),
            "does not verify",
        ),
        (
            "names",
            format!("{}{inter_pem}", wrong_names.cert_pem),
            wrong_names.key_pem.to_string(),
            "does not verify",
        ),
        (
            "expired",
            format!("{}{inter_pem}", expired.cert_pem),
            expired.key_pem.to_string(),
            "does not verify",
        ),
        (
            "mismatch",
            format!("{}{inter_pem}", good.cert_pem),
            foreign.key_pem.to_string(),
            "do not form a valid pair",
        ),
    ];
    for (what, cert, key, why) in cases {
        let c = tmp.path().join(format!("{what}.pem"));
        let k = tmp.path().join(format!("{what}.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = rotate_cli(&s, Some((&c, &k)));
        assert!(!out.status.success(), "{what} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{what}: {err}");
        assert_eq!(
            served_serial(s.addr, api_cfg.clone()).await,
            second,
            "{what}"
        );
        assert_eq!(
            served_serial(node, node_cfg.clone()).await,
            second,
            "{what}"
        );
    }
    // A good one given as files is loaded.
    let c = tmp.path().join("good.pem");
    let k = tmp.path().join("good.key");
    std::fs::write(&c, format!("{}{inter_pem}", good.cert_pem)).unwrap();
    std::fs::write(&k, good.key_pem.as_bytes()).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = rotate_cli(&s, Some((&c, &k)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third = bulwark_pki::summarize(&good.cert_pem).unwrap().serial;
    assert_eq!(served_serial(s.addr, api_cfg.clone()).await, third);

    // It survives a restart (persisted).
    s.stop();
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    assert_eq!(served_serial(s.addr, api_cfg).await, third);
}

#[test]
fn the_root_key_goes_offline_and_the_server_still_issues() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let s = Server::start_in(&dir, &[], &[]);
    // Refused beside a running server.
    let export = |out: &std::path::Path| {
        Command::new(common::BIN)
            .args(["admin", "export-root-key", "--data-dir"])
            .arg(&dir)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let out_file = data.path().join("root.key");
    assert!(!export(&out_file).status.success());
    assert!(dir.join("ca.key").exists());
    s.stop();
    let out = export(&out_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("ca.key").exists());
    assert!(out_file.exists());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    rt.block_on(async {
        // Enrolment and service certificates still work (the intermediate signs).
        let op = acme(&s, "admin read certs:issue").await;
        let tmp = tempfile::tempdir().unwrap();
        let (chain, _) = enrolled(&s, &op, "acme", "n1", tmp.path()).await;
        assert!(chain.contains("BEGIN CERTIFICATE"));
        // A server certificate can still be rotated in (from the intermediate).
        let out = rotate_cli(&s, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}
