//! Nodes and their enrolment: an operator (an admin of the org) registers a node and mints
//! a single-use join token (15 minutes by default, only its SHA-256 kept, journaled); the
//! agent makes its key on the node and sends a CSR with the token, which is signed into a
//! 24-hour certificate for `spiffe://<trust-domain>/org/<org>/node/<node>` by the
//! intermediate. The token check and its use are one step under the sequencer, so two
//! racing enrolments with one token get one certificate. Quarantine tells the node over the
//! signed bus, then the node API refuses it.

use std::future::Future;

use bulwark_core::{Name, ProblemCode, RequestId};
use bulwark_directory::{Event, Node};
use bulwark_identity::jose::now_secs;
use bulwark_pki::ca::{SpiffeId, Workload};
use zeroize::Zeroizing;

use super::OrgGrant;
use super::certs::{Signed, sign};
use crate::AppState;
use crate::error::Error;

/// Default and longest join-token lifetime.
const JOIN_TOKEN_TTL: i64 = 15 * 60;
const JOIN_TOKEN_MIN_TTL: i64 = 60;
const JOIN_TOKEN_MAX_TTL: i64 = 24 * 3600;

/// Why an enrolment was refused. Every variant answers the same (401, "unknown, expired or
/// already used"), so that a caller cannot tell which tokens exist; the metric tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// No join token has this hash.
    Unknown,
    /// A node enrolled with it already.
    Used,
    /// Its lifetime is over.
    Expired,
}

impl JoinRefusal {
    /// The `auth_failures_total{reason}` label.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Unknown => "join_token_unknown",
            Self::Used => "join_token_used",
            Self::Expired => "join_token_expired",
        }
    }
}

impl From<JoinRefusal> for Error {
    fn from(_: JoinRefusal) -> Self {
        Error::refused(
            ProblemCode::Unauthorized,
            "the join token is unknown, expired or already used",
        )
    }
}

/// A node registered.
pub struct Created {
    /// Its name.
    pub node: Name,
    /// The journal entry.
    pub seq: u64,
}

/// Registers `node` in the grant's org (an admin of it).
pub async fn create(s: &AppState, g: &OrgGrant<'_>, node: Name) -> Result<Created, Error> {
    let org = g.org();
    let _seq = s.journal.sequencer.lock().await;
    {
        let dir = s.directory.read();
        if !dir.exists(g.scope()) {
            return Err(Error::not_found(g.scope()));
        }
        if dir.node(org.as_str(), node.as_str()).is_some() {
            return Err(Error::conflict(format!("node `{node}` exists")));
        }
    }
    let event = Event::NodeCreate {
        org: org.to_string(),
        node: node.to_string(),
    };
    let seq = g.commit(s, &event).await?;
    Ok(Created { node, seq })
}

/// The grant's org's nodes.
pub fn list(s: &AppState, g: &OrgGrant<'_>) -> Result<Vec<Node>, Error> {
    let dir = s.directory.read();
    if !dir.exists(g.scope()) {
        return Err(Error::not_found(g.scope()));
    }
    Ok(dir
        .nodes_in(g.org().as_str())
        .into_iter()
        .cloned()
        .collect())
}

/// A quarantine or release recorded.
pub struct Quarantine {
    /// The node.
    pub node: Name,
    /// Whether it is quarantined now.
    pub quarantined: bool,
    /// The journal entry.
    pub seq: u64,
}

/// Quarantines (`quarantined`) or releases `node` of the grant's org (an admin of it).
///
/// Quarantining a node that is not quarantined yet first runs `notice` (which publishes
/// `node.quarantine` to it over the signed bus; called under the sequencer, after the
/// caller's rights are decided again): the node is told first, then the quarantine closes
/// its connections. A notice that fails is logged, not fatal; if the quarantine cannot be
/// journaled afterwards, the node has wiped its secrets without being quarantined: the
/// safe side. `notice` is not run otherwise.
pub async fn set_quarantine(
    s: &AppState,
    g: &OrgGrant<'_>,
    node: Name,
    quarantined: bool,
    notice: impl Future<Output = Result<u64, Error>>,
) -> Result<Quarantine, Error> {
    let org = g.org();
    let _seq = s.journal.sequencer.lock().await;
    let was_quarantined = match s.directory.read().node(org.as_str(), node.as_str()) {
        None => return Err(Error::not_found(format!("node `{node}`"))),
        Some(n) => n.quarantined,
    };
    if quarantined && !was_quarantined {
        g.recheck(s)?;
        if let Err(e) = notice.await {
            let detail = match &e {
                Error::Refused(p) => p.detail.clone(),
                other => other.to_string(),
            };
            tracing::warn!(detail = detail.as_str(), "node.quarantine not published");
        }
    }
    let event = Event::NodeQuarantine {
        org: org.to_string(),
        node: node.to_string(),
        quarantined,
    };
    let seq = g.commit(s, &event).await?;
    Ok(Quarantine {
        node,
        quarantined,
        seq,
    })
}

