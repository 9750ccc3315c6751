//! The tenant tree over HTTP: orgs, apps and envs; create, list, get, disable, enable.
//! The operations are in [`crate::ops::tenants`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_core::{Name, Scope};
use bulwark_http::ApiProblem;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, body, name};
use crate::AppState;
use crate::authn::Caller;
use crate::ops::tenants::{self, Children};

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    // Creating or disabling a scope takes `administer` on its parent; reading, `view` on it.
    let orgs = Rule::Caller {
        reason: "lists only the orgs the caller may view",
    };
    t.add(
        Api,
        Post,
        "/v1/orgs",
        Rule::bearer(Administer, Instance),
        create_org,
    )
    .add(Api, Get, "/v1/orgs", orgs, list_orgs)
    .add(Api, Get, "/v1/orgs/{org}", Rule::bearer(View, Org), get_org)
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/disable",
        Rule::bearer(Administer, Instance),
        disable_org,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/enable",
        Rule::bearer(Administer, Instance),
        enable_org,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/apps",
        Rule::bearer(Administer, Org),
        create_app,
    )
    .add(
        Api,
        Get,
        "/v1/orgs/{org}/apps",
        Rule::bearer(View, Org),
        get_org_apps,
    )
    .add(
        Api,
        Get,
        "/v1/orgs/{org}/apps/{app}",
        Rule::bearer(View, App),
        get_app,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/apps/{app}/disable",
        Rule::bearer(Administer, Org),
        disable_app,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/apps/{app}/enable",
        Rule::bearer(Administer, Org),
        enable_app,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/apps/{app}/envs",
        Rule::bearer(Administer, App),
        create_env,
    )
    .add(
        Api,
        Get,
        "/v1/orgs/{org}/apps/{app}/envs",
        Rule::bearer(View, App),
        get_app_envs,
    )
    .add(
        Api,
        Get,
        "/v1/orgs/{org}/apps/{app}/envs/{env}",
        Rule::bearer(View, Env),
        get_env,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/apps/{app}/envs/{env}/disable",
        Rule::bearer(Administer, App),
        disable_env,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/apps/{app}/envs/{env}/enable",
        Rule::bearer(Administer, App),
        enable_env,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
}

/// Creates the child named in the body `b` under `parent` (the body is read only once the
/// caller is authorized on the parent).
async fn create(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    parent: Scope,
    b: &[u8],
) -> Result<Response, ApiProblem> {
    let c = tenants::create(state, &ctx.op(caller), parent, || {
        body::<Create>(b).and_then(|c| name(&c.name))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"scope": c.scope.to_string(), "seq": c.seq})),
    )
        .into_response())
}

/// Disables or enables `scope`.
async fn set_disabled(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    scope: Scope,
    disabled: bool,
) -> Result<Response, ApiProblem> {
    let t = tenants::set_disabled(state, &ctx.op(caller), scope, disabled).await?;
    Ok(
        Json(json!({"scope": t.scope.to_string(), "disabled": t.disabled, "seq": t.seq}))
            .into_response(),
    )
}

/// Describes an existing scope.
async fn describe(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    scope: Scope,
) -> Result<Response, ApiProblem> {
    let d = tenants::describe(state, &ctx.op(caller), scope).await?;
    let names = |v: &[Name]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let mut v = json!({
        "scope": d.scope.to_string(),
        "disabled": d.disabled.map(|s| s.to_string()),
    });
    if let Some(o) = v.as_object_mut() {
        match &d.children {
            Children::Apps(apps) => {
                o.insert("apps".into(), json!(names(apps)));
            }
            Children::Envs(envs) => {
                o.insert("envs".into(), json!(names(envs)));
            }
            Children::None => {}
        }
    }
    Ok(Json(v).into_response())
}

async fn create_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    create(&s, &ctx, &caller, Scope::Instance, &b).await
}

/// The orgs the caller may view.
async fn list_orgs(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiProblem> {
    let visible: Vec<String> = tenants::visible_orgs(&s, &caller)
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Json(json!({"orgs": visible})))
}

async fn get_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    describe(&s, &ctx, &caller, Scope::Org(name(&org)?)).await
}

async fn disable_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    set_disabled(&s, &ctx, &caller, Scope::Org(name(&org)?), true).await
}

async fn enable_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    set_disabled(&s, &ctx, &caller, Scope::Org(name(&org)?), false).await
}

async fn create_app(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    create(&s, &ctx, &caller, Scope::Org(name(&org)?), &b).await
}

async fn get_org_apps(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    describe(&s, &ctx, &caller, Scope::Org(name(&org)?)).await
}

async fn get_app(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app)): Path<(String, String)>,
) -> Result<Response, ApiProblem> {
    describe(&s, &ctx, &caller, Scope::App(name(&org)?, name(&app)?)).await
}

async fn disable_app(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app)): Path<(String, String)>,
) -> Result<Response, ApiProblem> {
    set_disabled(
        &s,
        &ctx,
        &caller,
        Scope::App(name(&org)?, name(&app)?),
        true,
    )
    .await
}

async fn enable_app(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app)): Path<(String, String)>,
) -> Result<Response, ApiProblem> {
    set_disabled(
        &s,
        &ctx,
        &caller,
        Scope::App(name(&org)?, name(&app)?),
        false,
    )
    .await
}

async fn create_env(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    create(&s, &ctx, &caller, Scope::App(name(&org)?, name(&app)?), &b).await
}

async fn get_app_envs(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app)): Path<(String, String)>,
) -> Result<Response, ApiProblem> {
    describe(&s, &ctx, &caller, Scope::App(name(&org)?, name(&app)?)).await
}

async fn get_env(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env)): Path<(String, String, String)>,
) -> Result<Response, ApiProblem> {
    describe(
        &s,
        &ctx,
        &caller,
        Scope::Env(name(&org)?, name(&app)?, name(&env)?),
    )
    .await
}

async fn disable_env(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env)): Path<(String, String, String)>,
) -> Result<Response, ApiProblem> {
    let scope = Scope::Env(name(&org)?, name(&app)?, name(&env)?);
    set_disabled(&s, &ctx, &caller, scope, true).await
}

async fn enable_env(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env)): Path<(String, String, String)>,
) -> Result<Response, ApiProblem> {
    let scope = Scope::Env(name(&org)?, name(&app)?, name(&env)?);
    set_disabled(&s, &ctx, &caller, scope, false).await
}
