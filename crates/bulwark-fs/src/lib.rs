//! Bulwark's files on disk.
//!
//! Owns: the names of the files in a server's data directory ([`layout`]), so that the
//! server and the offline tools (backup, restore, KEK rotation, root-key export) agree on
//! them; and the file helpers every party that keeps key material uses ([`files`]):
//! private directories (0700) and files (refused when group or others can read them),
//! atomic replacement (temp file, fsync, rename, fsync of the directory), the data
//! directory's exclusive lock, and the effective uid.
//!
//! Must never: open a socket, parse what it reads (callers decode their own formats), or
//! loosen a mode it finds (a wide directory or key file is refused, never "fixed").

#![forbid(unsafe_code)]

pub mod files;
pub mod layout;

pub use files::{
    DirLock, current_uid, ensure_private_dir, lock_dir, read_private, sync_dir, write_atomic,
    write_in_private_dir,
};
