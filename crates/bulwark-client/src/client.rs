//! A minimal HTTPS GET client for the CLI (mirrors, remote checks): rustls with an explicit
//! CA, HTTP/1.1, bounded response size.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

/// The largest response body we read.
const MAX_BODY: usize = 16 << 20;

/// An HTTPS client trusting exactly the CA certificates it was given.
pub struct Client {
    tls: tokio_rustls::TlsConnector,
    bearer: Option<zeroize::Zeroizing<String>>,
}

impl Client {
    /// A client trusting the PEM certificates in `ca_pem`.
    pub fn new(ca_pem: &str) -> anyhow::Result<Self> {
        Self::build(ca_pem, None)
    }

    /// A client trusting `ca_pem` that presents a client certificate (PEM chain, PEM key):
    /// a node talking to the node API. Refuses a key that does not match the certificate.
    pub fn with_identity(ca_pem: &str, chain_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        Self::build(ca_pem, Some((chain_pem, key_pem)))
    }

    fn build(ca_pem: &str, identity: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.context("CA PEM")?)
                .context("CA certificate")?;
        }
        if roots.is_empty() {
            bail!("no CA certificate given");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut cfg = match identity {
            None => builder.with_no_client_auth(),
            Some((chain_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .context("client certificate PEM")?;
                let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .context("client key PEM")?;
                builder
                    .with_client_auth_cert(chain, key)
                    .context("the client key does not match its certificate")?
            }
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            bearer: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request (a plain bearer token:
    /// this client holds no DPoP key).
    #[must_use]
    pub fn with_bearer(mut self, token: Option<zeroize::Zeroizing<String>>) -> Self {
        self.bearer = token;
        self
    }

    /// `GET url`; returns the status and body.
    pub async fn get(&self, url: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut headers = Vec::new();
        if let Some(t) = &self.bearer {
            headers.push((
                http::header::AUTHORIZATION,
                zeroize::Zeroizing::new(format!("Bearer {}", t.as_str())),
            ));
        }
        let (status, _, body) = self
            .send(http::Method::GET, url, &headers, Vec::new())
            .await?;
        Ok((status, body))
    }

    /// Any request; returns the status, the headers and the body. Header values (tokens,
    /// proofs) are passed in zeroizing buffers.
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(http::HeaderName, zeroize::Zeroizing<String>)],
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, http::HeaderMap, Vec<u8>)> {
        let resp = self.open(method, url, headers, body).await?;
        let status = resp.status().as_u16();
        let resp_headers = resp.headers().clone();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading response: {e}"))?
            .to_bytes();
        Ok((status, resp_headers, body.to_vec()))
    }

    /// Any request; returns the response with its body still streaming (server-sent
    /// events). The caller bounds what it reads.
    pub async fn open(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(http::HeaderName, zeroize::Zeroizing<String>)],
        body: Vec<u8>,
    ) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("invalid URL `{url}`"))?;
        if uri.scheme_str() != Some("https") {
            bail!("only https URLs are allowed: `{url}`");
        }
        let host = uri.host().context("URL without host")?.to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let name = ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_owned())
            .context("server name")?;
        let tls = self.tls.connect(name, tcp).await.context("TLS handshake")?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(conn);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri
            .authority()
            .map_or(host.clone(), |a| a.as_str().to_owned());
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority);
        for (name, value) in headers {
            req = req.header(name, value.as_str());
        }
        let req = req.body(Full::new(bytes::Bytes::from(body)))?;
        sender.send_request(req).await.context("request failed")
    }
}
