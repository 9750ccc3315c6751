//! The node API, on its own mTLS listener: the node's identity is its certificate's
//! SPIFFE id (never a header), checked against the directory's record of its enrolment
//! ([`NodeCaller`]). `GET /v1/nodes/{id}/secrets/{name}` reads a secret of the env the node
//! is bound to (`bound_node`), `GET /v1/nodes/{id}/secrets` the whole env as one
//! `BULWARK_SECRETS_V1` file, both with the audited read of [`crate::ops::secrets`]
//! (per-node and per-org rates, journaled read, fail-closed); the events stream and the
//! event keys come from [`crate::ops::node_api`]. A node naming another node gets 403
//! `node_mismatch`, journaled.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::Response;
use bulwark_core::{Problem, ProblemCode, RequestId};
use bulwark_http::ApiProblem;
use http::request::Parts;
use serde::Deserialize;

use super::secret_value_response;
use crate::AppState;
use crate::ops::node_api::{self as op, Node};

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

/// A node authenticated by its client certificate.
pub struct NodeCaller(Node);

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
        Ok(Self(Node {
            org: org.to_owned(),
            node: node.to_owned(),
            subject: crate::ops::node_subject(org, node),
            serial,
        }))
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
    NodeCaller(who): NodeCaller,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    use axum::response::IntoResponse as _;
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt as _;
    let corr = parts.extensions.get::<RequestId>();
    let last_event_id = parts.headers.get("last-event-id").map(|v| v.as_bytes());
    let sub = op::events(&s, &who, &id, corr, last_event_id).await?;
    let live = futures_util::stream::unfold(sub.live, |mut rx| async move {
        rx.recv().await.map(|p| (p, rx))
    });
    // Anything seen twice (in the backlog and live) is dropped by its seq.
    let stream = futures_util::stream::iter(sub.backlog)
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
    NodeCaller(who): NodeCaller,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    let corr = parts.extensions.get::<RequestId>();
    let keys = op::event_keys(&s, &who, &id, corr).await?;
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
    NodeCaller(who): NodeCaller,
    parts: Parts,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiProblem> {
    let corr = parts.extensions.get::<RequestId>();
    op::same_node(&s, &who, &id, corr).await?;
    if let Err(secs) = crate::ops::secrets::read_rate(
        &s,
        "secret-reads/node",
        &who.subject.to_string(),
        s.secrets.node_reads,
    )
    .await
    {
        return Err(crate::error::Error::from(
            crate::ops::secrets::SecretsError::NodeRateLimited {
                retry_after: secs,
                what: "request",
            },
        )
        .into());
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

#[derive(Deserialize)]
struct ReadQuery {
    #[serde(default)]
    version: Option<u64>,
}

async fn read_secret(
    State(s): State<Arc<AppState>>,
    NodeCaller(who): NodeCaller,
    parts: Parts,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiProblem> {
    let corr = parts.extensions.get::<RequestId>();
    let read = op::read_secret(&s, &who, &id, corr, &name, q.version).await?;
    Ok(secret_value_response(&read))
}

/// `GET /v1/nodes/{id}/secrets`: every live secret of the node's env as one
/// `BULWARK_SECRETS_V1` file (each read journaled, as for single reads).
async fn read_env(
    State(s): State<Arc<AppState>>,
    NodeCaller(who): NodeCaller,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    let corr = parts.extensions.get::<RequestId>();
    let env = op::read_env(&s, &who, &id, corr).await?;
    let mut resp = bulwark_http::no_store(axum::response::IntoResponse::into_response((
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        axum::body::Bytes::copy_from_slice(&env.file),
    )));
    resp.headers_mut().insert(
        "x-bulwark-secrets-count",
        http::HeaderValue::from(env.count),
    );
    Ok(resp)
}
