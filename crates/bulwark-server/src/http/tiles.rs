//! The journal's HTTP read API: C2SP tlog-tiles under `/v1/audit/log/` and proof endpoints
//! under `/v1/audit/proof/`.
//!
//! Checkpoint, key, hash tiles and proofs reveal only hashes and are public. Entry bundles
//! reveal tenant metadata: on the API they are refused (403) unless the server runs with
//! `--insecure-serve-entry-bundles` (tests only, until the identity issue adds `audit:read`
//! tokens); on the admin socket they are always served.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use bulwark_core::{Problem, ProblemCode};
use bulwark_http::ApiProblem;
use bulwark_ledger::merkle::{verify_consistency, verify_inclusion};
use bulwark_ledger::tiles::{self, TileError};
use bulwark_ledger::verify::hex;
use serde_json::json;

use crate::AppState;
use crate::error::Error;

/// Who is asking: the public API or the local admin socket.
#[derive(Clone)]
struct AuditState {
    app: Arc<AppState>,
    entries_allowed: bool,
}

/// The audit routes, on the API and on the admin socket. Entry bundles are open on the
/// admin socket, and on the API only with the test hook.
pub(super) fn routes(t: super::Table) -> super::Table {
    use super::table::{Plane, Rule, ScopeFrom, Verb::Get};
    let hashes = Rule::Public {
        reason: "checkpoints, keys and proofs reveal only hashes",
    };
    let tile = if t.entry_bundles_on_api() {
        Rule::Public {
            reason: "test hook --insecure-serve-entry-bundles: entry bundles without a token",
        }
    } else {
        Rule::PartlyPublic {
            public: "hash tiles reveal only hashes",
            gated: "entry bundles reveal tenant metadata: instance auditors only",
            permission: bulwark_authz::Permission::ReadAudit,
            scope: ScopeFrom::Instance,
        }
    };
    let on_api = t.entry_bundles_on_api();
    let mut t = t;
    for (plane, entries_allowed, tile, hashes) in [
        (Plane::Api, on_api, tile, hashes),
        (Plane::Admin, true, Rule::AdminPeer, Rule::AdminPeer),
    ] {
        let state = move |app: &Arc<AppState>| AuditState {
            app: app.clone(),
            entries_allowed,
        };
        t = t
            .add_with(
                plane,
                Get,
                "/v1/audit/log/checkpoint",
                hashes,
                checkpoint,
                state,
            )
            .add_with(plane, Get, "/v1/audit/log/key", hashes, key, state)
            .add_with(
                plane,
                Get,
                "/v1/audit/log/tile/{*path}",
                tile,
                self::tile,
                state,
            )
            .add_with(
                plane,
                Get,
                "/v1/audit/proof/inclusion",
                hashes,
                inclusion,
                state,
            )
            .add_with(
                plane,
                Get,
                "/v1/audit/proof/consistency",
                hashes,
                consistency,
                state,
            );
    }
    t
}

