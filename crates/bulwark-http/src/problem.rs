//! Problem responses (RFC 9457).
//!
//! Handlers and layers return a problem as a response carrying a [`PendingProblem`]
//! extension; the outermost layer renders it with the request id and counts refusals. A
//! problem that never meets that layer is still rendered (with request id `-`), so no error
//! leaves as an empty or HTML body.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bulwark_core::{Problem, problem::CONTENT_TYPE};
use http::{HeaderValue, StatusCode, header};

/// A problem on its way to the observe layer.
#[derive(Debug, Clone)]
pub struct PendingProblem {
    /// The problem.
    pub problem: Problem,
    /// Whether it is a refusal by the hardening stack (counted in `rejected_total`).
    pub refusal: bool,
}

/// A handler's error: `Err(ApiProblem(..))` renders as problem+json.
#[derive(Debug, Clone)]
pub struct ApiProblem(pub Problem);

impl From<Problem> for ApiProblem {
    fn from(p: Problem) -> Self {
        Self(p)
    }
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        pending(self.0, false)
    }
}

/// Lets handlers that answer `Result<Response, Response>` use `?` on problems.
impl From<ApiProblem> for Response {
    fn from(p: ApiProblem) -> Self {
        p.into_response()
    }
}

/// A refusal by a hardening layer: rendered as problem+json, counted in
/// `rejected_total{reason}` and logged with its reason by the observe layer.
pub fn refusal(problem: Problem) -> Response {
    pending(problem, true)
}

fn pending(problem: Problem, refusal: bool) -> Response {
    let mut resp = render(&problem, "-");
    resp.extensions_mut()
        .insert(PendingProblem { problem, refusal });
    resp
}

/// Renders `problem` as the whole response, with `Retry-After` when it has a retry hint.
pub fn render(problem: &Problem, request_id: &str) -> Response {
    let status =
        StatusCode::from_u16(problem.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&problem.to_wire(request_id)).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(secs) = problem.retry_after_seconds {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Marks a response `Cache-Control: no-store` (anything carrying a credential, a token or
/// a secret value).
pub fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Replaces the body of `resp` with `problem` rendered for `request_id`, keeping the other
/// headers a handler set (e.g. `WWW-Authenticate`).
pub fn rerender(resp: Response, problem: &Problem, request_id: &str) -> Response {
    let (mut parts, _) = resp.into_parts();
    let fresh = render(problem, request_id);
    let (fresh_parts, body) = fresh.into_parts();
    for (name, value) in &fresh_parts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.status = fresh_parts.status;
    Response::from_parts(parts, body)
}
