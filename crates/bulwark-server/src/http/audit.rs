//! `GET /v1/orgs/{org}/audit/entries`: an org's journal entries for its auditors, each
//! with its `seq` so that inclusion proofs can be fetched from the public proof endpoints.
//!
//! Entries are found by scanning forward from `from` (bounded per request; the answer says
//! where to continue). An index by org would make sparse orgs cheaper; it is not built yet.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::Permission;
use bulwark_core::Scope;
use bulwark_http::ApiProblem;
use bulwark_ledger::entry::Entry;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, clamp_limit, name, not_found};
use crate::AppState;
use crate::authn::Caller;
use crate::error::Error;

/// Entries examined per request at most.
const SCAN_BUDGET: u64 = 65_536;
const CHUNK: u64 = 1024;

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
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::ReadAudit, &scope)
        .await?;
    if !s.directory.read().exists(&scope) {
        return Err(not_found(&scope));
    }
    let limit = clamp_limit(q.limit);
    let size = s.journal.ledger.size();
    let start = q.from.unwrap_or(0).min(size);
    let end = start.saturating_add(SCAN_BUDGET).min(size);
    let ledger = s.journal.ledger.clone();
    let want = org.to_string();
    let (found, next) = tokio::task::spawn_blocking(move || {
        let mut found: Vec<Entry> = Vec::new();
        let mut at = start;
        while at < end && found.len() < limit {
            let to = (at + CHUNK).min(end);
            for stored in ledger.read_entries(at, to)? {
                at = stored.seq + 1;
                if let Ok(e) = Entry::from_canonical(&stored.body)
                    && e.org.as_deref() == Some(want.as_str())
                {
                    found.push(e);
                    if found.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok::<_, bulwark_ledger::journal::StoreError>((found, at))
    })
    .await
    .map_err(Error::internal)?
    .map_err(Error::from)?;
    Ok(Json(json!({
        "org": org.to_string(),
        "entries": found,
        "next_from": (next < size).then_some(next),
        "tree_size": size,
    }))
    .into_response())
}
