//! Journal entries: canonical JSON (RFC 8785) so that an entry's hash is the same in every
//! language that re-serializes it.
//!
//! An entry is `{seq, ts, kind, actor, org, action, resource, outcome, corr_id, data}`.
//! `data` can only be filled from a type that implements [`EntryData`]. Secret types
//! (`bulwark_crypto::SecretBytes`, keys) implement neither `Serialize` nor `EntryData`, so
//! they cannot be put into an entry by accident:
//!
//! ```compile_fail,E0277
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
    /// `data` in canonical form, computed by the caller's task so the sequencer only
    /// splices it in.
    data_jcs: Vec<u8>,
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
            data_jcs: b"{}".to_vec(),
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
        self.data_jcs = serde_jcs::to_vec(&self.data).map_err(EntryError::Data)?;
        Ok(self)
    }

    /// The kind of the draft.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Gives the draft its place in the log.
    pub fn sequence(self, seq: u64, ts: u64) -> Entry {
        self.prepare().sequence(seq, ts).0
    }
}

/// Writes a JSON string. serde_json's escaping is RFC 8785's (ECMAScript `JSON.stringify`):
/// `"` and `\`, the short escapes for \b \f \n \r \t, `\u00xx` (lowercase) for other
/// controls, everything else as UTF-8. A property test holds it to `serde_jcs`.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn json_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// The members of an entry that precede `seq` and `ts` in RFC 8785 order.
struct Fields<'a> {
    action: &'a str,
    actor: &'a str,
    corr_id: Option<&'a str>,
    data_jcs: &'a [u8],
    kind: Kind,
    org: Option<&'a str>,
    outcome: Outcome,
    resource: &'a str,
}

/// Writes everything up to and including `"seq":` (members sorted by UTF-16 code units;
/// all ASCII here): `seq` and `ts` sort last, so the sequencer only appends them.
fn write_prefix(out: &mut Vec<u8>, f: Fields<'_>) {
    out.extend_from_slice(b"{\"action\":");
    json_str(out, f.action);
    out.extend_from_slice(b",\"actor\":");
    json_str(out, f.actor);
    out.extend_from_slice(b",\"corr_id\":");
    json_opt(out, f.corr_id);
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(f.data_jcs);
    out.extend_from_slice(b",\"kind\":");
    out.extend_from_slice(match f.kind {
        Kind::State => b"\"state\"",
        Kind::Access => b"\"access\"",
    });
    out.extend_from_slice(b",\"org\":");
    json_opt(out, f.org);
    out.extend_from_slice(b",\"outcome\":");
    out.extend_from_slice(match f.outcome {
        Outcome::Ok => b"\"ok\"".as_slice(),
        Outcome::Denied => b"\"denied\"".as_slice(),
        Outcome::Error => b"\"error\"".as_slice(),
    });
    out.extend_from_slice(b",\"resource\":");
    json_str(out, f.resource);
    out.extend_from_slice(b",\"seq\":");
}

fn write_suffix(out: &mut Vec<u8>, seq: u64, ts: u64) {
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":");
    out.extend_from_slice(ts.to_string().as_bytes());
    out.push(b'}');
}

/// A draft with everything but `seq` and `ts` already in canonical form and the leaf-hash
/// state over that prefix, prepared on the caller's task: the sequencer only appends two
/// numbers to both.
pub struct Prepared {
    draft: Draft,
    prefix: Vec<u8>,
    hash: aws_lc_rs::digest::Context,
}

impl Draft {
    /// Encodes and starts hashing everything the sequencer does not decide.
    pub fn prepare(self) -> Prepared {
        let mut prefix = Vec::with_capacity(160 + self.data_jcs.len());
        write_prefix(
            &mut prefix,
            Fields {
                action: &self.action,
                actor: &self.actor,
                corr_id: self.corr_id.as_deref(),
                data_jcs: &self.data_jcs,
                kind: self.kind,
                org: self.org.as_deref(),
                outcome: self.outcome,
                resource: &self.resource,
            },
        );
        let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        hash.update(&[0x00]);
        hash.update(&prefix);
        Prepared {
            draft: self,
            prefix,
            hash,
        }
    }
}

impl Prepared {
    /// The entry at `seq`/`ts`, its canonical bytes and its leaf hash.
    pub fn sequence(self, seq: u64, ts: u64) -> (Entry, Vec<u8>, [u8; 32]) {
        let mut bytes = self.prefix;
        let start = bytes.len();
        write_suffix(&mut bytes, seq, ts);
        let mut hash = self.hash;
        hash.update(bytes.get(start..).unwrap_or_default());
        let mut leaf = [0u8; 32];
        leaf.copy_from_slice(hash.finish().as_ref());
        let d = self.draft;
        let entry = Entry {
            seq,
            ts,
            kind: d.kind,
            actor: d.actor,
            org: d.org,
            action: d.action,
            resource: d.resource,
            outcome: d.outcome,
            corr_id: d.corr_id,
            data: d.data,
        };
        (entry, bytes, leaf)
    }
}

impl Entry {
    /// The RFC 8785 canonical bytes: what is stored and hashed.
    pub fn canonical(&self) -> Result<Vec<u8>, EntryError> {
        let data = serde_jcs::to_vec(&self.data).map_err(EntryError::Data)?;
        let mut out = Vec::with_capacity(160 + data.len());
        self.write_canonical(&mut out, &data);
        Ok(out)
    }

    /// The members in RFC 8785 order (sorted by UTF-16 code units; all ASCII here).
    fn write_canonical(&self, out: &mut Vec<u8>, data_jcs: &[u8]) {
        write_prefix(
            out,
            Fields {
                action: &self.action,
                actor: &self.actor,
                corr_id: self.corr_id.as_deref(),
                data_jcs,
                kind: self.kind,
                org: self.org.as_deref(),
                outcome: self.outcome,
                resource: &self.resource,
            },
        );
        write_suffix(out, self.seq, self.ts);
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

    proptest::proptest! {
        #[test]
        fn the_fast_writer_is_rfc8785(
            action in ".{0,12}", actor in "\\PC{0,12}", org in proptest::option::of(".{0,8}"),
            resource in "[\\x00-\\x7f\\u{80}-\\u{10ffff}]{0,16}", seq in 0u64..(1 << 53), ts in 0u64..(1 << 53),
            n in proptest::num::i64::ANY, k in "[a-zA-Z_\\u{e9}]{1,6}",
        ) {
            let mut data = serde_json::Map::new();
            data.insert(k, serde_json::Value::from(n));
            data.insert("z".into(), serde_json::Value::from(resource.clone()));
            let mut e = Draft::new(Kind::Access, action, resource).actor(actor);
            if let Some(o) = org { e = e.org(o); }
            let e = e.sequence(seq, ts);
            let e = Entry { data: serde_json::Value::Object(data), ..e };
            proptest::prop_assert_eq!(e.canonical().unwrap(), serde_jcs::to_vec(&e).unwrap());
            // The sequencer's path gives the same bytes and the leaf hash of those bytes.
            let mut d = Draft::new(e.kind, e.action.clone(), e.resource.clone()).actor(e.actor.clone());
            if let Some(o) = &e.org { d = d.org(o.clone()); }
            let (seq_entry, bytes, leaf) = d.prepare().sequence(e.seq, e.ts);
            proptest::prop_assert_eq!(&bytes, &seq_entry.canonical().unwrap());
            proptest::prop_assert_eq!(leaf, crate::merkle::leaf_hash(&bytes));
        }
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
