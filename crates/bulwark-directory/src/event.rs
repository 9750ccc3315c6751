//! Journal events of the directory. Each is one entry: `action` names the variant, `data`
//! holds its fields. [`Event::draft`] builds the entry; [`Event::from_entry`] reads it back.

use bulwark_ledger::entry::{Draft, Entry, EntryData, EntryError, Kind};
use serde::{Deserialize, Serialize};

/// How a principal's access tokens are bound (journaled, shown in audits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    /// DPoP (RFC 9449): the default.
    #[default]
    Dpop,
    /// mTLS (RFC 8705).
    Mtls,
    /// Plain bearer, for clients that cannot hold a key.
    None,
}

impl Binding {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dpop => "dpop",
            Self::Mtls => "mtls",
            Self::None => "none",
        }
    }
}

/// Kinds of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// Client credentials.
    Service,
    /// A person (operator-created until OIDC federation arrives).
    User,
}

/// Every directory event. Scopes and subjects travel in their text forms
/// (`org/acme/app/web`, `service:svc_…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "data")]
pub enum Event {
    /// An org was created.
    #[serde(rename = "org.create")]
    OrgCreate {
        /// Its name.
        org: String,
    },
    /// An app was created in an org.
    #[serde(rename = "app.create")]
    AppCreate {
        /// The org.
        org: String,
        /// The app.
        app: String,
    },
    /// An env was created in an app.
    #[serde(rename = "env.create")]
    EnvCreate {
        /// The org.
        org: String,
        /// The app.
        app: String,
        /// The env.
        env: String,
    },
    /// A scope was disabled: every request under it is denied.
    #[serde(rename = "scope.disable")]
    ScopeDisable {
        /// The scope.
        scope: String,
    },
    /// A scope was re-enabled.
    #[serde(rename = "scope.enable")]
    ScopeEnable {
        /// The scope.
        scope: String,
    },
    /// A principal was created.
    #[serde(rename = "principal.create")]
    PrincipalCreate {
        /// `svc_…` or `usr_…`.
        id: String,
        /// Service or user.
        kind: PrincipalKind,
        /// A display name.
        name: String,
        /// The org it belongs to; `None` for instance principals (operators).
        org: Option<String>,
        /// How its tokens are bound.
        token_binding: Binding,
        /// Argon2id PHC string of its client secret (a 256-bit random value: the hash
        /// reveals nothing useful, and the journal is access-controlled besides).
        secret_hash: Option<String>,
        /// A registered public JWK for `private_key_jwt`.
        jwk: Option<serde_json::Value>,
    },
    /// A principal's client secret was replaced; the old one stops working.
    #[serde(rename = "principal.rotate_secret")]
    PrincipalRotateSecret {
        /// The principal.
        id: String,
        /// The new hash.
        secret_hash: String,
    },
    /// A principal's token binding was changed.
    #[serde(rename = "principal.set_binding")]
    PrincipalSetBinding {
        /// The principal.
        id: String,
        /// The new binding.
        token_binding: Binding,
    },
    /// Every token of a principal issued before `not_before` is revoked.
    #[serde(rename = "principal.revoke_tokens")]
    PrincipalRevokeTokens {
        /// The principal.
        id: String,
        /// Unix seconds.
        not_before: i64,
    },
    /// A principal was deleted (its relations go with it).
    #[serde(rename = "principal.delete")]
    PrincipalDelete {
        /// The principal.
        id: String,
    },
    /// A relation tuple was granted.
    #[serde(rename = "relation.grant")]
    RelationGrant {
        /// Where.
        scope: String,
        /// What.
        relation: String,
        /// Who.
        subject: String,
    },
    /// A relation tuple was revoked.
    #[serde(rename = "relation.revoke")]
    RelationRevoke {
        /// Where.
        scope: String,
        /// What.
        relation: String,
        /// Who.
        subject: String,
    },
    /// A node was registered in an org.
    #[serde(rename = "node.create")]
    NodeCreate {
        /// The org.
        org: String,
        /// The node's name.
        node: String,
    },
    /// A single-use join token was minted for a node (only its SHA-256 is kept).
    #[serde(rename = "node.join_token")]
    NodeJoinToken {
        /// The org.
        org: String,
        /// The node.
        node: String,
        /// Hex SHA-256 of the token.
        token_hash: String,
        /// Unix seconds after which it is refused.
        expires_at: i64,
    },
    /// A node enrolled with a join token (which is now used up).
    #[serde(rename = "node.enroll")]
    NodeEnroll {
        /// The org.
        org: String,
        /// The node.
        node: String,
        /// The token it used.
        token_hash: String,
        /// Its SPIFFE id.
        spiffe_id: String,
        /// Its certificate's end (Unix seconds).
        not_after: i64,
        /// Its certificate's serial (hex); absent in entries from before serials were kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<String>,
    },
    /// A certificate was issued: a node's renewal (`node` set) or a service's certificate.
    #[serde(rename = "cert.issue")]
    CertIssue {
        /// The org.
        org: String,
        /// The SPIFFE id it names.
        spiffe_id: String,
        /// Its serial (hex).
        serial: String,
        /// Its end (Unix seconds).
        not_after: i64,
        /// The node it renews, if a node's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        /// The certificate the renewal rode on (revoking that one revokes this one too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        renewed_from: Option<String>,
    },
    /// A certificate was revoked, with every renewal made from it: refused at the next
    /// handshake, listed in the CRL until it expires.
    #[serde(rename = "cert.revoke")]
    CertRevoke {
        /// The org it belongs to.
        org: String,
        /// Its serial (hex).
        serial: String,
        /// The RFC 5280 reason's wire name, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A node was quarantined (`true`) or released (`false`): a quarantined node gets
    /// nothing from the node API.
    #[serde(rename = "node.quarantine")]
    NodeQuarantine {
        /// The org.
        org: String,
        /// The node.
        node: String,
        /// Quarantined or released.
        quarantined: bool,
    },
    /// One access token was revoked (RFC 7009).
    #[serde(rename = "token.revoke")]
    TokenRevoke {
        /// Its id.
        jti: String,
        /// Its expiry: the revocation can be forgotten after it.
        exp: i64,
        /// Its subject.
        sub: String,
    },
}

/// A serialised event's `data` may enter the journal: it holds names, ids, public keys
/// and Argon2id hashes only.
#[derive(Serialize)]
struct Data<'a>(&'a serde_json::Value);
impl EntryData for Data<'_> {}

