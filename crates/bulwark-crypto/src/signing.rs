//! Ed25519 signing keys with RFC 7638 JWK thumbprints as key ids.

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::{CryptoError, sha256};

/// An Ed25519 signing key and its key id. No `Debug`, no `Clone`; the PKCS#8 document is
/// zeroized on drop (aws-lc-rs frees its own copy of the private scalar).
pub struct SigningKey {
    pkcs8: Zeroizing<Vec<u8>>,
    pair: Ed25519KeyPair,
    kid: String,
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| CryptoError::Random)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Loads a key from its PKCS#8 v1 or v2 DER document.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| CryptoError::Malformed("ed25519"))?;
        let kid = jwk_thumbprint(pair.public_key().as_ref());
        Ok(Self {
            pkcs8: Zeroizing::new(der.to_vec()),
            pair,
            kid,
        })
    }

    /// Decodes the stored form (base64 of the PKCS#8 document).
    pub fn decode(encoded: &str) -> Result<Self, CryptoError> {
        let der = Zeroizing::new(
            STANDARD
                .decode(encoded.trim())
                .map_err(|_| CryptoError::Malformed("ed25519"))?,
        );
        Self::from_pkcs8(&der)
    }

    /// The stored form: base64 of the PKCS#8 document and a newline.
    pub fn encode(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(STANDARD.encode(self.pkcs8.as_slice()));
        s.push('\n');
        s
    }

    /// A copy of the PKCS#8 document, for libraries that load keys themselves (the JWT
    /// minter). Zeroized on drop.
    pub fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.pkcs8.to_vec())
    }

    /// The RFC 7638 thumbprint of the public JWK, base64url.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let sig = self.pair.sign(msg);
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        out
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey {
            key: pk,
            kid: self.kid.clone(),
        }
    }
}

/// An Ed25519 public key and its key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    key: [u8; 32],
    kid: String,
}

impl VerifyingKey {
    /// From raw public key bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self {
            kid: jwk_thumbprint(&key),
            key,
        }
    }

    /// Raw public key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Verifies an Ed25519 signature.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.key)
            .verify(msg, sig)
            .is_ok()
    }
}

/// RFC 7638 §3: SHA-256 over the JWK's required members in lexicographic order.
fn jwk_thumbprint(public: &[u8]) -> String {
    let jwk = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(sha256(jwk.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let k = SigningKey::generate().unwrap();
        let sig = k.sign(b"hello");
        let vk = k.verifying_key();
        assert!(vk.verify(b"hello", &sig));
        assert!(!vk.verify(b"hellO", &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!vk.verify(b"hello", &bad));
    }

    #[test]
    fn stored_form_round_trips_with_same_kid() {
        let k = SigningKey::generate().unwrap();
        let k2 = SigningKey::decode(&k.encode()).unwrap();
        assert_eq!(k.kid(), k2.kid());
        assert_eq!(k.verifying_key(), k2.verifying_key());
        assert!(SigningKey::decode("AAAA").is_err());
    }

    #[test]
    fn thumbprint_matches_rfc8037_appendix_a3() {
        // RFC 8037 A.3: the thumbprint of the example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            jwk_thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
