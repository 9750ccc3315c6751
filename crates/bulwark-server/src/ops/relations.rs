//! Relation tuples: granted and revoked as journal events, listed per org; the decision
//! and its reason for a permission on a scope; the paged lookup of what a subject can
//! reach, with cursors signed so that they cannot be forged or moved to another subject.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_authz::{Decision, Permission, Relation, Subject, Tuple};
use bulwark_core::{Name, ProblemCode, Scope};
use bulwark_directory::{Directory, Event};
use serde::Deserialize;

use super::Request;
use crate::AppState;
use crate::authn::decide;
use crate::error::Error;

/// Why a tuple or a lookup was refused, besides authorization and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelationError {
    /// The scope does not parse.
    BadScope,
    /// The scope lies outside the org of the request.
    OutsideOrg,
    /// The relation is unknown.
    UnknownRelation,
    /// The relation does not apply to this kind of scope.
    DoesNotApply,
    /// The subject does not parse.
    BadSubject,
    /// The scope does not exist.
    NoScope(Scope),
    /// The subject is no principal (or node) of this org, or of the instance.
    NoSubject {
        /// The subject.
        subject: Subject,
        /// Looked for in an org (`false`: in the instance).
        in_org: bool,
    },
    /// The cursor was not issued for this lookup.
    BadCursor,
}

impl std::fmt::Display for RelationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadScope => f.write_str("scope is `instance` or `org/<o>[/app/<a>[/env/<e>]]`"),
            Self::OutsideOrg => f.write_str(
                "the scope must lie in the org of the path (instance tuples go to /v1/relations)",
            ),
            Self::UnknownRelation => f.write_str("unknown relation"),
            Self::DoesNotApply => f.write_str("this relation does not apply to this kind of scope"),
            Self::BadSubject => {
                f.write_str("subject is `user:<id>`, `service:<id>` or `node:<id>`")
            }
            Self::NoScope(scope) => write!(f, "{scope} does not exist"),
            Self::NoSubject { subject, in_org } => write!(
                f,
                "no principal `{subject}` in this {}",
                if *in_org { "org" } else { "instance" }
            ),
            Self::BadCursor => f.write_str("the cursor was not issued for this lookup"),
        }
    }
}

impl std::error::Error for RelationError {}

impl From<RelationError> for Error {
    fn from(e: RelationError) -> Self {
        let code = match &e {
            RelationError::BadScope
            | RelationError::OutsideOrg
            | RelationError::UnknownRelation
            | RelationError::DoesNotApply
            | RelationError::BadSubject => ProblemCode::BadRequest,
            RelationError::NoScope(_) | RelationError::NoSubject { .. } => ProblemCode::NotFound,
            RelationError::BadCursor => ProblemCode::InvalidCursor,
        };
        Self::refused(code, e.to_string())
    }
}

/// A tuple to grant or revoke, as given: its parts are parsed and checked only once the
/// caller is authorized on its scope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TupleRequest {
    /// `instance` or `org/<o>[/app/<a>[/env/<e>]]`.
    pub scope: String,
    /// The relation's name.
    pub relation: String,
    /// `user:<id>`, `service:<id>` or `node:<org>_<node>`.
    pub subject: String,
}

/// What a grant or a revocation did.
#[derive(Debug)]
pub struct TupleChange {
    /// The tuple.
    pub tuple: Tuple,
    /// The seq of the change; `None` when the tuple already was (or was not) held.
    pub seq: Option<u64>,
}

