//! `bulwark agent run`: the node agent's loop.
//!
//! Each round: renew the certificate over mTLS once it is past half its life (a new key
//! made here; the old pair stays until the new one is on disk), fetch the env's secrets
//! from the node API, and write the secrets file atomically (0400 in a 0700 directory)
//! when it changed. When the server is away or refuses, it retries with capped
//! exponential backoff and full jitter and keeps the last good file. Logs are JSON lines
//! on stdout; they name counts and statuses, never values.
//!
//! It also follows the node's signed event stream ([`crate::events`]), verifying
//! every envelope itself: `secrets.changed` refetches now, `cert.renew` renews now,
//! `node.quarantine` wipes the secrets file and stops.
//!
//! Files in the agent's directory: `node.key` (0600), `node.pem`, `ca.pem`, `node.json`
//! (written by `agent enroll`); a renewal writes `node.key.next` first, then replaces
//! `node.pem` and `node.key`: a crash between the two renames is repaired at the next
//! start (the pair that matches wins).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bulwark_client::Client;
use bulwark_fs::{ensure_private_dir, read_private, write_atomic};
use zeroize::Zeroizing;

use crate::events::Action;

/// How the agent runs.
pub struct RunOptions {
    /// The agent's directory (from `agent enroll`).
    pub dir: PathBuf,
    /// The node API's URL (default: what enrolment recorded).
    pub node_api: Option<String>,
    /// The secrets file (default: `<dir>/secrets/env`).
    pub secrets_file: Option<PathBuf>,
    /// Time between rounds.
    pub interval: Duration,
    /// One round, then exit (non-zero if it failed).
    pub once: bool,
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT.
    Signal,
    /// A verified `node.quarantine`: the secrets file was wiped.
    Quarantined,
    /// `once`: the round succeeded.
    OnceSucceeded,
    /// `once`: the round failed (logged).
    OnceFailed,
}

impl Stopped {
    /// Whether the agent ended as it should (everything but a failed `once` round).
    pub fn success(self) -> bool {
        self != Self::OnceFailed
    }
}

/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const BASE_BACKOFF: Duration = Duration::from_millis(500);

pub(crate) struct Identity {
    pub(crate) org: String,
    pub(crate) node: String,
    pub(crate) node_api: String,
    pub(crate) ca_pem: String,
    pub(crate) chain_pem: String,
    pub(crate) key_pem: Zeroizing<String>,
    not_before: i64,
    not_after: i64,
}

