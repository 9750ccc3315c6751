//! The audited read of secrets, as a pure state machine.
//!
//! The order of a read is decided here and nowhere else (DESIGN.md §4 "Secrets"):
//! authentication (done before the machine starts) → the node's read rate (node callers)
//! → the org's read rate → authorize (the driver journals a denial) → the secret's name →
//! exists → the stored row as of that decision → journal the read (fail-closed) → still
//! live after the journal (a destroy or delete that raced the read wins) → digest and
//! AEAD → the plaintext.
//!
//! A driver (the server's `ops::secrets`) asks the machine what to do ([`Next`]), does it
//! (I/O: rate limiters, the directory, the journal, the KEK) and reports the result
//! ([`Input`]); the machine decides the next step from it. A driver cannot skip or
//! reorder a step: an input the current step did not ask for ends the read
//! ([`ReadError::OutOfOrder`]). Plaintext enters the machine only as the answer to
//! [`Next::Decrypt`], which is asked only after the read was journaled and found still
//! live; it leaves only in [`Next::Done`], in zeroizing buffers. Nothing here derives
//! `Debug` over plaintext.
//!
//! One machine reads one secret ([`AuditedRead::one`]) or every live secret of an env
//! ([`AuditedRead::env`], the node agent's secrets file): the rate limits and the
//! authorization are passed once, then each secret takes the read path in turn and any
//! failure ends the whole read (values already opened are dropped, and zeroized).

use std::collections::VecDeque;
use std::fmt;

use bulwark_ledger::entry::{Draft, EntryData, EntryError, Kind, Outcome};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::envelope::Envelope;
use crate::view::{SecretKey, VersionMeta, VersionState, digest, resource};

/// Which read rate a step checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// The calling node's.
    Node,
    /// The calling org's.
    Org,
}

/// The env a read is in, as authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvKey {
    /// Org.
    pub org: String,
    /// App.
    pub app: String,
    /// Env.
    pub env: String,
}

impl EnvKey {
    /// The secret `name` of this env.
    pub fn secret(&self, name: &str) -> SecretKey {
        SecretKey {
            org: self.org.clone(),
            app: self.app.clone(),
            env: self.env.clone(),
            name: name.to_owned(),
        }
    }
}

/// A journal entry the read writes: `secret.read` (before any byte is decrypted) or
/// `secret.integrity_fail`. Holds names, versions and key ids: never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// The entry's action.
    pub action: &'static str,
    /// Its outcome.
    pub outcome: Outcome,
    /// The secret.
    pub key: SecretKey,
    /// The version read.
    pub version: u64,
    /// The KEK that wraps it.
    pub kek_kid: Option<String>,
    /// Why an integrity check failed (`missing`, `digest`, `decrypt`).
    pub why: Option<&'static str>,
}

#[derive(Serialize)]
struct RecordData<'a> {
    name: &'a str,
    version: u64,
    kek_kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'a str>,
}
impl EntryData for RecordData<'_> {}

impl ReadRecord {
    /// The journal entry, by `actor`, for request `corr_id`.
    pub fn draft(&self, actor: &str, corr_id: Option<&str>) -> Result<Draft, EntryError> {
        let mut d = Draft::new(Kind::Access, self.action, resource(&self.key, self.version))
            .actor(actor)
            .org(self.key.org.as_str())
            .outcome(self.outcome);
        if let Some(c) = corr_id {
            d = d.corr_id(c);
        }
        d.data(&RecordData {
            name: &self.key.name,
            version: self.version,
            kek_kid: self.kek_kid.as_deref(),
            why: self.why,
        })
    }
}

