//! Tokens against the running server: every attack of the identity issue's list is refused
//! with its reason (problem code, `WWW-Authenticate`, `auth_failures_total{reason}`), and
//! the token endpoint's client authentication, DPoP nonce, introspection, revocation,
//! JWKS and metadata behave as the RFCs say.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::Server;
use common::oauth::{Key, b64, now};
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

fn decode(seg: &str) -> Value {
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

/// Asserts a 401 (or `status`) with `reason` in the challenge, and that it was counted.
async fn refused(s: &Server, headers: &[(&str, String)], status: u16, reason: &str) {
    let r = s.send("GET", "/v1/orgs", headers, None).await;
    assert_eq!(
        r.status,
        status,
        "{reason}: {}",
        String::from_utf8_lossy(&r.body)
    );
    if status == 401 {
        assert_eq!(r.code(), "unauthorized");
        let challenge = r.headers["www-authenticate"].to_str().unwrap();
        if reason == "missing_token" {
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            assert!(!challenge.contains("error="), "{challenge}");
        } else {
            assert!(
                challenge.contains(&format!(r#"error_description="{reason}""#)),
                "{reason}: {challenge}"
            );
        }
        assert!(challenge.starts_with("DPoP "), "{challenge}");
    }
    let counted = s
        .metric(&format!(r#"auth_failures_total{{reason="{reason}"}}"#))
        .await;
    assert!(counted >= 1.0, "{reason} not counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_and_proof_attack_is_refused_with_its_reason() {
    let s = Server::start(&[]);
    let (id, secret) = s.bootstrap("dpop");
    let key = Key::ed();
    let op = s.token(&id, &secret, "admin read", Some(&key)).await;
    assert_eq!(
        op.get("/v1/orgs").await.status,
        200,
        "the genuine token works"
    );

    let url = s.url("/v1/orgs");
    let parts: Vec<&str> = op.token.split('.').collect();
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint().as_str());
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 900);
    let dpop = |tok: &str| {
        vec![
            ("authorization", format!("DPoP {tok}")),
            ("dpop", key.proof("GET", &url, Some(tok), None, json!({}))),
        ]
    };
    let server_key = Key::server_signing(&s);
    let resign = |h: &Value, over: Value| {
        let mut c = claims.clone();
        for (k, v) in over.as_object().unwrap() {
            c[k] = v.clone();
        }
        server_key.sign(h, &c)
    };
    let t = now();

    // Forged signature: the right header, another key.
    refused(
        &s,
        &dpop(&Key::ed().sign(&header, &claims)),
        401,
        "bad_signature",
    )
    .await;
    // alg none.
    let none = format!(
        "{}.{}.",
        b64(
            json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]})
                .to_string()
                .as_bytes()
        ),
        parts[1]
    );
    refused(&s, &dpop(&none), 401, "bad_alg").await;
    // A JWT of the wrong type, validly signed.
    let mut jwt_header = header.clone();
    jwt_header["typ"] = "JWT".into();
    refused(&s, &dpop(&resign(&jwt_header, json!({}))), 401, "bad_typ").await;
    // Expired, not yet valid, another audience, several audiences, too long.
    let expired = resign(
        &header,
        json!({"iat": t - 900, "nbf": t - 900, "exp": t - 120}),
    );
    refused(&s, &dpop(&expired), 401, "expired").await;
    let future = resign(
        &header,
        json!({"iat": t + 300, "nbf": t + 300, "exp": t + 600}),
    );
    refused(&s, &dpop(&future), 401, "not_yet_valid").await;
    let other_aud = resign(&header, json!({"aud": "https://elsewhere.example"}));
    refused(&s, &dpop(&other_aud), 401, "bad_audience").await;
    let many = resign(
        &header,
        json!({"aud": [claims["aud"].clone(), "https://elsewhere.example"]}),
    );
    refused(&s, &dpop(&many), 401, "bad_audience").await;
    let long = resign(&header, json!({"exp": t + 7200}));
    refused(&s, &dpop(&long), 401, "lifetime_too_long").await;

    // DPoP proofs.
    let tok = op.token.as_str();
    let with = |proof: String| vec![("authorization", format!("DPoP {tok}")), ("dpop", proof)];
    let once = key.proof("GET", &url, Some(tok), None, json!({}));
    assert_eq!(
        s.send("GET", "/v1/orgs", &with(once.clone()), None)
            .await
            .status,
        200
    );
    refused(&s, &with(once), 401, "replayed").await;
    refused(
        &s,
        &with(key.proof("POST", &url, Some(tok), None, json!({}))),
        401,
        "dpop_htm_mismatch",
    )
    .await;
    let elsewhere = s.url("/v1/principals");
    refused(
        &s,
        &with(key.proof("GET", &elsewhere, Some(tok), None, json!({}))),
        401,
        "dpop_htu_mismatch",
    )
    .await;
    refused(
        &s,
        &with(key.proof("GET", &url, Some(tok), None, json!({"iat": t - 120}))),
        401,
        "dpop_stale",
    )
    .await;
    // Within ±30 s, but made before this server process started: its replay cache (in
    // memory) cannot know whether the proof was used before a restart, so it is refused.
    let started = s.started_at_secs();
    let before_start = key.proof("GET", &url, Some(tok), None, json!({"iat": started - 2}));
    if now() - (started - 2) <= 30 {
        let r = s.send("GET", "/v1/orgs", &with(before_start), None).await;
        assert_eq!(r.status, 401);
        assert!(
            r.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("dpop_stale")
        );
    }
    refused(
        &s,
        &with(Key::ed().proof("GET", &url, Some(tok), None, json!({}))),
        401,
        "dpop_key_mismatch",
    )
    .await;
    refused(
        &s,
        &with(Key::es().proof("GET", &url, Some(tok), None, json!({}))),
        401,
        "dpop_key_mismatch",
    )
    .await;
    refused(
        &s,
        &with(key.proof("GET", &url, Some(tok), None, json!({"ath": null}))),
        401,
        "dpop_ath_mismatch",
    )
    .await;
    refused(
        &s,
        &[("authorization", format!("Bearer {tok}"))],
        401,
        "dpop_required",
    )
    .await;
    refused(
        &s,
        &[("authorization", format!("DPoP {tok}"))],
        401,
        "dpop_proof_missing",
    )
    .await;
    refused(&s, &[], 401, "missing_token").await;

    // A revoked token (RFC 7009), then a revoked principal (not-before).
    let basic = (
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        ),
    );
    let form = format!("token={tok}");
    let r = s
        .send(
            "POST",
            "/oauth2/revoke",
            &[
                basic.clone(),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ],
            Some(form.into_bytes()),
        )
        .await;
    assert_eq!(r.status, 200);
    refused(&s, &dpop(tok), 401, "revoked").await;

    let op2 = s.token(&id, &secret, "admin read", Some(&key)).await;
    let r = op2
        .post(&format!("/v1/principals/{id}/revoke-tokens"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    refused(&s, &dpop(&op2.token), 401, "principal_revoked").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let op3 = s.token(&id, &secret, "admin read", Some(&key)).await;
    assert_eq!(
        op3.get("/v1/orgs").await.status,
        200,
        "tokens issued after the not-before work"
    );

    // A disabled org: its principals' tokens stop at once, and no new ones are issued.
    assert_eq!(
        op3.post("/v1/orgs", json!({"name": "acme"})).await.status,
        201
    );
    let created = op3
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "ci", "token_binding": "none"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let (cid, csec) = (
        created.json()["client_id"].as_str().unwrap().to_owned(),
        created.json()["client_secret"].as_str().unwrap().to_owned(),
    );
    let r = op3
        .post(
            "/v1/orgs/acme/relations",
            json!({"scope": "org/acme", "relation": "viewer", "subject": format!("service:{cid}")}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let ci = s.token(&cid, &csec, "read", None).await;
    assert_eq!(ci.get("/v1/orgs/acme").await.status, 200);
    assert_eq!(
        op3.post("/v1/orgs/acme/disable", json!({})).await.status,
        200
    );
    let r = ci.get("/v1/orgs/acme").await;
    assert_eq!((r.status, r.code().as_str()), (403, "scope_disabled"));
    refused(
        &s,
        &[("authorization", format!("Bearer {}", ci.token))],
        403,
        "org_disabled",
    )
    .await;
    let r = s
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &cid),
                ("client_secret", &csec),
            ],
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap()),
        (400, "unauthorized_client")
    );

    // Nothing secret reached the logs.
    let logs = serde_json::to_string(&*s.logs.lock().unwrap()).unwrap();
    for needle in [secret.as_str(), csec.as_str(), tok, op3.token.as_str()] {
        assert!(!logs.contains(needle), "a secret or token was logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_authenticates_clients_and_binds_tokens() {
    let s = Server::start(&[]);
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, "admin read", None).await;
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "acme"})).await.status,
        201
    );

    // DPoP-bound principal: the nonce dance, then a DPoP token whose cnf is our key.
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "d"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.headers["cache-control"], "no-store");
    let (did, dsec) = (
        r.json()["client_id"].as_str().unwrap().to_owned(),
        r.json()["client_secret"].as_str().unwrap().to_owned(),
    );
    assert_eq!(r.json()["token_binding"], "dpop");
    let key = Key::es();
    let url = s.url("/oauth2/token");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", did.as_str()),
        ("client_secret", dsec.as_str()),
    ];
    let r = s.token_request(&form, &[]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap()),
        (400, "invalid_dpop_proof"),
        "a dpop client needs a proof"
    );
    let r = s
        .token_request(
            &form,
            &[("dpop", key.proof("POST", &url, None, None, json!({})))],
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap()),
        (400, "use_dpop_nonce")
    );
    let nonce = r.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let r = s
        .token_request(
            &form,
            &[(
                "dpop",
                key.proof("POST", &url, None, Some(&nonce), json!({})),
            )],
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["cache-control"], "no-store");
    let body = r.json();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(body["scope"], "read", "the default scope is read");
    let claims = decode(
        body["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap(),
    );
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint().as_str());
    assert_eq!(claims["org"], "acme");
    assert_eq!(claims["sub"], format!("service:{did}"));

    // Client authentication failures.
    let bad = s
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &did),
                ("client_secret", "bws_wrong"),
            ],
            &[],
        )
        .await;
    assert_eq!(
        (bad.status, bad.json()["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    let basic_bad = s
        .token_request(
            &[("grant_type", "client_credentials")],
            &[(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("svc_nobody:bws_x")
                ),
            )],
        )
        .await;
    assert_eq!(basic_bad.status, 401);
    assert!(
        basic_bad.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let r = s
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_request");
    let r = s.token_request(&[("grant_type", "password")], &[]).await;
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    let plain = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let r = s
        .token_request(
            &[plain[0], plain[1], plain[2], ("scope", "read everything")],
            &[],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_scope");
    let r = s
        .token_request(
            &[
                plain[0],
                plain[1],
                plain[2],
                ("resource", "https://elsewhere.example"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_target");
    let r = s.token_request(&plain, &[]).await;
    assert_eq!(
        (r.status, r.json()["token_type"].as_str().unwrap()),
        (200, "Bearer"),
        "client_secret_post"
    );

    // private_key_jwt with a registered P-256 key; an assertion is single-use.
    let ckey = Key::es();
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "k", "token_binding": "none", "jwk": ckey.jwk()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let kid = r.json()["client_id"].as_str().unwrap().to_owned();
    let assertion = |aud: &str| {
        ckey.sign(
            &json!({"alg": "ES256", "typ": "JWT"}),
            &json!({"iss": kid, "sub": kid, "aud": aud, "exp": now() + 60, "iat": now(), "jti": b64(&now().to_be_bytes()) + aud}),
        )
    };
    let a = assertion(&url);
    let pkj = |a: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", a.to_owned()),
        ]
    };
    let form: Vec<(&str, String)> = pkj(&a);
    let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = s.token_request(&borrowed, &[]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = s.token_request(&borrowed, &[]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    assert_eq!(
        r.json()["error_description"],
        "client authentication failed",
        "one description for every client failure: no hint which client ids exist"
    );
    assert!(s.metric(r#"auth_failures_total{reason="replayed"}"#).await >= 1.0);
    let form = pkj(&assertion("https://elsewhere.example/token"));
    let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = s.token_request(&borrowed, &[]).await;
    assert_eq!(r.status, 401);
    assert!(
        s.metric(r#"auth_failures_total{reason="bad_audience"}"#)
            .await
            >= 1.0
    );
    // A form with very many parameters is refused early (parsing stays linear).
    let many: String = (0..5000).map(|i| format!("p{i}=x&")).collect();
    let r = s
        .send(
            "POST",
            "/oauth2/token",
            &[("content-type", "application/x-www-form-urlencoded".into())],
            Some(many.into_bytes()),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error_description"].as_str().unwrap()),
        (400, "too_many_parameters")
    );

    // Introspection: active for a live token, inactive once revoked; clients of an org see
    // nothing of the instance's tokens.
    let auth = (
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        ),
    );
    let ct = (
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    let intro = |tok: &str| format!("token={tok}").into_bytes();
    let r = s
        .send(
            "POST",
            "/oauth2/introspect",
            &[auth.clone(), ct.clone()],
            Some(intro(&op.token)),
        )
        .await;
    let v = r.json();
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], id.as_str());
    assert_eq!(v["token_type"], "Bearer");
    let org_client = (
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{did}:{dsec}"))
        ),
    );
    let r = s
        .send(
            "POST",
            "/oauth2/introspect",
            &[org_client, ct.clone()],
            Some(intro(&op.token)),
        )
        .await;
    assert_eq!(r.json(), json!({"active": false}));
    let r = s
        .send(
            "POST",
            "/oauth2/revoke",
            &[auth.clone(), ct.clone()],
            Some(intro(&op.token)),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .send(
            "POST",
            "/oauth2/introspect",
            &[auth.clone(), ct.clone()],
            Some(intro(&op.token)),
        )
        .await;
    assert_eq!(r.json(), json!({"active": false}));
    let r = s
        .send(
            "POST",
            "/oauth2/introspect",
            &[auth, ct],
            Some(intro("not.a.token")),
        )
        .await;
    assert_eq!(r.json(), json!({"active": false}));

    // JWKS and metadata.
    let jwks = s.get("/.well-known/jwks.json").await.json();
    let kid_hdr = decode(op.token.split('.').next().unwrap())["kid"].clone();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid_hdr && k["crv"] == "Ed25519")
    );
    assert!(
        jwks.to_string().find("\"d\"").is_none(),
        "no private member published"
    );
    let meta = s
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(
        meta["token_endpoint"],
        format!("{}/oauth2/token", meta["issuer"].as_str().unwrap())
    );
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "ES256"])
    );
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_rotation_keeps_old_tokens_valid_and_published_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &["--public-url", "https://bulwark.test"], &[]);
    let (id, secret) = s.bootstrap("none");
    let old = s.token(&id, &secret, "read", None).await;
    let kid = |t: &str| {
        decode(t.split('.').next().unwrap())["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let old_kid = kid(&old.token);
    let out = std::process::Command::new(common::BIN)
        .args(["admin", "rotate-signing-key", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rotated["retired"], old_kid.as_str());
    let new = s.token(&id, &secret, "read", None).await;
    assert_eq!(kid(&new.token), rotated["active"].as_str().unwrap());
    assert_ne!(kid(&new.token), old_kid);
    for t in [&old, &new] {
        assert_eq!(t.get("/v1/orgs").await.status, 200);
    }
    let mut both = vec![old_kid.clone(), kid(&new.token)];
    both.sort();
    assert_eq!(jwks_kids(&s).await, both);
    let (old_token, new_token) = (old.token.clone(), new.token.clone());
    s.stop();

    // After a restart (a new port: the issuer is the configured public URL) the retired key
    // is rebuilt from the journal: still published, still
    // verifying; the new key signs.
    let s = Server::start_in(&dir, &["--public-url", "https://bulwark.test"], &[]);
    assert_eq!(jwks_kids(&s).await, both);
    for t in [&old_token, &new_token] {
        let r = s
            .send(
                "GET",
                "/v1/orgs",
                &[("authorization", format!("Bearer {t}"))],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let again = s.token(&id, &secret, "read", None).await;
    assert_eq!(kid(&again.token), kid(&new_token));
    // The retired key's private half is gone from the data directory.
    let on_disk = std::fs::read_to_string(dir.join("signing.key")).unwrap();
    let server_key = Key::server_signing(&s);
    assert!(!on_disk.is_empty());
    let probe = server_key.sign(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid(&new_token)}),
        &decode(new_token.split('.').nth(1).unwrap()),
    );
    let r = s
        .send(
            "GET",
            "/v1/orgs",
            &[("authorization", format!("Bearer {probe}"))],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "signing.key is the new key");
}

async fn jwks_kids(s: &Server) -> Vec<String> {
    let v = s.get("/.well-known/jwks.json").await.json();
    let mut k: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

/// A client certificate from the instance CA (what the PKI issue's service certificates
/// will hand out), made here with the CA key from the data directory.
fn client_cert(s: &Server, uri: &str) -> (String, String) {
    let ca_key = std::fs::read_to_string(s.dir.join("ca.key")).unwrap();
    let issued = bulwark_pki::issue_client_cert(
        &s.ca_pem,
        &ca_key,
        uri,
        std::time::Duration::from_secs(3600),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    (issued.cert_pem, issued.key_pem.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_bound_tokens_work_only_with_the_same_client_certificate() {
    use bytes::Bytes;
    use http_body_util::Full;

    let s = Server::start(&[]);
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, "admin read", None).await;
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "acme"})).await.status,
        201
    );
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "m", "token_binding": "mtls"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let (mid, msec) = (
        r.json()["client_id"].as_str().unwrap().to_owned(),
        r.json()["client_secret"].as_str().unwrap().to_owned(),
    );
    let r = op
        .post(
            "/v1/orgs/acme/relations",
            json!({"scope": "org/acme", "relation": "viewer", "subject": format!("service:{mid}")}),
        )
        .await;
    assert_eq!(r.status, 201);
    let form = format!("grant_type=client_credentials&client_id={mid}&client_secret={msec}");
    let token_req = || {
        http::Request::post("/oauth2/token")
            .header("host", s.authority())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form.clone())))
            .unwrap()
    };

    // Without a client certificate: no token.
    let r = s.request(token_req()).await;
    assert_eq!(
        (r.status, r.json()["error_description"].as_str().unwrap()),
        (400, "mtls_cert_required")
    );

    // With one: a token bound to its SHA-256 (RFC 8705 cnf.x5t#S256).
    let (cert, key) = client_cert(&s, &format!("spiffe://bulwark.test/org/acme/service/{mid}"));
    let with_cert = s.tls_config_with_cert(&cert, &key);
    let r = s.request_with(with_cert.clone(), token_req()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["token_type"], "Bearer");
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let claims = decode(token.split('.').nth(1).unwrap());
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    assert_eq!(
        claims["cnf"]["x5t#S256"],
        b64(&common::oauth::sha256(der.as_ref())).as_str()
    );

    let call = || {
        http::Request::get("/v1/orgs/acme")
            .header("host", s.authority())
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(
        s.request_with(with_cert, call()).await.status,
        200,
        "same certificate"
    );
    let r = s.request(call()).await;
    assert_eq!(r.status, 401, "no certificate");
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("mtls_cert_missing")
    );
    let (other, other_key) = client_cert(&s, "spiffe://bulwark.test/org/acme/service/other");
    let r = s
        .request_with(s.tls_config_with_cert(&other, &other_key), call())
        .await;
    assert_eq!(r.status, 401, "another certificate of the same CA");
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("mtls_cert_mismatch")
    );
    assert!(
        s.metric(r#"auth_failures_total{reason="mtls_cert_mismatch"}"#)
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused_at_the_handshake() {
    let s = Server::start(&[]);
    let now = time::OffsetDateTime::now_utc();
    let foreign = bulwark_pki::create_root_ca("foreign", now).unwrap();
    let cert = bulwark_pki::issue_client_cert(
        &foreign.cert_pem,
        &foreign.key_pem,
        "spiffe://evil/org/acme/service/x",
        std::time::Duration::from_secs(3600),
        now,
    )
    .unwrap();
    let cfg = s.tls_config_with_cert(&cert.cert_pem, &cert.key_pem);
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await;
    // TLS 1.3: the client learns of the refusal at its first read.
    if let Ok(mut stream) = tls {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await;
        assert!(
            matches!(n, Err(_) | Ok(0)),
            "a foreign client certificate was served"
        );
    }
    assert!(s.metric("tls_handshake_failures_total").await >= 1.0);
}
