//! The OAuth 2 grant rules: client authentication (client secret by HTTP Basic or in the
//! body, or `private_key_jwt` per RFC 7523), the `client_credentials` grant (scopes, org
//! confinement, audience, DPoP (RFC 9449) or mTLS (RFC 8705) binding), introspection
//! (RFC 7662) and revocation (RFC 7009) with who may reach which token.
//!
//! Refusals are [`OAuthRefusal`]s (RFC 6749 §5.2, which OAuth clients parse) wrapped in
//! [`TokenError`]; the HTTP layer renders them. Every issuance is journaled before the
//! token leaves (fail-closed). Secrets, assertions and tokens are never logged.

use std::sync::Arc;

use base64::Engine as _;
use bulwark_core::{Name, ProblemCode, RequestId, Scope};
use bulwark_directory::{Binding, Event, PrincipalKind};
use bulwark_identity::jose::b64;
use bulwark_identity::token::{AccessClaims, Audience, Confirmation};
use bulwark_identity::{Refusal, assertion, client_secret, dpop, scope};
use bulwark_ledger::entry::{Draft, EntryData, Kind};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::AppState;
use crate::authn::AuthFailure;
use crate::error::Error;

/// The RFC 6749 error of a failed client authentication.
pub const INVALID_CLIENT: &str = "invalid_client";

/// An RFC 6749 §5.2 refusal.
#[derive(Debug)]
pub struct OAuthRefusal {
    /// The `error` code.
    pub error: &'static str,
    /// The metric label, and the `error_description` except for `invalid_client`, whose
    /// description is always the same so that it cannot tell which client ids exist.
    pub reason: &'static str,
    /// A fresh DPoP nonce to send along (`use_dpop_nonce`).
    pub nonce: Option<String>,
    /// Whether to ask for HTTP Basic credentials (`WWW-Authenticate: Basic`).
    pub basic_challenge: bool,
}

impl OAuthRefusal {
    /// A refused request (`invalid_request`, `invalid_scope` …).
    pub fn new(error: &'static str, reason: &'static str) -> Self {
        Self {
            error,
            reason,
            nonce: None,
            basic_challenge: false,
        }
    }

    /// A failed client authentication; `basic`: challenge for HTTP Basic.
    pub fn client(reason: &'static str, basic: bool) -> Self {
        Self {
            error: INVALID_CLIENT,
            reason,
            nonce: None,
            basic_challenge: basic,
        }
    }

    /// Whether the client failed to authenticate (401 rather than 400).
    pub fn is_client_authentication(&self) -> bool {
        self.error == INVALID_CLIENT
    }
}

/// Why a token, introspection or revocation request failed.
#[derive(Debug)]
pub enum TokenError {
    /// Refused the RFC 6749 way.
    OAuth(OAuthRefusal),
    /// The `DPoP` header cannot be used at all (several proofs, not text): refused as the
    /// API refuses a proof.
    ProofHeader(AuthFailure),
    /// Failed as any operation does (journal unavailable, internal).
    Failed(Error),
}

impl From<OAuthRefusal> for TokenError {
    fn from(r: OAuthRefusal) -> Self {
        Self::OAuth(r)
    }
}

impl From<Error> for TokenError {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

impl From<TokenError> for Error {
    /// For callers that answer problem+json rather than RFC 6749 JSON.
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::OAuth(r) if r.is_client_authentication() => {
                Error::refused(ProblemCode::Unauthorized, "client authentication failed")
            }
            TokenError::OAuth(r) => Error::bad_request(r.reason),
            TokenError::ProofHeader(f) => Error::refused(f.code, f.reason),
            TokenError::Failed(e) => e,
        }
    }
}

/// The internal failure every endpoint here answers (the cause is logged where it is known).
fn internal() -> TokenError {
    TokenError::Failed(Error::internal("token endpoint"))
}

/// How a client authenticates at an OAuth endpoint, as its request carried it.
#[derive(Default)]
pub struct ClientAuth<'a> {
    /// The credentials of an `Authorization: Basic` header (still base64).
    pub basic: Option<&'a str>,
    /// `client_id`.
    pub client_id: Option<&'a str>,
    /// `client_secret`.
    pub client_secret: Option<&'a str>,
    /// `client_assertion`.
    pub client_assertion: Option<&'a str>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<&'a str>,
}

