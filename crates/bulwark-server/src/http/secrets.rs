//! Secrets under `/v1/orgs/{org}/apps/{app}/envs/{env}/secrets`: put (a new version), get
//! the value (latest or `?version=N`), metadata, list, delete (a tombstone version),
//! destroy (crypto-shred one version).
//!
//! The read path, in DESIGN.md's order: authenticate (401) → authorize
//! `read_secret_value` (403, journaled; admin and deploy rights do not suffice) → exists
//! (404) → journal the read (an `access` entry with principal, secret, version, corr_id;
//! 503 `audit_unavailable` and no byte of the secret if it cannot be appended) → decrypt
//! and check the stored row against the journaled digest (500 `integrity_failure`,
//! counted and journaled, nothing returned) → answer with `Cache-Control: no-store`,
//! `X-Bulwark-Secret-Version`, `X-Bulwark-Secret-KID` and `X-Bulwark-Journal-Seq` (the
//! entry recording this very read). Plaintext lives in zeroizing buffers.
//!
//! Reads are rate-limited per org (and per node, once nodes exist) between authentication
//! and authorization: 429 `per_org_rate_limited` / `per_node_rate_limited` with
//! `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_authz::Permission;
use bulwark_core::{Problem, ProblemCode, RequestId, Scope};
use bulwark_http::ApiProblem;
use bulwark_ledger::entry::{Draft, EntryData, Kind, Outcome};
use bulwark_secrets::envelope::{self, Coordinates, Envelope};
use bulwark_secrets::view::{SecretEvent, SecretKey, VersionMeta, VersionState, digest};
use bulwark_store::{SecretBlobs, SecretRow};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::{Ctx, Table, clamp_limit, name, not_found, problem};
use bulwark_http::no_store;

use crate::AppState;
use crate::authn::Caller;
use crate::error::Error;

/// The stored envelopes, loaded at start-up and kept in step with the store: reads never
/// touch the disk. They hold only ciphertext.
#[derive(Default)]
pub struct SecretCache {
    rows: RwLock<HashMap<(SecretKey, u64), Envelope>>,
}

impl SecretCache {
    /// Loads every row of `blobs`.
    pub fn load(blobs: &dyn SecretBlobs) -> anyhow::Result<Self> {
        let mut rows = HashMap::new();
        for r in blobs.load_all()? {
            let key = SecretKey {
                org: r.org,
                app: r.app,
                env: r.env,
                name: r.name,
            };
            if let Some(ciphertext) = r.ciphertext {
                rows.insert(
                    (key, r.version),
                    Envelope {
                        kek_kid: r.kek_kid,
                        wrapped_dek: r.wrapped_dek,
                        ciphertext,
                    },
                );
            }
        }
        Ok(Self {
            rows: RwLock::new(rows),
        })
    }

    fn get(&self, key: &SecretKey, version: u64) -> Option<Envelope> {
        self.rows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(key.clone(), version))
            .cloned()
    }

    fn insert(&self, key: SecretKey, version: u64, env: Envelope) {
        self.rows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((key, version), env);
    }

    fn remove(&self, key: &SecretKey, version: u64) {
        self.rows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(key.clone(), version));
    }
}

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

fn secret_key(scope: &Scope, secret: &str) -> Result<SecretKey, ApiProblem> {
    if !bulwark_secrets::name::is_valid(secret) {
        return Err(problem(
            ProblemCode::BadRequest,
            "secret names match ^[a-z][a-z0-9_-]{0,62}$",
        ));
    }
    let Scope::Env(o, a, e) = scope else {
        return Err(problem(ProblemCode::BadRequest, "not an env"));
    };
    Ok(SecretKey {
        org: o.to_string(),
        app: a.to_string(),
        env: e.to_string(),
        name: secret.to_owned(),
    })
}

