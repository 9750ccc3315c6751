//! The permission rules and the relation store they are checked against.
//!
//! | permission | granted by |
//! |---|---|
//! | `administer(s)` | `admin` on `s` or an ancestor; `operator` on the instance |
//! | `deploy(env)` | `deployer` on the env or its app; `admin` on the app, org or instance; `operator` |
//! | `read_secret_value(env)` | `secret_reader` on the env; `bound_node` on the env — **nothing else** |
//! | `write_secret(env)` | `deployer` on the env or its app; `admin` on the env or above; `operator` |
//! | `exec(env)` | `exec` on the env — explicit only |
//! | `read_audit(s)` | `auditor` on `s` or an ancestor; `operator` |
//! | `view(s)` | any relation on `s` or an ancestor |
//! | `grant(s)` | as `administer(s)` |
//!
//! A disabled scope (org, app or env) denies every permission on itself and below. The
//! denial names the disabled scope only to a subject whose relations would otherwise allow
//! (to anyone else it would reveal that the scope exists); others get `no relation`. Token scopes narrow: each permission needs its scope string
//! in the token as well as a relation.

use std::collections::{HashMap, HashSet};
use std::fmt;

use bulwark_core::Scope;

use crate::model::{Relation, Subject, Tuple};

/// What is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// Change a scope and what is under it.
    Administer,
    /// Grant or revoke relations on a scope.
    Grant,
    /// Deploy to an env.
    Deploy,
    /// Read secret values in an env.
    ReadSecretValue,
    /// Write (new versions), delete and destroy secrets in an env, without reading them.
    WriteSecret,
    /// Exec into an env's instances.
    Exec,
    /// Read journal entries of a scope.
    ReadAudit,
    /// See a scope's metadata.
    View,
    /// Have the CA issue service certificates in an org (and revoke them).
    IssueCertificate,
}

impl Permission {
    /// The token scope that must accompany this permission.
    pub const fn token_scope(self) -> &'static str {
        match self {
            Self::Administer | Self::Grant => "admin",
            Self::Deploy => "deploy",
            Self::ReadSecretValue => "secrets:read",
            Self::WriteSecret => "secrets:write",
            Self::Exec => "exec",
            Self::ReadAudit => "audit:read",
            Self::View => "read",
            Self::IssueCertificate => "certs:issue",
        }
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Administer => "administer",
            Self::Grant => "grant",
            Self::Deploy => "deploy",
            Self::ReadSecretValue => "read_secret_value",
            Self::WriteSecret => "write_secret",
            Self::Exec => "exec",
            Self::ReadAudit => "read_audit",
            Self::View => "view",
            Self::IssueCertificate => "issue_certificate",
        }
    }
}

/// Why a check came out as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// `relation` on `scope` grants it.
    Granted {
        /// The deciding relation.
        relation: Relation,
        /// Where it is held.
        scope: Scope,
    },
    /// `scope` (the target or an ancestor) is disabled.
    Disabled {
        /// The disabled scope.
        scope: Scope,
    },
    /// The token does not carry the scope the permission needs.
    TokenScopeMissing {
        /// The missing token scope.
        needed: &'static str,
    },
    /// The permission does not apply to this kind of scope (e.g. deploy on an org).
    NotApplicable,
    /// No relation of the subject grants it.
    NoRelation,
    /// The token is confined to another org than the target's.
    OutsideTokenOrg,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Granted { relation, scope } => {
                write!(f, "granted by `{}` on `{scope}`", relation.as_str())
            }
            Self::Disabled { scope } => write!(f, "`{scope}` is disabled"),
            Self::TokenScopeMissing { needed } => write!(f, "token lacks scope `{needed}`"),
            Self::NotApplicable => f.write_str("permission does not apply to this scope"),
            Self::NoRelation => f.write_str("no relation grants it"),
            Self::OutsideTokenOrg => f.write_str("the token is confined to another org"),
        }
    }
}

/// A decision and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    fn deny(reason: Reason) -> Self {
        Self {
            allowed: false,
            reason,
        }
    }
}

