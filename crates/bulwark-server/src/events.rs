//! The signed event bus, server side: each org's signing keys, the journal as the durable
//! store of published envelopes, and the gate's five ports wired to the directory. The
//! fan-out to SSE subscribers is a port of `bulwark-shared` (re-exported here).
//!
//! Publishing signs (the org's current key, made on first use), passes the gate, journals
//! `event.publish` (the entry carries the envelope; the entry's seq is the SSE event id, so
//! each names the other), then fans out. `events.key` entries journal each org key's public
//! half and the previous key's transition time; [`EventsView`] folds both into the key
//! rings and per-node backlogs (the last [`BACKLOG`] envelopes of each node), which is what
//! `Last-Event-ID` resumes from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::Context as _;
use bulwark_events::gate::{NodePort, NodeState, RelationPort};
use bulwark_events::keys::OrgKeyRings;
use bulwark_events::{Envelope, KeyRing};
#[cfg(test)]
use bulwark_ledger::entry::Draft;
use bulwark_ledger::entry::{Entry, EntryData};
use bulwark_ledger::projection::Projection;
pub use bulwark_shared::fanout::{Fanout, Published, SUBSCRIBER_BUFFER};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use bulwark_fs::{read_private, write_atomic};

/// Envelopes kept per node for resumption.
pub const BACKLOG: usize = 10_000;
/// Bytes of envelopes kept per node for resumption.
pub const BACKLOG_BYTES: usize = 4 << 20;
/// How long a rotated-out org key stays valid.
pub const KEY_TRANSITION_SECS: i64 = 300;
/// The org event keys in the data directory.
pub const EVENT_KEYS_FILE: &str = "event-keys.json";

/// `events.key`: an org's new signing key (public half), the previous one valid until
/// `previous_until`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The org.
    pub org: String,
    /// The new key's id.
    pub key_id: String,
    /// The new key's public half, base64url.
    pub public: String,
    /// Until when the previous key is accepted (Unix seconds).
    pub previous_until: i64,
}
impl EntryData for KeyEntry {}

/// `event.publish`: the envelope, as published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishEntry {
    /// The envelope.
    pub envelope: Envelope,
}
impl EntryData for PublishEntry {}

/// Key rings and per-node backlogs, folded from the journal.
#[derive(Default)]
pub struct EventsView {
    rings: Arc<OrgKeyRings>,
    backlog: RwLock<HashMap<String, NodeBacklog>>,
}

/// One node's retained envelopes.
#[derive(Default)]
struct NodeBacklog {
    q: VecDeque<Published>,
    /// Bytes of JSON in `q`.
    bytes: usize,
    /// The seq of the newest envelope dropped (0: none yet).
    evicted: u64,
}

