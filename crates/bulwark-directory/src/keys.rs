//! The instance's keys as the journal knows them: the `key.create` and `key.retire`
//! events, the `instance.start` event, and the [`KeyView`] projection folded from them
//! (purpose, kid, algorithm, the journal entry that created it, active or retired, and the
//! public half of retired token signing keys, which keeps verifying until their tokens have
//! expired). The server journals and folds them; the offline KEK rotation folds them too
//! and journals the new KEK. Never a private key: only ids, algorithms and public halves.

use std::collections::BTreeMap;
use std::sync::RwLock;

use bulwark_ledger::entry::{Draft, Entry, EntryData, EntryError, Kind};
use bulwark_ledger::projection::Projection;
use serde::{Deserialize, Serialize};

/// The `data` of a `key.create` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCreated {
    /// What the key is for: `ca`, `kek`, `signing`, `ledger`.
    pub purpose: String,
    /// Its public key id.
    pub kid: String,
    /// Its algorithm.
    pub alg: String,
    /// The public key, base64url, for keys whose public half others verify with after it
    /// is retired (token signing keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
}

impl EntryData for KeyCreated {}

/// The `data` of a `key.retire` entry: the key stops signing; its public half stays
/// published until everything it signed has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRetired {
    /// Its purpose.
    pub purpose: String,
    /// Its key id.
    pub kid: String,
    /// Its public key, base64url.
    pub public: Option<String>,
}

impl EntryData for KeyRetired {}

impl KeyRetired {
    /// The journal entry.
    pub fn draft(&self) -> Result<Draft, EntryError> {
        Draft::new(
            Kind::State,
            "key.retire",
            format!("instance/keys/{}", self.purpose),
        )
        .data(self)
    }
}

impl KeyCreated {
    /// The journal entry announcing this key.
    pub fn draft(&self) -> Result<Draft, EntryError> {
        Draft::new(
            Kind::State,
            "key.create",
            format!("instance/keys/{}", self.purpose),
        )
        .data(self)
    }
}

/// The `data` of an `instance.start` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStart {
    /// The server version.
    pub version: String,
}

impl EntryData for InstanceStart {}

/// One key as the view knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// Seq of the entry that created it.
    pub created_seq: u64,
    /// `active` or `retired`.
    pub status: String,
    /// Public key (base64url), when journaled.
    #[serde(default)]
    pub public: Option<String>,
    /// When it was retired (Unix ms).
    #[serde(default)]
    pub retired_ms: Option<u64>,
}

/// A retired token key: its id, public key, and when it was retired (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    /// Key id.
    pub kid: String,
    /// Raw Ed25519 public key.
    pub public: [u8; 32],
    /// When a newer key replaced it.
    pub retired_ms: u64,
}

/// Keys by purpose, newest last.
#[derive(Debug, Default)]
pub struct KeyView {
    by_purpose: RwLock<BTreeMap<String, Vec<KeyRecord>>>,
}

impl KeyView {
    /// A copy of the view.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<KeyRecord>> {
        self.by_purpose
            .read()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Whether a key with this purpose and kid is recorded.
    pub fn knows(&self, purpose: &str, kid: &str) -> bool {
        self.by_purpose.read().is_ok_and(|m| {
            m.get(purpose)
                .is_some_and(|v| v.iter().any(|k| k.kid == kid))
        })
    }
}

impl KeyView {
    /// Retired keys of `purpose` with a journaled public half, except `active_kid`.
    pub fn retired(&self, purpose: &str, active_kid: &str) -> Vec<RetiredKey> {
        use base64::Engine as _;
        let Ok(m) = self.by_purpose.read() else {
            return Vec::new();
        };
        m.get(purpose)
            .map(|v| {
                v.iter()
                    .filter(|k| k.kid != active_kid && k.status == "retired")
                    .filter_map(|k| {
                        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(k.public.as_deref()?)
                            .ok()?;
                        Some(RetiredKey {
                            kid: k.kid.clone(),
                            public: raw.try_into().ok()?,
                            retired_ms: k.retired_ms?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Projection for KeyView {
    fn name(&self) -> &'static str {
        "instance_keys"
    }

    fn apply(&self, entry: &Entry) {
        if entry.action == "key.retire" {
            if let Ok(r) = serde_json::from_value::<KeyRetired>(entry.data.clone())
                && let Ok(mut m) = self.by_purpose.write()
                && let Some(k) = m
                    .get_mut(&r.purpose)
                    .and_then(|v| v.iter_mut().find(|k| k.kid == r.kid))
            {
                "retired".clone_into(&mut k.status);
                k.retired_ms.get_or_insert(entry.ts);
                if k.public.is_none() {
                    k.public = r.public;
                }
            }
            return;
        }
        if entry.action != "key.create" {
            return;
        }
        let Ok(created) = serde_json::from_value::<KeyCreated>(entry.data.clone()) else {
            tracing::error!(
                seq = entry.seq,
                "key.create entry with malformed data ignored"
            );
            return;
        };
        if let Ok(mut m) = self.by_purpose.write() {
            let keys = m.entry(created.purpose).or_default();
            for k in keys.iter_mut() {
                "retired".clone_into(&mut k.status);
                k.retired_ms.get_or_insert(entry.ts);
            }
            keys.push(KeyRecord {
                kid: created.kid,
                alg: created.alg,
                created_seq: entry.seq,
                status: "active".into(),
                public: created.public,
                retired_ms: None,
            });
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(self.snapshot()).unwrap_or_default()
    }

    fn restore(&self, state: &serde_json::Value) -> Result<(), String> {
        let m: BTreeMap<String, Vec<KeyRecord>> =
            serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        let mut view = self.by_purpose.write().map_err(|_| "poisoned".to_owned())?;
        *view = m;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, purpose: &str, kid: &str) -> Entry {
        KeyCreated {
            purpose: purpose.into(),
            kid: kid.into(),
            alg: "Ed25519".into(),
            public: None,
        }
        .draft()
        .unwrap()
        .sequence(seq, 0)
    }

    #[test]
    fn a_new_key_retires_the_previous_one_of_its_purpose() {
        let v = KeyView::default();
        v.apply(&entry(0, "ledger", "a"));
        v.apply(&entry(1, "kek", "k"));
        v.apply(&entry(2, "ledger", "b"));
        let s = v.snapshot();
        assert_eq!(s["ledger"][0].status, "retired");
        assert_eq!(s["ledger"][1].status, "active");
        assert_eq!(s["ledger"][1].created_seq, 2);
        assert_eq!(s["kek"].len(), 1);
        assert!(v.knows("kek", "k"));
        assert!(!v.knows("kek", "a"));
        let copy = KeyView::default();
        copy.restore(&Projection::snapshot(&v)).unwrap();
        assert_eq!(copy.snapshot(), v.snapshot());
    }
}
