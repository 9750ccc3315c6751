//! The directory projection: the tenant tree, principals, relations and revocations as
//! folded from the journal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use bulwark_authz::{Relation, Relations, Subject, Tuple};
use bulwark_core::{Name, Scope};
use bulwark_ledger::entry::Entry;
use bulwark_ledger::projection::Projection;
use serde::{Deserialize, Serialize};

use crate::event::{Binding, Event, PrincipalKind};

/// How long after a token's `exp` its revocation is kept: more than the 30 s of clock
/// skew the token verifier tolerates on `exp`.
pub const REVOCATION_GRACE_SECS: i64 = 120;

/// A principal. Deliberately not `Debug`: it carries a credential hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct Principal {
    /// `svc_…` / `usr_…`.
    pub id: String,
    /// Service or user.
    pub kind: PrincipalKind,
    /// Display name.
    pub name: String,
    /// The org it belongs to (`None`: an instance principal).
    pub org: Option<String>,
    /// Token binding.
    pub token_binding: Binding,
    /// Argon2id hash of the client secret.
    pub secret_hash: Option<String>,
    /// Registered public JWK for `private_key_jwt`.
    pub jwk: Option<serde_json::Value>,
    /// Tokens issued before this (Unix seconds) are revoked.
    pub not_before: i64,
    /// The entry that created it.
    pub created_seq: u64,
}

impl Principal {
    /// The authorization subject.
    pub fn subject(&self) -> Subject {
        match self.kind {
            PrincipalKind::Service => Subject::Service(self.id.as_str().into()),
            PrincipalKind::User => Subject::User(self.id.as_str().into()),
        }
    }
}

/// A node as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The org.
    pub org: String,
    /// The node's name.
    pub name: String,
    /// The entry that registered it.
    pub created_seq: u64,
    /// Its SPIFFE id once enrolled.
    pub spiffe_id: Option<String>,
    /// Its certificate's end once enrolled (Unix seconds).
    pub not_after: Option<i64>,
    /// Quarantined: the node API refuses it.
    #[serde(default)]
    pub quarantined: bool,
}

/// A join token (by its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// The org.
    pub org: String,
    /// The node it enrols.
    pub node: String,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
    /// Whether a node enrolled with it.
    pub used: bool,
}

/// A certificate the CA issued (kept until it expires, for revocation and the CRL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// The org it belongs to.
    pub org: String,
    /// The SPIFFE id it names.
    pub spiffe_id: String,
    /// Its end (Unix seconds).
    pub not_after: i64,
    /// When it was revoked (Unix seconds), if it was.
    #[serde(default)]
    pub revoked_at: Option<i64>,
    /// Why, if said.
    #[serde(default)]
    pub reason: Option<String>,
    /// The certificate this one renewed (it rode on it), if a renewal.
    #[serde(default)]
    pub renewed_from: Option<String>,
    /// The certificate that renewed this one (each renews at most once).
    #[serde(default)]
    pub renewed_to: Option<String>,
}

/// Issued certificates are forgotten this long after they expire.
const CERT_GRACE_SECS: i64 = 3600;

/// The folded state.
#[derive(Default, Clone)]
pub struct Directory {
    tree: BTreeMap<Name, BTreeMap<Name, BTreeSet<Name>>>,
    relations: Relations,
    principals: HashMap<String, Principal>,
    revoked: HashMap<String, i64>,
    nodes: BTreeMap<(String, String), Node>,
    join_tokens: HashMap<String, JoinToken>,
    certs: HashMap<String, IssuedCert>,
    /// `(not_after, serial)` of every kept certificate: pruning takes from the front.
    cert_expiry: BTreeSet<(i64, String)>,
    /// Serials of the revoked ones.
    revoked_serials: BTreeSet<String>,
}

/// The wire form of a snapshot.
#[derive(Serialize, Deserialize, Default)]
struct Saved {
    tree: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    disabled: Vec<String>,
    tuples: Vec<[String; 3]>,
    principals: Vec<Principal>,
    revoked: Vec<(String, i64)>,
    #[serde(default)]
    nodes: Vec<Node>,
    #[serde(default)]
    join_tokens: Vec<(String, JoinToken)>,
    #[serde(default)]
    certs: Vec<(String, IssuedCert)>,
}

