//! Secrets under `/v1/orgs/{org}/apps/{app}/envs/{env}/secrets`: put (a new version), get
//! the value (latest or `?version=N`), metadata, list, delete (a tombstone version),
//! destroy (crypto-shred one version), restore. The handlers parse, call
//! [`crate::ops::secrets`] and render; the read path itself (rate limits per node and per
//! org → authorize, journaled denial → exists → journal the read, fail-closed → still live
//! → digest and AEAD) is the state machine of `bulwark_secrets::read`, driven there.
//!
//! A read answers with `Cache-Control: no-store`, `X-Bulwark-Secret-Version`,
//! `X-Bulwark-Secret-KID` and `X-Bulwark-Journal-Seq` (the entry recording this very
//! read). Plaintext lives in zeroizing buffers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_core::Scope;
use bulwark_http::ApiProblem;
use bulwark_secrets::view::VersionMeta;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::{Ctx, Table, clamp_limit, name, secret_value_response};
use crate::AppState;
use crate::authn::Caller;
use crate::error::Error;
use crate::ops::secrets as op;

const BASE: &str = "/v1/orgs/{org}/apps/{app}/envs/{env}/secrets";

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    const SECRET: &str = "/v1/orgs/{org}/apps/{app}/envs/{env}/secrets/{name}";
    let write = Rule::bearer(WriteSecret, Env);
    t.add(Api, Get, BASE, Rule::bearer(View, Env), list)
        .add(Api, Put, SECRET, write, put_secret)
        .add(Api, Get, SECRET, Rule::bearer(ReadSecretValue, Env), read)
        .add(Api, Delete, SECRET, write, delete)
        .add(
            Api,
            Get,
            "/v1/orgs/{org}/apps/{app}/envs/{env}/secrets/{name}/metadata",
            Rule::bearer(View, Env),
            metadata,
        )
        .add(
            Api,
            Post,
            "/v1/orgs/{org}/apps/{app}/envs/{env}/secrets/{name}/versions/{version}/destroy",
            write,
            destroy,
        )
        .add(
            Api,
            Post,
            "/v1/orgs/{org}/apps/{app}/envs/{env}/secrets/{name}/versions/{version}/restore",
            write,
            restore,
        )
}

type EnvPath = Path<(String, String, String)>;
type SecretPath = Path<(String, String, String, String)>;

fn env_scope(org: &str, app: &str, env: &str) -> Result<Scope, ApiProblem> {
    Ok(Scope::Env(name(org)?, name(app)?, name(env)?))
}

fn meta_json(m: &VersionMeta) -> serde_json::Value {
    json!({
        "version": m.version,
        "state": m.state,
        "kek_kid": m.kek_kid,
        "size": m.size,
        "seq": m.seq,
        "created_ms": m.ts,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Names and versions only, paged by name.
async fn list(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env)): EnvPath,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    let page = op::list(
        &s,
        &ctx.op(&caller),
        &scope,
        q.after.as_deref(),
        clamp_limit(q.limit),
    )
    .await?;
    let items: Vec<serde_json::Value> = page
        .items
        .iter()
        .map(|(n, v)| json!({"name": n, "latest_version": v}))
        .collect();
    Ok(Json(json!({"secrets": items, "next_after": page.next_after})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    /// Standard base64 of the value (binary-safe).
    value: Zeroizing<String>,
}

/// The value of a put body (decoded only once the caller may write).
fn put_value(b: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let body: PutBody = serde_json::from_slice(b)
        .map_err(|_| Error::bad_request("expected {\"value\": \"<base64>\"}"))?;
    let encoded = body.value;
    Ok(Zeroizing::new(
        STANDARD
            .decode(encoded.as_bytes())
            .map_err(|_| Error::bad_request("value is not standard base64"))?,
    ))
}

async fn put_secret(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret)): SecretPath,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    let w = op::put(&s, &ctx.op(&caller), &scope, &secret, || put_value(&b)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": w.name, "version": w.version, "seq": w.seq})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ReadQuery {
    #[serde(default)]
    version: Option<u64>,
}

async fn read(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret)): SecretPath,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    let read = op::read(&s, &ctx.op(&caller), &scope, &secret, q.version).await?;
    Ok(secret_value_response(&read))
}

async fn metadata(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret)): SecretPath,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    let m = op::metadata(&s, &ctx.op(&caller), &scope, &secret).await?;
    let v: Vec<serde_json::Value> = m.versions.iter().map(meta_json).collect();
    Ok(Json(json!({"name": m.name, "versions": v})).into_response())
}

async fn delete(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret)): SecretPath,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    let d = op::delete(&s, &ctx.op(&caller), &scope, &secret).await?;
    Ok(Json(json!({"name": d.name, "tombstone_version": d.version, "seq": d.seq})).into_response())
}

/// Restores an old version's value as a new version (after a delete, or to roll back).
async fn restore(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret, version)): Path<(String, String, String, String, u64)>,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    let w = op::restore(&s, &ctx.op(&caller), &scope, &secret, version).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": w.name,
            "version": w.version,
            "restored_from": w.restored_from,
            "seq": w.seq,
        })),
    )
        .into_response())
}

async fn destroy(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret, version)): Path<(String, String, String, String, u64)>,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    let d = op::destroy(&s, &ctx.op(&caller), &scope, &secret, version).await?;
    Ok(Json(json!({"name": d.name, "destroyed_version": d.version, "seq": d.seq})).into_response())
}
