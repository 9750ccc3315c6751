//! Typed calls of the secrets API (`bulwark secrets …`), with a logged-in [`Session`].
//! Values travel base64-encoded in JSON and are held in zeroizing buffers.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::remote::Session;

/// The scope `bulwark login` and `bulwark secrets …` ask for.
pub const SCOPE: &str = "read secrets:read secrets:write";

/// The API path of the secrets of `org/app/env`.
pub fn env_path(env: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = env.split('/').collect();
    let [org, app, e] = parts.as_slice() else {
        bail!("--env is `org/app/env`");
    };
    Ok(format!("/v1/orgs/{org}/apps/{app}/envs/{e}/secrets"))
}

/// Writes a new version of `name` in `env`; returns the server's answer.
pub async fn put(
    s: &mut Session,
    env: &str,
    name: &str,
    value: &[u8],
) -> anyhow::Result<serde_json::Value> {
    let encoded = Zeroizing::new(STANDARD.encode(value));
    let body = Zeroizing::new(serde_json::to_vec(
        &serde_json::json!({"value": encoded.as_str()}),
    )?);
    s.call(
        http::Method::PUT,
        &format!("{}/{name}", env_path(env)?),
        Some(body),
    )
    .await?
    .ok()?
    .json()
}

/// The value of `name` in `env` (a `version`, or the latest).
pub async fn get(
    s: &mut Session,
    env: &str,
    name: &str,
    version: Option<u64>,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let q = version.map_or_else(String::new, |v| format!("?version={v}"));
    let a = s
        .call(
            http::Method::GET,
            &format!("{}/{name}{q}", env_path(env)?),
            None,
        )
        .await?
        .ok()?;
    decode_value(&a.json()?)
}

/// Deletes `name` in `env` (a journaled tombstone version); returns the server's answer.
pub async fn delete(s: &mut Session, env: &str, name: &str) -> anyhow::Result<serde_json::Value> {
    s.call(
        http::Method::DELETE,
        &format!("{}/{name}", env_path(env)?),
        None,
    )
    .await?
    .ok()?
    .json()
}

/// Every secret name of `env` with its latest version, following the pages.
pub async fn list(s: &mut Session, env: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = after.as_ref().map_or_else(
            || "?limit=200".to_owned(),
            |a| format!("?limit=200&after={a}"),
        );
        let a = s
            .call(http::Method::GET, &format!("{}{q}", env_path(env)?), None)
            .await?
            .ok()?;
        let v = a.json()?;
        for item in v["secrets"].as_array().into_iter().flatten() {
            out.push((
                item["name"].as_str().unwrap_or_default().to_owned(),
                item["latest_version"].as_u64().unwrap_or_default(),
            ));
        }
        match v["next_after"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return Ok(out),
        }
    }
}

/// Reads every secret of `env` (each read journaled by the server) and renders the
/// `BULWARK_SECRETS_V1` file; returns how many keys it holds and its bytes.
pub async fn render(s: &mut Session, env: &str) -> anyhow::Result<(usize, Zeroizing<Vec<u8>>)> {
    let mut values = Vec::new();
    for (name, _) in list(s, env).await? {
        let a = s
            .call(
                http::Method::GET,
                &format!("{}/{name}", env_path(env)?),
                None,
            )
            .await?
            .ok()?;
        values.push((name, decode_value(&a.json()?)?));
    }
    let count = values.len();
    Ok((count, bulwark_secrets::file::render_named(values)?))
}

fn decode_value(v: &serde_json::Value) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let encoded = v["value"].as_str().context("no value in the answer")?;
    Ok(Zeroizing::new(STANDARD.decode(encoded)?))
}
