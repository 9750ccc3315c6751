//! The hardening stack, outermost first:
//!
//! 1. `observe`: request id, problem rendering, metrics, refusal logs;
//! 2. `rate_limit`: per-client GCRA, 429 `rate_limited` with `Retry-After`;
//! 3. `inflight`: a semaphore, 503 `too_busy`;
//! 4. `timeout`: the whole request, body included, 503 `timeout`;
//! 5. `body::guard`: body cap and decompression guard (413/415).
//!
//! Then routing. Every route, the fallback included, sits behind all five.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use bulwark_core::{Problem, ProblemCode, RequestId};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderName, HeaderValue, Method};
use tokio::sync::Semaphore;

use crate::limits::Limits;
use crate::metrics as m;
use crate::problem::{PendingProblem, refusal, rerender};

/// The header carrying the request id in both directions.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's socket address, inserted by the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The matched route template, carried on the response for the metrics label.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub Arc<str>);

/// Shared state of the hardening stack.
pub struct Hardening {
    limits: Limits,
    inflight: Arc<Semaphore>,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    decode_slots: Semaphore,
}

impl Hardening {
    /// Builds the stack's state from its limits.
    pub fn new(limits: Limits) -> Arc<Self> {
        let limiter = NonZeroU32::new(limits.rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Arc::new(Self {
            inflight: Arc::new(Semaphore::new(limits.max_inflight)),
            limits,
            limiter,
            clock: DefaultClock::default(),
            // Decoding is CPU- and memory-bound (up to the decoded cap each): at most two
            // per core at once, so a flood of compressed bodies cannot multiply either.
            decode_slots: Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            ),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Waits for a decoding slot (bounded by the request timeout around it).
    pub(crate) async fn decode_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.decode_slots.acquire().await.ok()
    }

    /// Forgets rate-limit state of clients that are idle; call periodically so memory stays
    /// bounded by the number of recently active clients.
    pub fn forget_idle_clients(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Wraps `router` in the hardening stack. The layers run before routing.
pub fn harden(router: Router, state: Arc<Hardening>) -> Router {
    Router::new()
        .fallback_service(router)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::body::guard,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(state.clone(), inflight))
        .layer(middleware::from_fn_with_state(state, rate_limit))
        .layer(middleware::from_fn(observe))
}

/// A layer for the inner router: records the matched route template on the response.
pub fn route_label(router: Router) -> Router {
    router.layer(middleware::from_fn(tag_route))
}

async fn tag_route(req: Request, next: Next) -> Response {
    let label: Option<Arc<str>> = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().into());
    let mut resp = next.run(req).await;
    if let Some(l) = label {
        resp.extensions_mut().insert(RouteLabel(l));
    }
    resp
}

// === impl observe ===

async fn observe(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| RequestId::parse(v.as_bytes()))
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(request_id.clone());
    let method = method_label(req.method());
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);

    let mut resp = next.run(req).await;

    if let Some(p) = resp.extensions_mut().remove::<PendingProblem>() {
        let code = p.problem.code.as_str();
        if p.refusal {
            metrics::counter!(m::REJECTED_TOTAL, "reason" => code).increment(1);
            tracing::warn!(
                reason = code,
                corr_id = request_id.as_str(),
                peer_addr = peer.map(|p| p.to_string()),
                status = p.problem.code.status(),
                "request refused"
            );
        } else {
            tracing::info!(
                code,
                corr_id = request_id.as_str(),
                peer_addr = peer.map(|p| p.to_string()),
                status = p.problem.code.status(),
                "request answered with a problem"
            );
        }
        resp = rerender(resp, &p.problem, request_id.as_str());
    }
    if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or_else(|| "-".to_owned(), |r| r.0.to_string());
    metrics::counter!(
        m::HTTP_REQUESTS_TOTAL,
        "route" => route,
        "method" => method,
        "status" => resp.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!(m::REQUEST_LATENCY_SECONDS).record(start.elapsed().as_secs_f64());
    resp
}

fn new_request_id() -> RequestId {
    let mut b = [0u8; 16];
    // On a failing system RNG the id is still unique enough to correlate logs: fall back
    // to the monotonic clock rather than refusing the request.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        let t = Instant::now().elapsed().as_nanos().to_le_bytes();
        b = t;
    }
    RequestId::from_random(b)
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

// === impl rate_limit ===

async fn rate_limit(State(h): State<Arc<Hardening>>, req: Request, next: Next) -> Response {
    if let (Some(limiter), Some(peer)) = (&h.limiter, req.extensions().get::<PeerAddr>())
        && let Err(not_until) = limiter.check_key(&peer.0.ip())
    {
        {
            let wait = not_until.wait_time_from(h.clock.now());
            let secs = retry_after_secs(wait);
            return refusal(
                Problem::new(
                    ProblemCode::RateLimited,
                    "request rate over the limit for this client",
                )
                .retry_after(secs),
            );
        }
    }
    next.run(req).await
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

// === impl inflight ===

async fn inflight(State(h): State<Arc<Hardening>>, req: Request, next: Next) -> Response {
    let Ok(permit) = h.inflight.clone().try_acquire_owned() else {
        return refusal(
            Problem::new(ProblemCode::TooBusy, "too many requests in flight").retry_after(1),
        );
    };
    let _guard = InflightGuard::enter(permit);
    next.run(req).await
}

/// Holds an in-flight slot and keeps the gauge true even when the request's future is
/// dropped (client gone, timeout).
struct InflightGuard {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl InflightGuard {
    fn enter(permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        metrics::gauge!(m::INFLIGHT_REQUESTS).increment(1.0);
        Self { _permit: permit }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        metrics::gauge!(m::INFLIGHT_REQUESTS).decrement(1.0);
    }
}

// === impl timeout ===

async fn timeout(State(h): State<Arc<Hardening>>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(h.limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => refusal(
            Problem::new(
                ProblemCode::Timeout,
                format!(
                    "request did not complete within {} ms",
                    h.limits.request_timeout.as_millis()
                ),
            )
            .retry_after(1),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
