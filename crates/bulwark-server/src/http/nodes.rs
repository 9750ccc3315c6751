//! Nodes and their enrolment: an operator (an admin of the org) registers a node and mints
//! a single-use join token (15 minutes by default, only its SHA-256 kept, journaled); the
//! agent makes its key on the node and sends a CSR with the token to `POST /v1/enroll`,
//! which signs a 24-hour certificate for `spiffe://<trust-domain>/org/<org>/node/<node>`
//! with the intermediate. The token check and its use are one step under the sequencer,
//! so two racing requests with one token get one certificate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::Permission;
use bulwark_core::{Problem, ProblemCode, RequestId, Scope};
use bulwark_directory::Event;
use bulwark_http::ApiProblem;
use bulwark_identity::jose::now_secs;
use bulwark_pki::ca::{SpiffeId, Workload};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::{Ctx, Table, append_event, body, body_or_default, name, not_found, problem};
use crate::AppState;
use crate::authn::Caller;

/// Default and longest join-token lifetime.
const JOIN_TOKEN_TTL: i64 = 15 * 60;
const JOIN_TOKEN_MAX_TTL: i64 = 24 * 3600;

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
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::Administer, &scope)
        .await?;
    let req: CreateNode = body(&b)?;
    let node = name(&req.name)?;
    let _seq = s.journal.sequencer.lock().await;
    {
        let dir = s.directory.read();
        if !dir.exists(&scope) {
            return Err(not_found(&scope));
        }
        if dir.node(org.as_str(), node.as_str()).is_some() {
            return Err(problem(
                ProblemCode::AlreadyExists,
                format!("node `{node}` exists"),
            ));
        }
    }
    let event = Event::NodeCreate {
        org: org.to_string(),
        node: node.to_string(),
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
    Ok((
        StatusCode::CREATED,
        Json(json!({"org": org.to_string(), "node": node.to_string(), "seq": seq})),
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
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::View, &scope).await?;
    let dir = s.directory.read();
    if !dir.exists(&scope) {
        return Err(not_found(&scope));
    }
    let nodes: Vec<serde_json::Value> = dir
        .nodes_in(org.as_str())
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
    let scope = Scope::Org(org.clone());
    ctx.authorize(s, caller, Permission::Administer, &scope)
        .await?;
    let node = name(node)?;
    let _seq = s.journal.sequencer.lock().await;
    if s.directory
        .read()
        .node(org.as_str(), node.as_str())
        .is_none()
    {
        return Err(not_found(format!("node `{node}`")));
    }
    if quarantined
        && s.directory
            .read()
            .node(org.as_str(), node.as_str())
            .is_some_and(|n| !n.quarantined)
    {
        // The node is told first, over the signed bus, by this same authorized command
        // (rights re-checked under the sequencer); then the quarantine closes its
        // connections. If the quarantine cannot be journaled afterwards, the node has
        // wiped its secrets without being quarantined: the safe side.
        ctx.recheck(s, caller, Permission::Administer, &scope)?;
        if let Err(e) = super::events::publish_locked(
            s,
            org.as_str(),
            node.as_str(),
            "node.quarantine",
            serde_json::json!({}),
            &caller.subject.to_string(),
        )
        .await
        {
            tracing::warn!(
                detail = e.0.detail.as_str(),
                "node.quarantine not published"
            );
        }
    }
    let event = Event::NodeQuarantine {
        org: org.to_string(),
        node: node.to_string(),
        quarantined,
    };
    let seq = ctx
        .commit(
            s,
            caller,
            (Permission::Administer, &scope),
            Some(&org),
            &event,
        )
        .await?;
    Ok(
        Json(json!({"node": node.to_string(), "quarantined": quarantined, "seq": seq}))
            .into_response(),
    )
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

fn hash_hex(token: &str) -> String {
    bulwark_ledger::verify::hex(&bulwark_crypto::sha256(token.as_bytes()))
}

async fn join_token(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, node)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::Administer, &scope)
        .await?;
    let req: TokenRequest = body_or_default(&b)?;
    let ttl = req.ttl_secs.unwrap_or(JOIN_TOKEN_TTL);
    if !(60..=JOIN_TOKEN_MAX_TTL).contains(&ttl) {
        return Err(problem(
            ProblemCode::BadRequest,
            "ttl_secs is between 60 and 86400",
        ));
    }
    let node = name(&node)?;
    let mut raw = Zeroizing::new([0u8; 32]);
    bulwark_crypto::fill_random(raw.as_mut())
        .map_err(|_| problem(ProblemCode::Internal, "random source failed"))?;
    let token = Zeroizing::new(format!("bwj_{}", bulwark_identity::jose::b64(raw.as_ref())));
    let expires_at = now_secs() + ttl;
    let _seq = s.journal.sequencer.lock().await;
    if s.directory
        .read()
        .node(org.as_str(), node.as_str())
        .is_none()
    {
        return Err(not_found(format!("node `{node}`")));
    }
    let event = Event::NodeJoinToken {
        org: org.to_string(),
        node: node.to_string(),
        token_hash: hash_hex(&token),
        expires_at,
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
    let r = (
        StatusCode::CREATED,
        Json(json!({"token": token.as_str(), "expires_at": expires_at, "node": node.to_string(), "seq": seq})),
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

fn refused(reason: &'static str) -> ApiProblem {
    crate::authn::count_failure(reason);
    ApiProblem(Problem::new(
        ProblemCode::Unauthorized,
        "the join token is unknown, expired or already used",
    ))
}

async fn enroll(
    State(s): State<Arc<AppState>>,
    parts: http::request::Parts,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let req: EnrollRequest = body(&b)?;
    let hash = hash_hex(&req.token);
    let now = now_secs();
    let _seq = s.journal.sequencer.lock().await;
    let token = s
        .directory
        .read()
        .join_token(&hash)
        .cloned()
        .ok_or_else(|| refused("join_token_unknown"))?;
    if token.used {
        return Err(refused("join_token_used"));
    }
    if token.expires_at <= now {
        return Err(refused("join_token_expired"));
    }
    let id = SpiffeId::new(&s.pki.trust_domain, &token.org, Workload::Node, &token.node)
        .map_err(|_| problem(ProblemCode::Internal, "invalid SPIFFE id"))?;
    let issued = super::certs::sign(&s, &req.csr, &id, Workload::Node, Some(s.pki.node_cert_ttl))?;
    let event = Event::NodeEnroll {
        org: token.org.clone(),
        node: token.node.clone(),
        token_hash: hash,
        spiffe_id: id.to_string(),
        not_after: issued.not_after,
        serial: Some(issued.serial.clone()),
    };
    let org = bulwark_core::Name::parse(&token.org).ok();
    let corr = parts.extensions.get::<RequestId>().map(RequestId::as_str);
    // Journaled (and the token used up) before the certificate leaves.
    let seq = append_event(
        &s,
        &event,
        &format!("node:{}", token.node),
        org.as_ref(),
        corr,
    )
    .await?;
    let mut v = issued.json(&s, &id, seq);
    v["node_api"] = json!(s.pki.node_api_url);
    Ok(Json(v).into_response())
}
