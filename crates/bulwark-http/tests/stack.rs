//! The hardening stack in process: honest encoded bodies reach the route decoded, with the
//! coding header gone; refusals are problems with the request id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use bulwark_http::{Hardening, Limits, PeerAddr, harden, route_label};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

fn app() -> Router {
    let echo = post(|headers: http::HeaderMap, body: Bytes| async move {
        let coding = headers
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        format!("{}|{}", coding, String::from_utf8_lossy(&body))
    });
    harden(
        route_label(Router::new().route("/echo", echo)),
        Hardening::new(Limits::default()),
    )
}

async fn send(req: http::Request<Body>) -> (u16, http::HeaderMap, Bytes) {
    let mut req = req;
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from(([127, 0, 0, 1], 1))));
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (
        status,
        headers,
        resp.into_body().collect().await.unwrap().to_bytes(),
    )
}

fn encoded(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zstd" => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
        _ => data.to_vec(),
    }
}

#[tokio::test]
async fn honest_encoded_bodies_reach_the_route_decoded() {
    let text = "a body that does not compress all that well: 8f3a91c2 51be07d4";
    for coding in ["gzip", "deflate", "zstd", "identity"] {
        let req = http::Request::post("/echo")
            .header("content-encoding", coding)
            .body(Body::from(encoded(coding, text.as_bytes())))
            .unwrap();
        let (status, _, body) = send(req).await;
        assert_eq!(status, 200, "{coding}");
        let body = String::from_utf8(body.to_vec()).unwrap();
        let expected_header = if coding == "identity" { "identity" } else { "" };
        assert_eq!(body, format!("{expected_header}|{text}"), "{coding}");
    }
}

#[tokio::test]
async fn refusals_carry_the_request_id_and_problem_type() {
    let req = http::Request::post("/echo")
        .header("content-encoding", "gzip")
        .header("x-request-id", "req-42")
        .body(Body::from(encoded("gzip", &vec![0u8; 1 << 20])))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, 413);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["x-request-id"], "req-42");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "decompression_cap");
    assert_eq!(v["request_id"], "req-42");
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_are_refused() {
    let req = http::Request::post("/echo")
        .header("transfer-encoding", "gzip, chunked")
        .body(Body::from("x"))
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, 415);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "encoding_unsupported");
}
