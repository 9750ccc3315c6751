//! The signed event bus against the running server: publish over the API, receive over
//! SSE on the mTLS node API, verify each envelope with the org's published keys, resume
//! with `Last-Event-ID` exactly once and in order; the gate refuses forged, misaddressed,
//! replayed, stale, foreign-org and rotated-out envelopes; a gate missing any of its five
//! ports answers 501; a quarantined node's stream is closed and cannot reopen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bulwark_events::{Envelope, KeyRing, PublishedKey, Unsigned};
use bytes::Bytes;
use common::Server;
use common::node::{enrolled, node_addr, node_get};
use http_body_util::{BodyExt as _, Full};
use serde_json::json;

struct SseEvent {
    id: u64,
    event: String,
    data: String,
}

struct Stream {
    body: hyper::body::Incoming,
    buf: String,
}

impl Stream {
    /// The next event (keep-alive comments skipped), `None` when the stream ends or
    /// nothing comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return Some(SseEvent { id, event, data });
                }
                continue;
            }
            let frame = tokio::time::timeout(wait, self.body.frame())
                .await
                .ok()??
                .ok()?;
            if let Ok(d) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&d));
            }
        }
    }
}

/// Opens `GET path` on the node API; the stream, or the status and problem code.
async fn open(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
    last_event_id: Option<&str>,
) -> Result<Stream, (u16, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .map_err(|_| (0, "handshake".to_owned()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|_| (0, "handshake".to_owned()))?;
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", "localhost");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .map_err(|_| (0, "refused".to_owned()))?;
    if resp.status() != 200 {
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        return Err((status, v["code"].as_str().unwrap_or_default().to_owned()));
    }
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Ok(Stream {
        body: resp.into_body(),
        buf: String::new(),
    })
}

async fn setup(
    s: &Server,
) -> (
    common::oauth::Session<'_>,
    Arc<rustls::ClientConfig>,
    tempfile::TempDir,
) {
    let (id, secret) = s.bootstrap("none");
    setup_with(s, &id, &secret).await
}

async fn setup_with<'a>(
    s: &'a Server,
    id: &str,
    secret: &str,
) -> (
    common::oauth::Session<'a>,
    Arc<rustls::ClientConfig>,
    tempfile::TempDir,
) {
    let op = s.token(id, secret, "admin read", None).await;
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "acme"})).await.status,
        201
    );
    let tmp = tempfile::tempdir().unwrap();
    let (chain, key) = enrolled(s, &op, "acme", "n1", tmp.path()).await;
    enrolled(s, &op, "acme", "n2", tmp.path()).await;
    (op, s.tls_config_with_cert(&chain, &key), tmp)
}