impl Directory {
    /// Whether the scope exists (the instance always does).
    pub fn exists(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Instance => true,
            Scope::Org(o) => self.tree.contains_key(o),
            Scope::App(o, a) => self.tree.get(o).is_some_and(|m| m.contains_key(a)),
            Scope::Env(o, a, e) => self
                .tree
                .get(o)
                .and_then(|m| m.get(a))
                .is_some_and(|s| s.contains(e)),
        }
    }

    /// The nearest disabled scope at or above `scope`.
    pub fn disabled_at(&self, scope: &Scope) -> Option<Scope> {
        scope
            .lineage()
            .into_iter()
            .find(|s| self.relations.is_disabled(s))
    }

    /// Orgs, sorted.
    pub fn orgs(&self) -> impl Iterator<Item = &Name> {
        self.tree.keys()
    }

    /// Apps of an org, sorted.
    pub fn apps(&self, org: &Name) -> Vec<&Name> {
        self.tree
            .get(org)
            .map(|m| m.keys().collect())
            .unwrap_or_default()
    }

    /// Envs of an app, sorted.
    pub fn envs(&self, org: &Name, app: &Name) -> Vec<&Name> {
        self.tree
            .get(org)
            .and_then(|m| m.get(app))
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    /// The relation store.
    pub fn relations(&self) -> &Relations {
        &self.relations
    }

    /// A principal by id.
    pub fn principal(&self, id: &str) -> Option<&Principal> {
        self.principals.get(id)
    }

    /// The principals of an org (or the instance principals for `None`), sorted by id.
    pub fn principals_in(&self, org: Option<&str>) -> Vec<&Principal> {
        let mut v: Vec<&Principal> = self
            .principals
            .values()
            .filter(|p| p.org.as_deref() == org)
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Whether any principal exists (the bootstrap runs only on an empty directory).
    pub fn has_principals(&self) -> bool {
        !self.principals.is_empty()
    }

    /// A node.
    pub fn node(&self, org: &str, node: &str) -> Option<&Node> {
        self.nodes.get(&(org.to_owned(), node.to_owned()))
    }

    /// The nodes of an org, by name.
    pub fn nodes_in(&self, org: &str) -> Vec<&Node> {
        self.nodes.values().filter(|n| n.org == org).collect()
    }

    /// An issued certificate by its serial (hex), while it has not expired.
    pub fn cert(&self, serial: &str) -> Option<&IssuedCert> {
        self.certs.get(serial)
    }

    /// Whether the certificate with this serial was revoked.
    pub fn cert_revoked(&self, serial: &str) -> bool {
        self.certs
            .get(serial)
            .is_some_and(|c| c.revoked_at.is_some())
    }

    /// The certificates of an org, by serial.
    pub fn certs_in(&self, org: &str) -> Vec<(&String, &IssuedCert)> {
        let mut v: Vec<_> = self.certs.iter().filter(|(_, c)| c.org == org).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Every revoked certificate that has not expired at `now`, by serial.
    pub fn revoked_certs(&self, now: i64) -> Vec<(&String, &IssuedCert)> {
        self.revoked_serials
            .iter()
            .filter_map(|s| self.certs.get_key_value(s))
            .filter(|(_, c)| c.not_after > now)
            .collect()
    }

    fn record_cert(&mut self, now: i64, serial: String, cert: IssuedCert) {
        // Forget certificates long expired, oldest first (no scan of the live ones).
        while let Some(first) = self.cert_expiry.first().cloned() {
            if first.0.saturating_add(CERT_GRACE_SECS) > now {
                break;
            }
            self.cert_expiry.pop_first();
            self.certs.remove(&first.1);
            self.revoked_serials.remove(&first.1);
        }
        if let Some(from) = &cert.renewed_from
            && let Some(parent) = self.certs.get_mut(from)
        {
            parent.renewed_to = Some(serial.clone());
        }
        self.cert_expiry.insert((cert.not_after, serial.clone()));
        self.certs.insert(serial, cert);
    }

    /// Revokes `serial` and every renewal made from it (a stolen key's renewals go with it).
    fn revoke_line(&mut self, now: i64, serial: &str, reason: Option<String>) {
        let mut next = Some(serial.to_owned());
        let mut hops = 0;
        while let Some(s) = next.take() {
            let Some(c) = self.certs.get_mut(&s) else {
                break;
            };
            if c.revoked_at.is_none() {
                c.revoked_at = Some(now);
                c.reason.clone_from(&reason);
            }
            self.revoked_serials.insert(s);
            next = c.renewed_to.clone();
            hops += 1;
            if hops > 100_000 {
                break;
            }
        }
    }

    /// A join token by the hex SHA-256 of its value.
    pub fn join_token(&self, hash: &str) -> Option<&JoinToken> {
        self.join_tokens.get(hash)
    }

    /// Whether a token id was revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Folds one event, sequenced at `seq`, `now` Unix seconds. Events that do not fit the
    /// state (a bug or a forged log: commands are checked before they are journaled) are
    /// logged and skipped.
    pub fn apply(&mut self, seq: u64, now: i64, event: Event) {
        if let Err(why) = self.try_apply(seq, now, event) {
            tracing::error!(seq, why, "directory event does not apply; skipped");
        }
    }

    fn try_apply(&mut self, seq: u64, now: i64, event: Event) -> Result<(), &'static str> {
        let name = |s: &str| Name::parse(s).map_err(|_| "bad name");
        let scope = |s: &str| Scope::parse(s).ok_or("bad scope");
        match event {
            Event::OrgCreate { org } => {
                self.tree.entry(name(&org)?).or_default();
            }
            Event::AppCreate { org, app } => {
                self.tree
                    .get_mut(&name(&org)?)
                    .ok_or("no such org")?
                    .entry(name(&app)?)
                    .or_default();
            }
            Event::EnvCreate { org, app, env } => {
                self.tree
                    .get_mut(&name(&org)?)
                    .and_then(|m| m.get_mut(&Name::parse(&app).ok()?))
                    .ok_or("no such app")?
                    .insert(name(&env)?);
            }
            Event::ScopeDisable { scope: s } => self.relations.set_disabled(&scope(&s)?, true),
            Event::ScopeEnable { scope: s } => self.relations.set_disabled(&scope(&s)?, false),
            Event::PrincipalCreate {
                id,
                kind,
                name: display,
                org,
                token_binding,
                secret_hash,
                jwk,
            } => {
                if self.principals.contains_key(&id) {
                    return Err("principal exists");
                }
                self.principals.insert(
                    id.clone(),
                    Principal {
                        id,
                        kind,
                        name: display,
                        org,
                        token_binding,
                        secret_hash,
                        jwk,
                        not_before: 0,
                        created_seq: seq,
                    },
                );
            }
            Event::PrincipalRotateSecret { id, secret_hash } => {
                self.principals
                    .get_mut(&id)
                    .ok_or("no such principal")?
                    .secret_hash = Some(secret_hash);
            }
            Event::PrincipalSetBinding { id, token_binding } => {
                self.principals
                    .get_mut(&id)
                    .ok_or("no such principal")?
                    .token_binding = token_binding;
            }
            Event::PrincipalRevokeTokens { id, not_before } => {
                let p = self.principals.get_mut(&id).ok_or("no such principal")?;
                p.not_before = p.not_before.max(not_before);
            }
            Event::PrincipalDelete { id } => {
                let p = self.principals.remove(&id).ok_or("no such principal")?;
                self.relations.remove_subject(&p.subject());
            }
            Event::RelationGrant {
                scope: s,
                relation,
                subject,
            } => {
                self.relations.grant(&tuple(&s, &relation, &subject)?);
            }
            Event::RelationRevoke {
                scope: s,
                relation,
                subject,
            } => {
                self.relations.revoke(&tuple(&s, &relation, &subject)?);
            }
            Event::NodeCreate { org, node } => {
                self.nodes
                    .entry((org.clone(), node.clone()))
                    .or_insert(Node {
                        org,
                        name: node,
                        created_seq: seq,
                        spiffe_id: None,
                        not_after: None,
                        quarantined: false,
                    });
            }
            Event::NodeJoinToken {
                org,
                node,
                token_hash,
                expires_at,
            } => {
                // Forget tokens that expired long ago (an hour's grace for audits of used ones).
                self.join_tokens
                    .retain(|_, t| t.expires_at.saturating_add(3600) > now);
                self.join_tokens.insert(
                    token_hash,
                    JoinToken {
                        org,
                        node,
                        expires_at,
                        used: false,
                    },
                );
            }
            Event::NodeEnroll {
                org,
                node,
                token_hash,
                spiffe_id,
                not_after,
                serial,
            } => {
                if let Some(t) = self.join_tokens.get_mut(&token_hash) {
                    t.used = true;
                }
                let n = self
                    .nodes
                    .get_mut(&(org.clone(), node))
                    .ok_or("enrolment of an unknown node")?;
                n.spiffe_id = Some(spiffe_id.clone());
                n.not_after = Some(not_after);
                if let Some(serial) = serial {
                    self.record_cert(
                        now,
                        serial,
                        IssuedCert {
                            org,
                            spiffe_id,
                            not_after,
                            revoked_at: None,
                            reason: None,
                            renewed_from: None,
                            renewed_to: None,
                        },
                    );
                }
            }
            Event::CertIssue {
                org,
                spiffe_id,
                serial,
                not_after,
                node,
                renewed_from,
            } => {
                if let Some(node) = node {
                    let n = self
                        .nodes
                        .get_mut(&(org.clone(), node))
                        .ok_or("renewal of an unknown node")?;
                    n.not_after = Some(not_after);
                }
                self.record_cert(
                    now,
                    serial,
                    IssuedCert {
                        org,
                        spiffe_id,
                        not_after,
                        revoked_at: None,
                        reason: None,
                        renewed_from,
                        renewed_to: None,
                    },
                );
            }
            Event::CertRevoke {
                org,
                serial,
                reason,
            } => {
                if self.certs.get(&serial).is_none_or(|c| c.org != org) {
                    return Err("revocation of an unknown certificate");
                }
                self.revoke_line(now, &serial, reason);
            }
            Event::NodeQuarantine {
                org,
                node,
                quarantined,
            } => {
                self.nodes
                    .get_mut(&(org, node))
                    .ok_or("quarantine of an unknown node")?
                    .quarantined = quarantined;
            }
            Event::TokenRevoke { jti, exp, .. } => {
                // Forget revocations of tokens that no verifier would accept any more:
                // past `exp` plus more than the verifiers' clock skew.
                self.revoked
                    .retain(|_, e| e.saturating_add(REVOCATION_GRACE_SECS) > now);
                if exp.saturating_add(REVOCATION_GRACE_SECS) > now {
                    self.revoked.insert(jti, exp);
                }
            }
        }
        Ok(())
    }

    fn save(&self) -> Saved {
        let mut tuples: Vec<[String; 3]> = self
            .relations
            .tuples()
            .map(|t| {
                [
                    t.scope.to_string(),
                    t.relation.as_str().to_owned(),
                    t.subject.to_string(),
                ]
            })
            .collect();
        tuples.sort();
        let mut disabled: Vec<String> =
            self.relations.disabled().map(ToString::to_string).collect();
        disabled.sort();
        let mut principals: Vec<Principal> = self.principals.values().cloned().collect();
        principals.sort_by(|a, b| a.id.cmp(&b.id));
        let mut revoked: Vec<(String, i64)> =
            self.revoked.iter().map(|(k, v)| (k.clone(), *v)).collect();
        revoked.sort();
        let mut join_tokens: Vec<(String, JoinToken)> = self
            .join_tokens
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        join_tokens.sort_by(|a, b| a.0.cmp(&b.0));
        let mut certs: Vec<(String, IssuedCert)> = self
            .certs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        certs.sort_by(|a, b| a.0.cmp(&b.0));
        Saved {
            certs,
            nodes: self.nodes.values().cloned().collect(),
            join_tokens,
            tree: self
                .tree
                .iter()
                .map(|(o, apps)| {
                    (
                        o.to_string(),
                        apps.iter()
                            .map(|(a, envs)| {
                                (
                                    a.to_string(),
                                    envs.iter().map(ToString::to_string).collect(),
                                )
                            })
                            .collect(),
                    )
                })
                .collect(),
            disabled,
            tuples,
            principals,
            revoked,
        }
    }

    fn load(saved: Saved) -> Result<Self, String> {
        let mut d = Directory::default();
        let name = |s: &str| Name::parse(s).map_err(|e| format!("{s}: {e}"));
        for (o, apps) in saved.tree {
            let mut m = BTreeMap::new();
            for (a, envs) in apps {
                let envs = envs.iter().map(|e| name(e)).collect::<Result<_, _>>()?;
                m.insert(name(&a)?, envs);
            }
            d.tree.insert(name(&o)?, m);
        }
        for s in saved.disabled {
            let scope = Scope::parse(&s).ok_or_else(|| format!("bad scope {s}"))?;
            d.relations.set_disabled(&scope, true);
        }
        for [s, r, sub] in saved.tuples {
            d.relations
                .grant(&tuple(&s, &r, &sub).map_err(|e| e.to_owned())?);
        }
        d.principals = saved
            .principals
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        d.revoked = saved.revoked.into_iter().collect();
        d.nodes = saved
            .nodes
            .into_iter()
            .map(|n| ((n.org.clone(), n.name.clone()), n))
            .collect();
        d.join_tokens = saved.join_tokens.into_iter().collect();
        d.certs = saved.certs.into_iter().collect();
        d.cert_expiry = d
            .certs
            .iter()
            .map(|(s, c)| (c.not_after, s.clone()))
            .collect();
        d.revoked_serials = d
            .certs
            .iter()
            .filter(|(_, c)| c.revoked_at.is_some())
            .map(|(s, _)| s.clone())
            .collect();
        Ok(d)
    }
}

/// Parses a tuple's three text parts.
pub fn tuple(scope: &str, relation: &str, subject: &str) -> Result<Tuple, &'static str> {
    Ok(Tuple {
        scope: Scope::parse(scope).ok_or("bad scope")?,
        relation: Relation::parse(relation).ok_or("bad relation")?,
        subject: Subject::parse(subject).ok_or("bad subject")?,
    })
}

