//! RFC 9457 problem details with Bulwark's stable error codes.
//!
//! Every error a client sees is a [`Problem`]: `{type, title, status, detail, code,
//! request_id, retryable, retry_after_seconds?}`. The `code` is the contract clients match
//! on; `title` and `detail` are for people and may change.

use serde::Serialize;

/// The media type of a problem response.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Stable, snake_case error codes. Adding a code is a compatible change; renaming one is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemCode {
    /// The request is malformed.
    BadRequest,
    /// No route matches the path.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The request body is over the size cap.
    BodyTooLarge,
    /// A compressed body inflates past the ratio or absolute cap.
    DecompressionCap,
    /// More than one content coding was applied.
    StackedEncoding,
    /// A content coding we do not decode.
    EncodingUnsupported,
    /// The body is not valid for its declared content coding.
    InvalidEncoding,
    /// The client is over its request rate.
    RateLimited,
    /// The server is at its in-flight request cap.
    TooBusy,
    /// The request did not complete within the whole-request timeout.
    Timeout,
    /// The instance is not ready to serve (start-up or a failed dependency).
    NotReady,
    /// The journal cannot append; the action was refused (fail-closed).
    AuditUnavailable,
    /// The caller is not allowed to do this.
    PermissionDenied,
    /// No valid credentials (missing, malformed, expired, revoked token or proof); the
    /// response carries a `WWW-Authenticate` challenge.
    Unauthorized,
    /// The org, app or env (or one above it) is disabled: everything under it is refused.
    ScopeDisabled,
    /// The thing to create exists already.
    AlreadyExists,
    /// A paging cursor that this server did not issue or that was altered.
    InvalidCursor,
    /// A node asked for another node's resources.
    NodeMismatch,
    /// The signed event bus lacks one of its gate's five ports: nothing is delivered.
    SignedEventBusNotProvisioned,
    /// An event envelope was refused by the gate (signature, replay, staleness, relation
    /// or node); the detail names the check.
    EventRefused,
    /// The org is over its secret-read rate; retry after `Retry-After`.
    PerOrgRateLimited,
    /// The node is over its secret-read rate; retry after `Retry-After`.
    PerNodeRateLimited,
    /// Stored data failed its integrity check (a moved, altered or missing ciphertext);
    /// nothing was returned and the failure was journaled.
    IntegrityFailure,
    /// An unexpected server-side failure; details are in the server log only.
    Internal,
}

