//! Full verification of a journal: every entry re-hashed and re-parsed, the tree rebuilt,
//! every checkpoint's signature checked and its root compared with the rebuilt tree.
//!
//! The result is a [`Report`]; tampering is a report with `ok: false` and the first
//! divergent sequence number, never a panic or an error.

use serde::Serialize;

use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::entry::Entry;
use crate::journal::StoredEntry;
use crate::merkle::{Hash, Tree, leaf_hash};

/// The outcome of a verification, printed as JSON by `bulwark audit verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether everything verified.
    pub ok: bool,
    /// Entries in the store.
    pub size: u64,
    /// Root of the rebuilt tree, hex.
    pub root: String,
    /// The largest checkpoint size that verified against the entries.
    pub verified_checkpoint_size: Option<u64>,
    /// The first sequence number where the store diverges from what the log committed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergent_seq: Option<u64>,
    /// The hash the log committed to there, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_hash: Option<String>,
    /// The hash found, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_hash: Option<String>,
    /// What diverged, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Hex of a hash.
pub fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash from 64 hex digits.
pub fn unhex(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(h)
}

/// Checks one entry at position `seq`: its recomputed leaf hash, and what is wrong with it.
fn check_entry(stored: &StoredEntry, seq: u64) -> (Hash, Option<Failure>) {
    let observed = leaf_hash(&stored.body);
    let failure = if stored.seq != seq {
        Some(Failure {
            seq,
            expected: None,
            observed: None,
            reason: format!("entry at position {seq} carries seq {}", stored.seq),
        })
    } else if observed != stored.leaf_hash {
        Some(Failure {
            seq,
            expected: Some(hex(&stored.leaf_hash)),
            observed: Some(hex(&observed)),
            reason: "entry body does not match the leaf hash recorded when it was appended".into(),
        })
    } else {
        match Entry::from_canonical(&stored.body) {
            Ok(e) if e.seq == seq => None,
            Ok(e) => Some(Failure {
                seq,
                expected: None,
                observed: None,
                reason: format!("entry at position {seq} says seq {}", e.seq),
            }),
            Err(e) => Some(Failure {
                seq,
                expected: None,
                observed: Some(hex(&observed)),
                reason: format!("entry is not a valid canonical entry: {e}"),
            }),
        }
    };
    (observed, failure)
}

/// Incremental verifier: feed entries in order, then checkpoints, then [`Verifier::finish`].
pub struct Verifier {
    tree: Tree,
    failure: Option<Failure>,
}

#[derive(Debug, Clone)]
struct Failure {
    seq: u64,
    expected: Option<String>,
    observed: Option<String>,
    reason: String,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// A verifier with no entries yet.
    pub fn new() -> Self {
        Self {
            tree: Tree::new(),
            failure: None,
        }
    }

