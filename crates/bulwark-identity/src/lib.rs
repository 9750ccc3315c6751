//! Bulwark's identities.
//!
//! Owns (so far): client credentials of service principals — a public `client_id`, a
//! random `client_secret` shown once, and its Argon2id hash, which is all that is ever
//! stored ([`client_secret`]). Issue 4 adds principals, the token endpoint, JWT access
//! tokens, DPoP and mTLS binding, OIDC federation and revocation here.
//!
//! Must never: store, log or `Debug`-print a secret; compare secrets in variable time; accept
//! a credential hashed with weaker parameters than it issues.

#![forbid(unsafe_code)]

pub mod client_secret;
