//! Bulwark's secrets, the pure part.
//!
//! Owns: envelope encryption ([`envelope`]): a fresh 256-bit data-encryption key per
//! secret version, AES-256-GCM, associated data binding (org, app, env, name, version) so
//! that a ciphertext moved anywhere else fails to decrypt; the DEK wrapped by the KEK
//! (bound to the same coordinates), re-wrapping for KEK rotation, and the KEK's key id on
//! every envelope. Secret names ([`name`]). The `BULWARK_SECRETS_V1` file the node agent
//! writes ([`file`]): render and parse with hard limits. The journal events of secret
//! versions and the metadata projection folded from them ([`view`]). The audited read of
//! secrets as a pure state machine ([`read`]): the order of its steps is decided there, the
//! server only drives it.
//!
//! Must never: perform I/O; reuse a DEK or a nonce; return plaintext from an envelope that
//! does not authenticate; keep plaintext outside zeroizing buffers; derive `Debug` for
//! anything holding plaintext or keys.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

pub mod envelope;
pub mod file;
pub mod name;
pub mod read;
pub mod view;