/// The client as authenticated at an OAuth endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its id.
    pub id: String,
    /// The org it is confined to (`None`: an instance principal).
    pub org: Option<String>,
    /// How its tokens are bound.
    pub binding: Binding,
}

/// A fixed, valid hash to verify against when the client id is unknown, so that unknown
/// and known ids take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| client_secret::hash("bws_decoy").unwrap_or_default())
}

/// Authenticates the client of a token, introspection or revocation request: exactly one
/// method (Basic, a secret in the body, or an assertion).
pub async fn authenticate_client(
    state: &AppState,
    auth: &ClientAuth<'_>,
    now: i64,
) -> Result<Client, OAuthRefusal> {
    let basic = auth.basic;
    let body_secret = auth.client_secret;
    let methods = usize::from(basic.is_some())
        + usize::from(body_secret.is_some())
        + usize::from(auth.client_assertion.is_some());
    if methods != 1 {
        return Err(OAuthRefusal::client(
            if methods == 0 {
                "no_client_authentication"
            } else {
                "several_client_authentications"
            },
            methods == 0,
        ));
    }
    if let Some(a) = auth.client_assertion {
        return assertion_client(state, auth, a, now).await;
    }
    let (id, secret, via_basic) = match basic {
        Some(c) => {
            let (i, s) = basic_credentials(c)?;
            (i, s, true)
        }
        None => (
            auth.client_id
                .ok_or_else(|| OAuthRefusal::client("no_client_id", false))?
                .to_owned(),
            Zeroizing::new(body_secret.unwrap_or_default().to_owned()),
            false,
        ),
    };
    if let Some(cid) = auth.client_id
        && cid != id
    {
        return Err(OAuthRefusal::new("invalid_request", "client_id_mismatch"));
    }
    let found = {
        let dir = state.directory.read();
        dir.principal(&id)
            .filter(|p| p.kind == PrincipalKind::Service)
            .and_then(|p| {
                p.secret_hash
                    .clone()
                    .map(|h| (h, p.org.clone(), p.token_binding))
            })
    };
    let hash = found
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |(h, _, _)| h.clone());
    let permit = state
        .auth
        .argon_slots
        .acquire()
        .await
        .map_err(|_| OAuthRefusal::client("unavailable", false))?;
    let ok = tokio::task::spawn_blocking(move || client_secret::verify(&secret, &hash))
        .await
        .map_err(|_| OAuthRefusal::client("unavailable", false))?;
    drop(permit);
    match (ok, found) {
        (Ok(true), Some((_, org, binding))) => Ok(Client { id, org, binding }),
        (Err(_), Some(_)) => {
            tracing::error!("a stored client secret hash is malformed or too weak");
            Err(OAuthRefusal::client("bad_stored_hash", via_basic))
        }
        (_, None) => Err(OAuthRefusal::client("unknown_client", via_basic)),
        _ => Err(OAuthRefusal::client("bad_secret", via_basic)),
    }
}

