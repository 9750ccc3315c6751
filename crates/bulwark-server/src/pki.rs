//! The CA's live side: who may still hold a TLS connection (revoked certificates,
//! quarantined nodes), the revocation-aware client verifier both listeners use, and the
//! CRL the intermediate signs.
//!
//! The journal decides what is revoked (`cert.revoke`, `node.quarantine`); the directory
//! folds it; [`PeerJudge`] reads the directory at every handshake and, through
//! [`bulwark_http::listener::Revalidate`], again for every open connection whenever a
//! revocation or quarantine lands.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bulwark_directory::DirectoryView;
use bulwark_pki::ca::{SpiffeId, Workload};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// How long a CRL is valid (its `nextUpdate`); a fresh one is signed at least every
/// [`CRL_REFRESH`] and at every revocation.
pub const CRL_VALIDITY: Duration = Duration::from_secs(3600);
const CRL_REFRESH: i64 = 600;

/// Judges a client certificate against the directory: not revoked, and not a quarantined
/// node's.
pub struct PeerJudge {
    directory: Arc<DirectoryView>,
    trust_domain: String,
}

impl PeerJudge {
    /// A judge over `directory` for ids of `trust_domain`.
    pub fn new(directory: Arc<DirectoryView>, trust_domain: String) -> Self {
        Self {
            directory,
            trust_domain,
        }
    }

    /// `Ok` if the holder of `leaf` (DER) may connect; otherwise why not (a metric label).
    pub fn judge(&self, leaf: &[u8]) -> Result<(), &'static str> {
        let (serial, ids) =
            bulwark_pki::serial_and_spiffe_ids(leaf).ok_or("client_cert_unparsable")?;
        self.judge_parsed(&serial, &ids)
    }

    /// [`PeerJudge::judge`] for a certificate already read: its serial and SPIFFE ids.
    pub fn judge_parsed(&self, serial: &str, ids: &[String]) -> Result<(), &'static str> {
        let dir = self.directory.read();
        if dir.cert_revoked(serial) {
            return Err("cert_revoked");
        }
        for id in ids {
            if let Some((org, Workload::Node, node)) = SpiffeId::parse(&self.trust_domain, id)
                && dir.node(&org, &node).is_some_and(|n| n.quarantined)
            {
                return Err("node_quarantined");
            }
        }
        Ok(())
    }
}

impl bulwark_http::listener::PeerRecheck for PeerJudge {
    fn still_allowed(&self, leaf: &[u8]) -> bool {
        self.judge(leaf).is_ok()
    }
}

/// A client verifier that checks the chain (webpki, against the instance root) and then
/// asks the [`PeerJudge`]: a revoked certificate or a quarantined node fails the handshake.
pub struct RevocationAwareVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    judge: Arc<PeerJudge>,
}

impl RevocationAwareVerifier {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, judge: Arc<PeerJudge>) -> Self {
        Self { inner, judge }
    }
}

impl std::fmt::Debug for RevocationAwareVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationAwareVerifier")
    }
}

impl ClientCertVerifier for RevocationAwareVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| {
                let reason = match e {
                    rustls::Error::InvalidCertificate(
                        CertificateError::Expired | CertificateError::ExpiredContext { .. },
                    ) => "client_cert_expired",
                    rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                        "client_cert_unknown_issuer"
                    }
                    _ => "client_cert_invalid",
                };
                crate::authn::count_failure(reason);
            })?;
        if let Err(reason) = self.judge.judge(end_entity.as_ref()) {
            crate::authn::count_failure(reason);
            tracing::info!(reason, "client certificate refused at the handshake");
            return Err(rustls::Error::InvalidCertificate(
                if reason == "cert_revoked" {
                    CertificateError::Revoked
                } else {
                    CertificateError::ApplicationVerificationFailure
                },
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A CRL signed for a revocation epoch at a time (Unix seconds): `(epoch, at, der)`.
type SignedCrl = (u64, i64, Arc<Vec<u8>>);

/// The last CRL signed.
#[derive(Default)]
pub struct CrlCache {
    last: Mutex<Option<SignedCrl>>,
}

impl CrlCache {
    /// The CRL for `epoch` at `now`: the cached one if it was made for this epoch less than
    /// [`CRL_REFRESH`] ago, else `make()`'s (which is cached).
    pub fn get_or_make(
        &self,
        epoch: u64,
        now: i64,
        make: impl FnOnce() -> Result<Vec<u8>, bulwark_pki::PkiError>,
    ) -> Result<Arc<Vec<u8>>, bulwark_pki::PkiError> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((e, at, der)) = last.as_ref()
            && *e == epoch
            && now - at < CRL_REFRESH
        {
            return Ok(der.clone());
        }
        let der = Arc::new(make()?);
        *last = Some((epoch, now, der.clone()));
        Ok(der)
    }
}