fn text(body: String, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

async fn checkpoint(State(s): State<AuditState>) -> Result<Response, ApiProblem> {
    let note = s.app.journal.ledger.latest_checkpoint().ok_or_else(|| {
        ApiProblem(Problem::new(ProblemCode::NotReady, "no checkpoint yet").retry_after(1))
    })?;
    Ok(text(note, "no-cache"))
}

async fn key(State(s): State<AuditState>) -> Response {
    text(
        format!("{}\n", s.app.journal.ledger.verifier().vkey()),
        "max-age=3600",
    )
}

fn not_found(what: &str) -> ApiProblem {
    ApiProblem(Problem::new(ProblemCode::NotFound, what.to_owned()))
}

async fn tile(
    State(s): State<AuditState>,
    Path(path): Path<String>,
    parts: http::request::Parts,
) -> Result<Response, Response> {
    let t = tiles::parse(&path).map_err(|_| not_found("not a tile path"))?;
    let cache = if t.width == tiles::TILE_WIDTH {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let body = match t.level {
        Some(level) => s
            .app
            .journal
            .ledger
            .with_tree(|tree| tiles::hash_tile(tree, level, t.index, t.width))
            .ok_or_else(|| internal("tree unavailable"))?
            .map_err(|_: TileError| not_found("tile not in the tree"))?,
        None => {
            if !s.entries_allowed {
                // Entry bundles reveal tenant metadata: instance auditors only.
                let caller =
                    crate::authn::authenticate(&parts, &s.app, bulwark_identity::jose::now_secs())
                        .await
                        .map_err(IntoResponse::into_response)?;
                let action = crate::authn::Action {
                    method: "GET",
                    route: "/v1/audit/log/tile/{*path}",
                    corr_id: parts.extensions.get::<bulwark_core::RequestId>(),
                };
                crate::authn::authorize(
                    &s.app,
                    &caller,
                    bulwark_authz::Permission::ReadAudit,
                    &bulwark_core::Scope::Instance,
                    &action,
                )
                .await
                .map_err(IntoResponse::into_response)?;
            }
            let (from, to) = tiles::entry_range(t.index, t.width)
                .ok_or_else(|| not_found("tile not in the tree"))?;
            if to > s.app.journal.ledger.size() {
                return Err(not_found("tile not in the tree").into());
            }
            let ledger = s.app.journal.ledger.clone();
            let entries = tokio::task::spawn_blocking(move || ledger.read_entries(from, to))
                .await
                .map_err(|_| internal("read task failed"))?
                .map_err(Error::from)?;
            tiles::bundle(entries.iter().map(|e| e.body.as_slice()))
                .ok_or_else(|| internal("entry too large for a bundle"))?
        }
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response())
}

fn internal(why: &str) -> ApiProblem {
    Error::internal(format_args!("audit API: {why}")).into()
}

/// Parses `a=1&b=2` (our parameters are integers: no percent-decoding needed).
fn query(raw: Option<String>) -> HashMap<String, String> {
    raw.unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .take(16)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn param(q: &HashMap<String, String>, name: &str) -> Result<u64, ApiProblem> {
    q.get(name)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiProblem(Problem::new(
                ProblemCode::BadRequest,
                format!("query parameter `{name}` must be a non-negative integer"),
            ))
        })
}

fn bad_range(e: impl std::fmt::Display) -> ApiProblem {
    ApiProblem(Problem::new(ProblemCode::BadRequest, e.to_string()))
}

async fn inclusion(
    State(s): State<AuditState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiProblem> {
    let q = query(raw);
    let (index, size) = (param(&q, "index")?, param(&q, "size")?);
    let (leaf, root, proof) = s
        .app
        .journal
        .ledger
        .with_tree(|t| -> Result<_, ApiProblem> {
            let proof = t.inclusion_proof(index, size).map_err(bad_range)?;
            let leaf = t
                .leaf(index)
                .ok_or_else(|| bad_range("index not in the tree"))?;
            let root = t.root_at(size).map_err(bad_range)?;
            Ok((leaf, root, proof))
        })
        .ok_or_else(|| internal("tree unavailable"))??;
    debug_assert!(verify_inclusion(index, size, &leaf, &proof, &root));
    Ok(Json(json!({
        "index": index,
        "size": size,
        "leaf_hash": hex(&leaf),
        "root": hex(&root),
        "proof": proof.iter().map(hex).collect::<Vec<_>>(),
    })))
}

async fn consistency(
    State(s): State<AuditState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiProblem> {
    let q = query(raw);
    let (from, to) = (param(&q, "from")?, param(&q, "to")?);
    let (from_root, to_root, proof) = s
        .app
        .journal
        .ledger
        .with_tree(|t| -> Result<_, ApiProblem> {
            let proof = t.consistency_proof(from, to).map_err(bad_range)?;
            Ok((
                t.root_at(from).map_err(bad_range)?,
                t.root_at(to).map_err(bad_range)?,
                proof,
            ))
        })
        .ok_or_else(|| internal("tree unavailable"))??;
    debug_assert!(verify_consistency(from, to, &from_root, &to_root, &proof));
    Ok(Json(json!({
        "from": from,
        "to": to,
        "from_root": hex(&from_root),
        "to_root": hex(&to_root),
        "proof": proof.iter().map(hex).collect::<Vec<_>>(),
    })))
}
