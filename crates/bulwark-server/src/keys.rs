//! The instance's key material: identity, root CA, server certificate, KEK, signing key.
//!
//! First start (no `instance-id` in the data directory) creates everything; every later
//! start loads it and refuses to run if a key file is missing or readable by others — a
//! silently regenerated CA or KEK would orphan every client and every ciphertext. Only the
//! server certificate is re-issued on its own, when it is due (a third of its life left) or
//! does not cover the configured names. In amnesia mode everything lives in memory.
//!
//! The root key can go offline (`bulwark admin export-root-key`, in `bulwark-offline`): it
//! is written to a file of the operator's choosing and removed from the data directory,
//! leaving a marker (`ca.key.offline`) so that its absence is a decision, not a loss. The
//! server keeps working with the intermediate, which then also issues the server
//! certificate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bulwark_crypto::{Kek, SigningKey};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use bulwark_fs::layout::{
    CA_CERT, CA_KEY, INSTANCE_ID, INTERMEDIATE_CERT, INTERMEDIATE_KEY, JOURNAL_DB, KEK_FILE,
    LEDGER_KEY, ROOT_OFFLINE, SERVER_CERT, SERVER_KEY, SIGNING_KEY,
};
use bulwark_fs::{read_private, write_atomic};

/// Validity of the server's TLS certificate.
pub const SERVER_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// The intermediate CA that signs node and service certificates. No `Debug`.
pub struct Intermediate {
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// Its key, PEM.
    pub key_pem: Zeroizing<String>,
}

/// Everything the instance holds. No `Debug`, no `Clone`.
pub struct InstanceKeys {
    /// Public identifier of this instance (the journal's origin later).
    pub instance_id: String,
    /// Root CA certificate, PEM (public; written as `ca.pem`).
    pub ca_cert_pem: String,
    /// The root key; `None` once it was taken offline.
    ca_key_pem: Option<Zeroizing<String>>,
    /// Server certificate, PEM.
    pub server_cert_pem: String,
    server_key_pem: Zeroizing<String>,
    /// The key-encryption key.
    pub kek: Kek,
    /// The instance signing key.
    pub signing: SigningKey,
    /// The journal's checkpoint key (its own key, kept like the others).
    ledger: SigningKey,
}

impl InstanceKeys {
    /// Fresh material held only in memory; `kek` from the environment if given.
    pub fn ephemeral(names: &[String], kek: Option<Kek>) -> anyhow::Result<Self> {
        let now = OffsetDateTime::now_utc();
        let instance_id = new_instance_id()?;
        let ca = bulwark_pki::create_root_ca(&instance_id, now)?;
        let server = bulwark_pki::issue_server_cert(
            &ca.cert_pem,
            &ca.key_pem,
            names,
            SERVER_CERT_VALIDITY,
            now,
        )?;
        Ok(Self {
            instance_id,
            ca_cert_pem: ca.cert_pem,
            ca_key_pem: Some(ca.key_pem),
            server_cert_pem: server.cert_pem,
            server_key_pem: server.key_pem,
            kek: match kek {
                Some(k) => k,
                None => Kek::generate()?,
            },
            signing: SigningKey::generate()?,
            ledger: SigningKey::generate()?,
        })
    }

