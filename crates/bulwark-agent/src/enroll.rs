//! `bulwark agent enroll`: the node makes its key here (it never leaves), sends a CSR with
//! its single-use join token, and stores what comes back in its directory (0700): `node.key`
//! (0600), `node.pem` (certificate and intermediate), `ca.pem`, `node.json`.

use std::path::Path;

use anyhow::{Context as _, bail};
use bulwark_client::Client;
use bulwark_fs::{ensure_private_dir, write_atomic};
use zeroize::Zeroizing;

/// Enrols this node; returns what `node.json` records (server, SPIFFE id, certificate
/// end, node API).
pub async fn enroll(
    server: &str,
    ca: &Path,
    token: &str,
    dir: &Path,
) -> anyhow::Result<serde_json::Value> {
    let ca_pem =
        std::fs::read_to_string(ca).with_context(|| format!("cannot read `{}`", ca.display()))?;
    ensure_private_dir(dir)?;
    let (key_pem, csr) = bulwark_pki::ca::make_csr(bulwark_pki::ca::KeyAlg::P256)?;
    let body = Zeroizing::new(serde_json::to_vec(
        &serde_json::json!({"token": token, "csr": csr}),
    )?);
    let client = Client::new(&ca_pem)?;
    let url = format!("{}/v1/enroll", server.trim_end_matches('/'));
    let headers = vec![(
        http::header::CONTENT_TYPE,
        Zeroizing::new("application/json".to_owned()),
    )];
    let (status, _, answer) = client
        .send(http::Method::POST, &url, &headers, body.to_vec())
        .await?;
    let v: serde_json::Value =
        serde_json::from_slice(&answer).context("the server's answer is not JSON")?;
    if status != 200 {
        bail!(
            "enrolment refused ({status}): {} ({})",
            v["detail"].as_str().unwrap_or_default(),
            v["code"].as_str().unwrap_or_default()
        );
    }
    let cert = v["certificate"]
        .as_str()
        .context("no certificate in the answer")?;
    let root = v["ca"].as_str().context("no CA in the answer")?;
    write_atomic(&dir.join("node.key"), key_pem.as_bytes(), 0o600)?;
    write_atomic(&dir.join("node.pem"), cert.as_bytes(), 0o644)?;
    write_atomic(&dir.join("ca.pem"), root.as_bytes(), 0o644)?;
    let meta = serde_json::json!({
        "server": server.trim_end_matches('/'),
        "spiffe_id": v["spiffe_id"],
        "not_after": v["not_after"],
        "node_api": v["node_api"],
    });
    write_atomic(
        &dir.join("node.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
        0o644,
    )?;
    Ok(meta)
}
