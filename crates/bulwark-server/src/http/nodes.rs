//! Nodes and their enrolment over HTTP: node records, single-use join tokens, quarantine
//! and release under `/v1/orgs/{org}/nodes`, and `POST /v1/enroll`, where an agent trades
//! a join token and a CSR for its certificate. The rules are in [`crate::ops::nodes`];
//! handlers here parse, call and render.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::Permission;
use bulwark_core::RequestId;
use bulwark_http::ApiProblem;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::{Ctx, Table, body, body_or_default, name};
use crate::AppState;
use crate::authn::Caller;
use crate::error::Error;
use crate::ops::OrgGrant;
use crate::ops::nodes::{self, JoinTtl};

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    let admin = Rule::bearer(Administer, Org);
    t.add(Api, Post, "/v1/orgs/{org}/nodes", admin, create)
        .add(
            Api,
            Get,
            "/v1/orgs/{org}/nodes",
            Rule::bearer(View, Org),
            list,
        )
        .add(
            Api,
            Post,
            "/v1/orgs/{org}/nodes/{node}/join-tokens",
            admin,
            join_token,
        )
        .add(
            Api,
            Post,
            "/v1/orgs/{org}/nodes/{node}/quarantine",
            admin,
            quarantine,
        )
        .add(
            Api,
            Post,
            "/v1/orgs/{org}/nodes/{node}/release",
            admin,
            release,
        )
        // Authenticated by the join token alone.
        .add(Api, Post, "/v1/enroll", Rule::JoinToken, enroll)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateNode {
    name: String,
}

async fn create(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let g = OrgGrant::authorize(&s, ctx.op(&caller), Permission::Administer, org).await?;
    let req: CreateNode = body(&b)?;
    let node = name(&req.name)?;
    let created = nodes::create(&s, &g, node).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"org": g.org().to_string(), "node": created.node.to_string(), "seq": created.seq}),
        ),
    )
        .into_response())
}

async fn list(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let g = OrgGrant::authorize(&s, ctx.op(&caller), Permission::View, org).await?;
    let nodes: Vec<serde_json::Value> = nodes::list(&s, &g)?
        .into_iter()
        .map(|n| json!({"name": n.name, "spiffe_id": n.spiffe_id, "not_after": n.not_after, "quarantined": n.quarantined, "created_seq": n.created_seq}))
        .collect();
    Ok(Json(json!({"nodes": nodes})).into_response())
}

async fn set_quarantine(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: &str,
    node: &str,
    quarantined: bool,
) -> Result<Response, ApiProblem> {
    let org = name(org)?;
    let g = OrgGrant::authorize(s, ctx.op(caller), Permission::Administer, org).await?;
    let node = name(node)?;
    let actor = caller.subject.to_string();
    // Run by the operation only when it quarantines a node that was not quarantined.
    let notice = async {
        super::events::publish_locked(
            s,
            g.org().as_str(),
            node.as_str(),
            "node.quarantine",
            serde_json::json!({}),
            &actor,
        )
        .await
        .map_err(Error::from)
    };
    let done = nodes::set_quarantine(s, &g, node.clone(), quarantined, notice).await?;
    Ok(Json(
        json!({"node": done.node.to_string(), "quarantined": done.quarantined, "seq": done.seq}),
    )
    .into_response())
}

/// Quarantines a node: the node API refuses it from its next request on.
async fn quarantine(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, node)): Path<(String, String)>,
) -> Result<Response, ApiProblem> {
    set_quarantine(&s, &ctx, &caller, &org, &node, true).await
}

/// Releases a quarantined node.
async fn release(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, node)): Path<(String, String)>,
) -> Result<Response, ApiProblem> {
    set_quarantine(&s, &ctx, &caller, &org, &node, false).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    ttl_secs: Option<i64>,
}

async fn join_token(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, node)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let g = OrgGrant::authorize(&s, ctx.op(&caller), Permission::Administer, org).await?;
    let req: TokenRequest = body_or_default(&b)?;
    let ttl = JoinTtl::new(req.ttl_secs)?;
    let node = name(&node)?;
    let t = nodes::join_token(&s, &g, node, ttl).await?;
    let r = (
        StatusCode::CREATED,
        Json(json!({"token": t.token.as_str(), "expires_at": t.expires_at, "node": t.node.to_string(), "seq": t.seq})),
    )
        .into_response();
    Ok(bulwark_http::no_store(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    token: Zeroizing<String>,
    csr: String,
}

async fn enroll(
    State(s): State<Arc<AppState>>,
    parts: http::request::Parts,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let req: EnrollRequest = body(&b)?;
    let corr = parts.extensions.get::<RequestId>();
    let e = nodes::enroll(&s, &req.token, &req.csr, corr).await?;
    let mut v = e.signed.json(&s, &e.id, e.seq);
    v["node_api"] = json!(s.pki.node_api_url);
    Ok(Json(v).into_response())
}
