//! Bulwark's signed event bus, the pure part (DESIGN.md §4 "Signed event bus").
//!
//! Owns: the envelope `{id, type, org, node, key_id, issued_at, nonce, payload, signature}`
//! and its signature (Ed25519 over the RFC 8785 canonical bytes of every field but
//! `signature`); a parser with hard bounds (size, depth, field shapes) that rejects
//! unknown fields; each org's key ring with rotation (the previous key stays valid until a
//! transition time); the gate that admits an envelope only through five ports — signature,
//! replay, staleness, relation, node — and refuses to run with any port missing.
//!
//! Must never: accept an envelope whose signature does not verify under a key of the
//! envelope's own org that is valid at the time of the check; let an envelope through a
//! gate with a port missing; store attacker-chosen strings in the replay cache (digests
//! only); panic on any input.

#![forbid(unsafe_code)]
// A parser cannot index past its input: out-of-range reads are `None`, never a panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod envelope;
pub mod gate;
pub mod keys;
pub mod sse;

pub use envelope::{Envelope, ParseError, Unsigned};
pub use gate::{Gate, MissingPort, Refusal};
pub use keys::{KeyRing, PublishedKey};
