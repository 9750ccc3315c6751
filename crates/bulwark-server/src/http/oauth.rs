//! The OAuth 2 endpoints over HTTP: token (RFC 6749 `client_credentials`), introspection
//! (RFC 7662), revocation (RFC 7009), the JWKS and the RFC 8414 metadata. The grant rules
//! (client authentication, scopes, binding, reach) are in [`crate::ops::tokens`]; handlers
//! here parse the form, call and render.
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
use bulwark_core::RequestId;
use bulwark_identity::jose::now_secs;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use zeroize::Zeroizing;

use bulwark_http::no_store;

use crate::AppState;
use crate::authn::{DPOP_ALGS, client_cert_thumbprint, count_failure, dpop_header, request_url};
use crate::error::Error;
use crate::ops::tokens::{self, ClientAuth, Introspection, OAuthRefusal, TokenError, TokenRequest};

pub use bulwark_identity::scope::{DEFAULT_SCOPE, SCOPES};

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

/// An RFC 6749 §5.2 error, as answered.
pub struct OAuthError(OAuthRefusal);

impl OAuthError {
    fn new(error: &'static str, reason: &'static str) -> Self {
        Self(OAuthRefusal::new(error, reason))
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let r = self.0;
        count_failure(r.reason);
        tracing::info!(error = r.error, reason = r.reason, "token request refused");
        let (status, description) = if r.is_client_authentication() {
            (StatusCode::UNAUTHORIZED, "client authentication failed")
        } else {
            (StatusCode::BAD_REQUEST, r.reason)
        };
        let mut resp = no_store(
            (
                status,
                Json(json!({"error": r.error, "error_description": description})),
            )
                .into_response(),
        );
        let h = resp.headers_mut();
        if r.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="bulwark""#),
            );
        }
        if let Some(n) = r.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            h.insert("dpop-nonce", n);
        }
        resp
    }
}

/// The answer to a failed token, introspection or revocation request: RFC 6749 JSON for
/// refusals, as the API answers for an unusable proof header or a failure.
fn render(e: TokenError) -> Response {
    match e {
        TokenError::OAuth(r) => OAuthError(r).into_response(),
        TokenError::ProofHeader(f) => f.into_response(),
        TokenError::Failed(e) => e.into_response(),
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

/// The credentials of an `Authorization: Basic` header, if it has that scheme.
fn basic_credentials(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("basic"))
        .map(|(_, c)| c.trim().to_owned())
}

/// How the client of `form` (and `basic` credentials) authenticates.
fn client_auth<'a>(form: &'a Form, basic: Option<&'a str>) -> ClientAuth<'a> {
    ClientAuth {
        basic,
        client_id: form.get("client_id"),
        client_secret: form.get("client_secret"),
        client_assertion: form.get("client_assertion"),
        client_assertion_type: form.get("client_assertion_type"),
    }
}

async fn token(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, Response> {
    let now = now_secs();
    let form = Form::parse(&body).map_err(IntoResponse::into_response)?;
    let basic = basic_credentials(&parts);
    let req = TokenRequest {
        grant_type: form.get("grant_type"),
        client: client_auth(&form, basic.as_deref()),
        scope: form.get("scope"),
        resource: form.get("resource"),
        audience: form.get("audience"),
        proof: dpop_header(&parts.headers),
        client_cert: client_cert_thumbprint(&parts),
        url: request_url(&parts),
        corr: parts.extensions.get::<RequestId>(),
    };
    let issued = tokens::issue(&state, req, now).await.map_err(render)?;
    let mut resp = Json(json!({
        "access_token": issued.access_token.as_str(),
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }))
    .into_response();
    resp = no_store(resp);
    if let Ok(n) = HeaderValue::from_str(&issued.nonce) {
        resp.headers_mut().insert("dpop-nonce", n);
    }
    Ok(resp)
}

async fn introspect(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, Response> {
    let now = now_secs();
    let form = Form::parse(&body).map_err(IntoResponse::into_response)?;
    let basic = basic_credentials(&parts);
    let auth = client_auth(&form, basic.as_deref());
    let claims = match tokens::introspect(&state, &auth, form.get("token"), now)
        .await
        .map_err(render)?
    {
        Introspection::Inactive => {
            return Ok(no_store(Json(json!({"active": false})).into_response()));
        }
        Introspection::Active(claims) => claims,
    };
    let mut v = serde_json::to_value(&*claims)
        .map_err(|_| Error::internal("token endpoint").into_response())?;
    if let Some(o) = v.as_object_mut() {
        o.insert("active".into(), true.into());
        o.insert("token_type".into(), tokens::token_type(&claims).into());
    }
    Ok(no_store(Json(v).into_response()))
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, Response> {
    let now = now_secs();
    let form = Form::parse(&body).map_err(IntoResponse::into_response)?;
    let basic = basic_credentials(&parts);
    let auth = client_auth(&form, basic.as_deref());
    let corr = parts.extensions.get::<RequestId>();
    // RFC 7009 §2.2: an invalid or foreign token is answered 200 all the same.
    tokens::revoke(&state, &auth, form.get("token"), now, corr)
        .await
        .map_err(render)?;
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