/// The id and secret of HTTP Basic credentials (RFC 6749 §2.3.1: both form-urlencoded).
fn basic_credentials(c: &str) -> Result<(String, Zeroizing<String>), OAuthRefusal> {
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(c.as_bytes())
            .map_err(|_| OAuthRefusal::client("malformed", true))?,
    );
    let text = std::str::from_utf8(&raw).map_err(|_| OAuthRefusal::client("malformed", true))?;
    let (i, s) = text
        .split_once(':')
        .ok_or_else(|| OAuthRefusal::client("malformed", true))?;
    let dec = |x: &str| -> String {
        form_urlencoded::parse(format!("v={x}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok((dec(i), Zeroizing::new(dec(s))))
}

/// A `private_key_jwt` client: the assertion `a` checked against the client's registered
/// key, our audiences, the process start and single use.
async fn assertion_client(
    state: &AppState,
    auth: &ClientAuth<'_>,
    a: &str,
    now: i64,
) -> Result<Client, OAuthRefusal> {
    if auth.client_assertion_type != Some(assertion::ASSERTION_TYPE) {
        return Err(OAuthRefusal::new(
            "invalid_request",
            "bad_client_assertion_type",
        ));
    }
    // The client id comes from the (unverified) assertion's `sub`, then is held to it.
    let claimed = auth
        .client_id
        .map(str::to_owned)
        .or_else(|| assertion::unverified_subject(a))
        .ok_or_else(|| OAuthRefusal::client("malformed", false))?;
    let (jwk, org, binding) = {
        let dir = state.directory.read();
        let p = dir
            .principal(&claimed)
            .filter(|p| p.kind == PrincipalKind::Service)
            .ok_or_else(|| OAuthRefusal::client("unknown_client", false))?;
        (
            p.jwk
                .clone()
                .ok_or_else(|| OAuthRefusal::client("no_registered_key", false))?,
            p.org.clone(),
            p.token_binding,
        )
    };
    let key =
        assertion::ClientKey::parse(&jwk).map_err(|r| OAuthRefusal::client(r.reason(), false))?;
    let issuer = state.auth.issuer.clone();
    let endpoint = state.auth.token_endpoint();
    let introspection = format!("{issuer}/oauth2/introspect");
    let revocation = format!("{issuer}/oauth2/revoke");
    let audiences = [
        endpoint.as_str(),
        issuer.as_str(),
        introspection.as_str(),
        revocation.as_str(),
    ];
    let checked = assertion::verify(a, &claimed, &key, &audiences, now)
        .map_err(|r| OAuthRefusal::client(r.reason(), false))?;
    if checked.iat < state.auth.started_secs {
        return Err(OAuthRefusal::client("assertion_before_start", false));
    }
    let window = std::time::Duration::from_secs(assertion::REPLAY_WINDOW_SECS.unsigned_abs());
    crate::ops::first_use(
        state,
        "assertion",
        &[claimed.as_bytes(), checked.jti.as_bytes()],
        window,
    )
    .await
    .map_err(|r| OAuthRefusal::client(r.reason(), false))?;
    Ok(Client {
        id: claimed,
        org,
        binding,
    })
}

/// A `client_credentials` token request.
pub struct TokenRequest<'a> {
    /// `grant_type`.
    pub grant_type: Option<&'a str>,
    /// How the client authenticates.
    pub client: ClientAuth<'a>,
    /// `scope`.
    pub scope: Option<&'a str>,
    /// `resource` (RFC 8707).
    pub resource: Option<&'a str>,
    /// `audience`.
    pub audience: Option<&'a str>,
    /// The `DPoP` header: none, one proof, or unusable.
    pub proof: Result<Option<&'a str>, AuthFailure>,
    /// The base64url SHA-256 of the TLS client certificate, if one was presented.
    pub client_cert: Option<String>,
    /// The URL the request was made to, as a proof's `htu` must name it.
    pub url: Option<String>,
    /// The request id (`corr_id` of the issuance entry).
    pub corr: Option<&'a RequestId>,
}

/// An access token issued (and journaled).
pub struct IssuedToken {
    /// The token.
    pub access_token: Zeroizing<String>,
    /// `DPoP` or `Bearer`.
    pub token_type: &'static str,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The scopes granted.
    pub scope: String,
    /// The DPoP nonce for the client's next proof.
    pub nonce: String,
}

/// The `token.issue` entry.
#[derive(Serialize)]
struct Issued<'a> {
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
    token_binding: &'a str,
    exp: i64,
}
impl EntryData for Issued<'_> {}

