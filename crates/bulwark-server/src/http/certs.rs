//! Certificates: service certificates from CSRs (`POST /v1/orgs/{org}/certificates`, for
//! org admins with a `certs:issue` token), the org's issued certificates, revocation (one
//! journaled command, refused at the next handshake, open connections closed), and the
//! public revocation data: the CRL signed by the intermediate (`GET /v1/pki/crl`, DER)
//! and the same as JSON (`GET /v1/pki/revocations`).
//!
//! Every issuance is journaled (`node.enroll`, `cert.issue`) before the certificate leaves,
//! with its serial: revocation names serials the journal knows.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::Permission;
use bulwark_core::{ProblemCode, Scope};
use bulwark_directory::Event;
use bulwark_http::ApiProblem;
use bulwark_identity::jose::now_secs;
use bulwark_pki::ca::{SpiffeId, Workload};
use bulwark_pki::crl::Reason;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::{Ctx, Table, body, body_or_default, name, not_found, problem};
use crate::AppState;
use crate::authn::Caller;

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    // The public PKI data: what relying parties fetch, without credentials.
    let public = Rule::Public {
        reason: "revocation data and the CA chain are what relying parties fetch",
    };
    t.add(
        Api,
        Post,
        "/v1/orgs/{org}/certificates",
        Rule::bearer(IssueCertificate, Org),
        issue,
    )
    .add(
        Api,
        Get,
        "/v1/orgs/{org}/certificates",
        Rule::bearer(View, Org),
        list,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/certificates/{serial}/revoke",
        Rule::bearer(Administer, Org),
        revoke,
    )
    .add(Api, Get, "/v1/pki/crl", public, crl)
    .add(Api, Get, "/v1/pki/revocations", public, revocations)
    .add(Api, Get, "/v1/pki/ca", public, ca_chain)
}

/// A certificate just signed by the intermediate.
pub(crate) struct Signed {
    /// The leaf, PEM.
    pub leaf_pem: String,
    /// Its serial (hex).
    pub serial: String,
    /// Its end (Unix seconds).
    pub not_after: i64,
}

impl Signed {
    /// The answer every issuance gives: the leaf with the intermediate, the root, the id.
    pub(crate) fn json(&self, s: &AppState, id: &SpiffeId, seq: u64) -> serde_json::Value {
        json!({
            "spiffe_id": id.to_string(),
            "serial": self.serial,
            "certificate": format!("{}{}", self.leaf_pem, s.pki.intermediate.cert_pem),
            "ca": s.pki.ca_cert_pem,
            "not_after": self.not_after,
            "seq": seq,
        })
    }

    /// [`Signed::json`] as a 200 response.
    pub(crate) fn response(&self, s: &AppState, id: &SpiffeId, seq: u64) -> Response {
        Json(self.json(s, id, seq)).into_response()
    }
}