    /// Loads the material from `dir`, creating it on first start. Returns whether it was
    /// created.
    /// `env_kek` is the KEK from `BULWARK_KEK`: used instead of `kek.key` (which is then
    /// never written); if both exist they must be the same key.
    pub fn load_or_create(
        dir: &Path,
        names: &[String],
        env_kek: Option<Kek>,
    ) -> anyhow::Result<(Self, bool)> {
        let id_path = dir.join(INSTANCE_ID);
        if !id_path.exists() {
            let present: Vec<&str> = [
                CA_CERT,
                CA_KEY,
                KEK_FILE,
                SIGNING_KEY,
                LEDGER_KEY,
                JOURNAL_DB,
            ]
            .into_iter()
            .filter(|f| dir.join(f).exists())
            .collect();
            if !present.is_empty() {
                bail!(
                    "`{}` has key files ({}) but no `{INSTANCE_ID}`: refusing to create new keys over them",
                    dir.display(),
                    present.join(", ")
                );
            }
            let from_env = env_kek.is_some();
            let keys = Self::ephemeral(names, env_kek)?;
            keys.persist(dir, !from_env)?;
            return Ok((keys, true));
        }
        let instance_id = std::fs::read_to_string(&id_path)
            .with_context(|| format!("cannot read `{}`", id_path.display()))?
            .trim()
            .to_owned();
        let ca_cert_pem = std::fs::read_to_string(dir.join(CA_CERT))
            .with_context(|| format!("missing `{CA_CERT}` in `{}`", dir.display()))?;
        let ca_key_pem = if dir.join(CA_KEY).exists() || !dir.join(ROOT_OFFLINE).exists() {
            Some(read_private(&dir.join(CA_KEY))?)
        } else {
            None
        };
        let kek = match env_kek {
            Some(k) if dir.join(KEK_FILE).exists() => {
                let file = Kek::decode(&read_private(&dir.join(KEK_FILE))?)
                    .with_context(|| format!("`{KEK_FILE}` is not a valid KEK"))?;
                if file.kid() != k.kid() {
                    bail!(
                        "BULWARK_KEK (kid {}) and `{KEK_FILE}` (kid {}) are different keys: refusing to guess",
                        k.kid(),
                        file.kid()
                    );
                }
                k
            }
            Some(k) => k,
            None => Kek::decode(&read_private(&dir.join(KEK_FILE)).with_context(|| {
                format!("no `{KEK_FILE}` and no BULWARK_KEK: the KEK is missing, refusing to make a new one")
            })?)
            .with_context(|| format!("`{KEK_FILE}` is not a valid KEK"))?,
        };
        let signing = SigningKey::decode(&read_private(&dir.join(SIGNING_KEY))?)
            .with_context(|| format!("`{SIGNING_KEY}` is not a valid signing key"))?;
        let ledger = if !dir.join(LEDGER_KEY).exists() && !dir.join(JOURNAL_DB).exists() {
            // A data directory from before the journal existed: nothing was ever signed
            // with a ledger key, so creating one loses nothing.
            let k = SigningKey::generate()?;
            write_atomic(&dir.join(LEDGER_KEY), k.encode().as_bytes(), 0o600)?;
            k
        } else {
            SigningKey::decode(&read_private(&dir.join(LEDGER_KEY))?)
                .with_context(|| format!("`{LEDGER_KEY}` is not a valid signing key"))?
        };

        let now = OffsetDateTime::now_utc();
        let stored = std::fs::read_to_string(dir.join(SERVER_CERT))
            .ok()
            .zip(read_private(&dir.join(SERVER_KEY)).ok());
        // Reused only if it is fit and its key is its own (a crash between the two writes
        // of a rotation leaves a pair that does not match: re-issued then).
        let reusable = stored.as_ref().is_some_and(|(cert, key)| {
            bulwark_pki::summarize(cert)
                .is_ok_and(|s| s.reusable_for(names, SERVER_CERT_VALIDITY, now))
                && pair_matches(cert, key)
        });
        let (server_cert_pem, server_key_pem) = match stored {
            Some((cert, key)) if reusable => (cert, key),
            _ => {
                // From the root while it is here; from the intermediate (chain included)
                // once the root is offline.
                let (issued, chain_tail) = match &ca_key_pem {
                    Some(root_key) => (
                        bulwark_pki::issue_server_cert(
                            &ca_cert_pem,
                            root_key,
                            names,
                            SERVER_CERT_VALIDITY,
                            now,
                        )?,
                        String::new(),
                    ),
                    None => {
                        let inter = load_intermediate(dir)?.context(
                            "the root key is offline and there is no intermediate to issue the server certificate",
                        )?;
                        (
                            bulwark_pki::issue_server_cert(
                                &inter.cert_pem,
                                &inter.key_pem,
                                names,
                                SERVER_CERT_VALIDITY,
                                now,
                            )?,
                            inter.cert_pem,
                        )
                    }
                };
                let chain = format!("{}{chain_tail}", issued.cert_pem);
                write_atomic(&dir.join(SERVER_KEY), issued.key_pem.as_bytes(), 0o600)?;
                write_atomic(&dir.join(SERVER_CERT), chain.as_bytes(), 0o644)?;
                tracing::info!("server certificate issued");
                (chain, issued.key_pem)
            }
        };
        Ok((
            Self {
                instance_id,
                ca_cert_pem,
                ca_key_pem,
                server_cert_pem,
                server_key_pem,
                kek,
                signing,
                ledger,
            },
            false,
        ))
    }

