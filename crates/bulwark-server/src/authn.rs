//! Authentication and authorization of API requests: the one path every protected route
//! takes.
//!
//! [`Caller`] is an axum extractor: it reads `Authorization` (`DPoP` or `Bearer`) and the
//! `DPoP` proof, verifies the access token (signature, `typ`, `alg`, issuer, audience,
//! time), checks revocation (the token's `jti`, the principal's not-before, the principal's
//! existence), the binding (a `cnf.jkt` token needs a fresh proof by that key, with `ath`,
//! for this method and URL, used once), and that the token's org is not disabled. Every
//! failure is a 401 (403 for a disabled org) problem with an RFC 6750 / RFC 9449
//! `WWW-Authenticate` challenge, counted in `auth_failures_total{reason}`.
//!
//! [`authorize`] then asks the relation store, narrowed by the token's scopes and confined
//! to the token's org; a denial is journaled (kind `access`, outcome `denied`, with the
//! reason) before the 403 leaves. Handlers authorize on the scope named in the path
//! *before* they look it up, so a caller without rights gets 403 whether or not it exists.
//!
//! Tokens and proofs are never logged.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bulwark_authz::{Decision, Permission, Reason, Subject};
use bulwark_core::{Name, Problem, ProblemCode, RequestId, Scope};
use bulwark_crypto::SigningKey;
use bulwark_directory::keys::RetiredKey;
use bulwark_http::ApiProblem;
use bulwark_identity::Refusal;
use bulwark_identity::dpop::{self, Nonces};
use bulwark_identity::token::{AccessClaims, AccessVerifier, Minter};
use bulwark_ledger::entry::{Draft, EntryData, Kind, Outcome};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;

use crate::AppState;

/// DPoP proof algorithms we accept, as advertised in challenges and metadata.
pub const DPOP_ALGS: &str = "EdDSA ES256";

/// The token service's keys and policy.
pub struct Auth {
    /// Issuer and audience: the API's public URL.
    pub issuer: String,
    keys: std::sync::RwLock<Arc<KeySet>>,
    /// DPoP server nonces.
    pub nonces: Nonces,
    /// Access token lifetime.
    pub ttl: i64,
    /// Whether the token endpoint demands a nonce.
    pub require_token_nonce: bool,
    /// Key of signed paging cursors (per process: a cursor does not survive a restart).
    pub cursor_key: aws_lc_rs::hmac::Key,
    /// Claims of verified tokens.
    verified: bulwark_identity::token::VerifiedTokens,
    /// Bounds concurrent Argon2id verifications (19 MiB each) to twice the cores.
    pub argon_slots: tokio::sync::Semaphore,
    /// When this process started (Unix seconds). The memory replay cache does not survive
    /// a restart, so proofs and assertions made before it are refused: their first use may
    /// be forgotten.
    pub started_secs: i64,
}

impl Auth {
    /// The token service of `issuer`, signing with `key`.
    pub fn new(
        issuer: String,
        key: &SigningKey,
        retired: &[RetiredKey],
        ttl: i64,
        require_token_nonce: bool,
    ) -> anyhow::Result<Self> {
        let keys = std::sync::RwLock::new(Arc::new(KeySet::new(&issuer, key, retired)?));
        let mut ck = zeroize::Zeroizing::new([0u8; 32]);
        bulwark_crypto::fill_random(ck.as_mut())?;
        Ok(Self {
            keys,
            nonces: Nonces::new()?,
            ttl,
            require_token_nonce,
            cursor_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, ck.as_ref()),
            started_secs: bulwark_identity::jose::now_secs(),
            verified: bulwark_identity::token::VerifiedTokens::new(65_536),
            argon_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            ),
            issuer,
        })
    }

    /// Verifies an access token's signature and claims (no binding, no revocation); a
    /// token verified before is answered from the cache (expiry re-checked).
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<AccessClaims>, Refusal> {
        if let Some(c) = self.verified.get(token, now) {
            return Ok(c);
        }
        let claims = Arc::new(self.keyset().verifier.verify(token, now)?);
        self.verified.insert(token, claims.clone());
        Ok(claims)
    }

    /// The current keys: the active one, and retired ones still within their window.
    pub fn keyset(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Publishes a new key set (after a rotation, or when a retired key's window closed).
    pub fn install(
        &self,
        active: &SigningKey,
        retired: &[RetiredKey],
    ) -> Result<(), bulwark_crypto::CryptoError> {
        let set = Arc::new(KeySet::new(&self.issuer, active, retired)?);
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = set;
        // Tokens of a key that left the set must not be served from the cache.
        self.verified.clear();
        Ok(())
    }

    /// The token endpoint's URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer)
    }
}

