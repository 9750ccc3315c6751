//! Bulwark's composition root.
//!
//! Owns: resolving configuration, preparing the data directory and the instance's keys,
//! composing the routers behind the hardening stack, the listeners (HTTPS API, admin unix
//! socket), readiness and metrics.
//!
//! Must never: contain protocol or policy logic that belongs in a pure crate (limits,
//! problem codes, Merkle math, permission rules live elsewhere); open a plaintext TCP
//! listener; write anything to disk in amnesia mode.

#![forbid(unsafe_code)]

pub mod admin;
mod app;
pub mod authn;
pub mod config;
pub mod error;
pub mod events;
pub mod http;
pub mod hygiene;
pub mod keys;
pub mod ops;
pub mod pki;
pub mod readiness;
pub mod state;
pub mod tls;
mod wiring;

use anyhow::Context as _;

pub use app::App;
pub use config::{Config, ServeArgs};
pub use state::AppState;

/// Runs `bulwark serve` until SIGINT or SIGTERM.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    cfg.build().await?.run(shutdown).await
}

/// Installs the SIGTERM and SIGINT handlers now (so a signal that arrives during start-up
/// is not the default "terminate") and resolves when either arrives.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down");
    })
}

/// The stand-in secret of `bulwark selftest panic-hook`.
pub fn selftest_secret() -> bulwark_crypto::SecretBytes {
    bulwark_crypto::SecretBytes::new(b"selftest-secret-7f3a91c2".to_vec())
}

/// Installs JSON logging to stdout.
pub fn init_logging(level: &str) {
    bulwark_http::telemetry::init("bulwark", level);
}
