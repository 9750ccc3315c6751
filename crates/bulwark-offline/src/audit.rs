//! `bulwark audit key` and `bulwark audit verify --data-dir`: offline checks of a data
//! directory's journal, reading the SQLite file read-only; `bulwark audit verify --url`,
//! the same checks on a running log; `bulwark backup` and `bulwark restore`.

use std::path::Path;

use anyhow::Context as _;
use bulwark_crypto::SigningKey;
use bulwark_fs::layout::{ADMIN_SOCKET, INSTANCE_ID, JOURNAL_DB, LEDGER_KEY};
use bulwark_ledger::checkpoint::{NoteSigner, NoteVerifier};
use bulwark_ledger::journal::Journal as _;
pub use bulwark_ledger::verify::Report;
use bulwark_ledger::verify::Verifier;
use bulwark_store::SqliteJournal;

fn origin(dir: &Path) -> anyhow::Result<String> {
    let id = std::fs::read_to_string(dir.join(INSTANCE_ID))
        .with_context(|| format!("`{}` is not a Bulwark data directory", dir.display()))?;
    Ok(format!("bulwark/{}", id.trim()))
}

/// The journal's verifier key (C2SP vkey) of the data directory at `dir`.
pub fn vkey(dir: &Path) -> anyhow::Result<String> {
    let origin = origin(dir)?;
    let key = SigningKey::decode(&bulwark_fs::read_private(&dir.join(LEDGER_KEY))?)
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
    progress: impl FnMut(u64, u64),
) -> anyhow::Result<Report> {
    let vkey = match vkey_override {
        Some(v) => v.to_owned(),
        None => vkey(dir)?,
    };
    verify_db(
        &dir.join(JOURNAL_DB),
        &origin(dir)?,
        &vkey,
        trusted_checkpoint,
        progress,
    )
}

