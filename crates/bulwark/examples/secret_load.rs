//! A closed-loop HTTPS load generator for the secrets benchmark (bench/secrets-vs-openbao.sh):
//! `CONNS` keep-alive HTTP/1.1 connections, each sending its next request as soon as the
//! previous one answers, for `DURATION` seconds; prints one JSON line with requests/s and
//! latency percentiles. The same client drives Bulwark and OpenBao, so the comparison does
//! not depend on two tools. In `bulwark-dpop` mode it signs a fresh DPoP proof (EdDSA) per
//! request, on the client's share of the same cores.
//!
//! cargo run --release -p bulwark --example secret_load -- MODE OP BASE_URL CA_PEM TOKEN [CONNS] [DURATION] [KEYS]
//!   MODE: bulwark-bearer | bulwark-dpop | openbao        OP: read | write | seed | sign | handshake
//!   `handshake`: a new connection per request to BASE_URL's path (full TLS handshakes,
//!   no resumption), presenting CLIENT_CERT/CLIENT_KEY (PEM files) if set; TOKEN unused. | sign
//!   For bulwark-dpop, TOKEN is `<client_id>:<client_secret>`: the generator makes its own
//!   Ed25519 key and gets a DPoP-bound token (with the nonce dance) first.
//!   `seed` writes k0..k<KEYS-1> once each and exits.
//!   `sign` (bench/certs-vs-openbao.sh) has the CSR in PEM read from the file named by
//!   `CSR_FILE` signed, the same CSR every time: OpenBao `POST /v1/pki/sign/bench` (200),
//!   Bulwark `POST /v1/orgs/bench/certificates` for service `web` (201); any other status
//!   is an error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

struct Target {
    mode: String,
    op: String,
    host: String,
    port: u16,
    token: String,
    key: Option<Ed25519KeyPair>,
    keys: usize,
    /// The `sign` request body, built once.
    sign_body: Bytes,
}

impl Target {
    fn request(&self, n: usize) -> http::Request<Full<Bytes>> {
        let k = n % self.keys;
        let (method, path, body) = match (self.mode.as_str(), self.op.as_str()) {
            ("openbao", "sign") => (
                "POST",
                "/v1/pki/sign/bench".to_owned(),
                self.sign_body.clone(),
            ),
            (_, "sign") => (
                "POST",
                "/v1/orgs/bench/certificates".to_owned(),
                self.sign_body.clone(),
            ),
            ("openbao", "read") => ("GET", format!("/v1/secret/data/bench/k{k}"), Bytes::new()),
            ("openbao", _) => (
                "POST",
                format!("/v1/secret/data/bench/k{k}"),
                Bytes::from(format!(r#"{{"data":{{"v":"value-{n}"}}}}"#)),
            ),
            (_, "read") => (
                "GET",
                format!("/v1/orgs/bench/apps/web/envs/prod/secrets/k{k}"),
                Bytes::new(),
            ),
            _ => (
                "PUT",
                format!("/v1/orgs/bench/apps/web/envs/prod/secrets/k{k}"),
                Bytes::from(format!(
                    r#"{{"value":"{}"}}"#,
                    STANDARD.encode(format!("value-{n}"))
                )),
            ),
        };
        let mut b = http::Request::builder()
            .method(method)
            .uri(&path)
            .header("host", format!("{}:{}", self.host, self.port));
        match self.mode.as_str() {
            "openbao" => b = b.header("x-vault-token", &self.token),
            "bulwark-bearer" => b = b.header("authorization", format!("Bearer {}", self.token)),
            _ => {
                let key = self.key.as_ref().unwrap();
                let mut jti = [0u8; 16];
                aws_lc_rs::rand::fill(&mut jti).unwrap();
                let header = serde_json::json!({"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x": b64(key.public_key().as_ref())}});
                let iat = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let ath = b64(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    self.token.as_bytes(),
                )
                .as_ref());
                let claims = serde_json::json!({"jti": b64(&jti), "htm": method, "htu": format!("https://{}:{}{path}", self.host, self.port), "iat": iat, "ath": ath});
                let input = format!(
                    "{}.{}",
                    b64(header.to_string().as_bytes()),
                    b64(claims.to_string().as_bytes())
                );
                let sig = key.sign(input.as_bytes());
                b = b
                    .header("authorization", format!("DPoP {}", self.token))
                    .header("dpop", format!("{input}.{}", b64(sig.as_ref())));
            }
        }
        if !body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        b.body(Full::new(body)).unwrap()
    }

    /// Whether an answer counts as a success: `sign` wants exactly OpenBao's 200 or
    /// Bulwark's 201, the other ops any 2xx.
    fn succeeded(&self, status: http::StatusCode) -> bool {
        match (self.mode.as_str(), self.op.as_str()) {
            ("openbao", "sign") => status == http::StatusCode::OK,
            (_, "sign") => status == http::StatusCode::CREATED,
            _ => status.is_success(),
        }
    }
}

fn connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    tls_connector(ca_pem, None)
}

