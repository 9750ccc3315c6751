//! Publishing to nodes: `POST /v1/orgs/{org}/nodes/{node}/events` (org admins) with
//! `{"type", "payload"}` — signed here with the org's key — or `{"envelope": …}`, an
//! envelope signed elsewhere with a key of the org (relayed only if the gate admits it);
//! `POST /v1/orgs/{org}/event-keys/rotate`. [`publish`] is the internal API other parts use.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Response};
use bulwark_authz::Permission;
use bulwark_core::{Name, Problem, ProblemCode, Scope};
use bulwark_events::{Envelope, Unsigned};
use bulwark_http::ApiProblem;
use bulwark_identity::jose::now_secs;
use bulwark_ledger::entry::{Draft, Kind};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, body, body_or_default, name, not_found, problem};
use crate::AppState;
use crate::authn::Caller;
use crate::error::Error;
use crate::events::{KEY_TRANSITION_SECS, KeyEntry, PublishEntry, Published, node_key};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    envelope: Option<serde_json::Value>,
}

fn refused(r: bulwark_events::Refusal) -> ApiProblem {
    metrics::counter!(bulwark_http::metrics::EVENTS_REFUSED_TOTAL, "reason" => r.as_str())
        .increment(1);
    ApiProblem(Problem::new(
        ProblemCode::EventRefused,
        format!("the gate refused the envelope: {}", r.as_str()),
    ))
}

fn not_provisioned(missing: bulwark_events::MissingPort) -> ApiProblem {
    ApiProblem(Problem::new(
        ProblemCode::SignedEventBusNotProvisioned,
        missing.to_string(),
    ))
}

/// Journals a new current key for `org`, the previous one accepted for `transition`
/// seconds more. Call under the sequencer.
async fn new_org_key(
    s: &AppState,
    org: &str,
    actor: &str,
    transition: i64,
) -> Result<bulwark_crypto::SigningKey, ApiProblem> {
    let key = s.events.keys.create(org, transition > 0).map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "cannot store an org event key");
        problem(ProblemCode::Internal, "cannot store the org's event key")
    })?;
    let draft = Draft::new(Kind::State, "events.key", format!("org/{org}/event-key"))
        .actor(actor)
        .org(org)
        .data(&KeyEntry {
            org: org.to_owned(),
            key_id: key.kid().to_owned(),
            public: bulwark_identity::jose::b64(key.verifying_key().as_bytes()),
            previous_until: now_secs() + transition,
        })
        .map_err(|_| problem(ProblemCode::Internal, "cannot encode"))?;
    if let Err(e) = s.journal.ledger.append(draft).await {
        // Not journaled, so no ring knows it: it must not sign anything.
        s.events.keys.forget(org, key.kid());
        return Err(Error::from(e).into());
    }
    Ok(key)
}

/// Publishes `kind`/`payload` from `org` to `node`: signs with the org's key (made on first
/// use), admits through the gate, journals, fans out. The internal API; the journal seq
/// (the SSE id) on success.
pub async fn publish(
    s: &AppState,
    org: &str,
    node: &str,
    kind: &str,
    payload: serde_json::Value,
    actor: &str,
) -> Result<u64, ApiProblem> {
    let _seq = s.journal.sequencer.lock().await;
    publish_locked(s, org, node, kind, payload, actor).await
}

/// Types only the server itself may publish: `node.quarantine` makes an agent wipe its
/// secrets and stop, so it is sent only as part of a real quarantine.
pub const RESERVED_TYPES: &[&str] = &["node.quarantine"];

/// [`publish`] for a caller that holds the sequencer.
pub(crate) async fn publish_locked(
    s: &AppState,
    org: &str,
    node: &str,
    kind: &str,
    payload: serde_json::Value,
    actor: &str,
) -> Result<u64, ApiProblem> {
    let key = match s.events.keys.current(org) {
        Some(k) => k,
        None => new_org_key(s, org, actor, KEY_TRANSITION_SECS).await?,
    };
    let mut id = [0u8; 12];
    bulwark_crypto::fill_random(&mut id)
        .map_err(|_| problem(ProblemCode::Internal, "random source failed"))?;
    let env = Unsigned::new(
        bulwark_identity::jose::b64(&id),
        kind,
        org,
        node,
        now_secs(),
        payload,
    )
    .and_then(|u| u.sign(&key))
    .map_err(|e| problem(ProblemCode::BadRequest, format!("not an envelope: {e}")))?;
    admit_and_send(s, env, actor).await
}

/// The gate, the journal, the fan-out. Call under the sequencer.
async fn admit_and_send(s: &AppState, env: Envelope, actor: &str) -> Result<u64, ApiProblem> {
    let gate = s.events.gate.provisioned().map_err(not_provisioned)?;
    gate.admit(&env, &env.org, &env.node, now_secs())
        .map_err(refused)?;
    let resource = format!("org/{}/node/{}/event/{}", env.org, env.node, env.id);
    let draft = Draft::new(Kind::State, "event.publish", resource)
        .actor(actor)
        .org(env.org.as_str())
        .data(&PublishEntry {
            envelope: env.clone(),
        })
        .map_err(|_| problem(ProblemCode::Internal, "cannot encode"))?;
    let seq = s
        .journal
        .ledger
        .append(draft)
        .await
        .map_err(Error::from)?
        .seq;
    let json =
        serde_json::to_string(&env).map_err(|_| problem(ProblemCode::Internal, "cannot encode"))?;
    metrics::counter!(bulwark_http::metrics::EVENTS_PUBLISHED_TOTAL).increment(1);
    // Journaled already: a fan-out failure is logged, not answered (subscribers resume
    // from the journal's backlog by `Last-Event-ID`).
    if let Err(e) = s
        .events
        .bus
        .publish(
            &node_key(&env.org, &env.node),
            Published {
                seq,
                kind: env.kind.as_str().into(),
                json: json.into(),
            },
        )
        .await
    {
        tracing::error!(seq, error = %e, "event fan-out failed");
    }
    Ok(seq)
}

