//! Bulwark's journal stores.
//!
//! Owns: the [`MemoryJournal`] (amnesia mode) and the [`SqliteJournal`] (the embedded
//! default: WAL, `synchronous=FULL`, append-only by triggers, forward-only migrations).
//! Secret ciphertexts beside the journal ([`secrets`]). A PostgreSQL store for several
//! replicas arrives with the scale-out issue.
//!
//! Must never: update or delete a journal row, acknowledge an append before it is durable,
//! or interpret entry bytes (that is the ledger's job).

#![forbid(unsafe_code)]

mod memory;
pub mod secrets;
mod sqlite;

pub use memory::MemoryJournal;
pub use secrets::{MemorySecrets, SecretBlobs, SecretRow, SqliteSecrets};
pub use sqlite::{SqliteJournal, backup_file};
