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
pub mod api;
mod audit_api;
pub mod authn;
pub mod config;
pub mod events;
pub mod hygiene;
pub mod keys;
pub mod oauth;
pub mod pki;
pub mod readiness;
pub mod routes;
pub mod tls;
pub mod token_keys;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use bulwark_directory::keys::{InstanceStart, KeyCreated, KeyView};
use bulwark_fs::layout;
pub use config::{Config, ServeArgs};
use keys::InstanceKeys;
use readiness::Readiness;

/// State shared by the API and admin routers.
pub struct AppState {
    /// Readiness of the instance.
    pub readiness: Arc<Readiness>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// This instance's id.
    pub instance_id: String,
    /// When the process started serving.
    pub started: Instant,
    /// The bound API address.
    pub listen: SocketAddr,
    /// The data directory (`None` in amnesia mode).
    pub data_dir: Option<PathBuf>,
    /// The journal.
    pub ledger: bulwark_ledger::Ledger,
    /// Instance key metadata, folded from the journal.
    pub key_view: Arc<KeyView>,
    /// Tenants, principals, relations, revocations, folded from the journal.
    pub directory: Arc<bulwark_directory::DirectoryView>,
    /// The token service.
    pub auth: authn::Auth,
    /// Held while a command is checked against the directory and appended, so that
    /// uniqueness rules cannot race.
    pub sequencer: tokio::sync::Mutex<()>,
    /// The key-encryption key.
    pub kek: bulwark_crypto::Kek,
    /// Secret version metadata, folded from the journal.
    pub secrets_view: Arc<bulwark_secrets::view::SecretsView>,
    /// Where secret ciphertexts are stored.
    pub secret_blobs: Arc<dyn bulwark_store::SecretBlobs>,
    /// The stored ciphertexts, in memory.
    pub secret_cache: api::secrets::SecretCache,
    /// Secret reads per org.
    pub org_reads: bulwark_http::rate::KeyedRate<String>,
    /// Secret reads per node.
    pub node_reads: bulwark_http::rate::KeyedRate<String>,
    /// The intermediate CA that signs node certificates.
    pub intermediate: keys::Intermediate,
    /// The intermediate, parsed once for signing leaves.
    pub leaf_signer: bulwark_pki::ca::LeafSigner,
    /// The root CA certificate (PEM) clients trust.
    pub ca_cert_pem: String,
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// Moves at every revocation and quarantine folded into the directory: open
    /// connections are judged again.
    pub peer_epoch: Arc<tokio::sync::watch::Sender<u64>>,
    /// The last CRL signed.
    pub crl: pki::CrlCache,
    /// The node API's URL, as agents should reach it.
    pub node_api_url: String,
    /// Lifetime of node certificates.
    pub node_cert_ttl: Duration,
    /// The listeners' TLS configurations (server certificate rotation).
    pub tls: tls::ServerTls,
    /// Judges client certificates (revocation, quarantine): at the handshake, on open
    /// connections and per node request.
    pub peer_judge: Arc<pki::PeerJudge>,
    /// Org event key rings and per-node envelope backlogs, folded from the journal.
    pub events_view: Arc<events::EventsView>,
    /// Each org's event signing keys.
    pub event_keys: events::EventKeys,
    /// The fan-out to event subscribers.
    pub event_bus: Arc<dyn events::Fanout>,
    /// The signed event bus's gate.
    pub event_gate: bulwark_events::Gate,
}

