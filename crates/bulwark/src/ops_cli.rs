//! `bulwark nodes …` and `bulwark certs …`: each one journaled call through
//! `bulwark_client::ops`, with the saved profile of an org admin; prints the answer.

use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_client::ops::{self, SCOPE};
use bulwark_client::remote::Session;

use crate::{CertsCommand, NodesCommand};

/// `bulwark nodes …`.
pub async fn nodes(command: NodesCommand, profile: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(profile, SCOPE).await?;
    let answer = match command {
        NodesCommand::List { org } => ops::list_nodes(&mut s, &org).await?,
        NodesCommand::Quarantine { org, node } => ops::quarantine_node(&mut s, &org, &node).await?,
        NodesCommand::Release { org, node } => ops::release_node(&mut s, &org, &node).await?,
    };
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}

/// `bulwark certs …`.
pub async fn certs(command: CertsCommand, profile: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(profile, SCOPE).await?;
    let answer = match command {
        CertsCommand::List { org } => ops::list_certificates(&mut s, &org).await?,
        CertsCommand::Revoke {
            org,
            serial,
            reason,
        } => ops::revoke_certificate(&mut s, &org, &serial, reason.as_deref()).await?,
    };
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}
