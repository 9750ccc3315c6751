//! `GET /v1/orgs/{org}/audit/entries`: an org's journal entries for its auditors (see
//! [`crate::ops::audit`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_http::ApiProblem;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, clamp_limit, name};
use crate::AppState;
use crate::authn::Caller;
use crate::ops::audit;

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    t.add(
        Api,
        Get,
        "/v1/orgs/{org}/audit/entries",
        Rule::bearer(ReadAudit, Org),
        entries,
    )
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn entries(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<Page>,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let page = audit::entries(&s, &ctx.op(&caller), &org, q.from, clamp_limit(q.limit)).await?;
    Ok(Json(json!({
        "org": org.to_string(),
        "entries": page.entries,
        "next_from": page.next_from,
        "tree_size": page.tree_size,
    }))
    .into_response())
}
