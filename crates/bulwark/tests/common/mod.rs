//! Test harness: starts the real `bulwark` binary on an ephemeral port with its own data
//! directory and speaks real TLS to it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub mod node;
pub mod oauth;

pub const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub ca_pem: String,
    pub logs: Arc<Mutex<Vec<serde_json::Value>>>,
    _tmp: Option<tempfile::TempDir>,
}

pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Server {
    /// Starts `bulwark serve` with a fresh data directory and `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut s = Self::start_in(&dir, extra, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// Starts `bulwark serve --data-dir dir` with `extra` arguments and `env`.
    pub fn start_in(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra);
        let mut s = Self::spawn(cmd, env);
        s.dir = dir.to_owned();
        s.ca_pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
        s
    }

    /// Spawns a prepared command and waits for its "listening" line.
    pub fn spawn(mut cmd: Command, env: &[(&str, &str)]) -> Self {
        // Every test server's node API on a free port too (the default is fixed: 8444).
        cmd.env("BULWARK_NODE_LISTEN", "127.0.0.1:0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
                // Record the line before signalling, so that a caller woken by "listening"
                // sees it and every line before it.
                let listening = v["msg"] == "listening";
                sink.lock().unwrap().push(v.clone());
                if listening {
                    let _ = tx.send(v);
                }
            }
        });
        let listening = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start listening within 30 s");
        let addr: SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
        Server {
            child,
            addr,
            dir: PathBuf::new(),
            ca_pem: String::new(),
            logs,
            _tmp: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines so far whose `msg` equals `msg`.
    pub fn logs_with(&self, msg: &str) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["msg"] == msg)
            .cloned()
            .collect()
    }

    /// Waits (up to 5 s) until at least `n` log lines with `msg` match `pred`, then returns
    /// them: the server writes a line before it answers, but our reader thread may lag.
    pub fn await_logs(
        &self,
        msg: &str,
        n: usize,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found: Vec<_> = self
                .logs_with(msg)
                .into_iter()
                .filter(|v| pred(v))
                .collect();
            if found.len() >= n || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A TLS config presenting a client certificate (PEM chain and key).
    pub fn tls_config_with_cert(&self, cert_pem: &str, key_pem: &str) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// One HTTP/1.1 request over a connection with the given TLS config.
    pub async fn request_with(
        &self,
        cfg: Arc<rustls::ClientConfig>,
        req: http::Request<Full<Bytes>>,
    ) -> Response {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let tls = TlsConnector::from(cfg)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        collect(sender.send_request(req).await.unwrap()).await
    }

    pub fn tls_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }

    /// A TLS connection to the API speaking HTTP/1.1.
    pub async fn connect(&self) -> TlsStream<TcpStream> {
        self.connect_alpn(&[b"http/1.1"]).await
    }

    pub async fn connect_alpn(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        TlsConnector::from(self.tls_config(alpn))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// One HTTP/1.1 request with a full body.
    pub async fn request(&self, req: http::Request<Full<Bytes>>) -> Response {
        let io = TokioIo::new(self.connect().await);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.unwrap();
        collect(resp).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(
            http::Request::get(path)
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
    }

    /// An HTTP/2 connection's request sender.
    pub async fn h2(
        &self,
    ) -> hyper::client::conn::http2::SendRequest<
        http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
    > {
        let io = TokioIo::new(self.connect_alpn(&[b"h2"]).await);
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    }

    /// The value of one Prometheus sample, e.g. `rejected_total{reason="timeout"}`; 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = loop {
            let r = self.get("/metrics").await;
            if r.status == 200 {
                break String::from_utf8(r.body.to_vec()).unwrap();
            }
            // Rate-limited or too busy: the test's own load; wait and retry.
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        text.lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Resident set size of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Sends SIGTERM and waits for exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn collect(resp: http::Response<hyper::body::Incoming>) -> Response {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Response {
        status,
        headers,
        body,
    }
}

/// Reads one HTTP/1.1 response (Content-Length framed) from a raw stream.
pub async fn read_raw_response(s: &mut TlsStream<TcpStream>) -> Option<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = http::HeaderMap::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once(':')?;
        headers.append(
            http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
            http::HeaderValue::from_str(v.trim()).ok()?,
        );
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Response {
        status,
        headers,
        body: Bytes::from(body),
    })
}

/// Writes `data` and ignores errors (the server may close early on purpose).
pub async fn write_lossy(s: &mut TlsStream<TcpStream>, data: &[u8]) {
    let _ = s.write_all(data).await;
    let _ = s.flush().await;
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Whether the tests run as root (needed to act as another uid).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|v| v.split_whitespace().nth(1) == Some("0"))
}
