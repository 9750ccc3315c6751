//! Rotation of the token signing key (asked for over the admin socket, whose peer check
//! is the authorization).
//!
//! The active key signs; a rotation journals `key.retire` for it (with its public half),
//! writes the new private key over `signing.key` (0600, atomically), journals `key.create`
//! for the new one (with its public half), and publishes the new key set. The retired
//! key's private half is gone; its public half stays in the JWKS and keeps verifying for
//! the longest token lifetime plus skew ([`crate::authn::RETIRED_KEY_WINDOW_MS`]), rebuilt
//! from the journal after a restart. A pruner drops it from the set when its window closes.

use std::sync::Arc;
use std::time::Duration;

use bulwark_crypto::SigningKey;

use crate::AppState;
use crate::authn::live_retired;
use bulwark_directory::keys::{KeyCreated, KeyRetired};

use crate::error::Error;

/// The key-view purpose of the token signing key.
pub const PURPOSE: &str = "signing";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn internal(what: &str, e: &impl std::fmt::Display) -> Error {
    Error::internal(format_args!("key rotation: {what}: {e}"))
}

/// Rotates the token signing key for `actor`; answers with the (old, new) key ids. The
/// whole rotation runs under the sequencer (the pruner waits for it).
pub async fn rotate(state: &AppState, actor: &str) -> Result<(String, String), Error> {
    let _seq = state.journal.sequencer.lock().await;
    let current = state.auth.keyset();
    let old = current.active();
    let new = SigningKey::generate().map_err(|e| internal("key generation", &e))?;
    let retire = KeyRetired {
        purpose: PURPOSE.into(),
        kid: old.kid().to_owned(),
        public: Some(bulwark_identity::jose::b64(old.verifying_key().as_bytes())),
    }
    .draft()
    .map_err(|e| internal("encoding", &e))?
    .actor(actor);
    state
        .journal
        .ledger
        .append(retire)
        .await
        .map_err(Error::from)?;
    if let Some(dir) = &state.runtime.data_dir {
        bulwark_fs::write_atomic(
            &dir.join(bulwark_fs::layout::SIGNING_KEY),
            new.encode().as_bytes(),
            0o600,
        )
        .map_err(|e| internal("writing the key file", &e))?;
    }
    let create = KeyCreated {
        purpose: PURPOSE.into(),
        kid: new.kid().to_owned(),
        alg: "Ed25519".into(),
        public: Some(bulwark_identity::jose::b64(new.verifying_key().as_bytes())),
    }
    .draft()
    .map_err(|e| internal("encoding", &e))?
    .actor(actor);
    state
        .journal
        .ledger
        .append(create)
        .await
        .map_err(Error::from)?;
    let retired = live_retired(
        &state.journal.key_view.retired(PURPOSE, new.kid()),
        now_ms(),
    );
    state
        .auth
        .install(&new, &retired)
        .map_err(|e| internal("installing the key", &e))?;
    tracing::info!(
        old = old.kid(),
        new = new.kid(),
        "token signing key rotated"
    );
    Ok((old.kid().to_owned(), new.kid().to_owned()))
}

/// Drops retired keys from the published set once their window has closed.
pub fn spawn_pruner(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            // Under the sequencer: a rotation in flight must not be undone by a rebuild
            // from the set it is replacing.
            let _seq = state.journal.sequencer.lock().await;
            let set = state.auth.keyset();
            let published = set.jwks()["keys"].as_array().map_or(0, Vec::len);
            let live = live_retired(
                &state.journal.key_view.retired(PURPOSE, set.active_kid()),
                now_ms(),
            );
            if live.len() + 1 != published
                && let Err(e) = state.auth.install(set.active(), &live)
            {
                tracing::error!(error = %e, "could not prune retired token keys");
            }
        }
    });
}
