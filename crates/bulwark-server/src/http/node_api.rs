//! The node API, on its own mTLS listener: the node's identity is its certificate's
//! SPIFFE id (never a header), checked against the directory's record of its enrolment.
//! `GET /v1/nodes/{id}/secrets/{name}` reads a secret of the env the node is bound to
//! (`bound_node`), with the secrets read path of `api::secrets` (per-node rate limit,
//! journaled read, fail-closed). A node naming another node gets 403 `node_mismatch`,
//! journaled.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::Response;
use bulwark_authz::{Permission, Relation, Subject};
use bulwark_core::{Problem, ProblemCode, RequestId, Scope};
use bulwark_http::ApiProblem;
use bulwark_ledger::entry::{Draft, Kind, Outcome};
use http::request::Parts;
use serde::Deserialize;

use super::secrets::serve_read;
use crate::AppState;

/// The node routes (served on the node listener only): the certificate's node must be the
/// path's `{id}`.
pub(super) fn routes(t: super::Table) -> super::Table {
    use super::table::{Plane::Node, Rule, Verb::*};
    t.add(Node, Get, "/v1/nodes/{id}/secrets", Rule::Node, read_env)
        .add(
            Node,
            Get,
            "/v1/nodes/{id}/secrets/{name}",
            Rule::Node,
            read_secret,
        )
        .add(Node, Post, "/v1/nodes/{id}/renew", Rule::Node, renew)
        .add(
            Node,
            Get,
            "/v1/nodes/{id}/events",
            Rule::Node,
            events_stream,
        )
        .add(
            Node,
            Get,
            "/v1/nodes/{id}/event-keys",
            Rule::Node,
            event_keys,
        )
}

/// The authorization subject of a node: `node:<org>_<node>` (org and node names are DNS
/// labels without `_`, so the pair is unambiguous).
pub fn node_subject(org: &str, node: &str) -> Subject {
    Subject::Node(format!("{org}_{node}").into())
}

/// A node authenticated by its client certificate.
pub struct NodeCaller {
    org: String,
    node: String,
    subject: Subject,
    /// The serial of the certificate it presented.
    serial: String,
}

fn refuse(reason: &'static str) -> ApiProblem {
    crate::authn::count_failure(reason);
    ApiProblem(Problem::new(
        ProblemCode::Unauthorized,
        "a node certificate of this instance is required",
    ))
}

impl FromRequestParts<Arc<AppState>> for NodeCaller {
    type Rejection = ApiProblem;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let leaf = parts
            .extensions
            .get::<bulwark_http::ClientCertLeaf>()
            .ok_or_else(|| refuse("node_cert_missing"))?;
        let (serial, ids) = bulwark_pki::serial_and_spiffe_ids(&leaf.0)
            .ok_or_else(|| refuse("client_cert_unparsable"))?;
        let [id] = ids.as_slice() else {
            return Err(refuse("node_cert_no_spiffe_id"));
        };
        let (org, node) = match bulwark_pki::ca::SpiffeId::parse(&s.pki.trust_domain, id) {
            Some((org, bulwark_pki::ca::Workload::Node, node)) => (org, node),
            Some(_) => return Err(refuse("node_cert_not_a_node")),
            None => return Err(refuse("node_cert_foreign_trust_domain")),
        };
        let (org, node) = (org.as_str(), node.as_str());
        let known = s
            .directory
            .read()
            .node(org, node)
            .is_some_and(|n| n.spiffe_id.as_deref() == Some(id.as_str()));
        if !known {
            return Err(refuse("node_unknown"));
        }
        // The handshake's judge, once more: a revocation or quarantine that landed since
        // is refused here even before the connection is closed.
        match s.pki.peer_judge.judge_parsed(&serial, &ids) {
            Ok(()) => {}
            Err("node_quarantined") => {
                crate::authn::count_failure("node_quarantined");
                return Err(ApiProblem(Problem::new(
                    ProblemCode::PermissionDenied,
                    "this node is quarantined",
                )));
            }
            Err(reason) => return Err(refuse(reason)),
        }
        Ok(Self {
            org: org.to_owned(),
            node: node.to_owned(),
            subject: node_subject(org, node),
            serial,
        })
    }
}

