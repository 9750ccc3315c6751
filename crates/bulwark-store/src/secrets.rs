//! Secret ciphertexts beside the journal (DESIGN.md §2): one row per secret version with
//! the KEK's key id, the wrapped DEK and the value's ciphertext. The journal holds each
//! version's metadata and the digest of its row; this table only holds bytes that are
//! useless without the KEK. Destroying a version sets its wrapped DEK and ciphertext to
//! NULL with `secure_delete` on and truncates the WAL, so the old bytes do not linger in
//! freed pages.

use std::path::Path;
use std::sync::Mutex;

use bulwark_ledger::journal::StoreError;
use rusqlite::{Connection, params};

/// One secret version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Org.
    pub org: String,
    /// App.
    pub app: String,
    /// Env.
    pub env: String,
    /// Secret name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// The wrapping KEK's key id.
    pub kek_kid: String,
    /// The wrapped DEK (`None` once destroyed).
    pub wrapped_dek: Option<Vec<u8>>,
    /// The value's ciphertext (`None` once destroyed).
    pub ciphertext: Option<Vec<u8>>,
}

/// Where secret rows are kept.
pub trait SecretBlobs: Send + Sync {
    /// Stores (or replaces, for a re-wrap) a row; durable when it returns.
    fn put(&self, row: &SecretRow) -> Result<(), StoreError>;
    /// Stores a new version's row; refuses to overwrite an existing one (a version number
    /// is never reused, even after an uncertain failure).
    fn put_new(&self, row: &SecretRow) -> Result<(), StoreError>;
    /// Every row.
    fn load_all(&self) -> Result<Vec<SecretRow>, StoreError>;
    /// Crypto-shreds a version: its wrapped DEK and ciphertext are erased.
    fn destroy(
        &self,
        org: &str,
        app: &str,
        env: &str,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError>;
}

/// Amnesia mode: the server's in-memory view is the only copy.
pub struct MemorySecrets;

impl SecretBlobs for MemorySecrets {
    fn put(&self, _: &SecretRow) -> Result<(), StoreError> {
        Ok(())
    }
    fn put_new(&self, _: &SecretRow) -> Result<(), StoreError> {
        Ok(())
    }
    fn load_all(&self) -> Result<Vec<SecretRow>, StoreError> {
        Ok(Vec::new())
    }
    fn destroy(&self, _: &str, _: &str, _: &str, _: &str, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Rows in their own SQLite file (`secrets.db`): WAL, `synchronous=FULL`, `secure_delete`.
pub struct SqliteSecrets {
    conn: Mutex<Connection>,
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS secret_versions (
    org         TEXT    NOT NULL,
    app         TEXT    NOT NULL,
    env         TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    kek_kid     TEXT    NOT NULL,
    wrapped_dek BLOB,
    ciphertext  BLOB,
    PRIMARY KEY (org, app, env, name, version)
) STRICT;
";

impl SqliteSecrets {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Unavailable("secrets store lock poisoned".into()))?;
        f(&conn).map_err(unavailable)
    }
}

impl SqliteSecrets {
    fn write(&self, r: &SecretRow, verb: &str) -> Result<(), StoreError> {
        let version = i64::try_from(r.version)
            .map_err(|_| StoreError::Unavailable("version out of range".into()))?;
        let sql = format!(
            "{verb} INTO secret_versions
             (org, app, env, name, version, kek_kid, wrapped_dek, ciphertext)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        );
        self.with(|c| {
            c.execute(
                &sql,
                params![
                    r.org,
                    r.app,
                    r.env,
                    r.name,
                    version,
                    r.kek_kid,
                    r.wrapped_dek,
                    r.ciphertext
                ],
            )
            .map(|_| ())
        })
    }
}

impl SecretBlobs for SqliteSecrets {
    fn put(&self, r: &SecretRow) -> Result<(), StoreError> {
        self.write(r, "INSERT OR REPLACE")
    }

    fn put_new(&self, r: &SecretRow) -> Result<(), StoreError> {
        self.write(r, "INSERT")
    }

    fn load_all(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT org, app, env, name, version, kek_kid, wrapped_dek, ciphertext
                 FROM secret_versions",
            )?;
            let rows = st.query_map([], |row| {
                Ok(SecretRow {
                    org: row.get(0)?,
                    app: row.get(1)?,
                    env: row.get(2)?,
                    name: row.get(3)?,
                    version: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    kek_kid: row.get(5)?,
                    wrapped_dek: row.get(6)?,
                    ciphertext: row.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    fn destroy(
        &self,
        org: &str,
        app: &str,
        env: &str,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let version = i64::try_from(version)
            .map_err(|_| StoreError::Unavailable("version out of range".into()))?;
        self.with(|c| {
            c.execute(
                "UPDATE secret_versions SET wrapped_dek = NULL, ciphertext = NULL
                 WHERE org = ?1 AND app = ?2 AND env = ?3 AND name = ?4 AND version = ?5",
                params![org, app, env, name, version],
            )?;
            // Move the change into the database file (secure_delete zeroes the freed
            // pages) and empty the WAL, which still holds the old page images. A busy
            // checkpoint would leave them there: that is an error, not a success.
            let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy != 0 {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("WAL checkpoint busy: the destroyed bytes are still in the WAL".into()),
                ));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: u64) -> SecretRow {
        SecretRow {
            org: "acme".into(),
            app: "web".into(),
            env: "prod".into(),
            name: "db".into(),
            version,
            kek_kid: "k1".into(),
            wrapped_dek: Some(vec![0xAA; 60]),
            ciphertext: Some(b"CIPHERTEXT-MARKER-0123456789".to_vec()),
        }
    }

    #[test]
    fn rows_persist_and_destroy_leaves_no_bytes_on_disk() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("secrets.db");
        let s = SqliteSecrets::open(&path).unwrap();
        s.put(&row(1)).unwrap();
        s.put(&row(2)).unwrap();
        drop(s);
        let s = SqliteSecrets::open(&path).unwrap();
        let mut all = s.load_all().unwrap();
        all.sort_by_key(|r| r.version);
        assert_eq!(all, vec![row(1), row(2)]);
        s.destroy("acme", "web", "prod", "db", 1).unwrap();
        let all = s.load_all().unwrap();
        let one = all.iter().find(|r| r.version == 1).unwrap();
        assert_eq!(
            (one.wrapped_dek.as_ref(), one.ciphertext.as_ref()),
            (None, None)
        );
        drop(s);
        // Version 2 still holds the marker; count its occurrences on disk: exactly one row.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(t.path().join("secrets.db-wal")).unwrap_or_default());
        let marker = b"CIPHERTEXT-MARKER";
        let hits = bytes.windows(marker.len()).filter(|w| w == marker).count();
        assert_eq!(
            hits, 1,
            "the destroyed version's bytes are gone from file and WAL"
        );
    }
}
