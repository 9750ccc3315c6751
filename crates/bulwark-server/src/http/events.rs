//! Publishing to nodes: `POST /v1/orgs/{org}/nodes/{node}/events` (org admins) with
//! `{"type", "payload"}` — signed here with the org's key — or `{"envelope": …}`, an
//! envelope signed elsewhere with a key of the org (relayed only if the gate admits it);
//! `POST /v1/orgs/{org}/event-keys/rotate`. The handlers parse, call
//! [`crate::ops::events`] and render.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_http::ApiProblem;
use http::StatusCode;
use serde_json::json;

use super::{Ctx, Table, body, body_or_default, name};
use crate::AppState;
use crate::authn::Caller;
use crate::error::Error;
use crate::ops::events as op;

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    t.add(
        Api,
        Post,
        "/v1/orgs/{org}/nodes/{node}/events",
        Rule::bearer(Administer, Org),
        publish_route,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/event-keys/rotate",
        Rule::bearer(Administer, Org),
        rotate_route,
    )
}

async fn publish_route(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, node)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let seq = op::publish_for(&s, &ctx.op(&caller), org, &node, || {
        body(&b).map_err(Error::from)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"seq": seq}))).into_response())
}

async fn rotate_route(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let r = op::rotate(&s, &ctx.op(&caller), org, || {
        body_or_default(&b).map_err(Error::from)
    })
    .await?;
    Ok(
        Json(json!({"key_id": r.key_id, "previous_valid_for_secs": r.previous_valid_for_secs}))
            .into_response(),
    )
}

/// [`op::publish_locked`] with its refusal as a problem, for `http/nodes.rs` (the
/// quarantine's `node.quarantine`) until that handler's logic moves into `ops/`.
pub(crate) async fn publish_locked(
    s: &AppState,
    org: &str,
    node: &str,
    kind: &str,
    payload: serde_json::Value,
    actor: &str,
) -> Result<u64, ApiProblem> {
    Ok(op::publish_locked(s, org, node, kind, payload, actor).await?)
}
