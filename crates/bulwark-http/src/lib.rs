//! Bulwark's HTTP hardening, shared by the control-plane API and the edge.
//!
//! Owns: the tower stack every request passes through before it reaches a route
//! ([`harden`]): request ids and problem rendering, per-client GCRA rate limits, the
//! in-flight cap, the whole-request timeout, the body cap and the decompression guard; the
//! TLS accept loop with its handshake and header-read timeouts ([`listener`]); JSON logs
//! ([`telemetry`]) and the Prometheus metrics ([`metrics`]).
//!
//! Must never: let a body past the cap reach a handler in any framing, inflate a body before
//! checking it, log a header value other than the validated request id, or answer an error
//! with anything but an RFC 9457 problem.

#![forbid(unsafe_code)]

mod body;
pub mod decode;
mod layers;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod problem;
pub mod telemetry;

pub use layers::{
    ClientCertLeaf, ClientCertSha256, Hardening, PeerAddr, RouteLabel, harden, route_label,
};
pub use limits::Limits;
pub use problem::{ApiProblem, no_store, refusal};
