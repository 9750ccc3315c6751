//! The OAuth 2 endpoints: token (RFC 6749 `client_credentials`; client secret by HTTP
//! Basic or in the body, or `private_key_jwt` per RFC 7523), DPoP binding (RFC 9449) with
//! server nonces, introspection (RFC 7662), revocation (RFC 7009), the JWKS and the
//! RFC 8414 metadata.
//!
//! Errors here follow RFC 6749 §5.2 (`{"error", "error_description"}`), which OAuth
//! clients parse, rather than problem+json. Every issuance is journaled before the token
//! leaves (fail-closed: 503 `audit_unavailable` when the journal cannot append). Failures
//! are counted in `auth_failures_total{reason}`; secrets, assertions and tokens are never
//! logged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use base64::Engine as _;
use bulwark_core::{Name, RequestId, Scope};
use bulwark_directory::{Binding, Event, PrincipalKind};
use bulwark_identity::jose::{b64, now_secs};
use bulwark_identity::token::{AccessClaims, Audience, Confirmation};
use bulwark_identity::{Refusal, assertion, client_secret, dpop};
use bulwark_ledger::entry::{Draft, EntryData, Kind};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use bulwark_http::no_store;

use crate::AppState;
use crate::authn::{DPOP_ALGS, client_cert_thumbprint, count_failure, dpop_header, request_url};
use crate::error::Error;

/// Every scope a token may carry.
pub const SCOPES: [&str; 8] = [
    "admin",
    "certs:issue",
    "deploy",
    "secrets:read",
    "secrets:write",
    "exec",
    "audit:read",
    "read",
];
/// The scope granted when a client asks for none.
pub const DEFAULT_SCOPE: &str = "read";

/// The OAuth routes: the token, introspection and revocation endpoints authenticate the
/// client; the keys and metadata are public.
pub(super) fn routes(t: super::Table) -> super::Table {
    use super::table::{Plane::Api, Rule, Verb::*};
    t.add(Api, Post, "/oauth2/token", Rule::Client, token)
        .add(Api, Post, "/oauth2/introspect", Rule::Client, introspect)
        .add(Api, Post, "/oauth2/revoke", Rule::Client, revoke)
        .add(
            Api,
            Get,
            "/.well-known/jwks.json",
            Rule::Public {
                reason: "the public keys that verify our tokens",
            },
            jwks,
        )
        .add(
            Api,
            Get,
            "/.well-known/oauth-authorization-server",
            Rule::Public {
                reason: "RFC 8414 metadata: endpoints and algorithms",
            },
            metadata,
        )
}

/// An RFC 6749 §5.2 error.
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    /// The metric label, and the `error_description` except for `invalid_client`, whose
    /// description is always the same so that it cannot tell which client ids exist.
    reason: &'static str,
    nonce: Option<String>,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, reason: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            reason,
            nonce: None,
            basic_challenge: false,
        }
    }

    fn client(reason: &'static str, basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            reason,
            nonce: None,
            basic_challenge: basic,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        count_failure(self.reason);
        tracing::info!(
            error = self.error,
            reason = self.reason,
            "token request refused"
        );
        let description = if self.error == "invalid_client" {
            "client authentication failed"
        } else {
            self.reason
        };
        let mut resp = no_store(
            (
                self.status,
                Json(json!({"error": self.error, "error_description": description})),
            )
                .into_response(),
        );
        let h = resp.headers_mut();
        if self.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="bulwark""#),
            );
        }
        if let Some(n) = self.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            h.insert("dpop-nonce", n);
        }
        resp
    }
}

/// A form body; a parameter given twice is refused (RFC 6749 §3.1).
struct Form(Vec<(String, Zeroizing<String>)>);

/// The most parameters a token, introspection or revocation request may carry (ours use
/// at most seven). Parsing stops at the first one over: the cost stays linear and small.
const MAX_FORM_PARAMS: usize = 32;

