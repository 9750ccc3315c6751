//! `bulwark keys rotate-kek`: re-wraps every secret version's DEK under a new KEK, with
//! the server stopped.
//!
//! Resumable by construction. The new KEK is written to `kek.next.key` (0600) first; each
//! version's row is re-wrapped (the value's ciphertext is untouched), stored durably, and
//! a `secret.rewrap` entry journals its new digest and key id. A run killed at any point
//! leaves rows under the old KEK (re-wrapped next time), or under the new KEK with or
//! without their journal entry (a row under the new KEK whose digest the journal does not
//! know yet is checked to open under the new KEK, then journaled). Only when every live
//! row is under the new KEK is the new key journaled (`key.create`, retiring the old one),
//! written over `kek.key`, and `kek.next.key` removed: the old KEK is retired only when
//! nothing uses it. The server refuses to start while `kek.next.key` exists.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bulwark_crypto::{Kek, SigningKey};
use bulwark_directory::keys::{KeyCreated, KeyView};
use bulwark_fs::layout::{
    INSTANCE_ID, JOURNAL_DB, KEK_FILE, KEK_NEXT_FILE, LEDGER_KEY, SECRETS_DB,
};
use bulwark_fs::{read_private, sync_dir, write_atomic};
use bulwark_secrets::envelope::{self, Coordinates, Envelope};
use bulwark_secrets::view::{SecretEvent, SecretKey, SecretsView, VersionState, digest};
use bulwark_store::{SecretBlobs as _, SecretRow, SqliteSecrets};
use serde::Serialize;

/// What a rotation did.
#[derive(Debug, Serialize)]
pub struct RotationReport {
    /// The retired KEK.
    pub old_kid: String,
    /// The KEK now in use.
    pub new_kid: String,
    /// Live versions in the store.
    pub versions: u64,
    /// Re-wrapped by this run.
    pub rewrapped: u64,
    /// Found re-wrapped by an interrupted run and journaled now.
    pub recovered: u64,
    /// Already done by an earlier run.
    pub already: u64,
    /// Versions whose stored row failed its integrity check: they cannot be read under any
    /// KEK, were journaled as integrity failures and left as they are.
    pub unreadable: Vec<String>,
}

fn actor() -> String {
    format!("admin:uid{}", bulwark_fs::current_uid())
}

