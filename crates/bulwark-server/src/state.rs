//! What the running server shares between its routers, grouped by part: each group is
//! built in one place by [`crate::Config::build`] and owned by one concern.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::readiness::Readiness;
use crate::{events, keys, pki, tls};

/// State shared by the API, node API, OAuth, audit and admin routers.
pub struct AppState {
    /// The process: readiness, metrics, identity, data directory.
    pub runtime: Runtime,
    /// The journal, its sequencer and the instance key metadata folded from it.
    pub journal: Journal,
    /// Tenants, principals, relations, revocations, nodes, folded from the journal.
    pub directory: Arc<bulwark_directory::DirectoryView>,
    /// The token service.
    pub auth: crate::authn::Auth,
    /// Secret custody: the KEK, the version view, ciphertexts, read rates.
    pub secrets: Secrets,
    /// The CAs, certificates, revocation and the listeners' TLS.
    pub pki: Pki,
    /// The signed event bus.
    pub events: Events,
    /// State that replicas must share (replay caches, rate limits, single use, fan-out,
    /// leases), behind its ports; selected in `wiring::shared`.
    pub shared: bulwark_shared::Shared,
    /// The one source of time.
    pub clock: Arc<dyn bulwark_core::Clock>,
}

/// The process itself.
pub struct Runtime {
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
}

/// The journal and what only it decides.
pub struct Journal {
    /// The journal.
    pub ledger: bulwark_ledger::Ledger,
    /// Held while a command is checked against the projections and appended, so that
    /// uniqueness rules cannot race.
    pub sequencer: tokio::sync::Mutex<()>,
    /// Instance key metadata, folded from the journal.
    pub key_view: Arc<bulwark_directory::keys::KeyView>,
}

/// Secret custody.
pub struct Secrets {
    /// The key-encryption key.
    pub kek: bulwark_crypto::Kek,
    /// Secret version metadata, folded from the journal.
    pub view: Arc<bulwark_secrets::view::SecretsView>,
    /// Where secret ciphertexts are stored.
    pub blobs: Arc<dyn bulwark_store::SecretBlobs>,
    /// The stored ciphertexts, in memory.
    pub cache: crate::ops::secrets::SecretCache,
    /// Secret reads per org (`None`: unlimited), counted by the shared rate port.
    pub org_reads: Option<bulwark_shared::Quota>,
    /// Secret reads per node (`None`: unlimited), counted by the shared rate port.
    pub node_reads: Option<bulwark_shared::Quota>,
}

/// Certificates and the listeners' TLS.
pub struct Pki {
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
    /// Judges client certificates (revocation, quarantine): at the handshake, on open
    /// connections and per node request.
    pub peer_judge: Arc<pki::PeerJudge>,
    /// The last CRL signed.
    pub crl: pki::CrlCache,
    /// The node API's URL, as agents should reach it.
    pub node_api_url: String,
    /// Lifetime of node certificates.
    pub node_cert_ttl: Duration,
    /// The listeners' TLS configurations (server certificate rotation).
    pub tls: tls::ServerTls,
}

/// The signed event bus.
pub struct Events {
    /// Org event key rings and per-node envelope backlogs, folded from the journal.
    pub view: Arc<events::EventsView>,
    /// Each org's event signing keys.
    pub keys: events::EventKeys,
    /// The fan-out to event subscribers.
    pub bus: Arc<dyn events::Fanout>,
    /// The gate every envelope passes.
    pub gate: bulwark_events::Gate,
}
