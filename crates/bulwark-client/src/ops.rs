//! Typed calls of the one-shot operations on an org's nodes and certificates (`bulwark
//! nodes …`, `bulwark certs …`): each is one journaled call with an org admin's
//! [`Session`]; each returns the server's answer.

use zeroize::Zeroizing;

use crate::remote::Session;

/// The scope `bulwark nodes …` and `bulwark certs …` ask for.
pub const SCOPE: &str = "admin read";

async fn call(
    s: &mut Session,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let body = body
        .map(|b| serde_json::to_vec(&b).map(Zeroizing::new))
        .transpose()?;
    s.call(method, path, body).await?.ok()?.json()
}

/// The org's nodes (identity, certificate end, quarantine).
pub async fn list_nodes(s: &mut Session, org: &str) -> anyhow::Result<serde_json::Value> {
    call(s, http::Method::GET, &format!("/v1/orgs/{org}/nodes"), None).await
}

/// Quarantines a node: its connections close, its handshakes are refused.
pub async fn quarantine_node(
    s: &mut Session,
    org: &str,
    node: &str,
) -> anyhow::Result<serde_json::Value> {
    let path = format!("/v1/orgs/{org}/nodes/{node}/quarantine");
    call(s, http::Method::POST, &path, Some(serde_json::json!({}))).await
}

/// Releases a quarantined node.
pub async fn release_node(
    s: &mut Session,
    org: &str,
    node: &str,
) -> anyhow::Result<serde_json::Value> {
    let path = format!("/v1/orgs/{org}/nodes/{node}/release");
    call(s, http::Method::POST, &path, Some(serde_json::json!({}))).await
}

/// The org's certificates (serial, SPIFFE id, end, revocation).
pub async fn list_certificates(s: &mut Session, org: &str) -> anyhow::Result<serde_json::Value> {
    call(
        s,
        http::Method::GET,
        &format!("/v1/orgs/{org}/certificates"),
        None,
    )
    .await
}

/// Revokes a certificate (and the renewals made from it), with an optional RFC 5280
/// reason (`key_compromise`, `affiliation_changed`, `superseded`,
/// `cessation_of_operation`).
pub async fn revoke_certificate(
    s: &mut Session,
    org: &str,
    serial: &str,
    reason: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let path = format!("/v1/orgs/{org}/certificates/{serial}/revoke");
    let body = match reason {
        Some(r) => serde_json::json!({ "reason": r }),
        None => serde_json::json!({}),
    };
    call(s, http::Method::POST, &path, Some(body)).await
}