    fn persist(&self, dir: &Path, write_kek: bool) -> anyhow::Result<()> {
        // Keys first, the instance id last: a crash part-way leaves no `instance-id`, and
        // the next start refuses to overwrite the partial set instead of mixing two.
        if let Some(k) = &self.ca_key_pem {
            write_atomic(&dir.join(CA_KEY), k.as_bytes(), 0o600)?;
        }
        write_atomic(&dir.join(CA_CERT), self.ca_cert_pem.as_bytes(), 0o644)?;
        write_atomic(&dir.join(SERVER_KEY), self.server_key_pem.as_bytes(), 0o600)?;
        write_atomic(
            &dir.join(SERVER_CERT),
            self.server_cert_pem.as_bytes(),
            0o644,
        )?;
        if write_kek {
            write_atomic(&dir.join(KEK_FILE), self.kek.encode().as_bytes(), 0o600)?;
        }
        write_atomic(
            &dir.join(SIGNING_KEY),
            self.signing.encode().as_bytes(),
            0o600,
        )?;
        write_atomic(
            &dir.join(LEDGER_KEY),
            self.ledger.encode().as_bytes(),
            0o600,
        )?;
        write_atomic(
            &dir.join(INSTANCE_ID),
            format!("{}\n", self.instance_id).as_bytes(),
            0o644,
        )
    }

    /// A copy of the journal's checkpoint key for the appender.
    pub fn ledger_key(&self) -> anyhow::Result<SigningKey> {
        Ok(SigningKey::decode(&self.ledger.encode())?)
    }

    /// The intermediate CA: loaded from the data directory, or issued from the root when
    /// missing (first start, or a directory from before the intermediate existed).
    pub fn intermediate(&self, dir: Option<&Path>) -> anyhow::Result<Intermediate> {
        if let Some(d) = dir
            && let Some(found) = load_intermediate(d)?
        {
            return Ok(found);
        }
        let root_key = self
            .ca_key_pem
            .as_ref()
            .context("the intermediate is missing and the root key is offline: bring the root key back to issue one")?;
        let issued = bulwark_pki::ca::create_intermediate(
            &self.ca_cert_pem,
            root_key,
            &self.instance_id,
            bulwark_pki::ca::KeyAlg::P256,
            OffsetDateTime::now_utc(),
        )?;
        if let Some(d) = dir {
            write_atomic(&d.join(INTERMEDIATE_KEY), issued.key_pem.as_bytes(), 0o600)?;
            write_atomic(
                &d.join(INTERMEDIATE_CERT),
                issued.cert_pem.as_bytes(),
                0o644,
            )?;
        }
        Ok(Intermediate {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        })
    }

    /// The kid of the journal's checkpoint key.
    pub fn ledger_kid(&self) -> &str {
        self.ledger.kid()
    }