impl NodeBacklog {
    fn push(&mut self, p: Published) {
        self.bytes += p.json.len();
        self.q.push_back(p);
        while self.q.len() > BACKLOG || (self.q.len() > 1 && self.bytes > BACKLOG_BYTES) {
            if let Some(dropped) = self.q.pop_front() {
                self.bytes -= dropped.json.len();
                self.evicted = dropped.seq;
            }
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Saved {
    rings: BTreeMap<String, KeyRing>,
    backlog: BTreeMap<String, Vec<(u64, String, String)>>,
    #[serde(default)]
    evicted: BTreeMap<String, u64>,
}

/// The stream key of a node: `<org>/<node>`.
pub fn node_key(org: &str, node: &str) -> String {
    format!("{org}/{node}")
}

impl EventsView {
    /// The rings (the gate's signature port).
    pub fn rings(&self) -> Arc<OrgKeyRings> {
        self.rings.clone()
    }

    /// Envelopes for `node_key` with a seq above `after`, oldest first; and whether the
    /// backlog still reaches back that far.
    pub fn after(&self, node_key: &str, after: u64) -> (Vec<Published>, bool) {
        let b = self.backlog.read().unwrap_or_else(PoisonError::into_inner);
        let Some(n) = b.get(node_key) else {
            return (Vec::new(), true);
        };
        (
            n.q.iter().filter(|p| p.seq > after).cloned().collect(),
            after >= n.evicted,
        )
    }

    /// Envelopes in the backlogs issued within the staleness window of `now` (to seed the
    /// replay cache at start-up).
    pub fn recent_envelopes(&self, now: i64) -> Vec<Envelope> {
        let window = bulwark_events::gate::STALENESS_SECS;
        self.backlog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .flat_map(|n| n.q.iter().rev())
            .filter_map(|p| serde_json::from_str::<Envelope>(&p.json).ok())
            .filter(|e| (e.issued_at - now).abs() <= window)
            .collect()
    }
}

impl Projection for EventsView {
    fn name(&self) -> &'static str {
        "events"
    }

    fn apply(&self, entry: &Entry) {
        match entry.action.as_str() {
            "events.key" => {
                let Ok(k) = serde_json::from_value::<KeyEntry>(entry.data.clone()) else {
                    tracing::error!(seq = entry.seq, "malformed events.key entry ignored");
                    return;
                };
                use base64::Engine as _;
                let Some(public) = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&k.public)
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                else {
                    return;
                };
                let now = i64::try_from(entry.ts / 1000).unwrap_or(i64::MAX);
                let mut ring = self.rings.get(&k.org).unwrap_or_default();
                ring.rotate_in(
                    &bulwark_crypto::VerifyingKey::from_bytes(public),
                    k.previous_until,
                    now,
                );
                self.rings.set(&k.org, ring);
            }
            "event.publish" => {
                let Ok(p) = serde_json::from_value::<PublishEntry>(entry.data.clone()) else {
                    tracing::error!(seq = entry.seq, "malformed event.publish entry ignored");
                    return;
                };
                let Ok(json) = serde_json::to_string(&p.envelope) else {
                    return;
                };
                self.backlog
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(node_key(&p.envelope.org, &p.envelope.node))
                    .or_default()
                    .push(Published {
                        seq: entry.seq,
                        kind: p.envelope.kind.into(),
                        json: json.into(),
                    });
            }
            _ => {}
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        let rings = self.rings.all();
        let b = self.backlog.read().unwrap_or_else(PoisonError::into_inner);
        let backlog = b
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    n.q.iter()
                        .map(|p| (p.seq, p.kind.to_string(), p.json.to_string()))
                        .collect(),
                )
            })
            .collect();
        let evicted = b
            .iter()
            .filter(|(_, n)| n.evicted > 0)
            .map(|(k, n)| (k.clone(), n.evicted))
            .collect();
        serde_json::to_value(Saved {
            rings,
            backlog,
            evicted,
        })
        .unwrap_or_default()
    }

    fn restore(&self, state: &serde_json::Value) -> Result<(), String> {
        let saved: Saved = serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        for (org, ring) in saved.rings {
            self.rings.set(&org, ring);
        }
        let mut b = self.backlog.write().unwrap_or_else(PoisonError::into_inner);
        b.clear();
        for (k, v) in saved.backlog {
            let n = b.entry(k).or_default();
            for (seq, kind, json) in v {
                n.push(Published {
                    seq,
                    kind: kind.into(),
                    json: json.into(),
                });
            }
        }
        for (k, dropped) in saved.evicted {
            let n = b.entry(k).or_default();
            n.evicted = n.evicted.max(dropped);
        }
        Ok(())
    }
}

/// Each org's private signing keys (newest last): `event-keys.json` (0600) in the data
/// directory, memory only in amnesia mode. No `Debug`.
pub struct EventKeys {
    file: Option<PathBuf>,
    keys: Mutex<BTreeMap<String, Vec<Zeroizing<String>>>>,
}

