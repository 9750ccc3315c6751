//! Domain operations. Each command takes one path — authorize → validate against the
//! projections → append (under the sequencer when a rule must not race) → apply — and
//! fails with [`Error`]; none of it knows HTTP. Handlers in [`crate::http`] only parse the
//! request, call an operation and render its answer.

pub mod audit;
pub mod certs;
pub mod events;
pub mod keys;
pub mod node_api;
pub mod nodes;
pub mod principals;
pub mod relations;
pub mod secrets;
pub mod tenants;
pub mod tokens;

use std::future::Future;

use bulwark_authz::Permission;
use bulwark_core::{Name, RequestId, Scope};
use bulwark_directory::Event;

use crate::AppState;
use crate::authn::{Action, Caller};
use crate::error::Error;

/// Who asks for an operation, and for what request (for the journal entries it writes).
pub struct Request<'a> {
    /// The authenticated caller.
    pub caller: &'a Caller,
    /// The request's method (for denial entries).
    pub method: &'a str,
    /// The route pattern (for denial entries).
    pub route: &'a str,
    /// The request id (`corr_id` of every entry written for it).
    pub corr: Option<&'a RequestId>,
}

impl Request<'_> {
    /// Authorizes the caller for `permission` on `scope`; a denial is journaled.
    pub async fn authorize(
        &self,
        state: &AppState,
        permission: Permission,
        scope: &Scope,
    ) -> Result<(), Error> {
        let action = Action {
            method: self.method,
            route: self.route,
            corr_id: self.corr,
        };
        crate::authn::authorize(state, self.caller, permission, scope, &action)
            .await
            .map(|_| ())
    }

    /// Decides again, under the sequencer, what was authorized before it (see
    /// [`still_allowed`]).
    pub fn recheck(
        &self,
        state: &AppState,
        permission: Permission,
        scope: &Scope,
    ) -> Result<(), Error> {
        still_allowed(state, self.caller, permission, scope)
    }

    /// Appends `event` by the caller; its seq once durable. Called under the sequencer:
    /// `granted` (the permission and scope authorized before) is decided again here, so a
    /// relation revoked or a principal deleted while the request waited cannot slip a
    /// change in after its revocation.
    pub async fn commit(
        &self,
        state: &AppState,
        granted: (Permission, &Scope),
        org: Option<&Name>,
        event: &Event,
    ) -> Result<u64, Error> {
        still_allowed(state, self.caller, granted.0, granted.1)?;
        append_event(
            state,
            event,
            &self.caller.subject.to_string(),
            org,
            self.corr.map(RequestId::as_str),
        )
        .await
    }

    /// As [`Request::commit`] minus the wait: queues `event` in order (call under the
    /// sequencer, after [`Request::recheck`]) and returns what resolves once it is
    /// durable (see [`durable_seq`]).
    pub fn enqueue(
        &self,
        state: &AppState,
        org: Option<&Name>,
        event: &Event,
    ) -> Result<
        impl Future<Output = Result<bulwark_ledger::Appended, bulwark_ledger::AppendError>> + use<>,
        Error,
    > {
        let draft = event
            .draft(
                &self.caller.subject.to_string(),
                org.map(Name::as_str),
                self.corr.map(RequestId::as_str),
            )
            .map_err(|e| Error::internal(format_args!("event does not encode: {e}")))?;
        Ok(state.journal.ledger.enqueue(draft)?)
    }
}

/// The seq of a queued entry once durable.
pub async fn durable_seq(
    durable: impl Future<Output = Result<bulwark_ledger::Appended, bulwark_ledger::AppendError>>,
) -> Result<u64, Error> {
    Ok(durable.await?.seq)
}

/// Re-decides, under the sequencer, what was authorized before it: the caller's token is
/// still good (not revoked, principal not deleted or revoked since) and the decision still
/// allows.
pub fn still_allowed(
    state: &AppState,
    caller: &Caller,
    permission: Permission,
    scope: &Scope,
) -> Result<(), Error> {
    let standing = {
        let dir = state.directory.read();
        !dir.is_revoked(&caller.claims.jti)
            && dir
                .principal(&caller.principal)
                .is_some_and(|p| caller.claims.iat >= p.not_before)
    };
    let decision = crate::authn::decide(state, caller, permission, scope);
    if standing && decision.allowed {
        Ok(())
    } else {
        Err(Error::denied(
            "the caller's rights changed while the request waited; nothing was changed",
        ))
    }
}