/// The relation store: every tuple, indexed by subject, and the disabled scopes.
#[derive(Debug, Default, Clone)]
pub struct Relations {
    by_subject: HashMap<Subject, HashMap<Scope, u16>>,
    disabled: HashSet<Scope>,
    tuples: usize,
}

/// Which relations grant a permission at a given distance above the target:
/// 0 = the target itself, and which kinds of scope.
fn grants(permission: Permission, target: &Scope, holder: &Scope, relation: Relation) -> bool {
    use Relation as R;
    let at_instance = matches!(holder, Scope::Instance);
    let same = holder == target;
    match permission {
        Permission::Administer | Permission::Grant => {
            relation == R::Admin || (relation == R::Operator && at_instance)
        }
        Permission::Deploy => match relation {
            R::Deployer => same || matches!(holder, Scope::App(..)),
            R::Admin => !same || !matches!(target, Scope::Env(..)),
            R::Operator => at_instance,
            _ => false,
        },
        Permission::ReadSecretValue => same && matches!(relation, R::SecretReader | R::BoundNode),
        // Writing is a deployment act: deployers of the env or app, admins of the env or
        // above, operators. None of these may read what they write.
        Permission::WriteSecret => match relation {
            R::Deployer => same || matches!(holder, Scope::App(..)),
            R::Admin => true,
            R::Operator => at_instance,
            _ => false,
        },
        Permission::Exec => same && relation == R::Exec,
        Permission::ReadAudit => relation == R::Auditor || (relation == R::Operator && at_instance),
        Permission::View => true,
        // Service identities are org-wide: admins of the org, operators.
        Permission::IssueCertificate => {
            matches!(target, Scope::Org(_))
                && (relation == R::Admin || (relation == R::Operator && at_instance))
        }
    }
}

impl Relations {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of tuples.
    pub fn len(&self) -> usize {
        self.tuples
    }

    /// Whether there are no tuples.
    pub fn is_empty(&self) -> bool {
        self.tuples == 0
    }

    /// Adds a tuple; returns whether it was new.
    pub fn grant(&mut self, t: &Tuple) -> bool {
        let bits = self
            .by_subject
            .entry(t.subject.clone())
            .or_default()
            .entry(t.scope.clone())
            .or_default();
        let new = *bits & t.relation.bit() == 0;
        *bits |= t.relation.bit();
        if new {
            self.tuples += 1;
        }
        new
    }

    /// Removes a tuple; returns whether it was there.
    pub fn revoke(&mut self, t: &Tuple) -> bool {
        let Some(scopes) = self.by_subject.get_mut(&t.subject) else {
            return false;
        };
        let Some(bits) = scopes.get_mut(&t.scope) else {
            return false;
        };
        let had = *bits & t.relation.bit() != 0;
        *bits &= !t.relation.bit();
        if *bits == 0 {
            scopes.remove(&t.scope);
        }
        if scopes.is_empty() {
            self.by_subject.remove(&t.subject);
        }
        if had {
            self.tuples -= 1;
        }
        had
    }

    /// Removes every tuple of `subject` (the principal was deleted); returns how many.
    pub fn remove_subject(&mut self, subject: &Subject) -> usize {
        let n = self.by_subject.remove(subject).map_or(0, |m| {
            m.values().map(|b| b.count_ones() as usize).sum::<usize>()
        });
        self.tuples -= n;
        n
    }

