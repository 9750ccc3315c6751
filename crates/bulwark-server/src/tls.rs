//! Server certificate rotation without a restart: a new certificate and key are checked
//! (the key matches, the chain verifies against the instance root for every configured
//! server name, it is valid now) and only then published to both listeners' `watch`
//! channels at once, after the caller journaled it; then persisted. New connections get the new certificate;
//! open ones keep theirs. A certificate that fails any check is never published.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::watch;

use crate::keys::{SERVER_CERT_VALIDITY, server_config};
use crate::pki::PeerJudge;
use bulwark_fs::layout::{SERVER_CERT, SERVER_KEY};
use bulwark_fs::write_atomic;

/// The listeners' TLS configurations and what is needed to replace them.
pub struct ServerTls {
    api: watch::Sender<Arc<rustls::ServerConfig>>,
    node: watch::Sender<Arc<rustls::ServerConfig>>,
    judge: Arc<PeerJudge>,
    ca_cert_pem: String,
    names: Vec<String>,
    dir: Option<PathBuf>,
    lock: tokio::sync::Mutex<()>,
}

/// A certificate and key that passed every check, ready to publish. No `Debug`.
pub struct Checked {
    /// The new certificate's serial.
    pub serial: String,
    /// Its end (Unix seconds).
    pub not_after: i64,
    cert_pem: String,
    key_pem: zeroize::Zeroizing<String>,
    api: Arc<rustls::ServerConfig>,
    node: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// Wraps the two senders.
    pub fn new(
        api: watch::Sender<Arc<rustls::ServerConfig>>,
        node: watch::Sender<Arc<rustls::ServerConfig>>,
        judge: Arc<PeerJudge>,
        ca_cert_pem: String,
        names: Vec<String>,
        dir: Option<PathBuf>,
    ) -> Self {
        Self {
            api,
            node,
            judge,
            ca_cert_pem,
            names,
            dir,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Checks `cert_pem` (chain) and `key_pem`: nothing is published yet.
    pub fn check(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<Checked> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("the certificate is not PEM")?;
        let (leaf, intermediates) = chain.split_first().context("no certificate given")?;
        self.verify_chain(leaf, intermediates)?;
        // Both configurations are built (which checks that the key matches) before either
        // is published.
        let api = server_config(cert_pem, key_pem, &self.ca_cert_pem, false, &self.judge)?;
        let node = server_config(cert_pem, key_pem, &self.ca_cert_pem, true, &self.judge)?;
        let s = bulwark_pki::summarize(cert_pem)?;
        Ok(Checked {
            serial: s.serial,
            not_after: s.not_after.unix_timestamp(),
            cert_pem: cert_pem.to_owned(),
            key_pem: zeroize::Zeroizing::new(key_pem.to_owned()),
            api,
            node,
        })
    }

    /// Persists a checked certificate and publishes it to both listeners.
    pub async fn publish(&self, checked: Checked) -> anyhow::Result<()> {
        let _one_at_a_time = self.lock.lock().await;
        if let Some(dir) = &self.dir {
            write_atomic(&dir.join(SERVER_KEY), checked.key_pem.as_bytes(), 0o600)?;
            write_atomic(&dir.join(SERVER_CERT), checked.cert_pem.as_bytes(), 0o644)?;
        }
        self.api.send_replace(checked.api);
        self.node.send_replace(checked.node);
        Ok(())
    }

    /// A fresh server certificate from the intermediate (the root may be offline), for
    /// the configured names, checked; the chain includes the intermediate.
    pub fn reissue(&self, intermediate: &crate::keys::Intermediate) -> anyhow::Result<Checked> {
        let issued = bulwark_pki::issue_server_cert(
            &intermediate.cert_pem,
            &intermediate.key_pem,
            &self.names,
            SERVER_CERT_VALIDITY,
            time::OffsetDateTime::now_utc(),
        )?;
        let chain = format!("{}{}", issued.cert_pem, intermediate.cert_pem);
        self.check(&chain, &issued.key_pem)
    }

    /// The chain verifies against the instance root, now, as a server certificate for
    /// every configured name.
    fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> anyhow::Result<()> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_cert_pem.as_bytes()) {
            roots.add(ca?)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?;
        if self.names.is_empty() {
            bail!("no server names configured");
        }
        for name in &self.names {
            let server_name = ServerName::try_from(name.as_str())
                .with_context(|| format!("`{name}` is not a server name"))?
                .to_owned();
            verifier
                .verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now())
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the certificate does not verify against the instance root for `{name}`: {e}"
                    )
                })?;
        }
        Ok(())
    }
}
