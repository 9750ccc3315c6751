//! What every JWS we accept shares: compact form, a bounded size, a header we read
//! ourselves before any signature check (so that `alg: none`, a wrong `typ`, an unknown
//! `crit` or a private key in `jwk` are refused by name), and the mapping of
//! `jsonwebtoken`'s errors onto our refusal reasons.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// The largest compact JWS we parse. Ours are well under 1 KiB; the HTTP layer bounds
/// header sizes too, this keeps the parser's own promise.
pub const MAX_JWS_LEN: usize = 8 * 1024;

/// Why a JWS (access token, DPoP proof or client assertion) was refused. `reason()` is
/// the label of `auth_failures_total{reason}` and the `error_description` sent back: it
/// names the check that failed and never echoes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not three base64url segments, bad JSON, too long, missing claims.
    #[error("malformed")]
    Malformed,
    /// `alg` is `none` or not one we accept here.
    #[error("bad_alg")]
    BadAlg,
    /// `typ` is not the one this kind of JWS must carry.
    #[error("bad_typ")]
    BadTyp,
    /// A `crit` header: we understand no extensions.
    #[error("unsupported_crit")]
    Crit,
    /// The `kid` names no key we publish.
    #[error("unknown_kid")]
    UnknownKid,
    /// The signature does not verify.
    #[error("bad_signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `nbf` or `iat` lies in the future.
    #[error("not_yet_valid")]
    NotYetValid,
    /// The audience is not exactly ours (arrays and wildcards are refused too).
    #[error("bad_audience")]
    BadAudience,
    /// The issuer is not ours.
    #[error("bad_issuer")]
    BadIssuer,
    /// The token claims a lifetime above the maximum.
    #[error("lifetime_too_long")]
    LifetimeTooLong,
    /// The DPoP proof's `jwk` is missing, private or not a supported public key.
    #[error("bad_jwk")]
    BadJwk,
    /// The DPoP proof is for another HTTP method.
    #[error("dpop_htm_mismatch")]
    HtmMismatch,
    /// The DPoP proof is for another URL.
    #[error("dpop_htu_mismatch")]
    HtuMismatch,
    /// The DPoP proof's `iat` is outside the accepted window.
    #[error("dpop_stale")]
    Stale,
    /// The `jti` was seen before.
    #[error("replayed")]
    Replayed,
    /// The replay cache is full of live entries: refused rather than forgetting one.
    #[error("replay_cache_full")]
    ReplayCacheFull,
    /// The DPoP proof lacks `ath` or it does not hash this access token.
    #[error("dpop_ath_mismatch")]
    AthMismatch,
    /// The DPoP proof's key is not the one the token is bound to.
    #[error("dpop_key_mismatch")]
    KeyMismatch,
    /// A server nonce is required and missing, or stale.
    #[error("use_dpop_nonce")]
    UseNonce,
}

impl Refusal {
    /// The metric label / `error_description`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadAlg => "bad_alg",
            Self::BadTyp => "bad_typ",
            Self::Crit => "unsupported_crit",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadAudience => "bad_audience",
            Self::BadIssuer => "bad_issuer",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::BadJwk => "bad_jwk",
            Self::HtmMismatch => "dpop_htm_mismatch",
            Self::HtuMismatch => "dpop_htu_mismatch",
            Self::Stale => "dpop_stale",
            Self::Replayed => "replayed",
            Self::ReplayCacheFull => "replay_cache_full",
            Self::AthMismatch => "dpop_ath_mismatch",
            Self::KeyMismatch => "dpop_key_mismatch",
            Self::UseNonce => "use_dpop_nonce",
        }
    }
}

/// The protected header fields we look at, read before the signature is checked.
#[derive(Debug, Deserialize)]
pub(crate) struct RawHeader {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub jwk: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// Splits a compact JWS and reads its header. Refuses oversized input, anything but
/// three segments, and `crit`.
pub(crate) fn peek(token: &str) -> Result<RawHeader, Refusal> {
    if token.len() > MAX_JWS_LEN {
        return Err(Refusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| Refusal::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)?;
    if header.crit.is_some() {
        return Err(Refusal::Crit);
    }
    Ok(header)
}

/// The `typ` check of RFC 8725 §3.11, tolerating the `application/` prefix (RFC 7515 §4.1.9).
pub(crate) fn typ_is(header: &RawHeader, expected: &str) -> bool {
    header.typ.as_deref().is_some_and(|t| {
        let t = t.strip_prefix("application/").unwrap_or(t);
        t.eq_ignore_ascii_case(expected)
    })
}

/// Maps a `jsonwebtoken` failure onto a refusal.
pub(crate) fn map_err(e: &jsonwebtoken::errors::Error) -> Refusal {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => Refusal::BadSignature,
        K::ExpiredSignature => Refusal::Expired,
        K::ImmatureSignature => Refusal::NotYetValid,
        K::InvalidAudience => Refusal::BadAudience,
        K::InvalidIssuer => Refusal::BadIssuer,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => Refusal::BadAlg,
        K::InvalidEcdsaKey | K::InvalidEddsaKey | K::InvalidKeyFormat => Refusal::BadJwk,
        _ => Refusal::Malformed,
    }
}

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(v: &str) -> String {
        b64(v.as_bytes())
    }

    #[test]
    fn header_checks() {
        let t = format!("{}.{}.", seg(r#"{"alg":"none"}"#), seg("{}"));
        assert_eq!(peek(&t).unwrap().alg, "none");
        let t = format!(
            "{}.{}.x",
            seg(r#"{"alg":"EdDSA","crit":["b64"]}"#),
            seg("{}")
        );
        assert_eq!(peek(&t).unwrap_err(), Refusal::Crit);
        assert_eq!(peek("a.b").unwrap_err(), Refusal::Malformed);
        assert_eq!(peek("a.b.c.d").unwrap_err(), Refusal::Malformed);
        assert_eq!(
            peek(&"a".repeat(MAX_JWS_LEN + 1)).unwrap_err(),
            Refusal::Malformed
        );
        let h = peek(&format!(
            "{}.e30.x",
            seg(r#"{"alg":"EdDSA","typ":"application/AT+JWT"}"#)
        ))
        .unwrap();
        assert!(typ_is(&h, "at+jwt"));
        assert!(!typ_is(&h, "dpop+jwt"));
    }
}