/// The `client_credentials` grant at `now`: the client authenticated, its org enabled, the
/// audience ours, the scopes known, the token bound as the client's registration demands;
/// journaled before it is returned.
pub async fn issue(
    state: &AppState,
    req: TokenRequest<'_>,
    now: i64,
) -> Result<IssuedToken, TokenError> {
    if req.grant_type != Some("client_credentials") {
        return Err(OAuthRefusal::new("unsupported_grant_type", "unsupported_grant_type").into());
    }
    let client = authenticate_client(state, &req.client, now).await?;
    if let Some(org) = &client.org
        && let Ok(name) = Name::parse(org)
        && state
            .directory
            .read()
            .disabled_at(&Scope::Org(name))
            .is_some()
    {
        return Err(OAuthRefusal::new("unauthorized_client", "org_disabled").into());
    }
    // The audience: only ours, once.
    for r in [req.resource, req.audience].into_iter().flatten() {
        if r.trim_end_matches('/') != state.auth.issuer {
            return Err(OAuthRefusal::new("invalid_target", "bad_audience").into());
        }
    }
    let scope = scope::requested(req.scope)
        .map_err(|_| OAuthRefusal::new("invalid_scope", "invalid_scope"))?;
    // Binding.
    let proof = req.proof.map_err(TokenError::ProofHeader)?;
    let x5t = req.client_cert;
    let jkt = match (client.binding, proof) {
        (Binding::Mtls, _) if x5t.is_none() => {
            return Err(OAuthRefusal::new("invalid_request", "mtls_cert_required").into());
        }
        (Binding::Mtls, _) => None,
        (Binding::Dpop, None) => {
            return Err(OAuthRefusal::new("invalid_dpop_proof", "dpop_proof_missing").into());
        }
        (_, None) => None,
        (_, Some(p)) => Some(verify_proof(state, p, req.url.as_deref(), now).await?),
    };
    let mut jti = [0u8; 16];
    bulwark_crypto::fill_random(&mut jti).map_err(|_| internal())?;
    let jti = b64(&jti);
    let subject = format!("service:{}", client.id);
    let claims = AccessClaims {
        iss: state.auth.issuer.clone(),
        sub: subject.clone(),
        aud: Audience::One(state.auth.issuer.clone()),
        exp: now + state.auth.ttl,
        iat: now,
        nbf: now,
        jti: jti.clone(),
        client_id: client.id.clone(),
        scope: scope.clone(),
        org: client.org.clone(),
        cnf: match (&jkt, client.binding) {
            (Some(j), _) => Some(Confirmation {
                jkt: Some(j.clone()),
                x5t_s256: None,
            }),
            (None, Binding::Mtls) => Some(Confirmation {
                jkt: None,
                x5t_s256: x5t.clone(),
            }),
            (None, _) => None,
        },
    };
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    let binding = match (&jkt, client.binding) {
        (Some(_), _) => "dpop",
        (None, Binding::Mtls) => "mtls",
        (None, _) => "none",
    };
    let access_token = Zeroizing::new(state.auth.keyset().minter().mint(&claims).map_err(|e| {
        tracing::error!(error = %e, "minting failed");
        internal()
    })?);
    // Journal the issuance first: no token leaves unrecorded.
    let mut draft = Draft::new(
        Kind::Access,
        "token.issue",
        format!("principal/{}", client.id),
    )
    .actor(subject);
    if let Some(o) = &client.org {
        draft = draft.org(o);
    }
    if let Some(c) = req.corr {
        draft = draft.corr_id(c.as_str());
    }
    let draft = draft
        .data(&Issued {
            jti: &jti,
            client_id: &client.id,
            scope: &scope,
            token_binding: binding,
            exp: claims.exp,
        })
        .map_err(|_| internal())?;
    state
        .journal
        .ledger
        .append(draft)
        .await
        .map_err(Error::from)?;
    Ok(IssuedToken {
        access_token,
        token_type,
        expires_in: state.auth.ttl,
        scope,
        nonce: state.auth.nonces.current(now),
    })
}

