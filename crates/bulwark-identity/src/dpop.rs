//! DPoP proofs (RFC 9449): `typ: dpop+jwt`, EdDSA or ES256, a public `jwk` in the header,
//! `htm`/`htu` matching the request, `iat` within ±[`IAT_WINDOW_SECS`], `ath` on resource
//! requests, and optionally a server nonce. Single use of `jti` is the caller's (the server:
//! the shared replay port of `bulwark-shared`), keyed by the returned thumbprint and `jti`.

use aws_lc_rs::hmac;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::jose::{self, Refusal};

/// How far a proof's `iat` may be from the server's clock.
pub const IAT_WINDOW_SECS: i64 = 30;
/// How long a server nonce stays acceptable: its own bucket and the next.
pub const NONCE_BUCKET_SECS: i64 = 300;
/// The proof's `typ`.
pub const TYP: &str = "dpop+jwt";

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// What the request the proof accompanies looks like.
pub struct Expect<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The request URL as the client addressed it (scheme, authority, path).
    pub url: &'a str,
    /// The access token presented with it (resource requests), whose hash `ath` must carry.
    pub access_token: Option<&'a str>,
    /// The nonce policy.
    pub nonces: Option<&'a Nonces>,
    /// Whether a nonce is required (when `nonces` is set).
    pub nonce_required: bool,
}

/// A proof that passed every stateless check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// RFC 7638 thumbprint of the proof key (`cnf.jkt`).
    pub jkt: String,
    /// The proof's id (single use).
    pub jti: String,
    /// When the client made it.
    pub iat: i64,
}

