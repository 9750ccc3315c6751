//! Bulwark's shared state, behind ports (DESIGN.md §3 and §4a).
//!
//! Owns: the ports for state that several `bulwark serve` replicas must share, and their
//! in-memory implementations (what a single process uses, and the defaults):
//!
//! - [`ReplayCache`]: "was this key seen within its TTL? if not, remember it", as one
//!   atomic step (DPoP and `private_key_jwt` assertion `jti`s, event nonces);
//! - [`RateLimiter`]: a keyed GCRA limit (per client, per org, per node);
//! - [`SingleUse`]: consume a key once (join tokens, later exec grants);
//! - [`Fanout`]: already-signed event envelopes to the subscribers of a node, through
//!   bounded buffers;
//! - [`LeaderLease`]: a named lease with a monotonically increasing fencing epoch.
//!
//! [`Shared`] is the provider, after rustls' `CryptoProvider`: a struct with one
//! `Arc<dyn Port>` per port, built whole by [`Shared::memory`] (or `Default`) and
//! overridden one port at a time with struct update syntax
//! (`Shared { replay: Arc::new(redis), ..Shared::default() }`). Every port is async and
//! fallible: a backend that cannot answer says [`SharedError::Unavailable`], which callers
//! turn into a fail-closed refusal (503), never into "fresh", "first" or "allowed".
//!
//! Must never: decide anything (which limit applies, how long a proof stays replayable,
//! who may lead: callers say, the ports store and answer); forget a live entry to make
//! room (a full table refuses with [`SharedError::Exhausted`]); store attacker-chosen
//! strings as such (keys are SHA-256 digests, [`Key`]); read the time other than from the
//! injected [`bulwark_core::Clock`]; panic on any input.

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;

pub mod error;
pub mod fanout;
pub mod key;
pub mod lease;
pub mod provider;
pub mod rate;
pub mod replay;
pub mod single_use;
mod table;

pub use error::SharedError;
pub use fanout::{Fanout, FanoutLimits, MemoryFanout, Published, Subscription};
pub use key::{Capacity, Key, MAX_TTL, check_namespace, check_ttl};
pub use lease::{LeaderLease, Lease, LeaseOutcome, MemoryLease};
pub use provider::{MemoryLimits, Shared};
pub use rate::{MemoryRateLimiter, Quota, Rate, RateLimiter};
pub use replay::{MemoryReplayCache, ReplayCache, Seen};
pub use single_use::{MemorySingleUse, SingleUse, Use};

/// The future every port method returns: boxed so that the ports stay object safe
/// (`Arc<dyn Port>`), `Send` so that handlers can hold it across an `.await`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
