//! One error path. Operations fail with [`Error`], which carries no HTTP types; the HTTP
//! layer turns it into an RFC 9457 problem here and nowhere else. A journal that cannot
//! append is `503 audit_unavailable` (fail-closed) in exactly one place.

use bulwark_core::{Problem, ProblemCode};
use bulwark_http::ApiProblem;

/// Why an operation did not happen.
#[derive(Debug)]
pub enum Error {
    /// The journal cannot append: the action is refused and nothing was returned or
    /// changed (the cause goes to the log only).
    JournalUnavailable(String),
    /// The journal store cannot be read.
    JournalUnreadable(String),
    /// An unexpected failure; the cause goes to the log only.
    Internal(String),
    /// A refusal whose code and detail are safe to show.
    Refused(Problem),
}

impl Error {
    /// A refusal with `code` and a detail safe to show.
    pub fn refused(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self::Refused(Problem::new(code, detail))
    }

    /// 400 `bad_request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::refused(ProblemCode::BadRequest, detail)
    }

    /// 403 `permission_denied`.
    pub fn denied(detail: impl Into<String>) -> Self {
        Self::refused(ProblemCode::PermissionDenied, detail)
    }

    /// 404 `not_found` for `what`.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::refused(ProblemCode::NotFound, format!("{what} does not exist"))
    }

    /// 409 `already_exists`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::refused(ProblemCode::AlreadyExists, detail)
    }

    /// An unexpected failure: `why` is logged, never shown.
    pub fn internal(why: impl std::fmt::Display) -> Self {
        Self::Internal(why.to_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::JournalUnavailable(e) => write!(f, "journal unavailable: {e}"),
            Self::JournalUnreadable(e) => write!(f, "journal unreadable: {e}"),
            Self::Internal(e) => write!(f, "internal: {e}"),
            Self::Refused(p) => write!(f, "{}: {}", p.code.as_str(), p.detail),
        }
    }
}

impl std::error::Error for Error {}

impl From<bulwark_ledger::AppendError> for Error {
    fn from(e: bulwark_ledger::AppendError) -> Self {
        Self::JournalUnavailable(e.to_string())
    }
}

impl From<bulwark_ledger::journal::StoreError> for Error {
    fn from(e: bulwark_ledger::journal::StoreError) -> Self {
        Self::JournalUnreadable(e.to_string())
    }
}

impl From<Problem> for Error {
    fn from(p: Problem) -> Self {
        Self::Refused(p)
    }
}

impl From<ApiProblem> for Error {
    fn from(p: ApiProblem) -> Self {
        Self::Refused(p.0)
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::JournalUnavailable(cause) => {
                tracing::error!(error = cause.as_str(), "journal append failed");
                Problem::new(
                    ProblemCode::AuditUnavailable,
                    "the journal cannot record this; nothing was returned or changed",
                )
                .retry_after(1)
            }
            Error::JournalUnreadable(cause) => {
                tracing::error!(error = cause.as_str(), "journal store unreadable");
                Problem::new(ProblemCode::AuditUnavailable, "journal store unavailable")
                    .retry_after(1)
            }
            Error::Internal(cause) => {
                tracing::error!(error = cause.as_str(), "internal error");
                Problem::new(ProblemCode::Internal, "internal error; see the server log")
            }
            Error::Refused(p) => p,
        }
    }
}

impl From<Error> for ApiProblem {
    fn from(e: Error) -> Self {
        Self(e.into())
    }
}

impl axum::response::IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        ApiProblem::from(self).into_response()
    }
}

impl From<Error> for axum::response::Response {
    fn from(e: Error) -> Self {
        axum::response::IntoResponse::into_response(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_failure_is_audit_unavailable_and_hides_its_cause() {
        let p: Problem = Error::JournalUnavailable("disk I/O error at /secret/path".into()).into();
        assert_eq!(p.code, ProblemCode::AuditUnavailable);
        assert!(!p.detail.contains("/secret/path"));
        let p: Problem = Error::internal("key file /x unreadable").into();
        assert_eq!(p.code, ProblemCode::Internal);
        assert!(!p.detail.contains("/x"));
    }

    #[test]
    fn refusals_keep_their_code_and_detail() {
        let p: Problem = Error::not_found("org `acme`").into();
        assert_eq!(p.code, ProblemCode::NotFound);
        assert_eq!(p.detail, "org `acme` does not exist");
    }
}
