//! The one error of every port.

/// Why a port could not answer. Every variant means "no answer": a caller must refuse the
/// operation it guards (fail closed), never treat the error as "fresh", "first use" or
/// "allowed".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// The backend cannot be reached or did not answer in time (Redis or NATS down, a
    /// timeout, a lost connection). `detail` is for the server log only: it must never
    /// carry credentials, and callers must not show it to clients.
    #[error("shared state backend `{backend}` unavailable: {detail}")]
    Unavailable {
        /// The backend's name (`memory`, `redis`, `nats`, …).
        backend: &'static str,
        /// What went wrong, for the log.
        detail: String,
    },
    /// The namespace holds as many live entries as it may (or the port as many
    /// namespaces): the new entry is refused rather than an older one forgotten.
    #[error("{port} full: `{namespace}` holds its {capacity} live entries")]
    Exhausted {
        /// The port (`replay`, `rate`, `single_use`, `lease`).
        port: &'static str,
        /// The namespace that is full.
        namespace: String,
        /// Its capacity.
        capacity: usize,
    },
    /// The caller passed something no backend can store (an empty or overlong namespace,
    /// a zero TTL): a bug on the caller's side, answered rather than guessed at.
    #[error("invalid {what}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
    },
}

impl SharedError {
    /// `Unavailable` from `backend` with a detail for the log.
    pub fn unavailable(backend: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            backend,
            detail: detail.to_string(),
        }
    }

    /// A stable snake_case label, for metrics and logs (`shared_state_unavailable` is the
    /// problem code DESIGN.md §4a names for the first).
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "shared_state_unavailable",
            Self::Exhausted { .. } => "shared_state_exhausted",
            Self::Invalid { .. } => "shared_state_invalid",
        }
    }

    /// Whether trying again later may succeed (a backend back up, entries expired).
    pub const fn retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Exhausted { .. } => true,
            Self::Invalid { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_say_whether_to_retry() {
        let e = SharedError::unavailable("redis", "connection refused");
        assert_eq!(e.code(), "shared_state_unavailable");
        assert!(e.retryable());
        assert_eq!(
            e.to_string(),
            "shared state backend `redis` unavailable: connection refused"
        );
        let full = SharedError::Exhausted {
            port: "replay",
            namespace: "dpop".into(),
            capacity: 3,
        };
        assert_eq!(full.code(), "shared_state_exhausted");
        assert!(full.retryable());
        let bad = SharedError::Invalid { what: "ttl" };
        assert_eq!(bad.code(), "shared_state_invalid");
        assert!(!bad.retryable());
    }
}
