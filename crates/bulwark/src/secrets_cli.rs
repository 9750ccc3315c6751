//! `bulwark login` and `bulwark secrets …`: the API's secrets from the command line.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_server::remote::{Profile, Session};
use zeroize::Zeroizing;

use crate::SecretsCommand;

const SCOPE: &str = "read secrets:read secrets:write";

fn env_path(env: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = env.split('/').collect();
    let [org, app, e] = parts.as_slice() else {
        bail!("--env is `org/app/env`");
    };
    Ok(format!("/v1/orgs/{org}/apps/{app}/envs/{e}/secrets"))
}

fn profile_path(p: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    p.map_or_else(Profile::default_path, Ok)
}

/// `bulwark login`: the secret from stdin's first line.
pub async fn login(
    server: &str,
    ca: &Path,
    client_id: &str,
    profile: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let ca_pem =
        std::fs::read_to_string(ca).with_context(|| format!("cannot read `{}`", ca.display()))?;
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the client secret from stdin")?;
    let secret = Zeroizing::new(line.trim().to_owned());
    if secret.is_empty() {
        bail!("give the client secret on stdin (it is never read from the command line)");
    }
    let key = bulwark_crypto::SigningKey::generate()?;
    let p = Profile {
        server: server.trim_end_matches('/').to_owned(),
        ca_pem,
        client_id: client_id.to_owned(),
        client_secret: secret,
        dpop_key: key.encode(),
    };
    let mut session = Session::new(&p)?;
    session.login(SCOPE).await?;
    let path = profile_path(profile)?;
    p.save(&path)?;
    eprintln!(
        "logged in to {} as {}; profile saved to {}",
        p.server,
        p.client_id,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `bulwark secrets …`.
pub async fn run(command: SecretsCommand, profile: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let p = Profile::load(&profile_path(profile)?)?;
    let mut s = Session::new(&p)?;
    s.login(SCOPE).await?;
    match command {
        SecretsCommand::Put { env, name, file } => {
            let value = Zeroizing::new(match file {
                Some(f) => {
                    std::fs::read(&f).with_context(|| format!("cannot read `{}`", f.display()))?
                }
                None => {
                    let mut v = Vec::new();
                    std::io::stdin().read_to_end(&mut v)?;
                    v
                }
            });
            let encoded = Zeroizing::new(STANDARD.encode(value.as_slice()));
            let body = Zeroizing::new(serde_json::to_vec(
                &serde_json::json!({"value": encoded.as_str()}),
            )?);
            let a = s
                .call(
                    http::Method::PUT,
                    &format!("{}/{name}", env_path(&env)?),
                    Some(body),
                )
                .await?
                .ok()?;
            println!("{}", a.json()?);
        }
        SecretsCommand::Get {
            env,
            name,
            version,
            out,
        } => {
            let q = version.map_or_else(String::new, |v| format!("?version={v}"));
            let a = s
                .call(
                    http::Method::GET,
                    &format!("{}/{name}{q}", env_path(&env)?),
                    None,
                )
                .await?
                .ok()?;
            let value = decode_value(&a.json()?)?;
            match out {
                Some(path) => bulwark_fs::write_in_private_dir(&path, &value, 0o600)?,
                None => std::io::stdout().write_all(&value)?,
            }
        }
        SecretsCommand::List { env } => {
            for (name, version) in list(&mut s, &env).await? {
                println!("{name}\t{version}");
            }
        }
        SecretsCommand::Delete { env, name } => {
            let a = s
                .call(
                    http::Method::DELETE,
                    &format!("{}/{name}", env_path(&env)?),
                    None,
                )
                .await?
                .ok()?;
            println!("{}", a.json()?);
        }
        SecretsCommand::Render { env, out } => {
            let mut values = Vec::new();
            for (name, _) in list(&mut s, &env).await? {
                let a = s
                    .call(
                        http::Method::GET,
                        &format!("{}/{name}", env_path(&env)?),
                        None,
                    )
                    .await?
                    .ok()?;
                values.push((name, decode_value(&a.json()?)?));
            }
            let count = values.len();
            let bytes = bulwark_secrets::file::render_named(values)?;
            bulwark_fs::write_in_private_dir(&out, &bytes, 0o400)?;
            eprintln!("wrote {count} keys to {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn decode_value(v: &serde_json::Value) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let encoded = v["value"].as_str().context("no value in the answer")?;
    Ok(Zeroizing::new(STANDARD.decode(encoded)?))
}

async fn list(s: &mut Session, env: &str) -> anyhow::Result<Vec<(String, u64)>> {
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