fn coordinates(key: &SecretKey, version: u64) -> Coordinates<'_> {
    Coordinates {
        org: &key.org,
        app: &key.app,
        env: &key.env,
        name: &key.name,
        version,
    }
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
    ctx.authorize(&s, &caller, Permission::View, &scope).await?;
    if !s.directory.read().exists(&scope) {
        return Err(not_found(&scope));
    }
    let limit = clamp_limit(q.limit);
    let page = s
        .secrets
        .view
        .list(&org, &app, &env, q.after.as_deref(), limit + 1);
    let more = page.len() > limit;
    let items: Vec<serde_json::Value> = page
        .iter()
        .take(limit)
        .filter(|(_, m)| m.state != VersionState::Tombstone)
        .map(|(n, m)| json!({"name": n, "latest_version": m.version}))
        .collect();
    let next = more
        .then(|| page.get(limit - 1).map(|(n, _)| n.clone()))
        .flatten();
    Ok(Json(json!({"secrets": items, "next_after": next})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    /// Standard base64 of the value (binary-safe).
    value: Zeroizing<String>,
}

async fn put_secret(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret)): SecretPath,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    ctx.authorize(&s, &caller, Permission::WriteSecret, &scope)
        .await?;
    let key = secret_key(&scope, &secret)?;
    let body: PutBody = serde_json::from_slice(&b).map_err(|_| {
        problem(
            ProblemCode::BadRequest,
            "expected {\"value\": \"<base64>\"}",
        )
    })?;
    let encoded = body.value;
    let value = Zeroizing::new(
        STANDARD
            .decode(encoded.as_bytes())
            .map_err(|_| problem(ProblemCode::BadRequest, "value is not standard base64"))?,
    );
    if value.len() > envelope::MAX_VALUE_LEN {
        return Err(problem(
            ProblemCode::BodyTooLarge,
            "secret values are at most 64 KiB",
        ));
    }
    let _seq = s.journal.sequencer.lock().await;
    if !s.directory.read().exists(&scope) {
        return Err(not_found(&scope));
    }
    // After an uncertain append failure the view may lag the journal: numbering a new
    // version from it could reuse one. Writes wait until the journal is healthy again.
    if !s.journal.ledger.is_healthy() {
        return Err(Error::JournalUnavailable("the journal is not healthy".into()).into());
    }
    let version = s.secrets.view.latest(&key).map_or(1, |m| m.version + 1);
    let seq = write_version(&s, &ctx, &caller, &scope, &key, version, &value, None).await?;
    super::events::secrets_changed(&s, &scope, &key.name);
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": key.name, "version": version, "seq": seq})),
    )
        .into_response())
}

/// Seals `value` as `version` of `key`, stores its row, caches it and journals the put
/// (re-deciding `write_secret` under the caller's sequencer first); the entry's seq.
#[allow(clippy::too_many_arguments)]
async fn write_version(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    scope: &Scope,
    key: &SecretKey,
    version: u64,
    value: &[u8],
    restored_from: Option<u64>,
) -> Result<u64, ApiProblem> {
    let sealed = envelope::seal(&s.secrets.kek, &coordinates(key, version), value)
        .map_err(|e| problem(ProblemCode::Internal, e.to_string()))?;
    let row = SecretRow {
        org: key.org.clone(),
        app: key.app.clone(),
        env: key.env.clone(),
        name: key.name.clone(),
        version,
        kek_kid: sealed.kek_kid.clone(),
        wrapped_dek: sealed.wrapped_dek.clone(),
        ciphertext: Some(sealed.ciphertext.clone()),
    };
    ctx.recheck(s, caller, Permission::WriteSecret, scope)?;
    store_new(s, row).await?;
    let event = SecretEvent::Put {
        key: key.clone(),
        version,
        digest: digest(&sealed),
        kek_kid: sealed.kek_kid.clone(),
        size: value.len() as u64,
        restored_from,
    };
    // In the cache before the journal makes the version readable (the view decides what
    // is readable; a read must never find a live version without its row).
    s.secrets.cache.insert(key.clone(), version, sealed);
    append(s, ctx, caller, &event).await
}

/// Stores a new version's row durably (never overwriting one).
async fn store_new(s: &AppState, row: SecretRow) -> Result<(), ApiProblem> {
    let blobs = s.secrets.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.put_new(&row))
        .await
        .map_err(|_| problem(ProblemCode::Internal, "store task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "secret store write failed");
            ApiProblem(
                Problem::new(ProblemCode::NotReady, "the secret store cannot write").retry_after(1),
            )
        })
}

async fn append(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    event: &SecretEvent,
) -> Result<u64, ApiProblem> {
    let draft = event
        .draft(
            &caller.subject.to_string(),
            ctx.corr.as_ref().map(RequestId::as_str),
        )
        .map_err(|_| problem(ProblemCode::Internal, "event does not encode"))?;
    s.journal
        .ledger
        .append(draft)
        .await
        .map(|a| a.seq)
        .map_err(|e| Error::from(e).into())
}

#[derive(Deserialize)]
struct ReadQuery {
    #[serde(default)]
    version: Option<u64>,
}

