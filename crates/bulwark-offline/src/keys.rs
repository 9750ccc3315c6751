//! `bulwark admin export-root-key`: takes the root CA key offline, with the server stopped.
//! The key is written to a file of the operator's choosing and removed from the data
//! directory, leaving a marker (`ca.key.offline`) so that its absence is a decision, not a
//! loss; the server then issues with the intermediate.

use std::path::Path;

use anyhow::{Context as _, bail};
use bulwark_fs::layout::{CA_CERT, CA_KEY, INTERMEDIATE_CERT, INTERMEDIATE_KEY, ROOT_OFFLINE};
use bulwark_fs::{read_private, write_atomic};

/// Takes the root key offline: writes it to `out` (a new file, 0600, synced and read back),
/// then removes it from `dir`, leaving the `ca.key.offline` marker. Refused while a server
/// runs on `dir`, when the intermediate is missing (nothing could issue then), or when the
/// root is offline already. Returns the root's fingerprint.
pub fn export_root_key(dir: &Path, out: &Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _lock = bulwark_fs::lock_dir(dir)?;
    if dir.join(ROOT_OFFLINE).exists() {
        if dir.join(CA_KEY).exists() {
            // An export stopped after its marker: the key was written out and read back
            // before the marker was, so finishing means removing it here.
            std::fs::remove_file(dir.join(CA_KEY)).context("cannot remove the root key")?;
            bulwark_fs::sync_dir(dir)?;
            bail!(
                "an earlier export had written the root key out but not removed it; it is removed now (the exported file is the copy)"
            );
        }
        bail!("the root key of `{}` is offline already", dir.display());
    }
    if !intermediate_present(dir)? {
        bail!(
            "`{}` has no intermediate yet: start the server once before taking the root offline",
            dir.display()
        );
    }
    let key = read_private(&dir.join(CA_KEY))?;
    let ca_pem = std::fs::read_to_string(dir.join(CA_CERT))
        .with_context(|| format!("missing `{CA_CERT}`"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create `{}` (it must not exist)", out.display()))?;
    f.write_all(key.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write `{}`", out.display()))?;
    drop(f);
    if read_private(out)?.as_bytes() != key.as_bytes() {
        bail!(
            "`{}` does not read back as written; the root key stays",
            out.display()
        );
    }
    let fingerprint = bulwark_ledger::verify::hex(&bulwark_crypto::sha256(ca_pem.as_bytes()));
    write_atomic(
        &dir.join(ROOT_OFFLINE),
        format!("root key exported; root certificate sha256 {fingerprint}\n").as_bytes(),
        0o644,
    )?;
    std::fs::remove_file(dir.join(CA_KEY)).context("cannot remove the root key")?;
    bulwark_fs::sync_dir(dir)?;
    Ok(fingerprint)
}

/// Whether `dir` holds an intermediate CA the server can load (its certificate, and its
/// key readable by the owner only).
fn intermediate_present(dir: &Path) -> anyhow::Result<bool> {
    if !dir.join(INTERMEDIATE_CERT).exists() {
        return Ok(false);
    }
    std::fs::read_to_string(dir.join(INTERMEDIATE_CERT))?;
    read_private(&dir.join(INTERMEDIATE_KEY))?;
    Ok(true)
}