/// The scopes a subject holds relations on, one page.
#[derive(Debug)]
pub struct LookupPage {
    /// The subject.
    pub subject: Subject,
    /// Scopes in the order of their text form, with the relations held on each.
    pub items: Vec<(Scope, Vec<Relation>)>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

/// Parses and checks `b` for `org` (`None`: the instance scope only): the scope must lie
/// in the org, the relation must make sense there, and the subject must be a principal of
/// the same org (or an instance principal for instance tuples), or a node of the org.
fn validate(dir: &Directory, org: Option<&Name>, b: &TupleRequest) -> Result<Tuple, RelationError> {
    let scope = Scope::parse(&b.scope).ok_or(RelationError::BadScope)?;
    if scope.org() != org {
        return Err(RelationError::OutsideOrg);
    }
    let relation = Relation::parse(&b.relation).ok_or(RelationError::UnknownRelation)?;
    let fits = match relation {
        Relation::Operator => scope == Scope::Instance,
        Relation::SecretReader | Relation::Exec | Relation::BoundNode => {
            matches!(scope, Scope::Env(..))
        }
        Relation::Deployer => matches!(scope, Scope::App(..) | Scope::Env(..)),
        _ => true,
    };
    if !fits {
        return Err(RelationError::DoesNotApply);
    }
    let subject = Subject::parse(&b.subject).ok_or(RelationError::BadSubject)?;
    if !dir.exists(&scope) {
        return Err(RelationError::NoScope(scope));
    }
    let ok = match &subject {
        // `node:<org>_<node>`: a node of this org.
        Subject::Node(id) => match (org, id.split_once('_')) {
            (Some(o), Some((node_org, node))) => {
                node_org == o.as_str() && dir.node(node_org, node).is_some()
            }
            _ => false,
        },
        Subject::User(id) | Subject::Service(id) => dir
            .principal(id)
            .is_some_and(|p| p.subject() == subject && p.org.as_deref() == org.map(Name::as_str)),
    };
    if !ok {
        return Err(RelationError::NoSubject {
            subject,
            in_org: org.is_some(),
        });
    }
    Ok(Tuple {
        scope,
        relation,
        subject,
    })
}

/// Grants the tuple `input` in `org` (`None`: the instance): `grant` on the tuple's scope.
pub async fn grant<E: Into<Error>>(
    state: &AppState,
    req: &Request<'_>,
    org: Option<Name>,
    input: Result<TupleRequest, E>,
) -> Result<TupleChange, Error> {
    change(state, req, org, input, true).await
}

/// Revokes the tuple `input` in `org` (`None`: the instance): `grant` on the tuple's scope.
pub async fn revoke<E: Into<Error>>(
    state: &AppState,
    req: &Request<'_>,
    org: Option<Name>,
    input: Result<TupleRequest, E>,
) -> Result<TupleChange, Error> {
    change(state, req, org, input, false).await
}

async fn change<E: Into<Error>>(
    state: &AppState,
    req: &Request<'_>,
    org: Option<Name>,
    input: Result<TupleRequest, E>,
    grant: bool,
) -> Result<TupleChange, Error> {
    let home = org.clone().map_or(Scope::Instance, Scope::Org);
    let t = match input {
        Ok(t) => t,
        Err(e) => {
            // No tuple to authorize on: the path's scope decides whether the caller
            // learns that the input was malformed.
            req.authorize(state, Permission::Grant, &home).await?;
            return Err(e.into());
        }
    };
    // Authorize on the tuple's scope first (403 before any validation that could reveal
    // what exists); a scope outside the path's org is refused right after.
    let target = Scope::parse(&t.scope)
        .filter(|s| s.org() == org.as_ref())
        .unwrap_or(home);
    req.authorize(state, Permission::Grant, &target).await?;
    let _seq = state.journal.sequencer.lock().await;
    let (tuple, held) = {
        let dir = state.directory.read();
        let tuple = validate(&dir, org.as_ref(), &t)?;
        let held = dir
            .relations()
            .holds(&tuple.subject, &tuple.scope, tuple.relation);
        (tuple, held)
    };
    if held == grant {
        return Ok(TupleChange { tuple, seq: None });
    }
    let (scope, relation, subject) = (
        tuple.scope.to_string(),
        tuple.relation.as_str().to_owned(),
        tuple.subject.to_string(),
    );
    let event = if grant {
        Event::RelationGrant {
            scope,
            relation,
            subject,
        }
    } else {
        Event::RelationRevoke {
            scope,
            relation,
            subject,
        }
    };
    let seq = req
        .commit(state, (Permission::Grant, &target), org.as_ref(), &event)
        .await?;
    Ok(TupleChange {
        tuple,
        seq: Some(seq),
    })
}

/// The tuples of `org`, in the order of their text form: `view` on the org.
pub async fn list_in_org(
    state: &AppState,
    req: &Request<'_>,
    org: &Name,
) -> Result<Vec<Tuple>, Error> {
    let scope = Scope::Org(org.clone());
    req.authorize(state, Permission::View, &scope).await?;
    let dir = state.directory.read();
    if !dir.exists(&scope) {
        return Err(RelationError::NoScope(scope).into());
    }
    let mut tuples: Vec<Tuple> = dir
        .relations()
        .tuples()
        .filter(|t| t.scope.org() == Some(org))
        .collect();
    tuples.sort_by_cached_key(ToString::to_string);
    Ok(tuples)
}

/// The decision on `permission` over `scope`, and its reason. For the caller itself
/// (`subject` `None` or the caller's), as narrowed by its token; for another subject,
/// `administer` on the scope is needed and the subject's relations answer.
pub async fn check(
    state: &AppState,
    req: &Request<'_>,
    permission: Permission,
    scope: &Scope,
    subject: Option<&Subject>,
) -> Result<Decision, Error> {
    match subject {
        Some(subject) if *subject != req.caller.subject => {
            req.authorize(state, Permission::Administer, scope).await?;
            Ok(state
                .directory
                .read()
                .relations()
                .check(subject, permission, scope))
        }
        _ => Ok(decide(state, req.caller, permission, scope)),
    }
}

/// The scopes `subject` (default: the caller) holds relations on, sorted by their text
/// form, `limit` per page, after the scope `cursor` names. Another subject than the
/// caller needs `administer` on the instance, or on the caller's org (and then only that
/// org's scopes are listed).
pub async fn lookup(
    state: &AppState,
    req: &Request<'_>,
    subject: Option<Subject>,
    limit: usize,
    cursor: Option<&str>,
) -> Result<LookupPage, Error> {
    let caller = req.caller;
    let subject = match subject {
        None => caller.subject.clone(),
        Some(subject) => {
            if subject != caller.subject {
                let scope = caller.org.clone().map_or(Scope::Instance, Scope::Org);
                req.authorize(state, Permission::Administer, &scope).await?;
            }
            subject
        }
    };
    let sub = subject.to_string();
    let key = &state.auth.cursor_key;
    let after = match cursor {
        None => None,
        Some(c) => Some(open_cursor(key, &sub, c).ok_or(RelationError::BadCursor)?),
    };
    let all: Vec<(Scope, Vec<Relation>)> = state
        .directory
        .read()
        .relations()
        .scopes_of(&subject)
        .into_iter()
        .filter(|(scope, _)| caller.org.is_none() || scope.org() == caller.org.as_ref())
        .collect();
    let (items, last) = page(all, after.as_deref(), limit);
    Ok(LookupPage {
        next_cursor: last.map(|t| sign_cursor(key, &sub, &t)),
        subject,
        items,
    })
}

/// One page of `all`: at most `limit` items whose text form sorts after `after`, and the
/// text form of the last one when more follow.
fn page<T>(
    all: Vec<(Scope, T)>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<(Scope, T)>, Option<String>) {
    let mut all: Vec<(String, Scope, T)> = all
        .into_iter()
        .map(|(s, t)| (s.to_string(), s, t))
        .collect();
    // Cursors compare the text form, so page in that order.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut page = Vec::new();
    let mut last = None;
    let mut more = false;
    for (text, scope, t) in all {
        if after.is_some_and(|a| text.as_str() <= a) {
            continue;
        }
        if page.len() == limit {
            more = true;
            break;
        }
        page.push((scope, t));
        last = Some(text);
    }
    (page, last.filter(|_| more))
}

/// Signs "after this scope, for this subject" so a cursor cannot be forged or moved to
/// another subject.
fn sign_cursor(key: &hmac::Key, subject: &str, after: &str) -> String {
    let body = serde_json::json!({"s": subject, "a": after}).to_string();
    let tag = hmac::sign(key, body.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(body),
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    )
}

/// The scope (text form) a cursor signed for `subject` continues after.
fn open_cursor(key: &hmac::Key, subject: &str, cursor: &str) -> Option<String> {
    let (b, t) = cursor.split_once('.')?;
    let body = URL_SAFE_NO_PAD.decode(b).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(t).ok()?;
    hmac::verify(key, &body, &tag).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    (v["s"] == subject).then(|| v["a"].as_str().map(str::to_owned))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &[u8]) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, k)
    }

    #[test]
    fn a_cursor_opens_for_its_subject_only() {
        let k = key(b"one");
        let c = sign_cursor(&k, "service:svc_a", "org/acme");
        assert_eq!(
            open_cursor(&k, "service:svc_a", &c).as_deref(),
            Some("org/acme")
        );
        assert_eq!(open_cursor(&k, "service:svc_b", &c), None);
        assert_eq!(open_cursor(&key(b"two"), "service:svc_a", &c), None);
    }

    #[test]
    fn a_forged_or_mangled_cursor_does_not_open() {
        let k = key(b"one");
        let c = sign_cursor(&k, "service:svc_a", "org/acme");
        let (_, tag) = c.split_once('.').unwrap_or_default();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(r#"{"a":"org/zzz","s":"service:svc_a"}"#)
        );
        assert_eq!(open_cursor(&k, "service:svc_a", &forged), None);
        for bad in ["", ".", "x.y", "no-dot", &c[1..]] {
            assert_eq!(open_cursor(&k, "service:svc_a", bad), None, "{bad}");
        }
    }

    #[test]
    fn pages_follow_the_text_order_and_end_without_a_cursor() {
        let scopes: Vec<(Scope, ())> = ["org/b", "org/a/app/x", "org/a", "instance"]
            .into_iter()
            .filter_map(Scope::parse)
            .map(|s| (s, ()))
            .collect();
        assert_eq!(scopes.len(), 4);
        let text = |p: &[(Scope, ())]| p.iter().map(|(s, ())| s.to_string()).collect::<Vec<_>>();
        let (p1, next) = page(scopes.clone(), None, 2);
        assert_eq!(text(&p1), ["instance", "org/a"]);
        assert_eq!(next.as_deref(), Some("org/a"));
        let (p2, next) = page(scopes.clone(), next.as_deref(), 2);
        assert_eq!(text(&p2), ["org/a/app/x", "org/b"]);
        assert_eq!(next, None);
        let (p3, next) = page(scopes, Some("org/b"), 2);
        assert!(p3.is_empty());
        assert_eq!(next, None);
    }
}
