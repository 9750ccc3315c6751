//! The admin unix socket's client side: HTTP/1.1 over the socket, JSON in and out, and the
//! typed calls of `bulwark admin …`. The server side (bind, peer-uid allow-list, routes)
//! is in `bulwark-server`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// `GET path` over the admin socket; returns the status and JSON body.
pub async fn request(socket: &Path, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    send(socket, http::Method::GET, path, None).await
}

/// `POST path` with a JSON body over the admin socket.
pub async fn post_json(
    socket: &Path,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    send(socket, http::Method::POST, path, Some(body)).await
}

/// Any request over the admin socket; returns the status and JSON body.
pub async fn send(
    socket: &Path,
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to admin socket `{}`", socket.display()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("admin socket handshake")?;
    tokio::spawn(conn);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "admin")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
        .context("building request")?;
    let resp = sender
        .send_request(req)
        .await
        .context("the server closed the admin connection (is this uid on the allow-list?)")?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading admin response")?;
    let value = serde_json::from_slice(&body.to_bytes()).context("admin response is not JSON")?;
    Ok((status, value))
}

/// Where the admin socket of a data directory is.
pub fn default_socket(data_dir: &Path) -> PathBuf {
    data_dir.join(bulwark_fs::layout::ADMIN_SOCKET)
}

/// The body of a 200 answer; any other status is an error naming it and the body.
fn ok((status, body): (u16, serde_json::Value)) -> anyhow::Result<serde_json::Value> {
    if status == 200 {
        Ok(body)
    } else {
        anyhow::bail!("admin socket answered {status}: {body}")
    }
}

/// `bulwark admin status`: instance id, version, readiness, uptime, journal, keys.
pub async fn status(socket: &Path) -> anyhow::Result<serde_json::Value> {
    ok(request(socket, "/v1/admin/status").await?)
}

/// `bulwark admin bootstrap`: creates the first operator; the answer holds its client
/// secret, shown once.
pub async fn bootstrap(socket: &Path, token_binding: &str) -> anyhow::Result<serde_json::Value> {
    let body = serde_json::json!({ "token_binding": token_binding });
    ok(post_json(socket, "/v1/admin/bootstrap", &body).await?)
}

/// `bulwark admin rotate-signing-key`: the retired and the active key ids.
pub async fn rotate_signing_key(socket: &Path) -> anyhow::Result<serde_json::Value> {
    ok(post_json(
        socket,
        "/v1/admin/keys/signing/rotate",
        &serde_json::json!({}),
    )
    .await?)
}

/// `bulwark admin rotate-server-cert`: installs the certificate chain and key read from
/// `cert` and `key` (the key file must be private), or, given neither, a fresh one from
/// the intermediate. A refusal is an error carrying the server's reason.
pub async fn rotate_server_cert(
    socket: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
    let body = match (cert, key) {
        (Some(c), Some(k)) => {
            let cert_pem = std::fs::read_to_string(c)
                .with_context(|| format!("cannot read `{}`", c.display()))?;
            let key_pem = bulwark_fs::read_private(k)?;
            serde_json::json!({"cert_pem": cert_pem, "key_pem": key_pem.as_str()})
        }
        _ => serde_json::json!({}),
    };
    match post_json(socket, "/v1/admin/tls/rotate", &body).await? {
        (200, body) => Ok(body),
        (status, body) => anyhow::bail!(
            "{}",
            body["detail"].as_str().map_or_else(
                || format!("admin socket answered {status}: {body}"),
                str::to_owned
            )
        ),
    }
}