/// The `data` of a `secret.read` / `secret.integrity_fail` entry.
#[derive(Serialize)]
struct ReadRecord<'a> {
    name: &'a str,
    version: u64,
    kek_kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'a str>,
}
impl EntryData for ReadRecord<'_> {}

/// The live version a read asks for, or 404.
fn readable(
    s: &AppState,
    key: &SecretKey,
    version: Option<u64>,
) -> Result<VersionMeta, ApiProblem> {
    let versions = s
        .secrets
        .view
        .versions(key)
        .ok_or_else(|| not_found(format!("secret `{}`", key.name)))?;
    let latest = versions
        .last()
        .ok_or_else(|| not_found(format!("secret `{}`", key.name)))?;
    if latest.state == VersionState::Tombstone {
        return Err(not_found(format!("secret `{}` (deleted)", key.name)));
    }
    let want = version.unwrap_or(latest.version);
    let m = versions
        .iter()
        .find(|m| m.version == want)
        .ok_or_else(|| not_found(format!("version {want} of `{}`", key.name)))?;
    match m.state {
        VersionState::Live => Ok(m.clone()),
        VersionState::Destroyed => Err(not_found(format!(
            "version {want} of `{}` (destroyed)",
            key.name
        ))),
        VersionState::Tombstone => Err(not_found(format!("version {want} of `{}`", key.name))),
    }
}

async fn read(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret)): SecretPath,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    // Rate limits come after authentication and before authorization (DESIGN.md order).
    if let bulwark_authz::Subject::Node(node) = &caller.subject
        && let Err(secs) = s.secrets.node_reads.check(&node.to_string())
    {
        return Err(ApiProblem(
            Problem::new(
                ProblemCode::PerNodeRateLimited,
                "this node is over its secret-read rate",
            )
            .retry_after(secs),
        ));
    }
    // Keyed by the caller's org, not the path's: a principal of another org hammering this
    // org's paths (and getting 403s) must not use up this org's reads.
    let bucket = caller
        .org
        .as_ref()
        .map_or_else(|| "(instance)".to_owned(), ToString::to_string);
    if let Err(secs) = s.secrets.org_reads.check(&bucket) {
        return Err(ApiProblem(
            Problem::new(
                ProblemCode::PerOrgRateLimited,
                "this org is over its secret-read rate",
            )
            .retry_after(secs),
        ));
    }
    ctx.authorize(&s, &caller, Permission::ReadSecretValue, &scope)
        .await?;
    let key = secret_key(&scope, &secret)?;
    serve_read(
        &s,
        ctx.corr.as_ref(),
        &caller.subject.to_string(),
        &key,
        q.version,
    )
    .await
}

/// The read path after authorization: exists → journal the read (fail-closed) → re-check
/// liveness → digest + AEAD → the answer. Shared by the API and the node API.
pub(crate) async fn serve_read(
    s: &AppState,
    corr: Option<&RequestId>,
    actor: &str,
    key: &SecretKey,
    version: Option<u64>,
) -> Result<Response, ApiProblem> {
    let (value, meta, seq) = read_value(s, corr, actor, key, version).await?;
    respond(key, &meta, seq, &value)
}