async fn publish_route(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path((org, node)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::Administer, &scope)
        .await?;
    let node = name(&node)?;
    let req: PublishRequest = body(&b)?;
    if s.directory
        .read()
        .node(org.as_str(), node.as_str())
        .is_none()
    {
        return Err(not_found(format!("node `{node}`")));
    }
    let actor = caller.subject.to_string();
    let seq = match (req.kind, req.payload, req.envelope) {
        (Some(kind), _, None) if RESERVED_TYPES.contains(&kind.as_str()) => {
            return Err(problem(
                ProblemCode::BadRequest,
                format!("`{kind}` is sent by the server itself (quarantine the node instead)"),
            ));
        }
        (Some(kind), payload, None) => {
            let _seq = s.journal.sequencer.lock().await;
            ctx.recheck(&s, &caller, Permission::Administer, &scope)?;
            publish_locked(
                &s,
                org.as_str(),
                node.as_str(),
                &kind,
                payload.unwrap_or(json!({})),
                &actor,
            )
            .await?
        }
        (None, None, Some(raw)) => {
            let bytes = serde_json::to_vec(&raw)
                .map_err(|_| problem(ProblemCode::BadRequest, "not an envelope"))?;
            let env = Envelope::parse(&bytes)
                .map_err(|e| problem(ProblemCode::BadRequest, format!("not an envelope: {e}")))?;
            if env.org != org.as_str() || env.node != node.as_str() {
                return Err(refused(bulwark_events::Refusal::WrongRecipient));
            }
            if RESERVED_TYPES.contains(&env.kind.as_str()) {
                return Err(problem(
                    ProblemCode::BadRequest,
                    format!("`{}` is sent by the server itself", env.kind),
                ));
            }
            let _seq = s.journal.sequencer.lock().await;
            ctx.recheck(&s, &caller, Permission::Administer, &scope)?;
            admit_and_send(&s, env, &actor).await?
        }
        _ => {
            return Err(problem(
                ProblemCode::BadRequest,
                "give `type` (and `payload`), or a signed `envelope`",
            ));
        }
    };
    Ok((StatusCode::CREATED, Json(json!({"seq": seq}))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// How long the previous key stays valid: 0 (it was compromised) to 3600 s
    /// [default: 300].
    #[serde(default)]
    transition_secs: Option<i64>,
}

async fn rotate_route(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    let org: Name = name(&org)?;
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::Administer, &scope)
        .await?;
    let req: RotateRequest = body_or_default(&b)?;
    let transition = req.transition_secs.unwrap_or(KEY_TRANSITION_SECS);
    if !(0..=3600).contains(&transition) {
        return Err(problem(
            ProblemCode::BadRequest,
            "transition_secs is between 0 and 3600",
        ));
    }
    if !s.directory.read().exists(&scope) {
        return Err(not_found(&scope));
    }
    let _seq = s.journal.sequencer.lock().await;
    ctx.recheck(&s, &caller, Permission::Administer, &scope)?;
    let key = new_org_key(&s, org.as_str(), &caller.subject.to_string(), transition).await?;
    Ok(Json(json!({"key_id": key.kid(), "previous_valid_for_secs": transition})).into_response())
}

/// After a secret of `env` changed: `secrets.changed` (names only, never values) to every
/// node bound to `env`, from a task of its own (the caller may hold the sequencer).
/// Best-effort: a node that misses it still refetches on its own schedule.
pub fn secrets_changed(s: &Arc<AppState>, env: &Scope, name: &str) {
    let Scope::Env(org, app, e) = env else {
        return;
    };
    let nodes: Vec<String> = {
        let d = s.directory.read();
        d.nodes_in(org.as_str())
            .into_iter()
            .filter(|n| !n.quarantined)
            .filter(|n| {
                d.relations()
                    .scopes_of(&super::node_api::node_subject(org.as_str(), &n.name))
                    .iter()
                    .any(|(sc, rels)| {
                        sc == env && rels.contains(&bulwark_authz::Relation::BoundNode)
                    })
            })
            .map(|n| n.name.clone())
            .collect()
    };
    if nodes.is_empty() {
        return;
    }
    let (s, org) = (s.clone(), org.to_string());
    let payload = json!({"app": app.as_str(), "env": e.as_str(), "name": name});
    tokio::spawn(async move {
        for node in nodes {
            if let Err(e) = publish(
                &s,
                &org,
                &node,
                "secrets.changed",
                payload.clone(),
                "bulwark",
            )
            .await
            {
                tracing::warn!(
                    node = node.as_str(),
                    detail = e.0.detail.as_str(),
                    "secrets.changed not published"
                );
            }
        }
    });
}
