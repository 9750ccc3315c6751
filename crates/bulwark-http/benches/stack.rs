//! What the hardening stack costs per request, in process (no sockets): `GET /healthz`
//! through the bare router versus through `harden(..)` with every layer active (rate
//! limiter keyed by peer, in-flight permit, timeout, body guard, request id, metrics).
//!
//! `cargo bench -p bulwark-http --bench stack`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bulwark_http::{Hardening, Limits, PeerAddr, harden, route_label};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt as _;

fn app() -> Router {
    Router::new().route("/healthz", get(|| async { r#"{"status":"ok"}"# }))
}

fn request() -> http::Request<Body> {
    let mut req = http::Request::get("/healthz").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from(([127, 0, 0, 1], 40000))));
    req
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Install a real recorder so the metrics calls do real work, as in the server.
    let _handle = rt.block_on(async { bulwark_http::metrics::install().unwrap() });
    let bare = app();
    let limits = Limits {
        rate_per_second: 1_000_000_000,
        rate_burst: 1_000_000_000,
        ..Limits::default()
    };
    let hardened = harden(route_label(app()), Hardening::new(limits));

    let mut g = c.benchmark_group("healthz_in_process");
    g.bench_function("bare_router", |b| {
        b.to_async(&rt).iter(|| {
            let r = bare.clone();
            async move { r.oneshot(request()).await.unwrap() }
        });
    });
    g.bench_function("hardened_stack", |b| {
        b.to_async(&rt).iter(|| {
            let r = hardened.clone();
            async move { r.oneshot(request()).await.unwrap() }
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
