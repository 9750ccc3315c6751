//! Relation tuples over the API, `GET /v1/authz/check`, and the paged lookup of what a
//! subject can reach. The operations are in [`crate::ops::relations`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::{Permission, Subject};
use bulwark_core::{Name, ProblemCode, Scope};
use bulwark_http::ApiProblem;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, body, clamp_limit, name, problem};
use crate::AppState;
use crate::authn::Caller;
use crate::ops::relations::{self, TupleRequest};

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    // A grant or revocation takes `grant` on the tuple's scope (in the body), within the
    // path's org; without an org in the path, on the instance.
    t.add(
        Api,
        Post,
        "/v1/orgs/{org}/relations",
        Rule::bearer(Grant, BodyInOrg),
        grant_in_org,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/relations/revoke",
        Rule::bearer(Grant, BodyInOrg),
        revoke_in_org,
    )
    .add(
        Api,
        Get,
        "/v1/orgs/{org}/relations",
        Rule::bearer(View, Org),
        list_in_org,
    )
    .add(
        Api,
        Post,
        "/v1/relations",
        Rule::bearer(Grant, Instance),
        grant_instance,
    )
    .add(
        Api,
        Post,
        "/v1/relations/revoke",
        Rule::bearer(Grant, Instance),
        revoke_instance,
    )
    .add(
        Api,
        Get,
        "/v1/authz/check",
        Rule::Caller {
            reason: "decides for the caller's own token; another subject needs `administer` on the queried scope",
        },
        check,
    )
    .add(
        Api,
        Get,
        "/v1/authz/lookup",
        Rule::Caller {
            reason: "lists the caller's own relations; another subject's need `administer` on the caller's org (or instance)",
        },
        lookup,
    )
}

async fn change(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    b: &[u8],
    grant: bool,
) -> Result<Response, ApiProblem> {
    let req = ctx.op(caller);
    let input = body::<TupleRequest>(b);
    let c = if grant {
        relations::grant(s, &req, org, input).await?
    } else {
        relations::revoke(s, &req, org, input).await?
    };
    let Some(seq) = c.seq else {
        return Ok(Json(json!({"tuple": c.tuple.to_string(), "changed": false})).into_response());
    };
    let status = if grant {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"tuple": c.tuple.to_string(), "changed": true, "seq": seq})),
    )
        .into_response())
}

async fn grant_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    change(&s, &ctx, &caller, Some(name(&org)?), &b, true).await
}
async fn revoke_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    change(&s, &ctx, &caller, Some(name(&org)?), &b, false).await
}
async fn grant_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    change(&s, &ctx, &caller, None, &b, true).await
}
async fn revoke_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    change(&s, &ctx, &caller, None, &b, false).await
}

/// The tuples of an org.
async fn list_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let tuples: Vec<String> = relations::list_in_org(&s, &ctx.op(&caller), &org)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Json(json!({"tuples": tuples})).into_response())
}

#[derive(Deserialize)]
struct CheckQuery {
    permission: String,
    scope: String,
    #[serde(default)]
    subject: Option<String>,
}

fn permission(s: &str) -> Option<Permission> {
    [
        Permission::Administer,
        Permission::Grant,
        Permission::Deploy,
        Permission::ReadSecretValue,
        Permission::Exec,
        Permission::ReadAudit,
        Permission::View,
        Permission::WriteSecret,
    ]
    .into_iter()
    .find(|p| p.as_str() == s)
}

/// `GET /v1/authz/check?permission=&scope=[&subject=]`: the decision and its reason (see
/// [`relations::check`]).
async fn check(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Query(q): Query<CheckQuery>,
) -> Result<Response, ApiProblem> {
    let bad = |d: &str| problem(ProblemCode::BadRequest, d.to_owned());
    let p = permission(&q.permission).ok_or_else(|| bad("unknown permission"))?;
    let scope = Scope::parse(&q.scope).ok_or_else(|| bad("bad scope"))?;
    let subject = q
        .subject
        .as_deref()
        .map(|sub| Subject::parse(sub).ok_or_else(|| bad("bad subject")))
        .transpose()?;
    let decision = relations::check(&s, &ctx.op(&caller), p, &scope, subject.as_ref()).await?;
    Ok(Json(json!({
        "allowed": decision.allowed,
        "reason": decision.reason.to_string(),
        "permission": p.as_str(),
        "scope": scope.to_string(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct LookupQuery {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /v1/authz/lookup[?subject=][&limit=][&cursor=]`: the scopes a subject holds
/// relations on, sorted, paged (`limit` 1–200), with signed cursors (see
/// [`relations::lookup`]).
async fn lookup(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Query(q): Query<LookupQuery>,
) -> Result<Response, ApiProblem> {
    let subject = q
        .subject
        .as_deref()
        .map(|sub| {
            Subject::parse(sub).ok_or_else(|| problem(ProblemCode::BadRequest, "bad subject"))
        })
        .transpose()?;
    let page = relations::lookup(
        &s,
        &ctx.op(&caller),
        subject,
        clamp_limit(q.limit),
        q.cursor.as_deref(),
    )
    .await?;
    let items: Vec<serde_json::Value> = page
        .items
        .iter()
        .map(|(scope, rels)| json!({"scope": scope.to_string(), "relations": rels.iter().map(|r| r.as_str()).collect::<Vec<_>>()}))
        .collect();
    Ok(Json(json!({"subject": page.subject.to_string(), "items": items, "next_cursor": page.next_cursor})).into_response())
}