impl Form {
    fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut out: Vec<(String, Zeroizing<String>)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if out.len() == MAX_FORM_PARAMS {
                return Err(OAuthError::new("invalid_request", "too_many_parameters"));
            }
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::new("invalid_request", "repeated_parameter"));
            }
            out.push((k.into_owned(), Zeroizing::new(v.into_owned())));
        }
        Ok(Self(out))
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

/// The client as authenticated at an OAuth endpoint.
struct Client {
    id: String,
    org: Option<String>,
    binding: Binding,
}

/// A fixed, valid hash to verify against when the client id is unknown, so that unknown
/// and known ids take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| client_secret::hash("bws_decoy").unwrap_or_default())
}

/// Authenticates the client of a token, introspection or revocation request.
async fn authenticate_client(
    state: &AppState,
    parts: &Parts,
    form: &Form,
    now: i64,
) -> Result<Client, OAuthError> {
    let basic = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("basic"))
        .map(|(_, c)| c.trim().to_owned());
    let body_secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let methods = usize::from(basic.is_some())
        + usize::from(body_secret.is_some())
        + usize::from(assertion.is_some());
    if methods != 1 {
        return Err(OAuthError::client(
            if methods == 0 {
                "no_client_authentication"
            } else {
                "several_client_authentications"
            },
            methods == 0,
        ));
    }
    if let Some(a) = assertion {
        if form.get("client_assertion_type") != Some(assertion::ASSERTION_TYPE) {
            return Err(OAuthError::new(
                "invalid_request",
                "bad_client_assertion_type",
            ));
        }
        // The client id comes from the (unverified) assertion's `sub`, then is held to it.
        let claimed = form
            .get("client_id")
            .map(str::to_owned)
            .or_else(|| unverified_sub(a))
            .ok_or_else(|| OAuthError::client("malformed", false))?;
        let (jwk, org, binding) = {
            let dir = state.directory.read();
            let p = dir
                .principal(&claimed)
                .filter(|p| p.kind == PrincipalKind::Service)
                .ok_or_else(|| OAuthError::client("unknown_client", false))?;
            (
                p.jwk
                    .clone()
                    .ok_or_else(|| OAuthError::client("no_registered_key", false))?,
                p.org.clone(),
                p.token_binding,
            )
        };
        let key =
            assertion::ClientKey::parse(&jwk).map_err(|r| OAuthError::client(r.reason(), false))?;
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
            .map_err(|r| OAuthError::client(r.reason(), false))?;
        if checked.iat < state.auth.started_secs {
            return Err(OAuthError::client("assertion_before_start", false));
        }
        state
            .auth
            .assertion_replay
            .first_use(
                &[b"assertion", claimed.as_bytes(), checked.jti.as_bytes()],
                now,
            )
            .map_err(|r| OAuthError::client(r.reason(), false))?;
        return Ok(Client {
            id: claimed,
            org,
            binding,
        });
    }
    let (id, secret, via_basic) = match basic {
        Some(c) => {
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(c.as_bytes())
                    .map_err(|_| OAuthError::client("malformed", true))?,
            );
            let text =
                std::str::from_utf8(&raw).map_err(|_| OAuthError::client("malformed", true))?;
            let (i, s) = text
                .split_once(':')
                .ok_or_else(|| OAuthError::client("malformed", true))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded.
            let dec = |x: &str| -> String {
                form_urlencoded::parse(format!("v={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (dec(i), Zeroizing::new(dec(s)), true)
        }
        None => (
            form.get("client_id")
                .ok_or_else(|| OAuthError::client("no_client_id", false))?
                .to_owned(),
            Zeroizing::new(body_secret.unwrap_or_default().to_owned()),
            false,
        ),
    };
    if let Some(cid) = form.get("client_id")
        && cid != id
    {
        return Err(OAuthError::new("invalid_request", "client_id_mismatch"));
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
        .map_err(|_| OAuthError::client("unavailable", false))?;
    let ok = tokio::task::spawn_blocking(move || client_secret::verify(&secret, &hash))
        .await
        .map_err(|_| OAuthError::client("unavailable", false))?;
    drop(permit);
    match (ok, found) {
        (Ok(true), Some((_, org, binding))) => Ok(Client { id, org, binding }),
        (Err(_), Some(_)) => {
            tracing::error!("a stored client secret hash is malformed or too weak");
            Err(OAuthError::client("bad_stored_hash", via_basic))
        }
        (_, None) => Err(OAuthError::client("unknown_client", via_basic)),
        _ => Err(OAuthError::client("bad_secret", via_basic)),
    }
}

fn unverified_sub(jws: &str) -> Option<String> {
    let payload = jws.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("sub")?.as_str().map(str::to_owned)
}

#[derive(Serialize)]
struct Issued<'a> {
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
    token_binding: &'a str,
    exp: i64,
}
impl EntryData for Issued<'_> {}

async fn token(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, Response> {
    let now = now_secs();
    let form = Form::parse(&body).map_err(IntoResponse::into_response)?;
    if form.get("grant_type") != Some("client_credentials") {
        return Err(
            OAuthError::new("unsupported_grant_type", "unsupported_grant_type").into_response(),
        );
    }
    let client = authenticate_client(&state, &parts, &form, now)
        .await
        .map_err(IntoResponse::into_response)?;
    if let Some(org) = &client.org
        && let Ok(name) = Name::parse(org)
        && state
            .directory
            .read()
            .disabled_at(&Scope::Org(name))
            .is_some()
    {
        return Err(OAuthError::new("unauthorized_client", "org_disabled").into_response());
    }
    // The audience: only ours, once.
    for p in ["resource", "audience"] {
        if let Some(r) = form.get(p)
            && r.trim_end_matches('/') != state.auth.issuer
        {
            return Err(OAuthError::new("invalid_target", "bad_audience").into_response());
        }
    }
    let scope = match form.get("scope") {
        None => DEFAULT_SCOPE.to_owned(),
        Some(s) => {
            let mut wanted: Vec<&str> = s.split(' ').filter(|x| !x.is_empty()).collect();
            if wanted.is_empty() || wanted.iter().any(|w| !SCOPES.contains(w)) {
                return Err(OAuthError::new("invalid_scope", "invalid_scope").into_response());
            }
            wanted.sort_unstable();
            wanted.dedup();
            wanted.join(" ")
        }
    };
    // Binding.
    let proof = dpop_header(&parts.headers).map_err(IntoResponse::into_response)?;
    let x5t = client_cert_thumbprint(&parts);
    let jkt = match (client.binding, proof) {
        (Binding::Mtls, _) if x5t.is_none() => {
            return Err(OAuthError::new("invalid_request", "mtls_cert_required").into_response());
        }
        (Binding::Mtls, _) => None,
        (Binding::Dpop, None) => {
            return Err(OAuthError::new("invalid_dpop_proof", "dpop_proof_missing").into_response());
        }
        (_, None) => None,
        (_, Some(p)) => {
            let url = request_url(&parts).ok_or_else(|| {
                OAuthError::new("invalid_dpop_proof", "dpop_htu_mismatch").into_response()
            })?;
            let expect = dpop::Expect {
                method: "POST",
                url: &url,
                access_token: None,
                nonces: Some(&state.auth.nonces),
                nonce_required: state.auth.require_token_nonce,
            };
            let v = dpop::verify(p, &expect, now).map_err(|r| {
                let mut e = OAuthError::new("invalid_dpop_proof", r.reason());
                if r == Refusal::UseNonce {
                    e.error = "use_dpop_nonce";
                    e.nonce = Some(state.auth.nonces.current(now));
                }
                e.into_response()
            })?;
            if v.iat < state.auth.started_secs {
                return Err(OAuthError::new("invalid_dpop_proof", "dpop_stale").into_response());
            }
            state
                .auth
                .replay
                .first_use(&[b"dpop", v.jkt.as_bytes(), v.jti.as_bytes()], now)
                .map_err(|r| OAuthError::new("invalid_dpop_proof", r.reason()).into_response())?;
            Some(v.jkt)
        }
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
    let corr = parts.extensions.get::<RequestId>();
    let mut draft = Draft::new(
        Kind::Access,
        "token.issue",
        format!("principal/{}", client.id),
    )
    .actor(subject);
    if let Some(o) = &client.org {
        draft = draft.org(o);
    }
    if let Some(c) = corr {
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
    if let Err(e) = state.journal.ledger.append(draft).await {
        return Err(Error::from(e).into());
    }
    let mut resp = Json(json!({
        "access_token": access_token.as_str(),
        "token_type": token_type,
        "expires_in": state.auth.ttl,
        "scope": scope,
    }))
    .into_response();
    resp = no_store(resp);
    if let Ok(n) = HeaderValue::from_str(&state.auth.nonces.current(now)) {
        resp.headers_mut().insert("dpop-nonce", n);
    }
    Ok(resp)
}

fn internal() -> Response {
    Error::internal("token endpoint").into()
}

/// Whether `client` may see or revoke a token of `claims`: its own tokens; for
/// introspection, tokens of its own org; anything for an instance principal that
/// administers the instance (operators).
fn within_reach(state: &AppState, client: &Client, claims: &AccessClaims, own_only: bool) -> bool {
    if claims.client_id == client.id {
        return true;
    }
    let instance_admin = client.org.is_none() && {
        let subject = bulwark_authz::Subject::Service(client.id.as_str().into());
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
    };
    if own_only {
        return instance_admin;
    }
    instance_admin || (client.org.is_some() && client.org == claims.org)
}

/// The shared start of introspection and revocation: the form and its client.
async fn form_and_client(
    state: &AppState,
    parts: &Parts,
    body: &[u8],
    now: i64,
) -> Result<(Form, Client), Response> {
    let form = Form::parse(body).map_err(IntoResponse::into_response)?;
    let client = authenticate_client(state, parts, &form, now)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((form, client))
}

async fn introspect(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, Response> {
    let now = now_secs();
    let (form, client) = form_and_client(&state, &parts, &body, now).await?;
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::new("invalid_request", "no_token").into_response())?;
    let inactive = || no_store(Json(json!({"active": false})).into_response());
    let Ok(claims) = state.auth.verify(token, now) else {
        return Ok(inactive());
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
    if !live || !within_reach(&state, &client, &claims, false) {
        return Ok(inactive());
    }
    let mut v = serde_json::to_value(&*claims).map_err(|_| internal())?;
    if let Some(o) = v.as_object_mut() {
        o.insert("active".into(), true.into());
        o.insert(
            "token_type".into(),
            if claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some()) {
                "DPoP"
            } else {
                "Bearer"
            }
            .into(),
        );
    }
    Ok(no_store(Json(v).into_response()))
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, Response> {
    let now = now_secs();
    let (form, client) = form_and_client(&state, &parts, &body, now).await?;
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::new("invalid_request", "no_token").into_response())?;
    // RFC 7009 §2.2: an invalid or foreign token is answered 200 all the same.
    if let Ok(claims) = state.auth.verify(token, now)
        && within_reach(&state, &client, &claims, true)
    {
        let event = Event::TokenRevoke {
            jti: claims.jti.clone(),
            exp: claims.exp,
            sub: claims.sub.clone(),
        };
        let corr = parts.extensions.get::<RequestId>().map(RequestId::as_str);
        let draft = event
            .draft(
                &format!("service:{}", client.id),
                claims.org.as_deref(),
                corr,
            )
            .map_err(|_| internal())?;
        if let Err(e) = state.journal.ledger.append(draft).await {
            return Err(Error::from(e).into());
        }
    }
    Ok(no_store(StatusCode::OK.into_response()))
}

async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut r = Json(state.auth.keyset().jwks().clone()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    r
}

async fn metadata(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let iss = &state.auth.issuer;
    Json(json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth2/token"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "ES256"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "scopes_supported": SCOPES,
        "dpop_signing_alg_values_supported": DPOP_ALGS.split(' ').collect::<Vec<_>>(),
        "tls_client_certificate_bound_access_tokens": true,
        "authorization_response_iss_parameter_supported": false,
    }))
}