impl ProblemCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: &'static [ProblemCode] = &[
        Self::BadRequest,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::BodyTooLarge,
        Self::DecompressionCap,
        Self::StackedEncoding,
        Self::EncodingUnsupported,
        Self::InvalidEncoding,
        Self::RateLimited,
        Self::TooBusy,
        Self::Timeout,
        Self::NotReady,
        Self::AuditUnavailable,
        Self::PermissionDenied,
        Self::Unauthorized,
        Self::ScopeDisabled,
        Self::AlreadyExists,
        Self::InvalidCursor,
        Self::IntegrityFailure,
        Self::PerOrgRateLimited,
        Self::PerNodeRateLimited,
        Self::NodeMismatch,
        Self::SignedEventBusNotProvisioned,
        Self::EventRefused,
        Self::Internal,
    ];

    /// The stable wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BodyTooLarge => "body_too_large",
            Self::DecompressionCap => "decompression_cap",
            Self::StackedEncoding => "stacked_encoding",
            Self::EncodingUnsupported => "encoding_unsupported",
            Self::InvalidEncoding => "invalid_encoding",
            Self::RateLimited => "rate_limited",
            Self::TooBusy => "too_busy",
            Self::Timeout => "timeout",
            Self::NotReady => "not_ready",
            Self::AuditUnavailable => "audit_unavailable",
            Self::PermissionDenied => "permission_denied",
            Self::Unauthorized => "unauthorized",
            Self::ScopeDisabled => "scope_disabled",
            Self::AlreadyExists => "already_exists",
            Self::InvalidCursor => "invalid_cursor",
            Self::IntegrityFailure => "integrity_failure",
            Self::PerOrgRateLimited => "per_org_rate_limited",
            Self::PerNodeRateLimited => "per_node_rate_limited",
            Self::NodeMismatch => "node_mismatch",
            Self::SignedEventBusNotProvisioned => "signed_event_bus_not_provisioned",
            Self::EventRefused => "event_refused",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status this code is answered with.
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidEncoding | Self::InvalidCursor => 400,
            Self::Unauthorized => 401,
            Self::PermissionDenied
            | Self::ScopeDisabled
            | Self::NodeMismatch
            | Self::EventRefused => 403,
            Self::SignedEventBusNotProvisioned => 501,
            Self::AlreadyExists => 409,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::BodyTooLarge | Self::DecompressionCap => 413,
            Self::StackedEncoding | Self::EncodingUnsupported => 415,
            Self::RateLimited | Self::PerOrgRateLimited | Self::PerNodeRateLimited => 429,
            Self::Internal | Self::IntegrityFailure => 500,
            Self::TooBusy | Self::Timeout | Self::NotReady | Self::AuditUnavailable => 503,
        }
    }

    /// A short, stable, human-readable summary.
    pub const fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "bad request",
            Self::NotFound => "not found",
            Self::MethodNotAllowed => "method not allowed",
            Self::BodyTooLarge => "request body too large",
            Self::DecompressionCap => "decompressed body over the cap",
            Self::StackedEncoding => "stacked content encodings are refused",
            Self::EncodingUnsupported => "content encoding not supported",
            Self::InvalidEncoding => "body does not match its content encoding",
            Self::RateLimited => "rate limited",
            Self::TooBusy => "server too busy",
            Self::Timeout => "request timed out",
            Self::NotReady => "not ready",
            Self::AuditUnavailable => "audit journal unavailable",
            Self::PermissionDenied => "permission denied",
            Self::Unauthorized => "unauthorized",
            Self::ScopeDisabled => "scope disabled",
            Self::AlreadyExists => "already exists",
            Self::InvalidCursor => "invalid cursor",
            Self::IntegrityFailure => "integrity failure",
            Self::PerOrgRateLimited => "org over its secret-read rate",
            Self::PerNodeRateLimited => "node over its secret-read rate",
            Self::NodeMismatch => "node mismatch",
            Self::SignedEventBusNotProvisioned => "signed event bus not provisioned",
            Self::EventRefused => "event refused",
            Self::Internal => "internal error",
        }
    }

    /// Whether the same request may succeed if retried later.
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::PerOrgRateLimited
                | Self::PerNodeRateLimited
                | Self::TooBusy
                | Self::Timeout
                | Self::NotReady
                | Self::AuditUnavailable
        )
    }
}

/// An RFC 9457 problem. The `request_id` is filled in by the HTTP layer that renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The stable code.
    pub code: ProblemCode,
    /// A human-readable explanation of this occurrence; never contains secret material.
    pub detail: String,
    /// Seconds after which a retry may succeed (also sent as `Retry-After`).
    pub retry_after_seconds: Option<u64>,
}

impl Problem {
    /// A problem with the given code and detail.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            retry_after_seconds: None,
        }
    }

    /// Adds a retry hint.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// The wire form, with the request id it answers.
    pub fn to_wire<'a>(&'a self, request_id: &'a str) -> ProblemWire<'a> {
        ProblemWire {
            type_: TypeUri(self.code),
            title: self.code.title(),
            status: self.code.status(),
            detail: &self.detail,
            code: self.code.as_str(),
            request_id,
            retryable: self.code.retryable(),
            retry_after_seconds: self.retry_after_seconds,
        }
    }
}

/// The `type` URI of a problem: `urn:bulwark:problem:<code>`.
#[derive(Debug, Clone, Copy)]
pub struct TypeUri(ProblemCode);

impl Serialize for TypeUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("urn:bulwark:problem:{}", self.0.as_str()))
    }
}

/// The serialized shape of a problem response.
#[derive(Debug, Serialize)]
pub struct ProblemWire<'a> {
    /// `urn:bulwark:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: TypeUri,
    /// Summary.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Explanation.
    pub detail: &'a str,
    /// Stable code.
    pub code: &'static str,
    /// The request this answers.
    pub request_id: &'a str,
    /// Whether retrying may help.
    pub retryable: bool,
    /// Retry hint in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_matches_the_contract() {
        let p = Problem::new(ProblemCode::RateLimited, "slow down").retry_after(2);
        let v = serde_json::to_value(p.to_wire("abc")).unwrap();
        assert_eq!(v["type"], "urn:bulwark:problem:rate_limited");
        assert_eq!(v["status"], 429);
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["retryable"], true);
        assert_eq!(v["retry_after_seconds"], 2);
        assert_eq!(v["detail"], "slow down");
        assert!(v["title"].is_string());
    }

    #[test]
    fn codes_are_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ProblemCode::ALL {
            let s = c.as_str();
            assert!(
                s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{s}"
            );
            assert!(seen.insert(s), "duplicate {s}");
            assert!((400..600).contains(&c.status()));
        }
    }
}