/// Verifies the DPoP proof `p` of a token request made to `url`: its checks, our nonce
/// (when required), made after we started, used once. Its key's thumbprint.
async fn verify_proof(
    state: &AppState,
    p: &str,
    url: Option<&str>,
    now: i64,
) -> Result<String, OAuthRefusal> {
    let url = url.ok_or_else(|| OAuthRefusal::new("invalid_dpop_proof", "dpop_htu_mismatch"))?;
    let expect = dpop::Expect {
        method: "POST",
        url,
        access_token: None,
        nonces: Some(&state.auth.nonces),
        nonce_required: state.auth.require_token_nonce,
    };
    let v = dpop::verify(p, &expect, now).map_err(|r| {
        let mut e = OAuthRefusal::new("invalid_dpop_proof", r.reason());
        if r == Refusal::UseNonce {
            e.error = "use_dpop_nonce";
            e.nonce = Some(state.auth.nonces.current(now));
        }
        e
    })?;
    if v.iat < state.auth.started_secs {
        return Err(OAuthRefusal::new("invalid_dpop_proof", "dpop_stale"));
    }
    crate::ops::first_use(
        state,
        "dpop",
        &[v.jkt.as_bytes(), v.jti.as_bytes()],
        crate::authn::PROOF_REPLAY_TTL,
    )
    .await
    .map_err(|r| OAuthRefusal::new("invalid_dpop_proof", r.reason()))?;
    Ok(v.jkt)
}

/// Whether `client` may see or revoke a token of `claims`: its own tokens; for
/// introspection (`own_only` false), tokens of its own org; anything for an instance
/// principal that administers the instance (operators). `instance_admin` decides the
/// latter, asked only for an instance principal's foreign token.
fn within_reach(
    client: &Client,
    claims: &AccessClaims,
    own_only: bool,
    instance_admin: impl FnOnce() -> bool,
) -> bool {
    if claims.client_id == client.id {
        return true;
    }
    let instance_admin = client.org.is_none() && instance_admin();
    if own_only {
        return instance_admin;
    }
    instance_admin || (client.org.is_some() && client.org == claims.org)
}

/// Whether the service `client_id` administers the instance.
fn administers_instance(state: &AppState, client_id: &str) -> bool {
    let subject = bulwark_authz::Subject::Service(client_id.into());
    state
        .directory
        .read()
        .relations()
        .check(
            &subject,
            bulwark_authz::Permission::Administer,
            &Scope::Instance,
        )
        .allowed
}

/// [`within_reach`] against the directory.
fn reaches(state: &AppState, client: &Client, claims: &AccessClaims, own_only: bool) -> bool {
    within_reach(client, claims, own_only, || {
        administers_instance(state, &client.id)
    })
}

/// What introspection tells a client.
pub enum Introspection {
    /// Not a live token the client may see (or not a token at all).
    Inactive,
    /// A live token within the client's reach.
    Active(Arc<AccessClaims>),
}

/// `DPoP` for a token bound to a DPoP key, else `Bearer`.
pub fn token_type(claims: &AccessClaims) -> &'static str {
    if claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some()) {
        "DPoP"
    } else {
        "Bearer"
    }
}

/// Introspects `token` for an authenticated client at `now` (RFC 7662): active only when
/// it verifies, is live (org enabled, not revoked, principal not reset since) and is within
/// the client's reach.
pub async fn introspect(
    state: &AppState,
    auth: &ClientAuth<'_>,
    token: Option<&str>,
    now: i64,
) -> Result<Introspection, TokenError> {
    let client = authenticate_client(state, auth, now).await?;
    let token = token.ok_or_else(|| OAuthRefusal::new("invalid_request", "no_token"))?;
    let Ok(claims) = state.auth.verify(token, now) else {
        return Ok(Introspection::Inactive);
    };
    let live = {
        let dir = state.directory.read();
        let org_disabled = claims
            .org
            .as_deref()
            .and_then(|o| Name::parse(o).ok())
            .is_some_and(|o| dir.disabled_at(&Scope::Org(o)).is_some());
        !org_disabled
            && !dir.is_revoked(&claims.jti)
            && dir
                .principal(&claims.client_id)
                .is_some_and(|p| claims.iat >= p.not_before)
    };
    if !live || !reaches(state, &client, &claims, false) {
        return Ok(Introspection::Inactive);
    }
    Ok(Introspection::Active(claims))
}