impl EventKeys {
    /// Loads the keys from `dir` (none yet is fine).
    pub fn load(dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let file = dir.map(|d| d.join(EVENT_KEYS_FILE));
        let keys = match &file {
            Some(f) if f.exists() => {
                let text = read_private(f)?;
                let raw: BTreeMap<String, Vec<String>> =
                    serde_json::from_str(&text).context("event-keys.json is not valid")?;
                raw.into_iter()
                    .map(|(org, v)| (org, v.into_iter().map(Zeroizing::new).collect()))
                    .collect()
            }
            _ => BTreeMap::new(),
        };
        Ok(Self {
            file,
            keys: Mutex::new(keys),
        })
    }

    /// The org's current key, if it has one.
    pub fn current(&self, org: &str) -> Option<bulwark_crypto::SigningKey> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(org)
            .and_then(|v| v.last())
            .and_then(|k| bulwark_crypto::SigningKey::decode(k).ok())
    }

    /// Makes a new current key for `org` and stores it (before anything is signed with it).
    /// The previous key is kept only if `keep_previous` (a rotation with a transition); a
    /// compromised one (no transition) is erased at once.
    pub fn create(
        &self,
        org: &str,
        keep_previous: bool,
    ) -> anyhow::Result<bulwark_crypto::SigningKey> {
        let key = bulwark_crypto::SigningKey::generate()?;
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let list = keys.entry(org.to_owned()).or_default();
        if !keep_previous {
            list.clear();
        }
        list.push(key.encode());
        while list.len() > 2 {
            list.remove(0);
        }
        self.save(&keys)?;
        Ok(key)
    }

    /// Removes `kid` of `org` (a key whose journal entry failed: no ring knows it).
    pub fn forget(&self, org: &str, kid: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = keys.get_mut(org) {
            list.retain(|k| {
                bulwark_crypto::SigningKey::decode(k).map_or(true, |sk| sk.kid() != kid)
            });
        }
        if let Err(e) = self.save(&keys) {
            tracing::error!(error = %format!("{e:#}"), "cannot store the org event keys");
        }
    }

    fn save(&self, keys: &BTreeMap<String, Vec<Zeroizing<String>>>) -> anyhow::Result<()> {
        if let Some(f) = &self.file {
            let raw: BTreeMap<&String, Vec<&str>> = keys
                .iter()
                .map(|(o, v)| (o, v.iter().map(|k| k.as_str()).collect()))
                .collect();
            let text = Zeroizing::new(serde_json::to_string(&raw)?);
            write_atomic(f, text.as_bytes(), 0o600)?;
        }
        Ok(())
    }
}

/// The replay port with one bounded nonce cache per org: an org that floods its own
/// cache (refused when full) cannot exhaust another org's.
pub struct PerOrgNonces {
    per_org: usize,
    caches: Mutex<HashMap<String, Arc<bulwark_events::gate::NonceCache>>>,
}

impl PerOrgNonces {
    /// `per_org` live nonces per org.
    pub fn new(per_org: usize) -> Self {
        Self {
            per_org,
            caches: Mutex::default(),
        }
    }

    fn cache(&self, org: &str) -> Arc<bulwark_events::gate::NonceCache> {
        self.caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(org.to_owned())
            .or_insert_with(|| Arc::new(bulwark_events::gate::NonceCache::new(self.per_org)))
            .clone()
    }
}

impl bulwark_events::gate::ReplayPort for PerOrgNonces {
    fn first_use(&self, org: &str, nonce: &str, now: i64) -> Result<(), bulwark_events::Refusal> {
        self.cache(org).first_use(org, nonce, now)
    }
}

/// The relation and node ports, over the directory: an org instructs only its own nodes,
/// which must exist and not be quarantined.
pub struct DirectoryPorts(pub Arc<bulwark_directory::DirectoryView>);

impl RelationPort for DirectoryPorts {
    fn may_instruct(&self, org: &str, node: &str) -> bool {
        // Nodes are registered under their org: found there means it is the org's.
        self.0.read().node(org, node).is_some()
    }
}