/// Runs (or resumes) a KEK rotation in `dir`. `progress(done, total)` after each version.
pub async fn rotate_kek(dir: &Path, progress: impl Fn(u64, u64)) -> anyhow::Result<RotationReport> {
    // The server holds this lock for its whole life (whatever its admin socket).
    let _lock = bulwark_fs::lock_dir(dir)?;
    let kek_path = dir.join(KEK_FILE);
    let next_path = dir.join(KEK_NEXT_FILE);
    if !kek_path.exists() {
        bail!(
            "no `{KEK_FILE}` in `{}`: a KEK given by BULWARK_KEK is rotated by the secret manager that holds it (not supported yet)",
            dir.display()
        );
    }
    let current = Kek::decode(&read_private(&kek_path)?).context("`kek.key` is not a valid KEK")?;
    let next = if next_path.exists() {
        Kek::decode(&read_private(&next_path)?).context("`kek.next.key` is not a valid KEK")?
    } else {
        let k = Kek::generate()?;
        write_atomic(&next_path, k.encode().as_bytes(), 0o600)?;
        k
    };
    if current.kid() == next.kid() {
        // An earlier run swapped the files and stopped before removing `kek.next.key`.
        std::fs::remove_file(&next_path)?;
        sync_dir(dir)?;
        bail!(
            "the rotation to KEK `{}` had already completed; nothing to do",
            next.kid()
        );
    }

    // The journal, with every view the server folds (so a snapshot it writes is complete).
    let id = std::fs::read_to_string(dir.join(INSTANCE_ID))
        .with_context(|| format!("`{}` is not a Bulwark data directory", dir.display()))?;
    let ledger_key = SigningKey::decode(&read_private(&dir.join(LEDGER_KEY))?)?;
    let key_view = Arc::new(KeyView::default());
    let secrets_view = Arc::new(SecretsView::default());
    let directory = Arc::new(bulwark_directory::DirectoryView::default());
    let ledger = bulwark_ledger::Ledger::open(
        Box::new(bulwark_store::SqliteJournal::open(&dir.join(JOURNAL_DB))?),
        ledger_key,
        bulwark_ledger::LedgerConfig {
            origin: format!("bulwark/{}", id.trim()),
            checkpoint_interval: Duration::from_millis(0),
            max_batch: 4096,
            snapshot_every: 10_000,
        },
        vec![key_view.clone(), directory, secrets_view.clone()],
    )
    .map_err(|e| anyhow::anyhow!("the journal does not verify: {e}"))?;

    let store = SqliteSecrets::open(&dir.join(SECRETS_DB))?;
    let rows: Vec<SecretRow> = store
        .load_all()?
        .into_iter()
        .filter(|r| r.wrapped_dek.is_some() && r.ciphertext.is_some())
        .collect();
    let total = rows.len() as u64;
    let mut report = RotationReport {
        old_kid: current.kid(),
        new_kid: next.kid(),
        versions: total,
        rewrapped: 0,
        recovered: 0,
        already: 0,
        unreadable: Vec::new(),
    };
    for (i, row) in rows.into_iter().enumerate() {
        let key = SecretKey {
            org: row.org.clone(),
            app: row.app.clone(),
            env: row.env.clone(),
            name: row.name.clone(),
        };
        let live = secrets_view.versions(&key).and_then(|vs| {
            vs.into_iter()
                .find(|m| m.version == row.version && m.state == VersionState::Live)
        });
        let Some(meta) = live else {
            // Not a live version the journal knows (orphaned by a failed put): untouched.
            progress(i as u64 + 1, total);
            continue;
        };
        let at = Coordinates {
            org: &key.org,
            app: &key.app,
            env: &key.env,
            name: &key.name,
            version: row.version,
        };
        let sealed = Envelope {
            kek_kid: row.kek_kid.clone(),
            wrapped_dek: row.wrapped_dek.clone(),
            ciphertext: row.ciphertext.clone().unwrap_or_default(),
        };
        let resource = bulwark_secrets::view::resource(&key, row.version);
        let (stored, fresh) = if row.kek_kid == current.kid() {
            let moved = if meta.digest.as_deref() == Some(digest(&sealed).as_str()) {
                envelope::rewrap(&current, &next, &at, &sealed).ok()
            } else {
                None
            };
            let Some(moved) = moved else {
                // A corrupt row is unreadable under any KEK: record it and go on, so that
                // one bad version cannot hold the rotation (and the server) hostage.
                let entry = bulwark_ledger::entry::Draft::new(
                    bulwark_ledger::entry::Kind::Access,
                    "secret.integrity_fail",
                    resource.clone(),
                )
                .actor(actor())
                .org(key.org.as_str())
                .outcome(bulwark_ledger::entry::Outcome::Error);
                ledger
                    .append(entry)
                    .await
                    .context("journaling an integrity failure")?;
                report.unreadable.push(resource);
                progress(i as u64 + 1, total);
                continue;
            };
            store.put(&SecretRow {
                kek_kid: moved.kek_kid.clone(),
                wrapped_dek: moved.wrapped_dek.clone(),
                ..row.clone()
            })?;
            (moved, true)
        } else if row.kek_kid == next.kid() {
            if meta.digest.as_deref() == Some(digest(&sealed).as_str()) {
                report.already += 1;
                progress(i as u64 + 1, total);
                continue;
            }
            // Stored by an interrupted run, not journaled yet: it must open under the new
            // KEK before the journal vouches for it.
            envelope::open(&next, &at, &sealed).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}; not journaled",
                    bulwark_secrets::view::resource(&key, row.version)
                )
            })?;
            (sealed, false)
        } else {
            bail!(
                "{} is wrapped by KEK `{}`, neither the current nor the next one",
                bulwark_secrets::view::resource(&key, row.version),
                row.kek_kid
            );
        };
        let event = SecretEvent::Rewrap {
            key: key.clone(),
            version: row.version,
            digest: digest(&stored),
            kek_kid: next.kid(),
        };
        ledger
            .append(event.draft(&actor(), None)?)
            .await
            .context("journaling a re-wrap")?;
        if fresh {
            report.rewrapped += 1;
        } else {
            report.recovered += 1;
        }
        progress(i as u64 + 1, total);
    }

    // Every live row is under the new KEK: journal it, make it the KEK, drop the old one.
    let created = KeyCreated {
        purpose: "kek".into(),
        kid: next.kid(),
        alg: "AES-256".into(),
        public: None,
    }
    .draft()?
    .actor(actor());
    ledger
        .append(created)
        .await
        .context("journaling the new KEK")?;
    ledger
        .checkpoint_now()
        .await
        .context("signing a checkpoint")?;
    write_atomic(&kek_path, next.encode().as_bytes(), 0o600)?;
    std::fs::remove_file(&next_path)?;
    sync_dir(dir)?;
    Ok(report)
}
