//! Principals over HTTP (the operations are in [`crate::ops::principals`]). Org principals
//! live under `/v1/orgs/{org}/principals`; instance principals (operators) under
//! `/v1/principals`. Answers that carry a secret are `no-store`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_core::Name;
use bulwark_directory::Principal;
use bulwark_http::{ApiProblem, no_store};
use http::StatusCode;
use serde_json::json;

use super::{Ctx, Table, body, name};
use crate::AppState;
use crate::authn::Caller;
use crate::ops::principals::{self, NewPrincipal, SetBinding};

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    let (view, admin) = (Rule::bearer(View, Org), Rule::bearer(Administer, Org));
    let (view_i, admin_i) = (
        Rule::bearer(View, Instance),
        Rule::bearer(Administer, Instance),
    );
    t.add(Api, Post, "/v1/orgs/{org}/principals", admin, create_in_org)
        .add(Api, Get, "/v1/orgs/{org}/principals", view, list_in_org)
        .add(Api, Get, "/v1/orgs/{org}/principals/{id}", view, get_in_org)
        .add(
            Api,
            Delete,
            "/v1/orgs/{org}/principals/{id}",
            admin,
            delete_in_org,
        )
        .add(
            Api,
            Post,
            "/v1/orgs/{org}/principals/{id}/rotate-secret",
            admin,
            rotate_in_org,
        )
        .add(
            Api,
            Post,
            "/v1/orgs/{org}/principals/{id}/revoke-tokens",
            admin,
            revoke_in_org,
        )
        .add(
            Api,
            Post,
            "/v1/orgs/{org}/principals/{id}/token-binding",
            admin,
            binding_in_org,
        )
        .add(Api, Post, "/v1/principals", admin_i, create_instance)
        .add(Api, Get, "/v1/principals", view_i, list_instance)
        .add(Api, Get, "/v1/principals/{id}", view_i, get_instance)
        .add(Api, Delete, "/v1/principals/{id}", admin_i, delete_instance)
        .add(
            Api,
            Post,
            "/v1/principals/{id}/rotate-secret",
            admin_i,
            rotate_instance,
        )
        .add(
            Api,
            Post,
            "/v1/principals/{id}/revoke-tokens",
            admin_i,
            revoke_instance,
        )
        .add(
            Api,
            Post,
            "/v1/principals/{id}/token-binding",
            admin_i,
            binding_instance,
        )
}

/// The public view of a principal (never its hash).
pub(crate) fn view(p: &Principal) -> serde_json::Value {
    json!({
        "id": p.id,
        "kind": p.kind,
        "name": p.name,
        "org": p.org,
        "subject": p.subject().to_string(),
        "token_binding": p.token_binding.as_str(),
        "has_client_secret": p.secret_hash.is_some(),
        "jwk": p.jwk,
        "not_before": p.not_before,
        "created_seq": p.created_seq,
    })
}

async fn create(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    b: &[u8],
) -> Result<Response, ApiProblem> {
    let c = principals::create(s, &ctx.op(caller), org, || body::<NewPrincipal>(b)).await?;
    let mut out = json!({
        "id": c.id,
        "kind": c.kind,
        "org": c.org.as_ref().map(ToString::to_string),
        "token_binding": c.token_binding.as_str(),
        "seq": c.seq,
    });
    if let (Some(secret), Some(o)) = (&c.client_secret, out.as_object_mut()) {
        o.insert("client_id".into(), c.id.clone().into());
        o.insert("client_secret".into(), secret.as_str().into());
    }
    Ok(no_store((StatusCode::CREATED, Json(out)).into_response()))
}

async fn list(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
) -> Result<Response, ApiProblem> {
    let all = principals::list(s, &ctx.op(caller), org.as_ref()).await?;
    let v: Vec<serde_json::Value> = all.iter().map(view).collect();
    Ok(Json(json!({"principals": v})).into_response())
}

async fn get_one(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
) -> Result<Response, ApiProblem> {
    let p = principals::get(s, &ctx.op(caller), org.as_ref(), id).await?;
    Ok(Json(view(&p)).into_response())
}

async fn delete(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
) -> Result<Response, ApiProblem> {
    let seq = principals::delete(s, &ctx.op(caller), org.as_ref(), id).await?;
    Ok(Json(json!({"deleted": id, "seq": seq})).into_response())
}

async fn rotate(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
) -> Result<Response, ApiProblem> {
    let r = principals::rotate_secret(s, &ctx.op(caller), org.as_ref(), id).await?;
    Ok(no_store(
        Json(
            json!({"client_id": r.client_id, "client_secret": r.client_secret.as_str(), "seq": r.seq}),
        )
        .into_response(),
    ))
}

async fn revoke_tokens(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
) -> Result<Response, ApiProblem> {
    let r = principals::revoke_tokens(s, &ctx.op(caller), org.as_ref(), id).await?;
    Ok(Json(json!({"id": id, "not_before": r.not_before, "seq": r.seq})).into_response())
}

async fn set_binding(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
    b: &[u8],
) -> Result<Response, ApiProblem> {
    let (binding, seq) = principals::set_binding(s, &ctx.op(caller), org.as_ref(), id, || {
        body::<SetBinding>(b)
    })
    .await?;
    Ok(Json(json!({"id": id, "token_binding": binding.as_str(), "seq": seq})).into_response())
}

type OrgId = Path<(String, String)>;

async fn create_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    create(&s, &ctx, &caller, Some(name(&org)?), &b).await
}
async fn list_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    list(&s, &ctx, &caller, Some(name(&org)?)).await
}
async fn get_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, id)): OrgId,
) -> Result<Response, ApiProblem> {
    get_one(&s, &ctx, &caller, Some(name(&org)?), &id).await
}
async fn delete_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, id)): OrgId,
) -> Result<Response, ApiProblem> {
    delete(&s, &ctx, &caller, Some(name(&org)?), &id).await
}
async fn rotate_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, id)): OrgId,
) -> Result<Response, ApiProblem> {
    rotate(&s, &ctx, &caller, Some(name(&org)?), &id).await
}
async fn revoke_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, id)): OrgId,
) -> Result<Response, ApiProblem> {
    revoke_tokens(&s, &ctx, &caller, Some(name(&org)?), &id).await
}
async fn binding_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, id)): OrgId,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    set_binding(&s, &ctx, &caller, Some(name(&org)?), &id, &b).await
}
async fn create_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    create(&s, &ctx, &caller, None, &b).await
}
async fn list_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
) -> Result<Response, ApiProblem> {
    list(&s, &ctx, &caller, None).await
}
async fn get_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    get_one(&s, &ctx, &caller, None, &id).await
}
async fn delete_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    delete(&s, &ctx, &caller, None, &id).await
}
async fn rotate_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    rotate(&s, &ctx, &caller, None, &id).await
}
async fn revoke_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    revoke_tokens(&s, &ctx, &caller, None, &id).await
}
async fn binding_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    set_binding(&s, &ctx, &caller, None, &id, &b).await
}
