//! File-system helpers for key material, the data directory and the agent's directory:
//! private modes, atomic replacement, fsync of file and directory, the directory lock.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, bail};

/// Creates `dir` with mode 0700 if missing; refuses an existing directory that group or
/// others can access, rather than silently trusting or changing it.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                bail!("`{}` exists and is not a directory", dir.display());
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "data directory `{}` has mode {mode:o}; it must be accessible by its owner only (run `chmod 700 {}`)",
                    dir.display(),
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create data directory `{}`", dir.display())),
        Err(e) => Err(e).with_context(|| format!("cannot inspect `{}`", dir.display())),
    }
}

/// Writes `data` to `path` atomically (temp file, fsync, rename, fsync of the directory)
/// with `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("`{}` has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("`{}` has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot create `{}`", tmp.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("cannot replace `{}`", path.display()))?;
    sync_dir(dir)
}

/// An exclusive lock on a data directory (`<dir>/lock`, flock): held by `serve` for its
/// whole life and by offline commands that must not run beside it. Released on drop.
pub struct DirLock(
    #[expect(
        dead_code,
        reason = "held only for its lock; dropping the file releases it"
    )]
    fs::File,
);

/// Takes the data directory's lock, or says who must stop first.
pub fn lock_dir(dir: &Path) -> anyhow::Result<DirLock> {
    let path = dir.join(crate::layout::LOCK);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        anyhow::anyhow!(
            "`{}` is in use by another Bulwark process (a running server, or another offline command): stop it first",
            dir.display()
        )
    })?;
    Ok(DirLock(f))
}

/// fsyncs a directory so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory `{}`", dir.display()))
}

/// Writes `data` to `path` with `mode`, in a 0700 directory, via a temporary file and a
/// rename (the directory is created 0700 if missing; a wider existing one is refused). A
/// bare file name is written in the current directory.
pub fn write_in_private_dir(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    ensure_private_dir(dir)?;
    write_atomic(path, data, mode)
}

/// The effective uid of this process (the default admin allow-list, the `actor` of
/// offline commands).
pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Reads a file that holds key material, refusing it if group or others can read it.
pub fn read_private(path: &Path) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "key file `{}` has mode {mode:o}; it must be readable by its owner only (run `chmod 600 {}`)",
            path.display(),
            path.display()
        );
    }
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(zeroize::Zeroizing::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_is_0700_and_wide_dirs_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("data");
        ensure_private_dir(&d).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        ensure_private_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private_dir(&d).unwrap_err().to_string();
        assert!(err.contains("chmod 700"), "{err}");
    }

    #[test]
    fn atomic_write_sets_mode_and_private_read_checks_it() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("k");
        write_atomic(&p, b"abc", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_private(&p).unwrap().as_str(), "abc");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_private(&p).is_err());
    }
}