/// One audited read: the plaintext (zeroizing), its version's metadata and the seq of the
/// entry recording the read.
pub(crate) async fn read_value(
    s: &AppState,
    corr: Option<&RequestId>,
    actor: &str,
    key: &SecretKey,
    version: Option<u64>,
) -> Result<(Zeroizing<Vec<u8>>, VersionMeta, u64), ApiProblem> {
    let meta = readable(s, key, version)?;

    // The stored row as of the decision (a destroy racing this read removes it from the
    // cache; the snapshot keeps the check below honest either way).
    let snapshot = s.secrets.cache.get(key, meta.version);
    // Journal the read before a byte is decrypted.
    let record = |kind_action: &str, outcome: Outcome, why: Option<&str>| {
        let mut d = Draft::new(
            Kind::Access,
            kind_action,
            bulwark_secrets::view::resource(key, meta.version),
        )
        .actor(actor)
        .org(key.org.as_str())
        .outcome(outcome);
        if let Some(c) = corr {
            d = d.corr_id(c.as_str());
        }
        d.data(&ReadRecord {
            name: &key.name,
            version: meta.version,
            kek_kid: meta.kek_kid.as_deref(),
            why,
        })
    };
    let draft = record("secret.read", Outcome::Ok, None)
        .map_err(|_| problem(ProblemCode::Internal, "entry does not encode"))?;
    let seq = s
        .journal
        .ledger
        .append(draft)
        .await
        .map_err(Error::from)?
        .seq;

    // Still live after the read was recorded? A destroy or delete journaled in between
    // wins: the value does not leave.
    let still = readable(s, key, Some(meta.version))
        .is_ok_and(|m| m.digest == meta.digest && m.state == VersionState::Live);
    if !still {
        return Err(not_found(format!(
            "version {} of `{}`",
            meta.version, key.name
        )));
    }
    let opened = match snapshot {
        None => Err("missing"),
        Some(sealed) => {
            if meta.digest.as_deref() != Some(digest(&sealed).as_str()) {
                Err("digest")
            } else {
                envelope::open(&s.secrets.kek, &coordinates(key, meta.version), &sealed)
                    .map_err(|_| "decrypt")
            }
        }
    };
    let value = match opened {
        Ok(v) => v,
        Err(why) => {
            metrics::counter!(bulwark_http::metrics::INTEGRITY_FAIL_TOTAL).increment(1);
            tracing::error!(
                why,
                resource = bulwark_secrets::view::resource(key, meta.version),
                "secret integrity failure"
            );
            if let Ok(d) = record("secret.integrity_fail", Outcome::Error, Some(why))
                && let Err(e) = s.journal.ledger.append(d).await
            {
                tracing::error!(error = %e, "could not journal an integrity failure");
            }
            return Err(problem(
                ProblemCode::IntegrityFailure,
                "the stored secret failed its integrity check; nothing was returned",
            ));
        }
    };
    Ok((value, meta, seq))
}

/// The answer to a read.
fn respond(
    key: &SecretKey,
    meta: &VersionMeta,
    seq: u64,
    value: &[u8],
) -> Result<Response, ApiProblem> {
    // Written by hand into one pre-sized zeroizing buffer: names match
    // ^[a-z][a-z0-9_-]*$ and base64 needs no escaping, so no serializer copies the value.
    let encoded = Zeroizing::new(STANDARD.encode(value));
    let mut body = Zeroizing::new(Vec::with_capacity(encoded.len() + key.name.len() + 64));
    body.extend_from_slice(b"{\"name\":\"");
    body.extend_from_slice(key.name.as_bytes());
    body.extend_from_slice(format!("\",\"version\":{},\"value\":\"", meta.version).as_bytes());
    body.extend_from_slice(encoded.as_bytes());
    body.extend_from_slice(b"\"}");
    let mut resp = no_store(
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Bytes::copy_from_slice(&body),
        )
            .into_response(),
    );
    let h = resp.headers_mut();
    h.insert("x-bulwark-secret-version", HeaderValue::from(meta.version));
    if let Some(kid) = meta
        .kek_kid
        .as_deref()
        .and_then(|k| HeaderValue::from_str(k).ok())
    {
        h.insert("x-bulwark-secret-kid", kid);
    }
    h.insert("x-bulwark-journal-seq", HeaderValue::from(seq));
    Ok(resp)
}

async fn metadata(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret)): SecretPath,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    ctx.authorize(&s, &caller, Permission::View, &scope).await?;
    let key = secret_key(&scope, &secret)?;
    let versions = s
        .secrets
        .view
        .versions(&key)
        .ok_or_else(|| not_found(format!("secret `{}`", key.name)))?;
    let v: Vec<serde_json::Value> = versions.iter().map(meta_json).collect();
    Ok(Json(json!({"name": key.name, "versions": v})).into_response())
}

async fn delete(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret)): SecretPath,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    ctx.authorize(&s, &caller, Permission::WriteSecret, &scope)
        .await?;
    let key = secret_key(&scope, &secret)?;
    let _seq = s.journal.sequencer.lock().await;
    let latest = s
        .secrets
        .view
        .latest(&key)
        .filter(|m| m.state != VersionState::Tombstone)
        .ok_or_else(|| not_found(format!("secret `{}`", key.name)))?;
    let version = latest.version + 1;
    ctx.recheck(&s, &caller, Permission::WriteSecret, &scope)?;
    let seq = append(
        &s,
        &ctx,
        &caller,
        &SecretEvent::Delete {
            key: key.clone(),
            version,
        },
    )
    .await?;
    super::events::secrets_changed(&s, &scope, &key.name);
    Ok(Json(json!({"name": key.name, "tombstone_version": version, "seq": seq})).into_response())
}

