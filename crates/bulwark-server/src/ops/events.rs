//! The signed event bus: publishing to a node (signed here with the org's key, or an
//! envelope signed elsewhere and relayed only if the gate admits it), org key rotation,
//! `secrets.changed` after a secret changed, and a node's subscription (the backlog after
//! its cursor, then live). [`publish`] is the internal API other parts use.

use std::sync::Arc;

use bulwark_authz::Permission;
use bulwark_core::{Name, Problem, ProblemCode, Scope};
use bulwark_events::{Envelope, Unsigned};
use bulwark_identity::jose::now_secs;
use bulwark_ledger::entry::{Draft, Kind};
use serde::Deserialize;
use serde_json::json;

use super::Request;
use crate::AppState;
use crate::error::Error;
use crate::events::{KEY_TRANSITION_SECS, KeyEntry, PublishEntry, Published, node_key};

/// Types only the server itself may publish: `node.quarantine` makes an agent wipe its
/// secrets and stop, so it is sent only as part of a real quarantine.
pub const RESERVED_TYPES: &[&str] = &["node.quarantine"];

/// Why the bus refused.
#[derive(Debug)]
pub enum EventsError {
    /// The gate refused the envelope.
    Refused(bulwark_events::Refusal),
    /// A port of the gate is missing.
    NotProvisioned(bulwark_events::MissingPort),
    /// `Last-Event-ID` is not the integer id of an event.
    InvalidCursor,
    /// The node has as many streams open as it may.
    TooBusy,
    /// The fan-out port cannot answer.
    FanoutUnavailable,
}

impl From<EventsError> for Error {
    fn from(e: EventsError) -> Self {
        match e {
            EventsError::Refused(r) => Error::refused(
                ProblemCode::EventRefused,
                format!("the gate refused the envelope: {}", r.as_str()),
            ),
            EventsError::NotProvisioned(m) => {
                Error::refused(ProblemCode::SignedEventBusNotProvisioned, m.to_string())
            }
            EventsError::InvalidCursor => Error::refused(
                ProblemCode::InvalidCursor,
                "Last-Event-ID is the integer id of an event",
            ),
            EventsError::FanoutUnavailable => Error::Refused(
                Problem::new(ProblemCode::NotReady, "the event fan-out is unavailable")
                    .retry_after(5),
            ),
            EventsError::TooBusy => Error::Refused(
                Problem::new(
                    ProblemCode::TooBusy,
                    "this node has as many event streams open as it may",
                )
                .retry_after(5),
            ),
        }
    }
}

/// A gate refusal, counted.
fn refused(r: bulwark_events::Refusal) -> EventsError {
    metrics::counter!(bulwark_http::metrics::EVENTS_REFUSED_TOTAL, "reason" => r.as_str())
        .increment(1);
    EventsError::Refused(r)
}

/// A 500 whose detail is shown as it always was.
fn internal(detail: &str) -> Error {
    Error::refused(ProblemCode::Internal, detail)
}

/// Journals a new current key for `org`, the previous one accepted for `transition`
/// seconds more. Call under the sequencer.
async fn new_org_key(
    s: &AppState,
    org: &str,
    actor: &str,
    transition: i64,
) -> Result<bulwark_crypto::SigningKey, Error> {
    let key = s.events.keys.create(org, transition > 0).map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "cannot store an org event key");
        internal("cannot store the org's event key")
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
        .map_err(|_| internal("cannot encode"))?;
    if let Err(e) = s.journal.ledger.append(draft).await {
        // Not journaled, so no ring knows it: it must not sign anything.
        s.events.keys.forget(org, key.kid());
        return Err(e.into());
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
) -> Result<u64, Error> {
    let _seq = s.journal.sequencer.lock().await;
    publish_locked(s, org, node, kind, payload, actor).await
}

/// [`publish`] for a caller that holds the sequencer.
pub async fn publish_locked(
    s: &AppState,
    org: &str,
    node: &str,
    kind: &str,
    payload: serde_json::Value,
    actor: &str,
) -> Result<u64, Error> {
    let key = match s.events.keys.current(org) {
        Some(k) => k,
        None => new_org_key(s, org, actor, KEY_TRANSITION_SECS).await?,
    };
    let mut id = [0u8; 12];
    bulwark_crypto::fill_random(&mut id).map_err(|_| internal("random source failed"))?;
    let env = Unsigned::new(
        bulwark_identity::jose::b64(&id),
        kind,
        org,
        node,
        now_secs(),
        payload,
    )
    .and_then(|u| u.sign(&key))
    .map_err(|e| Error::bad_request(format!("not an envelope: {e}")))?;
    admit_and_send(s, env, actor).await
}

/// The gate, the journal, the fan-out. Call under the sequencer.
async fn admit_and_send(s: &AppState, env: Envelope, actor: &str) -> Result<u64, Error> {
    let gate = s
        .events
        .gate
        .provisioned()
        .map_err(EventsError::NotProvisioned)?;
    gate.admit(&env, &env.org, &env.node, now_secs())
        .map_err(refused)?;
    let resource = format!("org/{}/node/{}/event/{}", env.org, env.node, env.id);
    let draft = Draft::new(Kind::State, "event.publish", resource)
        .actor(actor)
        .org(env.org.as_str())
        .data(&PublishEntry {
            envelope: env.clone(),
        })
        .map_err(|_| internal("cannot encode"))?;
    let seq = s.journal.ledger.append(draft).await?.seq;
    let json = serde_json::to_string(&env).map_err(|_| internal("cannot encode"))?;
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

/// What an org admin publishes: `type` (and `payload`), signed here, or an `envelope`
/// signed elsewhere with a key of the org.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    envelope: Option<serde_json::Value>,
}

