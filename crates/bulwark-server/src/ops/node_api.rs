//! What a node does over the node API, once its certificate has identified it: read a
//! secret of the env it is bound to, or the whole env as one `BULWARK_SECRETS_V1` file
//! (the audited read of [`super::secrets`], per-node and per-org rates, journaled,
//! fail-closed), subscribe to its signed events, fetch its org's event keys. A node naming
//! another node is refused (`node_mismatch`, journaled).

use bulwark_authz::{Permission, Relation, Subject};
use bulwark_core::{ProblemCode, RequestId, Scope};
use bulwark_ledger::entry::{Draft, Kind, Outcome};
use bulwark_secrets::read::{AuditedRead, EnvKey, Revealed};
use zeroize::Zeroizing;

use super::secrets::{Reader, drive};
use crate::AppState;
use crate::error::Error;

/// A node, as its certificate and the directory's record of its enrolment identify it.
pub struct Node {
    /// Its org.
    pub org: String,
    /// Its name.
    pub node: String,
    /// Its authorization subject.
    pub subject: Subject,
    /// The serial of the certificate it presented.
    pub serial: String,
}

#[derive(serde::Serialize)]
struct DenialData<'a> {
    reason: &'a str,
}
impl bulwark_ledger::entry::EntryData for DenialData<'_> {}

async fn journal_denial(
    s: &AppState,
    who: &Node,
    resource: String,
    reason: &str,
    corr: Option<&RequestId>,
) {
    let mut d = Draft::new(Kind::Access, "node.secret_read", resource)
        .actor(who.subject.to_string())
        .org(who.org.as_str())
        .outcome(Outcome::Denied);
    if let Some(c) = corr {
        d = d.corr_id(c.as_str());
    }
    if let Ok(d) = d.data(&DenialData { reason })
        && let Err(e) = s.journal.ledger.append(d).await
    {
        tracing::error!(error = %e, "could not journal a node denial");
    }
}

/// The path's node `id` is the caller's, or the refusal (counted and journaled).
pub async fn same_node(
    s: &AppState,
    who: &Node,
    id: &str,
    corr: Option<&RequestId>,
) -> Result<(), Error> {
    if id == who.node {
        return Ok(());
    }
    crate::authn::count_failure("node_mismatch");
    journal_denial(
        s,
        who,
        format!("org/{}/node/{id}", who.org),
        "node_mismatch",
        corr,
    )
    .await;
    Err(Error::refused(
        ProblemCode::NodeMismatch,
        "a node acts only as itself",
    ))
}

/// A node reading: its own rates, and `read_secret_value` in the one env it is bound to.
struct NodeReader<'a> {
    who: &'a Node,
    corr: Option<&'a RequestId>,
}

impl Reader for NodeReader<'_> {
    const BAD_NAME: &'static str = "bad secret name";

    fn node_bucket(&self) -> Option<String> {
        Some(self.who.subject.to_string())
    }

    fn org_bucket(&self) -> String {
        self.who.org.clone()
    }

    fn actor(&self) -> String {
        self.who.subject.to_string()
    }

    fn corr(&self) -> Option<&RequestId> {
        self.corr
    }

    /// The one env the node is bound to, and `read_secret_value` there (denials
    /// journaled).
    async fn authorize(&self, s: &AppState) -> Result<EnvKey, Error> {
        let (s, who, corr) = (s, self.who, self.corr);
        let envs: Vec<Scope> = s
            .directory
            .read()
            .relations()
            .scopes_of(&who.subject)
            .into_iter()
            .filter(|(scope, rels)| {
                matches!(scope, Scope::Env(..)) && rels.contains(&Relation::BoundNode)
            })
            .map(|(scope, _)| scope)
            .collect();
        let [env] = envs.as_slice() else {
            crate::authn::count_failure("node_not_bound");
            journal_denial(
                s,
                who,
                format!("org/{}/node/{}", who.org, who.node),
                "not bound to exactly one env",
                corr,
            )
            .await;
            return Err(Error::denied("the node is not bound to exactly one env"));
        };
        let decision =
            s.directory
                .read()
                .relations()
                .check(&who.subject, Permission::ReadSecretValue, env);
        if !decision.allowed {
            crate::authn::count_failure("permission_denied");
            journal_denial(s, who, env.to_string(), &decision.reason.to_string(), corr).await;
            return Err(Error::denied(decision.reason.to_string()));
        }
        let Scope::Env(o, a, e) = env else {
            return Err(Error::refused(ProblemCode::Internal, "not an env"));
        };
        Ok(EnvKey {
            org: o.to_string(),
            app: a.to_string(),
            env: e.to_string(),
        })
    }
}

/// `GET /v1/nodes/{id}/secrets/{name}`: one secret of the node's env.
pub async fn read_secret(
    s: &AppState,
    who: &Node,
    id: &str,
    corr: Option<&RequestId>,
    name: &str,
    version: Option<u64>,
) -> Result<Revealed, Error> {
    same_node(s, who, id, corr).await?;
    drive(
        s,
        &NodeReader { who, corr },
        AuditedRead::one(name, version, true),
    )
    .await?
    .pop()
    .ok_or_else(|| Error::internal("a read ended without its value"))
}

/// Every live secret of an env, as one secrets file.
pub struct EnvFile {
    /// The `BULWARK_SECRETS_V1` bytes (zeroized on drop).
    pub file: Zeroizing<Vec<u8>>,
    /// How many secrets it holds.
    pub count: usize,
}

/// `GET /v1/nodes/{id}/secrets`: every live secret of the node's env as one
/// `BULWARK_SECRETS_V1` file (each read journaled, as for single reads).
pub async fn read_env(
    s: &AppState,
    who: &Node,
    id: &str,
    corr: Option<&RequestId>,
) -> Result<EnvFile, Error> {
    same_node(s, who, id, corr).await?;
    let values = drive(s, &NodeReader { who, corr }, AuditedRead::env(true)).await?;
    let count = values.len();
    let file = bulwark_secrets::file::render_named(values.into_iter().map(|r| (r.name, r.value)))
        .map_err(|e| super::secrets::SecretsError::File(e.to_string()))?;
    Ok(EnvFile { file, count })
}

/// `GET /v1/nodes/{id}/event-keys`: the node's org's signing keys (public) with their
/// transition times, for the agent's own checks.
pub async fn event_keys(
    s: &AppState,
    who: &Node,
    id: &str,
    corr: Option<&RequestId>,
) -> Result<Vec<bulwark_events::PublishedKey>, Error> {
    same_node(s, who, id, corr).await?;
    let ring = s.events.view.rings().get(&who.org).unwrap_or_default();
    Ok(ring.keys().cloned().collect())
}

/// `GET /v1/nodes/{id}/events`: the node's subscription (see
/// [`super::events::subscribe`]).
pub async fn events(
    s: &AppState,
    who: &Node,
    id: &str,
    corr: Option<&RequestId>,
    last_event_id: Option<&[u8]>,
) -> Result<super::events::Subscription, Error> {
    same_node(s, who, id, corr).await?;
    super::events::subscribe(s, &who.org, &who.node, last_event_id).await
}
