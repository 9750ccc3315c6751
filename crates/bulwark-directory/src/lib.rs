//! Bulwark's directory: who and what exists.
//!
//! Owns: the journal events that change the tenant tree (orgs, apps, envs and their
//! disabling), principals (service principals with client credentials, operator-created
//! users), relation tuples, and token revocations ([`event`]); and the [`Directory`]
//! projection folded from them, which every request's authentication and authorization
//! read ([`state`]). The instance's own keys are directory records too: their `key.create`
//! and `key.retire` events and the [`keys::KeyView`] folded from them ([`keys`]), shared by
//! the server and the offline KEK rotation. The journal is the source of truth: nothing here is written anywhere
//! else, and a restart rebuilds it all from the log (or from a signed snapshot and the
//! tail).
//!
//! Must never: perform I/O; hold a client secret (only its Argon2id hash); let an event
//! that does not parse change state silently (it is logged and skipped, and the journal
//! verifier still covers it).

#![forbid(unsafe_code)]

pub mod event;
pub mod keys;
pub mod state;

pub use event::{Binding, Event, PrincipalKind};
pub use state::{Directory, DirectoryView, JoinToken, Node, Principal};
