//! Bulwark's journal: the verifiable ledger that is both audit log and source of truth.
//!
//! Owns: the RFC 9162 Merkle tree, inclusion and consistency proofs and their pure
//! verifiers ([`merkle`]); canonical journal entries ([`entry`]); signed checkpoints and
//! verifier keys in the C2SP formats ([`checkpoint`]).
//!
//! Must never: perform I/O (stores implement the journal elsewhere), accept secret
//! material into an entry, or verify anything by trusting stored intermediate hashes
//! that it did not recompute.

#![forbid(unsafe_code)]
// A parser cannot index past its input: out-of-range reads are `None`, never a panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod appender;
pub mod checkpoint;
pub mod entry;
pub mod journal;
pub mod merkle;
pub mod projection;
pub mod tiles;
pub mod verify;

pub use appender::{AppendError, Appended, Ledger, LedgerConfig, OpenError};
