//! Configuration: defaults < TOML file < `BULWARK_*` environment variables < flags.
//!
//! One struct, [`ServeArgs`], is both the clap definition (flags and environment) and the
//! serde definition (the TOML file), so the three sources cannot drift apart. Unknown keys in
//! the file are an error: a typo in a security setting must not silently fall back to a
//! default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bulwark_http::Limits;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Options of `bulwark serve`. Every option may also be set in the TOML file (same name,
/// snake_case) or as `BULWARK_<NAME>`; flags win over the environment, which wins over the file.
#[derive(clap::Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML configuration file; its keys are the option names below in snake_case.
    #[arg(long, env = "BULWARK_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Data directory, created 0700 on first start [default: ./bulwark-data].
    #[arg(long, env = "BULWARK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address of the HTTPS API listener [default: 127.0.0.1:8443]; port 0 picks a free port.
    #[arg(long, env = "BULWARK_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Keep everything in memory and write nothing to disk (keys and data are lost at exit).
    #[arg(long, env = "BULWARK_AMNESIA", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub amnesia: Option<bool>,

    /// Admin unix socket [default: <data-dir>/admin.sock; none with --amnesia unless set].
    #[arg(long, env = "BULWARK_ADMIN_SOCKET", value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,

    /// Peer uids allowed on the admin socket, comma-separated [default: the server's own uid].
    #[arg(
        long,
        env = "BULWARK_ADMIN_UIDS",
        value_delimiter = ',',
        value_name = "UIDS"
    )]
    pub admin_uids: Option<Vec<u32>>,

    /// Names in the server certificate, comma-separated [default: localhost,127.0.0.1].
    #[arg(
        long,
        env = "BULWARK_SERVER_NAMES",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub server_names: Option<Vec<String>>,

    /// Log level: error, warn, info, debug or trace [default: info].
    #[arg(long, env = "BULWARK_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Whole-request timeout in ms; 503 `timeout` after it [default: 5000].
    #[arg(long, env = "BULWARK_REQUEST_TIMEOUT_MS", value_name = "MS")]
    pub request_timeout_ms: Option<u64>,

    /// Time allowed to send request headers, in ms; the connection is closed after it [default: 5000].
    #[arg(long, env = "BULWARK_HEADER_READ_TIMEOUT_MS", value_name = "MS")]
    pub header_read_timeout_ms: Option<u64>,

    /// Time allowed for the TLS handshake, in ms [default: 5000].
    #[arg(long, env = "BULWARK_HANDSHAKE_TIMEOUT_MS", value_name = "MS")]
    pub handshake_timeout_ms: Option<u64>,

    /// Requests in flight at once; 503 `too_busy` above it [default: 512].
    #[arg(long, env = "BULWARK_MAX_INFLIGHT", value_name = "N")]
    pub max_inflight: Option<usize>,

    /// Open connections at once; more are closed at accept [default: 4096].
    #[arg(long, env = "BULWARK_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Requests per second per client (GCRA); 429 `rate_limited` above it; 0 disables [default: 500].
    #[arg(long, env = "BULWARK_RATE_LIMIT_RPS", value_name = "N")]
    pub rate_limit_rps: Option<u32>,

    /// Burst allowed above the rate [default: same as --rate-limit-rps].
    #[arg(long, env = "BULWARK_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<u32>,

    /// Request body cap in bytes; 413 `body_too_large` above it [default: 1048576].
    #[arg(long, env = "BULWARK_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Decoded body cap in bytes; 413 `decompression_cap` above it [default: 8388608].
    #[arg(long, env = "BULWARK_MAX_DECODED_BYTES", value_name = "BYTES")]
    pub max_decoded_bytes: Option<usize>,

    /// Largest decoded/encoded ratio of a compressed body [default: 10].
    #[arg(long, env = "BULWARK_MAX_DECOMPRESSION_RATIO", value_name = "N")]
    pub max_decompression_ratio: Option<usize>,

    /// A journal checkpoint is signed after a commit at most this often, in ms; 0 signs after every commit [default: 1000].
    #[arg(long, env = "BULWARK_CHECKPOINT_INTERVAL_MS", value_name = "MS")]
    pub checkpoint_interval_ms: Option<u64>,

    /// Serve journal entry bundles on the public API without authentication. A test hook:
    /// refused unless the binary was built with the `test-hooks` feature (entries reveal
    /// tenant metadata).
    #[arg(long, env = "BULWARK_INSECURE_SERVE_ENTRY_BUNDLES", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", hide = true)]
    pub insecure_serve_entry_bundles: Option<bool>,

    /// Interval of the readiness dependency checks, in ms [default: 1000].
    #[arg(long, env = "BULWARK_READINESS_INTERVAL_MS", value_name = "MS")]
    pub readiness_interval_ms: Option<u64>,

    /// The URL clients use to reach the API: the token issuer and audience [default:
    /// https://<first server name>:<port>].
    #[arg(long, env = "BULWARK_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Lifetime of access tokens in seconds, at most 900 [default: 600].
    #[arg(long, env = "BULWARK_TOKEN_TTL_SECS", value_name = "SECS")]
    pub token_ttl_secs: Option<u64>,

    /// Secret reads per second per org (GCRA); 429 `per_org_rate_limited` above it; 0 disables [default: 2000].
    #[arg(long, env = "BULWARK_ORG_SECRET_READS_RPS", value_name = "N")]
    pub org_secret_reads_rps: Option<u32>,

    /// Burst of secret reads per org [default: same as --org-secret-reads-rps].
    #[arg(long, env = "BULWARK_ORG_SECRET_READS_BURST", value_name = "N")]
    pub org_secret_reads_burst: Option<u32>,

    /// Secret reads per second per node (GCRA); 429 `per_node_rate_limited` above it; 0 disables [default: 50].
    #[arg(long, env = "BULWARK_NODE_SECRET_READS_RPS", value_name = "N")]
    pub node_secret_reads_rps: Option<u32>,

    /// Address of the mTLS node API listener [default: 127.0.0.1:8444]; port 0 picks a free port.
    #[arg(long, env = "BULWARK_NODE_LISTEN", value_name = "ADDR")]
    pub node_listen: Option<SocketAddr>,

    /// SPIFFE trust domain of node and service certificates [default: bulwark.local].
    #[arg(long, env = "BULWARK_TRUST_DOMAIN", value_name = "DOMAIN")]
    pub trust_domain: Option<String>,

    /// Event streams one node may hold open at once [default: 8].
    #[arg(long, env = "BULWARK_MAX_EVENT_STREAMS_PER_NODE", value_name = "N")]
    pub max_event_streams_per_node: Option<usize>,

    /// Lifetime of node certificates in seconds, 60 to 30 days [default: 86400].
    #[arg(long, env = "BULWARK_NODE_CERT_TTL_SECS", value_name = "SECS")]
    pub node_cert_ttl_secs: Option<u64>,

    /// Require a server-issued DPoP nonce at the token endpoint (RFC 9449 §8) [default: true].
    #[arg(long, env = "BULWARK_DPOP_NONCE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub dpop_nonce: Option<bool>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `None` in amnesia mode.
    pub data_dir: Option<PathBuf>,
    /// API listener.
    pub listen: SocketAddr,
    /// Admin socket, if any.
    pub admin_socket: Option<PathBuf>,
    /// Admin socket allow-list.
    pub admin_uids: Vec<u32>,
    /// Names in the server certificate.
    pub server_names: Vec<String>,
    /// Log level.
    pub log_level: String,
    /// Hardening limits.
    pub limits: Limits,
    /// Readiness check interval.
    pub readiness_interval: Duration,
    /// Checkpoint interval.
    pub checkpoint_interval: Duration,
    /// Entry bundles on the public API (tests only).
    pub insecure_serve_entry_bundles: bool,
    /// The public URL (issuer, audience); `None`: derived from the bound address.
    pub public_url: Option<String>,
    /// Access token lifetime, seconds.
    pub token_ttl_secs: i64,
    /// Whether the token endpoint requires a DPoP nonce.
    pub dpop_nonce: bool,
    /// Secret reads per org: (per second, burst); 0 disables.
    pub org_secret_reads: (u32, u32),
    /// Secret reads per node per second; 0 disables.
    pub node_secret_reads: u32,
    /// SPIFFE trust domain.
    pub trust_domain: String,
    /// The node API listener.
    pub node_listen: SocketAddr,
    /// Lifetime of node certificates.
    pub node_cert_ttl: Duration,
    /// Event streams per node.
    pub max_event_streams_per_node: usize,
    /// The KEK given in `BULWARK_KEK`, if any.
    pub kek: KekFromEnv,
    /// Test hook: the event gate port left unwired (`BULWARK_TEST_UNWIRE_EVENT_PORT`,
    /// read only in builds with the `test-hooks` feature).
    pub unwired_event_port: Option<String>,
}

