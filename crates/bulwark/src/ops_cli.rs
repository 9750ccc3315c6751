//! `bulwark nodes …` and `bulwark certs …`: the one-shot operations on nodes and
//! certificates (quarantine, release, revoke), each one journaled call, with the saved
//! profile of an org admin.

use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_server::remote::{Profile, Session};
use zeroize::Zeroizing;

use crate::{CertsCommand, NodesCommand};

const SCOPE: &str = "admin read";

async fn session(profile: Option<PathBuf>) -> anyhow::Result<Session> {
    let path = profile.map_or_else(Profile::default_path, Ok)?;
    let mut s = Session::new(&Profile::load(&path)?)?;
    s.login(SCOPE).await?;
    Ok(s)
}

async fn call(
    s: &mut Session,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    let body = body
        .map(|b| serde_json::to_vec(&b).map(Zeroizing::new))
        .transpose()?;
    let a = s.call(method, path, body).await?.ok()?;
    println!("{}", a.json()?);
    Ok(ExitCode::SUCCESS)
}

/// `bulwark nodes …`.
pub async fn nodes(command: NodesCommand, profile: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut s = session(profile).await?;
    match command {
        NodesCommand::List { org } => {
            call(
                &mut s,
                http::Method::GET,
                &format!("/v1/orgs/{org}/nodes"),
                None,
            )
            .await
        }
        NodesCommand::Quarantine { org, node } => {
            let path = format!("/v1/orgs/{org}/nodes/{node}/quarantine");
            call(
                &mut s,
                http::Method::POST,
                &path,
                Some(serde_json::json!({})),
            )
            .await
        }
        NodesCommand::Release { org, node } => {
            let path = format!("/v1/orgs/{org}/nodes/{node}/release");
            call(
                &mut s,
                http::Method::POST,
                &path,
                Some(serde_json::json!({})),
            )
            .await
        }
    }
}

/// `bulwark certs …`.
pub async fn certs(command: CertsCommand, profile: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut s = session(profile).await?;
    match command {
        CertsCommand::List { org } => {
            call(
                &mut s,
                http::Method::GET,
                &format!("/v1/orgs/{org}/certificates"),
                None,
            )
            .await
        }
        CertsCommand::Revoke {
            org,
            serial,
            reason,
        } => {
            let path = format!("/v1/orgs/{org}/certificates/{serial}/revoke");
            let body = match reason {
                Some(r) => serde_json::json!({ "reason": r }),
                None => serde_json::json!({}),
            };
            call(&mut s, http::Method::POST, &path, Some(body)).await
        }
    }
}