/// A connector trusting `ca_pem`, presenting `identity` (chain PEM, key PEM) if given,
/// without session resumption (every connection a full handshake).
fn tls_connector(ca_pem: &str, identity: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(chain.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// `handshake`: a new connection (full TLS handshake, the client certificate from
/// CLIENT_CERT/CLIENT_KEY if set) and one `GET path` per iteration; any HTTP answer counts
/// (it proves the server finished the handshake and judged the certificate).
async fn handshakes(
    connector: tokio_rustls::TlsConnector,
    host: String,
    port: u16,
    path: String,
    deadline: Instant,
) -> (Vec<Duration>, u64) {
    let mut lat = Vec::new();
    let mut errors = 0u64;
    while Instant::now() < deadline {
        let t = Instant::now();
        let ok = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .ok()?;
            let tls = connector
                .connect(ServerName::try_from(host.clone()).unwrap(), tcp)
                .await
                .ok()?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .ok()?;
            tokio::spawn(conn);
            let req = http::Request::get(path.as_str())
                .header("host", format!("{host}:{port}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = sender.send_request(req).await.ok()?;
            let _ = resp.into_body().collect().await;
            Some(())
        }
        .await;
        match ok {
            Some(()) => lat.push(t.elapsed()),
            None => errors += 1,
        }
    }
    (lat, errors)
}

/// A DPoP proof for the token request.
fn token_proof(key: &Ed25519KeyPair, htu: &str, nonce: Option<&str>) -> String {
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti).unwrap();
    let header = serde_json::json!({"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x": b64(key.public_key().as_ref())}});
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = serde_json::json!({"jti": b64(&jti), "htm": "POST", "htu": htu, "iat": iat});
    if let Some(n) = nonce {
        claims["nonce"] = n.into();
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}

/// A DPoP-bound token by client secret, answering the nonce challenge.
async fn dpop_token(
    c: &tokio_rustls::TlsConnector,
    host: &str,
    port: u16,
    id: &str,
    secret: &str,
    key: &Ed25519KeyPair,
) -> String {
    let htu = format!("https://{host}:{port}/oauth2/token");
    let mut nonce: Option<String> = None;
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect((host, port)).await.unwrap();
        let tls = c
            .connect(ServerName::try_from(host.to_owned()).unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("/oauth2/token")
            .header("host", format!("{host}:{port}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            )
            .header("dpop", token_proof(key, &htu, nonce.as_deref()))
            .body(Full::new(Bytes::from(
                "grant_type=client_credentials&scope=secrets%3Aread%20secrets%3Awrite",
            )))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let n = resp
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["error"] == "use_dpop_nonce" {
            nonce = n;
            continue;
        }
        return v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {v}"))
            .to_owned();
    }
    panic!("no token after the nonce dance");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, op, base, ca, token) = (&args[1], &args[2], &args[3], &args[4], &args[5]);
    let conns: usize = args.get(6).map_or(64, |v| v.parse().unwrap());
    let secs: u64 = args.get(7).map_or(10, |v| v.parse().unwrap());
    let keys: usize = args.get(8).map_or(1000, |v| v.parse().unwrap());
    let uri: http::Uri = base.parse().unwrap();
    let ca_pem = std::fs::read_to_string(ca).unwrap();
    let connector = connector(&ca_pem);
    let host = uri.host().unwrap().to_owned();
    let port = uri.port_u16().unwrap();
    let (token, key) = if mode == "bulwark-dpop" {
        let (id, secret) = token.split_once(':').unwrap();
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let t = dpop_token(&connector, &host, port, id, secret, &key).await;
        (t, Some(key))
    } else {
        (token.clone(), None)
    };
    let sign_body = if op == "sign" {
        let path = std::env::var("CSR_FILE").expect("CSR_FILE names the CSR (PEM) for `sign`");
        let csr = std::fs::read_to_string(&path).unwrap();
        let body = if mode == "openbao" {
            serde_json::json!({"csr": csr, "common_name": "web.bench.internal", "ttl": "24h"})
        } else {
            serde_json::json!({"csr": csr, "service": "web"})
        };
        Bytes::from(body.to_string())
    } else {
        Bytes::new()
    };
    let target = Arc::new(Target {
        mode: mode.clone(),
        op: op.clone(),
        host,
        port,
        token,
        key,
        keys,
        sign_body,
    });
    let seed = op == "seed";
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    if op == "handshake" {
        let cert = std::env::var("CLIENT_CERT")
            .ok()
            .map(|p| std::fs::read_to_string(p).unwrap());
        let key = std::env::var("CLIENT_KEY")
            .ok()
            .map(|p| std::fs::read_to_string(p).unwrap());
        let identity = cert.as_deref().zip(key.as_deref());
        let c = tls_connector(&ca_pem, identity);
        let path = uri.path().to_owned();
        for _ in 0..conns {
            let (c, host, path) = (c.clone(), target.host.clone(), path.clone());
            tasks.push(tokio::spawn(handshakes(
                c,
                host,
                target.port,
                path,
                deadline,
            )));
        }
    }
    for c in 0..conns {
        if op == "handshake" {
            break;
        }
        let (target, connector) = (target.clone(), connector.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .unwrap();
            let tls = connector
                .connect(ServerName::try_from(target.host.clone()).unwrap(), tcp)
                .await
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut n = c * 1_000_003;
            let mut next_seed = c;
            loop {
                let req = if seed {
                    if next_seed >= target.keys {
                        break;
                    }
                    next_seed += conns;
                    target.request(next_seed - conns)
                } else {
                    if Instant::now() >= deadline {
                        break;
                    }
                    n += 1;
                    target.request(n)
                };
                let t = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let ok = target.succeeded(resp.status());
                        let _ = resp.into_body().collect().await;
                        if ok {
                            lat.push(t.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "mode": mode, "op": op, "conns": conns, "seconds": secs,
            "ok": all.len(), "errors": errors,
            "rps": all.len() as f64 / secs as f64,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        })
    );
}