/// Records the first use of the id made of `parts` in the shared replay cache, for `ttl`
/// (the whole window in which the id is accepted); refuses a second use, and fails closed
/// when the cache cannot answer.
pub async fn first_use(
    state: &AppState,
    namespace: &str,
    parts: &[&[u8]],
    ttl: std::time::Duration,
) -> Result<(), bulwark_identity::Refusal> {
    use bulwark_identity::Refusal;
    let key = bulwark_shared::Key::from_parts(parts);
    match state
        .shared
        .replay
        .check_and_insert(namespace, key, ttl)
        .await
    {
        Ok(bulwark_shared::Seen::Fresh) => Ok(()),
        Ok(bulwark_shared::Seen::Replayed) => Err(Refusal::Replayed),
        Err(bulwark_shared::SharedError::Exhausted { .. }) => Err(Refusal::ReplayCacheFull),
        Err(e) => {
            // No answer is a refusal: an id that cannot be checked is not accepted.
            tracing::error!(error = %e, namespace, "the replay cache cannot answer: refused");
            Err(Refusal::ReplayCacheFull)
        }
    }
}

/// Appends a directory event; its seq once durable.
pub async fn append_event(
    state: &AppState,
    event: &Event,
    actor: &str,
    org: Option<&Name>,
    corr: Option<&str>,
) -> Result<u64, Error> {
    let draft = event
        .draft(actor, org.map(Name::as_str), corr)
        .map_err(|e| Error::internal(format_args!("event does not encode: {e}")))?;
    Ok(state.journal.ledger.append(draft).await?.seq)
}

/// A request authorized for one permission on one org (a denial is journaled instead):
/// the commands of an org's area take one, so none of them runs unauthorized, and they
/// decide it again under the sequencer ([`OrgGrant::recheck`], [`OrgGrant::commit`]).
pub struct OrgGrant<'a> {
    req: Request<'a>,
    permission: Permission,
    org: Name,
    scope: Scope,
}

impl<'a> OrgGrant<'a> {
    /// Authorizes `req` for `permission` on `org` (403 before anything is looked up).
    pub async fn authorize(
        state: &AppState,
        req: Request<'a>,
        permission: Permission,
        org: Name,
    ) -> Result<Self, Error> {
        let scope = Scope::Org(org.clone());
        req.authorize(state, permission, &scope).await?;
        Ok(Self {
            req,
            permission,
            org,
            scope,
        })
    }

    /// The org.
    pub fn org(&self) -> &Name {
        &self.org
    }

    /// The org as a scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The caller.
    pub fn caller(&self) -> &Caller {
        self.req.caller
    }

    /// See [`Request::recheck`].
    pub fn recheck(&self, state: &AppState) -> Result<(), Error> {
        self.req.recheck(state, self.permission, &self.scope)
    }

    /// See [`Request::commit`]: `event` in the org, by the caller.
    pub async fn commit(&self, state: &AppState, event: &Event) -> Result<u64, Error> {
        self.req
            .commit(
                state,
                (self.permission, &self.scope),
                Some(&self.org),
                event,
            )
            .await
    }

    /// See [`Request::enqueue`]: `event` in the org, by the caller.
    pub fn enqueue(
        &self,
        state: &AppState,
        event: &Event,
    ) -> Result<
        impl Future<Output = Result<bulwark_ledger::Appended, bulwark_ledger::AppendError>> + use<>,
        Error,
    > {
        self.req.enqueue(state, Some(&self.org), event)
    }
}

/// A raw path segment as a tenant name (400 when it cannot be one).
pub fn name(raw: &str) -> Result<Name, Error> {
    Name::parse(raw).map_err(|e| Error::bad_request(format!("`{raw}`: {e}")))
}

/// The authorization subject of a node: `node:<org>_<node>` (org and node names are DNS
/// labels without `_`, so the pair is unambiguous).
pub fn node_subject(org: &str, node: &str) -> bulwark_authz::Subject {
    bulwark_authz::Subject::Node(format!("{org}_{node}").into())
}

#[cfg(test)]
mod tests {
    /// Operations know no HTTP: no axum, `http` or problem-rendering types in `ops/`.
    #[test]
    fn operations_know_no_http_types() {
        let banned = [
            "axum",
            "use http",
            " http::",
            "ApiProblem",
            "StatusCode",
            "HeaderValue",
            "IntoResponse",
            "Response",
            "Json(",
        ];
        for (file, src) in [
            ("ops/mod.rs", include_str!("mod.rs")),
            ("ops/secrets.rs", include_str!("secrets.rs")),
            ("ops/events.rs", include_str!("events.rs")),
            ("ops/node_api.rs", include_str!("node_api.rs")),
            ("ops/tenants.rs", include_str!("tenants.rs")),
            ("ops/principals.rs", include_str!("principals.rs")),
            ("ops/relations.rs", include_str!("relations.rs")),
            ("ops/audit.rs", include_str!("audit.rs")),
            ("ops/keys.rs", include_str!("keys.rs")),
            ("ops/nodes.rs", include_str!("nodes.rs")),
            ("ops/certs.rs", include_str!("certs.rs")),
            ("ops/tokens.rs", include_str!("tokens.rs")),
        ] {
            let code = src.split("#[cfg(test)]").next().unwrap_or_default();
            for b in banned {
                assert!(!code.contains(b), "{file} mentions `{b}`");
            }
        }
    }
}
