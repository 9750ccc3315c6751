//! Bulwark's client side of the API.
//!
//! Owns: the HTTPS client that trusts exactly the CA it is given, with an optional client
//! certificate for the node API ([`client`]); saved login profiles and the DPoP-bound
//! session that signs a fresh proof for every call ([`remote`]); the typed calls of the
//! API used by the CLI ([`secrets`], [`ops`]); the admin socket's client side and its
//! typed calls ([`admin`]). Used by the CLI, the agent, the offline tools (audit mirror,
//! verification over HTTPS) and, later, the edge.
//!
//! Must never: link `bulwark-server` (a layering test walks the manifests); speak
//! plaintext HTTP to the API; take a secret from argv (secrets come from stdin, files or
//! the environment, and travel in zeroizing buffers); print (callers format output).

#![forbid(unsafe_code)]

pub mod admin;
pub mod client;
pub mod ops;
pub mod remote;
pub mod secrets;

pub use client::Client;
pub use remote::{Answer, Profile, Session};
