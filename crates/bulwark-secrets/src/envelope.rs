//! Envelope encryption of secret versions.
//!
//! `seal` draws a fresh DEK, encrypts the value under it (AES-256-GCM, random 96-bit
//! nonce; a DEK encrypts exactly one value, so nonce reuse cannot happen), and wraps the DEK
//! under the KEK (AES-256-GCM, its own random nonce). Both AEADs take associated data that
//! binds the coordinates: `bulwark-secret-v1`, org, app, env, name (each length-prefixed)
//! and the version, with a distinct label for the wrap. A row copied to another env, app,
//! name or version — value or wrapped key — fails to authenticate. Destroying a version is
//! deleting its wrapped DEK; nothing can decrypt the value after that.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use bulwark_crypto::{Kek, fill_random};
use zeroize::Zeroizing;

/// The largest secret value (64 KiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024;
const TAG_LEN: usize = 16;
const DEK_LEN: usize = 32;

/// Where a secret version lives; bound into both AEADs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinates<'a> {
    /// Org.
    pub org: &'a str,
    /// App.
    pub app: &'a str,
    /// Env.
    pub env: &'a str,
    /// Secret name.
    pub name: &'a str,
    /// Version, from 1.
    pub version: u64,
}

impl Coordinates<'_> {
    fn aad(&self, label: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.org.len() + self.app.len() + self.env.len());
        out.extend_from_slice(label);
        for part in [self.org, self.app, self.env, self.name] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&self.version.to_be_bytes());
        out
    }
}

/// A sealed secret version, as stored. Holds only ciphertext and ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Key id of the KEK that wrapped the DEK.
    pub kek_kid: String,
    /// nonce ‖ AES-256-GCM(KEK, DEK) ‖ tag. `None` once destroyed.
    pub wrapped_dek: Option<Vec<u8>>,
    /// nonce ‖ AES-256-GCM(DEK, value) ‖ tag.
    pub ciphertext: Vec<u8>,
}

/// Why an envelope could not be made or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The value is over [`MAX_VALUE_LEN`].
    #[error("secret value over {MAX_VALUE_LEN} bytes")]
    TooLarge,
    /// The random source failed.
    #[error("random source failed")]
    Random,
    /// The envelope does not authenticate for these coordinates and this KEK: it was moved,
    /// altered, or wrapped by another KEK. Nothing is returned.
    #[error("integrity failure")]
    Integrity,
    /// The envelope was wrapped by another KEK than the one given.
    #[error("wrapped by KEK `{0}`")]
    WrongKek(String),
    /// The version was destroyed: its DEK is gone.
    #[error("destroyed")]
    Destroyed,
}

fn key(bytes: &[u8]) -> Result<LessSafeKey, EnvelopeError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| EnvelopeError::Integrity)
}

fn encrypt(k: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce).map_err(|_| EnvelopeError::Random)?;
    // Encrypted in place: the copy holds plaintext only until sealing, and zeroizes anyway.
    let mut body = Zeroizing::new(plaintext.to_vec());
    let tag = k
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            body.as_mut_slice(),
        )
        .map_err(|_| EnvelopeError::Integrity)?;
    let mut out = Vec::with_capacity(NONCE_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn decrypt(
    k: &LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Integrity);
    }
    let (n, rest) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| EnvelopeError::Integrity)?;
    let mut buf = Zeroizing::new(rest.to_vec());
    let len = k
        .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
        .map_err(|_| EnvelopeError::Integrity)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

const VALUE_LABEL: &[u8] = b"bulwark-secret-v1\0value\0";
const WRAP_LABEL: &[u8] = b"bulwark-secret-v1\0dek-wrap\0";

/// Seals `value` at `at` under `kek`.
pub fn seal(kek: &Kek, at: &Coordinates<'_>, value: &[u8]) -> Result<Envelope, EnvelopeError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(EnvelopeError::TooLarge);
    }
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    fill_random(dek.as_mut()).map_err(|_| EnvelopeError::Random)?;
    let ciphertext = encrypt(&key(dek.as_ref())?, &at.aad(VALUE_LABEL), value)?;
    let wrapped = encrypt(&key(kek.expose())?, &at.aad(WRAP_LABEL), dek.as_ref())?;
    Ok(Envelope {
        kek_kid: kek.kid(),
        wrapped_dek: Some(wrapped),
        ciphertext,
    })
}

fn unwrap_dek(
    kek: &Kek,
    at: &Coordinates<'_>,
    env: &Envelope,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if env.kek_kid != kek.kid() {
        return Err(EnvelopeError::WrongKek(env.kek_kid.clone()));
    }
    let wrapped = env.wrapped_dek.as_ref().ok_or(EnvelopeError::Destroyed)?;
    let dek = decrypt(&key(kek.expose())?, &at.aad(WRAP_LABEL), wrapped)?;
    if dek.len() != DEK_LEN {
        return Err(EnvelopeError::Integrity);
    }
    Ok(dek)
}

/// Opens an envelope: the plaintext, in a buffer that zeroizes, or an error and nothing.
pub fn open(
    kek: &Kek,
    at: &Coordinates<'_>,
    env: &Envelope,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let dek = unwrap_dek(kek, at, env)?;
    decrypt(&key(&dek)?, &at.aad(VALUE_LABEL), &env.ciphertext)
}

