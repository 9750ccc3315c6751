//! Client credentials: `client_id` (public), `client_secret` (256 random bits, shown once)
//! and the Argon2id hash kept in its place.
//!
//! Parameters follow OWASP's Argon2id recommendation (19 MiB, 2 passes, 1 lane). A stored
//! hash whose parameters are weaker than these is refused at verification, so a hash
//! planted with cheap parameters cannot be used to brute-force offline.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_crypto::{CryptoError, fill_random};
use thiserror::Error;
use zeroize::Zeroizing;

/// Memory cost in KiB.
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// Prefix of every client secret, so leaked ones are recognisable to secret scanners.
pub const SECRET_PREFIX: &str = "bws_";

/// Errors of credential handling; never carry the secret.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] CryptoError),
    /// Hashing failed.
    #[error("hashing failed")]
    Hash,
    /// The stored hash is not an Argon2id PHC string with our parameters or stronger.
    #[error("stored credential hash is malformed or too weak")]
    StoredHash,
}

/// A newly issued credential. The secret is shown to the caller once and then dropped
/// (zeroized); only `hash` is stored.
pub struct Issued {
    /// Public identifier, e.g. `svc_3k2…`.
    pub client_id: String,
    /// The secret, for the caller's eyes only.
    pub client_secret: Zeroizing<String>,
    /// The Argon2id PHC string to store.
    pub hash: String,
}

fn hasher() -> Result<Argon2<'static>, CredentialError> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|_| CredentialError::Hash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Issues a credential for a service principal.
pub fn issue() -> Result<Issued, CredentialError> {
    let mut id = [0u8; 12];
    fill_random(&mut id)?;
    let mut secret = Zeroizing::new([0u8; 32]);
    fill_random(secret.as_mut())?;
    let client_secret = Zeroizing::new(format!(
        "{SECRET_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(secret.as_ref())
    ));
    let hash = hash(&client_secret)?;
    Ok(Issued {
        client_id: format!("svc_{}", URL_SAFE_NO_PAD.encode(id)),
        client_secret,
        hash,
    })
}

/// Hashes a secret with a fresh salt.
pub fn hash(secret: &str) -> Result<String, CredentialError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| CredentialError::Hash)?;
    Ok(hasher()?
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|_| CredentialError::Hash)?
        .to_string())
}

/// Checks a presented secret against a stored hash (constant-time comparison inside
/// Argon2). `Ok(false)` for a wrong secret; `Err` for a stored hash that is malformed or
/// weaker than what we issue.
pub fn verify(presented: &str, stored: &str) -> Result<bool, CredentialError> {
    let parsed = PasswordHash::new(stored).map_err(|_| CredentialError::StoredHash)?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(CredentialError::StoredHash);
    }
    let p = Params::try_from(&parsed).map_err(|_| CredentialError::StoredHash)?;
    if p.m_cost() < M_COST_KIB || p.t_cost() < T_COST || p.p_cost() < P_COST {
        return Err(CredentialError::StoredHash);
    }
    Ok(hasher()?
        .verify_password(presented.as_bytes(), &parsed)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_secrets_verify_and_only_the_hash_is_kept() {
        let c = issue().unwrap();
        assert!(c.client_id.starts_with("svc_"));
        assert!(c.client_secret.starts_with(SECRET_PREFIX));
        assert!(c.hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            !c.hash
                .contains(c.client_secret.trim_start_matches(SECRET_PREFIX))
        );
        assert!(verify(&c.client_secret, &c.hash).unwrap());
        assert!(!verify("bws_wrong", &c.hash).unwrap());
        let other = issue().unwrap();
        assert_ne!(c.client_id, other.client_id);
        assert!(!verify(&other.client_secret, &c.hash).unwrap());
    }

    #[test]
    fn the_same_secret_hashes_differently_each_time() {
        let (a, b) = (hash("s").unwrap(), hash("s").unwrap());
        assert_ne!(a, b, "fresh salt");
        assert!(verify("s", &a).unwrap() && verify("s", &b).unwrap());
    }

    #[test]
    fn weak_or_foreign_stored_hashes_are_refused() {
        // A planted hash with cheap parameters (m=8 KiB, t=1): refused even for the right secret.
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"s", &SaltString::encode_b64(&[1u8; 16]).unwrap())
        .unwrap()
        .to_string();
        assert!(matches!(
            verify("s", &weak),
            Err(CredentialError::StoredHash)
        ));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"s", &SaltString::encode_b64(&[1u8; 16]).unwrap())
            .unwrap()
            .to_string();
        assert!(matches!(
            verify("s", &argon2i),
            Err(CredentialError::StoredHash)
        ));
        assert!(matches!(
            verify("s", "not a hash"),
            Err(CredentialError::StoredHash)
        ));
    }
}
