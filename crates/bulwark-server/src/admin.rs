//! The admin unix socket: local, break-glass operations.
//!
//! The socket lives in the 0700 data directory and is itself 0600; on top of the file
//! modes, every connection's peer uid (SO_PEERCRED) must be on the allow-list, so a
//! loosened directory mode still does not open it. Refusals are counted as
//! `rejected_total{reason="admin_peer_uid"}` and logged. The protocol is HTTP/1.1 with the
//! same problem responses as the API. The client side is `bulwark_client::admin`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::response::Json;
use bulwark_http::metrics as m;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::UnixListener;
use tower::ServiceExt as _;

use bulwark_core::{Problem, ProblemCode};
use bulwark_http::ApiProblem;

use crate::AppState;
use crate::error::Error;

/// Whether a peer uid may use the admin socket.
pub fn peer_allowed(allow: &[u32], uid: u32) -> bool {
    allow.contains(&uid)
}

/// Binds the admin socket at `path` (mode 0600), replacing a stale socket left by a crash.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("`{}` exists and is not a socket", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket `{}`", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind admin socket `{}`", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set mode of `{}`", path.display()))?;
    Ok(listener)
}

/// Serves the admin router on `listener`, admitting only peers whose uid is in `allow`.
pub fn spawn(listener: UnixListener, allow: Vec<u32>, state: Arc<AppState>) {
    let app = bulwark_http::harden(
        bulwark_http::route_label(router(state)),
        bulwark_http::Hardening::new(bulwark_http::Limits::default()),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let uid = stream.peer_cred().map(|c| c.uid()).ok();
            if !uid.is_some_and(|u| peer_allowed(&allow, u)) {
                metrics::counter!(m::REJECTED_TOTAL, "reason" => m::reason::ADMIN_PEER_UID)
                    .increment(1);
                tracing::warn!(
                    reason = m::reason::ADMIN_PEER_UID,
                    peer_uid = uid,
                    "admin socket connection refused"
                );
                continue;
            }
            let app = app.clone();
            let peer = PeerUid(uid.unwrap_or(u32::MAX));
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: http::Request<_>| {
                    req.extensions_mut().insert(peer);
                    app.clone().oneshot(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

/// The uid of the admin-socket peer, for the journal's `actor`.
#[derive(Debug, Clone, Copy)]
struct PeerUid(u32);

/// The admin socket's router: its plane of the route table.
fn router(state: Arc<AppState>) -> Router {
    crate::http::Table::build(false).router(crate::http::Plane::Admin, &state)
}

/// The admin socket's own routes (its audit routes are declared by `http::tiles`). The
/// peer's uid was checked on accept: every route here is `AdminPeer`.
pub(crate) fn routes(t: crate::http::Table) -> crate::http::Table {
    use crate::http::{Plane::Admin, Rule::AdminPeer, Verb::*};
    t.add(Admin, Get, "/v1/admin/status", AdminPeer, status)
        .add(Admin, Post, "/v1/admin/journal/notes", AdminPeer, note)
        .add(
            Admin,
            Post,
            "/v1/admin/journal/checkpoint",
            AdminPeer,
            checkpoint,
        )
        .add(Admin, Post, "/v1/admin/bootstrap", AdminPeer, bootstrap)
        .add(
            Admin,
            Post,
            "/v1/admin/keys/signing/rotate",
            AdminPeer,
            rotate_signing,
        )
        .add(Admin, Post, "/v1/admin/tls/rotate", AdminPeer, rotate_tls)
}

async fn status(State(s): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let ready = s.runtime.readiness.status();
    Json(json!({
        "instance_id": s.runtime.instance_id,
        "version": env!("CARGO_PKG_VERSION"),
        "ready": ready.is_ok(),
        "not_ready_reasons": ready.err().unwrap_or_default(),
        "uptime_seconds": s.runtime.started.elapsed().as_secs(),
        "listen": s.runtime.listen.to_string(),
        "data_dir": s.runtime.data_dir.as_ref().map(|d| d.display().to_string()),
        "amnesia": s.runtime.data_dir.is_none(),
        "dumpable": crate::hygiene::is_dumpable(),
        "journal": {
            "size": s.journal.ledger.size(),
            "healthy": s.journal.ledger.is_healthy(),
            "vkey": s.journal.ledger.verifier().vkey(),
        },
        "keys": s.journal.key_view.snapshot(),
    }))
}

/// The `data` of an `operator.note` entry.
#[derive(serde::Serialize, serde::Deserialize)]
struct OperatorNote {
    text: String,
}

impl bulwark_ledger::entry::EntryData for OperatorNote {}

const MAX_NOTE_CHARS: usize = 1024;

fn bad_request(detail: &str) -> ApiProblem {
    ApiProblem(Problem::new(ProblemCode::BadRequest, detail.to_owned()))
}

/// Appends an operator's annotation to the journal (`{"text": "..."}`, at most 1024
/// printable characters); answers with its seq once it is durable.
async fn note(
    State(s): State<Arc<AppState>>,
    axum::Extension(peer): axum::Extension<PeerUid>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiProblem> {
    let note: OperatorNote =
        serde_json::from_slice(&body).map_err(|_| bad_request("expected {\"text\": \"...\"}"))?;
    if note.text.is_empty()
        || note.text.chars().count() > MAX_NOTE_CHARS
        || note.text.chars().any(char::is_control)
    {
        return Err(bad_request("text must be 1 to 1024 printable characters"));
    }
    let draft = bulwark_ledger::entry::Draft::new(
        bulwark_ledger::entry::Kind::State,
        "operator.note",
        format!("instance/{}", s.runtime.instance_id),
    )
    .actor(format!("admin:uid{}", peer.0))
    .data(&note)
    .map_err(|_| bad_request("unencodable note"))?;
    let appended = s.journal.ledger.append(draft).await.map_err(Error::from)?;
    Ok(Json(json!({"seq": appended.seq})))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BootstrapRequest {
    #[serde(default)]
    token_binding: Option<bulwark_directory::Binding>,
}

/// Creates the first operator: a service principal with `operator` on the instance. The
/// secret is in this one response and nowhere else (the journal holds its Argon2id hash).
async fn bootstrap(
    State(s): State<Arc<AppState>>,
    axum::Extension(peer): axum::Extension<PeerUid>,
    body: axum::body::Bytes,
) -> Result<axum::response::Response, ApiProblem> {
    use axum::response::IntoResponse as _;
    let req: BootstrapRequest = if body.is_empty() {
        BootstrapRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| bad_request("expected {\"token_binding\": \"dpop\"|\"none\"}"))?
    };
    let binding = req.token_binding.unwrap_or_default();
    let b = crate::ops::principals::bootstrap(&s, binding, &format!("admin:uid{}", peer.0)).await?;
    let resp = Json(json!({
        "client_id": b.client_id,
        "client_secret": b.client_secret.as_str(),
        "token_binding": binding.as_str(),
        "token_endpoint": s.auth.token_endpoint(),
        "seq": b.seq,
    }))
    .into_response();
    Ok(bulwark_http::no_store(resp))
}

/// Rotates the token signing key (journaled); the old key stays published until every
/// token it signed has expired.
async fn rotate_signing(
    State(s): State<Arc<AppState>>,
    axum::Extension(peer): axum::Extension<PeerUid>,
) -> Result<Json<serde_json::Value>, ApiProblem> {
    let (old, new) = crate::ops::keys::rotate(&s, &format!("admin:uid{}", peer.0)).await?;
    Ok(Json(json!({"retired": old, "active": new})))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsRotateRequest {
    #[serde(default)]
    cert_pem: Option<String>,
    #[serde(default)]
    key_pem: Option<zeroize::Zeroizing<String>>,
}

#[derive(serde::Serialize)]
struct TlsRotated<'a> {
    serial: &'a str,
    not_after: i64,
    source: &'a str,
}
impl bulwark_ledger::entry::EntryData for TlsRotated<'_> {}

/// Replaces the server certificate of both listeners without a restart: the one given
/// (PEM chain and key), or a fresh one from the intermediate. Refused (and nothing
/// changes) unless it verifies against the instance root for every server name.
async fn rotate_tls(
    State(s): State<Arc<AppState>>,
    axum::Extension(peer): axum::Extension<PeerUid>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiProblem> {
    let req: TlsRotateRequest = if body.is_empty() {
        TlsRotateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| bad_request("expected {\"cert_pem\": …, \"key_pem\": …} or nothing"))?
    };
    let (checked, source) = match (req.cert_pem, req.key_pem) {
        (Some(cert), Some(key)) => (s.pki.tls.check(&cert, &key), "given"),
        (None, None) => (s.pki.tls.reissue(&s.pki.intermediate), "issued"),
        _ => return Err(bad_request("give both cert_pem and key_pem, or neither")),
    };
    let rotated = checked.map_err(|e| {
        tracing::warn!(error = %format!("{e:#}"), "server certificate refused");
        bad_request(&format!("refused, nothing changed: {e:#}"))
    })?;
    let draft = bulwark_ledger::entry::Draft::new(
        bulwark_ledger::entry::Kind::State,
        "tls.rotate",
        format!("instance/{}", s.runtime.instance_id),
    )
    .actor(format!("admin:uid{}", peer.0))
    .data(&TlsRotated {
        serial: &rotated.serial,
        not_after: rotated.not_after,
        source,
    })
    .map_err(|_| bad_request("cannot encode"))?;
    let seq = s
        .journal
        .ledger
        .append(draft)
        .await
        .map_err(Error::from)?
        .seq;
    let (serial, not_after) = (rotated.serial.clone(), rotated.not_after);
    s.pki.tls.publish(rotated).await.map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "server certificate not published");
        ApiProblem(Problem::new(
            ProblemCode::Internal,
            "the certificate was journaled but could not be stored; the old one is still served",
        ))
    })?;
    tracing::info!(
        serial = serial.as_str(),
        source,
        "server certificate rotated"
    );
    Ok(Json(json!({
        "serial": serial,
        "not_after": not_after,
        "source": source,
        "seq": seq,
    })))
}

/// Signs a checkpoint of the journal now.
async fn checkpoint(State(s): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiProblem> {
    let note = s
        .journal
        .ledger
        .checkpoint_now()
        .await
        .map_err(Error::from)?;
    Ok(Json(
        json!({"size": s.journal.ledger.size(), "checkpoint": note}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_is_exact() {
        assert!(peer_allowed(&[0, 1000], 1000));
        assert!(!peer_allowed(&[0, 1000], 1001));
        assert!(!peer_allowed(&[], 0));
    }
}