/// Re-wraps the DEK of `env` from `old` to `new` (KEK rotation); the value's ciphertext is
/// untouched. Refuses an envelope that does not authenticate under `old`.
pub fn rewrap(
    old: &Kek,
    new: &Kek,
    at: &Coordinates<'_>,
    env: &Envelope,
) -> Result<Envelope, EnvelopeError> {
    let dek = unwrap_dek(old, at, env)?;
    // Check the value too: a rotation must not bless a tampered row.
    decrypt(&key(&dek)?, &at.aad(VALUE_LABEL), &env.ciphertext)?;
    let wrapped = encrypt(&key(new.expose())?, &at.aad(WRAP_LABEL), &dek)?;
    Ok(Envelope {
        kek_kid: new.kid(),
        wrapped_dek: Some(wrapped),
        ciphertext: env.ciphertext.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(version: u64) -> Coordinates<'static> {
        Coordinates {
            org: "acme",
            app: "web",
            env: "prod",
            name: "db_password",
            version,
        }
    }

    #[test]
    fn round_trip_and_fresh_keys_per_version() {
        let kek = Kek::generate().unwrap();
        let a = seal(&kek, &at(1), b"hunter2").unwrap();
        let b = seal(&kek, &at(1), b"hunter2").unwrap();
        assert_ne!(a.ciphertext, b.ciphertext, "fresh DEK and nonce each time");
        assert_eq!(open(&kek, &at(1), &a).unwrap().as_slice(), b"hunter2");
        assert_eq!(a.kek_kid, kek.kid());
        assert!(!a.ciphertext.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn moved_rows_fail_to_decrypt() {
        let kek = Kek::generate().unwrap();
        let e = seal(&kek, &at(3), b"value").unwrap();
        let moved = [
            Coordinates {
                org: "other",
                ..at(3)
            },
            Coordinates {
                app: "api",
                ..at(3)
            },
            Coordinates {
                env: "staging",
                ..at(3)
            },
            Coordinates {
                name: "api_key",
                ..at(3)
            },
            at(4),
            // Length prefixes: ("ac","meweb") is not ("acme","web").
            Coordinates {
                org: "ac",
                app: "meweb",
                ..at(3)
            },
        ];
        for m in &moved {
            assert_eq!(open(&kek, m, &e), Err(EnvelopeError::Integrity), "{m:?}");
        }
        // Another version's wrapped DEK spliced in fails too.
        let other = seal(&kek, &at(4), b"value").unwrap();
        let spliced = Envelope {
            wrapped_dek: other.wrapped_dek.clone(),
            ..e.clone()
        };
        assert_eq!(open(&kek, &at(3), &spliced), Err(EnvelopeError::Integrity));
        // A flipped bit anywhere fails.
        let mut flipped = e.clone();
        flipped.ciphertext[20] ^= 1;
        assert_eq!(open(&kek, &at(3), &flipped), Err(EnvelopeError::Integrity));
    }

    #[test]
    fn another_kek_destroyed_and_oversized() {
        let kek = Kek::generate().unwrap();
        let e = seal(&kek, &at(1), b"v").unwrap();
        let other = Kek::generate().unwrap();
        assert!(matches!(
            open(&other, &at(1), &e),
            Err(EnvelopeError::WrongKek(_))
        ));
        let forged = Envelope {
            kek_kid: other.kid(),
            ..e.clone()
        };
        assert_eq!(open(&other, &at(1), &forged), Err(EnvelopeError::Integrity));
        let destroyed = Envelope {
            wrapped_dek: None,
            ..e
        };
        assert_eq!(
            open(&kek, &at(1), &destroyed),
            Err(EnvelopeError::Destroyed)
        );
        assert_eq!(
            seal(&kek, &at(1), &vec![0; MAX_VALUE_LEN + 1]),
            Err(EnvelopeError::TooLarge)
        );
        assert!(seal(&kek, &at(1), &vec![0; MAX_VALUE_LEN]).is_ok());
    }

    #[test]
    fn rewrap_moves_to_the_new_kek_only() {
        let (old, new) = (Kek::generate().unwrap(), Kek::generate().unwrap());
        let e = seal(&old, &at(1), b"v").unwrap();
        let r = rewrap(&old, &new, &at(1), &e).unwrap();
        assert_eq!(r.ciphertext, e.ciphertext);
        assert_eq!(r.kek_kid, new.kid());
        assert_eq!(open(&new, &at(1), &r).unwrap().as_slice(), b"v");
        assert!(open(&old, &at(1), &r).is_err());
        let mut bad = e.clone();
        bad.ciphertext[15] ^= 1;
        assert_eq!(
            rewrap(&old, &new, &at(1), &bad),
            Err(EnvelopeError::Integrity)
        );
    }

    proptest! {
        #[test]
        fn any_value_round_trips(value in prop::collection::vec(any::<u8>(), 0..2048), version in 1u64..u64::MAX) {
            let kek = Kek::generate().unwrap();
            let e = seal(&kek, &at(version), &value).unwrap();
            let opened = open(&kek, &at(version), &e).unwrap();
            prop_assert_eq!(opened.as_slice(), value.as_slice());
            prop_assert!(open(&kek, &at(version ^ 1), &e).is_err());
        }
    }
}
