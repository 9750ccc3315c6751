//! The SQLite journal: one writer connection, WAL, `synchronous=FULL`; the journal table
//! refuses UPDATE and DELETE by trigger, and migrations only go forward.

use std::path::Path;

use bulwark_ledger::journal::{
    Journal, JournalRead, StoreError, StoredCheckpoint, StoredEntry, StoredSnapshot,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};

use crate::memory::check_append;

/// Forward-only migrations; index + 1 is the schema version. There are no down steps: the
/// journal is never rewritten.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE journal (
    seq       INTEGER PRIMARY KEY,
    body      BLOB    NOT NULL,
    leaf_hash BLOB    NOT NULL CHECK (length(leaf_hash) = 32)
) STRICT;
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TABLE checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT    NOT NULL
) STRICT;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
",
    r"
CREATE TABLE snapshots (
    size      INTEGER PRIMARY KEY,
    body      BLOB    NOT NULL,
    signature BLOB    NOT NULL
) STRICT;
",
];

/// A journal in a SQLite database file.
pub struct SqliteJournal {
    conn: Connection,
    path: std::path::PathBuf,
}

/// A read-only connection, behind a lock because a connection serves one caller at a time.
struct SqliteReader(std::sync::Mutex<SqliteJournal>);

impl JournalRead for SqliteReader {
    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError::Unavailable("reader lock poisoned".into()))?
            .read(from, to)
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteJournal {
    /// Opens (creating and migrating if needed) the journal at `path` for writing.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        let mut j = Self {
            conn,
            path: path.to_owned(),
        };
        j.migrate()?;
        Ok(j)
    }

    /// Opens an existing journal read-only (verification, mirrors, backups).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(unavailable)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT;",
        )
        .map_err(unavailable)?;
        let current: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(unavailable)?;
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version > current {
                tx.execute_batch(sql).map_err(unavailable)?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [version],
                )
                .map_err(unavailable)?;
            }
        }
        tx.commit().map_err(unavailable)
    }
}

/// Writes a consistent copy of the journal database at `src` to `dest` (which must not
/// exist; created 0600: it holds tenant metadata). Safe while a writer is running: SQLite's
/// online backup copies one snapshot.
pub fn backup_file(src: &Path, dest: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| StoreError::Unavailable(format!("cannot create `{}`: {e}", dest.display())))?;
    let conn =
        Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(unavailable)?;
    conn.backup(rusqlite::MAIN_DB, dest, None)
        .map_err(unavailable)
}

/// Rows per multi-row INSERT (3 parameters each, well under SQLite's parameter limit).
const INSERT_ROWS: usize = 64;

fn multi_insert_sql() -> String {
    let mut sql = String::from("INSERT INTO journal (seq, body, leaf_hash) VALUES ");
    for i in 0..INSERT_ROWS {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?)");
    }
    sql
}

fn size_of(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn
        .query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM journal", [], |r| {
            r.get(0)
        })
        .map_err(unavailable)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt("negative seq".into()))
}

fn body_at(conn: &Connection, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
    conn.query_row(
        "SELECT body FROM journal WHERE seq = ?1",
        [to_i64(seq)?],
        |r| r.get(0),
    )
    .optional()
    .map_err(unavailable)
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Conflict {
        seq: v,
        why: "seq out of range",
    })
}

impl Journal for SqliteJournal {
    fn reader(&self) -> Result<Box<dyn JournalRead>, StoreError> {
        Ok(Box::new(SqliteReader(std::sync::Mutex::new(
            Self::open_read_only(&self.path)?,
        ))))
    }

    fn size(&self) -> Result<u64, StoreError> {
        size_of(&self.conn)
    }

