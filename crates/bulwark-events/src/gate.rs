//! The gate: an envelope reaches a node only through five ports — signature (the org's
//! key ring), replay (single-use nonces), staleness (±5 minutes), relation (the org may
//! instruct that node) and node (it exists and is not quarantined). A gate with any port
//! missing admits nothing ([`Gate::provisioned`] names the missing one; the server answers
//! 501 `signed_event_bus_not_provisioned`).
//!
//! Order: cheap checks first, the signature before anything is remembered, the nonce last
//! — an envelope that fails any other check does not use up its nonce.

use std::sync::Arc;

use crate::envelope::Envelope;

/// Envelopes are accepted within this many seconds of their `issued_at`, either way.
pub const STALENESS_SECS: i64 = 300;

/// Why an envelope was refused (each has a metric label, [`Refusal::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// No key of the envelope's org has this id (e.g. another org's key).
    #[error("unknown key")]
    UnknownKey,
    /// The key was rotated out and its transition time has passed.
    #[error("key retired")]
    KeyRetired,
    /// Addressed to another node or sent by another org than expected.
    #[error("addressed elsewhere")]
    WrongRecipient,
    /// The nonce was seen before.
    #[error("replayed")]
    Replayed,
    /// The replay cache is full of live nonces: refused rather than forgotten.
    #[error("replay cache full")]
    ReplayCacheFull,
    /// `issued_at` is more than [`STALENESS_SECS`] away from now.
    #[error("stale")]
    Stale,
    /// The org may not instruct this node.
    #[error("not permitted")]
    NotPermitted,
    /// The node does not exist.
    #[error("unknown node")]
    UnknownNode,
    /// The node is quarantined.
    #[error("node quarantined")]
    Quarantined,
}

impl Refusal {
    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::UnknownKey => "unknown_key",
            Self::KeyRetired => "key_retired",
            Self::WrongRecipient => "wrong_recipient",
            Self::Replayed => "replayed",
            Self::ReplayCacheFull => "replay_cache_full",
            Self::Stale => "stale",
            Self::NotPermitted => "not_permitted",
            Self::UnknownNode => "unknown_node",
            Self::Quarantined => "quarantined",
        }
    }
}

/// Port 1: checks an envelope's signature against its org's keys at `now`.
pub trait SignaturePort: Send + Sync {
    /// `Ok` if signed by a key of `env.org` valid at `now`.
    fn verify(&self, env: &Envelope, now: i64) -> Result<(), Refusal>;
}

/// Port 2: single-use nonces.
pub trait ReplayPort: Send + Sync {
    /// Records the first use of `(org, nonce)` at `now`; refuses a second.
    fn first_use(&self, org: &str, nonce: &str, now: i64) -> Result<(), Refusal>;
}

/// Port 3: the clock-staleness check.
pub trait StalenessPort: Send + Sync {
    /// `Ok` if `issued_at` is acceptable at `now`.
    fn fresh(&self, issued_at: i64, now: i64) -> Result<(), Refusal>;
}

/// Port 4: the relation check.
pub trait RelationPort: Send + Sync {
    /// Whether `org` may instruct `node` (of `org`).
    fn may_instruct(&self, org: &str, node: &str) -> bool;
}

/// What the directory says of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// No such node.
    Unknown,
    /// Quarantined.
    Quarantined,
    /// Enrolled and not quarantined.
    Active,
}

/// Port 5: node existence.
pub trait NodePort: Send + Sync {
    /// The node's state.
    fn state(&self, org: &str, node: &str) -> NodeState;
}

/// The ±[`STALENESS_SECS`] window.
pub struct Window;

impl StalenessPort for Window {
    fn fresh(&self, issued_at: i64, now: i64) -> Result<(), Refusal> {
        if (issued_at - now).abs() > STALENESS_SECS {
            Err(Refusal::Stale)
        } else {
            Ok(())
        }
    }
}

/// A bounded replay cache (digests of `(org, nonce)`, remembered for twice the staleness
/// window, refusing when full).
pub struct NonceCache(bulwark_identity::replay::ReplayCache);