/// `GET /v1/nodes/{id}/events`: the node's signed envelopes as server-sent events (id =
/// the journal seq). `Last-Event-ID` absent: from now; an integer N: everything after N
/// first (from the journal's backlog), then live; anything else: 400 `invalid_cursor`.
/// 501 `signed_event_bus_not_provisioned` unless the gate has all five ports. A
/// subscriber that falls [`crate::events::SUBSCRIBER_BUFFER`] envelopes behind is
/// disconnected; a quarantined node's stream is closed with its connection.
async fn events_stream(
    State(s): State<Arc<AppState>>,
    who: NodeCaller,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    use axum::response::IntoResponse as _;
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt as _;
    let corr = parts.extensions.get::<RequestId>();
    if id != who.node {
        return Err(mismatch(&s, &who, &id, corr).await);
    }
    s.events.gate.provisioned().map_err(|m| {
        ApiProblem(Problem::new(
            ProblemCode::SignedEventBusNotProvisioned,
            m.to_string(),
        ))
    })?;
    let cursor = match parts.headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiProblem(Problem::new(
                        ProblemCode::InvalidCursor,
                        "Last-Event-ID is the integer id of an event",
                    ))
                })?,
        ),
    };
    let key = crate::events::node_key(&who.org, &who.node);
    // Subscribe before reading the backlog: nothing published in between is lost, and
    // anything seen twice is dropped by its seq below.
    let rx = s
        .events
        .bus
        .subscribe(&key)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "event fan-out unavailable");
            ApiProblem(
                Problem::new(ProblemCode::NotReady, "the event fan-out is unavailable")
                    .retry_after(5),
            )
        })?
        .ok_or_else(|| {
            ApiProblem(
                Problem::new(
                    ProblemCode::TooBusy,
                    "this node has as many event streams open as it may",
                )
                .retry_after(5),
            )
        })?;
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
    let live =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
    let stream = futures_util::stream::iter(backlog)
        .chain(live)
        .scan(0u64, |last, p| {
            let fresh = p.seq > *last;
            if fresh {
                *last = p.seq;
            }
            std::future::ready(Some(fresh.then_some(p)))
        })
        .filter_map(std::future::ready)
        .map(|p| {
            Ok::<_, std::convert::Infallible>(
                Event::default()
                    .id(p.seq.to_string())
                    .event(&*p.kind)
                    .data(&*p.json),
            )
        });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// `GET /v1/nodes/{id}/event-keys`: the node's org's signing keys (public) with their
