//! A byte buffer that holds secret material.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Secret bytes: zeroized on drop, no `Debug`/`Clone`, compared in constant time.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Borrow the secret. Callers must not copy it into a buffer that outlives its use
    /// without zeroizing that buffer too.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_by_value() {
        assert!(SecretBytes::new(b"abc".to_vec()) == SecretBytes::new(b"abc".to_vec()));
        assert!(SecretBytes::new(b"abc".to_vec()) != SecretBytes::new(b"abd".to_vec()));
        assert!(SecretBytes::new(b"abc".to_vec()) != SecretBytes::new(b"ab".to_vec()));
    }
}
