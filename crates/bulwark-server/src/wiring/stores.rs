//! The journal and the secret ciphertext store: SQLite in the data directory, memory in
//! amnesia mode.

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Config;
use crate::keys::InstanceKeys;

/// Opens the journal. A journal that does not verify stops start-up: serving on top of a
/// tampered log would hide it.
pub fn open_ledger(
    cfg: &Config,
    keys: &InstanceKeys,
    projections: Vec<Arc<dyn bulwark_ledger::projection::Projection>>,
) -> anyhow::Result<bulwark_ledger::Ledger> {
    let journal: Box<dyn bulwark_ledger::journal::Journal> = match &cfg.data_dir {
        Some(dir) => Box::new(
            bulwark_store::SqliteJournal::open(&dir.join(bulwark_fs::layout::JOURNAL_DB))
                .context("opening the journal")?,
        ),
        None => Box::new(bulwark_store::MemoryJournal::new()),
    };
    let config = bulwark_ledger::LedgerConfig {
        origin: keys.origin(),
        checkpoint_interval: cfg.checkpoint_interval,
        max_batch: 4096,
        snapshot_every: 10_000,
    };
    bulwark_ledger::Ledger::open(journal, keys.ledger_key()?, config, projections).map_err(|e| {
        let hint = cfg.data_dir.as_ref().map_or(String::new(), |d| {
            format!(
                "; run `bulwark audit verify --data-dir {}` for a report",
                d.display()
            )
        });
        anyhow::anyhow!("the journal does not verify, refusing to start: {e}{hint}")
    })
}

/// Opens the secret ciphertext store.
pub fn open_secret_blobs(cfg: &Config) -> anyhow::Result<Arc<dyn bulwark_store::SecretBlobs>> {
    Ok(match &cfg.data_dir {
        Some(dir) => Arc::new(
            bulwark_store::SqliteSecrets::open(&dir.join(bulwark_fs::layout::SECRETS_DB))
                .context("opening the secret store")?,
        ),
        None => Arc::new(bulwark_store::MemorySecrets),
    })
}
