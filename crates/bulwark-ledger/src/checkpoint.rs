//! Checkpoints in the C2SP signed-note format, and the C2SP vkey format for the verifier.
//!
//! A checkpoint body is `<origin>\n<tree size>\n<base64 root>\n`. The signed note appends a
//! blank line and one signature line per signer: `— <name> <base64(key hash ‖ signature)>\n`,
//! where the key hash is the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key) and
//! the signature is Ed25519 over the body. The verifier key is published as
//! `<name>+<key hash, 8 hex digits>+<base64(0x01 ‖ public key)>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_crypto::{SigningKey, VerifyingKey};
use thiserror::Error;

use crate::merkle::Hash;

/// Ed25519 signature type byte of C2SP signed notes.
const ALG_ED25519: u8 = 0x01;
/// The longest note we parse.
pub const MAX_NOTE_LEN: usize = 16 * 1024;
/// The most signature lines we look at.
const MAX_SIGNATURES: usize = 64;

/// Errors parsing or verifying notes and keys.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is not well-formed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key verifies.
    #[error("no valid signature by `{0}`")]
    Unverified(String),
    /// The verifier key string is not well-formed.
    #[error("malformed verifier key: {0}")]
    BadKey(&'static str),
    /// The checkpoint's origin is not the expected one.
    #[error("checkpoint origin `{found}` is not `{expected}`")]
    Origin {
        /// Expected origin.
        expected: String,
        /// Origin found.
        found: String,
    },
}

/// A tree head: origin, size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, e.g. `bulwark/<instance id>`.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note body.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a note body (extension lines after the root are ignored).
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::Malformed("no origin"))?;
        let size = lines
            .next()
            .and_then(|s| {
                // Decimal without leading zeros or signs.
                let ok = !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && (s == "0" || !s.starts_with('0'));
                ok.then(|| s.parse::<u64>().ok()).flatten()
            })
            .ok_or(NoteError::Malformed("bad tree size"))?;
        let root = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| <Hash>::try_from(r.as_slice()).ok())
            .ok_or(NoteError::Malformed("bad root hash"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// A signer of notes: a name and an Ed25519 key.
pub struct NoteSigner<'a> {
    name: String,
    key: &'a SigningKey,
    key_hash: [u8; 4],
}

impl<'a> NoteSigner<'a> {
    /// A signer; `name` must be non-empty without whitespace or `+`.
    pub fn new(name: impl Into<String>, key: &'a SigningKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        let key_hash = key_hash(&name, key.verifying_key().as_bytes());
        Ok(Self {
            name,
            key,
            key_hash,
        })
    }

    /// Signs the checkpoint as a note.
    pub fn sign(&self, cp: &Checkpoint) -> String {
        let body = cp.body();
        let sig = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_hash);
        blob.extend_from_slice(&sig);
        format!("{body}\n\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }

    /// The verifier key in vkey format.
    pub fn vkey(&self) -> String {
        NoteVerifier {
            name: self.name.clone(),
            key_hash: self.key_hash,
            key: self.key.verifying_key(),
        }
        .vkey()
    }
}

/// A verifier of notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_hash: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<hash hex>+<base64(0x01 ‖ key)>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected name+hash+key"));
        };
        check_name(name).map_err(|_| NoteError::BadKey("bad name"))?;
        if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::BadKey("bad key hash"));
        }
        let raw = STANDARD
            .decode(key)
            .map_err(|_| NoteError::BadKey("bad base64"))?;
        let (Some(&ALG_ED25519), Ok(pk)) = (
            raw.first(),
            <[u8; 32]>::try_from(raw.get(1..).unwrap_or_default()),
        ) else {
            return Err(NoteError::BadKey("not an Ed25519 key"));
        };
        let key_hash = self::key_hash(name, &pk);
        let expected: String = key_hash.iter().map(|b| format!("{b:02x}")).collect();
        if expected != hash.to_ascii_lowercase() {
            return Err(NoteError::BadKey("key hash does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            key_hash,
            key: VerifyingKey::from_bytes(pk),
        })
    }

    /// The vkey string.
    pub fn vkey(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        let hash: String = self.key_hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}+{}+{}", self.name, hash, STANDARD.encode(raw))
    }

    /// The signer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies a signed checkpoint note and returns the checkpoint. Other signers' lines
    /// are ignored; at least one line must be ours and verify.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, NoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(NoteError::Malformed("note too long"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no signature block"))?;
        let (body, sigs) = note.split_at(split + 1);
        let sigs = sigs
            .strip_prefix('\n')
            .ok_or(NoteError::Malformed("no blank line"))?;
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end in a newline",
            ));
        }
        let mut verified = false;
        for line in sigs.trim_end_matches('\n').split('\n').take(MAX_SIGNATURES) {
            let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed(
                "signature line must start with an em dash",
            ))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("bad signature line"))?;
            if name != self.name {
                continue;
            }
            let Ok(blob) = STANDARD.decode(b64) else {
                continue;
            };
            let (Some(hash), Some(sig)) = (blob.get(..4), blob.get(4..)) else {
                continue;
            };
            if hash == self.key_hash && self.key.verify(body.as_bytes(), sig) {
                verified = true;
            }
        }
        if !verified {
            return Err(NoteError::Unverified(self.name.clone()));
        }
        Checkpoint::parse_body(body)
    }
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::Malformed(
            "signer name must be non-empty, without spaces or `+`",
        ));
    }
    Ok(())
}

fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut input = Vec::with_capacity(name.len() + 34);
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.push(ALG_ED25519);
    input.extend_from_slice(public);
    let d = bulwark_crypto::sha256(&input);
    [d[0], d[1], d[2], d[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "bulwark/0123abcd".into(),
            size: 42,
            root: [7u8; 32],
        }
    }

    #[test]
    fn sign_and_verify_round_trip_via_vkey() {
        let key = SigningKey::generate().unwrap();
        let signer = NoteSigner::new("bulwark/0123abcd", &key).unwrap();
        let note = signer.sign(&cp());
        assert!(note.starts_with("bulwark/0123abcd\n42\n"));
        assert!(note.contains("\n\n\u{2014} bulwark/0123abcd "));
        let v = NoteVerifier::from_vkey(&signer.vkey()).unwrap();
        assert_eq!(v.vkey(), signer.vkey());
        assert_eq!(v.verify(&note).unwrap(), cp());
    }

    #[test]
    fn tampered_notes_and_other_keys_are_refused() {
        let key = SigningKey::generate().unwrap();
        let signer = NoteSigner::new("log", &key).unwrap();
        let v = NoteVerifier::from_vkey(&signer.vkey()).unwrap();
        let note = signer.sign(&cp());
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(v.verify(&forged), Err(NoteError::Unverified(_))));
        let other = SigningKey::generate().unwrap();
        let impostor = NoteSigner::new("log", &other).unwrap().sign(&cp());
        assert!(matches!(v.verify(&impostor), Err(NoteError::Unverified(_))));
        assert!(v.verify("no signatures here\n").is_err());
    }

    #[test]
    fn vkey_with_a_wrong_hash_is_refused() {
        let key = SigningKey::generate().unwrap();
        let vkey = NoteSigner::new("log", &key).unwrap().vkey();
        let mut parts: Vec<&str> = vkey.split('+').collect();
        parts[1] = "00000000";
        assert!(NoteVerifier::from_vkey(&parts.join("+")).is_err());
        assert!(NoteVerifier::from_vkey("log+nothex!+AAAA").is_err());
    }

    #[test]
    fn body_parsing_is_strict() {
        assert!(Checkpoint::parse_body("o\n007\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("o\n-1\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("\n1\nAAAA\n").is_err());
        assert_eq!(Checkpoint::parse_body(&cp().body()).unwrap(), cp());
    }
}