/// Runs the agent until SIGTERM/SIGINT (or one round with `once`).
pub async fn run(opts: RunOptions) -> anyhow::Result<Stopped> {
    let secrets_file = opts
        .secrets_file
        .clone()
        .unwrap_or_else(|| opts.dir.join("secrets").join("env"));
    let secrets_dir = secrets_file
        .parent()
        .context("the secrets file has no directory")?
        .to_owned();
    ensure_private_dir(&secrets_dir)?;
    let mut last_written: Option<[u8; 32]> = std::fs::read(&secrets_file)
        .ok()
        .map(|b| bulwark_crypto::sha256(&b));
    let mut failures: u32 = 0;
    let mut stop = std::pin::pin!(shutdown()?);
    // Instructions from the signed event bus (verified by the follower itself).
    let (tx, mut actions) = tokio::sync::mpsc::channel(16);
    if !opts.once {
        tokio::spawn(crate::events::follow(
            opts.dir.clone(),
            opts.node_api.clone(),
            tx,
        ));
    }
    let mut force_renew = false;
    loop {
        let outcome = round(&opts, &secrets_file, &mut last_written, force_renew).await;
        force_renew = false;
        let wait = match outcome {
            Ok(()) => {
                failures = 0;
                if opts.once {
                    return Ok(Stopped::OnceSucceeded);
                }
                jittered(opts.interval)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(failures);
                tracing::warn!(
                    error = %format!("{e:#}"),
                    failures,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "round failed; the last good secrets file is kept"
                );
                if opts.once {
                    return Ok(Stopped::OnceFailed);
                }
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stop => {
                tracing::info!("agent stopping");
                return Ok(Stopped::Signal);
            }
            Some(action) = actions.recv() => match action {
                Action::Refetch => {}
                Action::Renew => force_renew = true,
                Action::Quarantine => {
                    match std::fs::remove_file(&secrets_file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => tracing::error!(error = %e, "could not wipe the secrets file"),
                    }
                    tracing::warn!("quarantined: secrets file wiped, agent stopping");
                    return Ok(Stopped::Quarantined);
                }
            },
        }
    }
}

async fn round(
    opts: &RunOptions,
    secrets_file: &Path,
    last_written: &mut Option<[u8; 32]>,
    force_renew: bool,
) -> anyhow::Result<()> {
    let mut id = load_identity(&opts.dir, opts.node_api.as_deref())?;
    let now = crate::events::now();
    if force_renew || due_for_renewal(id.not_before, id.not_after, now) {
        renew(&opts.dir, &id).await?;
        id = load_identity(&opts.dir, opts.node_api.as_deref())?;
    }
    let client = Client::with_identity(&id.ca_pem, &id.chain_pem, &id.key_pem)?;
    let url = format!("{}/v1/nodes/{}/secrets", id.node_api, id.node);
    let (status, _, body) = client
        .send(http::Method::GET, &url, &[], Vec::new())
        .await?;
    let body = Zeroizing::new(body);
    if status != 200 {
        bail!("the node API answered {status}: {}", problem_code(&body));
    }
    // Checked before it replaces anything: a truncated or foreign answer never does.
    let count = bulwark_secrets::file::parse(&body)
        .context("the node API's answer is not a secrets file")?
        .len();
    let digest = bulwark_crypto::sha256(&body);
    if *last_written != Some(digest) {
        write_atomic(secrets_file, &body, 0o400)?;
        *last_written = Some(digest);
        tracing::info!(
            file = %secrets_file.display(),
            count,
            "secrets file written"
        );
    } else {
        tracing::debug!(count, "secrets unchanged");
    }
    Ok(())
}

fn problem_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn renew(dir: &Path, id: &Identity) -> anyhow::Result<()> {
    let (key_pem, csr) = bulwark_pki::ca::make_csr(bulwark_pki::ca::KeyAlg::P256)?;
    let client = Client::with_identity(&id.ca_pem, &id.chain_pem, &id.key_pem)?;
    let url = format!("{}/v1/nodes/{}/renew", id.node_api, id.node);
    let body = serde_json::to_vec(&serde_json::json!({ "csr": csr }))?;
    let headers = vec![(
        http::header::CONTENT_TYPE,
        Zeroizing::new("application/json".to_owned()),
    )];
    let (status, _, answer) = client
        .send(http::Method::POST, &url, &headers, body)
        .await?;
    if status != 200 {
        bail!("renewal refused ({status}): {}", problem_code(&answer));
    }
    let v: serde_json::Value = serde_json::from_slice(&answer).context("renewal answer")?;
    let chain = v["certificate"]
        .as_str()
        .context("no certificate in the renewal answer")?;
    // The new pair must work before it replaces the old one.
    Client::with_identity(&id.ca_pem, chain, &key_pem)?;
    write_atomic(&dir.join("node.key.next"), key_pem.as_bytes(), 0o600)?;
    write_atomic(&dir.join("node.pem"), chain.as_bytes(), 0o644)?;
    std::fs::rename(dir.join("node.key.next"), dir.join("node.key"))
        .context("cannot replace node.key")?;
    bulwark_fs::sync_dir(dir)?;
    tracing::info!(
        serial = v["serial"].as_str().unwrap_or_default(),
        not_after = v["not_after"].as_i64().unwrap_or_default(),
        "certificate renewed"
    );
    Ok(())
}

/// Reads the identity; repairs a renewal interrupted between its two renames.
pub(crate) fn load_identity(dir: &Path, node_api: Option<&str>) -> anyhow::Result<Identity> {
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("node.json"))
            .with_context(|| format!("no node.json in `{}`: enrol first", dir.display()))?,
    )
    .context("node.json")?;
    let spiffe = meta["spiffe_id"].as_str().context("node.json: spiffe_id")?;
    let (org, node) = spiffe
        .rsplit_once("/org/")
        .and_then(|(_, rest)| rest.split_once("/node/"))
        .map(|(o, n)| (o.to_owned(), n.to_owned()))
        .context("node.json: not a node's SPIFFE id")?;
    let node_api = node_api
        .map(str::to_owned)
        .or_else(|| meta["node_api"].as_str().map(str::to_owned))
        .context("no node API URL: pass --node-api")?
        .trim_end_matches('/')
        .to_owned();
    let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).context("ca.pem")?;
    let chain_pem = std::fs::read_to_string(dir.join("node.pem")).context("node.pem")?;
    let mut key_pem = read_private(&dir.join("node.key"))?;
    let next = dir.join("node.key.next");
    if next.exists() {
        let next_key = read_private(&next)?;
        if Client::with_identity(&ca_pem, &chain_pem, &next_key).is_ok() {
            std::fs::rename(&next, dir.join("node.key")).context("cannot finish a renewal")?;
            tracing::warn!("finished a renewal interrupted between its writes");
            key_pem = next_key;
        } else {
            let _ = std::fs::remove_file(&next);
        }
    }
    let s = bulwark_pki::summarize(&chain_pem).context("node.pem")?;
    Ok(Identity {
        org,
        node,
        node_api,
        ca_pem,
        chain_pem,
        key_pem,
        not_before: s.not_before.unix_timestamp(),
        not_after: s.not_after.unix_timestamp(),
    })
}

/// Whether a certificate valid from `not_before` to `not_after` is past half its life.
fn due_for_renewal(not_before: i64, not_after: i64, now: i64) -> bool {
    now >= not_before + (not_after - not_before) / 2
}

/// Capped exponential backoff with full jitter: uniform in [0, min(cap, base·2ⁿ)].
pub(crate) fn backoff(failures: u32) -> Duration {
    let ceiling = BASE_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF);
    ceiling.mul_f64(unit_random())
}

/// `interval` ± 10 %, so that a fleet does not move in step.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * unit_random())
}

fn unit_random() -> f64 {
    let mut b = [0u8; 4];
    if bulwark_crypto::fill_random(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

fn shutdown() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_half_life() {
        assert!(!due_for_renewal(0, 100, 49));
        assert!(due_for_renewal(0, 100, 50));
        assert!(due_for_renewal(0, 100, 500));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for n in 1..40 {
            let ceiling = BASE_BACKOFF
                .saturating_mul(1u32 << n.min(16))
                .min(MAX_BACKOFF);
            for _ in 0..20 {
                assert!(backoff(n) <= ceiling);
            }
        }
        let waits: std::collections::HashSet<u128> =
            (0..20).map(|_| backoff(10).as_nanos()).collect();
        assert!(waits.len() > 1, "jittered");
        let j = jittered(Duration::from_secs(10));
        assert!(j >= Duration::from_secs(9) && j <= Duration::from_secs(11));
    }
}