/// The KEK from `BULWARK_KEK` (standard base64 of 32 bytes). It is read from the
/// environment only, never from a flag (argv is visible to every local user), and never
/// printed.
#[derive(Clone, Default)]
pub struct KekFromEnv(Option<Zeroizing<String>>);

impl KekFromEnv {
    fn read() -> Self {
        Self(
            std::env::var("BULWARK_KEK")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(Zeroizing::new),
        )
    }

    /// The KEK, if one was given; an error if it does not decode.
    pub fn take_kek(&self) -> anyhow::Result<Option<bulwark_crypto::Kek>> {
        self.0
            .as_ref()
            .map(|v| {
                bulwark_crypto::Kek::decode(v)
                    .context("BULWARK_KEK is not a valid KEK (standard base64 of 32 bytes)")
            })
            .transpose()
    }
}

impl std::fmt::Debug for KekFromEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "KekFromEnv(<set, redacted>)"
        } else {
            "KekFromEnv(<unset>)"
        })
    }
}

/// The gate port a test asks to leave unwired, in builds with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
fn unwired_event_port() -> Option<String> {
    std::env::var("BULWARK_TEST_UNWIRE_EVENT_PORT").ok()
}

/// Production builds have no test hooks.
#[cfg(not(feature = "test-hooks"))]
fn unwired_event_port() -> Option<String> {
    None
}

