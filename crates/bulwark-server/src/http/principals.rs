//! Principals: service principals (client credentials, secret shown once, Argon2id hash
//! journaled), operator-created users (until OIDC federation), rotation, token binding,
//! "revoke every token" (a not-before), deletion. Org principals live under
//! `/v1/orgs/{org}/principals`; instance principals (operators) under `/v1/principals`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::Permission;
use bulwark_core::{Name, ProblemCode, Scope};
use bulwark_directory::{Binding, Event, Principal, PrincipalKind};
use bulwark_http::ApiProblem;
use bulwark_identity::{assertion::ClientKey, client_secret};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, body, name, not_found, problem};
use bulwark_http::no_store;

use crate::AppState;
use crate::authn::Caller;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Create {
    kind: PrincipalKind,
    name: String,
    #[serde(default)]
    token_binding: Option<Binding>,
    #[serde(default)]
    jwk: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBinding {
    token_binding: Binding,
}

fn scope_of(org: Option<&Name>) -> Scope {
    org.map_or(Scope::Instance, |o| Scope::Org(o.clone()))
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

fn random_id(prefix: &str) -> Result<String, ApiProblem> {
    let mut b = [0u8; 12];
    bulwark_crypto::fill_random(&mut b)
        .map_err(|_| problem(ProblemCode::Internal, "random source failed"))?;
    Ok(format!("{prefix}{}", bulwark_identity::jose::b64(&b)))
}

/// Issues a credential off the async runtime (Argon2id is deliberately slow).
async fn issue_credential() -> Result<client_secret::Issued, ApiProblem> {
    tokio::task::spawn_blocking(client_secret::issue)
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| problem(ProblemCode::Internal, "credential issuance failed"))
}

/// Creates a principal in `org` for `caller` (authorized for `administer` there): service
/// principals get a client id and a secret shown once. The credential is hashed first
/// (slow); the scope and the caller's rights are checked again under the sequencer.
async fn create_principal(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<&Name>,
    c: Create,
) -> Result<Response, ApiProblem> {
    if c.name.is_empty() || c.name.chars().count() > 128 || c.name.chars().any(char::is_control) {
        return Err(problem(
            ProblemCode::BadRequest,
            "name must be 1 to 128 printable characters",
        ));
    }
    if let Some(jwk) = &c.jwk {
        if c.kind != PrincipalKind::Service {
            return Err(problem(
                ProblemCode::BadRequest,
                "only service principals register keys",
            ));
        }
        ClientKey::parse(jwk).map_err(|r| {
            problem(
                ProblemCode::BadRequest,
                format!("jwk refused: {}", r.reason()),
            )
        })?;
    }
    if c.kind == PrincipalKind::User && c.token_binding.is_some() {
        return Err(problem(
            ProblemCode::BadRequest,
            "users have no client credentials to bind",
        ));
    }
    let (id, secret, hash) = match c.kind {
        PrincipalKind::Service => {
            let issued = issue_credential().await?;
            (
                issued.client_id,
                Some(issued.client_secret),
                Some(issued.hash),
            )
        }
        PrincipalKind::User => (random_id("usr_")?, None, None),
    };
    let binding = c.token_binding.unwrap_or_default();
    let event = Event::PrincipalCreate {
        id: id.clone(),
        kind: c.kind,
        name: c.name,
        org: org.map(ToString::to_string),
        token_binding: binding,
        secret_hash: hash,
        jwk: c.jwk,
    };
    let scope = scope_of(org);
    let _seq = state.journal.sequencer.lock().await;
    if !state.directory.read().exists(&scope) {
        return Err(not_found(&scope));
    }
    let seq = ctx
        .commit(state, caller, (Permission::Administer, &scope), org, &event)
        .await?;
    let mut out = json!({
        "id": id,
        "kind": c.kind,
        "org": org.map(ToString::to_string),
        "token_binding": binding.as_str(),
        "seq": seq,
    });
    if let (Some(s), Some(o)) = (&secret, out.as_object_mut()) {
        o.insert("client_id".into(), id.clone().into());
        o.insert("client_secret".into(), s.as_str().into());
    }
    Ok(no_store((StatusCode::CREATED, Json(out)).into_response()))
}

async fn create(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    b: &[u8],
) -> Result<Response, ApiProblem> {
    let scope = scope_of(org.as_ref());
    ctx.authorize(s, caller, Permission::Administer, &scope)
        .await?;
    let c: Create = body(b)?;
    if !s.directory.read().exists(&scope) {
        return Err(not_found(&scope));
    }
    create_principal(s, ctx, caller, org.as_ref(), c).await
}

async fn list(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
) -> Result<Response, ApiProblem> {
    let scope = scope_of(org.as_ref());
    ctx.authorize(s, caller, Permission::View, &scope).await?;
    let dir = s.directory.read();
    if !dir.exists(&scope) {
        return Err(not_found(&scope));
    }
    let v: Vec<serde_json::Value> = dir
        .principals_in(org.as_ref().map(Name::as_str))
        .into_iter()
        .map(view)
        .collect();
    Ok(Json(json!({"principals": v})).into_response())
}

/// Looks up `id` within `org` (404 for a principal of another org: the caller was
/// authorized on this org only).
fn find(s: &AppState, org: Option<&Name>, id: &str) -> Result<Principal, ApiProblem> {
    s.directory
        .read()
        .principal(id)
        .filter(|p| p.org.as_deref() == org.map(Name::as_str))
        .cloned()
        .ok_or_else(|| not_found(format!("principal `{id}`")))
}

async fn get_one(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
) -> Result<Response, ApiProblem> {
    ctx.authorize(s, caller, Permission::View, &scope_of(org.as_ref()))
        .await?;
    Ok(Json(view(&find(s, org.as_ref(), id)?)).into_response())
}

async fn delete(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
) -> Result<Response, ApiProblem> {
    ctx.authorize(s, caller, Permission::Administer, &scope_of(org.as_ref()))
        .await?;
    let _seq = s.journal.sequencer.lock().await;
    let p = find(s, org.as_ref(), id)?;
    if p.id == caller.principal {
        return Err(problem(
            ProblemCode::BadRequest,
            "a principal cannot delete itself",
        ));
    }
    let seq = ctx
        .commit(
            s,
            caller,
            (Permission::Administer, &scope_of(org.as_ref())),
            org.as_ref(),
            &Event::PrincipalDelete { id: p.id },
        )
        .await?;
    Ok(Json(json!({"deleted": id, "seq": seq})).into_response())
}

async fn rotate(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
) -> Result<Response, ApiProblem> {
    ctx.authorize(s, caller, Permission::Administer, &scope_of(org.as_ref()))
        .await?;
    let p = find(s, org.as_ref(), id)?;
    if p.kind != PrincipalKind::Service {
        return Err(problem(
            ProblemCode::BadRequest,
            "only service principals have secrets",
        ));
    }
    let issued = issue_credential().await?;
    let _seq = s.journal.sequencer.lock().await;
    find(s, org.as_ref(), id)?;
    let seq = ctx
        .commit(
            s,
            caller,
            (Permission::Administer, &scope_of(org.as_ref())),
            org.as_ref(),
            &Event::PrincipalRotateSecret {
                id: p.id.clone(),
                secret_hash: issued.hash,
            },
        )
        .await?;
    Ok(no_store(
        Json(
            json!({"client_id": p.id, "client_secret": issued.client_secret.as_str(), "seq": seq}),
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
    ctx.authorize(s, caller, Permission::Administer, &scope_of(org.as_ref()))
        .await?;
    let _seq = s.journal.sequencer.lock().await;
    let p = find(s, org.as_ref(), id)?;
    // Tokens minted in the current second are revoked too (iat has second resolution).
    let not_before = bulwark_identity::jose::now_secs() + 1;
    let seq = ctx
        .commit(
            s,
            caller,
            (Permission::Administer, &scope_of(org.as_ref())),
            org.as_ref(),
            &Event::PrincipalRevokeTokens {
                id: p.id,
                not_before,
            },
        )
        .await?;
    Ok(Json(json!({"id": id, "not_before": not_before, "seq": seq})).into_response())
}

async fn set_binding(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    id: &str,
    b: &[u8],
) -> Result<Response, ApiProblem> {
    ctx.authorize(s, caller, Permission::Administer, &scope_of(org.as_ref()))
        .await?;
    let req: SetBinding = body(b)?;
    let _seq = s.journal.sequencer.lock().await;
    let p = find(s, org.as_ref(), id)?;
    if p.kind != PrincipalKind::Service {
        return Err(problem(
            ProblemCode::BadRequest,
            "only service principals have a token binding",
        ));
    }
    let seq = ctx
        .commit(
            s,
            caller,
            (Permission::Administer, &scope_of(org.as_ref())),
            org.as_ref(),
            &Event::PrincipalSetBinding {
                id: p.id,
                token_binding: req.token_binding,
            },
        )
        .await?;
    Ok(
        Json(json!({"id": id, "token_binding": req.token_binding.as_str(), "seq": seq}))
            .into_response(),
    )
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

/// `bulwark admin bootstrap`: the first operator, a service principal of the instance
/// holding `operator` on it. Refused (409) once any instance principal holds `operator`.
pub(crate) async fn bootstrap(
    state: &AppState,
    binding: Binding,
    actor: &str,
) -> Result<(String, zeroize::Zeroizing<String>, u64), ApiProblem> {
    let issued = issue_credential().await?;
    let _seq = state.journal.sequencer.lock().await;
    let already = {
        let dir = state.directory.read();
        dir.principals_in(None).iter().any(|p| {
            dir.relations().holds(
                &p.subject(),
                &Scope::Instance,
                bulwark_authz::Relation::Operator,
            )
        })
    };
    if already {
        return Err(problem(
            ProblemCode::AlreadyExists,
            "the instance has an operator already; create more with the API",
        ));
    }
    let create = Event::PrincipalCreate {
        id: issued.client_id.clone(),
        kind: PrincipalKind::Service,
        name: "bootstrap operator".into(),
        org: None,
        token_binding: binding,
        secret_hash: Some(issued.hash.clone()),
        jwk: None,
    };
    super::append_event(state, &create, actor, None, None).await?;
    let grant = Event::RelationGrant {
        scope: Scope::Instance.to_string(),
        relation: bulwark_authz::Relation::Operator.as_str().into(),
        subject: format!("service:{}", issued.client_id),
    };
    let seq = super::append_event(state, &grant, actor, None, None).await?;
    Ok((issued.client_id, issued.client_secret, seq))
}