impl Event {
    /// The action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::OrgCreate { .. } => "org.create",
            Self::AppCreate { .. } => "app.create",
            Self::EnvCreate { .. } => "env.create",
            Self::ScopeDisable { .. } => "scope.disable",
            Self::ScopeEnable { .. } => "scope.enable",
            Self::PrincipalCreate { .. } => "principal.create",
            Self::PrincipalRotateSecret { .. } => "principal.rotate_secret",
            Self::PrincipalSetBinding { .. } => "principal.set_binding",
            Self::PrincipalRevokeTokens { .. } => "principal.revoke_tokens",
            Self::PrincipalDelete { .. } => "principal.delete",
            Self::RelationGrant { .. } => "relation.grant",
            Self::RelationRevoke { .. } => "relation.revoke",
            Self::TokenRevoke { .. } => "token.revoke",
            Self::NodeCreate { .. } => "node.create",
            Self::NodeJoinToken { .. } => "node.join_token",
            Self::NodeEnroll { .. } => "node.enroll",
            Self::NodeQuarantine { .. } => "node.quarantine",
            Self::CertIssue { .. } => "cert.issue",
            Self::CertRevoke { .. } => "cert.revoke",
        }
    }

    /// Whether `action` is one of ours.
    pub fn handles(action: &str) -> bool {
        matches!(
            action,
            "org.create"
                | "app.create"
                | "env.create"
                | "scope.disable"
                | "scope.enable"
                | "principal.create"
                | "principal.rotate_secret"
                | "principal.set_binding"
                | "principal.revoke_tokens"
                | "principal.delete"
                | "relation.grant"
                | "relation.revoke"
                | "token.revoke"
                | "node.create"
                | "node.join_token"
                | "node.enroll"
                | "node.quarantine"
                | "cert.issue"
                | "cert.revoke"
        )
    }

    /// What the entry's `resource` says.
    pub fn resource(&self) -> String {
        match self {
            Self::OrgCreate { org } => format!("org/{org}"),
            Self::AppCreate { org, app } => format!("org/{org}/app/{app}"),
            Self::EnvCreate { org, app, env } => format!("org/{org}/app/{app}/env/{env}"),
            Self::ScopeDisable { scope } | Self::ScopeEnable { scope } => scope.clone(),
            Self::PrincipalCreate { id, .. }
            | Self::PrincipalRotateSecret { id, .. }
            | Self::PrincipalSetBinding { id, .. }
            | Self::PrincipalRevokeTokens { id, .. }
            | Self::PrincipalDelete { id } => format!("principal/{id}"),
            Self::RelationGrant {
                scope,
                relation,
                subject,
            }
            | Self::RelationRevoke {
                scope,
                relation,
                subject,
            } => format!("{scope}#{relation}@{subject}"),
            Self::TokenRevoke { jti, .. } => format!("token/{jti}"),
            Self::NodeCreate { org, node }
            | Self::NodeJoinToken { org, node, .. }
            | Self::NodeEnroll { org, node, .. }
            | Self::NodeQuarantine { org, node, .. } => format!("org/{org}/node/{node}"),
            Self::CertIssue { org, serial, .. } | Self::CertRevoke { org, serial, .. } => {
                format!("org/{org}/certificate/{serial}")
            }
        }
    }

    /// The entry for this event, by `actor` (a principal id, `admin:<uid>`, …), in `org`.
    pub fn draft(
        &self,
        actor: &str,
        org: Option<&str>,
        corr_id: Option<&str>,
    ) -> Result<Draft, EntryError> {
        let v = serde_json::to_value(self).map_err(EntryError::Data)?;
        let data = v.get("data").cloned().unwrap_or_default();
        let mut d = Draft::new(Kind::State, self.action(), self.resource())
            .actor(actor)
            .data(&Data(&data))?;
        if let Some(o) = org {
            d = d.org(o);
        }
        if let Some(c) = corr_id {
            d = d.corr_id(c);
        }
        Ok(d)
    }

    /// Reads an entry back: `None` if it is not a directory event, `Some(Err)` if it is one
    /// whose data does not parse.
    pub fn from_entry(entry: &Entry) -> Option<Result<Self, serde_json::Error>> {
        if !Event::handles(&entry.action) {
            return None;
        }
        let v = serde_json::json!({"action": entry.action, "data": entry.data});
        Some(serde_json::from_value(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_entries() {
        let events = [
            Event::OrgCreate { org: "acme".into() },
            Event::RelationGrant {
                scope: "org/acme".into(),
                relation: "admin".into(),
                subject: "service:svc_a".into(),
            },
            Event::PrincipalCreate {
                id: "svc_a".into(),
                kind: PrincipalKind::Service,
                name: "ci".into(),
                org: Some("acme".into()),
                token_binding: Binding::Dpop,
                secret_hash: Some("$argon2id$…".into()),
                jwk: None,
            },
            Event::TokenRevoke {
                jti: "j".into(),
                exp: 5,
                sub: "service:svc_a".into(),
            },
        ];
        for (i, e) in events.iter().enumerate() {
            assert!(Event::handles(e.action()));
            let entry = e
                .draft("admin:0", Some("acme"), Some("r1"))
                .unwrap()
                .sequence(i as u64, 0);
            assert_eq!(entry.action, e.action());
            assert_eq!(entry.resource, e.resource());
            assert_eq!(&Event::from_entry(&entry).unwrap().unwrap(), e);
        }
    }
}
