//! `bulwark audit key` and `bulwark audit verify --data-dir`: offline checks of a data
//! directory's journal, reading the SQLite file read-only.

use std::path::Path;

use anyhow::Context as _;
use bulwark_crypto::SigningKey;
use bulwark_ledger::checkpoint::{NoteSigner, NoteVerifier};
use bulwark_ledger::journal::Journal as _;
use bulwark_ledger::verify::{Report, Verifier};
use bulwark_store::SqliteJournal;

use crate::keys::JOURNAL_DB;

fn origin(dir: &Path) -> anyhow::Result<String> {
    let id = std::fs::read_to_string(dir.join("instance-id"))
        .with_context(|| format!("`{}` is not a Bulwark data directory", dir.display()))?;
    Ok(format!("bulwark/{}", id.trim()))
}

/// The journal's verifier key (C2SP vkey) of the data directory at `dir`.
pub fn vkey(dir: &Path) -> anyhow::Result<String> {
    let origin = origin(dir)?;
    let key = SigningKey::decode(&crate::fsutil::read_private(&dir.join("ledger.key"))?)
        .context("`ledger.key` is not a valid key")?;
    Ok(NoteSigner::new(origin, &key)?.vkey())
}

/// Verifies the journal of the data directory at `dir`: every entry, every stored
/// checkpoint, and an optional trusted checkpoint kept outside the directory. `vkey`
/// overrides the key read from the directory (pass one obtained out of band to guard
/// against a replaced key file). `progress` is called with (done, total).
pub fn verify_data_dir(
    dir: &Path,
    vkey_override: Option<&str>,
    trusted_checkpoint: Option<&str>,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<Report> {
    let origin = origin(dir)?;
    let vkey = match vkey_override {
        Some(v) => v.to_owned(),
        None => vkey(dir)?,
    };
    let verifier = NoteVerifier::from_vkey(&vkey).context("invalid verifier key")?;
    let journal = SqliteJournal::open_read_only(&dir.join(JOURNAL_DB))
        .context("opening the journal read-only")?;
    let size = journal.size()?;
    let mut v = Verifier::new();
    let mut from = 0;
    while from < size {
        let chunk = journal.read(from, (from + 16_384).min(size))?;
        if chunk.is_empty() {
            break;
        }
        for e in &chunk {
            v.entry(e);
        }
        from += chunk.len() as u64;
        progress(from, size);
    }
    let mut notes: Vec<String> = journal.checkpoints()?.into_iter().map(|c| c.note).collect();
    if let Some(t) = trusted_checkpoint {
        notes.push(t.to_owned());
    }
    let good = v.checkpoints(notes.iter().map(String::as_str), &verifier, Some(&origin));
    Ok(v.finish(good))
}