/// Verifies the journal database at `db` for the log `origin` under `vkey`.
pub fn verify_db(
    db: &Path,
    origin: &str,
    vkey: &str,
    trusted_checkpoint: Option<&str>,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<Report> {
    let verifier = NoteVerifier::from_vkey(vkey).context("invalid verifier key")?;
    let journal = SqliteJournal::open_read_only(db)
        .with_context(|| format!("opening `{}` read-only", db.display()))?;
    let size = journal.size()?;
    let mut v = Verifier::new();
    let mut from = 0;
    while from < size {
        let chunk = journal.read(from, (from + 16_384).min(size))?;
        if chunk.is_empty() {
            break;
        }
        v.entries(&chunk, threads());
        from += chunk.len() as u64;
        progress(from, size);
    }
    let mut notes: Vec<String> = journal.checkpoints()?.into_iter().map(|c| c.note).collect();
    if let Some(t) = trusted_checkpoint {
        notes.push(t.to_owned());
    }
    let good = v.checkpoints(notes.iter().map(String::as_str), &verifier, Some(origin));
    Ok(v.finish(good))
}

/// `bulwark backup`: a consistent copy of the journal (safe while the server runs),
/// verified before it is reported good. Returns the copy's report.
pub fn backup(dir: &Path, out: &Path) -> anyhow::Result<Report> {
    bulwark_store::backup_file(&dir.join(JOURNAL_DB), out).context("copying the journal")?;
    let report = verify_db(out, &origin(dir)?, &vkey(dir)?, None, |_, _| {});
    match report {
        Ok(r) if r.ok => Ok(r),
        Ok(r) => {
            let _ = std::fs::remove_file(out);
            anyhow::bail!(
                "the journal does not verify, no backup written: {}",
                r.reason.unwrap_or_default()
            )
        }
        Err(e) => {
            let _ = std::fs::remove_file(out);
            Err(e)
        }
    }
}

/// `bulwark restore`: installs a backup as the data directory's journal, only if it
/// verifies completely **and** is consistent with `trusted_checkpoint` (a signed checkpoint
/// kept apart from the backup: the backup's tree must contain the checkpoint's tree). The
/// server must be stopped. An existing journal is kept aside, never deleted, and is only
/// replaced with `replace`.
pub fn restore(
    dir: &Path,
    from: &Path,
    trusted_checkpoint: &str,
    vkey_override: Option<&str>,
    replace: bool,
) -> anyhow::Result<Report> {
    // Never beside a running server.
    let _lock = bulwark_fs::lock_dir(dir)?;
    let origin = origin(dir)?;
    let vkey = match vkey_override {
        Some(v) => v.to_owned(),
        None => vkey(dir)?,
    };
    let trusted = NoteVerifier::from_vkey(&vkey)?
        .verify(trusted_checkpoint)
        .context("the trusted checkpoint does not verify under this instance's key")?;
    if trusted.origin != origin {
        anyhow::bail!(
            "the trusted checkpoint is for `{}`, not `{origin}`",
            trusted.origin
        );
    }
    let report = verify_db(from, &origin, &vkey, Some(trusted_checkpoint), |_, _| {})?;
    if !report.ok {
        anyhow::bail!(
            "refusing the backup: {} (divergent seq {:?})",
            report.reason.clone().unwrap_or_default(),
            report.divergent_seq
        );
    }
    if report
        .verified_checkpoint_size
        .is_none_or(|s| s < trusted.size)
    {
        anyhow::bail!("refusing the backup: it does not contain the trusted checkpoint's tree");
    }
    let socket = dir.join(ADMIN_SOCKET);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        anyhow::bail!("a server is running on `{}`: stop it first", dir.display());
    }
    let target = dir.join(JOURNAL_DB);
    if target.exists() {
        if !replace {
            anyhow::bail!(
                "`{}` exists; pass --replace to set it aside and restore",
                target.display()
            );
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for suffix in ["", "-wal", "-shm"] {
            let old = dir.join(format!("{JOURNAL_DB}{suffix}"));
            if old.exists() {
                let aside = dir.join(format!("{JOURNAL_DB}{suffix}.replaced-{stamp}"));
                std::fs::rename(&old, &aside)
                    .with_context(|| format!("setting `{}` aside", old.display()))?;
            }
        }
    }
    let tmp = dir.join(format!("{JOURNAL_DB}.restoring"));
    let _ = std::fs::remove_file(&tmp);
    bulwark_store::backup_file(from, &tmp).context("copying the backup")?;
    std::fs::rename(&tmp, &target).context("installing the restored journal")?;
    bulwark_fs::sync_dir(dir)?;
    Ok(report)
}

/// Threads for verification: one per core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `bulwark audit verify --url`: fetches the checkpoint, the level-0 hash tiles and the
/// entry bundles from a running log and verifies them like a local journal (the tiles'
/// hashes play the part of the recorded leaf hashes, so a rewritten body is pinned to its
/// seq). Entry bundles are served to instance auditors only: `bearer` is an access token
/// with `audit:read` on the instance.
pub async fn verify_url(
    base: &str,
    ca_pem: &str,
    vkey_override: Option<&str>,
    trusted_checkpoint: Option<&str>,
    bearer: Option<zeroize::Zeroizing<String>>,
) -> anyhow::Result<Report> {
    use bulwark_ledger::journal::StoredEntry;
    use bulwark_ledger::tiles::{self, TILE_WIDTH};

    let client = bulwark_client::Client::new(ca_pem)?.with_bearer(bearer);
    let base = base.trim_end_matches('/');
    let get = |path: String| {
        let client = &client;
        async move {
            let (status, body) = client.get(&format!("{base}{path}")).await?;
            match status {
                200 => Ok(body),
                401 | 403 => anyhow::bail!(
                    "`{path}` is served to instance auditors only: set BULWARK_ACCESS_TOKEN to a bearer access token with `audit:read` on the instance, or run `bulwark audit verify --data-dir` on the server's host"
                ),
                s => anyhow::bail!("`{path}`: HTTP {s}"),
            }
        }
    };
    let vkey = match vkey_override {
        Some(v) => v.to_owned(),
        None => String::from_utf8(get("/v1/audit/log/key".into()).await?)?
            .trim()
            .to_owned(),
    };
    let verifier = NoteVerifier::from_vkey(&vkey).context("invalid verifier key")?;
    let note = String::from_utf8(get("/v1/audit/log/checkpoint".into()).await?)?;
    let cp = verifier
        .verify(&note)
        .context("the log's checkpoint does not verify")?;
    let mut v = Verifier::new();
    for (index, width) in tiles::tiles_for(cp.size) {
        let name = tiles::tile_name(index, width);
        let hashes = get(format!("/v1/audit/log/tile/0/{name}")).await?;
        let bundle = get(format!("/v1/audit/log/tile/entries/{name}")).await?;
        let mut rest = bundle.as_slice();
        let mut chunk = Vec::with_capacity(usize::try_from(width).unwrap_or(0));
        for (i, h) in hashes.chunks_exact(32).enumerate() {
            let (Some(len), Some(after)) = (rest.get(..2), rest.get(2..)) else {
                anyhow::bail!("entry bundle {name} is shorter than its tile");
            };
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let body = after.get(..len).context("entry bundle truncated")?.to_vec();
            rest = after.get(len..).unwrap_or_default();
            let mut leaf_hash = [0u8; 32];
            leaf_hash.copy_from_slice(h);
            chunk.push(StoredEntry {
                seq: index * TILE_WIDTH + i as u64,
                body,
                leaf_hash,
            });
        }
        if chunk.len() as u64 != width {
            anyhow::bail!(
                "hash tile {name} has {} hashes, expected {width}",
                chunk.len()
            );
        }
        v.entries(&chunk, threads());
    }
    let mut notes = vec![note];
    if let Some(t) = trusted_checkpoint {
        notes.push(t.to_owned());
    }
    let good = v.checkpoints(
        notes.iter().map(String::as_str),
        &verifier,
        Some(&cp.origin),
    );
    Ok(v.finish(good))
}