/// Restores an old version's value as a new version (after a delete, or to roll back).
/// The value is decrypted and re-sealed inside the server; the caller never sees it, so
/// `write_secret` suffices.
async fn restore(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, app, env, secret, version)): Path<(String, String, String, String, u64)>,
) -> Result<Response, ApiProblem> {
    let scope = env_scope(&org, &app, &env)?;
    ctx.authorize(&s, &caller, Permission::WriteSecret, &scope)
        .await?;
    let key = secret_key(&scope, &secret)?;
    let _seq = s.journal.sequencer.lock().await;
    if !s.journal.ledger.is_healthy() {
        return Err(Error::JournalUnavailable("the journal is not healthy".into()).into());
    }
    let versions = s
        .secrets
        .view
        .versions(&key)
        .ok_or_else(|| not_found(format!("secret `{}`", key.name)))?;
    let old = versions
        .iter()
        .find(|m| m.version == version && m.state == VersionState::Live)
        .cloned()
        .ok_or_else(|| not_found(format!("live version {version} of `{}`", key.name)))?;
    let next = versions.last().map_or(1, |m| m.version + 1);
    let value = s
        .secrets
        .cache
        .get(&key, old.version)
        .filter(|e| old.digest.as_deref() == Some(digest(e).as_str()))
        .and_then(|e| envelope::open(&s.secrets.kek, &coordinates(&key, old.version), &e).ok())
        .ok_or_else(|| {
            metrics::counter!(bulwark_http::metrics::INTEGRITY_FAIL_TOTAL).increment(1);
            tracing::error!(
                resource = bulwark_secrets::view::resource(&key, old.version),
                "secret integrity failure during restore"
            );
            problem(
                ProblemCode::IntegrityFailure,
                "the stored version failed its integrity check; nothing was restored",
            )
        })?;
    let seq = write_version(
        &s,
        &ctx,
        &caller,
        &scope,
        &key,
        next,
        &value,
        Some(old.version),
    )
    .await?;
    super::events::secrets_changed(&s, &scope, &key.name);
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": key.name, "version": next, "restored_from": old.version, "seq": seq})),
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
    ctx.authorize(&s, &caller, Permission::WriteSecret, &scope)
        .await?;
    let key = secret_key(&scope, &secret)?;
    let _seq = s.journal.sequencer.lock().await;
    let found = s
        .secrets
        .view
        .versions(&key)
        .and_then(|vs| vs.into_iter().find(|m| m.version == version))
        .filter(|m| m.state == VersionState::Live)
        .ok_or_else(|| not_found(format!("live version {version} of `{}`", key.name)))?;
    ctx.recheck(&s, &caller, Permission::WriteSecret, &scope)?;
    // Journal first: a destroy that is not recorded must not happen.
    let seq = append(
        &s,
        &ctx,
        &caller,
        &SecretEvent::Destroy {
            key: key.clone(),
            version: found.version,
        },
    )
    .await?;
    s.secrets.cache.remove(&key, version);
    let blobs = s.secrets.blobs.clone();
    let k = key.clone();
    let shred = tokio::task::spawn_blocking(move || {
        blobs.destroy(&k.org, &k.app, &k.env, &k.name, version)
    })
    .await;
    if !matches!(shred, Ok(Ok(()))) {
        // The journal says destroyed and the view refuses reads; the bytes are erased
        // at the next start (rows of destroyed versions are shredded on load).
        tracing::error!(
            resource = bulwark_secrets::view::resource(&key, version),
            "erasing a destroyed version failed; retried at start-up"
        );
    }
    super::events::secrets_changed(&s, &scope, &key.name);
    Ok(Json(json!({"name": key.name, "destroyed_version": version, "seq": seq})).into_response())
}

/// Erases stored rows of versions the journal says are destroyed (a destroy whose erase
/// failed, or a crash between journal and store).
pub fn shred_destroyed(
    view: &bulwark_secrets::view::SecretsView,
    blobs: &dyn SecretBlobs,
    cache: &SecretCache,
) {
    let rows = cache
        .rows
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    for (key, version) in rows {
        let destroyed = view.versions(&key).is_some_and(|vs| {
            vs.iter()
                .any(|m| m.version == version && m.state == VersionState::Destroyed)
        });
        if destroyed {
            cache.remove(&key, version);
            if let Err(e) = blobs.destroy(&key.org, &key.app, &key.env, &key.name, version) {
                tracing::error!(error = %e, "erasing a destroyed secret version failed");
            }
        }
    }
}