/// Runs `bulwark serve` until SIGINT or SIGTERM.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    // Held until `serve` returns: offline commands (KEK rotation, restore) refuse to run
    // beside a live server.
    let mut dir_lock: Option<bulwark_fs::DirLock> = None;
    let metrics = bulwark_http::metrics::install().context("installing metrics recorder")?;
    let readiness = Readiness::new();

    let (keys, created) = match &cfg.data_dir {
        Some(dir) => {
            bulwark_fs::ensure_private_dir(dir)?;
            dir_lock = Some(bulwark_fs::lock_dir(dir)?);
            if dir.join(layout::KEK_NEXT_FILE).exists() {
                anyhow::bail!(
                    "a KEK rotation is in progress in `{}`: run `bulwark keys rotate-kek --data-dir {}` to finish it",
                    dir.display(),
                    dir.display()
                );
            }
            InstanceKeys::load_or_create(dir, &cfg.server_names, env_kek()?)?
        }
        None => (
            InstanceKeys::ephemeral(&cfg.server_names, env_kek()?)?,
            true,
        ),
    };
    let directory = Arc::new(bulwark_directory::DirectoryView::default());
    // Whatever appends a revocation or a quarantine, its fold re-judges open connections.
    let peer_epoch = Arc::new(tokio::sync::watch::channel(0u64).0);
    {
        let epoch = peer_epoch.clone();
        directory.on_peer_change(Box::new(move || {
            epoch.send_modify(|e| *e = e.wrapping_add(1));
        }));
    }
    let judge = Arc::new(pki::PeerJudge::new(
        directory.clone(),
        cfg.trust_domain.clone(),
    ));
    let tls = keys.tls_config(&judge)?;
    let intermediate = keys.intermediate(cfg.data_dir.as_deref())?;
    let key_view = Arc::new(KeyView::default());
    let secrets_view = Arc::new(bulwark_secrets::view::SecretsView::default());
    let events_view = Arc::new(events::EventsView::default());
    let ledger = open_ledger(
        &cfg,
        &keys,
        vec![
            key_view.clone(),
            directory.clone(),
            secrets_view.clone(),
            events_view.clone(),
        ],
    )?;
    let secret_blobs: Arc<dyn bulwark_store::SecretBlobs> = match &cfg.data_dir {
        Some(dir) => Arc::new(
            bulwark_store::SqliteSecrets::open(&dir.join(layout::SECRETS_DB))
                .context("opening the secret store")?,
        ),
        None => Arc::new(bulwark_store::MemorySecrets),
    };
    let secret_cache = api::secrets::SecretCache::load(secret_blobs.as_ref())
        .context("loading secret ciphertexts")?;
    api::secrets::shred_destroyed(&secrets_view, secret_blobs.as_ref(), &secret_cache);
    record_start(&ledger, &keys, &key_view).await?;
    let (tls_tx, tls_rx) = tokio::sync::watch::channel(tls);

    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let node_listener = TcpListener::bind(cfg.node_listen)
        .await
        .with_context(|| format!("cannot listen on {} (node API)", cfg.node_listen))?;
    let node_tls = keys.node_tls_config(&judge)?;
    let (node_tls_tx, node_tls_rx) = tokio::sync::watch::channel(node_tls);
    let listen = listener.local_addr()?;
    let issuer = cfg.public_url.clone().unwrap_or_else(|| {
        let host = cfg.server_names.first().map_or("localhost", String::as_str);
        format!("https://{host}:{}", listen.port())
    });
    let retired = authn::live_retired(
        &key_view.retired(token_keys::PURPOSE, keys.signing.kid()),
        token_keys::now_ms(),
    );
    let auth = authn::Auth::new(
        issuer,
        &keys.signing,
        &retired,
        cfg.token_ttl_secs,
        cfg.dpop_nonce,
    )?;

    let state = Arc::new(AppState {
        readiness: readiness.clone(),
        metrics: metrics.clone(),
        instance_id: keys.instance_id.clone(),
        started: Instant::now(),
        listen,
        data_dir: cfg.data_dir.clone(),
        ledger: ledger.clone(),
        key_view,
        directory: directory.clone(),
        auth,
        sequencer: tokio::sync::Mutex::new(()),
        kek: keys.kek,
        secrets_view,
        secret_blobs,
        secret_cache,
        org_reads: bulwark_http::rate::KeyedRate::new(
            cfg.org_secret_reads.0,
            cfg.org_secret_reads.1,
        ),
        node_reads: bulwark_http::rate::KeyedRate::new(
            cfg.node_secret_reads,
            cfg.node_secret_reads,
        ),
        leaf_signer: bulwark_pki::ca::LeafSigner::new(
            &intermediate.cert_pem,
            &intermediate.key_pem,
        )
        .context("the intermediate CA does not load")?,
        intermediate,
        ca_cert_pem: keys.ca_cert_pem.clone(),
        trust_domain: cfg.trust_domain.clone(),
        peer_epoch,
        crl: pki::CrlCache::default(),
        node_cert_ttl: cfg.node_cert_ttl,
        event_gate: events::gate(
            &events_view,
            directory.clone(),
            std::env::var("BULWARK_TEST_UNWIRE_EVENT_PORT")
                .ok()
                .as_deref(),
        ),
        event_keys: events::EventKeys::load(cfg.data_dir.as_deref())?,
        event_bus: Arc::new(events::Bus::new(cfg.max_event_streams_per_node)),
        events_view,
        peer_judge: judge.clone(),
        tls: tls::ServerTls::new(
            tls_tx,
            node_tls_tx,
            judge.clone(),
            keys.ca_cert_pem.clone(),
            cfg.server_names.clone(),
            cfg.data_dir.clone(),
        ),
        node_api_url: format!(
            "https://{}:{}",
            cfg.server_names.first().map_or("localhost", String::as_str),
            node_listener.local_addr()?.port()
        ),
    });
    let revalidate = bulwark_http::listener::Revalidate {
        check: judge.clone(),
        epoch: state.peer_epoch.subscribe(),
    };

    if let Some(path) = &cfg.admin_socket {
        let l = admin::bind(path)?;
        admin::spawn(l, cfg.admin_uids.clone(), state.clone());
    }

    let hardening = bulwark_http::Hardening::new(cfg.limits.clone());
    spawn_housekeeping(hardening.clone(), metrics, state.clone());
    token_keys::spawn_pruner(state.clone());
    readiness::spawn_probes(
        readiness.clone(),
        cfg.data_dir.clone(),
        ledger.clone(),
        cfg.readiness_interval,
    );
    let app = bulwark_http::harden(
        bulwark_http::route_label(
            routes::api_router(state.clone())
                .merge(audit_api::router(
                    state.clone(),
                    cfg.insecure_serve_entry_bundles,
                ))
                .merge(oauth::router(state.clone()))
                .merge(api::nodes::enroll_router(state.clone()))
                .merge(api::certs::public_router(state.clone()))
                .merge(api::router(state.clone())),
        ),
        hardening,
    );

    if cfg.data_dir.is_none() {
        // Amnesia writes no ca.pem; the (public) CA certificate is logged once instead so
        // that clients can still verify the server. Logged before "listening", which
        // clients and tests wait for.
        tracing::info!(
            ca_pem = keys.ca_cert_pem.as_str(),
            "amnesia mode: nothing is written to disk"
        );
    }
    tracing::info!(
        addr = %listen,
        instance_id = keys.instance_id.as_str(),
        created,
        data_dir = cfg.data_dir.as_ref().map(|d| d.display().to_string()),
        admin_socket = cfg.admin_socket.as_ref().map(|d| d.display().to_string()),
        signing_kid = keys.signing.kid(),
        issuer = state.auth.issuer.as_str(),
        kek_kid = state.kek.kid(),
        "listening"
    );
    readiness.mark_started();

    // The node API: its own listener, client certificates required, the same hardening.
    let node_app = bulwark_http::harden(
        bulwark_http::route_label(
            api::node_api::router(state.clone())
                .fallback(routes::not_found)
                .method_not_allowed_fallback(routes::method_not_allowed),
        ),
        bulwark_http::Hardening::new(cfg.limits.clone()),
    );
    let node_addr = node_listener.local_addr()?;
    let node_limits = cfg.limits.clone();
    let node_revalidate = revalidate.clone();
    let (node_stop_tx, node_stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        bulwark_http::listener::serve_tls(
            node_listener,
            node_tls_rx,
            node_app,
            &node_limits,
            Some(node_revalidate),
            async {
                let _ = node_stop_rx.await;
            },
        )
        .await;
    });
    tracing::info!(addr = %node_addr, "node api listening");

    bulwark_http::listener::serve_tls(
        listener,
        tls_rx,
        app,
        &cfg.limits,
        Some(revalidate),
        shutdown,
    )
    .await;
    let _ = node_stop_tx.send(());

    if let Some(path) = &cfg.admin_socket {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    drop(dir_lock);
    Ok(())
}

