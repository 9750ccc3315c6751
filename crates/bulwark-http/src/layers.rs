//! The hardening stack. One middleware runs the steps in order, outermost first:
//!
//! 1. observe: request id, then (on the way out) problem rendering, metrics, refusal logs;
//! 2. rate limit: per-client GCRA, 429 `rate_limited` with `Retry-After`;
//! 3. in-flight cap: a semaphore, 503 `too_busy`;
//! 4. timeout: around everything below, body included, 503 `timeout`;
//! 5. body guard: body cap and decompression guard (413/415), see [`crate::body`].
//!
//! Then routing. Every route, the fallback included, sits behind all five. The steps are
//! plain functions composed in one future rather than five nested middlewares: nesting
//! cost more than the checks themselves (see docs/BENCHMARKS.md).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use bulwark_core::{Problem, ProblemCode, RequestId};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderName, HeaderValue, Method};
use metrics::{Counter, Gauge, Histogram};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::Limits;
use crate::metrics as m;
use crate::problem::{PendingProblem, refusal, rerender};

/// The header carrying the request id in both directions.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's socket address, inserted by the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// SHA-256 of the DER client certificate the TLS peer presented (and the listener's
/// verifier accepted), inserted by the accept loop; absent without one. This is RFC 8705's
/// `x5t#S256` before base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertSha256(pub [u8; 32]);

/// The DER of the verified client certificate (the leaf), for identities carried in it.
#[derive(Debug, Clone)]
pub struct ClientCertLeaf(pub Arc<[u8]>);

/// The matched route template, carried on the response for the metrics label.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub MatchedPath);

/// Shared state of the hardening stack.
///
/// Metric handles are resolved when this is built: install the recorder first
/// ([`crate::metrics::install`]).
pub struct Hardening {
    limits: Limits,
    inflight: Arc<Semaphore>,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    decode_slots: Semaphore,
    inflight_gauge: Gauge,
    latency: Histogram,
    requests: RequestCounters,
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
            inflight_gauge: metrics::gauge!(m::INFLIGHT_REQUESTS),
            latency: metrics::histogram!(m::REQUEST_LATENCY_SECONDS),
            requests: RequestCounters::default(),
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

    // === impl rate limit ===

    fn check_rate(&self, req: &Request) -> Result<(), Problem> {
        let (Some(limiter), Some(peer)) = (&self.limiter, req.extensions().get::<PeerAddr>())
        else {
            return Ok(());
        };
        limiter.check_key(&peer.0.ip()).map_err(|not_until| {
            let secs = retry_after_secs(not_until.wait_time_from(self.clock.now()));
            Problem::new(
                ProblemCode::RateLimited,
                "request rate over the limit for this client",
            )
            .retry_after(secs)
        })
    }

    // === impl in-flight cap ===

    fn admit(&self) -> Result<InflightGuard, Problem> {
        match self.inflight.clone().try_acquire_owned() {
            Ok(permit) => {
                self.inflight_gauge.increment(1.0);
                Ok(InflightGuard {
                    _permit: permit,
                    gauge: self.inflight_gauge.clone(),
                })
            }
            Err(_) => Err(
                Problem::new(ProblemCode::TooBusy, "too many requests in flight").retry_after(1),
            ),
        }
    }

    // === impl timeout ===

    fn timed_out(&self) -> Problem {
        Problem::new(
            ProblemCode::Timeout,
            format!(
                "request did not complete within {} ms",
                self.limits.request_timeout.as_millis()
            ),
        )
        .retry_after(1)
    }
}

/// Wraps `router` in the hardening stack. The stack runs before routing.
pub fn harden(router: Router, state: Arc<Hardening>) -> Router {
    Router::new()
        .fallback_service(router)
        .layer(middleware::from_fn_with_state(state, stack))
}

/// A layer for the inner router: records the matched route template on the response.
pub fn route_label(router: Router) -> Router {
    router.layer(middleware::from_fn(tag_route))
}

async fn tag_route(req: Request, next: Next) -> Response {
    let label = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(l) = label {
        resp.extensions_mut().insert(RouteLabel(l));
    }
    resp
}

async fn stack(State(h): State<Arc<Hardening>>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| RequestId::parse(v.as_bytes()))
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(request_id.clone());
    let method = method_label(req.method());
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);

    let resp = admit_and_run(&h, req, next).await.unwrap_or_else(refusal);
    finish(&h, resp, &request_id, method, peer, start)
}