macro_rules! overlay {
    ($hi:ident, $lo:ident; $($f:ident),* $(,)?) => {
        ServeArgs { config: $hi.config, $($f: $hi.$f.or($lo.$f)),* }
    };
}

impl ServeArgs {
    /// Fields of `self` win; unset ones are taken from `lower`.
    pub fn overlay(self, lower: ServeArgs) -> ServeArgs {
        overlay!(self, lower;
            data_dir, listen, amnesia, admin_socket, admin_uids, server_names, log_level,
            request_timeout_ms, header_read_timeout_ms, handshake_timeout_ms, max_inflight,
            max_connections, rate_limit_rps, rate_limit_burst, max_body_bytes,
            max_decoded_bytes, max_decompression_ratio, checkpoint_interval_ms,
            insecure_serve_entry_bundles, readiness_interval_ms, public_url, token_ttl_secs,
            dpop_nonce, org_secret_reads_rps, org_secret_reads_burst, node_secret_reads_rps, trust_domain, node_listen,
            node_cert_ttl_secs, max_event_streams_per_node)
    }

    /// Reads the TOML file named by `--config`, if any, and overlays flags and environment
    /// (already merged by clap) on top of it.
    pub fn with_file(self) -> anyhow::Result<ServeArgs> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let file = read_file(&path)?;
        Ok(self.overlay(file))
    }

    /// Applies defaults and checks the values.
    pub fn resolve(self, own_uid: u32) -> anyhow::Result<Config> {
        let d = Limits::default();
        let amnesia = self.amnesia.unwrap_or(false);
        let data_dir = (!amnesia).then(|| {
            self.data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./bulwark-data"))
        });
        let admin_socket = match (&self.admin_socket, &data_dir) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(dir)) => Some(dir.join("admin.sock")),
            (None, None) => None,
        };
        let ms = Duration::from_millis;
        let rate = self.rate_limit_rps.unwrap_or(d.rate_per_second);
        let limits = Limits {
            request_timeout: self.request_timeout_ms.map_or(d.request_timeout, ms),
            header_read_timeout: self
                .header_read_timeout_ms
                .map_or(d.header_read_timeout, ms),
            handshake_timeout: self.handshake_timeout_ms.map_or(d.handshake_timeout, ms),
            max_inflight: self.max_inflight.unwrap_or(d.max_inflight),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            rate_per_second: rate,
            rate_burst: self.rate_limit_burst.unwrap_or(rate),
            max_body_bytes: self.max_body_bytes.unwrap_or(d.max_body_bytes),
            max_decoded_bytes: self.max_decoded_bytes.unwrap_or(d.max_decoded_bytes),
            max_decompression_ratio: self
                .max_decompression_ratio
                .unwrap_or(d.max_decompression_ratio),
        };
        anyhow::ensure!(limits.max_inflight > 0, "max_inflight must be at least 1");
        anyhow::ensure!(
            limits.max_connections > 0,
            "max_connections must be at least 1"
        );
        anyhow::ensure!(
            limits.max_body_bytes > 0,
            "max_body_bytes must be at least 1"
        );
        anyhow::ensure!(
            limits.max_decompression_ratio > 0,
            "max_decompression_ratio must be at least 1"
        );
        for (name, t) in [
            ("request_timeout_ms", limits.request_timeout),
            ("header_read_timeout_ms", limits.header_read_timeout),
            ("handshake_timeout_ms", limits.handshake_timeout),
        ] {
            anyhow::ensure!(!t.is_zero(), "{name} must be at least 1");
        }
        let server_names = self
            .server_names
            .unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into()]);
        anyhow::ensure!(!server_names.is_empty(), "server_names must not be empty");
        Ok(Config {
            data_dir,
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            admin_socket,
            admin_uids: self.admin_uids.unwrap_or_else(|| vec![own_uid]),
            server_names,
            log_level: self.log_level.unwrap_or_else(|| "info".into()),
            limits,
            readiness_interval: self
                .readiness_interval_ms
                .map_or(Duration::from_secs(1), ms),
            checkpoint_interval: self
                .checkpoint_interval_ms
                .map_or(Duration::from_secs(1), ms),
            insecure_serve_entry_bundles: {
                let on = self.insecure_serve_entry_bundles.unwrap_or(false);
                anyhow::ensure!(
                    !on || cfg!(feature = "test-hooks"),
                    "insecure_serve_entry_bundles is a test hook: this binary was built without the `test-hooks` feature"
                );
                on
            },
            unwired_event_port: unwired_event_port(),
            kek: KekFromEnv::read(),
            public_url: match self.public_url {
                Some(u) => {
                    let u = u.trim_end_matches('/').to_owned();
                    anyhow::ensure!(
                        u.starts_with("https://") && !u.contains(['?', '#', ' ']),
                        "public_url must be an https:// URL without query or fragment"
                    );
                    Some(u)
                }
                None => None,
            },
            token_ttl_secs: {
                let t = self.token_ttl_secs.unwrap_or(600);
                anyhow::ensure!(
                    (30..=900).contains(&t),
                    "token_ttl_secs must be between 30 and 900"
                );
                i64::try_from(t)?
            },
            dpop_nonce: self.dpop_nonce.unwrap_or(true),
            org_secret_reads: {
                let rps = self.org_secret_reads_rps.unwrap_or(2000);
                (rps, self.org_secret_reads_burst.unwrap_or(rps))
            },
            node_secret_reads: self.node_secret_reads_rps.unwrap_or(50),
            max_event_streams_per_node: {
                let n = self.max_event_streams_per_node.unwrap_or(8);
                anyhow::ensure!(
                    (1..=4096).contains(&n),
                    "max_event_streams_per_node must be between 1 and 4096"
                );
                n
            },
            node_cert_ttl: {
                let t = self.node_cert_ttl_secs.unwrap_or(86_400);
                anyhow::ensure!(
                    (60..=30 * 86_400).contains(&t),
                    "node_cert_ttl_secs must be between 60 and 2592000 (30 days)"
                );
                Duration::from_secs(t)
            },
            node_listen: self
                .node_listen
                .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8444))),
            trust_domain: {
                let td = self.trust_domain.unwrap_or_else(|| "bulwark.local".into());
                anyhow::ensure!(
                    !td.is_empty()
                        && td.bytes().all(|b| b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || b == b'.'
                            || b == b'-'),
                    "trust_domain is lower-case letters, digits, '.' and '-'"
                );
                td
            },
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file `{}`", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("invalid configuration file `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn defaults_are_the_design_contract() {
        let c = ServeArgs::default().resolve(1000).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(c.data_dir, Some(PathBuf::from("./bulwark-data")));
        assert_eq!(
            c.admin_socket,
            Some(PathBuf::from("./bulwark-data/admin.sock"))
        );
        assert_eq!(c.admin_uids, vec![1000]);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.limits.max_body_bytes, 1 << 20);
        assert_eq!(c.limits.rate_per_second, 500);
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.toml");
        std::fs::write(
            &file,
            "max_inflight = 7\nrate_limit_rps = 9\nlog_level = \"debug\"\nmax_body_bytes = 11\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--max-inflight",
            "3",
        ])
        .unwrap();
        let mut args = cli.serve;
        // What clap would have read from BULWARK_RATE_LIMIT_RPS.
        args.rate_limit_rps = args.rate_limit_rps.or(Some(5));
        let c = args.with_file().unwrap().resolve(0).unwrap();
        assert_eq!(c.limits.max_inflight, 3, "flag wins over file");
        assert_eq!(c.limits.rate_per_second, 5, "environment wins over file");
        assert_eq!(c.log_level, "debug", "file wins over default");
        assert_eq!(c.limits.max_body_bytes, 11);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.toml");
        std::fs::write(&file, "max_inflite = 7\n").unwrap();
        let args = ServeArgs {
            config: Some(file),
            ..Default::default()
        };
        let err = args.with_file().unwrap_err();
        assert!(format!("{err:#}").contains("max_inflite"), "{err:#}");
    }

    #[test]
    fn amnesia_has_no_data_dir_and_no_default_socket() {
        let args = ServeArgs {
            amnesia: Some(true),
            ..Default::default()
        };
        let c = args.resolve(0).unwrap();
        assert!(c.data_dir.is_none());
        assert!(c.admin_socket.is_none());
    }

    #[test]
    fn zero_limits_are_refused() {
        let args = ServeArgs {
            max_inflight: Some(0),
            ..Default::default()
        };
        assert!(args.resolve(0).is_err());
    }
}
