//! The composition root: [`Config::build`] destructures the configuration and builds each
//! part (data directory and keys, stores, projections, state, routers, listeners) into an
//! [`App`]; [`App::run`] serves until shutdown. Nothing here decides policy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, UnixListener};

use crate::config::Config;
use crate::readiness::Readiness;
use crate::state::{self, AppState};
use crate::{admin, authn, events, ops, pki, readiness, tls, wiring};

/// A built server: bound listeners and composed routers, not yet serving.
pub struct App {
    state: Arc<AppState>,
    api: Listener,
    node: Listener,
    admin: Option<(UnixListener, Vec<u32>, std::path::PathBuf)>,
    hardening: Arc<bulwark_http::Hardening>,
    metrics: PrometheusHandle,
    readiness_interval: Duration,
    limits: bulwark_http::Limits,
    _dir_lock: Option<bulwark_fs::DirLock>,
}

/// A TLS listener and what it serves.
struct Listener {
    tcp: TcpListener,
    tls: tokio::sync::watch::Receiver<Arc<rustls::ServerConfig>>,
    router: Router,
}

impl Config {
    /// Builds every part of the server from this configuration.
    pub async fn build(self) -> anyhow::Result<App> {
        let metrics = bulwark_http::metrics::install().context("installing metrics recorder")?;
        let clock: Arc<dyn bulwark_core::Clock> = Arc::new(bulwark_core::SystemClock);
        let shared = wiring::shared(&self, clock.clone());
        let readiness = Readiness::new();
        let wiring::DataDir {
            lock,
            keys,
            created,
        } = wiring::DataDir::open(&self)?;

        // Projections, folded from the journal as it opens.
        let directory = Arc::new(bulwark_directory::DirectoryView::default());
        // Whatever appends a revocation or a quarantine, its fold re-judges open connections.
        let peer_epoch = Arc::new(tokio::sync::watch::channel(0u64).0);
        {
            let epoch = peer_epoch.clone();
            directory.on_peer_change(Box::new(move || {
                epoch.send_modify(|e| *e = e.wrapping_add(1));
            }));
        }
        let key_view = Arc::new(bulwark_directory::keys::KeyView::default());
        let secrets_view = Arc::new(bulwark_secrets::view::SecretsView::default());
        let events_view = Arc::new(events::EventsView::default());
        let ledger = wiring::open_ledger(
            &self,
            &keys,
            vec![
                key_view.clone(),
                directory.clone(),
                secrets_view.clone(),
                events_view.clone(),
            ],
        )?;
        let secret_blobs = wiring::open_secret_blobs(&self)?;
        let secret_cache = crate::ops::secrets::SecretCache::load(secret_blobs.as_ref())
            .context("loading secret ciphertexts")?;
        crate::ops::secrets::shred_destroyed(&secrets_view, secret_blobs.as_ref(), &secret_cache);
        wiring::record_start(&ledger, &keys, &key_view).await?;

        // TLS: both listeners judge client certificates against the directory.
        let judge = Arc::new(pki::PeerJudge::new(
            directory.clone(),
            self.trust_domain.clone(),
        ));
        let (tls_tx, tls_rx) = tokio::sync::watch::channel(keys.tls_config(&judge)?);
        let (node_tls_tx, node_tls_rx) = tokio::sync::watch::channel(keys.node_tls_config(&judge)?);
        let intermediate = keys.intermediate(self.data_dir.as_deref())?;

        let api_tcp = TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let node_tcp = TcpListener::bind(self.node_listen)
            .await
            .with_context(|| format!("cannot listen on {} (node API)", self.node_listen))?;
        let listen = api_tcp.local_addr()?;
        let first_name = self
            .server_names
            .first()
            .map_or("localhost", String::as_str)
            .to_owned();
        let issuer = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("https://{first_name}:{}", listen.port()));
        let retired = authn::live_retired(
            &key_view.retired(ops::keys::PURPOSE, keys.signing.kid()),
            ops::keys::now_ms(),
        );
        let auth = authn::Auth::new(
            issuer,
            &keys.signing,
            &retired,
            self.token_ttl_secs,
            self.dpop_nonce,
        )?;