/// Steps 2–5; `Err` is the refusal that answers instead of the route.
async fn admit_and_run(h: &Hardening, req: Request, next: Next) -> Result<Response, Problem> {
    h.check_rate(&req)?;
    let _slot = h.admit()?;
    let run = async {
        let req = crate::body::guard(h, req).await?;
        Ok(next.run(req).await)
    };
    tokio::time::timeout(h.limits.request_timeout, run)
        .await
        .unwrap_or_else(|_| Err(h.timed_out()))
}

// === impl observe ===

/// An error response that is not JSON (a framework rejection), as the problem to send.
fn framework_rejection(resp: &Response) -> Option<Problem> {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if json {
        return None;
    }
    Some(if status.is_client_error() {
        Problem::new(
            ProblemCode::BadRequest,
            "the request's path, query or body could not be parsed",
        )
    } else {
        Problem::new(ProblemCode::Internal, "internal error")
    })
}

fn finish(
    h: &Hardening,
    mut resp: Response,
    request_id: &RequestId,
    method: &'static str,
    peer: Option<SocketAddr>,
    start: Instant,
) -> Response {
    if let Some(p) = resp.extensions_mut().remove::<PendingProblem>() {
        let code = p.problem.code.as_str();
        let peer = peer.map(|p| p.to_string());
        if p.refusal {
            metrics::counter!(m::REJECTED_TOTAL, "reason" => code).increment(1);
            tracing::warn!(
                reason = code,
                corr_id = request_id.as_str(),
                peer_addr = peer,
                status = p.problem.code.status(),
                "request refused"
            );
        } else {
            tracing::info!(
                code,
                corr_id = request_id.as_str(),
                peer_addr = peer,
                status = p.problem.code.status(),
                "request answered with a problem"
            );
        }
        resp = rerender(resp, &p.problem, request_id.as_str());
    } else if let Some(p) = framework_rejection(&resp) {
        // An extractor's plain-text rejection (a path segment or query that does not parse):
        // answered as a problem like everything else, without echoing the input.
        tracing::info!(
            code = p.code.as_str(),
            corr_id = request_id.as_str(),
            status = p.code.status(),
            "request answered with a problem"
        );
        resp = rerender(resp, &p, request_id.as_str());
    }
    if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or("-", |r| r.0.as_str());
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    h.requests.get(route, method, status).increment(1);
    h.latency.record(elapsed.as_secs_f64());
    // The access log, off at the default level: one line per request with its corr_id.
    tracing::debug!(
        corr_id = request_id.as_str(),
        method,
        route,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        peer_addr = peer.map(|p| p.to_string()),
        "request"
    );
    resp
}

/// `http_requests_total` handles by (route, method, status), resolved once each: building
/// a labelled key per request (allocation, sorting) cost more than the request's checks.
/// Bounded: routes are templates (or `-`), methods and statuses are finite sets.
#[derive(Default)]
struct RequestCounters {
    by_route: RwLock<HashMap<Box<str>, ByMethodStatus>>,
}

type ByMethodStatus = HashMap<(&'static str, u16), Counter>;

impl RequestCounters {
    fn get(&self, route: &str, method: &'static str, status: u16) -> Counter {
        if let Ok(map) = self.by_route.read()
            && let Some(c) = map.get(route).and_then(|m| m.get(&(method, status)))
        {
            return c.clone();
        }
        let counter = metrics::counter!(
            m::HTTP_REQUESTS_TOTAL,
            "route" => route.to_owned(),
            "method" => method,
            "status" => status.to_string()
        );
        if let Ok(mut map) = self.by_route.write() {
            map.entry(route.into())
                .or_default()
                .insert((method, status), counter.clone());
        }
        counter
    }
}

/// A fresh request id: a random 64-bit prefix drawn once per process and a counter, as 32
/// hex digits. Ids are for correlation, not secrets: unique is what matters, and drawing
/// 16 random bytes per request cost more than the rest of the request id work together.
fn new_request_id() -> RequestId {
    static PREFIX: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut b).is_err() {
            // A failing RNG must not refuse requests: fall back to the start time.
            b = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .to_le_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]);
        }
        b
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(prefix);
    b[8..].copy_from_slice(&n.to_be_bytes());
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

/// `Retry-After` in whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Holds an in-flight slot and keeps the gauge true even when the request's future is
/// dropped (client gone, timeout).
struct InflightGuard {
    _permit: OwnedSemaphorePermit,
    gauge: Gauge,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_unique_and_well_formed() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(a.as_str()[..16], b.as_str()[..16], "same process prefix");
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