/// The shared, lock-protected directory the server reads on every request and the journal
/// writer folds entries into.
#[derive(Default)]
pub struct DirectoryView {
    inner: RwLock<Directory>,
    on_peer_change: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl DirectoryView {
    /// Calls `hook` after every fold that may take a peer's right to stay connected
    /// (a certificate revoked, a node quarantined or released), however the entry came to
    /// be appended: the server re-judges open connections from here. Set once.
    pub fn on_peer_change(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_peer_change.set(hook);
    }

    /// Read access. A poisoned lock still yields the state: folds never leave it half-done
    /// in a way that would matter more than refusing every request would.
    pub fn read(&self) -> RwLockReadGuard<'_, Directory> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Projection for DirectoryView {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn apply(&self, entry: &Entry) {
        let Some(parsed) = Event::from_entry(entry) else {
            return;
        };
        let event = match parsed {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(seq = entry.seq, error = %e, "malformed directory event skipped");
                return;
            }
        };
        let now = i64::try_from(entry.ts / 1000).unwrap_or(i64::MAX);
        let peers = matches!(
            event,
            Event::CertRevoke { .. } | Event::NodeQuarantine { .. }
        );
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(entry.seq, now, event);
        if peers && let Some(hook) = self.on_peer_change.get() {
            hook();
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(self.read().save()).unwrap_or_default()
    }

