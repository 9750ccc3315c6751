//! Journal events of secret versions and the metadata view folded from them.
//!
//! A version is `live`, a `tombstone` (the secret was deleted at that version: reads of
//! the secret answer 404 until a new version is put), or `destroyed` (its DEK was erased).
//! Each live version carries the digest of its stored row, so a row swapped in the store
//! is caught even before decryption.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use bulwark_ledger::entry::{Draft, Entry, EntryData, EntryError, Kind};
use bulwark_ledger::projection::Projection;
use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;

/// The digest of a stored envelope (hex SHA-256 over its length-prefixed parts), journaled
/// with the version.
pub fn digest(env: &Envelope) -> String {
    let mut buf = Vec::with_capacity(env.ciphertext.len() + 128);
    for part in [
        env.kek_kid.as_bytes(),
        env.wrapped_dek.as_deref().unwrap_or_default(),
        env.ciphertext.as_slice(),
    ] {
        buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
        buf.extend_from_slice(part);
    }
    bulwark_ledger::verify::hex(&bulwark_crypto::sha256(&buf))
}

/// Where a secret lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretKey {
    /// Org.
    pub org: String,
    /// App.
    pub app: String,
    /// Env.
    pub env: String,
    /// Name.
    pub name: String,
}

/// The state of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Readable.
    Live,
    /// The secret was deleted at this version.
    Tombstone,
    /// The version's key was erased.
    Destroyed,
}

/// One version's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// Version number, from 1.
    pub version: u64,
    /// State.
    pub state: VersionState,
    /// Digest of the stored row (live versions).
    pub digest: Option<String>,
    /// The wrapping KEK.
    pub kek_kid: Option<String>,
    /// Plaintext length in bytes.
    pub size: Option<u64>,
    /// The entry that created it.
    pub seq: u64,
    /// When (Unix ms).
    pub ts: u64,
}

/// Journal events of secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "data")]
pub enum SecretEvent {
    /// A new version was written.
    #[serde(rename = "secret.put")]
    Put {
        /// Where.
        #[serde(flatten)]
        key: SecretKey,
        /// Its version.
        version: u64,
        /// Digest of the stored row.
        digest: String,
        /// The wrapping KEK.
        kek_kid: String,
        /// Plaintext length.
        size: u64,
        /// The version whose value this one restores (after a delete).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restored_from: Option<u64>,
    },
    /// The secret was deleted (a tombstone version).
    #[serde(rename = "secret.delete")]
    Delete {
        /// Where.
        #[serde(flatten)]
        key: SecretKey,
        /// The tombstone's version.
        version: u64,
    },
    /// A version's DEK was re-wrapped under another KEK (KEK rotation); its ciphertext is
    /// unchanged, its stored row (and so its digest) is not.
    #[serde(rename = "secret.rewrap")]
    Rewrap {
        /// Where.
        #[serde(flatten)]
        key: SecretKey,
        /// Which version.
        version: u64,
        /// Digest of the new stored row.
        digest: String,
        /// The new wrapping KEK.
        kek_kid: String,
    },
    /// A version's key was erased (irreversible).
    #[serde(rename = "secret.destroy")]
    Destroy {
        /// Where.
        #[serde(flatten)]
        key: SecretKey,
        /// Which version.
        version: u64,
    },
}

#[derive(Serialize)]
struct Data<'a>(&'a serde_json::Value);
impl EntryData for Data<'_> {}

impl SecretEvent {
    fn parts(&self) -> (&'static str, &SecretKey, u64) {
        match self {
            Self::Put { key, version, .. } => ("secret.put", key, *version),
            Self::Delete { key, version } => ("secret.delete", key, *version),
            Self::Destroy { key, version } => ("secret.destroy", key, *version),
            Self::Rewrap { key, version, .. } => ("secret.rewrap", key, *version),
        }
    }

    /// The journal entry for this event (its data holds names, versions, digests and key
    /// ids: never a value).
    pub fn draft(&self, actor: &str, corr_id: Option<&str>) -> Result<Draft, EntryError> {
        let (action, key, version) = self.parts();
        let v = serde_json::to_value(self).map_err(EntryError::Data)?;
        let data = v.get("data").cloned().unwrap_or_default();
        let mut d = Draft::new(Kind::State, action, resource(key, version))
            .actor(actor)
            .org(key.org.as_str())
            .data(&Data(&data))?;
        if let Some(c) = corr_id {
            d = d.corr_id(c);
        }
        Ok(d)
    }

    /// Reads an entry back (`None`: not a secret event).
    pub fn from_entry(entry: &Entry) -> Option<Result<Self, serde_json::Error>> {
        if !matches!(
            entry.action.as_str(),
            "secret.put" | "secret.delete" | "secret.destroy" | "secret.rewrap"
        ) {
            return None;
        }
        let v = serde_json::json!({"action": entry.action, "data": entry.data});
        Some(serde_json::from_value(v))
    }
}

/// The journal `resource` of a secret version.
pub fn resource(key: &SecretKey, version: u64) -> String {
    format!(
        "org/{}/app/{}/env/{}/secret/{}@{version}",
        key.org, key.app, key.env, key.name
    )
}

/// Secret metadata by key, versions ascending.
#[derive(Default)]
pub struct SecretsView {
    inner: RwLock<BTreeMap<SecretKey, Vec<VersionMeta>>>,
}

