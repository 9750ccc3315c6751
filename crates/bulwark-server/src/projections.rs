//! The first projection: metadata of the instance's keys (purpose, kid, algorithm, the
//! journal entry that created it, active or retired), folded from `key.create` entries.
//! Later issues rotate keys by appending more of them.

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
}

impl EntryData for KeyCreated {}

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

impl Projection for KeyView {
    fn name(&self) -> &'static str {
        "instance_keys"
    }

    fn apply(&self, entry: &Entry) {
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
            }
            keys.push(KeyRecord {
                kid: created.kid,
                alg: created.alg,
                created_seq: entry.seq,
                status: "active".into(),
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