async fn ring_of(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> KeyRing {
    let r = node_get(addr, cfg, "/v1/nodes/n1/event-keys")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let keys: Vec<PublishedKey> = serde_json::from_value(r.json()["keys"].clone()).unwrap();
    KeyRing::from_published(keys)
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_signed_and_resume_exactly_once_in_order() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let node = node_addr(&s);
    let (op, cfg, _tmp) = setup(&s).await;

    let mut live = open(node, cfg.clone(), "/v1/nodes/n1/events", None)
        .await
        .ok()
        .unwrap();
    let r = op
        .post(
            "/v1/orgs/acme/nodes/n1/events",
            json!({"type": "secrets.changed", "payload": {"name": "db"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let seq = r.json()["seq"].as_u64().unwrap();
    let ev = live
        .next(Duration::from_secs(5))
        .await
        .expect("the live event");
    assert_eq!((ev.id, ev.event.as_str()), (seq, "secrets.changed"));
    // The agent's own check passes with the keys the server publishes to the node.
    let env = Envelope::parse(ev.data.as_bytes()).unwrap();
    let ring = ring_of(node, cfg.clone()).await;
    let cache = bulwark_events::gate::NonceCache::new(1000);
    assert_eq!(
        bulwark_events::gate::admit_at_agent(&env, ("acme", "n1"), &ring, &cache, now()),
        Ok(())
    );
    assert_eq!(env.payload, json!({"name": "db"}));
    drop(live);

    // Disconnected: 100 events, then resume after the last one seen.
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
    // Events for another node are not in n1's stream.
    op.post(
        "/v1/orgs/acme/nodes/n2/events",
        json!({"type": "test.other"}),
    )
    .await;
    let mut resumed = open(
        node,
        cfg.clone(),
        "/v1/nodes/n1/events",
        Some(&seq.to_string()),
    )
    .await
    .ok()
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..100 {
        let ev = resumed
            .next(Duration::from_secs(5))
            .await
            .expect("a resumed event");
        let env = Envelope::parse(ev.data.as_bytes()).unwrap();
        assert_eq!(env.node, "n1");
        got.push((ev.id, env.payload["i"].as_i64().unwrap()));
    }
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        seqs,
        "all 100, in order"
    );
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    assert!(
        resumed.next(Duration::from_millis(300)).await.is_none(),
        "exactly once"
    );
    // And live again after the backlog.
    op.post(
        "/v1/orgs/acme/nodes/n1/events",
        json!({"type": "test.after"}),
    )
    .await;
    let ev = resumed.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev.event, "test.after");

    // Cursors that are not integers; another node's stream.
    for bad in ["abc", "-1", "1.5", ""] {
        assert_eq!(
            open(node, cfg.clone(), "/v1/nodes/n1/events", Some(bad))
                .await
                .err(),
            Some((400, "invalid_cursor".to_owned())),
            "{bad:?}"
        );
    }
    assert_eq!(
        open(node, cfg.clone(), "/v1/nodes/n2/events", None)
            .await
            .err(),
        Some((403, "node_mismatch".to_owned()))
    );

    // Quarantine closes the open stream; it cannot reopen.
    let mut open_stream = open(node, cfg.clone(), "/v1/nodes/n1/events", None)
        .await
        .ok()
        .unwrap();
    assert_eq!(
        op.post("/v1/orgs/acme/nodes/n1/quarantine", json!({}))
            .await
            .status,
        200
    );
    // The node is told first (signed), then its stream is closed.
    let told = open_stream
        .next(Duration::from_secs(5))
        .await
        .expect("node.quarantine");
    assert_eq!(told.event, "node.quarantine");
    assert!(
        open_stream.next(Duration::from_secs(5)).await.is_none(),
        "closed"
    );
    assert!(open(node, cfg, "/v1/nodes/n1/events", None).await.is_err());
    // Publishing to a quarantined node is refused by the gate.
    let r = op
        .post("/v1/orgs/acme/nodes/n1/events", json!({"type": "x"}))
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "event_refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_refuses_forged_misaddressed_replayed_stale_foreign_and_retired_envelopes() {
    let s = Server::start(&["--rate-limit-rps", "0"]);
    let (op, _cfg, tmp) = setup(&s).await;
    assert_eq!(
        op.post("/v1/orgs", json!({"name": "beta"})).await.status,
        201
    );
    enrolled(&s, &op, "beta", "b1", tmp.path()).await;
    // First publications make each org's key; a relaying part holds the org's key (here,
    // read from the data directory).
    for path in [
        "/v1/orgs/acme/nodes/n1/events",
        "/v1/orgs/beta/nodes/b1/events",
    ] {
        assert_eq!(op.post(path, json!({"type": "init"})).await.status, 201);
    }
    let keys: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(s.dir.join("event-keys.json")).unwrap())
            .unwrap();
    let acme = bulwark_crypto::SigningKey::decode(keys["acme"].last().unwrap()).unwrap();
    let beta = bulwark_crypto::SigningKey::decode(keys["beta"].last().unwrap()).unwrap();
    let sign = |org: &str, node: &str, at: i64, key: &bulwark_crypto::SigningKey| {
        Unsigned::new("r1", "secrets.changed", org, node, at, json!({"n": 1}))
            .unwrap()
            .sign(key)
            .unwrap()
    };
    let relay = |env: &Envelope| {
        let env = serde_json::to_value(env).unwrap();
        let op = &op;
        async move {
            let r = op
                .post("/v1/orgs/acme/nodes/n1/events", json!({"envelope": env}))
                .await;
            (
                r.status,
                r.code(),
                String::from_utf8_lossy(&r.body).to_string(),
            )
        }
    };
    let good = sign("acme", "n1", now(), &acme);
    assert_eq!(relay(&good).await.0, 201);
    let refused = |why: &str| (403u16, "event_refused".to_owned(), why.to_owned());
    let check = |got: (u16, String, String), why: &str| {
        let want = refused(why);
        assert_eq!((got.0, got.1.clone()), (want.0, want.1), "{why}: {}", got.2);
        assert!(got.2.contains(why), "{why}: {}", got.2);
    };
    check(relay(&good).await, "replayed");
    let mut forged = sign("acme", "n1", now(), &acme);
    forged.payload = json!({"n": 2});
    check(relay(&forged).await, "bad_signature");
    check(
        relay(&sign("acme", "n2", now(), &acme)).await,
        "wrong_recipient",
    );
    check(
        relay(&sign("acme", "n1", now() - 600, &acme)).await,
        "stale",
    );
    check(
        relay(&sign("acme", "n1", now(), &beta)).await,
        "unknown_key",
    );
    // An emergency rotation (no transition): the old key is refused at once.
    let r = op
        .post(
            "/v1/orgs/acme/event-keys/rotate",
            json!({"transition_secs": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    check(
        relay(&sign("acme", "n1", now(), &acme)).await,
        "key_retired",
    );
    // The server signs with the new key.
    assert_eq!(
        op.post("/v1/orgs/acme/nodes/n1/events", json!({"type": "after"}))
            .await
            .status,
        201
    );
    assert!(s.metric(r#"events_refused_total{reason="replayed"}"#).await >= 1.0);
    // Only the server sends node.quarantine (as part of a real quarantine).
    let r = op
        .post(
            "/v1/orgs/acme/nodes/n1/events",
            json!({"type": "node.quarantine"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let keys_now = || -> std::collections::BTreeMap<String, Vec<String>> {
        serde_json::from_str(&std::fs::read_to_string(s.dir.join("event-keys.json")).unwrap())
            .unwrap()
    };
    let current = bulwark_crypto::SigningKey::decode(keys_now()["acme"].last().unwrap()).unwrap();
    let mut q = sign("acme", "n1", now(), &current).unsigned();
    q.kind = "node.quarantine".into();
    assert_eq!(relay(&q.sign(&current).unwrap()).await.0, 400);
    // A compromise rotation erased the old private key from the data directory.
    assert_eq!(keys_now()["acme"].len(), 1);
    // Numbers that would sign alike are refused.
    let r = op
        .post(
            "/v1/orgs/acme/nodes/n1/events",
            json!({"type": "t", "payload": {"n": 1.5}}),
        )
        .await;
    assert_eq!(r.status, 400);
    // Malformed envelopes are 400, unknown fields included.
    let mut v = serde_json::to_value(&good).unwrap();
    v["extra"] = json!(1);
    let r = op
        .post("/v1/orgs/acme/nodes/n1/events", json!({"envelope": v}))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_missing_any_port_answers_501() {
    for port in ["signature", "replay", "staleness", "relation", "node"] {
        let data = tempfile::tempdir().unwrap();
        let s = Server::start_in(
            &data.path().join("data"),
            &["--rate-limit-rps", "0"],
            &[("BULWARK_TEST_UNWIRE_EVENT_PORT", port)],
        );
        let node = node_addr(&s);
        let (op, cfg, _tmp) = setup(&s).await;
        assert_eq!(
            open(node, cfg, "/v1/nodes/n1/events", None).await.err(),
            Some((501, "signed_event_bus_not_provisioned".to_owned())),
            "{port}"
        );
        let r = op
            .post("/v1/orgs/acme/nodes/n1/events", json!({"type": "x"}))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (501, "signed_event_bus_not_provisioned"),
            "{port}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_envelope_cannot_be_replayed_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    let (id, secret) = s.bootstrap("none");
    let (op, _cfg, _tmp) = setup_with(&s, &id, &secret).await;
    assert_eq!(
        op.post("/v1/orgs/acme/nodes/n1/events", json!({"type": "init"}))
            .await
            .status,
        201
    );
    let keys: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("event-keys.json")).unwrap())
            .unwrap();
    let acme = bulwark_crypto::SigningKey::decode(keys["acme"].last().unwrap()).unwrap();
    let env = Unsigned::new("r1", "secrets.changed", "acme", "n1", now(), json!({}))
        .unwrap()
        .sign(&acme)
        .unwrap();
    let body = json!({"envelope": serde_json::to_value(&env).unwrap()});
    assert_eq!(
        op.post("/v1/orgs/acme/nodes/n1/events", body.clone())
            .await
            .status,
        201
    );
    drop(op);
    s.stop();
    let s = Server::start_in(&dir, &["--rate-limit-rps", "0"], &[]);
    let op = s.token(&id, &secret, "admin read", None).await;
    let r = op.post("/v1/orgs/acme/nodes/n1/events", body).await;
    assert_eq!((r.status, r.code().as_str()), (403, "event_refused"));
    assert!(String::from_utf8_lossy(&r.body).contains("replayed"));
}
