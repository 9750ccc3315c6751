//! Bulwark's identities and tokens.
//!
//! Owns: client credentials of service principals ([`client_secret`]: a public
//! `client_id`, a random secret shown once, its Argon2id hash); RFC 9068 access tokens
//! ([`token`]: minted EdDSA, ≤ 15 min, one audience; verified with `typ`, `alg`, `kid`,
//! issuer, audience and time checks); DPoP proofs and server nonces ([`dpop`]);
//! `private_key_jwt` client assertions ([`assertion`]); the bounded single-use cache for
//! proof and assertion ids ([`replay`]); the scopes a token may carry ([`scope`]). Every
//! refusal is a [`Refusal`] whose `reason()` names the failed check. No I/O: the server
//! composes these.
//!
//! Must never: store, log or `Debug`-print a secret or a token; compare secrets in
//! variable time; accept a credential hashed with weaker parameters than it issues; accept
//! `alg: none`, an algorithm other than the one the key is for, a private key in a proof
//! header, or a token meant for several or wildcard audiences.

#![forbid(unsafe_code)]
// A parser cannot index past its input: out-of-range reads are `None`, never a panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod assertion;
pub mod client_secret;
pub mod dpop;
pub mod jose;
pub mod replay;
pub mod scope;
pub mod token;

pub use jose::Refusal;
