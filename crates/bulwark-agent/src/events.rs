//! The agent's side of the signed event bus: it subscribes to `GET /v1/nodes/{id}/events`
//! over mTLS, verifies every envelope itself (addressed to this node, within ±5 minutes,
//! signed by a valid key of its org from `GET /v1/nodes/{id}/event-keys`, nonce not seen
//! before), acts on the built-in types and resumes after a disconnect from the last id it
//! handled (`events.cursor` in its directory). It journals nothing; it logs JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use bulwark_client::Client;
use bulwark_events::gate::{NonceCache, admit_batch_at_agent};
use bulwark_events::{Envelope, KeyRing, PublishedKey, Refusal};
use bulwark_fs::write_atomic;
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;

use crate::run::{Identity, backoff, load_identity};

/// What an admitted envelope asks of the agent's main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `secrets.changed`: fetch the secrets file now.
    Refetch,
    /// `cert.renew`: renew the certificate now.
    Renew,
    /// `node.quarantine`: wipe the secrets file and stop.
    Quarantine,
}

const CURSOR: &str = "events.cursor";

/// Follows the stream until the main loop goes away; reconnects with backoff.
pub async fn follow(dir: PathBuf, node_api: Option<String>, tx: mpsc::Sender<Action>) {
    let cache = NonceCache::new(100_000);
    let mut failures = 0u32;
    loop {
        match follow_once(&dir, node_api.as_deref(), &cache, &tx).await {
            Ok(()) => {
                failures = 0;
                tracing::info!("event stream ended; reconnecting");
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %format!("{e:#}"), failures, "event stream failed; reconnecting");
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff(failures.max(1))).await;
    }
}

async fn fetch_ring(client: &Client, id: &Identity) -> anyhow::Result<KeyRing> {
    let url = format!("{}/v1/nodes/{}/event-keys", id.node_api, id.node);
    let (status, _, body) = client
        .send(http::Method::GET, &url, &[], Vec::new())
        .await?;
    if status != 200 {
        bail!("the node API answered {status} for the event keys");
    }
    let v: serde_json::Value = serde_json::from_slice(&body).context("event keys")?;
    let keys: Vec<PublishedKey> =
        serde_json::from_value(v["keys"].clone()).context("event keys")?;
    Ok(KeyRing::from_published(keys))
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn follow_once(
    dir: &Path,
    node_api: Option<&str>,
    cache: &NonceCache,
    tx: &mpsc::Sender<Action>,
) -> anyhow::Result<()> {
    let id = load_identity(dir, node_api)?;
    let client = Client::with_identity(&id.ca_pem, &id.chain_pem, &id.key_pem)?;
    let mut ring = fetch_ring(&client, &id).await?;
    let cursor = std::fs::read_to_string(dir.join(CURSOR))
        .ok()
        .and_then(|c| c.trim().parse::<u64>().ok());
    let mut headers = Vec::new();
    if let Some(c) = cursor {
        headers.push((
            http::HeaderName::from_static("last-event-id"),
            zeroize::Zeroizing::new(c.to_string()),
        ));
    }
    let url = format!("{}/v1/nodes/{}/events", id.node_api, id.node);
    let resp = client
        .open(http::Method::GET, &url, &headers, Vec::new())
        .await?;
    if resp.status() != 200 {
        bail!(
            "the node API answered {} for the event stream",
            resp.status()
        );
    }
    tracing::info!(resume_after = cursor, "following the event stream");
    let mut body = resp.into_body();
    let mut parser = bulwark_events::sse::Parser::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.context("event stream")?.into_data() else {
            continue;
        };
        let batch: Vec<(u64, String)> = parser
            .push(&data)?
            .into_iter()
            .filter_map(|ev| Some((ev.id.as_deref()?.parse::<u64>().ok()?, ev.data)))
            .collect();
        if batch.is_empty() {
            continue;
        }
        // A backlog arrives many at a time: parsed one by one, verified in one batch.
        let parsed: Vec<(u64, Result<Envelope, String>)> = batch
            .into_iter()
            .map(|(seq, data)| {
                (
                    seq,
                    Envelope::parse(data.as_bytes()).map_err(|e| format!("malformed: {e}")),
                )
            })
            .collect();
        let envs: Vec<Envelope> = parsed
            .iter()
            .filter_map(|(_, e)| e.as_ref().ok().cloned())
            .collect();
        let me = (id.org.as_str(), id.node.as_str());
        if envs
            .iter()
            .any(|e| !ring.keys().any(|k| k.key_id == e.key_id))
        {
            // A rotation since the ring was fetched: fetch it once more.
            ring = fetch_ring(&client, &id).await?;
        }
        let mut verdicts = admit_batch_at_agent(&envs, me, &ring, cache, now()).into_iter();
        // The cursor moves once per batch (one fsync), to the last envelope handled.
        let mut handled = None;
        let mut cache_full = false;
        for (seq, parsed) in parsed {
            let verdict = match parsed {
                Err(e) => Err(e),
                Ok(env) => match verdicts.next() {
                    Some(Ok(())) => Ok(env),
                    Some(Err(Refusal::ReplayCacheFull)) => {
                        // Not a verdict on the envelope: stop before it; the reconnect
                        // resumes from the cursor.
                        cache_full = true;
                        break;
                    }
                    Some(Err(r)) => Err(r.as_str().to_owned()),
                    None => Err("unchecked".to_owned()),
                },
            };
            match verdict {
                Ok(env) => {
                    tracing::info!(
                        seq,
                        id = env.id.as_str(),
                        kind = env.kind.as_str(),
                        "event admitted"
                    );
                    let action = match env.kind.as_str() {
                        "secrets.changed" => Some(Action::Refetch),
                        "cert.renew" => Some(Action::Renew),
                        "node.quarantine" => Some(Action::Quarantine),
                        _ => None,
                    };
                    if let Some(a) = action
                        && tx.send(a).await.is_err()
                    {
                        return Ok(());
                    }
                }
                Err(reason) => {
                    tracing::warn!(seq, reason = reason.as_str(), "event refused");
                }
            }
            handled = Some(seq);
        }
        if let Some(seq) = handled {
            write_atomic(&dir.join(CURSOR), seq.to_string().as_bytes(), 0o600)?;
        }
        if cache_full {
            bail!("the agent's replay cache is full");
        }
    }
    Ok(())
}
