//! The in-memory journal for amnesia mode and tests.

use std::sync::{Arc, RwLock};

use bulwark_ledger::journal::{
    Journal, JournalRead, StoreError, StoredCheckpoint, StoredEntry, StoredSnapshot,
};

/// A journal held in memory; lost at exit.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    entries: Arc<RwLock<Vec<StoredEntry>>>,
    checkpoints: Vec<StoredCheckpoint>,
    snapshot: Option<StoredSnapshot>,
}

struct MemoryReader(Arc<RwLock<Vec<StoredEntry>>>);

fn read_range(entries: &[StoredEntry], from: u64, to: u64) -> Vec<StoredEntry> {
    let to = to.min(entries.len() as u64);
    let (Ok(from), Ok(to)) = (usize::try_from(from), usize::try_from(to)) else {
        return Vec::new();
    };
    entries.get(from..to).map(<[_]>::to_vec).unwrap_or_default()
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("memory journal lock poisoned".into())
}

impl JournalRead for MemoryReader {
    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        Ok(read_range(&self.0.read().map_err(poisoned)?, from, to))
    }
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The shared append rule: idempotent for identical bytes, a conflict for different ones
/// or for a gap. Returns how many of `entries` are new.
pub(crate) fn check_append(
    size: u64,
    first: u64,
    entries: &[StoredEntry],
    existing: impl Fn(u64) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<usize, StoreError> {
    if first > size {
        return Err(StoreError::Conflict {
            seq: first,
            why: "append beyond the end of the journal",
        });
    }
    let mut new_from = 0usize;
    for (i, e) in entries.iter().enumerate() {
        let seq = first + i as u64;
        if e.seq != seq {
            return Err(StoreError::Conflict {
                seq,
                why: "entry seq does not match its position",
            });
        }
        if seq < size {
            match existing(seq)? {
                Some(body) if body == e.body => new_from = i + 1,
                _ => {
                    return Err(StoreError::Conflict {
                        seq,
                        why: "a different entry is already stored at this seq",
                    });
                }
            }
        }
    }
    Ok(entries.len() - new_from)
}

impl Journal for MemoryJournal {
    fn reader(&self) -> Result<Box<dyn JournalRead>, StoreError> {
        Ok(Box::new(MemoryReader(self.entries.clone())))
    }

    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.entries.read().map_err(poisoned)?.len() as u64)
    }

    fn append(&mut self, first: u64, entries: &[StoredEntry]) -> Result<(), StoreError> {
        let mut stored = self.entries.write().map_err(poisoned)?;
        let new = check_append(stored.len() as u64, first, entries, |seq| {
            Ok(usize::try_from(seq)
                .ok()
                .and_then(|i| stored.get(i))
                .map(|e| e.body.clone()))
        })?;
        let skip = entries.len() - new;
        stored.extend(entries.iter().skip(skip).cloned());
        Ok(())
    }

    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        Ok(read_range(
            &self.entries.read().map_err(poisoned)?,
            from,
            to,
        ))
    }

    fn put_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        if self.checkpoints.last().is_some_and(|l| l.size == cp.size) {
            return Ok(());
        }
        self.checkpoints.push(cp.clone());
        Ok(())
    }

    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        Ok(self.checkpoints.clone())
    }

    fn put_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<(), StoreError> {
        self.snapshot = Some(snapshot.clone());
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        Ok(self.snapshot.clone())
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self.checkpoints.last().cloned())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bulwark_ledger::merkle::leaf_hash;

    pub fn entry(seq: u64, body: &str) -> StoredEntry {
        StoredEntry {
            seq,
            body: body.as_bytes().to_vec(),
            leaf_hash: leaf_hash(body.as_bytes()),
        }
    }

    /// The contract every store must keep.
    pub fn journal_contract(j: &mut dyn Journal) {
        assert_eq!(j.size().unwrap(), 0);
        j.append(0, &[entry(0, "a"), entry(1, "b")]).unwrap();
        assert_eq!(j.size().unwrap(), 2);
        // Idempotent retry of the same batch, and of an overlapping one.
        j.append(0, &[entry(0, "a"), entry(1, "b")]).unwrap();
        j.append(1, &[entry(1, "b"), entry(2, "c")]).unwrap();
        assert_eq!(j.size().unwrap(), 3);
        // Different bytes at a used seq, a gap, a wrong seq: conflicts, nothing written.
        assert!(matches!(
            j.append(2, &[entry(2, "X"), entry(3, "d")]),
            Err(StoreError::Conflict { seq: 2, .. })
        ));
        assert!(matches!(
            j.append(5, &[entry(5, "e")]),
            Err(StoreError::Conflict { .. })
        ));
        assert!(j.append(3, &[entry(4, "e")]).is_err());
        assert_eq!(j.size().unwrap(), 3);
        let got = j.read(1, 10).unwrap();
        assert_eq!(got, vec![entry(1, "b"), entry(2, "c")]);
        let reader = j.reader().unwrap();
        assert_eq!(reader.read(0, 10).unwrap().len(), 3);
        j.append(3, &[entry(3, "d")]).unwrap();
        assert_eq!(
            reader.read(3, 4).unwrap(),
            vec![entry(3, "d")],
            "reader sees new appends"
        );
        assert!(j.read(7, 9).unwrap().is_empty());

        assert!(j.latest_checkpoint().unwrap().is_none());
        for size in [1, 3] {
            j.put_checkpoint(&StoredCheckpoint {
                size,
                note: format!("note {size}"),
            })
            .unwrap();
        }
        assert_eq!(j.latest_checkpoint().unwrap().unwrap().size, 3);
        assert_eq!(j.size().unwrap(), 4);
        assert_eq!(j.checkpoints().unwrap().len(), 2);
        assert_eq!(
            j.leaf_hashes(1, 3).unwrap(),
            vec![entry(1, "b").leaf_hash, entry(2, "c").leaf_hash]
        );
        assert!(j.latest_snapshot().unwrap().is_none());
        let snap = StoredSnapshot {
            size: 2,
            body: b"{}".to_vec(),
            signature: vec![1; 64],
        };
        j.put_snapshot(&snap).unwrap();
        assert_eq!(j.latest_snapshot().unwrap(), Some(snap));
    }

    #[test]
    fn memory_journal_keeps_the_contract() {
        journal_contract(&mut MemoryJournal::new());
    }
}
