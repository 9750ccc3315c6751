//! Each org's signing keys as nodes and the gate know them: public keys with the time
//! until which each is accepted. Rotation adds a new key and gives the previous one a
//! transition time; after it, envelopes signed by the previous key are refused.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::gate::Refusal;

/// A public key of an org, as published to nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// Its id (RFC 7638 thumbprint).
    pub key_id: String,
    /// The Ed25519 public key, base64url.
    pub public: String,
    /// Unix seconds after which envelopes signed by it are refused (`None`: current key).
    #[serde(default)]
    pub valid_until: Option<i64>,
}

/// The keys of one org.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    keys: BTreeMap<String, PublishedKey>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` as the current key; the current one (if any) stays valid until
    /// `transition_until`. Keys whose transition ended a day before `now` are dropped
    /// (until then they are named as retired when used).
    pub fn rotate_in(
        &mut self,
        key: &bulwark_crypto::VerifyingKey,
        transition_until: i64,
        now: i64,
    ) {
        for k in self.keys.values_mut() {
            if k.valid_until.is_none() {
                k.valid_until = Some(transition_until);
            }
        }
        self.keys
            .retain(|_, k| k.valid_until.is_none_or(|t| t.saturating_add(86_400) > now));
        self.keys.insert(
            key.kid().to_owned(),
            PublishedKey {
                key_id: key.kid().to_owned(),
                public: URL_SAFE_NO_PAD.encode(key.as_bytes()),
                valid_until: None,
            },
        );
    }

    /// The published keys.
    pub fn keys(&self) -> impl Iterator<Item = &PublishedKey> {
        self.keys.values()
    }

    /// A ring from published keys (what an agent receives).
    pub fn from_published(keys: impl IntoIterator<Item = PublishedKey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.key_id.clone(), k)).collect(),
        }
    }

    /// Checks `env`'s signature with the key it names, which must be in this ring and
    /// still valid at `now`.
    pub fn verify(&self, env: &Envelope, now: i64) -> Result<(), Refusal> {
        let k = self.keys.get(&env.key_id).ok_or(Refusal::UnknownKey)?;
        if k.valid_until.is_some_and(|t| now >= t) {
            return Err(Refusal::KeyRetired);
        }
        let public: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&k.public)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(Refusal::UnknownKey)?;
        let sig = env.signature_bytes().ok_or(Refusal::BadSignature)?;
        let msg = env
            .unsigned()
            .signing_bytes()
            .map_err(|_| Refusal::BadSignature)?;
        if bulwark_crypto::VerifyingKey::from_bytes(public).verify(&msg, &sig) {
            Ok(())
        } else {
            Err(Refusal::BadSignature)
        }
    }
}

/// Every org's ring, for the server's signature port.
#[derive(Default)]
pub struct OrgKeyRings(std::sync::RwLock<BTreeMap<String, KeyRing>>);

impl OrgKeyRings {
    /// Replaces `org`'s ring.
    pub fn set(&self, org: &str, ring: KeyRing) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(org.to_owned(), ring);
    }

    /// Every org's ring.
    pub fn all(&self) -> BTreeMap<String, KeyRing> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `org`'s ring, if it has keys.
    pub fn get(&self, org: &str) -> Option<KeyRing> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(org)
            .cloned()
    }
}

impl crate::gate::SignaturePort for OrgKeyRings {
    fn verify(&self, env: &Envelope, now: i64) -> Result<(), Refusal> {
        let rings = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the envelope's own org's keys: another org's key is unknown here.
        rings
            .get(&env.org)
            .ok_or(Refusal::UnknownKey)?
            .verify(env, now)
    }
}
