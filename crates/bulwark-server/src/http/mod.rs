//! The tenant-facing API under `/v1/`: the tenant tree, principals, relations, authz
//! checks and lookups, an org's audit entries.
//!
//! Every handler takes the same path: [`Caller`] (authenticate) → [`authorize`] on the
//! scope named by the path (before anything is looked up: 403 before 404) → validate
//! against the directory → append the event under the sequencer → answer.
//!
//! Every route of every plane (API, node API, admin socket) is declared in one
//! [`Table`], with its authorization [`Rule`]; the routers are built from it
//! ([`Table::router`]), so tests can walk [`route_table`] and a new route cannot escape
//! the cross-tenant matrix.

mod audit;
pub mod certs;
pub mod events;
pub mod health;
pub mod node_api;
pub mod nodes;
pub mod oauth;
pub(crate) mod principals;
mod relations;
pub mod secrets;
mod table;
mod tenants;
pub mod tiles;

pub use table::{Plane, RouteInfo, Rule, ScopeFrom, Table, Verb, route_table};

use axum::extract::{FromRequestParts, MatchedPath};
use bulwark_core::{Name, Problem, ProblemCode, RequestId};
use bulwark_directory::Event;
use bulwark_http::ApiProblem;
use http::Method;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::authn::Caller;
use crate::ops;

/// What a handler needs to know about its request besides its inputs.
pub struct Ctx {
    method: Method,
    route: String,
    corr: Option<RequestId>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            method: parts.method.clone(),
            route: parts
                .extensions
                .get::<MatchedPath>()
                .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned()),
            corr: parts.extensions.get::<RequestId>().cloned(),
        })
    }
}

impl Ctx {
    /// The operation request for `caller` on this HTTP request.
    pub fn op<'a>(&'a self, caller: &'a Caller) -> ops::Request<'a> {
        ops::Request {
            caller,
            method: self.method.as_str(),
            route: &self.route,
            corr: self.corr.as_ref(),
        }
    }
}

/// Appends a directory event; its seq once durable, 503 `audit_unavailable` otherwise.
pub(crate) async fn append_event(
    state: &AppState,
    event: &Event,
    actor: &str,
    org: Option<&Name>,
    corr: Option<&str>,
) -> Result<u64, ApiProblem> {
    Ok(ops::append_event(state, event, actor, org, corr).await?)
}

fn problem(code: ProblemCode, detail: impl Into<String>) -> ApiProblem {
    ApiProblem(Problem::new(code, detail))
}

/// A path segment as a tenant name (400 when it cannot be one).
fn name(raw: &str) -> Result<Name, ApiProblem> {
    Name::parse(raw).map_err(|e| problem(ProblemCode::BadRequest, format!("`{raw}`: {e}")))
}

/// A JSON body into `T` (problem+json 400 on failure).
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiProblem> {
    serde_json::from_slice(bytes)
        .map_err(|e| problem(ProblemCode::BadRequest, format!("invalid JSON body: {e}")))
}

/// An optional JSON body: empty means `T::default()`.
fn body_or_default<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiProblem> {
    if bytes.is_empty() {
        Ok(T::default())
    } else {
        body(bytes)
    }
}

/// Clamps a page size to 1–200 (default 50).
fn clamp_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(50).clamp(1, 200)
}

/// The answer to a secret read (API and node API): the value as JSON, `Cache-Control:
/// no-store`, `X-Bulwark-Secret-Version`, `X-Bulwark-Secret-KID` and
/// `X-Bulwark-Journal-Seq` (the entry recording this very read).
fn secret_value_response(read: &bulwark_secrets::read::Revealed) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use base64::Engine as _;
    use http::{HeaderValue, header};
    use zeroize::Zeroizing;
    // Written by hand into one pre-sized zeroizing buffer: names match
    // ^[a-z][a-z0-9_-]*$ and base64 needs no escaping, so no serializer copies the value.
    let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*read.value));
    let mut body = Zeroizing::new(Vec::with_capacity(encoded.len() + read.name.len() + 64));
    body.extend_from_slice(b"{\"name\":\"");
    body.extend_from_slice(read.name.as_bytes());
    body.extend_from_slice(format!("\",\"version\":{},\"value\":\"", read.meta.version).as_bytes());
    body.extend_from_slice(encoded.as_bytes());
    body.extend_from_slice(b"\"}");
    let mut resp = bulwark_http::no_store(
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            axum::body::Bytes::copy_from_slice(&body),
        )
            .into_response(),
    );
    let h = resp.headers_mut();
    h.insert(
        "x-bulwark-secret-version",
        HeaderValue::from(read.meta.version),
    );
    if let Some(kid) = read
        .meta
        .kek_kid
        .as_deref()
        .and_then(|k| HeaderValue::from_str(k).ok())
    {
        h.insert("x-bulwark-secret-kid", kid);
    }
    h.insert("x-bulwark-journal-seq", HeaderValue::from(read.seq));
    resp
}
