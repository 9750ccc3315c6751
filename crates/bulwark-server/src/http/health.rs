//! The control-plane API router: health, readiness, version, metrics. Later issues add
//! their routers here.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use bulwark_core::{Problem, ProblemCode};
use bulwark_http::ApiProblem;
use serde_json::json;

use crate::AppState;

/// The API routes, before hardening.
pub fn api_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn healthz() -> Response {
    // Static bytes: this is the cheapest route and the one load balancers hammer.
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

async fn readyz(State(s): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiProblem> {
    match s.runtime.readiness.status() {
        Ok(()) => Ok(Json(json!({"status": "ready"}))),
        Err(reasons) => Err(ApiProblem(
            Problem::new(ProblemCode::NotReady, reasons.join("; ")).retry_after(1),
        )),
    }
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({"name": "bulwark", "version": env!("CARGO_PKG_VERSION")}))
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        s.runtime.metrics.render(),
    )
        .into_response()
}

/// 404 as a problem.
pub async fn not_found() -> ApiProblem {
    ApiProblem(Problem::new(
        ProblemCode::NotFound,
        "no route for this path",
    ))
}

/// 405 as a problem.
pub async fn method_not_allowed() -> ApiProblem {
    ApiProblem(Problem::new(
        ProblemCode::MethodNotAllowed,
        "this route does not accept this method",
    ))
}