/// How long a retired key stays published and accepted: the longest token lifetime plus
/// the clock skew, so that every token it signed expires first.
pub const RETIRED_KEY_WINDOW_MS: u64 = (bulwark_identity::token::MAX_LIFETIME_SECS as u64
    + bulwark_identity::token::SKEW_SECS as u64)
    * 1000;

/// Which retired keys are still within their window at `now_ms`.
pub fn live_retired(retired: &[RetiredKey], now_ms: u64) -> Vec<RetiredKey> {
    retired
        .iter()
        .filter(|k| k.retired_ms.saturating_add(RETIRED_KEY_WINDOW_MS) > now_ms)
        .cloned()
        .collect()
}

/// The keys tokens are minted and verified with, and the JWKS that publishes them.
pub struct KeySet {
    active: SigningKey,
    minter: Minter,
    verifier: AccessVerifier,
    jwks: serde_json::Value,
    active_kid: String,
}

impl KeySet {
    fn new(
        issuer: &str,
        active: &SigningKey,
        retired: &[RetiredKey],
    ) -> Result<Self, bulwark_crypto::CryptoError> {
        let vk = active.verifying_key();
        let jwk = |kid: &str, x: &[u8; 32]| {
            serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                "kid": kid, "x": bulwark_identity::jose::b64(x),
            })
        };
        let mut published = vec![jwk(active.kid(), vk.as_bytes())];
        published.extend(retired.iter().map(|k| jwk(&k.kid, &k.public)));
        let verifying = std::iter::once((active.kid(), vk.as_bytes()))
            .chain(retired.iter().map(|k| (k.kid.as_str(), &k.public)));
        Ok(Self {
            // A private copy: the set is rebuilt from it when retired keys age out.
            active: SigningKey::from_pkcs8(&active.pkcs8_der())?,
            minter: Minter::new(&active.pkcs8_der(), active.kid()),
            verifier: AccessVerifier::new(issuer, issuer, verifying),
            jwks: serde_json::json!({ "keys": published }),
            active_kid: active.kid().to_owned(),
        })
    }

    /// The active signing key.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The minter (active key).
    pub fn minter(&self) -> &Minter {
        &self.minter
    }

    /// The published JWKS.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// The active key id.
    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }
}

/// An authenticated caller.
pub struct Caller {
    /// The principal id.
    pub principal: String,
    /// Its authorization subject.
    pub subject: Subject,
    /// The org its token is confined to (`None`: an instance principal).
    pub org: Option<Name>,
    /// The verified claims.
    pub claims: Arc<AccessClaims>,
}

impl Caller {
    /// The token's scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> + Clone {
        self.claims.scopes()
    }
}

/// Why authentication failed.
#[derive(Debug)]
pub struct AuthFailure {
    /// `auth_failures_total{reason}`.
    pub reason: &'static str,
    /// 401, or 403 for a disabled org.
    pub code: ProblemCode,
    /// The RFC 6750/9449 error code for the challenge (`None`: no credentials at all).
    pub error: Option<&'static str>,
    /// A fresh nonce to send along (`use_dpop_nonce`).
    pub nonce: Option<String>,
}

impl AuthFailure {
    fn invalid(reason: &'static str) -> Self {
        Self {
            reason,
            code: ProblemCode::Unauthorized,
            error: Some("invalid_token"),
            nonce: None,
        }
    }

    fn from_refusal(r: Refusal) -> Self {
        Self::invalid(r.reason())
    }
}

/// Counts an authentication failure.
pub fn count_failure(reason: &'static str) {
    metrics::counter!(bulwark_http::metrics::AUTH_FAILURES_TOTAL, "reason" => reason).increment(1);
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        count_failure(self.reason);
        tracing::info!(reason = self.reason, "authentication failed");
        let detail = match self.reason {
            "missing_token" => "an access token is required".to_owned(),
            r => format!("the access token or proof was refused: {r}"),
        };
        let mut resp = ApiProblem(Problem::new(self.code, detail)).into_response();
        if self.code == ProblemCode::Unauthorized {
            let challenge = match self.error {
                None => format!(r#"DPoP algs="{DPOP_ALGS}", Bearer realm="bulwark""#),
                Some(e) => format!(
                    r#"DPoP error="{e}", error_description="{}", algs="{DPOP_ALGS}", Bearer realm="bulwark", error="{}""#,
                    self.reason,
                    if e == "use_dpop_nonce" {
                        "invalid_token"
                    } else {
                        e
                    }
                ),
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(n) = self.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            resp.headers_mut().insert("dpop-nonce", n);
        }
        resp
    }
}

/// The URL the client addressed: `https://` + `Host` (or the HTTP/2 authority) + path.
pub fn request_url(parts: &Parts) -> Option<String> {
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })?;
    Some(format!("https://{host}{}", parts.uri.path()))
}

