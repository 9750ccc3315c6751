//! A measuring instrument, not a product: serves `GET /healthz` on Bulwark's own TLS accept
//! loop, either through the full hardening stack or bare, so that `bench/` can measure
//! what the stack costs end to end (same listener, same TLS, same route).
//!
//! `healthz_server CERT_PEM KEY_PEM ADDR [--bare]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bulwark_http::{Hardening, Limits, harden, route_label};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, cert, key, addr, rest @ ..] = args.as_slice() else {
        eprintln!("usage: healthz_server CERT_PEM KEY_PEM ADDR [--bare]");
        std::process::exit(2);
    };
    let bare = rest.iter().any(|a| a == "--bare");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let _metrics = bulwark_http::metrics::install().unwrap();
        let certs = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tls.alpn_protocols = bulwark_http::listener::ALPN
            .iter()
            .map(|p| p.to_vec())
            .collect();
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(tls));
        let limits = Limits {
            rate_per_second: 100_000,
            rate_burst: 100_000,
            ..Limits::default()
        };
        let app = Router::new().route("/healthz", get(|| async { r#"{"status":"ok"}"# }));
        let app = if bare {
            app
        } else {
            harden(route_label(app), Hardening::new(limits.clone()))
        };
        let listener = tokio::net::TcpListener::bind(addr.as_str()).await.unwrap();
        bulwark_http::listener::serve_tls(listener, rx, app, &limits, None, std::future::pending())
            .await;
    });
}
