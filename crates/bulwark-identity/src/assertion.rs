//! `private_key_jwt` client authentication (RFC 7523 §2.2, OIDC Core §9): the client signs
//! a short JWT with the private half of a public key it registered; we check the
//! signature, `iss` = `sub` = `client_id`, an `aud` naming our token endpoint or issuer,
//! `exp` no further than [`MAX_ASSERTION_LIFETIME_SECS`] ahead, a required `iat` no
//! older than [`MAX_ASSERTION_AGE_SECS`], and hand back `jti` for the single-use check, which
//! must remember it until `exp` (see [`REPLAY_WINDOW_SECS`]).
//!
//! The lifetime cap is one hour because widely used clients default to it (authlib signs
//! assertions with `exp = now + 3600`; the interop test found our first, 5-minute cap
//! refusing them). Single use makes the long `exp` harmless as long as the replay cache
//! keeps each `jti` for the whole window.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::jose::{self, Refusal};
use crate::token::{Audience, SKEW_SECS};

/// The `client_assertion_type` of RFC 7523.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far ahead an assertion's `exp` may be.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// How old an assertion's `iat` may be.
pub const MAX_ASSERTION_AGE_SECS: i64 = 300;
/// How long a used assertion's `jti` must be remembered: `exp` may lie up to the lifetime
/// plus skew ahead and is accepted until skew after it.
pub const REPLAY_WINDOW_SECS: i64 = MAX_ASSERTION_LIFETIME_SECS + 2 * SKEW_SECS + 1;

/// A client's registered public key (Ed25519 or P-256), checked to be public and usable.
#[derive(Clone)]
pub struct ClientKey {
    key: DecodingKey,
    alg: Algorithm,
    /// Its RFC 7638 thumbprint.
    pub thumbprint: String,
}

impl ClientKey {
    /// Parses a registered JWK; refuses private members and other key types.
    pub fn parse(jwk: &serde_json::Value) -> Result<Self, Refusal> {
        let obj = jwk.as_object().ok_or(Refusal::BadJwk)?;
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| obj.contains_key(*m))
        {
            return Err(Refusal::BadJwk);
        }
        let alg = match (
            obj.get("kty").and_then(|v| v.as_str()),
            obj.get("crv").and_then(|v| v.as_str()),
        ) {
            (Some("OKP"), Some("Ed25519")) => Algorithm::EdDSA,
            (Some("EC"), Some("P-256")) => Algorithm::ES256,
            _ => return Err(Refusal::BadJwk),
        };
        let parsed: Jwk = serde_json::from_value(jwk.clone()).map_err(|_| Refusal::BadJwk)?;
        let key = DecodingKey::from_jwk(&parsed).map_err(|_| Refusal::BadJwk)?;
        let thumbprint = parsed
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .map_err(|_| Refusal::BadJwk)?;
        Ok(Self {
            key,
            alg,
            thumbprint,
        })
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    jti: String,
}

/// A verified assertion: its `jti` (record it as used) and `exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// Single-use id.
    pub jti: String,
    /// Expiry.
    pub exp: i64,
    /// When the client made it (required: the server refuses assertions made before it
    /// started, whose first use it may have forgotten).
    pub iat: i64,
}

/// Verifies `assertion` from `client_id` against its registered `key`; `audiences` are the
/// values we accept in `aud` (token endpoint URL, issuer).
pub fn verify(
    assertion: &str,
    client_id: &str,
    key: &ClientKey,
    audiences: &[&str],
    now: i64,
) -> Result<Assertion, Refusal> {
    let header = jose::peek(assertion)?;
    let alg_ok = matches!(
        (header.alg.as_str(), key.alg),
        ("EdDSA", Algorithm::EdDSA) | ("ES256", Algorithm::ES256)
    );
    if !alg_ok {
        return Err(Refusal::BadAlg);
    }
    if let Some(t) = header.typ.as_deref()
        && !t.eq_ignore_ascii_case("JWT")
        && !jose::typ_is(&header, "client-authentication+jwt")
    {
        return Err(Refusal::BadTyp);
    }
    let mut validation = Validation::new(key.alg);
    validation.leeway = SKEW_SECS.unsigned_abs();
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key.key, &validation)
        .map_err(|e| jose::map_err(&e))?
        .claims;
    if claims.iss != client_id || claims.sub != client_id {
        return Err(Refusal::BadIssuer);
    }
    let aud_ok = match &claims.aud {
        Audience::One(a) => audiences.contains(&a.as_str()),
        Audience::Many(v) => v.len() == 1 && v.iter().all(|a| audiences.contains(&a.as_str())),
    };
    if !aud_ok {
        return Err(Refusal::BadAudience);
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME_SECS + SKEW_SECS {
        return Err(Refusal::LifetimeTooLong);
    }
    if claims.iat > now + SKEW_SECS {
        return Err(Refusal::NotYetValid);
    }
    if claims.iat < now - MAX_ASSERTION_AGE_SECS {
        return Err(Refusal::Stale);
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(Refusal::Malformed);
    }
    Ok(Assertion {
        jti: claims.jti,
        exp: claims.exp,
        iat: claims.iat,
    })
}

