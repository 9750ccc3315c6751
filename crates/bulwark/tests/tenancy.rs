//! The tenant tree, principals and relations against the running server: the cross-tenant
//! matrix (every route of every plane in the route table, walked by its authorization
//! rule), 403 before 404, relations deciding permissions with reasons, disabling, paged
//! lookups with signed cursors, an org's audit entries, entry bundles for instance
//! auditors only, bootstrap, principal lifecycle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use bulwark_server::http::{Plane, Rule, ScopeFrom};
use common::node::{NodeConn, node_addr};
use common::oauth::Session;
use common::{Response, Server};
use serde_json::{Value, json};

/// An operator session (plain bearer) and a fixture: orgs `victim` and `attacker`, each
/// with app `web` and env `prod`, and a service principal per org.
struct World<'a> {
    op: Session<'a>,
    victim_principal: String,
}

async fn world(s: &Server) -> World<'_> {
    let (id, secret) = s.bootstrap("none");
    let op = s.token(&id, &secret, "admin read audit:read", None).await;
    for org in ["victim", "attacker"] {
        assert_eq!(op.post("/v1/orgs", json!({"name": org})).await.status, 201);
        let r = op
            .post(&format!("/v1/orgs/{org}/apps"), json!({"name": "web"}))
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let r = op
            .post(
                &format!("/v1/orgs/{org}/apps/web/envs"),
                json!({"name": "prod"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let r = op
        .post("/v1/orgs/victim/apps", json!({"name": "hidden-app"}))
        .await;
    assert_eq!(r.status, 201);
    let r = op
        .post(
            "/v1/orgs/victim/principals",
            json!({"kind": "service", "name": "victim-ci", "token_binding": "none"}),
        )
        .await;
    assert_eq!(r.status, 201);
    World {
        victim_principal: r.json()["id"].as_str().unwrap().to_owned(),
        op,
    }
}

/// An org principal with every relation the org can hold, and a token with every scope.
async fn org_admin<'a>(s: &'a Server, op: &Session<'_>, org: &str) -> Session<'a> {
    let r = op
        .post(
            &format!("/v1/orgs/{org}/principals"),
            json!({"kind": "service", "name": format!("{org}-admin"), "token_binding": "none"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let v = r.json();
    let (id, secret) = (
        v["client_id"].as_str().unwrap(),
        v["client_secret"].as_str().unwrap(),
    );
    let subject = format!("service:{id}");
    for (scope, rel) in [
        (format!("org/{org}"), "admin"),
        (format!("org/{org}"), "auditor"),
        (format!("org/{org}/app/web"), "deployer"),
        (format!("org/{org}/app/web/env/prod"), "secret_reader"),
        (format!("org/{org}/app/web/env/prod"), "exec"),
    ] {
        let r = op
            .post(
                &format!("/v1/orgs/{org}/relations"),
                json!({"scope": scope, "relation": rel, "subject": subject}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    s.token(
        id,
        secret,
        "admin deploy secrets:read exec audit:read read certs:issue",
        None,
    )
    .await
}

/// Fills a route's path pattern for `org`.
fn fill(pattern: &str, org: &str, principal: &str) -> String {
    pattern
        .replace("{org}", org)
        .replace("{app}", "web")
        .replace("{env}", "prod")
        .replace("{id}", principal)
        .replace("{name}", "db")
        .replace("{node}", "n1")
        .replace("{serial}", "4a0b")
        .replace("{version}", "1")
}

/// The scope a `Bearer` rule checks for a probe of `org` with an empty body.
fn expected_scope(scope: ScopeFrom, org: &str) -> String {
    match scope {
        ScopeFrom::Instance => "instance".to_owned(),
        ScopeFrom::Org | ScopeFrom::BodyInOrg => format!("org/{org}"),
        ScopeFrom::App => format!("org/{org}/app/web"),
        ScopeFrom::Env => format!("org/{org}/app/web/env/prod"),
    }
}

/// A request without any credentials.
async fn anonymous(s: &Server, method: &str, path: &str, body: Option<(&str, String)>) -> Response {
    let (headers, body) = match body {
        Some((ct, b)) => (vec![("content-type", ct.to_owned())], Some(b.into_bytes())),
        None => (Vec::new(), None),
    };
    s.send(method, path, &headers, body).await
}

/// Every route of every plane, walked by its authorization rule: org routes answer 403
/// `permission_denied` to another org's admin (and for an org that does not exist), with
/// the denial journaled under the table's permission and scope; instance routes answer
/// 403 to an org token; every token route answers 401 without one; public routes answer
/// without credentials and leak nothing; client routes want client authentication; the
/// join token is checked; the node API refuses a connection without a node certificate;
/// the admin operations exist on the admin socket only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_tenant_matrix_every_org_route_answers_403_and_nothing_else() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let w = world(&s).await;
    let attacker = org_admin(&s, &w.op, "attacker").await;
    // The attacker's token works in its own org.
    assert_eq!(attacker.get("/v1/orgs/attacker").await.status, 200);

    let table = bulwark_server::http::route_table();
    let mut walked: BTreeMap<&str, usize> = BTreeMap::new();
    // (method, route, permission, scope) of every denial the walk must leave journaled.
    let mut denials: Vec<(String, &str, &str, String)> = Vec::new();
    let leaks = |text: &str| {
        ["victim", "hidden-app", "victim-ci"]
            .into_iter()
            .find(|n| text.contains(n))
    };

    let org_routes: Vec<_> = table
        .iter()
        .filter(|r| r.plane == Plane::Api && r.path.contains("{org}"))
        .collect();
    assert!(
        org_routes.len() >= 20,
        "the table lists the org routes ({})",
        org_routes.len()
    );
    for route in &org_routes {
        let Rule::Bearer { permission, scope } = route.rule else {
            panic!("an org route without a bearer rule: {route:?}");
        };
        for target in ["victim", "no-such-org"] {
            let path = fill(route.path, target, &w.victim_principal);
            // `{}` is a malformed body for every POST: authorization must answer first.
            let body = (route.method != http::Method::GET).then(|| json!({}));
            let r = attacker.call(route.method.as_str(), &path, body).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (403, "permission_denied"),
                "{} {path}: {}",
                route.method,
                String::from_utf8_lossy(&r.body)
            );
            let text = String::from_utf8_lossy(&r.body);
            assert!(
                !text.contains("hidden-app") && !text.contains("victim-ci"),
                "{path} leaked: {text}"
            );
            denials.push((
                route.method.to_string(),
                route.path,
                permission.as_str(),
                expected_scope(scope, target),
            ));
        }
    }
    // Routes without an org in the path: an org token reaches none of the instance's.
    for route in table
        .iter()
        .filter(|r| r.plane == Plane::Api && !r.path.contains("{org}"))
        .filter(|r| matches!(r.rule, Rule::Bearer { .. } | Rule::Caller { .. }))
    {
        let path = route.path.replace("{id}", &w.victim_principal);
        let r = match route.path {
            "/v1/authz/check" => {
                attacker
                    .get("/v1/authz/check?permission=view&scope=org/victim")
                    .await
            }
            _ => {
                attacker
                    .call(
                        route.method.as_str(),
                        &path,
                        (route.method != http::Method::GET).then(|| json!({})),
                    )
                    .await
            }
        };
        match (route.rule, route.path) {
            (Rule::Caller { .. }, "/v1/orgs") if route.method == http::Method::GET => {
                assert_eq!(
                    r.json()["orgs"],
                    json!(["attacker"]),
                    "only its own org is listed"
                );
            }
            (Rule::Caller { .. }, "/v1/authz/check") => assert_eq!(r.json()["allowed"], false),
            (Rule::Caller { .. }, "/v1/authz/lookup") => {
                let items = r.json()["items"].clone();
                assert!(
                    items
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|i| i["scope"].as_str().unwrap().starts_with("org/attacker"))
                );
            }
            (Rule::Caller { .. }, _) => panic!("walk the new caller route {route:?} here"),
            (Rule::Bearer { permission, scope }, _) => {
                assert_eq!(
                    (r.status, r.code().as_str()),
                    (403, "permission_denied"),
                    "{} {path}: {}",
                    route.method,
                    String::from_utf8_lossy(&r.body)
                );
                assert_eq!(scope.path_param(), None, "{route:?}");
                denials.push((
                    route.method.to_string(),
                    route.path,
                    permission.as_str(),
                    expected_scope(scope, "attacker"),
                ));
            }
            _ => unreachable!(),
        }
    }

    // Every route of every plane, by its rule (the match is exhaustive: a new kind of rule
    // does not compile until it is walked here).
    let checkpoint = anonymous(&s, "GET", "/v1/audit/log/checkpoint", None).await;
    assert_eq!(checkpoint.status, 200);
    let size: u64 = String::from_utf8_lossy(&checkpoint.body)
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // The first level-0 hash tile: full, or partial while the log is short.
    let hash_tile = if size >= 256 {
        "0/000".to_owned()
    } else {
        format!("0/000.p/{size}")
    };
    let node_api = node_addr(&s);
    for route in &table {
        let method = route.method.as_str();
        let path = fill(route.path, "victim", &w.victim_principal);
        let kind = match route.rule {
            Rule::Bearer { .. } | Rule::Caller { .. } => {
                // The access token comes first: none, 401.
                let body =
                    (route.method != http::Method::GET).then(|| ("application/json", "{}".into()));
                let r = anonymous(&s, method, &path, body).await;
                assert_eq!(r.status, 401, "{method} {path} without a token");
                if matches!(route.rule, Rule::Bearer { .. }) {
                    "bearer"
                } else {
                    "caller"
                }
            }
            Rule::Public { .. } => {
                let path = path.replace("{*path}", &hash_tile);
                let r = anonymous(&s, method, &path, None).await;
                assert!(
                    ![401, 403].contains(&r.status),
                    "{method} {path} is public: {}",
                    r.status
                );
                let text = String::from_utf8_lossy(&r.body);
                assert_eq!(leaks(&text), None, "{method} {path} leaked: {text}");
                "public"
            }
            Rule::PartlyPublic {
                permission, scope, ..
            } => {
                assert_eq!(
                    route.path, "/v1/audit/log/tile/{*path}",
                    "walk {route:?} here"
                );
                // Hash tiles are public…
                let hashes = path.replace("{*path}", &hash_tile);
                let r = anonymous(&s, method, &hashes, None).await;
                assert_eq!(r.status, 200, "{hashes}");
                // …entry bundles need the permission on the instance.
                let entries = path.replace("{*path}", "entries/000.p/1");
                let r = anonymous(&s, method, &entries, None).await;
                assert_eq!(r.status, 401, "{entries} without a token");
                let r = attacker.get(&entries).await;
                assert_eq!(
                    (r.status, r.code().as_str()),
                    (403, "permission_denied"),
                    "{entries} for an org token"
                );
                assert_eq!(w.op.get(&entries).await.status, 200, "{entries}");
                denials.push((
                    route.method.to_string(),
                    route.path,
                    permission.as_str(),
                    expected_scope(scope, "attacker"),
                ));
                "partly public"
            }
            Rule::Client => {
                let form = match route.path {
                    "/oauth2/token" => "grant_type=client_credentials&scope=read",
                    _ => "token=not-a-token",
                };
                let ct = "application/x-www-form-urlencoded";
                let r = anonymous(&s, method, &path, Some((ct, form.into()))).await;
                assert_eq!(
                    (r.status, r.json()["error"].as_str()),
                    (401, Some("invalid_client")),
                    "{method} {path} without client authentication"
                );
                "client"
            }
            Rule::JoinToken => {
                let body = json!({"token": "bogus-join-token", "csr": "not a CSR"}).to_string();
                let r = anonymous(&s, method, &path, Some(("application/json", body))).await;
                assert_eq!(
                    (r.status, r.code().as_str()),
                    (401, "unauthorized"),
                    "{method} {path} with a bogus join token"
                );
                "join token"
            }
            Rule::Node => {
                assert_eq!(route.plane, Plane::Node, "{route:?}");
                // Not on the API listener…
                let r = attacker.call(method, &path, None).await;
                assert_eq!(r.status, 404, "{method} {path} on the API listener");
                // …and refused on the node listener without a node certificate: the
                // handshake fails, or the request does, or it is answered 401.
                let anonymous_tls = s.tls_config(&[b"http/1.1"]);
                let answer = match NodeConn::open(node_api, anonymous_tls).await {
                    None => None,
                    Some(mut c) => c.call(method, &path, None).await,
                };
                if let Some(r) = answer {
                    assert_eq!(r.status, 401, "{method} {path} without a node certificate");
                }
                "node"
            }
            Rule::AdminPeer => {
                // The socket checks the peer's uid on accept; its operations exist
                // nowhere else.
                assert_eq!(route.plane, Plane::Admin, "{route:?}");
                let elsewhere = table
                    .iter()
                    .any(|r| r.plane != Plane::Admin && r.path == route.path);
                if !elsewhere {
                    let r = w.op.call(method, &path, Some(json!({}))).await;
                    assert_eq!(r.status, 404, "{method} {path} on the API listener");
                }
                "admin peer"
            }
        };
        *walked.entry(kind).or_default() += 1;
    }
    eprintln!("routes walked by rule: {walked:?}");
    for kind in [
        "bearer",
        "caller",
        "public",
        "partly public",
        "client",
        "join token",
        "node",
        "admin peer",
    ] {
        assert!(walked.contains_key(kind), "no {kind} route walked");
    }

    // The denials were journaled with their reason in the prober's own org log; the
    // victim's log holds none of them (one org cannot write into another's audit trail).
    let probes = denied_entries(&w.op, "attacker").await;
    assert!(probes.len() >= org_routes.len());
    assert!(probes.iter().all(|e| e["kind"] == "access"
        && e["data"]["reason"] == "the token is confined to another org"
        && e["corr_id"].is_string()));
    assert!(denied_entries(&w.op, "victim").await.is_empty());
    // Each denial names the permission and scope the table declares for its route: the
    // table's rule is the one the handler authorizes.
    for (method, route, permission, scope) in &denials {
        assert!(
            probes.iter().any(|e| e["data"]["method"] == method.as_str()
                && e["data"]["route"] == *route
                && e["data"]["permission"] == *permission
                && e["resource"] == scope.as_str()),
            "no denial of {permission} on {scope} journaled for {method} {route}"
        );
    }
    // 403 before 404: the operator gets 404 for the org that does not exist.
    assert_eq!(w.op.get("/v1/orgs/no-such-org").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_decide_with_reasons_and_disabling_denies_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    let w = world(&s).await;
    let r =
        w.op.post(
            "/v1/orgs/victim/principals",
            json!({"kind": "service", "name": "alice", "token_binding": "none"}),
        )
        .await;
    let v = r.json();
    let (aid, asec) = (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap().to_owned(),
    );
    let alice = s
        .token(&aid, &asec, "admin deploy secrets:read read", None)
        .await;
    let sub = format!("service:{aid}");
    let env = "org/victim/app/web/env/prod";
    let check = |perm: &str| format!("/v1/authz/check?permission={perm}&scope={env}");
    let grant = |scope: &str, rel: &str| json!({"scope": scope, "relation": rel, "subject": sub});

    let r = alice.get(&check("deploy")).await.json();
    assert_eq!(
        (r["allowed"].clone(), r["reason"].clone()),
        (json!(false), json!("no relation grants it"))
    );
    assert_eq!(
        alice.get("/v1/orgs/victim/apps/web/envs/prod").await.status,
        403
    );
    assert_eq!(
        w.op.post("/v1/orgs/victim/relations", grant("org/victim", "admin"))
            .await
            .status,
        201
    );
    let r = alice.get(&check("deploy")).await.json();
    assert_eq!(r["allowed"], true);
    assert_eq!(r["reason"], "granted by `admin` on `org/victim`");
    // Admin does not read secret values; granting secret_reader (journaled) does.
    let r = alice.get(&check("read_secret_value")).await.json();
    assert_eq!(r["allowed"], false);
    let granted = alice
        .post("/v1/orgs/victim/relations", grant(env, "secret_reader"))
        .await;
    assert_eq!(
        granted.status, 201,
        "an admin may grant itself the relation"
    );
    let r = alice.get(&check("read_secret_value")).await.json();
    assert_eq!(
        r["reason"],
        format!("granted by `secret_reader` on `{env}`")
    );
    // The operator asks about alice.
    let r =
        w.op.get(&format!("{}&subject={sub}", check("exec")))
            .await
            .json();
    assert_eq!(r["allowed"], false);
    // A relation that does not fit its scope, and a subject of another org, are refused.
    let r =
        w.op.post(
            "/v1/orgs/victim/relations",
            grant("org/victim", "secret_reader"),
        )
        .await;
    assert_eq!(r.status, 400);
    let r =
        w.op.post(
            "/v1/orgs/attacker/relations",
            json!({"scope": "org/attacker", "relation": "viewer", "subject": sub}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));

    // A principal of the org without any relation.
    let r =
        w.op.post(
            "/v1/orgs/victim/principals",
            json!({"kind": "service", "name": "bob", "token_binding": "none"}),
        )
        .await;
    let bob = s
        .token(
            r.json()["client_id"].as_str().unwrap(),
            r.json()["client_secret"].as_str().unwrap(),
            "read",
            None,
        )
        .await;

    // Disabling the env denies everything under it at once; enabling restores.
    assert_eq!(
        w.op.post("/v1/orgs/victim/apps/web/envs/prod/disable", json!({}))
            .await
            .status,
        200
    );
    // To a subject without rights there, the env's being disabled is not revealed.
    let r = bob.get(&check("view")).await.json();
    assert_eq!(r["reason"], "no relation grants it");
    let r = bob.get("/v1/orgs/victim/apps/web/envs/prod").await;
    assert_eq!((r.status, r.code().as_str()), (403, "permission_denied"));
    let r = alice.get("/v1/orgs/victim/apps/web/envs/prod").await;
    assert_eq!((r.status, r.code().as_str()), (403, "scope_disabled"));
    let r = alice.get(&check("read_secret_value")).await.json();
    assert_eq!(r["reason"], format!("`{env}` is disabled"));
    assert_eq!(
        alice.get("/v1/orgs/victim").await.status,
        200,
        "the org itself is not disabled"
    );
    assert_eq!(
        w.op.post("/v1/orgs/victim/apps/web/envs/prod/enable", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        alice.get(&check("read_secret_value")).await.json()["allowed"],
        true
    );

    // Revoking removes it again; names are validated; duplicates conflict.
    assert_eq!(
        alice
            .post(
                "/v1/orgs/victim/relations/revoke",
                grant(env, "secret_reader")
            )
            .await
            .status,
        200
    );
    assert_eq!(
        alice.get(&check("read_secret_value")).await.json()["allowed"],
        false
    );
    assert_eq!(
        w.op.post("/v1/orgs", json!({"name": "Bad_Name"}))
            .await
            .status,
        400
    );
    let r = w.op.post("/v1/orgs", json!({"name": "victim"})).await;
    assert_eq!((r.status, r.code().as_str()), (409, "already_exists"));

    // A restart rebuilds the same directory from the journal.
    s.stop();
    let s2 = Server::start_in(&dir, &[], &[]);
    let again = s2
        .token(&aid, &asec, "admin deploy secrets:read read", None)
        .await;
    let r = again
        .get(&format!("/v1/authz/check?permission=deploy&scope={env}"))
        .await
        .json();
    assert_eq!(r["allowed"], true);
    assert_eq!(
        again.get("/v1/orgs/victim/apps/web").await.json()["envs"],
        json!(["prod"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_page_with_signed_cursors_and_org_auditors_see_only_their_entries() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let w = world(&s).await;
    let victim_admin = org_admin(&s, &w.op, "victim").await;
    // Five more scopes to page through.
    for i in 0..5 {
        let r =
            w.op.post("/v1/orgs/victim/apps", json!({"name": format!("app{i}")}))
                .await;
        assert_eq!(r.status, 201);
    }
    let sub = victim_admin.get("/v1/authz/lookup").await.json()["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..5 {
        let r = w
            .op
            .post("/v1/orgs/victim/relations", json!({"scope": format!("org/victim/app/app{i}"), "relation": "viewer", "subject": sub}))
            .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/authz/lookup?limit=2".to_owned(),
            Some(c) => format!("/v1/authz/lookup?limit=2&cursor={c}"),
        };
        let v = victim_admin.get(&path).await.json();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["scope"].as_str().unwrap().to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "pages are ordered and do not repeat");
    assert_eq!(seen.len(), 8, "org, 5 apps, web, web/prod: {seen:?}");
    // A tampered cursor, or one issued for another subject, is refused.
    let v = victim_admin.get("/v1/authz/lookup?limit=1").await.json();
    let c = v["next_cursor"].as_str().unwrap().to_owned();
    let mut forged = c.clone();
    forged.insert(3, 'x');
    let r = victim_admin
        .get(&format!("/v1/authz/lookup?limit=1&cursor={forged}"))
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_cursor"));
    let r =
        w.op.get(&format!("/v1/authz/lookup?limit=1&cursor={c}"))
            .await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_cursor"));
    // A query that does not parse is a problem too (no framework text, no echo).
    let r = victim_admin.get("/v1/authz/lookup?limit=zqxj").await;
    assert_eq!((r.status, r.code().as_str()), (400, "bad_request"));
    assert!(!String::from_utf8_lossy(&r.body).contains("zqxj"));
    // limit is clamped to 1..=200.
    assert_eq!(
        victim_admin.get("/v1/authz/lookup?limit=0").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        victim_admin
            .get("/v1/authz/lookup?limit=100000")
            .await
            .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        8
    );

    // An org auditor reads its org's entries, each with a seq whose inclusion proof the
    // public endpoint serves; another org's entries are not there.
    let r = victim_admin
        .get("/v1/orgs/victim/audit/entries?limit=200")
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.len() > 5);
    assert!(entries.iter().all(|e| e["org"] == "victim"));
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]));
    let size = v["tree_size"].as_u64().unwrap();
    let proof = s
        .get(&format!(
            "/v1/audit/proof/inclusion?index={}&size={size}",
            seqs[0]
        ))
        .await;
    assert_eq!(proof.status, 200);
    assert_eq!(
        victim_admin
            .get("/v1/orgs/attacker/audit/entries")
            .await
            .status,
        403
    );

    // Entry bundles: instance auditors only.
    let bundle = "/v1/audit/log/tile/entries/000.p/1";
    assert_eq!(s.get(bundle).await.status, 401);
    assert_eq!(victim_admin.get(bundle).await.status, 403);
    let r = w.op.get(bundle).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_once_and_principal_lifecycle() {
    let s = Server::start(&[]);
    let (id, secret) = s.bootstrap("none");
    // Once only.
    let out = std::process::Command::new(common::BIN)
        .args(["admin", "bootstrap", "--json", "--data-dir"])
        .arg(&s.dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already_exists"));
    // The secret is nowhere on disk: the journal holds an Argon2id hash.
    let db = std::fs::read(s.dir.join("journal.db")).unwrap();
    let wal = std::fs::read(s.dir.join("journal.db-wal")).unwrap_or_default();
    let needle = secret.as_bytes();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the secret is on disk"
        );
    }
    assert!(
        [&db, &wal]
            .iter()
            .any(|b| b.windows(9).any(|w| w == b"$argon2id"))
    );

    let op = s.token(&id, &secret, "admin read", None).await;
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "acme"})).await.status,
        201
    );
    let r = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "service", "name": "ci", "token_binding": "none"}),
        )
        .await;
    let (cid, first) = (
        r.json()["client_id"].as_str().unwrap().to_owned(),
        r.json()["client_secret"].as_str().unwrap().to_owned(),
    );
    let shown = op.get(&format!("/v1/orgs/acme/principals/{cid}")).await;
    assert_eq!(shown.json()["has_client_secret"], true);
    let text = String::from_utf8_lossy(&shown.body).to_string();
    assert!(!text.contains("argon2") && !text.contains(&first), "{text}");
    // Rotation: the old secret stops working, the new one works.
    let r = op
        .post(
            &format!("/v1/orgs/acme/principals/{cid}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let second = r.json()["client_secret"].as_str().unwrap().to_owned();
    let form = |sec: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", cid.clone()),
            ("client_secret", sec.to_owned()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let b: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.token_request(&b, &[]).await
        }
    };
    assert_eq!(send(form(&first)).await.status, 401);
    assert_eq!(send(form(&second)).await.status, 200);
    // Users are placeholders without credentials.
    let u = op
        .post(
            "/v1/orgs/acme/principals",
            json!({"kind": "user", "name": "Ada"}),
        )
        .await;
    assert_eq!(u.status, 201);
    assert!(u.json()["id"].as_str().unwrap().starts_with("usr_"));
    assert!(u.json().get("client_secret").is_none());
    // Binding changes are journaled and take effect at the next token request.
    let r = op
        .post(
            &format!("/v1/orgs/acme/principals/{cid}/token-binding"),
            json!({"token_binding": "dpop"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = send(form(&second)).await;
    assert_eq!(r.json()["error"], "invalid_dpop_proof");
    // Deletion: the principal's tokens and credentials stop.
    let r = op
        .call("DELETE", &format!("/v1/orgs/acme/principals/{cid}"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(send(form(&second)).await.status, 401);
    assert_eq!(
        op.get(&format!("/v1/orgs/acme/principals/{cid}"))
            .await
            .status,
        404
    );
}

/// The `denied` entries of an org's audit log (every page).
async fn denied_entries(op: &Session<'_>, org: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let r = op
            .get(&format!(
                "/v1/orgs/{org}/audit/entries?limit=200&from={from}"
            ))
            .await;
        assert_eq!(r.status, 200);
        let v = r.json();
        out.extend(
            v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["outcome"] == "denied")
                .cloned(),
        );
        match v["next_from"].as_u64() {
            Some(next) => from = next,
            None => return out,
        }
    }
}