/// A join token's lifetime, in seconds: 60 s to a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinTtl(i64);

impl JoinTtl {
    /// `secs`, or the default (15 minutes) when not given; 400 outside 60 s – 24 h.
    pub fn new(secs: Option<i64>) -> Result<Self, Error> {
        let ttl = secs.unwrap_or(JOIN_TOKEN_TTL);
        if (JOIN_TOKEN_MIN_TTL..=JOIN_TOKEN_MAX_TTL).contains(&ttl) {
            Ok(Self(ttl))
        } else {
            Err(Error::bad_request("ttl_secs is between 60 and 86400"))
        }
    }

    /// In seconds.
    pub const fn secs(self) -> i64 {
        self.0
    }
}

/// A join token minted: shown once, only its hash is kept.
pub struct JoinToken {
    /// The token (`bwj_…`).
    pub token: Zeroizing<String>,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
    /// The node it enrols.
    pub node: Name,
    /// The journal entry.
    pub seq: u64,
}

/// The hex SHA-256 of a join token: what the journal and the directory know of it.
fn hash_hex(token: &str) -> String {
    bulwark_ledger::verify::hex(&bulwark_crypto::sha256(token.as_bytes()))
}

/// Mints a single-use join token for `node` of the grant's org (an admin of it).
pub async fn join_token(
    s: &AppState,
    g: &OrgGrant<'_>,
    node: Name,
    ttl: JoinTtl,
) -> Result<JoinToken, Error> {
    let org = g.org();
    let mut raw = Zeroizing::new([0u8; 32]);
    bulwark_crypto::fill_random(raw.as_mut())
        .map_err(|_| Error::refused(ProblemCode::Internal, "random source failed"))?;
    let token = Zeroizing::new(format!("bwj_{}", bulwark_identity::jose::b64(raw.as_ref())));
    let expires_at = now_secs() + ttl.secs();
    let _seq = s.journal.sequencer.lock().await;
    if s.directory
        .read()
        .node(org.as_str(), node.as_str())
        .is_none()
    {
        return Err(Error::not_found(format!("node `{node}`")));
    }
    let event = Event::NodeJoinToken {
        org: org.to_string(),
        node: node.to_string(),
        token_hash: hash_hex(&token),
        expires_at,
    };
    let seq = g.commit(s, &event).await?;
    Ok(JoinToken {
        token,
        expires_at,
        node,
        seq,
    })
}

/// A node enrolled: its certificate, journaled.
pub struct Enrolled {
    /// Its SPIFFE id.
    pub id: SpiffeId,
    /// Its certificate.
    pub signed: Signed,
    /// The `node.enroll` entry.
    pub seq: u64,
}

/// Which token an enrolment presents and the state of the directory decide whether it may
/// enrol: the token must be known, unused and unexpired at `now`.
fn check_join_token(
    token: Option<&bulwark_directory::JoinToken>,
    now: i64,
) -> Result<&bulwark_directory::JoinToken, JoinRefusal> {
    let token = token.ok_or(JoinRefusal::Unknown)?;
    if token.used {
        return Err(JoinRefusal::Used);
    }
    if token.expires_at <= now {
        return Err(JoinRefusal::Expired);
    }
    Ok(token)
}