impl SecretsView {
    /// The versions of a secret.
    pub fn versions(&self, key: &SecretKey) -> Option<Vec<VersionMeta>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// The latest version of a secret.
    pub fn latest(&self, key: &SecretKey) -> Option<VersionMeta> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .and_then(|v| v.last().cloned())
    }

    /// Secrets of an env after `after` (by name), at most `limit`: (name, latest).
    pub fn list(
        &self,
        org: &str,
        app: &str,
        env: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, VersionMeta)> {
        let m = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let from = SecretKey {
            org: org.into(),
            app: app.into(),
            env: env.into(),
            name: after.unwrap_or_default().into(),
        };
        m.range(from..)
            .filter(|(k, _)| Some(k.name.as_str()) != after)
            .take_while(|(k, _)| k.org == org && k.app == app && k.env == env)
            .filter_map(|(k, v)| v.last().map(|l| (k.name.clone(), l.clone())))
            .take(limit)
            .collect()
    }
}

impl Projection for SecretsView {
    fn name(&self) -> &'static str {
        "secrets"
    }

    fn apply(&self, entry: &Entry) {
        let event = match SecretEvent::from_entry(entry) {
            None => return,
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::error!(seq = entry.seq, error = %e, "malformed secret event skipped");
                return;
            }
        };
        let mut m = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            SecretEvent::Put {
                key,
                version,
                digest,
                kek_kid,
                size,
                ..
            } => {
                let versions = m.entry(key).or_default();
                // Versions only grow by one: a second entry for a number (an append whose
                // failure was uncertain, then a retry) must not shadow the first.
                if versions.last().map_or(0, |v| v.version) + 1 != version {
                    tracing::error!(
                        seq = entry.seq,
                        version,
                        "secret version out of sequence; ignored"
                    );
                    return;
                }
                versions.push(VersionMeta {
                    version,
                    state: VersionState::Live,
                    digest: Some(digest),
                    kek_kid: Some(kek_kid),
                    size: Some(size),
                    seq: entry.seq,
                    ts: entry.ts,
                });
            }
            SecretEvent::Delete { key, version } => m.entry(key).or_default().push(VersionMeta {
                version,
                state: VersionState::Tombstone,
                digest: None,
                kek_kid: None,
                size: None,
                seq: entry.seq,
                ts: entry.ts,
            }),
            SecretEvent::Rewrap {
                key,
                version,
                digest,
                kek_kid,
            } => {
                if let Some(v) = m
                    .get_mut(&key)
                    .and_then(|vs| vs.iter_mut().find(|v| v.version == version))
                    .filter(|v| v.state == VersionState::Live)
                {
                    v.digest = Some(digest);
                    v.kek_kid = Some(kek_kid);
                }
            }
            SecretEvent::Destroy { key, version } => {
                if let Some(v) = m
                    .get_mut(&key)
                    .and_then(|vs| vs.iter_mut().find(|v| v.version == version))
                {
                    v.state = VersionState::Destroyed;
                    v.digest = None;
                }
            }
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        let m = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let list: Vec<(&SecretKey, &Vec<VersionMeta>)> = m.iter().collect();
        serde_json::to_value(list).unwrap_or_default()
    }

    fn restore(&self, state: &serde_json::Value) -> Result<(), String> {
        let list: Vec<(SecretKey, Vec<VersionMeta>)> =
            serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = list.into_iter().collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SecretKey {
        SecretKey {
            org: "acme".into(),
            app: "web".into(),
            env: "prod".into(),
            name: name.into(),
        }
    }

    #[test]
    fn fold_list_and_snapshot() {
        let v = SecretsView::default();
        let events = [
            SecretEvent::Put {
                key: key("b"),
                version: 1,
                digest: "d1".into(),
                kek_kid: "k".into(),
                size: 3,
                restored_from: None,
            },
            SecretEvent::Put {
                key: key("a"),
                version: 1,
                digest: "d2".into(),
                kek_kid: "k".into(),
                size: 3,
                restored_from: None,
            },
            SecretEvent::Put {
                key: key("a"),
                version: 2,
                digest: "d3".into(),
                kek_kid: "k".into(),
                size: 3,
                restored_from: None,
            },
            SecretEvent::Destroy {
                key: key("a"),
                version: 1,
            },
            SecretEvent::Rewrap {
                key: key("a"),
                version: 2,
                digest: "d4".into(),
                kek_kid: "k2".into(),
            },
            SecretEvent::Delete {
                key: key("b"),
                version: 2,
            },
        ];
        for (i, e) in events.iter().enumerate() {
            let entry = e.draft("t", None).unwrap().sequence(i as u64, 5);
            assert_eq!(SecretEvent::from_entry(&entry).unwrap().unwrap(), *e);
            assert!(!entry.resource.is_empty() && entry.org.as_deref() == Some("acme"));
            v.apply(&entry);
        }
        let a = v.versions(&key("a")).unwrap();
        assert_eq!(a[0].state, VersionState::Destroyed);
        assert_eq!(a[1].state, VersionState::Live);
        assert_eq!(
            (a[1].digest.as_deref(), a[1].kek_kid.as_deref()),
            (Some("d4"), Some("k2"))
        );
        assert_eq!(v.latest(&key("b")).unwrap().state, VersionState::Tombstone);
        let names: Vec<String> = v
            .list("acme", "web", "prod", None, 10)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let after: Vec<String> = v
            .list("acme", "web", "prod", Some("a"), 10)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(after, ["b"]);
        assert!(v.list("acme", "web", "staging", None, 10).is_empty());
        let w = SecretsView::default();
        w.restore(&v.snapshot()).unwrap();
        assert_eq!(w.snapshot(), v.snapshot());
        // A second entry for an existing version (an uncertain failure, then a retry) does
        // not shadow the first.
        let dup = SecretEvent::Put {
            key: key("a"),
            version: 2,
            digest: "other".into(),
            kek_kid: "k".into(),
            size: 1,
            restored_from: None,
        };
        v.apply(&dup.draft("t", None).unwrap().sequence(99, 5));
        let a = v.versions(&key("a")).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].digest.as_deref(), Some("d4"));
    }
}
