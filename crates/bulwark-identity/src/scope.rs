//! OAuth scopes (RFC 6749 §3.3) as Bulwark's token endpoint grants them: a fixed set, a
//! default when a client asks for none, and a request normalised to a sorted,
//! de-duplicated, space-separated list.

/// Every scope a token may carry.
pub const SCOPES: [&str; 8] = [
    "admin",
    "certs:issue",
    "deploy",
    "secrets:read",
    "secrets:write",
    "exec",
    "audit:read",
    "read",
];

/// The scope granted when a client asks for none.
pub const DEFAULT_SCOPE: &str = "read";

/// A `scope` parameter that names no scope or one we do not grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidScope;

/// The scope to grant for a request's `scope` parameter: [`DEFAULT_SCOPE`] when absent;
/// else every requested scope, sorted and once. Refused when it names none (only
/// spaces) or one outside [`SCOPES`].
pub fn requested(param: Option<&str>) -> Result<String, InvalidScope> {
    let Some(s) = param else {
        return Ok(DEFAULT_SCOPE.to_owned());
    };
    let mut wanted: Vec<&str> = s.split(' ').filter(|x| !x.is_empty()).collect();
    if wanted.is_empty() || wanted.iter().any(|w| !SCOPES.contains(w)) {
        return Err(InvalidScope);
    }
    wanted.sort_unstable();
    wanted.dedup();
    Ok(wanted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_scope_asked_gets_the_default() {
        assert_eq!(requested(None).as_deref(), Ok(DEFAULT_SCOPE));
    }

    #[test]
    fn requested_scopes_are_sorted_and_once() {
        assert_eq!(
            requested(Some("read  admin read")).as_deref(),
            Ok("admin read")
        );
    }

    #[test]
    fn unknown_or_empty_scopes_are_refused() {
        assert_eq!(requested(Some("read root")), Err(InvalidScope));
        assert_eq!(requested(Some("   ")), Err(InvalidScope));
        assert_eq!(requested(Some("")), Err(InvalidScope));
        assert_eq!(requested(Some("READ")), Err(InvalidScope));
    }
}
