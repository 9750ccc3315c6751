//! `bulwark audit mirror`: follows a log's checkpoints and hash tiles into a local directory
//! and checks that every new checkpoint is consistent with the last one it saw. A split
//! view (same size, different root; a shrinking log; a failed consistency proof; tiles
//! that do not hash to the checkpoint) is an alarm: a JSON line and exit code 2.

use std::path::Path;

use anyhow::{Context as _, bail};
use bulwark_ledger::checkpoint::{Checkpoint, NoteVerifier};
use bulwark_ledger::merkle::{Hash, Tree, verify_consistency};
use bulwark_ledger::tiles::{self, TILE_WIDTH};
use bulwark_ledger::verify::{hex, unhex};
use serde::Serialize;

use bulwark_client::Client;

/// The result of one mirror run.
#[derive(Debug, Serialize)]
pub struct MirrorReport {
    /// False on an alarm.
    pub ok: bool,
    /// The checkpoint size now mirrored.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
    /// The previous size seen, if any.
    pub previous_size: Option<u64>,
    /// What is wrong, on an alarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
}

fn alarm(cp: &Checkpoint, previous: Option<u64>, why: String) -> MirrorReport {
    MirrorReport {
        ok: false,
        size: cp.size,
        root: hex(&cp.root),
        previous_size: previous,
        alarm: Some(why),
    }
}

/// Runs the mirror once. `vkey` pins the log's key on the first run (otherwise the key
/// served by the log is pinned, trust on first use, and said so on stderr).
pub async fn run_once(
    base: &str,
    dir: &Path,
    ca_pem: &str,
    vkey: Option<&str>,
) -> anyhow::Result<MirrorReport> {
    let client = Client::new(ca_pem)?;
    let base = base.trim_end_matches('/');
    std::fs::create_dir_all(dir.join("checkpoints"))?;

    let pinned = dir.join("vkey");
    let vkey = match (std::fs::read_to_string(&pinned).ok(), vkey) {
        (Some(p), Some(v)) if p.trim() != v.trim() => {
            bail!(
                "--vkey differs from the key pinned in `{}`",
                pinned.display()
            )
        }
        (Some(p), _) => p.trim().to_owned(),
        (None, Some(v)) => v.trim().to_owned(),
        (None, None) => {
            let (status, body) = client.get(&format!("{base}/v1/audit/log/key")).await?;
            if status != 200 {
                bail!("fetching the log key: HTTP {status}");
            }
            eprintln!(
                "bulwark: pinning the log's key on first use; pass --vkey to pin a key obtained out of band"
            );
            String::from_utf8(body)?.trim().to_owned()
        }
    };
    let verifier = NoteVerifier::from_vkey(&vkey).context("invalid log key")?;
    std::fs::write(&pinned, format!("{vkey}\n"))?;

    let (status, body) = client
        .get(&format!("{base}/v1/audit/log/checkpoint"))
        .await?;
    if status != 200 {
        bail!("fetching the checkpoint: HTTP {status}");
    }
    let note = String::from_utf8(body).context("checkpoint is not UTF-8")?;
    let cp = match verifier.verify(&note) {
        Ok(cp) => cp,
        Err(e) => {
            return Ok(MirrorReport {
                ok: false,
                size: 0,
                root: String::new(),
                previous_size: None,
                alarm: Some(format!(
                    "the log served a checkpoint that does not verify: {e}"
                )),
            });
        }
    };

    let latest = dir.join("checkpoint");
    let previous = match std::fs::read_to_string(&latest) {
        Ok(n) => Some(
            verifier
                .verify(&n)
                .context("the mirrored checkpoint no longer verifies")?,
        ),
        Err(_) => None,
    };
    let prev_size = previous.as_ref().map(|p| p.size);
    if let Some(prev) = &previous {
        if cp.size < prev.size {
            return Ok(alarm(
                &cp,
                prev_size,
                format!("the log shrank from {} to {}", prev.size, cp.size),
            ));
        }
        if cp.size == prev.size && cp.root != prev.root {
            return Ok(alarm(
                &cp,
                prev_size,
                format!("split view: two roots for size {}", cp.size),
            ));
        }
        if cp.size > prev.size {
            let url = format!(
                "{base}/v1/audit/proof/consistency?from={}&to={}",
                prev.size, cp.size
            );
            let (status, body) = client.get(&url).await?;
            let proof: Option<Vec<Hash>> = (status == 200)
                .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
                .flatten()
                .and_then(|v| v["proof"].as_array().cloned())
                .and_then(|a| a.iter().map(|h| h.as_str().and_then(unhex)).collect());
            let consistent = proof
                .is_some_and(|p| verify_consistency(prev.size, cp.size, &prev.root, &cp.root, &p));
            if !consistent {
                return Ok(alarm(
                    &cp,
                    prev_size,
                    format!(
                        "split view: checkpoint {} is not consistent with {}",
                        cp.size, prev.size
                    ),
                ));
            }
        }
    }

    // Keep a copy of the level-0 hash tiles and check they hash to the checkpoint.
    let mut tree = Tree::new();
    for (index, width) in tiles::tiles_for(cp.size) {
        let name = tiles::tile_name(index, width);
        let local = dir.join("tile/0").join(&name);
        let bytes = match std::fs::read(&local) {
            Ok(b) if width == TILE_WIDTH => b,
            _ => {
                let (status, body) = client
                    .get(&format!("{base}/v1/audit/log/tile/0/{name}"))
                    .await?;
                if status != 200 {
                    bail!("fetching tile 0/{name}: HTTP {status}");
                }
                if let Some(parent) = local.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&local, &body)?;
                body
            }
        };
        if bytes.len() as u64 != width * 32 {
            return Ok(alarm(
                &cp,
                prev_size,
                format!("tile 0/{name} has the wrong size"),
            ));
        }
        for h in bytes.chunks_exact(32) {
            let mut leaf = [0u8; 32];
            leaf.copy_from_slice(h);
            tree.push(leaf);
        }
    }
    if tree.root() != cp.root {
        return Ok(alarm(
            &cp,
            prev_size,
            "the log's hash tiles do not hash to its checkpoint".into(),
        ));
    }

    std::fs::write(dir.join("checkpoints").join(cp.size.to_string()), &note)?;
    std::fs::write(&latest, &note)?;
    Ok(MirrorReport {
        ok: true,
        size: cp.size,
        root: hex(&cp.root),
        previous_size: prev_size,
        alarm: None,
    })
}
