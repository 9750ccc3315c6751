//! Bulwark's key custody.
//!
//! Owns: the key-encryption key ([`Kek`]), Ed25519 signing keys with RFC 7638 key ids
//! ([`SigningKey`]), and [`SecretBytes`] for any other secret material. The only crypto
//! provider is aws-lc-rs.
//!
//! Must never: implement `Debug`, `Clone` or `Display` for a type holding key material;
//! compare secrets in variable time; perform file or network I/O (the server crate stores
//! the encodings this crate produces).
//!
//! Invariants: every key type zeroizes its bytes on drop; encodings that leave this crate
//! are returned in [`zeroize::Zeroizing`] buffers.

#![forbid(unsafe_code)]

mod kek;
mod secret;
mod signing;

pub use kek::Kek;
pub use secret::SecretBytes;
pub use signing::{SigningKey, VerifyingKey};

/// Errors from key handling. They never carry key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The system random source failed.
    #[error("random source failed")]
    Random,
    /// A stored key does not decode to a key of the expected kind.
    #[error("malformed {0} key encoding")]
    Malformed(&'static str),
}

/// Fills `buf` from the operating system's CSPRNG (via aws-lc-rs).
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CryptoError::Random)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