    /// A short fingerprint of the root CA certificate (SHA-256 of its PEM, 16 hex digits).
    pub fn ca_kid(&self) -> String {
        bulwark_crypto::sha256(self.ca_cert_pem.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The checkpoint origin, `bulwark/<instance id>`.
    pub fn origin(&self) -> String {
        format!("bulwark/{}", self.instance_id)
    }

    /// The rustls server configuration for the API listener (TLS 1.2 and 1.3, aws-lc-rs,
    /// ALPN h2 and http/1.1). Client certificates are optional and, when presented, must
    /// chain to the instance CA and pass `judge`: they bind mTLS tokens (RFC 8705), never
    /// authenticate alone.
    pub fn tls_config(
        &self,
        judge: &Arc<crate::pki::PeerJudge>,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        server_config(
            &self.server_cert_pem,
            &self.server_key_pem,
            &self.ca_cert_pem,
            false,
            judge,
        )
    }

    /// The node API's TLS configuration: a client certificate is **required**, must chain
    /// (through the intermediate the client presents) to the instance root and pass `judge`.
    pub fn node_tls_config(
        &self,
        judge: &Arc<crate::pki::PeerJudge>,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        server_config(
            &self.server_cert_pem,
            &self.server_key_pem,
            &self.ca_cert_pem,
            true,
            judge,
        )
    }
}

/// A server configuration: this certificate chain and key, client certificates verified
/// against `ca_cert_pem` and then judged (revocation, quarantine), required or optional.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    ca_cert_pem: &str,
    require_client: bool,
    judge: &Arc<crate::pki::PeerJudge>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("server certificate PEM")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("server key PEM")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_cert_pem.as_bytes()) {
        roots
            .add(ca.context("CA certificate PEM")?)
            .context("CA certificate")?;
    }
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    let builder = if require_client {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let webpki = builder.build().context("client certificate verifier")?;
    let client_verifier = Arc::new(crate::pki::RevocationAwareVerifier::new(
        webpki,
        judge.clone(),
    ));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(certs, key)
        .context("server certificate and key do not form a valid pair")?;
    cfg.alpn_protocols = bulwark_http::listener::ALPN
        .iter()
        .map(|p| p.to_vec())
        .collect();
    if require_client {
        // No resumption where a certificate is the identity: every connection is a full
        // handshake through the revocation-aware verifier.
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
    }
    Ok(Arc::new(cfg))
}

/// Whether `key_pem` is the key of the first certificate in `cert_pem`.
fn pair_matches(cert_pem: &str, key_pem: &str) -> bool {
    let Ok(certs) =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    let Ok(key) = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) else {
        return false;
    };
    let Ok(signer) = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key) else {
        return false;
    };
    rustls::sign::CertifiedKey::new(certs, signer)
        .keys_match()
        .is_ok()
}

/// The intermediate in `dir`, if there is one.
fn load_intermediate(dir: &Path) -> anyhow::Result<Option<Intermediate>> {
    if !dir.join(INTERMEDIATE_CERT).exists() {
        return Ok(None);
    }
    Ok(Some(Intermediate {
        cert_pem: std::fs::read_to_string(dir.join(INTERMEDIATE_CERT))?,
        key_pem: read_private(&dir.join(INTERMEDIATE_KEY))?,
    }))
}

