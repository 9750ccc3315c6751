//! The tenant tree: orgs, apps and envs; create, list, get, disable, enable.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::Permission;
use bulwark_core::{ProblemCode, Scope};
use bulwark_directory::Event;
use bulwark_http::ApiProblem;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, body, name, not_found, problem};
use crate::AppState;
use crate::authn::{Caller, decide};

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

fn created(scope: &Scope, seq: u64) -> Response {
    (
        StatusCode::CREATED,
        Json(json!({"scope": scope.to_string(), "seq": seq})),
    )
        .into_response()
}

/// Creates the child named in `b` under `parent`: `Administer` on the parent (decided
/// before the body is read), the parent must exist, the name must be free (checked and
/// appended under the sequencer).
async fn create(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    parent: Scope,
    b: &[u8],
) -> Result<Response, ApiProblem> {
    ctx.authorize(state, caller, Permission::Administer, &parent)
        .await?;
    let c: Create = body(b)?;
    let child = name(&c.name)?;
    let scope = match &parent {
        Scope::Instance => Scope::Org(child),
        Scope::Org(o) => Scope::App(o.clone(), child),
        Scope::App(o, a) => Scope::Env(o.clone(), a.clone(), child),
        Scope::Env(..) => return Err(problem(ProblemCode::BadRequest, "envs have no children")),
    };
    let _seq = state.journal.sequencer.lock().await;
    {
        let dir = state.directory.read();
        if !dir.exists(&parent) {
            return Err(not_found(&parent));
        }
        if dir.exists(&scope) {
            return Err(problem(
                ProblemCode::AlreadyExists,
                format!("{scope} exists"),
            ));
        }
    }
    let event = match &scope {
        Scope::Org(o) => Event::OrgCreate { org: o.to_string() },
        Scope::App(o, a) => Event::AppCreate {
            org: o.to_string(),
            app: a.to_string(),
        },
        Scope::Env(o, a, e) => Event::EnvCreate {
            org: o.to_string(),
            app: a.to_string(),
            env: e.to_string(),
        },
        Scope::Instance => {
            return Err(problem(
                ProblemCode::BadRequest,
                "cannot create the instance",
            ));
        }
    };
    let seq = ctx
        .commit(
            state,
            caller,
            (Permission::Administer, &parent),
            scope.org(),
            &event,
        )
        .await?;
    Ok(created(&scope, seq))
}

/// Disables or enables `scope`: `Administer` on its parent.
async fn set_disabled(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    scope: Scope,
    disabled: bool,
) -> Result<Response, ApiProblem> {
    let parent = scope.parent().unwrap_or(Scope::Instance);
    ctx.authorize(state, caller, Permission::Administer, &parent)
        .await?;
    let _seq = state.journal.sequencer.lock().await;
    if !state.directory.read().exists(&scope) {
        return Err(not_found(&scope));
    }
    let s = scope.to_string();
    let event = if disabled {
        Event::ScopeDisable { scope: s }
    } else {
        Event::ScopeEnable { scope: s }
    };
    let seq = ctx
        .commit(
            state,
            caller,
            (Permission::Administer, &parent),
            scope.org(),
            &event,
        )
        .await?;
    Ok(Json(json!({"scope": scope.to_string(), "disabled": disabled, "seq": seq})).into_response())
}

/// Describes an existing scope: `View` on it.
async fn describe(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    scope: Scope,
) -> Result<Response, ApiProblem> {
    ctx.authorize(state, caller, Permission::View, &scope)
        .await?;
    let dir = state.directory.read();
    if !dir.exists(&scope) {
        return Err(not_found(&scope));
    }
    let names = |v: Vec<&bulwark_core::Name>| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let children = match &scope {
        Scope::Org(o) => json!({"apps": names(dir.apps(o))}),
        Scope::App(o, a) => json!({"envs": names(dir.envs(o, a))}),
        _ => json!({}),
    };
    let mut v = json!({
        "scope": scope.to_string(),
        "disabled": dir.disabled_at(&scope).map(|s| s.to_string()),
    });
    if let (Some(o), Some(c)) = (v.as_object_mut(), children.as_object()) {
        o.extend(c.clone());
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
    let orgs: Vec<bulwark_core::Name> = s.directory.read().orgs().cloned().collect();
    let visible: Vec<String> = orgs
        .into_iter()
        .filter(|o| decide(&s, &caller, Permission::View, &Scope::Org(o.clone())).allowed)
        .map(|o| o.to_string())
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