/// transition times, for the agent's own checks.
async fn event_keys(
    State(s): State<Arc<AppState>>,
    who: NodeCaller,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    let corr = parts.extensions.get::<RequestId>();
    if id != who.node {
        return Err(mismatch(&s, &who, &id, corr).await);
    }
    let ring = s.events.view.rings().get(&who.org).unwrap_or_default();
    let keys: Vec<&bulwark_events::PublishedKey> = ring.keys().collect();
    Ok(axum::response::IntoResponse::into_response(axum::Json(
        serde_json::json!({"org": who.org, "keys": keys}),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewRequest {
    csr: String,
}

/// `POST /v1/nodes/{id}/renew`: a fresh certificate for the same SPIFFE id from a CSR
/// (the agent makes a new key), over the node's current certificate. Journaled
/// (`cert.issue` with the node) before it leaves; limited by the node's rate.
async fn renew(
    State(s): State<Arc<AppState>>,
    who: NodeCaller,
    parts: Parts,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiProblem> {
    let corr = parts.extensions.get::<RequestId>();
    if id != who.node {
        return Err(mismatch(&s, &who, &id, corr).await);
    }
    if let Err(secs) = s.secrets.node_reads.check(&who.subject.to_string()) {
        return Err(ApiProblem(
            Problem::new(
                ProblemCode::PerNodeRateLimited,
                "this node is over its request rate",
            )
            .retry_after(secs),
        ));
    }
    let req: RenewRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiProblem(Problem::new(
            ProblemCode::BadRequest,
            format!("invalid JSON body: {e}"),
        ))
    })?;
    let spiffe = bulwark_pki::ca::SpiffeId::new(
        &s.pki.trust_domain,
        &who.org,
        bulwark_pki::ca::Workload::Node,
        &who.node,
    )
    .map_err(|_| ApiProblem(Problem::new(ProblemCode::Internal, "invalid SPIFFE id")))?;
    let signed = super::certs::sign(
        &s,
        &req.csr,
        &spiffe,
        bulwark_pki::ca::Workload::Node,
        Some(s.pki.node_cert_ttl),
    )?;
    let event = bulwark_directory::Event::CertIssue {
        org: who.org.clone(),
        spiffe_id: spiffe.to_string(),
        serial: signed.serial.clone(),
        not_after: signed.not_after,
        node: Some(who.node.clone()),
        renewed_from: Some(who.serial.clone()),
    };
    let org = bulwark_core::Name::parse(&who.org).ok();
    // Each certificate renews once, and not once revoked: a thief renewing a stolen
    // certificate locks the node out of renewing it (a signal), and revoking the stolen
    // one revokes the renewals made from it.
    let _seq = s.journal.sequencer.lock().await;
    {
        let dir = s.directory.read();
        if dir.cert_revoked(&who.serial) {
            return Err(refuse("cert_revoked"));
        }
        if dir
            .cert(&who.serial)
            .is_some_and(|c| c.renewed_to.is_some())
        {
            crate::authn::count_failure("renewal_reused");
            return Err(ApiProblem(Problem::new(
                ProblemCode::AlreadyExists,
                "this certificate was renewed already; renew with the newest one",
            )));
        }
    }
    let seq = super::append_event(
        &s,
        &event,
        &who.subject.to_string(),
        org.as_ref(),
        corr.map(RequestId::as_str),
    )
    .await?;
    Ok(signed.response(&s, &spiffe, seq))
}

async fn mismatch(
    s: &AppState,
    who: &NodeCaller,
    id: &str,
    corr: Option<&RequestId>,
) -> ApiProblem {
    crate::authn::count_failure("node_mismatch");
    journal_denial(
        s,
        who,
        format!("org/{}/node/{id}", who.org),
        "node_mismatch",
        corr,
    )
    .await;
    ApiProblem(Problem::new(
        ProblemCode::NodeMismatch,
        "a node acts only as itself",
    ))
}

#[derive(Deserialize)]
struct ReadQuery {
    #[serde(default)]
    version: Option<u64>,
}

async fn journal_denial(
    s: &AppState,
    who: &NodeCaller,
    resource: String,
    reason: &str,
    corr: Option<&RequestId>,
) {
    let mut d = Draft::new(Kind::Access, "node.secret_read", resource)
        .actor(who.subject.to_string())
        .org(who.org.as_str())
        .outcome(Outcome::Denied);
    if let Some(c) = corr {
        d = d.corr_id(c.as_str());
    }
    if let Ok(d) = d.data(&DenialData { reason })
        && let Err(e) = s.journal.ledger.append(d).await
    {
        tracing::error!(error = %e, "could not journal a node denial");
    }
}

#[derive(serde::Serialize)]
pub(crate) struct DenialData<'a> {
    reason: &'a str,
}
impl bulwark_ledger::entry::EntryData for DenialData<'_> {}

/// What every node read checks first: the path's node is the certificate's, the node and
/// org rates, the one env it is bound to, and `read_secret_value` there (denials journaled).
async fn bound_env(
    s: &AppState,
    who: &NodeCaller,
    id: &str,
    corr: Option<&RequestId>,
) -> Result<bulwark_secrets::view::SecretKey, ApiProblem> {
    if id != who.node {
        return Err(mismatch(s, who, id, corr).await);
    }
    if let Err(secs) = s.secrets.node_reads.check(&who.subject.to_string()) {
        return Err(ApiProblem(
            Problem::new(
                ProblemCode::PerNodeRateLimited,
                "this node is over its secret-read rate",
            )
            .retry_after(secs),
        ));
    }
    if let Err(secs) = s.secrets.org_reads.check(&who.org) {
        return Err(ApiProblem(
            Problem::new(
                ProblemCode::PerOrgRateLimited,
                "this org is over its secret-read rate",
            )
            .retry_after(secs),
        ));
    }
    let envs: Vec<Scope> = s
        .directory
        .read()
        .relations()
        .scopes_of(&who.subject)
        .into_iter()
        .filter(|(scope, rels)| {
            matches!(scope, Scope::Env(..)) && rels.contains(&Relation::BoundNode)
        })
        .map(|(scope, _)| scope)
        .collect();
    let [env] = envs.as_slice() else {
        crate::authn::count_failure("node_not_bound");
        journal_denial(
            s,
            who,
            format!("org/{}/node/{}", who.org, who.node),
            "not bound to exactly one env",
            corr,
        )
        .await;
        return Err(ApiProblem(Problem::new(
            ProblemCode::PermissionDenied,
            "the node is not bound to exactly one env",
        )));
    };
    let decision =
        s.directory
            .read()
            .relations()
            .check(&who.subject, Permission::ReadSecretValue, env);
    if !decision.allowed {
        crate::authn::count_failure("permission_denied");
        journal_denial(s, who, env.to_string(), &decision.reason.to_string(), corr).await;
        return Err(ApiProblem(Problem::new(
            ProblemCode::PermissionDenied,
            decision.reason.to_string(),
        )));
    }
    let Scope::Env(o, a, e) = env else {
        return Err(ApiProblem(Problem::new(
            ProblemCode::Internal,
            "not an env",
        )));
    };
    Ok(bulwark_secrets::view::SecretKey {
        org: o.to_string(),
        app: a.to_string(),
        env: e.to_string(),
        name: String::new(),
    })
}

async fn read_secret(
    State(s): State<Arc<AppState>>,
    who: NodeCaller,
    parts: Parts,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiProblem> {
    let corr = parts.extensions.get::<RequestId>();
    let mut key = bound_env(&s, &who, &id, corr).await?;
    if !bulwark_secrets::name::is_valid(&name) {
        return Err(ApiProblem(Problem::new(
            ProblemCode::BadRequest,
            "bad secret name",
        )));
    }
    key.name = name;
    serve_read(&s, corr, &who.subject.to_string(), &key, q.version).await
}

/// `GET /v1/nodes/{id}/secrets`: every live secret of the node's env as one
/// `BULWARK_SECRETS_V1` file (each read journaled, as for single reads).
async fn read_env(
    State(s): State<Arc<AppState>>,
    who: NodeCaller,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    let corr = parts.extensions.get::<RequestId>();
    let env = bound_env(&s, &who, &id, corr).await?;
    let listed = s.secrets.view.list(
        &env.org,
        &env.app,
        &env.env,
        None,
        bulwark_secrets::file::MAX_KEYS + 1,
    );
    let names: Vec<String> = listed
        .into_iter()
        .filter(|(_, m)| m.state == bulwark_secrets::view::VersionState::Live)
        .map(|(n, _)| n)
        .collect();
    if names.len() > bulwark_secrets::file::MAX_KEYS {
        return Err(ApiProblem(Problem::new(
            ProblemCode::BadRequest,
            "more secrets than one secrets file holds",
        )));
    }
    let mut values = Vec::with_capacity(names.len());
    for name in names {
        let key = bulwark_secrets::view::SecretKey {
            name: name.clone(),
            ..env.clone()
        };
        let (value, _, _) =
            super::secrets::read_value(&s, corr, &who.subject.to_string(), &key, None).await?;
        values.push((name, value));
    }
    let count = values.len();
    let file = bulwark_secrets::file::render_named(values)
        .map_err(|e| ApiProblem(Problem::new(ProblemCode::BadRequest, e.to_string())))?;
    let mut resp = bulwark_http::no_store(axum::response::IntoResponse::into_response((
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        axum::body::Bytes::copy_from_slice(&file),
    )));
    resp.headers_mut()
        .insert("x-bulwark-secrets-count", http::HeaderValue::from(count));
    Ok(resp)
}