fn new_instance_id() -> anyhow::Result<String> {
    let mut b = [0u8; 8];
    bulwark_crypto::fill_random(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_offline::keys::export_root_key;
    use std::os::unix::fs::PermissionsExt as _;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    #[test]
    fn second_start_reuses_everything() {
        let t = tempfile::tempdir().unwrap();
        let (a, created) = InstanceKeys::load_or_create(t.path(), &names(), None).unwrap();
        assert!(created);
        let (b, created) = InstanceKeys::load_or_create(t.path(), &names(), None).unwrap();
        assert!(!created);
        assert_eq!(a.instance_id, b.instance_id);
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.server_cert_pem, b.server_cert_pem);
        assert_eq!(a.kek.kid(), b.kek.kid());
        assert_eq!(a.signing.kid(), b.signing.kid());
        assert_eq!(a.ledger_kid(), b.ledger_kid());
        for f in [CA_KEY, SERVER_KEY, KEK_FILE, SIGNING_KEY, LEDGER_KEY] {
            let mode = std::fs::metadata(t.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let judge = Arc::new(crate::pki::PeerJudge::new(
            Arc::new(bulwark_directory::DirectoryView::default()),
            "bulwark.test".into(),
        ));
        b.tls_config(&judge).unwrap();
        b.node_tls_config(&judge).unwrap();
    }

    #[test]
    fn new_names_reissue_only_the_server_certificate() {
        let t = tempfile::tempdir().unwrap();
        let (a, _) = InstanceKeys::load_or_create(t.path(), &names(), None).unwrap();
        let more = vec!["localhost".into(), "bulwark.internal".into()];
        let (b, _) = InstanceKeys::load_or_create(t.path(), &more, None).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_ne!(a.server_cert_pem, b.server_cert_pem);
        assert!(
            bulwark_pki::summarize(&b.server_cert_pem)
                .unwrap()
                .names
                .contains(&"bulwark.internal".to_string())
        );
    }

    #[test]
    fn a_kek_from_the_environment_is_never_written_and_must_agree_with_a_file() {
        let t = tempfile::tempdir().unwrap();
        let env = || Some(Kek::decode(&Kek::generate().unwrap().encode()).unwrap());
        let k = Kek::generate().unwrap();
        let same = || Some(Kek::decode(&k.encode()).unwrap());
        let (a, _) = InstanceKeys::load_or_create(t.path(), &names(), same()).unwrap();
        assert_eq!(a.kek.kid(), k.kid());
        assert!(!t.path().join(KEK_FILE).exists(), "never written");
        let (b, _) = InstanceKeys::load_or_create(t.path(), &names(), same()).unwrap();
        assert_eq!(b.kek.kid(), k.kid());
        assert!(
            InstanceKeys::load_or_create(t.path(), &names(), None).is_err(),
            "no KEK at all"
        );
        // A file and a different environment key: refused.
        write_atomic(&t.path().join(KEK_FILE), k.encode().as_bytes(), 0o600).unwrap();
        assert!(InstanceKeys::load_or_create(t.path(), &names(), env()).is_err());
        assert!(InstanceKeys::load_or_create(t.path(), &names(), same()).is_ok());
    }

    #[test]
    fn a_missing_kek_is_an_error_not_a_new_key() {
        let t = tempfile::tempdir().unwrap();
        InstanceKeys::load_or_create(t.path(), &names(), None).unwrap();
        std::fs::remove_file(t.path().join(KEK_FILE)).unwrap();
        assert!(InstanceKeys::load_or_create(t.path(), &names(), None).is_err());
    }

    #[test]
    fn orphan_key_files_without_instance_id_are_not_overwritten() {
        let t = tempfile::tempdir().unwrap();
        InstanceKeys::load_or_create(t.path(), &names(), None).unwrap();
        std::fs::remove_file(t.path().join(INSTANCE_ID)).unwrap();
        let before = std::fs::read(t.path().join(CA_KEY)).unwrap();
        assert!(InstanceKeys::load_or_create(t.path(), &names(), None).is_err());
        assert_eq!(before, std::fs::read(t.path().join(CA_KEY)).unwrap());
    }

    #[test]
    fn the_root_goes_offline_and_the_intermediate_carries_on() {
        let t = tempfile::tempdir().unwrap();
        let (a, _) = InstanceKeys::load_or_create(t.path(), &names(), None).unwrap();
        let out = t.path().join("root-offline.key");
        // Not before the intermediate exists.
        assert!(export_root_key(t.path(), &out).is_err());
        let inter = a.intermediate(Some(t.path())).unwrap();
        let fp = export_root_key(t.path(), &out).unwrap();
        assert_eq!(fp.len(), 64);
        assert!(!t.path().join(CA_KEY).exists());
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(export_root_key(t.path(), &t.path().join("again.key")).is_err());
        // A due server certificate now comes from the intermediate, chain included.
        std::fs::remove_file(t.path().join(SERVER_CERT)).unwrap();
        let (b, created) = InstanceKeys::load_or_create(t.path(), &names(), None).unwrap();
        assert!(!created);
        assert!(b.ca_key_pem.is_none());
        assert_eq!(b.server_cert_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(b.server_cert_pem.ends_with(&inter.cert_pem));
        let judge = Arc::new(crate::pki::PeerJudge::new(
            Arc::new(bulwark_directory::DirectoryView::default()),
            "bulwark.test".into(),
        ));
        b.tls_config(&judge).unwrap();
        assert_eq!(
            b.intermediate(Some(t.path())).unwrap().cert_pem,
            inter.cert_pem
        );
        // Without the marker a missing root key is a loss, not a decision: refused.
        std::fs::remove_file(t.path().join(ROOT_OFFLINE)).unwrap();
        assert!(InstanceKeys::load_or_create(t.path(), &names(), None).is_err());
    }
}
