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

impl KeyRing {
    /// Checks many envelopes at once: the same verdicts as [`KeyRing::verify`] one by one,
    /// with the signatures checked by one Ed25519 batch equation (ed25519-dalek, with
    /// randomness derived from the whole batch). If the batch fails, each candidate is
    /// checked alone to name the bad ones.
    pub fn verify_batch(&self, envs: &[Envelope], now: i64) -> Vec<Result<(), Refusal>> {
        let mut verdicts: Vec<Result<(), Refusal>> = Vec::with_capacity(envs.len());
        let mut msgs: Vec<Vec<u8>> = Vec::new();
        let mut sigs = Vec::new();
        let mut keys = Vec::new();
        let mut candidates = Vec::new();
        for (i, env) in envs.iter().enumerate() {
            let pre = (|| {
                let k = self.keys.get(&env.key_id).ok_or(Refusal::UnknownKey)?;
                if k.valid_until.is_some_and(|t| now >= t) {
                    return Err(Refusal::KeyRetired);
                }
                let public: [u8; 32] = URL_SAFE_NO_PAD
                    .decode(&k.public)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or(Refusal::UnknownKey)?;
                let vk = ed25519_dalek::VerifyingKey::from_bytes(&public)
                    .map_err(|_| Refusal::UnknownKey)?;
                let sig = env.signature_bytes().ok_or(Refusal::BadSignature)?;
                let msg = env
                    .unsigned()
                    .signing_bytes()
                    .map_err(|_| Refusal::BadSignature)?;
                Ok((vk, ed25519_dalek::Signature::from_bytes(&sig), msg))
            })();
            match pre {
                Ok((vk, sig, msg)) => {
                    keys.push(vk);
                    sigs.push(sig);
                    msgs.push(msg);
                    candidates.push(i);
                    verdicts.push(Ok(()));
                }
                Err(e) => verdicts.push(Err(e)),
            }
        }
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        if !candidates.is_empty() && ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_err() {
            for &i in &candidates {
                if let (Some(v), Some(env)) = (verdicts.get_mut(i), envs.get(i)) {
                    *v = self.verify(env, now);
                }
            }
        }
        verdicts
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Unsigned;

    #[test]
    fn batch_verdicts_equal_single_verdicts() {
        let a = bulwark_crypto::SigningKey::generate().unwrap();
        let b = bulwark_crypto::SigningKey::generate().unwrap();
        let mut ring = KeyRing::new();
        ring.rotate_in(&a.verifying_key(), 0, 0);
        let mk = |i: i64, k: &bulwark_crypto::SigningKey| {
            Unsigned::new(
                format!("e{i}"),
                "t",
                "acme",
                "n1",
                100,
                serde_json::json!({"i": i}),
            )
            .unwrap()
            .sign(k)
            .unwrap()
        };
        let mut envs: Vec<Envelope> = (0..40).map(|i| mk(i, &a)).collect();
        let all_good = ring.verify_batch(&envs, 100);
        assert!(all_good.iter().all(Result::is_ok));
        envs[7].payload = serde_json::json!({"i": 700});
        envs[20] = mk(20, &b);
        envs[33].signature = envs[34].signature.clone();
        let batch = ring.verify_batch(&envs, 100);
        let single: Vec<_> = envs.iter().map(|e| ring.verify(e, 100)).collect();
        assert_eq!(batch, single);
        assert_eq!(batch[7], Err(Refusal::BadSignature));
        assert_eq!(batch[20], Err(Refusal::UnknownKey));
        assert_eq!(batch[33], Err(Refusal::BadSignature));
        assert_eq!(batch.iter().filter(|v| v.is_ok()).count(), 37);
    }
}