/// The `sub` of `assertion`, read without verifying anything: which client it claims to
/// be, so that its registered key can be found and [`verify`] hold it to that claim.
pub fn unverified_subject(assertion: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("sub")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpop::tests::TestKey;

    const EP: &str = "https://bulwark.test/oauth2/token";

    #[test]
    fn assertion_checks() {
        let now = jose::now_secs();
        for k in [TestKey::ed(), TestKey::es()] {
            let ck = ClientKey::parse(&k.jwk()).unwrap();
            let h = serde_json::json!({"alg": k.alg(), "typ": "JWT"});
            let good = serde_json::json!({"iss":"svc_a","sub":"svc_a","aud":EP,"exp":now+60,"iat":now,"jti":"a1"});
            let a = verify(&k.sign_jws(&h, &good), "svc_a", &ck, &[EP], now).unwrap();
            assert_eq!(a.jti, "a1");
            assert_eq!(
                verify(&k.sign_jws(&h, &good), "svc_b", &ck, &[EP], now),
                Err(Refusal::BadIssuer)
            );
            let mut c = good.clone();
            c["aud"] = "https://elsewhere".into();
            assert_eq!(
                verify(&k.sign_jws(&h, &c), "svc_a", &ck, &[EP], now),
                Err(Refusal::BadAudience)
            );
            let mut c = good.clone();
            c["exp"] = (now + 7200).into();
            assert_eq!(
                verify(&k.sign_jws(&h, &c), "svc_a", &ck, &[EP], now),
                Err(Refusal::LifetimeTooLong)
            );
            let mut c = good.clone();
            c["exp"] = (now + 3600).into();
            assert!(
                verify(&k.sign_jws(&h, &c), "svc_a", &ck, &[EP], now).is_ok(),
                "authlib's default"
            );
            c["iat"] = (now - 600).into();
            assert_eq!(
                verify(&k.sign_jws(&h, &c), "svc_a", &ck, &[EP], now),
                Err(Refusal::Stale)
            );
            let mut c = good.clone();
            c["exp"] = (now - 120).into();
            assert_eq!(
                verify(&k.sign_jws(&h, &c), "svc_a", &ck, &[EP], now),
                Err(Refusal::Expired)
            );
            let other = if k.alg() == "EdDSA" {
                TestKey::ed()
            } else {
                TestKey::es()
            };
            assert_eq!(
                verify(&other.sign_jws(&h, &good), "svc_a", &ck, &[EP], now),
                Err(Refusal::BadSignature)
            );
        }
        let mut private = TestKey::ed().jwk();
        private["d"] = "AAAA".into();
        assert!(ClientKey::parse(&private).is_err());
        assert!(ClientKey::parse(&serde_json::json!({"kty":"oct","k":"AAAA"})).is_err());
    }

    #[test]
    fn the_claimed_subject_is_read_without_trusting_it() {
        use base64::Engine as _;
        let b = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jws = format!(
            "{}.{}.sig",
            b(r#"{"alg":"EdDSA"}"#),
            b(r#"{"sub":"svc-1"}"#)
        );
        assert_eq!(unverified_subject(&jws).as_deref(), Some("svc-1"));
        assert_eq!(unverified_subject("not-a-jws"), None);
        assert_eq!(
            unverified_subject(&format!("x.{}.y", b(r#"{"sub":7}"#))),
            None
        );
    }
}