/// Revokes `token` for an authenticated client at `now` (RFC 7009): journaled when it
/// verifies and is the client's own (or the client administers the instance); an invalid
/// or foreign token is left alone all the same, and the answer does not tell.
pub async fn revoke(
    state: &AppState,
    auth: &ClientAuth<'_>,
    token: Option<&str>,
    now: i64,
    corr: Option<&RequestId>,
) -> Result<(), TokenError> {
    let client = authenticate_client(state, auth, now).await?;
    let token = token.ok_or_else(|| OAuthRefusal::new("invalid_request", "no_token"))?;
    if let Ok(claims) = state.auth.verify(token, now)
        && reaches(state, &client, &claims, true)
    {
        let event = Event::TokenRevoke {
            jti: claims.jti.clone(),
            exp: claims.exp,
            sub: claims.sub.clone(),
        };
        let draft = event
            .draft(
                &format!("service:{}", client.id),
                claims.org.as_deref(),
                corr.map(RequestId::as_str),
            )
            .map_err(|_| internal())?;
        state
            .journal
            .ledger
            .append(draft)
            .await
            .map_err(Error::from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, org: Option<&str>) -> Client {
        Client {
            id: id.into(),
            org: org.map(str::to_owned),
            binding: Binding::None,
        }
    }

    fn claims(client_id: &str, org: Option<&str>) -> AccessClaims {
        AccessClaims {
            iss: "https://bulwark.test".into(),
            sub: format!("service:{client_id}"),
            aud: Audience::One("https://bulwark.test".into()),
            exp: 2_000,
            iat: 1_000,
            nbf: 1_000,
            jti: "jti-1".into(),
            client_id: client_id.into(),
            scope: "read".into(),
            org: org.map(str::to_owned),
            cnf: None,
        }
    }

    fn never() -> bool {
        panic!("the instance-admin check is not needed here")
    }

    #[test]
    fn a_client_reaches_its_own_tokens_without_asking_the_directory() {
        let c = client("svc_a", Some("acme"));
        assert!(within_reach(
            &c,
            &claims("svc_a", Some("acme")),
            true,
            never
        ));
        assert!(within_reach(
            &c,
            &claims("svc_a", Some("acme")),
            false,
            never
        ));
    }

    #[test]
    fn an_org_client_introspects_its_org_but_revokes_only_its_own() {
        let c = client("svc_a", Some("acme"));
        let sibling = claims("svc_b", Some("acme"));
        assert!(within_reach(&c, &sibling, false, never));
        assert!(!within_reach(&c, &sibling, true, never));
    }

    #[test]
    fn an_org_client_reaches_nothing_of_another_org_or_the_instance() {
        let c = client("svc_a", Some("acme"));
        assert!(!within_reach(
            &c,
            &claims("svc_x", Some("globex")),
            false,
            never
        ));
        assert!(!within_reach(&c, &claims("svc_x", None), false, never));
        assert!(!within_reach(&c, &claims("svc_x", None), true, never));
    }

    #[test]
    fn an_instance_client_reaches_foreign_tokens_only_as_an_instance_admin() {
        let c = client("ops", None);
        let foreign = claims("svc_a", Some("acme"));
        for own_only in [true, false] {
            assert!(within_reach(&c, &foreign, own_only, || true));
            assert!(!within_reach(&c, &foreign, own_only, || false));
        }
        // Two instance principals do not share an "org" of `None`.
        assert!(!within_reach(&c, &claims("other", None), false, || false));
    }

    #[test]
    fn token_type_follows_the_dpop_binding() {
        let mut c = claims("svc_a", None);
        assert_eq!(token_type(&c), "Bearer");
        c.cnf = Some(Confirmation {
            jkt: None,
            x5t_s256: Some("x".into()),
        });
        assert_eq!(token_type(&c), "Bearer");
        c.cnf = Some(Confirmation {
            jkt: Some("j".into()),
            x5t_s256: None,
        });
        assert_eq!(token_type(&c), "DPoP");
    }

    #[test]
    fn basic_credentials_are_base64_then_form_decoded() {
        assert_eq!(
            basic_credentials("c3ZjX2E6czNjciUzQXQ=")
                .map(|(i, s)| (i, s.to_string()))
                .ok(),
            Some(("svc_a".to_owned(), "s3cr:t".to_owned()))
        );
        let r = basic_credentials("!!!").err();
        assert!(r.is_some_and(|r| r.is_client_authentication() && r.basic_challenge));
    }
}