impl NonceCache {
    /// Holding at most `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        Self(bulwark_identity::replay::ReplayCache::new(
            2 * STALENESS_SECS,
            capacity,
        ))
    }
}

impl ReplayPort for NonceCache {
    fn first_use(&self, org: &str, nonce: &str, now: i64) -> Result<(), Refusal> {
        self.0
            .first_use(&[b"event", org.as_bytes(), nonce.as_bytes()], now)
            .map_err(|e| match e {
                bulwark_identity::jose::Refusal::Replayed => Refusal::Replayed,
                _ => Refusal::ReplayCacheFull,
            })
    }
}

/// A port missing from a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the gate's `{0}` port is not wired")]
pub struct MissingPort(pub &'static str);

/// The gate. Build it with whatever ports exist; [`Gate::provisioned`] refuses unless all
/// five do.
#[derive(Default, Clone)]
pub struct Gate {
    /// Port 1.
    pub signature: Option<Arc<dyn SignaturePort>>,
    /// Port 2.
    pub replay: Option<Arc<dyn ReplayPort>>,
    /// Port 3.
    pub staleness: Option<Arc<dyn StalenessPort>>,
    /// Port 4.
    pub relation: Option<Arc<dyn RelationPort>>,
    /// Port 5.
    pub node: Option<Arc<dyn NodePort>>,
}

/// A gate with all five ports.
pub struct Provisioned<'a> {
    signature: &'a dyn SignaturePort,
    replay: &'a dyn ReplayPort,
    staleness: &'a dyn StalenessPort,
    relation: &'a dyn RelationPort,
    node: &'a dyn NodePort,
}

impl Gate {
    /// All five ports, or the first one missing.
    pub fn provisioned(&self) -> Result<Provisioned<'_>, MissingPort> {
        Ok(Provisioned {
            signature: self.signature.as_deref().ok_or(MissingPort("signature"))?,
            replay: self.replay.as_deref().ok_or(MissingPort("replay"))?,
            staleness: self.staleness.as_deref().ok_or(MissingPort("staleness"))?,
            relation: self.relation.as_deref().ok_or(MissingPort("relation"))?,
            node: self.node.as_deref().ok_or(MissingPort("node"))?,
        })
    }
}

impl Provisioned<'_> {
    /// Admits `env` for delivery to `node` of `org` at `now`, or says why not.
    pub fn admit(&self, env: &Envelope, org: &str, node: &str, now: i64) -> Result<(), Refusal> {
        if env.org != org || env.node != node {
            return Err(Refusal::WrongRecipient);
        }
        self.staleness.fresh(env.issued_at, now)?;
        self.signature.verify(env, now)?;
        if !self.relation.may_instruct(org, node) {
            return Err(Refusal::NotPermitted);
        }
        match self.node.state(org, node) {
            NodeState::Unknown => return Err(Refusal::UnknownNode),
            NodeState::Quarantined => return Err(Refusal::Quarantined),
            NodeState::Active => {}
        }
        self.replay.first_use(&env.org, &env.nonce, now)
    }
}

/// What an agent checks itself, with no server to ask: addressed to itself, fresh, signed
/// by a valid key of its org (from the ring the server published), nonce not seen.
pub fn admit_at_agent(
    env: &Envelope,
    me: (&str, &str),
    ring: &crate::keys::KeyRing,
    replay: &dyn ReplayPort,
    now: i64,
) -> Result<(), Refusal> {
    if env.org != me.0 || env.node != me.1 {
        return Err(Refusal::WrongRecipient);
    }
    Window.fresh(env.issued_at, now)?;
    ring.verify(env, now)?;
    replay.first_use(&env.org, &env.nonce, now)
}

