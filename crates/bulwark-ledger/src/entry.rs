//! Journal entries: canonical JSON (RFC 8785) so that an entry's hash is the same in every
//! language that re-serializes it.
//!
//! An entry is `{seq, ts, kind, actor, org, action, resource, outcome, corr_id, data}`.
//! `data` can only be filled from a type that implements [`EntryData`]. Secret types
//! (`bulwark_crypto::SecretBytes`, keys) implement neither `Serialize` nor `EntryData`, so
//! they cannot be put into an entry by accident:
//!
//! ```compile_fail
//! use bulwark_ledger::entry::{Draft, Kind, Outcome};
//! let secret = bulwark_crypto::SecretBytes::new(b"hunter2".to_vec());
//! let _ = Draft::new(Kind::Access, "secret.read", "org/a/app/b/env/c/secret/d")
//!     .data(&secret); // error: `SecretBytes` does not implement `EntryData`
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Whether an entry changes state or records an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A state change: projections fold these.
    State,
    /// A sensitive access or a denial.
    Access,
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused by policy.
    Denied,
    /// Failed.
    Error,
}

/// Marker for types whose serialized form may enter the journal: names, ids, versions,
/// digests — never secret material. Implement it only for such types.
pub trait EntryData: Serialize {}

/// An entry as stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the entry was sequenced.
    pub ts: u64,
    /// State change or access.
    pub kind: Kind,
    /// Who did it (principal id, `system`, `admin:<uid>` …).
    pub actor: String,
    /// The org it concerns, if any.
    pub org: Option<String>,
    /// What was done, e.g. `org.create`, `secret.read`.
    pub action: String,
    /// What it was done to.
    pub resource: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The request id that caused it.
    pub corr_id: Option<String>,
    /// Event-specific details (never secret material).
    pub data: serde_json::Value,
}

/// Errors building or reading entries.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The data could not be serialized.
    #[error("entry data does not serialize: {0}")]
    Data(serde_json::Error),
    /// Stored bytes are not a valid entry.
    #[error("malformed entry: {0}")]
    Malformed(serde_json::Error),
    /// Stored bytes are valid JSON but not in canonical form.
    #[error("entry is not in RFC 8785 canonical form")]
    NotCanonical,
}

/// An entry before the sequencer gives it `seq` and `ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    kind: Kind,
    actor: String,
    org: Option<String>,
    action: String,
    resource: String,
    outcome: Outcome,
    corr_id: Option<String>,
    data: serde_json::Value,
}

impl Draft {
    /// A draft by actor `system`, outcome `ok`, empty data.
    pub fn new(kind: Kind, action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            kind,
            actor: "system".into(),
            org: None,
            action: action.into(),
            resource: resource.into(),
            outcome: Outcome::Ok,
            corr_id: None,
            data: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Sets the actor.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Sets the org.
    #[must_use]
    pub fn org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }

    /// Sets the outcome.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn corr_id(mut self, corr_id: impl Into<String>) -> Self {
        self.corr_id = Some(corr_id.into());
        self
    }

    /// Sets the data from a type allowed in the journal.
    pub fn data<D: EntryData>(mut self, data: &D) -> Result<Self, EntryError> {
        self.data = serde_json::to_value(data).map_err(EntryError::Data)?;
        Ok(self)
    }

    /// The kind of the draft.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Gives the draft its place in the log.
    pub fn sequence(self, seq: u64, ts: u64) -> Entry {
        Entry {
            seq,
            ts,
            kind: self.kind,
            actor: self.actor,
            org: self.org,
            action: self.action,
            resource: self.resource,
            outcome: self.outcome,
            corr_id: self.corr_id,
            data: self.data,
        }
    }
}

impl Entry {
    /// The RFC 8785 canonical bytes: what is stored and hashed.
    pub fn canonical(&self) -> Result<Vec<u8>, EntryError> {
        serde_jcs::to_vec(self).map_err(EntryError::Data)
    }

    /// Parses stored bytes, refusing anything that is not exactly the canonical form (so
    /// two byte strings can never decode to the same entry).
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, EntryError> {
        let e: Entry = serde_json::from_slice(bytes).map_err(EntryError::Malformed)?;
        if e.canonical()? != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct KeyCreated<'a> {
        kid: &'a str,
        purpose: &'a str,
    }
    impl EntryData for KeyCreated<'_> {}

    #[test]
    fn canonical_form_is_sorted_compact_and_round_trips() {
        let e = Draft::new(Kind::State, "key.create", "instance/keys/ledger")
            .org("acme")
            .corr_id("r1")
            .data(&KeyCreated {
                kid: "abc",
                purpose: "ledger",
            })
            .unwrap()
            .sequence(7, 1_700_000_000_000);
        let bytes = e.canonical().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"action":"key.create","actor":"system","corr_id":"r1","data":{"kid":"abc","purpose":"ledger"},"kind":"state","org":"acme","outcome":"ok","resource":"instance/keys/ledger","seq":7,"ts":1700000000000}"#
        );
        assert_eq!(Entry::from_canonical(&bytes).unwrap(), e);
    }

    #[test]
    fn non_canonical_bytes_are_refused() {
        let e = Draft::new(Kind::Access, "x", "y").sequence(0, 1);
        let mut pretty = serde_json::to_vec_pretty(&e).unwrap();
        assert!(matches!(
            Entry::from_canonical(&pretty),
            Err(EntryError::NotCanonical)
        ));
        pretty.clear();
        assert!(Entry::from_canonical(b"{\"seq\":1}").is_err());
    }
}
