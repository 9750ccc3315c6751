//! Node helpers: enrol with the real agent, talk to the node API over mTLS.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;

use super::{Response, Server};

/// The node API's address, from the server's log.
pub fn node_addr(s: &Server) -> SocketAddr {
    s.await_logs("node api listening", 1, |_| true)[0]["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Registers `node` in `org`, mints a join token and enrols it with `bulwark agent enroll`
/// into `dir/<node>`; its (chain, key) PEMs.
pub async fn enrolled(
    s: &Server,
    op: &super::oauth::Session<'_>,
    org: &str,
    node: &str,
    dir: &Path,
) -> (String, String) {
    assert_eq!(
        op.post(&format!("/v1/orgs/{org}/nodes"), json!({"name": node}))
            .await
            .status,
        201
    );
    let r = op
        .post(
            &format!("/v1/orgs/{org}/nodes/{node}/join-tokens"),
            json!({}),
        )
        .await;
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let agent = dir.join(node);
    let out = Command::new(super::BIN)
        .args(["agent", "enroll", "--server", &s.url(""), "--ca"])
        .arg(s.dir.join("ca.pem"))
        .args(["--token", &token, "--dir"])
        .arg(&agent)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(agent.join("node.pem")).unwrap(),
        std::fs::read_to_string(agent.join("node.key")).unwrap(),
    )
}

/// An open HTTP/1.1 connection to the node API (or `None` if the handshake failed).
pub struct NodeConn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl NodeConn {
    /// Connects presenting the client certificate in `cfg`.
    pub async fn open(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Option<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .ok()?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .ok()?;
        tokio::spawn(conn);
        Some(Self { sender })
    }

    /// One request on this connection (`None` if the connection failed).
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Option<Response> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(body)).unwrap();
        self.sender.ready().await.ok()?;
        let resp = self.sender.send_request(req).await.ok()?;
        Some(super::collect(resp).await)
    }
}

/// One request on a fresh connection presenting the client certificate in `cfg`.
pub async fn node_call(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Option<Response> {
    NodeConn::open(addr, cfg)
        .await?
        .call(method, path, body)
        .await
}

/// `GET path` on a fresh connection.
pub async fn node_get(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
) -> Option<Response> {
    node_call(addr, cfg, "GET", path, None).await
}