/// Publishes to `node` of `org` for an org admin; the journal seq. `input` is decoded only
/// once the caller is authorized (403 before 400).
pub async fn publish_for(
    s: &AppState,
    req: &Request<'_>,
    org: Name,
    node: &str,
    input: impl FnOnce() -> Result<PublishRequest, Error>,
) -> Result<u64, Error> {
    let scope = Scope::Org(org.clone());
    req.authorize(s, Permission::Administer, &scope).await?;
    let node = super::name(node)?;
    let req_body = input()?;
    if s.directory
        .read()
        .node(org.as_str(), node.as_str())
        .is_none()
    {
        return Err(Error::not_found(format!("node `{node}`")));
    }
    let actor = req.caller.subject.to_string();
    match (req_body.kind, req_body.payload, req_body.envelope) {
        (Some(kind), _, None) if RESERVED_TYPES.contains(&kind.as_str()) => {
            Err(Error::bad_request(format!(
                "`{kind}` is sent by the server itself (quarantine the node instead)"
            )))
        }
        (Some(kind), payload, None) => {
            let _seq = s.journal.sequencer.lock().await;
            req.recheck(s, Permission::Administer, &scope)?;
            publish_locked(
                s,
                org.as_str(),
                node.as_str(),
                &kind,
                payload.unwrap_or(json!({})),
                &actor,
            )
            .await
        }
        (None, None, Some(raw)) => {
            let bytes =
                serde_json::to_vec(&raw).map_err(|_| Error::bad_request("not an envelope"))?;
            let env = Envelope::parse(&bytes)
                .map_err(|e| Error::bad_request(format!("not an envelope: {e}")))?;
            if env.org != org.as_str() || env.node != node.as_str() {
                return Err(refused(bulwark_events::Refusal::WrongRecipient).into());
            }
            if RESERVED_TYPES.contains(&env.kind.as_str()) {
                return Err(Error::bad_request(format!(
                    "`{}` is sent by the server itself",
                    env.kind
                )));
            }
            let _seq = s.journal.sequencer.lock().await;
            req.recheck(s, Permission::Administer, &scope)?;
            admit_and_send(s, env, &actor).await
        }
        _ => Err(Error::bad_request(
            "give `type` (and `payload`), or a signed `envelope`",
        )),
    }
}

/// How to rotate an org's event key.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the previous key stays valid: 0 (it was compromised) to 3600 s
    /// [default: 300].
    #[serde(default)]
    transition_secs: Option<i64>,
}

/// A rotated key.
pub struct Rotated {
    /// The new current key's id.
    pub key_id: String,
    /// How long the previous key stays valid.
    pub previous_valid_for_secs: i64,
}

/// Makes a new current event key for `org`. `input` is decoded only once the caller is
/// authorized.
pub async fn rotate(
    s: &AppState,
    req: &Request<'_>,
    org: Name,
    input: impl FnOnce() -> Result<RotateRequest, Error>,
) -> Result<Rotated, Error> {
    let scope = Scope::Org(org.clone());
    req.authorize(s, Permission::Administer, &scope).await?;
    let transition = input()?.transition_secs.unwrap_or(KEY_TRANSITION_SECS);
    if !(0..=3600).contains(&transition) {
        return Err(Error::bad_request("transition_secs is between 0 and 3600"));
    }
    if !s.directory.read().exists(&scope) {
        return Err(Error::not_found(&scope));
    }
    let _seq = s.journal.sequencer.lock().await;
    req.recheck(s, Permission::Administer, &scope)?;
    let key = new_org_key(s, org.as_str(), &req.caller.subject.to_string(), transition).await?;
    Ok(Rotated {
        key_id: key.kid().to_owned(),
        previous_valid_for_secs: transition,
    })
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
                    .scopes_of(&super::node_subject(org.as_str(), &n.name))
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
                let p = Problem::from(e);
                tracing::warn!(
                    node = node.as_str(),
                    detail = p.detail.as_str(),
                    "secrets.changed not published"
                );
            }
        }
    });
}

/// A node's subscription: what it missed after its cursor (from the journal-folded
/// backlog), then live envelopes.
pub struct Subscription {
    /// Envelopes after the cursor, oldest first (empty without a cursor).
    pub backlog: Vec<Published>,
    /// Live envelopes, subscribed before the backlog was read: nothing published in
    /// between is lost (a subscriber drops what it sees twice by its seq).
    pub live: bulwark_shared::Subscription,
}

/// Subscribes `node` of `org` to its envelopes. `last_event_id`: the raw `Last-Event-ID`
/// (absent: from now; an integer N: everything after N first; anything else refused).
/// Refused unless the gate has all five ports.
pub async fn subscribe(
    s: &AppState,
    org: &str,
    node: &str,
    last_event_id: Option<&[u8]>,
) -> Result<Subscription, Error> {
    s.events
        .gate
        .provisioned()
        .map_err(EventsError::NotProvisioned)?;
    let cursor = match last_event_id {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or(EventsError::InvalidCursor)?,
        ),
    };
    let key = node_key(org, node);
    // Subscribe before reading the backlog: nothing published in between is lost.
    let live = s
        .events
        .bus
        .subscribe(&key)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "event fan-out unavailable");
            EventsError::FanoutUnavailable
        })?
        .ok_or(EventsError::TooBusy)?;
    let backlog = match cursor {
        None => Vec::new(),
        Some(n) => {
            let (v, complete) = s.events.view.after(&key, n);
            if !complete {
                tracing::warn!(
                    node = key.as_str(),
                    after = n,
                    "resume older than the backlog"
                );
            }
            v
        }
    };
    Ok(Subscription { backlog, live })
}
