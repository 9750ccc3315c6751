//! End-to-end latency of the signed event bus with many subscribers
//! (bench/events-fanout.sh): SUBSCRIBERS SSE streams on the node API (mTLS, one enrolled
//! node's certificate), then EVENTS envelopes published one every GAP_MS over the API;
//! each subscriber verifies every envelope itself (parse, addressed to it, staleness,
//! signature under the org key ring from `/event-keys`, its own replay cache) and records
//! publish → verified. Prints one JSON line: latency percentiles over all deliveries, the
//! server's RSS before and after subscribing (from /proc/PID), deliveries and failures.
//!
//! cargo run --release -p bulwark --example event_load -- NODE_API API CA CERT KEY TOKEN SERVER_PID [SUBSCRIBERS] [EVENTS] [GAP_MS]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_events::gate::{NonceCache, admit_at_agent};
use bulwark_events::{Envelope, KeyRing, PublishedKey};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

fn connector(ca: &str, identity: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match identity {
        None => b.with_no_client_auth(),
        Some((c, k)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                rustls_pki_types::PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

async fn request(
    c: &tokio_rustls::TlsConnector,
    url: &http::Uri,
    method: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> http::Response<hyper::body::Incoming> {
    let host = url.host().unwrap().to_owned();
    let port = url.port_u16().unwrap();
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .unwrap();
    let tls = c
        .connect(ServerName::try_from(host.clone()).unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(url.path())
        .header("host", format!("{host}:{port}"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    sender
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn now_secs() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let stream_url: http::Uri = a[1].parse().unwrap();
    let api: String = a[2].clone();
    let ca = std::fs::read_to_string(&a[3]).unwrap();
    let cert = std::fs::read_to_string(&a[4]).unwrap();
    let key = std::fs::read_to_string(&a[5]).unwrap();
    let token = a[6].clone();
    let pid: u32 = a[7].parse().unwrap();
    let subscribers: usize = a.get(8).map_or(1000, |v| v.parse().unwrap());
    let events: usize = a.get(9).map_or(200, |v| v.parse().unwrap());
    let gap = Duration::from_millis(a.get(10).map_or(100, |v| v.parse().unwrap()));
    let node_c = connector(&ca, Some((&cert, &key)));
    let api_c = connector(&ca, None);
    let publish_url: http::Uri = format!("{api}/v1/orgs/bench/nodes/n1/events")
        .parse()
        .unwrap();
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_owned()),
    ];
    let publish = |i: usize| {
        let body =
            Bytes::from(serde_json::json!({"type": "bench.tick", "payload": {"i": i}}).to_string());
        request(&api_c, &publish_url, "POST", &headers, body)
    };
    // The org's key exists after a first publication; the ring comes from the node API.
    let warm = Bytes::from(r#"{"type":"bench.warmup"}"#);
    assert_eq!(
        request(&api_c, &publish_url, "POST", &headers, warm)
            .await
            .status(),
        201
    );
    let keys_url: http::Uri = stream_url
        .to_string()
        .replace("/events", "/event-keys")
        .parse()
        .unwrap();
    let resp = request(&node_c, &keys_url, "GET", &[], Bytes::new()).await;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let keys: Vec<PublishedKey> = serde_json::from_value(v["keys"].clone()).unwrap();
    let ring = Arc::new(KeyRing::from_published(keys));

    let rss_before = rss_kib(pid);
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; events]));
    let lat: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let (node_c, url, ring, sent, lat, failures, ready) = (
            node_c.clone(),
            stream_url.clone(),
            ring.clone(),
            sent.clone(),
            lat.clone(),
            failures.clone(),
            ready.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let resp = request(&node_c, &url, "GET", &[], Bytes::new()).await;
            assert_eq!(resp.status(), 200);
            ready.add_permits(1);
            let cache = NonceCache::new(100_000);
            let mut body = resp.into_body();
            let mut parser = bulwark_events::sse::Parser::new();
            let mut got = 0;
            while got < events {
                let Some(Ok(frame)) = body.frame().await else {
                    break;
                };
                let Ok(d) = frame.into_data() else { continue };
                for ev in parser.push(&d).unwrap() {
                    let env = Envelope::parse(ev.data.as_bytes()).unwrap();
                    if admit_at_agent(&env, ("bench", "n1"), &ring, &cache, now_secs()).is_err() {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    let i = env.payload["i"].as_u64().unwrap() as usize;
                    if let Some(Some(t)) = sent.lock().unwrap().get(i) {
                        lat.lock().unwrap().push(t.elapsed());
                    }
                    got += 1;
                }
            }
        }));
    }
    let _all = ready
        .acquire_many(u32::try_from(subscribers).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_subscribed = rss_kib(pid);
    let t0 = Instant::now();
    for i in 0..events {
        sent.lock().unwrap()[i] = Some(Instant::now());
        let r = publish(i).await;
        assert_eq!(r.status(), 201);
        tokio::time::sleep(gap).await;
    }
    let publish_secs = t0.elapsed().as_secs_f64();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    let mut all = lat.lock().unwrap().clone();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "subscribers": subscribers, "events": events, "gap_ms": gap.as_millis() as u64,
            "deliveries": all.len(), "expected": subscribers * events,
            "verify_failures": failures.load(std::sync::atomic::Ordering::Relaxed),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "rss_before_kib": rss_before, "rss_subscribed_kib": rss_subscribed,
            "kib_per_subscriber": (rss_subscribed.saturating_sub(rss_before)) as f64 / subscribers as f64,
            "publish_secs": publish_secs,
        })
    );
}
