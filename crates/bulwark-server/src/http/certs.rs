//! Certificates over HTTP: service certificates from CSRs
//! (`POST /v1/orgs/{org}/certificates`, for org admins with a `certs:issue` token), the
//! org's issued certificates, revocation, and the public revocation data: the CRL signed by
//! the intermediate (`GET /v1/pki/crl`, DER) and the same as JSON
//! (`GET /v1/pki/revocations`). The rules are in [`crate::ops::certs`]; handlers here
//! parse, call and render.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::Permission;
use bulwark_http::ApiProblem;
use bulwark_identity::jose::now_secs;
use bulwark_pki::ca::SpiffeId;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, body, body_or_default, name};
use crate::AppState;
use crate::authn::Caller;
use crate::ops::OrgGrant;
use crate::ops::certs::{self, IssueCert, Revocation, RevokeCert};
pub(crate) use crate::ops::certs::{Signed, sign};

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

impl Signed {
    /// The answer every issuance gives: the leaf with the intermediate, the root, the id.
    pub(crate) fn json(&self, s: &AppState, id: &SpiffeId, seq: u64) -> serde_json::Value {
        json!({
            "spiffe_id": id.to_string(),
            "serial": self.serial,
            "certificate": certs::chain_of(s, self),
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
    let g = OrgGrant::authorize(&s, ctx.op(&caller), Permission::IssueCertificate, org).await?;
    let req: IssueRequest = body(&b)?;
    let issued = certs::issue(
        &s,
        &g,
        IssueCert {
            csr: req.csr,
            service: req.service,
            ttl_secs: req.ttl_secs,
        },
    )
    .await?;
    let mut r = issued.signed.response(&s, &issued.id, issued.seq);
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
    let g = OrgGrant::authorize(&s, ctx.op(&caller), Permission::View, org).await?;
    let certs: Vec<serde_json::Value> = certs::list(&s, &g)?
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
    let g = OrgGrant::authorize(&s, ctx.op(&caller), Permission::Administer, org).await?;
    let req: RevokeRequest = body_or_default(&b)?;
    let done = certs::revoke(
        &s,
        &g,
        RevokeCert {
            serial: serial.clone(),
            reason: req.reason,
        },
    )
    .await?;
    Ok(match done {
        Revocation::Already { revoked_at } => {
            Json(json!({"serial": serial, "revoked_at": revoked_at, "already_revoked": true}))
        }
        Revocation::Revoked { revoked_at, seq } => {
            Json(json!({"serial": serial, "revoked_at": revoked_at, "seq": seq}))
        }
    }
    .into_response())
}

/// `GET /v1/pki/crl`: the CRL (DER), signed by the intermediate, numbered by the journal's
/// size when it was made (so numbers only grow).
async fn crl(State(s): State<Arc<AppState>>) -> Result<Response, ApiProblem> {
    let der = certs::crl(&s, now_secs())?;
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
    let list: Vec<serde_json::Value> = certs::revoked(&s, now_secs())
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
        certs::ca_chain(&s),
    )
        .into_response()
}
