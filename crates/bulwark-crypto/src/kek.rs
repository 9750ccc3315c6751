//! The key-encryption key: 256 bits that wrap every data-encryption key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{CryptoError, fill_random, sha256};

/// Length of the KEK in bytes (AES-256).
pub const KEK_LEN: usize = 32;

/// The key-encryption key. No `Debug`, no `Clone`; zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Kek([u8; KEK_LEN]);

impl Kek {
    /// A fresh random KEK.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = [0u8; KEK_LEN];
        fill_random(&mut k)?;
        Ok(Self(k))
    }

    /// Decodes the stored form (standard base64 of 32 bytes, surrounding whitespace ignored).
    pub fn decode(encoded: &str) -> Result<Self, CryptoError> {
        let raw = Zeroizing::new(
            STANDARD
                .decode(encoded.trim())
                .map_err(|_| CryptoError::Malformed("kek"))?,
        );
        let arr: [u8; KEK_LEN] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Malformed("kek"))?;
        Ok(Self(arr))
    }

    /// The stored form: base64 and a newline, in a buffer that zeroizes.
    pub fn encode(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(STANDARD.encode(self.0));
        s.push('\n');
        s
    }

    /// A public identifier of this KEK: the first 16 hex digits of SHA-256 over a domain
    /// separator and the key. Reveals nothing usable about the key.
    pub fn kid(&self) -> String {
        let mut input = Zeroizing::new(Vec::with_capacity(16 + KEK_LEN));
        input.extend_from_slice(b"bulwark-kek-id\0");
        input.extend_from_slice(&self.0);
        let digest = sha256(&input);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The raw key for the AEAD that wraps DEKs.
    pub fn expose(&self) -> &[u8; KEK_LEN] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_keeps_kid() {
        let k = Kek::generate().unwrap();
        let k2 = Kek::decode(&k.encode()).unwrap();
        assert_eq!(k.kid(), k2.kid());
        assert_eq!(k.kid().len(), 16);
        assert_ne!(Kek::generate().unwrap().kid(), k.kid());
    }

    #[test]
    fn malformed_encodings_are_refused() {
        assert!(Kek::decode("not base64!").is_err());
        assert!(Kek::decode(&STANDARD.encode([0u8; 16])).is_err());
    }
}