/// [`admit_at_agent`] for many envelopes at once (a backlog after a reconnect): the same
/// verdicts, in order, with the signatures checked in one batch.
pub fn admit_batch_at_agent(
    envs: &[Envelope],
    me: (&str, &str),
    ring: &crate::keys::KeyRing,
    replay: &dyn ReplayPort,
    now: i64,
) -> Vec<Result<(), Refusal>> {
    let signatures = ring.verify_batch(envs, now);
    envs.iter()
        .zip(signatures)
        .map(|(env, sig)| {
            if env.org != me.0 || env.node != me.1 {
                return Err(Refusal::WrongRecipient);
            }
            Window.fresh(env.issued_at, now)?;
            sig?;
            replay.first_use(&env.org, &env.nonce, now)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Unsigned;
    use crate::keys::{KeyRing, OrgKeyRings};
    use bulwark_crypto::SigningKey;
    use serde_json::json;

    struct Dir;
    impl RelationPort for Dir {
        fn may_instruct(&self, org: &str, node: &str) -> bool {
            org == "acme" && node != "forbidden"
        }
    }
    impl NodePort for Dir {
        fn state(&self, _org: &str, node: &str) -> NodeState {
            match node {
                "ghost" => NodeState::Unknown,
                "jailed" => NodeState::Quarantined,
                _ => NodeState::Active,
            }
        }
    }

    const NOW: i64 = 1_000_000;

    struct World {
        gate: Gate,
        rings: Arc<OrgKeyRings>,
        acme: SigningKey,
        other: SigningKey,
    }

    fn world() -> World {
        let acme = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let rings = Arc::new(OrgKeyRings::default());
        for (org, k) in [("acme", &acme), ("other", &other)] {
            let mut ring = KeyRing::new();
            ring.rotate_in(&k.verifying_key(), NOW, NOW);
            rings.set(org, ring);
        }
        let gate = Gate {
            signature: Some(rings.clone()),
            replay: Some(Arc::new(NonceCache::new(1000))),
            staleness: Some(Arc::new(Window)),
            relation: Some(Arc::new(Dir)),
            node: Some(Arc::new(Dir)),
        };
        World {
            gate,
            rings,
            acme,
            other,
        }
    }

    fn env(node: &str, at: i64, key: &SigningKey) -> Envelope {
        Unsigned::new(
            "e1",
            "secrets.changed",
            "acme",
            node,
            at,
            json!({"name": "db"}),
        )
        .unwrap()
        .sign(key)
        .unwrap()
    }

    #[test]
    fn a_good_envelope_passes_once() {
        let w = world();
        let g = w.gate.provisioned().unwrap();
        let e = env("n1", NOW, &w.acme);
        assert_eq!(g.admit(&e, "acme", "n1", NOW), Ok(()));
        assert_eq!(g.admit(&e, "acme", "n1", NOW + 1), Err(Refusal::Replayed));
    }

    #[test]
    fn every_attack_of_the_issue_is_refused_with_its_reason() {
        let w = world();
        let g = w.gate.provisioned().unwrap();
        // A forged signature (one bit of the payload changed after signing).
        let mut forged = env("n1", NOW, &w.acme);
        forged.payload = json!({"name": "dc"});
        assert_eq!(
            g.admit(&forged, "acme", "n1", NOW),
            Err(Refusal::BadSignature)
        );
        // A valid envelope for another node.
        let e = env("n2", NOW, &w.acme);
        assert_eq!(g.admit(&e, "acme", "n1", NOW), Err(Refusal::WrongRecipient));
        // Outside the window, either way.
        for at in [NOW - STALENESS_SECS - 1, NOW + STALENESS_SECS + 1] {
            assert_eq!(
                g.admit(&env("n1", at, &w.acme), "acme", "n1", NOW),
                Err(Refusal::Stale)
            );
        }
        // Signed by another org's key, claiming to be acme.
        assert_eq!(
            g.admit(&env("n1", NOW, &w.other), "acme", "n1", NOW),
            Err(Refusal::UnknownKey)
        );
        // The org may not instruct that node; the node is unknown; quarantined.
        for (node, why) in [
            ("forbidden", Refusal::NotPermitted),
            ("ghost", Refusal::UnknownNode),
            ("jailed", Refusal::Quarantined),
        ] {
            assert_eq!(
                g.admit(&env(node, NOW, &w.acme), "acme", node, NOW),
                Err(why)
            );
        }
        // A refused envelope did not use up its nonce: the good original still passes.
        let good = env("n1", NOW, &w.acme);
        let mut tampered = good.clone();
        tampered.kind = "cert.renew".into();
        assert_eq!(
            g.admit(&tampered, "acme", "n1", NOW),
            Err(Refusal::BadSignature)
        );
        assert_eq!(g.admit(&good, "acme", "n1", NOW), Ok(()));
    }

    #[test]
    fn a_rotated_out_key_works_until_its_transition_then_not() {
        let w = world();
        let g = w.gate.provisioned().unwrap();
        let new = SigningKey::generate().unwrap();
        let mut ring = w.rings.get("acme").unwrap();
        ring.rotate_in(&new.verifying_key(), NOW + 60, NOW);
        w.rings.set("acme", ring);
        let old_signed = env("n1", NOW, &w.acme);
        let old_again = env("n1", NOW + 61, &w.acme);
        assert_eq!(g.admit(&old_signed, "acme", "n1", NOW + 10), Ok(()));
        assert_eq!(
            g.admit(&old_again, "acme", "n1", NOW + 61),
            Err(Refusal::KeyRetired)
        );
        assert_eq!(
            g.admit(&env("n1", NOW + 61, &new), "acme", "n1", NOW + 61),
            Ok(())
        );
    }

    #[test]
    fn a_gate_missing_any_port_admits_nothing() {
        let w = world();
        for missing in ["signature", "replay", "staleness", "relation", "node"] {
            let mut g = w.gate.clone();
            match missing {
                "signature" => g.signature = None,
                "replay" => g.replay = None,
                "staleness" => g.staleness = None,
                "relation" => g.relation = None,
                _ => g.node = None,
            }
            assert_eq!(g.provisioned().err(), Some(MissingPort(missing)));
        }
        assert!(Gate::default().provisioned().is_err());
    }

    #[test]
    fn the_agent_checks_a_backlog_in_one_batch_with_the_same_verdicts() {
        let w = world();
        let ring = w.rings.get("acme").unwrap();
        let mut forged = env("n1", NOW, &w.acme);
        forged.payload = json!({"x": 1});
        let good = env("n1", NOW, &w.acme);
        let envs = vec![
            good.clone(),
            forged,
            env("n2", NOW, &w.acme),
            env("n1", NOW - 400, &w.acme),
            env("n1", NOW, &w.other),
            good,
        ];
        let cache = NonceCache::new(100);
        let got = admit_batch_at_agent(&envs, ("acme", "n1"), &ring, &cache, NOW);
        assert_eq!(
            got,
            vec![
                Ok(()),
                Err(Refusal::BadSignature),
                Err(Refusal::WrongRecipient),
                Err(Refusal::Stale),
                Err(Refusal::UnknownKey),
                Err(Refusal::Replayed),
            ]
        );
    }

    #[test]
    fn the_agent_checks_the_same_without_the_server() {
        let w = world();
        let ring = w.rings.get("acme").unwrap();
        let cache = NonceCache::new(100);
        let e = env("n1", NOW, &w.acme);
        assert_eq!(
            admit_at_agent(&e, ("acme", "n1"), &ring, &cache, NOW),
            Ok(())
        );
        assert_eq!(
            admit_at_agent(&e, ("acme", "n1"), &ring, &cache, NOW),
            Err(Refusal::Replayed)
        );
        assert_eq!(
            admit_at_agent(&env("n2", NOW, &w.acme), ("acme", "n1"), &ring, &cache, NOW),
            Err(Refusal::WrongRecipient)
        );
        assert_eq!(
            admit_at_agent(
                &env("n1", NOW, &w.other),
                ("acme", "n1"),
                &ring,
                &cache,
                NOW
            ),
            Err(Refusal::UnknownKey)
        );
        assert_eq!(
            admit_at_agent(
                &env("n1", NOW - 301, &w.acme),
                ("acme", "n1"),
                &ring,
                &cache,
                NOW
            ),
            Err(Refusal::Stale)
        );
    }
}