/// Members that make a JWK private (RFC 7517/7518).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// Checks a proof at `now` against `expect`.
pub fn verify(proof: &str, expect: &Expect<'_>, now: i64) -> Result<Verified, Refusal> {
    let header = jose::peek(proof)?;
    if !jose::typ_is(&header, TYP) {
        return Err(Refusal::BadTyp);
    }
    let alg = match header.alg.as_str() {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        _ => return Err(Refusal::BadAlg),
    };
    let raw = header.jwk.ok_or(Refusal::BadJwk)?;
    if PRIVATE_MEMBERS.iter().any(|m| raw.contains_key(*m)) {
        return Err(Refusal::BadJwk);
    }
    let (kty, crv) = (
        raw.get("kty").and_then(|v| v.as_str()),
        raw.get("crv").and_then(|v| v.as_str()),
    );
    let matches = match alg {
        Algorithm::EdDSA => kty == Some("OKP") && crv == Some("Ed25519"),
        _ => kty == Some("EC") && crv == Some("P-256"),
    };
    if !matches {
        return Err(Refusal::BadJwk);
    }
    let jwk: Jwk =
        serde_json::from_value(serde_json::Value::Object(raw)).map_err(|_| Refusal::BadJwk)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| Refusal::BadJwk)?;
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|e| jose::map_err(&e))?
        .claims;
    if claims.htm != expect.method {
        return Err(Refusal::HtmMismatch);
    }
    match (normalize_htu(&claims.htu), normalize_htu(expect.url)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(Refusal::HtuMismatch),
    }
    if claims.iat.abs_diff(now) > IAT_WINDOW_SECS.unsigned_abs() {
        return Err(Refusal::Stale);
    }
    if let Some(token) = expect.access_token {
        let want = jose::b64(&bulwark_crypto::sha256(token.as_bytes()));
        if claims.ath.as_deref() != Some(want.as_str()) {
            return Err(Refusal::AthMismatch);
        }
    }
    if let Some(nonces) = expect.nonces {
        match claims.nonce.as_deref() {
            Some(n) if nonces.is_valid(n, now) => {}
            Some(_) => return Err(Refusal::UseNonce),
            None if expect.nonce_required => return Err(Refusal::UseNonce),
            None => {}
        }
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(Refusal::Malformed);
    }
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| Refusal::BadJwk)?;
    Ok(Verified {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// `htu` without query and fragment, scheme and host lower-cased (RFC 9449 §4.3 point 9,
/// with the normalization of RFC 3986 §6.2.2.1). `None` if it is not an http(s) URL.
pub fn normalize_htu(u: &str) -> Option<String> {
    let end = u.find(['?', '#']).unwrap_or(u.len());
    let u = u.get(..end)?;
    let (scheme, rest) = u.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut authority = authority.to_ascii_lowercase();
    if scheme == "https" && authority.ends_with(":443") {
        authority.truncate(authority.len() - 4);
    }
    let path = if path.is_empty() { "/" } else { path };
    Some(format!("{scheme}://{authority}{path}"))
}

/// Stateless server nonces: an HMAC over a time bucket. Valid in their bucket and the next,
/// so a nonce lives between 5 and 10 minutes; no per-client state.
pub struct Nonces {
    key: hmac::Key,
}

impl Nonces {
    /// A nonce source with a fresh random key (nonces do not survive a restart; clients
    /// get `use_dpop_nonce` and retry, as RFC 9449 §8 expects).
    pub fn new() -> Result<Self, bulwark_crypto::CryptoError> {
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        bulwark_crypto::fill_random(k.as_mut())?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()),
        })
    }

    fn for_bucket(&self, bucket: i64) -> String {
        let tag = hmac::sign(&self.key, &bucket.to_be_bytes());
        let mut out = bucket.to_be_bytes().to_vec();
        out.extend_from_slice(tag.as_ref().get(..16).unwrap_or_default());
        jose::b64(&out)
    }

    /// The nonce to hand out at `now`.
    pub fn current(&self, now: i64) -> String {
        self.for_bucket(now.div_euclid(NONCE_BUCKET_SECS))
    }

    /// Whether `nonce` is one of ours and still fresh.
    pub fn is_valid(&self, nonce: &str, now: i64) -> bool {
        let Ok(raw) = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            nonce.as_bytes(),
        ) else {
            return false;
        };
        let (Some(b), Some(tag)) = (raw.get(..8), raw.get(8..)) else {
            return false;
        };
        let mut be = [0u8; 8];
        be.copy_from_slice(b);
        let bucket = i64::from_be_bytes(be);
        let cur = now.div_euclid(NONCE_BUCKET_SECS);
        if bucket != cur && bucket != cur - 1 {
            return false;
        }
        let full = hmac::sign(&self.key, &be);
        tag.len() == 16
            && full
                .as_ref()
                .get(..16)
                .is_some_and(|t| subtle::ConstantTimeEq::ct_eq(t, tag).into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
    };

    /// A client-side DPoP key for tests.
    pub(crate) enum TestKey {
        Ed(Ed25519KeyPair),
        Es(EcdsaKeyPair),
    }

    impl TestKey {
        pub(crate) fn ed() -> Self {
            let doc =
                Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
            Self::Ed(Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap())
        }
        pub(crate) fn es() -> Self {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Self::Es(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap(),
            )
        }
        pub(crate) fn jwk(&self) -> serde_json::Value {
            match self {
                Self::Ed(k) => {
                    serde_json::json!({"kty":"OKP","crv":"Ed25519","x": jose::b64(k.public_key().as_ref())})
                }
                Self::Es(k) => {
                    let p = k.public_key().as_ref();
                    serde_json::json!({"kty":"EC","crv":"P-256","x": jose::b64(&p[1..33]),"y": jose::b64(&p[33..65])})
                }
            }
        }
        pub(crate) fn alg(&self) -> &'static str {
            match self {
                Self::Ed(_) => "EdDSA",
                Self::Es(_) => "ES256",
            }
        }
        pub(crate) fn sign_jws(
            &self,
            header: &serde_json::Value,
            claims: &serde_json::Value,
        ) -> String {
            let msg = format!(
                "{}.{}",
                jose::b64(header.to_string().as_bytes()),
                jose::b64(claims.to_string().as_bytes())
            );
            let sig = match self {
                Self::Ed(k) => k.sign(msg.as_bytes()).as_ref().to_vec(),
                Self::Es(k) => k
                    .sign(&aws_lc_rs::rand::SystemRandom::new(), msg.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
            };
            format!("{msg}.{}", jose::b64(&sig))
        }
        pub(crate) fn proof(&self, claims: &serde_json::Value) -> String {
            let h = serde_json::json!({"typ": TYP, "alg": self.alg(), "jwk": self.jwk()});
            self.sign_jws(&h, claims)
        }
    }

    const URL: &str = "https://bulwark.test/v1/orgs/acme";

    fn expect<'a>(token: Option<&'a str>, nonces: Option<&'a Nonces>) -> Expect<'a> {
        Expect {
            method: "GET",
            url: URL,
            access_token: token,
            nonces,
            nonce_required: nonces.is_some(),
        }
    }

    fn claims(now: i64, token: Option<&str>) -> serde_json::Value {
        let mut c = serde_json::json!({"jti": "p1", "htm": "GET", "htu": URL, "iat": now});
        if let Some(t) = token {
            c["ath"] = jose::b64(&bulwark_crypto::sha256(t.as_bytes())).into();
        }
        c
    }

    #[test]
    fn both_algorithms_verify_and_thumbprints_differ() {
        let now = jose::now_secs();
        let mut seen = Vec::new();
        for k in [TestKey::ed(), TestKey::es()] {
            let v = verify(
                &k.proof(&claims(now, Some("tok"))),
                &expect(Some("tok"), None),
                now,
            )
            .unwrap();
            assert_eq!(v.jti, "p1");
            seen.push(v.jkt);
        }
        assert_ne!(seen[0], seen[1]);
    }

    #[test]
    fn each_refusal() {
        let now = jose::now_secs();
        let k = TestKey::ed();
        let ok = claims(now, Some("tok"));
        let e = expect(Some("tok"), None);
        let mut c = ok.clone();
        c["htm"] = "POST".into();
        assert_eq!(verify(&k.proof(&c), &e, now), Err(Refusal::HtmMismatch));
        let mut c = ok.clone();
        c["htu"] = "https://bulwark.test/v1/orgs/other".into();
        assert_eq!(verify(&k.proof(&c), &e, now), Err(Refusal::HtuMismatch));
        // Query and fragment are ignored, host case and default port too.
        let mut c = ok.clone();
        c["htu"] = "HTTPS://Bulwark.Test:443/v1/orgs/acme?x=1".into();
        assert!(verify(&k.proof(&c), &e, now).is_ok());
        let mut c = ok.clone();
        c["iat"] = (now - 31).into();
        assert_eq!(verify(&k.proof(&c), &e, now), Err(Refusal::Stale));
        c["iat"] = (now + 31).into();
        assert_eq!(verify(&k.proof(&c), &e, now), Err(Refusal::Stale));
        c["iat"] = i64::MIN.into();
        assert_eq!(
            verify(&k.proof(&c), &e, now),
            Err(Refusal::Stale),
            "no overflow"
        );
        let mut c = ok.clone();
        c["htu"] = "urn:x".into();
        let odd = Expect {
            url: "not a url",
            ..expect(Some("tok"), None)
        };
        assert_eq!(verify(&k.proof(&c), &odd, now), Err(Refusal::HtuMismatch));
        let c = claims(now, None);
        assert_eq!(verify(&k.proof(&c), &e, now), Err(Refusal::AthMismatch));
        let c = claims(now, Some("other-token"));
        assert_eq!(verify(&k.proof(&c), &e, now), Err(Refusal::AthMismatch));

        // Header checks.
        let h = serde_json::json!({"typ": "JWT", "alg": "EdDSA", "jwk": k.jwk()});
        assert_eq!(verify(&k.sign_jws(&h, &ok), &e, now), Err(Refusal::BadTyp));
        let h = serde_json::json!({"typ": TYP, "alg": "none", "jwk": k.jwk()});
        assert_eq!(verify(&k.sign_jws(&h, &ok), &e, now), Err(Refusal::BadAlg));
        let h = serde_json::json!({"typ": TYP, "alg": "ES256", "jwk": k.jwk()});
        assert_eq!(verify(&k.sign_jws(&h, &ok), &e, now), Err(Refusal::BadJwk));
        let mut private = k.jwk();
        private["d"] = "AAAA".into();
        let h = serde_json::json!({"typ": TYP, "alg": "EdDSA", "jwk": private});
        assert_eq!(verify(&k.sign_jws(&h, &ok), &e, now), Err(Refusal::BadJwk));
        let h = serde_json::json!({"typ": TYP, "alg": "EdDSA"});
        assert_eq!(verify(&k.sign_jws(&h, &ok), &e, now), Err(Refusal::BadJwk));
        // Signed by another key than the one in the header.
        let other = TestKey::ed();
        let h = serde_json::json!({"typ": TYP, "alg": "EdDSA", "jwk": k.jwk()});
        assert_eq!(
            verify(&other.sign_jws(&h, &ok), &e, now),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn nonces() {
        let now = 1_000_000;
        let n = Nonces::new().unwrap();
        let cur = n.current(now);
        assert!(n.is_valid(&cur, now));
        assert!(n.is_valid(&cur, now + NONCE_BUCKET_SECS));
        assert!(!n.is_valid(&cur, now + 2 * NONCE_BUCKET_SECS));
        assert!(!Nonces::new().unwrap().is_valid(&cur, now));
        assert!(!n.is_valid("garbage", now));
        let k = TestKey::es();
        let e = expect(None, Some(&n));
        let mut c = serde_json::json!({"jti": "p1", "htm": "GET", "htu": URL, "iat": now});
        assert_eq!(verify(&k.proof(&c), &e, now), Err(Refusal::UseNonce));
        c["nonce"] = "stale".into();
        assert_eq!(verify(&k.proof(&c), &e, now), Err(Refusal::UseNonce));
        c["nonce"] = cur.into();
        assert!(verify(&k.proof(&c), &e, now).is_ok());
    }

    #[test]
    fn htu_normalization() {
        assert_eq!(
            normalize_htu("https://a.b:443").as_deref(),
            Some("https://a.b/")
        );
        assert_eq!(normalize_htu("ftp://a.b/x"), None);
        assert_eq!(
            normalize_htu("https://a.b:8443/x#f").as_deref(),
            Some("https://a.b:8443/x")
        );
    }
}