/// What the driver does next.
pub enum Next<E> {
    /// Check the caller's read rate; answer [`Input::Rate`].
    CheckRate(Rate),
    /// Authorize the caller to read secret values (journaling a denial); answer
    /// [`Input::Authorized`] with the env, or [`Input::Failed`].
    Authorize,
    /// List the env's secrets (name and latest version), at most `limit`; answer
    /// [`Input::Listed`].
    List {
        /// The env.
        env: EnvKey,
        /// How many to list.
        limit: usize,
    },
    /// Find the secret's versions; answer [`Input::Versions`].
    Lookup(SecretKey),
    /// Take the stored row of `version` as of now; answer [`Input::Row`].
    Fetch {
        /// The secret.
        key: SecretKey,
        /// The version.
        version: u64,
    },
    /// Append this entry and wait until it is durable; answer [`Input::Journaled`] with its
    /// seq, or [`Input::Failed`] (the read ends: fail-closed).
    Journal(ReadRecord),
    /// Find the secret's versions again, now that the read is journaled; answer
    /// [`Input::Versions`].
    Recheck(SecretKey),
    /// Open `row` (its digest matched the journaled one); answer [`Input::Decrypted`].
    Decrypt {
        /// The secret.
        key: SecretKey,
        /// The version.
        version: u64,
        /// The stored row.
        row: Envelope,
    },
    /// Count, log and journal an integrity failure (best effort); answer
    /// [`Input::Recorded`].
    RecordIntegrityFailure(ReadRecord),
    /// The read is over.
    Done(Result<Vec<Revealed>, ReadError<E>>),
}

/// What a step found.
pub enum Input<E> {
    /// The rate admits the read, or the seconds to wait.
    Rate(Result<(), u64>),
    /// The caller may read secret values in this env.
    Authorized(EnvKey),
    /// The env's secrets: name and latest version.
    Listed(Vec<(String, VersionMeta)>),
    /// A secret's versions, ascending (`None`: no such secret).
    Versions(Option<Vec<VersionMeta>>),
    /// The stored row (`None`: there is none).
    Row(Option<Envelope>),
    /// The read's entry is durable at this seq.
    Journaled(u64),
    /// The plaintext, or the envelope did not authenticate.
    Decrypted(Result<Zeroizing<Vec<u8>>, ()>),
    /// The integrity failure was dealt with.
    Recorded,
    /// The step failed; the read ends with this error.
    Failed(E),
}

/// One secret read: its plaintext (zeroizing), its version and the seq of the entry
/// recording the read. Never `Debug`.
pub struct Revealed {
    /// The secret's name.
    pub name: String,
    /// The version read.
    pub meta: VersionMeta,
    /// The `secret.read` entry.
    pub seq: u64,
    /// The value.
    pub value: Zeroizing<Vec<u8>>,
}

/// Which secret or version is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// No such secret.
    Secret(String),
    /// The secret was deleted.
    Deleted(String),
    /// No such (readable) version.
    Version(String, u64),
    /// The version was destroyed.
    Destroyed(String, u64),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(n) => write!(f, "secret `{n}`"),
            Self::Deleted(n) => write!(f, "secret `{n}` (deleted)"),
            Self::Version(n, v) => write!(f, "version {v} of `{n}`"),
            Self::Destroyed(n, v) => write!(f, "version {v} of `{n}` (destroyed)"),
        }
    }
}

/// Why a read returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError<E> {
    /// Over a read rate; retry after this many seconds.
    RateLimited(Rate, u64),
    /// A step failed (a denial, the journal, …).
    Failed(E),
    /// The secret's name is not one.
    BadName,
    /// Not there (or no longer, after the read was journaled).
    NotFound(Missing),
    /// More live secrets than one secrets file holds.
    TooMany,
    /// The stored row failed its integrity check: `missing`, `digest` or `decrypt`.
    Integrity(&'static str),
    /// The driver answered a step that was not asked (a bug in the driver).
    OutOfOrder,
}

/// The live version a read asks for (`want`, or the latest), or what is missing.
pub fn select<'v>(
    name: &str,
    versions: Option<&'v [VersionMeta]>,
    want: Option<u64>,
) -> Result<&'v VersionMeta, Missing> {
    let versions = versions.ok_or_else(|| Missing::Secret(name.to_owned()))?;
    let latest = versions
        .last()
        .ok_or_else(|| Missing::Secret(name.to_owned()))?;
    if latest.state == VersionState::Tombstone {
        return Err(Missing::Deleted(name.to_owned()));
    }
    let want = want.unwrap_or(latest.version);
    let m = versions
        .iter()
        .find(|m| m.version == want)
        .ok_or_else(|| Missing::Version(name.to_owned(), want))?;
    match m.state {
        VersionState::Live => Ok(m),
        VersionState::Destroyed => Err(Missing::Destroyed(name.to_owned(), want)),
        VersionState::Tombstone => Err(Missing::Version(name.to_owned(), want)),
    }
}