    /// Every tuple, in no particular order (for snapshots and listings).
    pub fn tuples(&self) -> impl Iterator<Item = Tuple> + '_ {
        self.by_subject.iter().flat_map(|(subject, scopes)| {
            scopes.iter().flat_map(move |(scope, bits)| {
                Relation::ALL
                    .into_iter()
                    .filter(move |r| bits & r.bit() != 0)
                    .map(move |relation| Tuple {
                        scope: scope.clone(),
                        relation,
                        subject: subject.clone(),
                    })
            })
        })
    }

    /// Whether a scope itself is disabled (not counting its ancestors).
    pub fn is_disabled(&self, scope: &Scope) -> bool {
        self.disabled.contains(scope)
    }

    /// The disabled scopes.
    pub fn disabled(&self) -> impl Iterator<Item = &Scope> {
        self.disabled.iter()
    }

    /// Disables or re-enables a scope.
    pub fn set_disabled(&mut self, scope: &Scope, disabled: bool) {
        if disabled {
            self.disabled.insert(scope.clone());
        } else {
            self.disabled.remove(scope);
        }
    }

    /// Whether a subject holds a relation on exactly this scope.
    pub fn holds(&self, subject: &Subject, scope: &Scope, relation: Relation) -> bool {
        self.by_subject
            .get(subject)
            .and_then(|m| m.get(scope))
            .is_some_and(|b| b & relation.bit() != 0)
    }

    /// The scopes a subject holds any relation on, sorted (for paged lookups).
    pub fn scopes_of(&self, subject: &Subject) -> Vec<(Scope, Vec<Relation>)> {
        let mut out: Vec<(Scope, Vec<Relation>)> = self
            .by_subject
            .get(subject)
            .map(|m| {
                m.iter()
                    .map(|(s, bits)| {
                        let rels = Relation::ALL
                            .into_iter()
                            .filter(|r| bits & r.bit() != 0)
                            .collect();
                        (s.clone(), rels)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Decides whether `subject` has `permission` on `target`.
    pub fn check(&self, subject: &Subject, permission: Permission, target: &Scope) -> Decision {
        // The target and its ancestors, nearest first, built on the stack (this is the
        // hot path: no allocation beyond three reference-count increments).
        let (app, org);
        let lineage: [Option<&Scope>; 4] = match target {
            Scope::Instance => [Some(target), None, None, None],
            Scope::Org(_) => [Some(target), Some(&Scope::Instance), None, None],
            Scope::App(o, _) => {
                org = Scope::Org(o.clone());
                [Some(target), Some(&org), Some(&Scope::Instance), None]
            }
            Scope::Env(o, a, _) => {
                app = Scope::App(o.clone(), a.clone());
                org = Scope::Org(o.clone());
                [Some(target), Some(&app), Some(&org), Some(&Scope::Instance)]
            }
        };
        let lineage = lineage.into_iter().flatten();
        let env_only = matches!(
            permission,
            Permission::Deploy
                | Permission::ReadSecretValue
                | Permission::WriteSecret
                | Permission::Exec
        );
        if env_only && !matches!(target, Scope::Env(..)) {
            return Decision::deny(Reason::NotApplicable);
        }
        let Some(held) = self.by_subject.get(subject) else {
            return Decision::deny(Reason::NoRelation);
        };
        // Nearest scope first, so the reason names the most specific grant.
        let whole = lineage.clone();
        for scope in lineage {
            let Some(&bits) = held.get(scope) else {
                continue;
            };
            for relation in Relation::ALL {
                if bits & relation.bit() != 0 && grants(permission, target, scope, relation) {
                    // A disabled scope denies everything under it. It is named only to
                    // a subject whose relations would otherwise allow: to anyone else
                    // "disabled" would reveal that the scope exists.
                    if !self.disabled.is_empty()
                        && let Some(d) = whole.clone().find(|s| self.disabled.contains(*s))
                    {
                        return Decision::deny(Reason::Disabled { scope: d.clone() });
                    }
                    return Decision {
                        allowed: true,
                        reason: Reason::Granted {
                            relation,
                            scope: scope.clone(),
                        },
                    };
                }
            }
        }
        Decision::deny(Reason::NoRelation)
    }

    /// As [`Relations::check`], narrowed by a token: its scopes must include the
    /// permission's, and a token confined to an org reaches nothing outside it.
    pub fn check_with_scopes<'a>(
        &self,
        subject: &Subject,
        permission: Permission,
        target: &Scope,
        token_scopes: impl IntoIterator<Item = &'a str>,
        token_org: Option<&bulwark_core::Name>,
    ) -> Decision {
        let needed = permission.token_scope();
        if let Some(org) = token_org
            && target.org() != Some(org)
        {
            return Decision::deny(Reason::OutsideTokenOrg);
        }
        if !token_scopes.into_iter().any(|s| s == needed) {
            return Decision::deny(Reason::TokenScopeMissing { needed });
        }
        self.check(subject, permission, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_core::Name;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }
    fn env(o: &str, a: &str, e: &str) -> Scope {
        Scope::Env(n(o), n(a), n(e))
    }
    fn app(o: &str, a: &str) -> Scope {
        Scope::App(n(o), n(a))
    }
    fn org(o: &str) -> Scope {
        Scope::Org(n(o))
    }
    fn user(id: &str) -> Subject {
        Subject::User(Arc::from(id))
    }
    fn t(scope: Scope, relation: Relation, subject: &Subject) -> Tuple {
        Tuple {
            scope,
            relation,
            subject: subject.clone(),
        }
    }

    #[test]
    fn writers_of_secrets_cannot_read_them() {
        let mut r = Relations::new();
        let prod = env("acme", "web", "prod");
        let (d, a, e) = (user("deployer"), user("org-admin"), user("env-admin"));
        r.grant(&t(app("acme", "web"), Relation::Deployer, &d));
        r.grant(&t(org("acme"), Relation::Admin, &a));
        r.grant(&t(prod.clone(), Relation::Admin, &e));
        for s in [&d, &a, &e] {
            assert!(r.check(s, Permission::WriteSecret, &prod).allowed);
            assert!(!r.check(s, Permission::ReadSecretValue, &prod).allowed);
        }
        let viewer = user("viewer");
        r.grant(&t(prod.clone(), Relation::Viewer, &viewer));
        assert!(!r.check(&viewer, Permission::WriteSecret, &prod).allowed);
        assert_eq!(
            r.check(&d, Permission::WriteSecret, &app("acme", "web"))
                .reason,
            Reason::NotApplicable
        );
    }

    #[test]
    fn admin_and_deploy_rights_do_not_read_secret_values() {
        let mut r = Relations::new();
        let alice = user("alice");
        let prod = env("acme", "web", "prod");
        r.grant(&t(org("acme"), Relation::Admin, &alice));
        r.grant(&t(app("acme", "web"), Relation::Deployer, &alice));
        r.grant(&t(Scope::Instance, Relation::Operator, &alice));
        assert!(r.check(&alice, Permission::Deploy, &prod).allowed);
        assert!(r.check(&alice, Permission::Administer, &prod).allowed);
        let d = r.check(&alice, Permission::ReadSecretValue, &prod);
        assert!(!d.allowed);
        assert_eq!(d.reason, Reason::NoRelation);
        // An admin may grant themselves the relation (journaled by the caller); then it holds.
        assert!(r.check(&alice, Permission::Grant, &prod).allowed);
        r.grant(&t(prod.clone(), Relation::SecretReader, &alice));
        let d = r.check(&alice, Permission::ReadSecretValue, &prod);
        assert_eq!(
            d.reason,
            Reason::Granted {
                relation: Relation::SecretReader,
                scope: prod.clone()
            }
        );
        // Secret reading on one env does not extend to a sibling.
        assert!(
            !r.check(
                &alice,
                Permission::ReadSecretValue,
                &env("acme", "web", "dev")
            )
            .allowed
        );
    }

    #[test]
    fn exec_needs_the_explicit_relation_on_the_env() {
        let mut r = Relations::new();
        let bob = user("bob");
        let prod = env("acme", "web", "prod");
        for (scope, rel) in [
            (Scope::Instance, Relation::Operator),
            (org("acme"), Relation::Admin),
            (prod.clone(), Relation::Deployer),
            (app("acme", "web"), Relation::Exec),
        ] {
            r.grant(&t(scope, rel, &bob));
        }
        assert!(!r.check(&bob, Permission::Exec, &prod).allowed);
        r.grant(&t(prod.clone(), Relation::Exec, &bob));
        assert!(r.check(&bob, Permission::Exec, &prod).allowed);
    }

    #[test]
    fn deploy_rules_follow_the_design() {
        let mut r = Relations::new();
        let prod = env("acme", "web", "prod");
        let (a, b, c, d) = (user("a"), user("b"), user("c"), user("d"));
        r.grant(&t(prod.clone(), Relation::Deployer, &a));
        r.grant(&t(app("acme", "web"), Relation::Deployer, &b));
        r.grant(&t(org("acme"), Relation::Deployer, &c));
        r.grant(&t(app("acme", "web"), Relation::Admin, &d));
        assert!(r.check(&a, Permission::Deploy, &prod).allowed);
        assert!(r.check(&b, Permission::Deploy, &prod).allowed);
        assert!(
            !r.check(&c, Permission::Deploy, &prod).allowed,
            "deployer on org is not in the rule"
        );
        assert!(r.check(&d, Permission::Deploy, &prod).allowed);
        assert_eq!(
            r.check(&a, Permission::Deploy, &org("acme")).reason,
            Reason::NotApplicable
        );
    }

    #[test]
    fn a_disabled_scope_denies_everything_below_it() {
        let mut r = Relations::new();
        let op = user("op");
        let prod = env("acme", "web", "prod");
        r.grant(&t(Scope::Instance, Relation::Operator, &op));
        r.grant(&t(prod.clone(), Relation::SecretReader, &op));
        r.set_disabled(&org("acme"), true);
        let d = r.check(&op, Permission::ReadSecretValue, &prod);
        assert_eq!(d.reason, Reason::Disabled { scope: org("acme") });
        assert!(!r.check(&op, Permission::View, &app("acme", "web")).allowed);
        assert!(r.check(&op, Permission::Administer, &org("other")).allowed);
        r.set_disabled(&org("acme"), false);
        assert!(r.check(&op, Permission::ReadSecretValue, &prod).allowed);
    }

    #[test]
    fn other_tenants_get_nothing() {
        let mut r = Relations::new();
        let eve = user("eve");
        r.grant(&t(org("evil"), Relation::Admin, &eve));
        for p in [
            Permission::View,
            Permission::Administer,
            Permission::ReadAudit,
        ] {
            assert!(!r.check(&eve, p, &org("acme")).allowed);
        }
        assert!(
            !r.check(&eve, Permission::Deploy, &env("acme", "web", "prod"))
                .allowed
        );
    }

    #[test]
    fn revoke_and_counts() {
        let mut r = Relations::new();
        let a = user("a");
        let tup = t(org("acme"), Relation::Viewer, &a);
        assert!(r.grant(&tup));
        assert!(!r.grant(&tup));
        assert_eq!(r.len(), 1);
        assert!(
            r.check(&a, Permission::View, &env("acme", "x", "y"))
                .allowed
        );
        assert!(r.revoke(&tup));
        assert!(!r.revoke(&tup));
        assert!(r.is_empty());
        assert!(!r.check(&a, Permission::View, &org("acme")).allowed);
    }

    #[test]
    fn token_scopes_narrow() {
        let mut r = Relations::new();
        let a = user("a");
        let prod = env("acme", "web", "prod");
        r.grant(&t(prod.clone(), Relation::SecretReader, &a));
        let d = r.check_with_scopes(&a, Permission::ReadSecretValue, &prod, ["deploy"], None);
        assert_eq!(
            d.reason,
            Reason::TokenScopeMissing {
                needed: "secrets:read"
            }
        );
        assert!(
            r.check_with_scopes(
                &a,
                Permission::ReadSecretValue,
                &prod,
                ["secrets:read"],
                None
            )
            .allowed
        );
        // Confined to its own org, a token reaches nothing elsewhere, whatever it holds.
        let acme = n("acme");
        let other = n("other");
        assert!(
            r.check_with_scopes(
                &a,
                Permission::ReadSecretValue,
                &prod,
                ["secrets:read"],
                Some(&acme)
            )
            .allowed
        );
        assert_eq!(
            r.check_with_scopes(
                &a,
                Permission::ReadSecretValue,
                &prod,
                ["secrets:read"],
                Some(&other)
            )
            .reason,
            Reason::OutsideTokenOrg
        );
    }

    // === properties ===

    const PERMS: [Permission; 9] = [
        Permission::IssueCertificate,
        Permission::WriteSecret,
        Permission::Administer,
        Permission::Grant,
        Permission::Deploy,
        Permission::ReadSecretValue,
        Permission::Exec,
        Permission::ReadAudit,
        Permission::View,
    ];

    fn scope_strategy() -> impl Strategy<Value = Scope> {
        let name = prop::sample::select(vec!["a", "b"]);
        prop_oneof![
            Just(Scope::Instance),
            name.clone().prop_map(org),
            (name.clone(), name.clone()).prop_map(|(o, a)| app(o, a)),
            (name.clone(), name.clone(), name).prop_map(|(o, a, e)| env(o, a, e)),
        ]
    }

    fn tuple_strategy() -> impl Strategy<Value = Tuple> {
        (
            scope_strategy(),
            prop::sample::select(Relation::ALL.to_vec()),
            prop::sample::select(vec!["u1", "u2"]),
        )
            .prop_map(|(scope, relation, s)| t(scope, relation, &user(s)))
    }

    fn all_checks(r: &Relations) -> Vec<bool> {
        let mut out = Vec::new();
        for s in ["u1", "u2"] {
            for scope in [
                Scope::Instance,
                org("a"),
                org("b"),
                app("a", "a"),
                app("a", "b"),
                env("a", "a", "a"),
                env("a", "b", "a"),
                env("b", "a", "b"),
            ] {
                for p in PERMS {
                    out.push(r.check(&user(s), p, &scope).allowed);
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn granting_never_removes_and_revoking_never_adds(
            base in prop::collection::vec(tuple_strategy(), 0..12),
            extra in tuple_strategy(),
        ) {
            let mut r = Relations::new();
            for tup in &base { r.grant(tup); }
            let before = all_checks(&r);
            let mut more = r.clone();
            more.grant(&extra);
            let after = all_checks(&more);
            for (b, a) in before.iter().zip(&after) {
                prop_assert!(!b || *a, "a grant removed a permission");
            }
            let mut less = r.clone();
            less.revoke(&extra);
            for (b, l) in before.iter().zip(all_checks(&less)) {
                prop_assert!(*b || !l, "a revoke added a permission");
            }
        }

        #[test]
        fn token_scopes_never_widen(
            base in prop::collection::vec(tuple_strategy(), 0..12),
            scopes in prop::collection::vec(prop::sample::select(vec![
                "admin", "deploy", "secrets:read", "exec", "audit:read", "read", "other"
            ]), 0..4),
            target in scope_strategy(),
            token_org in prop::option::of(prop::sample::select(vec!["a", "b"])),
        ) {
            let mut r = Relations::new();
            for tup in &base { r.grant(tup); }
            let token_org = token_org.map(n);
            for p in PERMS {
                let narrowed = r.check_with_scopes(
                    &user("u1"), p, &target, scopes.iter().copied(), token_org.as_ref(),
                );
                prop_assert!(!narrowed.allowed || r.check(&user("u1"), p, &target).allowed);
                if narrowed.allowed && let Some(o) = &token_org {
                    prop_assert_eq!(target.org(), Some(o), "an org token reached outside its org");
                }
            }
        }

        #[test]
        fn only_secret_reader_or_bound_node_on_the_env_reads_secrets(
            base in prop::collection::vec(tuple_strategy(), 0..16),
            target in scope_strategy(),
        ) {
            let mut r = Relations::new();
            for tup in &base { r.grant(tup); }
            let d = r.check(&user("u1"), Permission::ReadSecretValue, &target);
            if d.allowed {
                prop_assert!(
                    r.holds(&user("u1"), &target, Relation::SecretReader)
                        || r.holds(&user("u1"), &target, Relation::BoundNode)
                );
            }
        }
    }
}
