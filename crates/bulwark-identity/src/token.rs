//! RFC 9068 access tokens: minted as `at+jwt`, EdDSA, at most [`MAX_LIFETIME_SECS`] long,
//! for exactly one audience; verified against the keys the instance publishes.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::jose::{self, Refusal};

/// The longest access token we mint or accept (15 minutes).
pub const MAX_LIFETIME_SECS: i64 = 15 * 60;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const SKEW_SECS: i64 = 30;
/// The `typ` of an access token (RFC 9068 §2.1).
pub const TYP: &str = "at+jwt";

/// Proof-of-possession confirmation (RFC 7800): DPoP key thumbprint or mTLS certificate hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 9449: base64url SHA-256 thumbprint of the DPoP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705: base64url SHA-256 of the client certificate's DER.
    #[serde(default, rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

/// `aud` as it may arrive; only a single string is ever accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several: always refused.
    Many(Vec<String>),
}

/// The claims of our access tokens. Holds no secret (the token itself is the bearer
/// credential and is never stored or logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: this instance's URL.
    pub iss: String,
    /// Subject, e.g. `service:svc_…`.
    pub sub: String,
    /// The single audience.
    pub aud: Audience,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique id (for revocation).
    pub jti: String,
    /// The client that asked.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The org the token is confined to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Key binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl AccessClaims {
    /// The token's scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> + Clone {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

/// Whether `aud` is a single, concrete audience (no wildcard, no list syntax).
pub fn audience_is_acceptable(aud: &str) -> bool {
    !aud.is_empty()
        && aud.len() <= 512
        && !aud.contains('*')
        && !aud.chars().any(|c| c.is_whitespace() || c == ',')
}

/// Errors minting a token (a bug or a broken key, never the caller's fault).
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The claims break our own rules.
    #[error("refusing to mint: {0}")]
    Rules(&'static str),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

/// Mints access tokens with the instance's current token key.
pub struct Minter {
    key: EncodingKey,
    kid: String,
}

impl Minter {
    /// A minter over an Ed25519 PKCS#8 document (v1 or v2) whose key id is `kid`.
    pub fn new(pkcs8: &Zeroizing<Vec<u8>>, kid: &str) -> Self {
        Self {
            key: EncodingKey::from_ed_der(pkcs8),
            kid: kid.to_owned(),
        }
    }

    /// The key id stamped into headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims`, after checking them against the minting rules.
    pub fn mint(&self, claims: &AccessClaims) -> Result<String, MintError> {
        match &claims.aud {
            Audience::One(a) if audience_is_acceptable(a) => {}
            _ => return Err(MintError::Rules("exactly one concrete audience")),
        }
        if claims.exp - claims.iat > MAX_LIFETIME_SECS || claims.exp <= claims.iat {
            return Err(MintError::Rules("lifetime"));
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(TYP.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|_| MintError::Sign)
    }
}

/// Verifies access tokens: `typ`, `alg`, `kid`, signature, `iss`, the one `aud`, `exp`,
/// `nbf`, `iat` and the lifetime cap. Revocation and binding are the caller's next steps.
pub struct AccessVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    audience: String,
}

impl AccessVerifier {
    /// A verifier for tokens of `issuer` meant for `audience`, signed by any of `keys`
    /// (key id, raw Ed25519 public key).
    pub fn new<'a>(
        issuer: &str,
        audience: &str,
        keys: impl IntoIterator<Item = (&'a str, &'a [u8; 32])>,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = SKEW_SECS.unsigned_abs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Self {
            keys: keys
                .into_iter()
                .map(|(kid, pk)| (kid.to_owned(), DecodingKey::from_ed_der(pk)))
                .collect(),
            validation,
            audience: audience.to_owned(),
        }
    }

    /// Checks `token` at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, Refusal> {
        let header = jose::peek(token)?;
        if header.alg != "EdDSA" {
            return Err(Refusal::BadAlg);
        }
        if !jose::typ_is(&header, TYP) {
            return Err(Refusal::BadTyp);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|k| self.keys.get(k))
            .ok_or(Refusal::UnknownKid)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|e| jose::map_err(&e))?;
        let claims = data.claims;
        match &claims.aud {
            Audience::One(a) if *a == self.audience => {}
            _ => return Err(Refusal::BadAudience),
        }
        if claims.iat > now + SKEW_SECS || claims.nbf > now + SKEW_SECS {
            return Err(Refusal::NotYetValid);
        }
        if claims.exp > now + MAX_LIFETIME_SECS + SKEW_SECS
            || claims.exp - claims.iat > MAX_LIFETIME_SECS
        {
            return Err(Refusal::LifetimeTooLong);
        }
        if claims.exp <= now - SKEW_SECS {
            return Err(Refusal::Expired);
        }
        Ok(claims)
    }
}