enum Target {
    One { name: String, version: Option<u64> },
    Env,
}

enum State {
    New,
    NodeRate,
    OrgRate,
    Authorizing,
    Listing,
    LookingUp(SecretKey),
    Fetching(SecretKey, VersionMeta),
    Journaling(SecretKey, VersionMeta, Option<Envelope>),
    Rechecking(SecretKey, VersionMeta, Option<Envelope>, u64),
    Decrypting(SecretKey, VersionMeta, u64),
    RecordingIntegrityFailure(&'static str),
    Over,
}

/// The audited read of one secret or of a whole env. See the module documentation.
pub struct AuditedRead {
    state: State,
    node_caller: bool,
    target: Target,
    env: Option<EnvKey>,
    queue: VecDeque<String>,
    revealed: Vec<Revealed>,
}

impl AuditedRead {
    /// Reads `name` (`version`, or the latest). `node_caller`: the caller is a node (its
    /// node rate is checked first).
    pub fn one(name: impl Into<String>, version: Option<u64>, node_caller: bool) -> Self {
        Self::new(
            Target::One {
                name: name.into(),
                version,
            },
            node_caller,
        )
    }

    /// Reads the latest version of every live secret of the env the caller is authorized
    /// in, for one secrets file.
    pub fn env(node_caller: bool) -> Self {
        Self::new(Target::Env, node_caller)
    }

    fn new(target: Target, node_caller: bool) -> Self {
        Self {
            state: State::New,
            node_caller,
            target,
            env: None,
            queue: VecDeque::new(),
            revealed: Vec::new(),
        }
    }