    fn append(&mut self, first: u64, entries: &[StoredEntry]) -> Result<(), StoreError> {
        // The size check and the inserts share one transaction.
        let tx = self.conn.transaction().map_err(unavailable)?;
        let size = size_of(&tx)?;
        let new = check_append(size, first, entries, |seq| body_at(&tx, seq))?;
        let fresh = entries.get(entries.len() - new..).unwrap_or_default();
        // Multi-row INSERTs: one statement step per 64 rows instead of per row.
        let mut chunks = fresh.chunks_exact(INSERT_ROWS);
        {
            let mut many = tx
                .prepare_cached(&multi_insert_sql())
                .map_err(unavailable)?;
            for chunk in chunks.by_ref() {
                let seqs: Vec<i64> = chunk
                    .iter()
                    .map(|e| to_i64(e.seq))
                    .collect::<Result<_, _>>()?;
                let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(3 * INSERT_ROWS);
                for (e, seq) in chunk.iter().zip(&seqs) {
                    values.push(seq);
                    values.push(&e.body);
                    values.push(&e.leaf_hash);
                }
                many.execute(values.as_slice()).map_err(unavailable)?;
            }
        }
        {
            let mut one = tx
                .prepare_cached("INSERT INTO journal (seq, body, leaf_hash) VALUES (?1, ?2, ?3)")
                .map_err(unavailable)?;
            for e in chunks.remainder() {
                one.execute(params![to_i64(e.seq)?, e.body, e.leaf_hash.as_slice()])
                    .map_err(unavailable)?;
            }
        }
        tx.commit().map_err(unavailable)
    }

    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, body, leaf_hash FROM journal WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
            )
            .map_err(unavailable)?;
        let to = to.min(i64::MAX as u64);
        let rows = stmt
            .query_map([to_i64(from)?, to_i64(to)?], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body, hash) = row.map_err(unavailable)?;
            let leaf_hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
                StoreError::Corrupt(format!("leaf hash of seq {seq} is not 32 bytes"))
            })?;
            let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative seq".into()))?;
            out.push(StoredEntry {
                seq,
                body,
                leaf_hash,
            });
        }
        Ok(out)
    }

    fn put_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO checkpoints (size, note) VALUES (?1, ?2) ON CONFLICT (size) DO NOTHING",
                params![to_i64(cp.size)?, cp.note],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    fn leaf_hashes(&self, from: u64, to: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, leaf_hash FROM journal WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
            )
            .map_err(unavailable)?;
        let to = to.min(i64::MAX as u64);
        let rows = stmt
            .query_map([to_i64(from)?, to_i64(to)?], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for (i, row) in rows.enumerate() {
            let (seq, hash) = row.map_err(unavailable)?;
            if u64::try_from(seq).ok() != Some(from + i as u64) {
                return Err(StoreError::Corrupt(format!(
                    "gap in the journal before seq {seq}"
                )));
            }
            out.push(<[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
                StoreError::Corrupt(format!("leaf hash of seq {seq} is not 32 bytes"))
            })?);
        }
        Ok(out)
    }

    fn put_snapshot(&mut self, s: &StoredSnapshot) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO snapshots (size, body, signature) VALUES (?1, ?2, ?3) ON CONFLICT (size) DO NOTHING",
                params![to_i64(s.size)?, s.body, s.signature],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        self.conn
            .query_row(
                "SELECT size, body, signature FROM snapshots ORDER BY size DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(unavailable)?
            .map(|(size, body, signature)| {
                Ok(StoredSnapshot {
                    size: u64::try_from(size)
                        .map_err(|_| StoreError::Corrupt("negative size".into()))?,
                    body,
                    signature,
                })
            })
            .transpose()
    }

    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size, note FROM checkpoints ORDER BY size")
            .map_err(unavailable)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for row in rows {
            let (size, note) = row.map_err(unavailable)?;
            out.push(StoredCheckpoint {
                size: u64::try_from(size)
                    .map_err(|_| StoreError::Corrupt("negative size".into()))?,
                note,
            });
        }
        Ok(out)
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.conn
            .query_row(
                "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(unavailable)?
            .map(|(size, note)| {
                Ok(StoredCheckpoint {
                    size: u64::try_from(size)
                        .map_err(|_| StoreError::Corrupt("negative size".into()))?,
                    note,
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::tests::{entry, journal_contract};

    #[test]
    fn sqlite_journal_keeps_the_contract_and_survives_reopen() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("journal.db");
        let mut j = SqliteJournal::open(&path).unwrap();
        journal_contract(&mut j);
        drop(j);
        let j = SqliteJournal::open(&path).unwrap();
        assert_eq!(j.size().unwrap(), 4);
        let ro = SqliteJournal::open_read_only(&path).unwrap();
        assert_eq!(ro.read(0, 3).unwrap()[2], entry(2, "c"));
    }

    #[test]
    fn triggers_refuse_update_and_delete() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("journal.db");
        let mut j = SqliteJournal::open(&path).unwrap();
        j.append(0, &[entry(0, "a")]).unwrap();
        let conn = Connection::open(&path).unwrap();
        let upd = conn.execute("UPDATE journal SET body = x'00' WHERE seq = 0", []);
        assert!(upd.unwrap_err().to_string().contains("append-only"));
        let del = conn.execute("DELETE FROM journal", []);
        assert!(del.unwrap_err().to_string().contains("append-only"));
        assert_eq!(j.read(0, 1).unwrap(), vec![entry(0, "a")]);
    }

    #[test]
    fn backup_copies_a_consistent_private_snapshot() {
        use std::os::unix::fs::PermissionsExt as _;
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("journal.db");
        let mut j = SqliteJournal::open(&path).unwrap();
        j.append(0, &[entry(0, "a"), entry(1, "b")]).unwrap();
        let dest = t.path().join("backup.db");
        backup_file(&path, &dest).unwrap();
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = SqliteJournal::open_read_only(&dest).unwrap();
        assert_eq!(b.read(0, 9).unwrap(), vec![entry(0, "a"), entry(1, "b")]);
        assert!(backup_file(&path, &dest).is_err(), "never overwrites");
    }

    #[test]
    fn wal_and_full_sync_are_in_force() {
        let t = tempfile::tempdir().unwrap();
        let j = SqliteJournal::open(&t.path().join("journal.db")).unwrap();
        let mode: String = j
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = j
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "FULL");
    }
}