/// The KEK from `BULWARK_KEK` (standard base64 of 32 bytes), if set. It is read from the
/// environment only, never from a flag (argv is visible to every local user).
fn env_kek() -> anyhow::Result<Option<bulwark_crypto::Kek>> {
    match std::env::var("BULWARK_KEK") {
        Ok(v) if !v.trim().is_empty() => {
            let v = zeroize::Zeroizing::new(v);
            Ok(Some(bulwark_crypto::Kek::decode(&v).context(
                "BULWARK_KEK is not a valid KEK (standard base64 of 32 bytes)",
            )?))
        }
        _ => Ok(None),
    }
}

/// Opens the journal (SQLite in the data directory, memory in amnesia mode). A journal
/// that does not verify stops start-up: serving on top of a tampered log would hide it.
fn open_ledger(
    cfg: &Config,
    keys: &InstanceKeys,
    projections: Vec<Arc<dyn bulwark_ledger::projection::Projection>>,
) -> anyhow::Result<bulwark_ledger::Ledger> {
    let journal: Box<dyn bulwark_ledger::journal::Journal> = match &cfg.data_dir {
        Some(dir) => Box::new(
            bulwark_store::SqliteJournal::open(&dir.join(layout::JOURNAL_DB))
                .context("opening the journal")?,
        ),
        None => Box::new(bulwark_store::MemoryJournal::new()),
    };
    let config = bulwark_ledger::LedgerConfig {
        origin: keys.origin(),
        checkpoint_interval: cfg.checkpoint_interval,
        max_batch: 4096,
        snapshot_every: 10_000,
    };
    bulwark_ledger::Ledger::open(journal, keys.ledger_key()?, config, projections).map_err(|e| {
        let hint = cfg.data_dir.as_ref().map_or(String::new(), |d| {
            format!(
                "; run `bulwark audit verify --data-dir {}` for a report",
                d.display()
            )
        });
        anyhow::anyhow!("the journal does not verify, refusing to start: {e}{hint}")
    })
}

