//! The data directory and the instance's keys.

use anyhow::Context as _;

use crate::config::Config;
use crate::keys::InstanceKeys;
use bulwark_directory::keys as projections;
use bulwark_fs::{self as fsutil, layout};

/// The data directory held for the server's lifetime, and the keys loaded from it (or
/// made in memory in amnesia mode).
pub struct DataDir {
    /// Held until the server stops: offline commands (KEK rotation, restore) refuse to
    /// run beside a live server. `None` in amnesia mode.
    pub lock: Option<fsutil::DirLock>,
    /// The instance's keys.
    pub keys: InstanceKeys,
    /// Whether the keys were made now (first start).
    pub created: bool,
}

impl DataDir {
    /// Prepares the data directory (0700, locked) and loads or makes the keys.
    pub fn open(cfg: &Config) -> anyhow::Result<Self> {
        match &cfg.data_dir {
            Some(dir) => {
                fsutil::ensure_private_dir(dir)?;
                let lock = fsutil::lock_dir(dir)?;
                if dir.join(layout::KEK_NEXT_FILE).exists() {
                    anyhow::bail!(
                        "a KEK rotation is in progress in `{}`: run `bulwark keys rotate-kek --data-dir {}` to finish it",
                        dir.display(),
                        dir.display()
                    );
                }
                let (keys, created) =
                    InstanceKeys::load_or_create(dir, &cfg.server_names, cfg.kek.take_kek()?)?;
                Ok(Self {
                    lock: Some(lock),
                    keys,
                    created,
                })
            }
            None => Ok(Self {
                lock: None,
                keys: InstanceKeys::ephemeral(&cfg.server_names, cfg.kek.take_kek()?)?,
                created: true,
            }),
        }
    }
}

/// Journals the instance's keys the first time they are seen, and every start.
pub async fn record_start(
    ledger: &bulwark_ledger::Ledger,
    keys: &InstanceKeys,
    key_view: &projections::KeyView,
) -> anyhow::Result<()> {
    let signing_public = bulwark_identity::jose::b64(keys.signing.verifying_key().as_bytes());
    let announced = [
        ("ca", keys.ca_kid(), "ECDSA-P256", None),
        ("kek", keys.kek.kid(), "AES-256", None),
        (
            "signing",
            keys.signing.kid().to_owned(),
            "Ed25519",
            Some(signing_public),
        ),
        ("ledger", keys.ledger_kid().to_owned(), "Ed25519", None),
    ];
    for (purpose, kid, alg, public) in announced {
        if !key_view.knows(purpose, &kid) {
            let draft = projections::KeyCreated {
                purpose: purpose.into(),
                kid,
                alg: alg.into(),
                public,
            }
            .draft()?;
            ledger
                .append(draft)
                .await
                .context("journaling key metadata")?;
        }
    }
    let start = bulwark_ledger::entry::Draft::new(
        bulwark_ledger::entry::Kind::State,
        "instance.start",
        format!("instance/{}", keys.instance_id),
    )
    .data(&projections::InstanceStart {
        version: env!("CARGO_PKG_VERSION").into(),
    })?;
    ledger.append(start).await.context("journaling start-up")?;
    ledger
        .checkpoint_now()
        .await
        .context("signing the first checkpoint")?;
    Ok(())
}