    /// The first step.
    pub fn start<E>(&mut self) -> Next<E> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::New if self.node_caller => {
                self.state = State::NodeRate;
                Next::CheckRate(Rate::Node)
            }
            State::New => {
                self.state = State::OrgRate;
                Next::CheckRate(Rate::Org)
            }
            _ => Next::Done(Err(ReadError::OutOfOrder)),
        }
    }

    /// The next step, from what the last one found.
    pub fn advance<E>(&mut self, input: Input<E>) -> Next<E> {
        let state = std::mem::replace(&mut self.state, State::Over);
        match (state, input) {
            // A failed integrity record does not hide the integrity failure.
            (State::RecordingIntegrityFailure(why), Input::Recorded | Input::Failed(_)) => {
                self.fail(ReadError::Integrity(why))
            }
            (State::New | State::Over, _) => self.fail(ReadError::OutOfOrder),
            (_, Input::Failed(e)) => self.fail(ReadError::Failed(e)),
            (State::NodeRate, Input::Rate(r)) => match r {
                Err(secs) => self.fail(ReadError::RateLimited(Rate::Node, secs)),
                Ok(()) => {
                    self.state = State::OrgRate;
                    Next::CheckRate(Rate::Org)
                }
            },
            (State::OrgRate, Input::Rate(r)) => match r {
                Err(secs) => self.fail(ReadError::RateLimited(Rate::Org, secs)),
                Ok(()) => {
                    self.state = State::Authorizing;
                    Next::Authorize
                }
            },
            (State::Authorizing, Input::Authorized(env)) => self.authorized(env),
            (State::Listing, Input::Listed(listed)) => {
                let names: VecDeque<String> = listed
                    .into_iter()
                    .filter(|(_, m)| m.state == VersionState::Live)
                    .map(|(n, _)| n)
                    .collect();
                if names.len() > crate::file::MAX_KEYS {
                    return self.fail(ReadError::TooMany);
                }
                self.queue = names;
                self.next_secret()
            }
            (State::LookingUp(key), Input::Versions(versions)) => {
                let want = match &self.target {
                    Target::One { version, .. } => *version,
                    Target::Env => None,
                };
                match select(&key.name, versions.as_deref(), want) {
                    Err(m) => self.fail(ReadError::NotFound(m)),
                    Ok(meta) => {
                        let meta = meta.clone();
                        let version = meta.version;
                        self.state = State::Fetching(key.clone(), meta);
                        Next::Fetch { key, version }
                    }
                }
            }
            (State::Fetching(key, meta), Input::Row(row)) => {
                let record = ReadRecord {
                    action: "secret.read",
                    outcome: Outcome::Ok,
                    key: key.clone(),
                    version: meta.version,
                    kek_kid: meta.kek_kid.clone(),
                    why: None,
                };
                self.state = State::Journaling(key, meta, row);
                Next::Journal(record)
            }
            (State::Journaling(key, meta, row), Input::Journaled(seq)) => {
                self.state = State::Rechecking(key.clone(), meta, row, seq);
                Next::Recheck(key)
            }
            (State::Rechecking(key, meta, row, seq), Input::Versions(versions)) => {
                let still = select(&key.name, versions.as_deref(), Some(meta.version))
                    .is_ok_and(|m| m.digest == meta.digest && m.state == VersionState::Live);
                if !still {
                    let missing = Missing::Version(key.name.clone(), meta.version);
                    return self.fail(ReadError::NotFound(missing));
                }
                match row {
                    None => self.integrity_failure(key, &meta, "missing"),
                    Some(row) if meta.digest.as_deref() != Some(digest(&row).as_str()) => {
                        self.integrity_failure(key, &meta, "digest")
                    }
                    Some(row) => {
                        let version = meta.version;
                        self.state = State::Decrypting(key.clone(), meta, seq);
                        Next::Decrypt { key, version, row }
                    }
                }
            }
            (State::Decrypting(key, meta, seq), Input::Decrypted(opened)) => match opened {
                Err(()) => self.integrity_failure(key, &meta, "decrypt"),
                Ok(value) => {
                    self.revealed.push(Revealed {
                        name: key.name,
                        meta,
                        seq,
                        value,
                    });
                    self.next_secret()
                }
            },
            _ => self.fail(ReadError::OutOfOrder),
        }
    }

    fn fail<E>(&mut self, e: ReadError<E>) -> Next<E> {
        self.state = State::Over;
        self.revealed.clear();
        self.queue.clear();
        Next::Done(Err(e))
    }

    fn authorized<E>(&mut self, env: EnvKey) -> Next<E> {
        match &self.target {
            Target::One { name, .. } => {
                if !crate::name::is_valid(name) {
                    return self.fail(ReadError::BadName);
                }
                self.queue.push_back(name.clone());
                self.env = Some(env);
                self.next_secret()
            }
            Target::Env => {
                self.state = State::Listing;
                self.env = Some(env.clone());
                Next::List {
                    env,
                    limit: crate::file::MAX_KEYS + 1,
                }
            }
        }
    }

    fn next_secret<E>(&mut self) -> Next<E> {
        let Some(env) = &self.env else {
            return self.fail(ReadError::OutOfOrder);
        };
        match self.queue.pop_front() {
            Some(name) => {
                let key = env.secret(&name);
                self.state = State::LookingUp(key.clone());
                Next::Lookup(key)
            }
            None => {
                self.state = State::Over;
                Next::Done(Ok(std::mem::take(&mut self.revealed)))
            }
        }
    }

    fn integrity_failure<E>(
        &mut self,
        key: SecretKey,
        meta: &VersionMeta,
        why: &'static str,
    ) -> Next<E> {
        self.revealed.clear();
        self.queue.clear();
        self.state = State::RecordingIntegrityFailure(why);
        Next::RecordIntegrityFailure(ReadRecord {
            action: "secret.integrity_fail",
            outcome: Outcome::Error,
            key,
            version: meta.version,
            kek_kid: meta.kek_kid.clone(),
            why: Some(why),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env() -> EnvKey {
        EnvKey {
            org: "acme".into(),
            app: "web".into(),
            env: "prod".into(),
        }
    }

    fn row(tag: u8) -> Envelope {
        Envelope {
            kek_kid: "kek-1".into(),
            wrapped_dek: Some(vec![tag; 8]),
            ciphertext: vec![tag; 16],
        }
    }

    fn meta(version: u64, state: VersionState, row: &Envelope) -> VersionMeta {
        VersionMeta {
            version,
            state,
            digest: (state == VersionState::Live).then(|| digest(row)),
            kek_kid: Some(row.kek_kid.clone()),
            size: Some(3),
            seq: version,
            ts: 0,
        }
    }

    /// What kind of step a [`Next`] is (for traces).
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Step {
        NodeRate,
        OrgRate,
        Authorize,
        List,
        Lookup,
        Fetch,
        Journal,
        Recheck,
        Decrypt,
        Record,
        Done,
    }

    fn step<E>(n: &Next<E>) -> Step {
        match n {
            Next::CheckRate(Rate::Node) => Step::NodeRate,
            Next::CheckRate(Rate::Org) => Step::OrgRate,
            Next::Authorize => Step::Authorize,
            Next::List { .. } => Step::List,
            Next::Lookup(_) => Step::Lookup,
            Next::Fetch { .. } => Step::Fetch,
            Next::Journal(_) => Step::Journal,
            Next::Recheck(_) => Step::Recheck,
            Next::Decrypt { .. } => Step::Decrypt,
            Next::RecordIntegrityFailure(_) => Step::Record,
            Next::Done(_) => Step::Done,
        }
    }

    /// A happy world: every step succeeds; `live` is the live row of every secret.
    fn happy(n: &Next<()>, live: &Envelope) -> Input<()> {
        match n {
            Next::CheckRate(_) => Input::Rate(Ok(())),
            Next::Authorize => Input::Authorized(env()),
            Next::List { .. } => Input::Listed(vec![
                ("a".into(), meta(1, VersionState::Live, live)),
                ("b".into(), meta(2, VersionState::Tombstone, live)),
                ("c".into(), meta(1, VersionState::Live, live)),
            ]),
            Next::Lookup(_) | Next::Recheck(_) => {
                Input::Versions(Some(vec![meta(1, VersionState::Live, live)]))
            }
            Next::Fetch { .. } => Input::Row(Some(live.clone())),
            Next::Journal(_) => Input::Journaled(7),
            Next::Decrypt { .. } => Input::Decrypted(Ok(Zeroizing::new(b"v".to_vec()))),
            Next::RecordIntegrityFailure(_) => Input::Recorded,
            Next::Done(_) => Input::Recorded,
        }
    }

    /// Runs `m` against `world` (which may override the happy answer); the trace and the end.
    fn run(
        mut m: AuditedRead,
        mut world: impl FnMut(&Next<()>, usize) -> Option<Input<()>>,
    ) -> (Vec<Step>, Result<Vec<Revealed>, ReadError<()>>) {
        let live = row(1);
        let mut trace = Vec::new();
        let mut next = m.start();
        loop {
            trace.push(step(&next));
            if let Next::Done(r) = next {
                return (trace, r);
            }
            let i = trace.len() - 1;
            let input = world(&next, i).unwrap_or_else(|| happy(&next, &live));
            next = m.advance(input);
            assert!(trace.len() < 1000, "the read does not end");
        }
    }

    #[test]
    fn one_read_takes_the_design_order() {
        let (trace, r) = run(AuditedRead::one("db-url", None, true), |_, _| None);
        use Step::*;
        assert_eq!(
            trace,
            [
                NodeRate, OrgRate, Authorize, Lookup, Fetch, Journal, Recheck, Decrypt, Done
            ]
        );
        let r = r.unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name, "db-url");
        assert_eq!(r[0].seq, 7);
        assert_eq!(&**r[0].value, b"v");
    }

    #[test]
    fn a_principal_skips_the_node_rate() {
        let (trace, _) = run(AuditedRead::one("db-url", None, false), |_, _| None);
        assert_eq!(trace[0], Step::OrgRate);
        assert!(!trace.contains(&Step::NodeRate));
    }

    #[test]
    fn rate_limits_come_before_authorization() {
        let (trace, r) = run(AuditedRead::one("x", None, true), |n, _| {
            matches!(n, Next::CheckRate(Rate::Node)).then_some(Input::Rate(Err(3)))
        });
        assert_eq!(trace, [Step::NodeRate, Step::Done]);
        assert!(matches!(r, Err(ReadError::RateLimited(Rate::Node, 3))));
        let (trace, r) = run(AuditedRead::one("x", None, true), |n, _| {
            matches!(n, Next::CheckRate(Rate::Org)).then_some(Input::Rate(Err(1)))
        });
        assert_eq!(trace, [Step::NodeRate, Step::OrgRate, Step::Done]);
        assert!(matches!(r, Err(ReadError::RateLimited(Rate::Org, 1))));
    }

    #[test]
    fn a_denial_ends_before_the_name_is_judged() {
        let (trace, r) = run(AuditedRead::one("NOT A NAME", None, false), |n, _| {
            matches!(n, Next::Authorize).then_some(Input::Failed(()))
        });
        assert_eq!(trace.last(), Some(&Step::Done));
        assert!(matches!(r, Err(ReadError::Failed(()))));
        let (trace, r) = run(AuditedRead::one("NOT A NAME", None, false), |_, _| None);
        assert_eq!(trace, [Step::OrgRate, Step::Authorize, Step::Done]);
        assert!(matches!(r, Err(ReadError::BadName)));
    }

    #[test]
    fn a_journal_failure_returns_nothing_and_never_decrypts() {
        let (trace, r) = run(AuditedRead::one("x", None, false), |n, _| {
            matches!(n, Next::Journal(_)).then_some(Input::Failed(()))
        });
        assert_eq!(trace.last(), Some(&Step::Done));
        assert!(!trace.contains(&Step::Decrypt));
        assert!(matches!(r, Err(ReadError::Failed(()))));
    }

    #[test]
    fn a_destroy_seen_at_the_recheck_refuses() {
        let live = row(1);
        let (trace, r) = run(AuditedRead::one("x", None, false), |n, _| {
            matches!(n, Next::Recheck(_))
                .then(|| Input::Versions(Some(vec![meta(1, VersionState::Destroyed, &live)])))
        });
        assert!(!trace.contains(&Step::Decrypt));
        assert_eq!(
            r.err(),
            Some(ReadError::NotFound(Missing::Version("x".into(), 1)))
        );
    }

    #[test]
    fn a_swapped_row_is_an_integrity_failure_and_is_recorded() {
        let (trace, r) = run(AuditedRead::one("x", None, false), |n, _| {
            matches!(n, Next::Fetch { .. }).then(|| Input::Row(Some(row(2))))
        });
        assert_eq!(&trace[trace.len() - 2..], [Step::Record, Step::Done]);
        assert!(!trace.contains(&Step::Decrypt));
        assert_eq!(r.err(), Some(ReadError::Integrity("digest")));
        let (_, r) = run(AuditedRead::one("x", None, false), |n, _| {
            matches!(n, Next::Fetch { .. }).then_some(Input::Row(None))
        });
        assert_eq!(r.err(), Some(ReadError::Integrity("missing")));
        let (_, r) = run(AuditedRead::one("x", None, false), |n, _| {
            matches!(n, Next::Decrypt { .. }).then_some(Input::Decrypted(Err(())))
        });
        assert_eq!(r.err(), Some(ReadError::Integrity("decrypt")));
    }

    #[test]
    fn the_read_record_is_the_journaled_entry() {
        let mut m = AuditedRead::one("x", Some(1), false);
        let mut next: Next<()> = m.start();
        let live = row(1);
        loop {
            if let Next::Journal(rec) = &next {
                assert_eq!(rec.action, "secret.read");
                assert_eq!(rec.outcome, Outcome::Ok);
                assert_eq!(rec.version, 1);
                let d = rec.draft("principal:p", Some("req-1")).unwrap();
                let _ = d;
                break;
            }
            next = m.advance(happy(&next, &live));
        }
    }

    #[test]
    fn missing_versions_are_named_as_before() {
        let live = row(1);
        let vs = vec![
            meta(1, VersionState::Destroyed, &live),
            meta(2, VersionState::Live, &live),
        ];
        assert_eq!(select("x", None, None), Err(Missing::Secret("x".into())));
        assert_eq!(
            select("x", Some(&[]), None),
            Err(Missing::Secret("x".into()))
        );
        assert_eq!(select("x", Some(&vs), None).map(|m| m.version), Ok(2));
        assert_eq!(
            select("x", Some(&vs), Some(1)),
            Err(Missing::Destroyed("x".into(), 1))
        );
        assert_eq!(
            select("x", Some(&vs), Some(9)),
            Err(Missing::Version("x".into(), 9))
        );
        let deleted = vec![
            meta(1, VersionState::Live, &live),
            meta(2, VersionState::Tombstone, &live),
        ];
        assert_eq!(
            select("x", Some(&deleted), Some(1)),
            Err(Missing::Deleted("x".into()))
        );
        assert_eq!(
            Missing::Deleted("x".into()).to_string(),
            "secret `x` (deleted)"
        );
        assert_eq!(
            Missing::Destroyed("x".into(), 1).to_string(),
            "version 1 of `x` (destroyed)"
        );
    }

    #[test]
    fn an_env_read_reads_each_live_secret_once() {
        let (trace, r) = run(AuditedRead::env(true), |_, _| None);
        use Step::*;
        assert_eq!(
            trace,
            [
                NodeRate, OrgRate, Authorize, List, Lookup, Fetch, Journal, Recheck, Decrypt,
                Lookup, Fetch, Journal, Recheck, Decrypt, Done
            ]
        );
        let names: Vec<String> = r.unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn an_env_over_the_file_limit_is_refused_before_any_read() {
        let live = row(1);
        let (trace, r) = run(AuditedRead::env(true), |n, _| {
            matches!(n, Next::List { .. }).then(|| {
                Input::Listed(
                    (0..=crate::file::MAX_KEYS)
                        .map(|i| (format!("s{i}"), meta(1, VersionState::Live, &live)))
                        .collect(),
                )
            })
        });
        assert!(!trace.contains(&Step::Journal));
        assert_eq!(r.err(), Some(ReadError::TooMany));
    }

    #[test]
    fn inputs_out_of_order_end_the_read() {
        let mut m = AuditedRead::one("x", None, false);
        let _: Next<()> = m.start();
        // Asked for the org rate, answered with a decrypted value.
        let n = m.advance::<()>(Input::Decrypted(Ok(Zeroizing::new(b"v".to_vec()))));
        assert!(matches!(n, Next::Done(Err(ReadError::OutOfOrder))));
        // Over is over.
        let n = m.advance::<()>(Input::Rate(Ok(())));
        assert!(matches!(n, Next::Done(Err(ReadError::OutOfOrder))));
        // A second start is refused.
        assert!(matches!(
            m.start::<()>(),
            Next::Done(Err(ReadError::OutOfOrder))
        ));
        // Skipping the journal: a row answered with a seq.
        let mut m = AuditedRead::one("x", None, false);
        let live = row(1);
        let mut next: Next<()> = m.start();
        while !matches!(next, Next::Fetch { .. }) {
            next = m.advance(happy(&next, &live));
        }
        let _ = m.advance::<()>(Input::Row(Some(live.clone())));
        let n = m.advance::<()>(Input::Decrypted(Ok(Zeroizing::new(b"v".to_vec()))));
        assert!(matches!(n, Next::Done(Err(ReadError::OutOfOrder))));
    }

    /// One answer a random world may give to a step.
    #[derive(Debug, Clone)]
    enum Pick {
        Happy,
        Fail,
        Limited,
        Destroyed,
        Deleted,
        Swapped,
        NoRow,
        BadTag,
        Garbage,
    }

    fn pick() -> impl Strategy<Value = Pick> {
        prop_oneof![
            6 => Just(Pick::Happy),
            1 => Just(Pick::Fail),
            1 => Just(Pick::Limited),
            1 => Just(Pick::Destroyed),
            1 => Just(Pick::Deleted),
            1 => Just(Pick::Swapped),
            1 => Just(Pick::NoRow),
            1 => Just(Pick::BadTag),
            1 => Just(Pick::Garbage),
        ]
    }

    fn answer(n: &Next<()>, p: &Pick, live: &Envelope) -> Input<()> {
        match p {
            Pick::Happy => happy(n, live),
            Pick::Fail => Input::Failed(()),
            Pick::Limited => Input::Rate(Err(2)),
            Pick::Destroyed => Input::Versions(Some(vec![meta(1, VersionState::Destroyed, live)])),
            Pick::Deleted => Input::Versions(Some(vec![
                meta(1, VersionState::Live, live),
                meta(2, VersionState::Tombstone, live),
            ])),
            Pick::Swapped => Input::Row(Some(row(9))),
            Pick::NoRow => Input::Row(None),
            Pick::BadTag => Input::Decrypted(Err(())),
            // An answer to a step that was not asked.
            Pick::Garbage => Input::Decrypted(Ok(Zeroizing::new(b"stolen".to_vec()))),
        }
    }

    proptest! {
        #[test]
        fn whatever_the_world_answers_the_order_holds(
            env_read in any::<bool>(),
            node in any::<bool>(),
            picks in proptest::collection::vec(pick(), 0..64),
        ) {
            let live = row(1);
            let mut m = if env_read {
                AuditedRead::env(node)
            } else {
                AuditedRead::one("x", None, node)
            };
            let mut next: Next<()> = m.start();
            // (step, whether its answer was a success as the machine reads it)
            let mut trace: Vec<(Step, Pick)> = Vec::new();
            let mut i = 0usize;
            let end = loop {
                let s = step(&next);
                if let Next::Done(r) = next {
                    break r;
                }
                let p = picks.get(i).cloned().unwrap_or(Pick::Happy);
                i += 1;
                let input = answer(&next, &p, &live);
                trace.push((s, p));
                next = m.advance(input);
                prop_assert!(trace.len() < 10_000);
            };
            let steps: Vec<Step> = trace.iter().map(|(s, _)| s.clone()).collect();
            // The gate comes first, in order, once.
            let gate: Vec<Step> = if node {
                vec![Step::NodeRate, Step::OrgRate, Step::Authorize]
            } else {
                vec![Step::OrgRate, Step::Authorize]
            };
            for (k, s) in steps.iter().enumerate() {
                if let Some(g) = gate.get(k) {
                    prop_assert_eq!(s, g);
                }
            }
            // Every Decrypt follows a Recheck, which follows a Journal that succeeded.
            for (k, (s, _)) in trace.iter().enumerate() {
                if *s == Step::Decrypt {
                    prop_assert!(k >= 2);
                    prop_assert_eq!(&trace[k - 1].0, &Step::Recheck);
                    prop_assert_eq!(&trace[k - 2].0, &Step::Journal);
                    prop_assert!(matches!(trace[k - 2].1, Pick::Happy));
                }
                // A journal failure never leads to Decrypt: the read ends at once.
                if *s == Step::Journal && !matches!(trace[k].1, Pick::Happy) {
                    prop_assert_eq!(k + 1, trace.len());
                }
                // A destroy (or delete) seen at the recheck refuses.
                if *s == Step::Recheck && matches!(trace[k].1, Pick::Destroyed | Pick::Deleted) {
                    prop_assert_eq!(k + 1, trace.len());
                }
            }
            if let Ok(values) = end {
                    // Every value returned was journaled (one successful journal and one
                    // successful decrypt each), and nothing but decrypted values leaves.
                    let journaled = trace
                        .iter()
                        .filter(|(s, p)| *s == Step::Journal && matches!(p, Pick::Happy))
                        .count();
                    let opened = trace
                        .iter()
                        .filter(|(s, p)| {
                            *s == Step::Decrypt && matches!(p, Pick::Happy | Pick::Garbage)
                        })
                        .count();
                    prop_assert_eq!(values.len(), journaled);
                    prop_assert_eq!(values.len(), opened);
            }
        }
    }
}