/// Journals the instance's keys the first time they are seen, and every start.
async fn record_start(
    ledger: &bulwark_ledger::Ledger,
    keys: &InstanceKeys,
    key_view: &KeyView,
) -> anyhow::Result<()> {
    let signing_public = bulwark_identity::jose::b64(keys.signing.verifying_key().as_bytes());
    let announced = [
        ("ca", keys.ca_kid(), "ECDSA-P256", None),
        ("kek", keys.kek.kid(), "AES-256", None),
        (
            "signing",
            keys.signing.kid().to_owned(),
            "Ed25519",
            Some(signing_public),
        ),
        ("ledger", keys.ledger_kid().to_owned(), "Ed25519", None),
    ];
    for (purpose, kid, alg, public) in announced {
        if !key_view.knows(purpose, &kid) {
            let draft = KeyCreated {
                purpose: purpose.into(),
                kid,
                alg: alg.into(),
                public,
            }
            .draft()?;
            ledger
                .append(draft)
                .await
                .context("journaling key metadata")?;
        }
    }
    let start = bulwark_ledger::entry::Draft::new(
        bulwark_ledger::entry::Kind::State,
        "instance.start",
        format!("instance/{}", keys.instance_id),
    )
    .data(&InstanceStart {
        version: env!("CARGO_PKG_VERSION").into(),
    })?;
    ledger.append(start).await.context("journaling start-up")?;
    ledger
        .checkpoint_now()
        .await
        .context("signing the first checkpoint")?;
    Ok(())
}

fn spawn_housekeeping(
    h: Arc<bulwark_http::Hardening>,
    metrics: PrometheusHandle,
    state: Arc<AppState>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            h.forget_idle_clients();
            state.org_reads.forget_idle();
            state.node_reads.forget_idle();
            metrics.run_upkeep();
        }
    });
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
