//! Prometheus metrics: names of DESIGN.md §4 and the recorder that renders them.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// `http_requests_total{route,method,status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `request_latency_seconds` histogram.
pub const REQUEST_LATENCY_SECONDS: &str = "request_latency_seconds";
/// `inflight_requests` gauge.
pub const INFLIGHT_REQUESTS: &str = "inflight_requests";
/// `rejected_total{reason}`: every refusal by the hardening layers, listener and admin socket.
pub const REJECTED_TOTAL: &str = "rejected_total";
/// `auth_failures_total{reason}`.
pub const AUTH_FAILURES_TOTAL: &str = "auth_failures_total";
/// `tls_handshake_failures_total`.
pub const TLS_HANDSHAKE_FAILURES_TOTAL: &str = "tls_handshake_failures_total";
/// `audit_appends_total`.
pub const AUDIT_APPENDS_TOTAL: &str = "audit_appends_total";
/// `audit_append_latency_seconds`.
pub const AUDIT_APPEND_LATENCY_SECONDS: &str = "audit_append_latency_seconds";
/// `integrity_fail_total`.
pub const INTEGRITY_FAIL_TOTAL: &str = "integrity_fail_total";
/// `events_published_total`.
pub const EVENTS_PUBLISHED_TOTAL: &str = "events_published_total";
/// `events_refused_total{reason}`: envelopes the gate refused.
pub const EVENTS_REFUSED_TOTAL: &str = "events_refused_total";
/// `events_slow_consumers_total`: subscribers disconnected for falling behind.
pub const EVENTS_SLOW_CONSUMERS_TOTAL: &str = "events_slow_consumers_total";

/// Reasons counted under `rejected_total` outside the problem codes.
pub mod reason {
    /// A client did not finish sending headers in time.
    pub const HEADER_TIMEOUT: &str = "header_timeout";
    /// A connection over the open-connection cap was closed at accept.
    pub const CONNECTION_CAP: &str = "connection_cap";
    /// An admin-socket peer whose uid is not on the allow-list.
    pub const ADMIN_PEER_UID: &str = "admin_peer_uid";
    /// An open connection closed because its client certificate was revoked or its
    /// holder quarantined.
    pub const PEER_REVOKED: &str = "peer_revoked";
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder, describes every metric and sets the
/// counters to zero so that they are visible before their first increment.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by route, method and status"
    );
    describe_histogram!(
        REQUEST_LATENCY_SECONDS,
        Unit::Seconds,
        "time to the response head"
    );
    describe_gauge!(INFLIGHT_REQUESTS, "requests being processed");
    describe_counter!(
        REJECTED_TOTAL,
        "requests and connections refused, by reason"
    );
    describe_counter!(AUTH_FAILURES_TOTAL, "authentication failures, by reason");
    describe_counter!(
        TLS_HANDSHAKE_FAILURES_TOTAL,
        "TLS handshakes that failed or timed out"
    );
    describe_counter!(AUDIT_APPENDS_TOTAL, "journal entries appended");
    describe_histogram!(
        AUDIT_APPEND_LATENCY_SECONDS,
        Unit::Seconds,
        "journal append latency"
    );
    describe_counter!(INTEGRITY_FAIL_TOTAL, "integrity check failures");
    describe_counter!(EVENTS_PUBLISHED_TOTAL, "event envelopes published");
    describe_counter!(
        EVENTS_REFUSED_TOTAL,
        "event envelopes refused by the gate, by reason"
    );
    describe_counter!(
        EVENTS_SLOW_CONSUMERS_TOTAL,
        "event subscribers disconnected for falling behind"
    );
    metrics::counter!(EVENTS_PUBLISHED_TOTAL).absolute(0);
    metrics::counter!(EVENTS_SLOW_CONSUMERS_TOTAL).absolute(0);
    metrics::counter!(TLS_HANDSHAKE_FAILURES_TOTAL).absolute(0);
    metrics::counter!(INTEGRITY_FAIL_TOTAL).absolute(0);
    metrics::gauge!(INFLIGHT_REQUESTS).set(0.0);
}
