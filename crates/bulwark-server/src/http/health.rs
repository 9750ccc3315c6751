//! The control-plane API router: health, readiness, version, metrics. Later issues add
//! their routers here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use bulwark_core::{Problem, ProblemCode};
use bulwark_http::ApiProblem;
use serde_json::json;

use crate::AppState;

/// Health, readiness, version and metrics: probes and scrapers call them without
/// credentials.
pub(super) fn routes(t: super::Table) -> super::Table {
    use super::table::{Plane::Api, Rule, Verb::Get};
    t.add(
        Api,
        Get,
        "/healthz",
        Rule::Public {
            reason: "liveness probe: a constant answer",
        },
        healthz,
    )
    .add(
        Api,
        Get,
        "/readyz",
        Rule::Public {
            reason: "readiness probe: reasons name subsystems, never tenants",
        },
        readyz,
    )
    .add(
        Api,
        Get,
        "/version",
        Rule::Public {
            reason: "the build's name and version",
        },
        version,
    )
    .add(
        Api,
        Get,
        "/metrics",
        Rule::Public {
            reason: "Prometheus scrape: labels are route templates and reasons, never tenants",
        },
        metrics,
    )
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