    /// The tree rebuilt so far.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    fn fail(&mut self, f: Failure) {
        // Keep the earliest divergence.
        if self.failure.as_ref().is_none_or(|old| f.seq < old.seq) {
            self.failure = Some(f);
        }
    }

    /// Checks the next entry. The tree is rebuilt from the *recomputed* hashes, so a body
    /// rewritten together with its recorded hash still diverges from the checkpoints.
    pub fn entry(&mut self, stored: &StoredEntry) {
        let seq = self.tree.size();
        let (observed, failure) = check_entry(stored, seq);
        self.record(observed, failure);
    }

    /// Checks a run of consecutive entries, spreading the re-hashing and re-parsing over
    /// `threads` threads; the result is the same as calling [`Verifier::entry`] on each.
    pub fn entries(&mut self, stored: &[StoredEntry], threads: usize) {
        let first = self.tree.size();
        let per = stored.len().div_ceil(threads.max(1)).max(1);
        let results: Vec<Vec<(Hash, Option<Failure>)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = stored
                .chunks(per)
                .enumerate()
                .map(|(i, chunk)| {
                    let base = first + (i * per) as u64;
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .enumerate()
                            .map(|(j, e)| check_entry(e, base + j as u64))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut n = 0;
        for (observed, failure) in results.into_iter().flatten() {
            self.record(observed, failure);
            n += 1;
        }
        // A worker that died leaves entries unchecked: that is a failure, not a pass.
        if n != stored.len() {
            self.fail(Failure {
                seq: first + n as u64,
                expected: None,
                observed: None,
                reason: "verification worker failed".into(),
            });
        }
    }

    fn record(&mut self, observed: Hash, failure: Option<Failure>) {
        if let Some(f) = failure {
            self.fail(f);
        }
        self.tree.push(observed);
    }

    /// Checks signed checkpoints (any order). Returns the largest size that verified.
    pub fn checkpoints<'a>(
        &mut self,
        notes: impl IntoIterator<Item = &'a str>,
        verifier: &NoteVerifier,
        origin: Option<&str>,
    ) -> Option<u64> {
        let mut parsed: Vec<Checkpoint> = Vec::new();
        for note in notes {
            match verifier.verify(note) {
                Ok(cp) if origin.is_none_or(|o| o == cp.origin) => parsed.push(cp),
                Ok(cp) => self.fail(Failure {
                    seq: 0,
                    expected: None,
                    observed: None,
                    reason: format!("checkpoint origin `{}` is not this log's", cp.origin),
                }),
                Err(e) => self.fail(Failure {
                    seq: 0,
                    expected: None,
                    observed: None,
                    reason: format!("a checkpoint does not verify: {e}"),
                }),
            }
        }
        parsed.sort_by_key(|c| c.size);
        let size = self.tree.size();
        let mut good: Option<u64> = None;
        for cp in parsed {
            if cp.size > size {
                self.fail(Failure {
                    seq: size,
                    expected: Some(hex(&cp.root)),
                    observed: Some(hex(&self.tree.root())),
                    reason: format!(
                        "a checkpoint commits to {} entries but the store holds {size}: entries {size}.. are missing",
                        cp.size
                    ),
                });
                break;
            }
            let observed = self.tree.root_at(cp.size).ok();
            if observed == Some(cp.root) {
                good = Some(cp.size);
                continue;
            }
            // The divergence lies between the last good checkpoint and this one; an entry
            // already found to differ inside that range is the precise answer.
            let from = good.unwrap_or(0);
            if self
                .failure
                .as_ref()
                .is_some_and(|f| (from..cp.size).contains(&f.seq))
            {
                break;
            }
            let exact = cp.size - from == 1;
            self.fail(Failure {
                seq: from,
                expected: Some(hex(&cp.root)),
                observed: observed.map(|h| hex(&h)),
                reason: if exact {
                    format!(
                        "entry {from} differs from what checkpoint {} commits to",
                        cp.size
                    )
                } else {
                    format!(
                        "an entry in {from}..{} differs from what checkpoint {} commits to",
                        cp.size, cp.size
                    )
                },
            });
            break;
        }
        good
    }

    /// The report.
    pub fn finish(self, verified_checkpoint_size: Option<u64>) -> Report {
        let root = hex(&self.tree.root());
        let size = self.tree.size();
        match self.failure {
            None => Report {
                ok: true,
                size,
                root,
                verified_checkpoint_size,
                divergent_seq: None,
                expected_hash: None,
                observed_hash: None,
                reason: None,
            },
            Some(f) => Report {
                ok: false,
                size,
                root,
                verified_checkpoint_size,
                divergent_seq: Some(f.seq),
                expected_hash: f.expected,
                observed_hash: f.observed,
                reason: Some(f.reason),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::NoteSigner;
    use crate::entry::{Draft, Kind};
    use bulwark_crypto::SigningKey;

    fn stored(n: u64) -> StoredEntry {
        let body = Draft::new(Kind::State, "t", format!("r{n}"))
            .sequence(n, 1)
            .canonical()
            .unwrap();
        StoredEntry {
            seq: n,
            leaf_hash: leaf_hash(&body),
            body,
        }
    }

    fn log(n: u64) -> Vec<StoredEntry> {
        (0..n).map(stored).collect()
    }

    fn notes(entries: &[StoredEntry], key: &SigningKey, sizes: &[u64]) -> Vec<String> {
        let mut t = Tree::new();
        for e in entries {
            t.push(e.leaf_hash);
        }
        let s = NoteSigner::new("o", key).unwrap();
        sizes
            .iter()
            .map(|&size| {
                s.sign(&Checkpoint {
                    origin: "o".into(),
                    size,
                    root: t.root_at(size).unwrap(),
                })
            })
            .collect()
    }

    fn run(entries: &[StoredEntry], notes: &[String], key: &SigningKey) -> Report {
        let v = NoteVerifier::from_vkey(&NoteSigner::new("o", key).unwrap().vkey()).unwrap();
        let mut ver = Verifier::new();
        let (a, b) = entries.split_at(entries.len() / 3);
        for e in a {
            ver.entry(e);
        }
        ver.entries(b, 3);
        let good = ver.checkpoints(notes.iter().map(String::as_str), &v, Some("o"));
        ver.finish(good)
    }

    #[test]
    fn an_intact_log_verifies() {
        let key = SigningKey::generate().unwrap();
        let l = log(10);
        let r = run(&l, &notes(&l, &key, &[3, 10]), &key);
        assert!(r.ok, "{r:?}");
        assert_eq!(r.size, 10);
        assert_eq!(r.verified_checkpoint_size, Some(10));
    }

    #[test]
    fn a_rewritten_body_is_reported_at_its_seq() {
        let key = SigningKey::generate().unwrap();
        let l = log(10);
        let n = notes(&l, &key, &[10]);
        let mut bad = l.clone();
        bad[6].body = b"{}".to_vec();
        let r = run(&bad, &n, &key);
        assert!(!r.ok);
        assert_eq!(r.divergent_seq, Some(6));
        assert_eq!(r.expected_hash, Some(hex(&l[6].leaf_hash)));
    }

    #[test]
    fn a_rewrite_with_its_hash_is_pinned_between_dense_checkpoints() {
        let key = SigningKey::generate().unwrap();
        let l = log(10);
        let n = notes(&l, &key, &(1..=10).collect::<Vec<_>>());
        let mut bad = l.clone();
        let forged = Draft::new(Kind::State, "forged", "r4")
            .sequence(4, 1)
            .canonical()
            .unwrap();
        bad[4] = StoredEntry {
            seq: 4,
            leaf_hash: leaf_hash(&forged),
            body: forged,
        };
        let r = run(&bad, &n, &key);
        assert!(!r.ok);
        assert_eq!(r.divergent_seq, Some(4));
        assert_eq!(r.verified_checkpoint_size, Some(4));
    }

    #[test]
    fn deleted_tail_rows_are_reported_against_the_checkpoint() {
        let key = SigningKey::generate().unwrap();
        let l = log(10);
        let n = notes(&l, &key, &[10]);
        let r = run(&l[..7], &n, &key);
        assert!(!r.ok);
        assert_eq!(r.divergent_seq, Some(7));
        assert!(r.reason.unwrap().contains("missing"));
    }

    #[test]
    fn a_forged_checkpoint_fails() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let l = log(4);
        let r = run(&l, &notes(&l, &other, &[4]), &key);
        assert!(!r.ok);
    }
}