        let state = Arc::new(AppState {
            runtime: state::Runtime {
                readiness: readiness.clone(),
                metrics: metrics.clone(),
                instance_id: keys.instance_id.clone(),
                started: Instant::now(),
                listen,
                data_dir: self.data_dir.clone(),
            },
            journal: state::Journal {
                ledger,
                sequencer: tokio::sync::Mutex::new(()),
                key_view,
            },
            directory: directory.clone(),
            auth,
            secrets: state::Secrets {
                kek: keys.kek,
                view: secrets_view,
                blobs: secret_blobs,
                cache: secret_cache,
                org_reads: quota(self.org_secret_reads.0, self.org_secret_reads.1),
                node_reads: quota(self.node_secret_reads, self.node_secret_reads),
            },
            pki: state::Pki {
                leaf_signer: bulwark_pki::ca::LeafSigner::new(
                    &intermediate.cert_pem,
                    &intermediate.key_pem,
                )
                .context("the intermediate CA does not load")?,
                intermediate,
                ca_cert_pem: keys.ca_cert_pem.clone(),
                trust_domain: self.trust_domain.clone(),
                peer_epoch,
                peer_judge: judge.clone(),
                crl: pki::CrlCache::default(),
                node_api_url: format!("https://{first_name}:{}", node_tcp.local_addr()?.port()),
                node_cert_ttl: self.node_cert_ttl,
                tls: tls::ServerTls::new(
                    tls_tx,
                    node_tls_tx,
                    judge,
                    keys.ca_cert_pem.clone(),
                    self.server_names.clone(),
                    self.data_dir.clone(),
                ),
            },
            events: state::Events {
                gate: events::gate(&events_view, directory, self.unwired_event_port.as_deref()),
                keys: events::EventKeys::load(self.data_dir.as_deref())?,
                bus: shared.fanout.clone(),
                view: events_view,
            },
            shared,
            clock,
        });

        let admin = match &self.admin_socket {
            Some(path) => Some((admin::bind(path)?, self.admin_uids.clone(), path.clone())),
            None => None,
        };
        // Every router is one plane of the route table (the admin socket builds its own).
        let routes = crate::http::Table::build(self.insecure_serve_entry_bundles);
        let api_router = routes.router(crate::http::Plane::Api, &state);
        let node_router = routes.router(crate::http::Plane::Node, &state);

        if self.data_dir.is_none() {
            // Amnesia writes no ca.pem; the (public) CA certificate is logged once instead
            // so that clients can still verify the server. Logged before "listening",
            // which clients and tests wait for.
            tracing::info!(
                ca_pem = keys.ca_cert_pem.as_str(),
                "amnesia mode: nothing is written to disk"
            );
        }
        tracing::info!(
            addr = %listen,
            instance_id = state.runtime.instance_id.as_str(),
            created,
            data_dir = self.data_dir.as_ref().map(|d| d.display().to_string()),
            admin_socket = self.admin_socket.as_ref().map(|d| d.display().to_string()),
            signing_kid = keys.signing.kid(),
            issuer = state.auth.issuer.as_str(),
            kek_kid = state.secrets.kek.kid(),
            "listening"
        );
        Ok(App {
            api: Listener {
                tcp: api_tcp,
                tls: tls_rx,
                router: api_router,
            },
            node: Listener {
                tcp: node_tcp,
                tls: node_tls_rx,
                router: node_router,
            },
            admin,
            hardening: bulwark_http::Hardening::new(self.limits.clone()),
            metrics,
            readiness_interval: self.readiness_interval,
            limits: self.limits,
            state,
            _dir_lock: lock,
        })
    }
}

impl App {
    /// The bound API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.state.runtime.listen
    }

    /// Serves every listener until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let App {
            state,
            api,
            node,
            admin,
            hardening,
            metrics,
            readiness_interval,
            limits,
            _dir_lock,
        } = self;
        let admin_path = admin.as_ref().map(|(_, _, p)| p.clone());
        if let Some((listener, uids, _)) = admin {
            admin::spawn(listener, uids, state.clone());
        }
        spawn_housekeeping(hardening.clone(), metrics);
        ops::keys::spawn_pruner(state.clone());
        readiness::spawn_probes(
            state.runtime.readiness.clone(),
            state.runtime.data_dir.clone(),
            state.journal.ledger.clone(),
            readiness_interval,
        );
        state.runtime.readiness.mark_started();

        let revalidate = bulwark_http::listener::Revalidate {
            check: state.pki.peer_judge.clone(),
            epoch: state.pki.peer_epoch.subscribe(),
        };
        // The node API: its own listener, client certificates required, the same hardening.
        let node_app = bulwark_http::harden(
            bulwark_http::route_label(node.router),
            bulwark_http::Hardening::new(limits.clone()),
        );
        let node_addr = node.tcp.local_addr()?;
        let node_limits = limits.clone();
        let node_revalidate = revalidate.clone();
        let (node_stop_tx, node_stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            bulwark_http::listener::serve_tls(
                node.tcp,
                node.tls,
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

        let app = bulwark_http::harden(bulwark_http::route_label(api.router), hardening);
        bulwark_http::listener::serve_tls(
            api.tcp,
            api.tls,
            app,
            &limits,
            Some(revalidate),
            shutdown,
        )
        .await;
        let _ = node_stop_tx.send(());

        if let Some(path) = admin_path {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// `per_second` with `burst` (`burst` 0: the rate); `None` when `per_second` is 0.
fn quota(per_second: u32, burst: u32) -> Option<bulwark_shared::Quota> {
    let rate = std::num::NonZeroU32::new(per_second)?;
    Some(bulwark_shared::Quota::per_second(
        rate,
        std::num::NonZeroU32::new(burst).unwrap_or(rate),
    ))
}

fn spawn_housekeeping(h: Arc<bulwark_http::Hardening>, metrics: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            h.forget_idle_clients();
            metrics.run_upkeep();
        }
    });
}