/// Signs `csr_pem` for `id` with the intermediate (400 when the CSR or the TTL is refused).
pub(crate) fn sign(
    s: &AppState,
    csr_pem: &str,
    id: &SpiffeId,
    kind: Workload,
    ttl: Option<Duration>,
) -> Result<Signed, ApiProblem> {
    let leaf = s
        .pki
        .leaf_signer
        .sign_csr(csr_pem, id, kind, ttl, OffsetDateTime::now_utc())
        .map_err(|e| problem(ProblemCode::BadRequest, format!("the CSR was refused: {e}")))?;
    Ok(Signed {
        leaf_pem: leaf.pem,
        serial: leaf.serial,
        not_after: leaf.not_after.unix_timestamp(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    csr: String,
    service: String,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

async fn issue(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::IssueCertificate, &scope)
        .await?;
    let req: IssueRequest = body(&b)?;
    if !s.directory.read().exists(&scope) {
        return Err(not_found(&scope));
    }
    let id = SpiffeId::new(
        &s.pki.trust_domain,
        org.as_str(),
        Workload::Service,
        &req.service,
    )
    .map_err(|_| {
        problem(
            ProblemCode::BadRequest,
            "`service` is 1 to 64 of A-Z a-z 0-9 _ -",
        )
    })?;
    let signed = sign(
        &s,
        &req.csr,
        &id,
        Workload::Service,
        req.ttl_secs.map(Duration::from_secs),
    )?;
    let event = Event::CertIssue {
        org: org.to_string(),
        spiffe_id: id.to_string(),
        serial: signed.serial.clone(),
        not_after: signed.not_after,
        node: None,
        renewed_from: None,
    };
    // Re-decided and queued in order under the sequencer; durability is awaited outside
    // it, so that concurrent issuances share one group commit.
    let durable = {
        let _seq = s.journal.sequencer.lock().await;
        ctx.recheck(&s, &caller, Permission::IssueCertificate, &scope)?;
        ctx.enqueue(&s, &caller, Some(&org), &event)?
    };
    let seq = super::durable_seq(durable).await?;
    let mut r = signed.response(&s, &id, seq);
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

async fn list(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::View, &scope).await?;
    let dir = s.directory.read();
    if !dir.exists(&scope) {
        return Err(not_found(&scope));
    }
    let certs: Vec<serde_json::Value> = dir
        .certs_in(org.as_str())
        .into_iter()
        .map(|(serial, c)| {
            json!({"serial": serial, "spiffe_id": c.spiffe_id, "not_after": c.not_after,
                   "revoked_at": c.revoked_at, "reason": c.reason})
        })
        .collect();
    Ok(Json(json!({"certificates": certs})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    #[serde(default)]
    reason: Option<String>,
}

async fn revoke(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, serial)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::Administer, &scope)
        .await?;
    let req: RevokeRequest = body_or_default(&b)?;
    if let Some(r) = &req.reason
        && Reason::parse(r).is_none()
    {
        return Err(problem(
            ProblemCode::BadRequest,
            "reason is one of key_compromise, affiliation_changed, superseded, cessation_of_operation",
        ));
    }
    if !bulwark_pki::crl::is_serial_hex(&serial) {
        return Err(problem(
            ProblemCode::BadRequest,
            "a serial is lower-case hex",
        ));
    }
    let _seq = s.journal.sequencer.lock().await;
    let revoked_at = match s.directory.read().cert(&serial) {
        Some(c) if c.org == org.as_str() => c.revoked_at,
        // Another org's serial is as unknown as a made-up one.
        _ => return Err(not_found(format!("certificate `{serial}`"))),
    };
    if let Some(at) = revoked_at {
        return Ok(
            Json(json!({"serial": serial, "revoked_at": at, "already_revoked": true}))
                .into_response(),
        );
    }
    let event = Event::CertRevoke {
        org: org.to_string(),
        serial: serial.clone(),
        reason: req.reason,
    };
    let seq = ctx
        .commit(
            &s,
            &caller,
            (Permission::Administer, &scope),
            Some(&org),
            &event,
        )
        .await?;
    Ok(Json(json!({"serial": serial, "revoked_at": now_secs(), "seq": seq})).into_response())
}

fn revoked_list(s: &AppState, now: i64) -> Vec<bulwark_pki::crl::Revoked> {
    s.directory
        .read()
        .revoked_certs(now)
        .into_iter()
        .map(|(serial, c)| bulwark_pki::crl::Revoked {
            serial_hex: serial.clone(),
            revoked_at: OffsetDateTime::from_unix_timestamp(c.revoked_at.unwrap_or(now))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            reason: c.reason.as_deref().and_then(Reason::parse),
        })
        .collect()
}

/// `GET /v1/pki/crl`: the CRL (DER), signed by the intermediate, numbered by the journal's
/// size when it was made (so numbers only grow).
async fn crl(State(s): State<Arc<AppState>>) -> Result<Response, ApiProblem> {
    let now = now_secs();
    let epoch = *s.pki.peer_epoch.borrow();
    let der = s
        .pki
        .crl
        .get_or_make(epoch, now, || {
            bulwark_pki::crl::sign_crl(
                &s.pki.intermediate.cert_pem,
                &s.pki.intermediate.key_pem,
                &revoked_list(&s, now),
                s.journal.ledger.size(),
                OffsetDateTime::now_utc(),
                crate::pki::CRL_VALIDITY,
            )
        })
        .map_err(|e| {
            tracing::error!(error = %e, "could not sign the CRL");
            problem(ProblemCode::Internal, "could not sign the CRL")
        })?;
    Ok((
        [
            (
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/pkix-crl"),
            ),
            (
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("max-age=60"),
            ),
        ],
        Bytes::copy_from_slice(&der),
    )
        .into_response())
}

/// `GET /v1/pki/revocations`: the revoked, unexpired certificates as JSON.
async fn revocations(State(s): State<Arc<AppState>>) -> Response {
    let now = now_secs();
    let list: Vec<serde_json::Value> = s
        .directory
        .read()
        .revoked_certs(now)
        .into_iter()
        .map(|(serial, c)| {
            json!({"serial": serial, "revoked_at": c.revoked_at, "not_after": c.not_after,
                   "reason": c.reason})
        })
        .collect();
    Json(json!({"revoked": list})).into_response()
}

/// `GET /v1/pki/ca`: the intermediate and the root, PEM (what a relying party trusts).
async fn ca_chain(State(s): State<Arc<AppState>>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/pem-certificate-chain"),
        )],
        format!("{}{}", s.pki.intermediate.cert_pem, s.pki.ca_cert_pem),
    )
        .into_response()
}