/// Claims of access tokens whose signature and claims were verified, keyed by the SHA-256
/// of the token (the token itself is not kept). A hit still re-checks expiry; revocation
/// and binding are checked per request by the caller as for a miss. Sharded; a full shard
/// is emptied (the cost of a miss is one signature check). Clear it when the key set
/// changes.
pub struct VerifiedTokens {
    shards: Vec<std::sync::Mutex<HashMap<[u8; 32], std::sync::Arc<AccessClaims>>>>,
    per_shard: usize,
}

const TOKEN_SHARDS: usize = 16;

impl VerifiedTokens {
    /// A cache holding about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..TOKEN_SHARDS)
                .map(|_| std::sync::Mutex::new(HashMap::new()))
                .collect(),
            per_shard: capacity.div_ceil(TOKEN_SHARDS).max(1),
        }
    }

    fn shard(
        &self,
        h: &[u8; 32],
    ) -> Option<std::sync::MutexGuard<'_, HashMap<[u8; 32], std::sync::Arc<AccessClaims>>>> {
        self.shards
            .get(usize::from(h[0]) % TOKEN_SHARDS)
            .and_then(|m| m.lock().ok())
    }

    /// The cached claims of `token`, if it was verified and has not expired since.
    pub fn get(&self, token: &str, now: i64) -> Option<std::sync::Arc<AccessClaims>> {
        let h = bulwark_crypto::sha256(token.as_bytes());
        let mut shard = self.shard(&h)?;
        let claims = shard.get(&h)?.clone();
        if claims.exp <= now - SKEW_SECS {
            shard.remove(&h);
            return None;
        }
        Some(claims)
    }

    /// Remembers verified claims.
    pub fn insert(&self, token: &str, claims: std::sync::Arc<AccessClaims>) {
        let h = bulwark_crypto::sha256(token.as_bytes());
        if let Some(mut shard) = self.shard(&h) {
            if shard.len() >= self.per_shard {
                shard.clear();
            }
            shard.insert(h, claims);
        }
    }

    /// Forgets everything (after a key-set change).
    pub fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut m) = s.lock() {
                m.clear();
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bulwark_crypto::SigningKey;

    pub(crate) const ISS: &str = "https://bulwark.test";

    pub(crate) fn key() -> (SigningKey, Minter) {
        let k = SigningKey::generate().unwrap();
        let der = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            k.encode().trim(),
        )
        .unwrap();
        let m = Minter::new(&Zeroizing::new(der), k.kid());
        (k, m)
    }

    pub(crate) fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: ISS.into(),
            sub: "service:svc_a".into(),
            aud: Audience::One(ISS.into()),
            exp: now + 300,
            iat: now,
            nbf: now,
            jti: "j1".into(),
            client_id: "svc_a".into(),
            scope: "read admin".into(),
            org: Some("acme".into()),
            cnf: Some(Confirmation {
                jkt: Some("t".into()),
                x5t_s256: None,
            }),
        }
    }

    fn verifier(k: &SigningKey) -> AccessVerifier {
        let vk = k.verifying_key();
        AccessVerifier::new(ISS, ISS, [(k.kid(), vk.as_bytes())])
    }

    fn resign(header: &str, payload: &str, k: &SigningKey) -> String {
        let msg = format!(
            "{}.{}",
            jose::b64(header.as_bytes()),
            jose::b64(payload.as_bytes())
        );
        let sig = k.sign(msg.as_bytes());
        format!("{msg}.{}", jose::b64(&sig))
    }

    #[test]
    fn round_trip_and_each_refusal() {
        let now = jose::now_secs();
        let (k, m) = key();
        let v = verifier(&k);
        let t = m.mint(&claims(now)).unwrap();
        let c = v.verify(&t, now).unwrap();
        assert_eq!(c, claims(now));
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["read", "admin"]);

        // Forged signature: a different key under our kid.
        let (other, _) = key();
        let payload = serde_json::to_string(&claims(now)).unwrap();
        let hdr = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#, k.kid());
        assert_eq!(
            v.verify(&resign(&hdr, &payload, &other), now),
            Err(Refusal::BadSignature)
        );
        // The genuine signer re-signing the same parts verifies (the test can fail).
        assert!(v.verify(&resign(&hdr, &payload, &k), now).is_ok());
        // alg none, HS256 and a wrong typ.
        let none = format!(
            "{}.{}.",
            jose::b64(br#"{"alg":"none","typ":"at+jwt"}"#),
            jose::b64(payload.as_bytes())
        );
        assert_eq!(v.verify(&none, now), Err(Refusal::BadAlg));
        let hs = resign(r#"{"alg":"HS256","typ":"at+jwt"}"#, &payload, &k);
        assert_eq!(v.verify(&hs, now), Err(Refusal::BadAlg));
        let jwt = resign(&hdr.replace("at+jwt", "JWT"), &payload, &k);
        assert_eq!(v.verify(&jwt, now), Err(Refusal::BadTyp));
        let unknown = resign(&hdr.replace(k.kid(), "nope"), &payload, &k);
        assert_eq!(v.verify(&unknown, now), Err(Refusal::UnknownKid));

        // Time.
        let mut c = claims(now - 1000);
        c.exp = now - 100;
        assert_eq!(v.verify(&m.mint(&c).unwrap(), now), Err(Refusal::Expired));
        let c = claims(now + 600);
        assert_eq!(
            v.verify(&m.mint(&c).unwrap(), now),
            Err(Refusal::NotYetValid)
        );
        let mut c = claims(now);
        c.exp = now + 3600;
        let long = resign(&hdr, &serde_json::to_string(&c).unwrap(), &k);
        assert_eq!(v.verify(&long, now), Err(Refusal::LifetimeTooLong));

        // Audience: another, several, wildcard.
        for aud in [
            serde_json::json!("https://other"),
            serde_json::json!([ISS, "https://other"]),
            serde_json::json!("*"),
        ] {
            let mut p = serde_json::to_value(claims(now)).unwrap();
            p["aud"] = aud;
            let t = resign(&hdr, &p.to_string(), &k);
            assert_eq!(v.verify(&t, now), Err(Refusal::BadAudience), "{p}");
        }
        let mut p = serde_json::to_value(claims(now)).unwrap();
        p["iss"] = "https://evil".into();
        assert_eq!(
            v.verify(&resign(&hdr, &p.to_string(), &k), now),
            Err(Refusal::BadIssuer)
        );
    }

    #[test]
    fn the_verified_cache_rechecks_expiry_and_is_bounded() {
        let now = jose::now_secs();
        let c = VerifiedTokens::new(32);
        let mut claims = claims(now);
        c.insert("tok", std::sync::Arc::new(claims.clone()));
        assert!(c.get("tok", now).is_some());
        assert!(c.get("other", now).is_none());
        assert!(
            c.get("tok", claims.exp + SKEW_SECS).is_none(),
            "expired entries are not served"
        );
        assert!(c.get("tok", now).is_none(), "and are dropped");
        claims.exp = now + 60;
        for i in 0..1000 {
            c.insert(&format!("t{i}"), std::sync::Arc::new(claims.clone()));
        }
        let held: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= 32 + TOKEN_SHARDS);
        c.clear();
        assert!(c.get("t999", now).is_none());
    }

    #[test]
    fn minting_rules() {
        let now = jose::now_secs();
        let (_, m) = key();
        let mut c = claims(now);
        c.aud = Audience::Many(vec![ISS.into(), "x".into()]);
        assert!(m.mint(&c).is_err());
        c.aud = Audience::One("*".into());
        assert!(m.mint(&c).is_err());
        let mut c = claims(now);
        c.exp = now + MAX_LIFETIME_SECS + 1;
        assert!(m.mint(&c).is_err());
    }
}
