//! Bulwark's shared vocabulary.
//!
//! Owns: the RFC 9457 [`Problem`] type and its stable [`ProblemCode`]s, request ids
//! ([`RequestId`]), and the clock abstraction.
//!
//! Must never: perform I/O, depend on a runtime, or hold key material. Every other crate
//! depends on this one, so it stays small and pure.

#![forbid(unsafe_code)]
// A parser cannot index past its input: out-of-range reads are `None`, never a panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod clock;
pub mod problem;
pub mod request_id;
pub mod tenancy;

pub use clock::{Clock, ManualClock, SystemClock};
pub use problem::{Problem, ProblemCode};
pub use request_id::RequestId;
pub use tenancy::{Name, NameError, Scope};