impl NodePort for DirectoryPorts {
    fn state(&self, org: &str, node: &str) -> NodeState {
        match self.0.read().node(org, node) {
            None => NodeState::Unknown,
            Some(n) if n.quarantined => NodeState::Quarantined,
            Some(_) => NodeState::Active,
        }
    }
}

/// The gate with all five ports wired, except the one named by `unwired` (tests prove
/// that a gate missing any port delivers nothing: `BULWARK_TEST_UNWIRE_EVENT_PORT` in
/// builds with the `test-hooks` feature).
pub fn gate(
    view: &EventsView,
    directory: Arc<bulwark_directory::DirectoryView>,
    unwired: Option<&str>,
) -> bulwark_events::Gate {
    use bulwark_events::gate::{ReplayPort as _, Window};
    let ports = Arc::new(DirectoryPorts(directory));
    // The nonces of envelopes already journaled (the backlog) are remembered across a
    // restart: a captured envelope cannot be relayed again right after one.
    let nonces = Arc::new(PerOrgNonces::new(20_000));
    let now = bulwark_identity::jose::now_secs();
    for env in view.recent_envelopes(now) {
        let _ = nonces.first_use(&env.org, &env.nonce, now);
    }
    let mut g = bulwark_events::Gate {
        signature: Some(view.rings()),
        replay: Some(nonces),
        staleness: Some(Arc::new(Window)),
        relation: Some(ports.clone()),
        node: Some(ports),
    };
    match unwired {
        Some("signature") => g.signature = None,
        Some("replay") => g.replay = None,
        Some("staleness") => g.staleness = None,
        Some("relation") => g.relation = None,
        Some("node") => g.node = None,
        _ => {}
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_keeps_a_bounded_backlog_per_node_and_survives_a_snapshot() {
        let v = EventsView::default();
        let key = bulwark_crypto::SigningKey::generate().unwrap();
        for i in 0..3u64 {
            let env = bulwark_events::Unsigned::new(
                format!("e{i}"),
                "secrets.changed",
                "acme",
                "n1",
                1,
                serde_json::json!({}),
            )
            .unwrap()
            .sign(&key)
            .unwrap();
            let entry = Draft::new(bulwark_ledger::entry::Kind::State, "event.publish", "x")
                .data(&PublishEntry { envelope: env })
                .unwrap()
                .sequence(10 + i, 0);
            v.apply(&entry);
        }
        let (after, complete) = v.after("acme/n1", 10);
        assert_eq!(
            after.iter().map(|p| p.seq).collect::<Vec<_>>(),
            vec![11, 12]
        );
        assert!(complete);
        let copy = EventsView::default();
        copy.restore(&v.snapshot()).unwrap();
        assert_eq!(copy.after("acme/n1", 0).0.len(), 3);

        // Past the cap the oldest go, and a resume from before them is known incomplete.
        let env = bulwark_events::Unsigned::new("e", "t", "acme", "n2", 1, serde_json::json!({}))
            .unwrap()
            .sign(&key)
            .unwrap();
        for seq in 0..(BACKLOG as u64 + 5) {
            let entry = Draft::new(bulwark_ledger::entry::Kind::State, "event.publish", "x")
                .data(&PublishEntry {
                    envelope: env.clone(),
                })
                .unwrap()
                .sequence(1000 + 2 * seq, 0);
            v.apply(&entry);
        }
        let (kept, complete) = v.after("acme/n2", 0);
        assert_eq!(kept.len(), BACKLOG);
        assert!(!complete, "five were dropped");
        // After the last dropped one (seq 1000 + 2·4), nothing is missing.
        assert!(v.after("acme/n2", 1008).1);
        assert!(!v.after("acme/n2", 1007).1);
        let copy = EventsView::default();
        copy.restore(&v.snapshot()).unwrap();
        assert!(!copy.after("acme/n2", 0).1);
    }
}
