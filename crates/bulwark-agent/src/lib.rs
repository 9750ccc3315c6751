//! Bulwark's node agent.
//!
//! Owns: enrolment (the node's key is made here and never leaves; a CSR goes out with a
//! single-use join token) ([`enroll`]); the agent's loop: renewal at half life, fetching
//! the env's secrets over mTLS and keeping the secrets file current, with backoff when the
//! server is away ([`run`]); following the node's signed event stream and verifying every
//! envelope itself ([`events`]). Files live in the agent's directory (0700), keys 0600,
//! the secrets file 0400, every one replaced atomically.
//!
//! Must never: link `bulwark-server` (a layering test walks the manifests); act on an
//! envelope it has not verified; log a secret value (logs carry counts, names and
//! statuses); replace a good secrets file with an answer that does not parse.

#![forbid(unsafe_code)]

pub mod enroll;
pub mod events;
pub mod run;

pub use run::{RunOptions, Stopped, run};
