//! The API's shared contract: problem responses, request ids, HTTP/2, health and version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::Server;
use http_body_util::{BodyExt as _, Empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_rfc9457_problems_with_the_request_id() {
    let s = Server::start(&[]);
    let r = s
        .request(
            http::Request::get("/v1/nowhere")
                .header("host", "localhost")
                .header("x-request-id", "client-abc.1")
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.headers["x-request-id"], "client-abc.1");
    let p = r.json();
    for k in [
        "type",
        "title",
        "status",
        "detail",
        "code",
        "request_id",
        "retryable",
    ] {
        assert!(p.get(k).is_some(), "missing {k}");
    }
    assert_eq!(p["type"], "urn:bulwark:problem:not_found");
    assert_eq!(p["status"], 404);
    assert_eq!(p["request_id"], "client-abc.1");

    let r = s
        .request(
            http::Request::delete("/healthz")
                .header("host", "localhost")
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "method_not_allowed");
    // Every route of the table, not only health's (the 405 fallback applies to the whole
    // plane): a wrong method on a tenant or public route is a 405 problem too.
    for path in ["/v1/orgs", "/v1/pki/ca", "/oauth2/token"] {
        let r = s
            .request(
                http::Request::delete(path)
                    .header("host", "localhost")
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (405, "method_not_allowed"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_id_is_replaced_not_echoed() {
    let s = Server::start(&[]);
    let evil = format!("{}\"}}<script>", "x".repeat(200));
    let r = s
        .request(
            http::Request::get("/healthz")
                .header("host", "localhost")
                .header("x-request-id", evil.as_str())
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_ne!(id, evil);
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_health_version_and_metrics() {
    let s = Server::start(&[]);
    let mut h2 = s.h2().await;
    let req = http::Request::get(format!("https://localhost:{}/version", s.addr.port()))
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
        .unwrap();
    let r = common::collect(h2.send_request(req).await.unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "bulwark");
    assert_eq!(r.json()["version"], env!("CARGO_PKG_VERSION"));

    assert_eq!(s.get("/healthz").await.json()["status"], "ok");
    assert_eq!(s.get("/readyz").await.json()["status"], "ready");
    let m = String::from_utf8(s.get("/metrics").await.body.to_vec()).unwrap();
    for name in [
        "http_requests_total{",
        "request_latency_seconds_bucket",
        "inflight_requests",
        "tls_handshake_failures_total",
        "integrity_fail_total",
    ] {
        assert!(m.contains(name), "metrics lack {name}");
    }
    assert!(m.contains(r#"http_requests_total{route="/version",method="GET",status="200"}"#));
}
