//! Wiring: the one place that decides which implementation backs each part — where the
//! keys come from, which journal and secret store are opened, which shared-state ports
//! are used. [`crate::Config::build`] calls these; nothing else opens stores or reads keys.

mod keys;
mod shared;
mod stores;

pub use keys::{DataDir, record_start};
pub use shared::shared;
pub use stores::{open_ledger, open_secret_blobs};