/// RFC 8705 `x5t#S256` of the connection's verified client certificate, if any.
pub fn client_cert_thumbprint(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<bulwark_http::ClientCertSha256>()
        .map(|c| bulwark_identity::jose::b64(&c.0))
}

/// The single `DPoP` header, if exactly one is present.
pub fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, AuthFailure> {
    let mut all = headers.get_all("dpop").iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v
            .to_str()
            .map(Some)
            .map_err(|_| AuthFailure::from_refusal(Refusal::Malformed)),
        _ => Err(AuthFailure::invalid("dpop_multiple_proofs")),
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = AuthFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let now = i64::try_from(state.clock.now_secs()).unwrap_or(i64::MAX);
        authenticate(parts, state, now).await
    }
}

/// How long a resource request's DPoP proof `jti` is remembered: the whole window in which
/// its `iat` is accepted.
pub const PROOF_REPLAY_TTL: std::time::Duration =
    std::time::Duration::from_secs(2 * dpop::IAT_WINDOW_SECS.unsigned_abs());

/// Records the first use of a resource request's DPoP proof in the shared replay cache;
/// refuses a second use, and fails closed when the cache cannot answer.
async fn first_use_of_proof(state: &AppState, jkt: &str, jti: &str) -> Result<(), AuthFailure> {
    crate::ops::first_use(
        state,
        "dpop",
        &[jkt.as_bytes(), jti.as_bytes()],
        PROOF_REPLAY_TTL,
    )
    .await
    .map_err(AuthFailure::from_refusal)
}

/// The authentication steps, in order.
pub async fn authenticate(
    parts: &Parts,
    state: &AppState,
    now: i64,
) -> Result<Caller, AuthFailure> {
    let auth = &state.auth;
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(AuthFailure {
            reason: "missing_token",
            code: ProblemCode::Unauthorized,
            error: None,
            nonce: None,
        });
    };
    let value = value
        .to_str()
        .map_err(|_| AuthFailure::from_refusal(Refusal::Malformed))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthFailure::from_refusal(Refusal::Malformed))?;
    let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
    if !dpop_scheme && !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::invalid("unsupported_scheme"));
    }
    let token = token.trim();
    let claims = auth.verify(token, now).map_err(AuthFailure::from_refusal)?;

    // Binding.
    let proof = dpop_header(&parts.headers)?;
    match claims.cnf.as_ref().and_then(|c| c.jkt.as_deref()) {
        Some(jkt) => {
            if !dpop_scheme {
                // RFC 9449 §7.2: a DPoP-bound token presented as a bearer token.
                return Err(AuthFailure::invalid("dpop_required"));
            }
            let proof = proof.ok_or_else(|| AuthFailure::invalid("dpop_proof_missing"))?;
            let url =
                request_url(parts).ok_or_else(|| AuthFailure::invalid("dpop_htu_mismatch"))?;
            let expect = dpop::Expect {
                method: parts.method.as_str(),
                url: &url,
                access_token: Some(token),
                nonces: Some(&auth.nonces),
                nonce_required: false,
            };
            let verified = dpop::verify(proof, &expect, now).map_err(|r| {
                let mut f = AuthFailure::from_refusal(r);
                if r == Refusal::UseNonce {
                    f.error = Some("use_dpop_nonce");
                    f.nonce = Some(auth.nonces.current(now));
                }
                f
            })?;
            if verified.jkt != jkt {
                return Err(AuthFailure::from_refusal(Refusal::KeyMismatch));
            }
            if verified.iat < auth.started_secs {
                return Err(AuthFailure::from_refusal(Refusal::Stale));
            }
            first_use_of_proof(state, &verified.jkt, &verified.jti).await?;
        }
        None => {
            if dpop_scheme {
                return Err(AuthFailure::invalid("token_not_dpop_bound"));
            }
            if let Some(bound) = claims.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref()) {
                // RFC 8705 §3: the connection's client certificate must be the one the
                // token was issued to.
                let presented = client_cert_thumbprint(parts)
                    .ok_or_else(|| AuthFailure::invalid("mtls_cert_missing"))?;
                let same: bool =
                    subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), bound.as_bytes()).into();
                if !same {
                    return Err(AuthFailure::invalid("mtls_cert_mismatch"));
                }
            }
        }
    }

    // Revocation and the principal's current standing.
    let dir = state.directory.read();
    if dir.is_revoked(&claims.jti) {
        return Err(AuthFailure::invalid("revoked"));
    }
    let principal_id = claims.client_id.clone();
    let Some(principal) = dir.principal(&principal_id) else {
        return Err(AuthFailure::invalid("unknown_principal"));
    };
    let subject = principal.subject();
    if claims.sub != subject.to_string() {
        return Err(AuthFailure::invalid("subject_mismatch"));
    }
    if claims.iat < principal.not_before {
        return Err(AuthFailure::invalid("principal_revoked"));
    }
    if claims.org != principal.org {
        return Err(AuthFailure::invalid("org_mismatch"));
    }
    let org = match claims.org.as_deref() {
        None => None,
        Some(o) => {
            let name = Name::parse(o).map_err(|_| AuthFailure::invalid("org_mismatch"))?;
            if dir.disabled_at(&Scope::Org(name.clone())).is_some() {
                return Err(AuthFailure {
                    reason: "org_disabled",
                    code: ProblemCode::ScopeDisabled,
                    error: None,
                    nonce: None,
                });
            }
            Some(name)
        }
    };
    drop(dir);
    Ok(Caller {
        principal: principal_id,
        subject,
        org,
        claims,
    })
}