    fn restore(&self, state: &serde_json::Value) -> Result<(), String> {
        let saved: Saved = serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        let d = Directory::load(saved)?;
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = d;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_authz::Permission;

    fn fold(v: &DirectoryView, events: Vec<Event>) {
        for (i, e) in events.into_iter().enumerate() {
            let entry = e
                .draft("admin:0", None, None)
                .unwrap()
                .sequence(i as u64, 1_000_000);
            v.apply(&entry);
        }
    }

    fn sample() -> Vec<Event> {
        vec![
            Event::OrgCreate { org: "acme".into() },
            Event::AppCreate {
                org: "acme".into(),
                app: "web".into(),
            },
            Event::EnvCreate {
                org: "acme".into(),
                app: "web".into(),
                env: "prod".into(),
            },
            Event::AppCreate {
                org: "nope".into(),
                app: "web".into(),
            },
            Event::PrincipalCreate {
                id: "svc_a".into(),
                kind: PrincipalKind::Service,
                name: "ci".into(),
                org: Some("acme".into()),
                token_binding: Binding::None,
                secret_hash: Some("h".into()),
                jwk: None,
            },
            Event::RelationGrant {
                scope: "org/acme/app/web/env/prod".into(),
                relation: "secret_reader".into(),
                subject: "service:svc_a".into(),
            },
            Event::ScopeDisable {
                scope: "org/acme/app/web".into(),
            },
            Event::TokenRevoke {
                jti: "old".into(),
                exp: 10,
                sub: "service:svc_a".into(),
            },
            Event::TokenRevoke {
                jti: "in-grace".into(),
                exp: 1_000 - 30,
                sub: "service:svc_a".into(),
            },
            Event::TokenRevoke {
                jti: "live".into(),
                exp: 5_000,
                sub: "service:svc_a".into(),
            },
        ]
    }

    #[test]
    fn folds_and_survives_a_snapshot() {
        let v = DirectoryView::default();
        fold(&v, sample());
        let n = |s: &str| Name::parse(s).unwrap();
        let env = Scope::Env(n("acme"), n("web"), n("prod"));
        {
            let d = v.read();
            assert!(d.exists(&env));
            assert!(!d.exists(&Scope::Org(n("nope"))));
            assert_eq!(d.disabled_at(&env), Some(Scope::App(n("acme"), n("web"))));
            let p = d.principal("svc_a").unwrap();
            let dec = d
                .relations()
                .check(&p.subject(), Permission::ReadSecretValue, &env);
            assert!(!dec.allowed, "disabled app denies");
            assert!(d.is_revoked("live"));
            assert!(
                !d.is_revoked("old"),
                "long-expired revocations are not kept"
            );
            assert!(
                d.is_revoked("in-grace"),
                "kept while a skewed verifier might accept it"
            );
        }
        let w = DirectoryView::default();
        w.restore(&v.snapshot()).unwrap();
        assert_eq!(w.snapshot(), v.snapshot());
        // Deleting the principal removes its relations.
        fold(&w, vec![Event::PrincipalDelete { id: "svc_a".into() }]);
        assert!(w.read().relations().is_empty());
        assert!(w.read().principal("svc_a").is_none());
    }

    #[test]
    fn certificates_are_recorded_revoked_by_their_org_only_and_snapshotted() {
        let v = DirectoryView::default();
        let cert = |serial: &str, node: Option<&str>, not_after| Event::CertIssue {
            org: "acme".into(),
            spiffe_id: "spiffe://t/org/acme/node/n1".into(),
            serial: serial.into(),
            not_after,
            node: node.map(Into::into),
            renewed_from: None,
        };
        fold(
            &v,
            vec![
                Event::OrgCreate { org: "acme".into() },
                Event::NodeCreate {
                    org: "acme".into(),
                    node: "n1".into(),
                },
                Event::NodeEnroll {
                    org: "acme".into(),
                    node: "n1".into(),
                    token_hash: "h".into(),
                    spiffe_id: "spiffe://t/org/acme/node/n1".into(),
                    not_after: 5_000,
                    serial: Some("a1".into()),
                },
                cert("a2", Some("n1"), 9_000),
                cert("a3", None, 6_000),
                // Long expired: forgotten at the next issuance.
                cert("old", None, -3_000),
                cert("a4", None, 7_000),
                Event::CertRevoke {
                    org: "other".into(),
                    serial: "a1".into(),
                    reason: None,
                },
                Event::CertRevoke {
                    org: "acme".into(),
                    serial: "a1".into(),
                    reason: Some("key_compromise".into()),
                },
            ],
        );
        let check = |v: &DirectoryView| {
            let d = v.read();
            assert!(d.cert_revoked("a1"));
            assert!(!d.cert_revoked("a2"));
            assert_eq!(d.node("acme", "n1").unwrap().not_after, Some(9_000));
            assert!(d.cert("old").is_none());
            let revoked: Vec<&String> = d.revoked_certs(1_000).into_iter().map(|r| r.0).collect();
            assert_eq!(revoked, vec!["a1"]);
            assert!(
                d.revoked_certs(5_000).is_empty(),
                "expired ones leave the CRL"
            );
            assert_eq!(d.certs_in("acme").len(), 4);
            assert!(d.certs_in("other").is_empty());
            assert_eq!(
                d.cert("a1").unwrap().reason.as_deref(),
                Some("key_compromise")
            );
        };
        check(&v);
        let restored = DirectoryView::default();
        restored.restore(&v.snapshot()).unwrap();
        check(&restored);
    }

    #[test]
    fn revoking_a_certificate_revokes_the_renewals_made_from_it() {
        let v = DirectoryView::default();
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let f = fired.clone();
        v.on_peer_change(Box::new(move || {
            f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        let issue = |serial: &str, from: Option<&str>| Event::CertIssue {
            org: "acme".into(),
            spiffe_id: "spiffe://t/org/acme/node/n1".into(),
            serial: serial.into(),
            not_after: 9_000,
            node: None,
            renewed_from: from.map(Into::into),
        };
        fold(
            &v,
            vec![
                issue("s1", None),
                issue("s2", Some("s1")),
                issue("s3", Some("s2")),
                issue("other", None),
                Event::CertRevoke {
                    org: "acme".into(),
                    serial: "s2".into(),
                    reason: None,
                },
            ],
        );
        let d = v.read();
        assert!(!d.cert_revoked("s1"), "the parent stays");
        assert!(d.cert_revoked("s2") && d.cert_revoked("s3"));
        assert!(!d.cert_revoked("other"));
        assert_eq!(d.cert("s1").unwrap().renewed_to.as_deref(), Some("s2"));
        assert_eq!(fired.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