/// Uses the token up on the single-use port (the check that holds across replicas), for
/// the rest of its validity. A port that cannot answer refuses (503), never admits.
async fn consume_join_token(s: &AppState, hash: &str, valid_for: i64) -> Result<(), Error> {
    let ttl = std::time::Duration::from_secs(u64::try_from(valid_for).unwrap_or(1).max(1));
    let key = bulwark_shared::Key::from_parts(&[hash.as_bytes()]);
    match s.shared.single_use.consume("join-token", key, ttl).await {
        Ok(bulwark_shared::Use::First) => Ok(()),
        Ok(bulwark_shared::Use::AlreadyUsed) => {
            crate::authn::count_failure(JoinRefusal::Used.reason());
            Err(JoinRefusal::Used.into())
        }
        Err(e) => {
            tracing::error!(error = %e, "the single-use store cannot answer: enrolment refused");
            Err(Error::Refused(
                bulwark_core::Problem::new(
                    ProblemCode::NotReady,
                    "the single-use store cannot answer; try again",
                )
                .retry_after(1),
            ))
        }
    }
}

/// Enrols the node a join token names: uses the token up and signs `csr_pem` for the
/// node's SPIFFE id, in one step under the sequencer. Authenticated by the token alone;
/// journaled (and the token used up) before the certificate leaves.
pub async fn enroll(
    s: &AppState,
    token: &str,
    csr_pem: &str,
    corr: Option<&RequestId>,
) -> Result<Enrolled, Error> {
    let hash = hash_hex(token);
    let now = now_secs();
    let _seq = s.journal.sequencer.lock().await;
    let token = check_join_token(s.directory.read().join_token(&hash), now)
        .cloned()
        .inspect_err(|r| crate::authn::count_failure(r.reason()))?;
    let id = SpiffeId::new(&s.pki.trust_domain, &token.org, Workload::Node, &token.node)
        .map_err(|_| Error::refused(ProblemCode::Internal, "invalid SPIFFE id"))?;
    let signed = sign(s, csr_pem, &id, Workload::Node, Some(s.pki.node_cert_ttl))?;
    consume_join_token(s, &hash, token.expires_at - now).await?;
    let event = Event::NodeEnroll {
        org: token.org.clone(),
        node: token.node.clone(),
        token_hash: hash,
        spiffe_id: id.to_string(),
        not_after: signed.not_after,
        serial: Some(signed.serial.clone()),
    };
    let org = Name::parse(&token.org).ok();
    let seq = super::append_event(
        s,
        &event,
        &format!("node:{}", token.node),
        org.as_ref(),
        corr.map(RequestId::as_str),
    )
    .await?;
    Ok(Enrolled { id, signed, seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(used: bool, expires_at: i64) -> bulwark_directory::JoinToken {
        bulwark_directory::JoinToken {
            org: "acme".into(),
            node: "web-1".into(),
            expires_at,
            used,
        }
    }

    #[test]
    fn a_join_token_enrols_once_and_only_before_it_expires() {
        let fresh = token(false, 1_000);
        assert!(check_join_token(Some(&fresh), 999).is_ok());
        assert_eq!(
            check_join_token(Some(&token(true, 1_000)), 999).err(),
            Some(JoinRefusal::Used)
        );
        assert_eq!(
            check_join_token(Some(&fresh), 1_000).err(),
            Some(JoinRefusal::Expired)
        );
        assert_eq!(check_join_token(None, 0).err(), Some(JoinRefusal::Unknown));
    }

    #[test]
    fn every_join_refusal_answers_alike() {
        let answers: Vec<bulwark_core::Problem> = [
            JoinRefusal::Unknown,
            JoinRefusal::Used,
            JoinRefusal::Expired,
        ]
        .into_iter()
        .map(|r| Error::from(r).into())
        .collect();
        assert!(answers.iter().all(|p| p.code == ProblemCode::Unauthorized));
        assert!(answers.windows(2).all(|w| w[0].detail == w[1].detail));
    }

    #[test]
    fn join_token_lifetimes_are_bounded() {
        assert_eq!(JoinTtl::new(None).map(JoinTtl::secs).ok(), Some(900));
        assert!(JoinTtl::new(Some(60)).is_ok());
        assert!(JoinTtl::new(Some(86_400)).is_ok());
        assert!(JoinTtl::new(Some(59)).is_err());
        assert!(JoinTtl::new(Some(86_401)).is_err());
    }
}