/// The `data` of an access-denied entry.
#[derive(Serialize)]
struct Denial<'a> {
    permission: &'static str,
    reason: String,
    method: &'a str,
    route: &'a str,
}
impl EntryData for Denial<'_> {}

/// What the handler is doing, for the denial entry.
pub struct Action<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The route pattern.
    pub route: &'a str,
    /// The request id.
    pub corr_id: Option<&'a RequestId>,
}

/// Decides whether `caller` may `permission` on `scope`, confined to the token's org and
/// narrowed by its scopes. A denial is journaled and answered 403 (`scope_disabled` when a
/// disabled scope decided it).
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    permission: Permission,
    scope: &Scope,
    action: &Action<'_>,
) -> Result<Decision, crate::error::Error> {
    let decision = decide(state, caller, permission, scope);
    if decision.allowed {
        return Ok(decision);
    }
    let reason = decision.reason.to_string();
    count_failure(match decision.reason {
        Reason::Disabled { .. } => "scope_disabled",
        Reason::TokenScopeMissing { .. } => "token_scope_missing",
        _ => "permission_denied",
    });
    let mut draft = Draft::new(
        Kind::Access,
        format!("authz.{}", permission.as_str()),
        scope.to_string(),
    )
    .actor(caller.subject.to_string())
    .outcome(Outcome::Denied);
    // A probe outside the token's org is the prober's record, not the target's: it goes
    // to the caller's org (so one org cannot write into another's audit trail).
    let entry_org = if matches!(decision.reason, Reason::OutsideTokenOrg) {
        caller.org.as_ref()
    } else {
        scope.org().or(caller.org.as_ref())
    };
    if let Some(o) = entry_org {
        draft = draft.org(o.as_str());
    }
    if let Some(c) = action.corr_id {
        draft = draft.corr_id(c.as_str());
    }
    let draft = draft.data(&Denial {
        permission: permission.as_str(),
        reason: reason.clone(),
        method: action.method,
        route: action.route,
    });
    match draft {
        Ok(d) => {
            if let Err(e) = state.journal.ledger.append(d).await {
                // The answer is a refusal either way; the failure is loud.
                tracing::error!(error = %e, "could not journal an access denial");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not build an access denial entry"),
    }
    let code = if matches!(decision.reason, Reason::Disabled { .. }) {
        ProblemCode::ScopeDisabled
    } else {
        ProblemCode::PermissionDenied
    };
    Err(crate::error::Error::refused(
        code,
        format!("{} on {scope} denied: {reason}", permission.as_str()),
    ))
}

/// The decision without side effects (also used by `GET /v1/authz/check` and listings).
pub fn decide(
    state: &AppState,
    caller: &Caller,
    permission: Permission,
    scope: &Scope,
) -> Decision {
    state.directory.read().relations().check_with_scopes(
        &caller.subject,
        permission,
        scope,
        caller.scopes(),
        caller.org.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_keys_stay_for_the_longest_token_lifetime_plus_skew() {
        let k = |ms| RetiredKey {
            kid: "k".into(),
            public: [0; 32],
            retired_ms: ms,
        };
        let now = 10_000_000;
        assert_eq!(RETIRED_KEY_WINDOW_MS, 930_000);
        assert_eq!(live_retired(&[k(now - 929_999)], now).len(), 1);
        assert!(live_retired(&[k(now - 930_000)], now).is_empty());
    }
}
