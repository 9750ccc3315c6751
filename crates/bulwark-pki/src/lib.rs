//! Bulwark's certificate authority.
//!
//! Owns: creating the instance's root CA (ECDSA P-256) and issuing the server's TLS
//! certificate from it; reading back what a certificate says (names, expiry) to decide
//! whether a stored one can be reused. The hierarchy of root and intermediate, SPIFFE ids
//! and CSR signing ([`ca`]); certificate revocation lists ([`crl`]). Every certificate
//! gets a random 128-bit serial (rcgen's default, a hash of the public key, would give two
//! certificates for one key the same serial and make revoking one revoke both).
//!
//! Must never: perform I/O (the server stores the PEM this crate returns), log or expose a
//! private key except through a zeroizing buffer, or issue a leaf valid for more than
//! [`MAX_LEAF_VALIDITY`].

#![forbid(unsafe_code)]
// A parser cannot index past its input: out-of-range reads are `None`, never a panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod ca;
pub mod crl;

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// No leaf certificate is ever valid for longer than this (30 days).
pub const MAX_LEAF_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Validity of a new root CA (10 years; the root is meant to be taken offline later).
pub const ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Certificates are back-dated by this much to tolerate clock skew between hosts.
pub(crate) const BACKDATE: Duration = Duration::from_secs(300);

/// Errors from certificate work. Never carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen could not build or sign the certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate or key could not be parsed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The random source failed.
    #[error("the random source failed")]
    Random,
    /// A requested validity is outside policy.
    #[error("validity of {requested:?} is above the maximum of {max:?}")]
    ValidityTooLong {
        /// What was asked for.
        requested: Duration,
        /// The ceiling.
        max: Duration,
    },
}

/// A certificate and its private key, both PEM. The key zeroizes on drop.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: Zeroizing<String>,
}

/// Creates a self-signed root CA named after the instance.
pub fn create_root_ca(instance_id: &str, now: OffsetDateTime) -> Result<Issued, PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let params = root_params(instance_id, now)?;
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

fn root_params(instance_id: &str, now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Bulwark");
    dn.push(DnType::CommonName, format!("Bulwark root CA {instance_id}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(new_serial()?);
    params.not_before = now - BACKDATE;
    params.not_after = now + ROOT_VALIDITY;
    Ok(params)
}

/// Issues a TLS server certificate for `names` (DNS names or IP literals) signed by the CA.
pub fn issue_server_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    names: &[String],
    validity: Duration,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let sans = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let cn = names.first().cloned().unwrap_or_else(|| "bulwark".into());
    issue_leaf(
        ca_cert_pem,
        ca_key_pem,
        sans,
        &cn,
        ExtendedKeyUsagePurpose::ServerAuth,
        validity,
        now,
    )
}

/// Issues a TLS client certificate for `uri` (a SPIFFE id such as
/// `spiffe://<trust-domain>/org/<org>/service/<id>`) signed by the CA: EKU clientAuth only.
pub fn issue_client_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    uri: &str,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let sans = vec![SanType::URI(uri.try_into()?)];
    issue_leaf(
        ca_cert_pem,
        ca_key_pem,
        sans,
        uri,
        ExtendedKeyUsagePurpose::ClientAuth,
        validity,
        now,
    )
}

/// A leaf with a fresh P-256 key: these names, one EKU, no CA rights, AKI, back-dated.
fn issue_leaf(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    sans: Vec<SanType>,
    cn: &str,
    eku: ExtendedKeyUsagePurpose,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    if validity > MAX_LEAF_VALIDITY {
        return Err(PkiError::ValidityTooLong {
            requested: validity,
            max: MAX_LEAF_VALIDITY,
        });
    }
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|_| PkiError::Malformed("CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, &ca_key)
        .map_err(|_| PkiError::Malformed("CA certificate"))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Bulwark");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(new_serial()?);
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// A fresh serial: 16 random bytes, the top bit clear (a positive INTEGER) and the next one
/// set (no leading zero byte), so the DER encoding is always exactly these 16 bytes.
pub(crate) fn new_serial() -> Result<rcgen::SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    bulwark_crypto::fill_random(&mut b).map_err(|_| PkiError::Random)?;
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&b))
}

/// Lower-case hex of a serial's big-endian bytes without leading zero bytes: the form
/// serials take in the journal, the API and the CRL.
pub fn serial_hex(bytes: &[u8]) -> String {
    let hex: String = bytes
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect();
    if hex.is_empty() { "00".into() } else { hex }
}

/// The serial (as [`serial_hex`]) and the `spiffe://` URI SANs of a DER certificate, or
/// `None` if it does not parse.
pub fn serial_and_spiffe_ids(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((serial_hex(cert.raw_serial()), spiffe_ids_of(&cert)))
}

fn spiffe_ids_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) if u.starts_with("spiffe://") => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// The `spiffe://` URI SANs of a DER certificate (empty if it does not parse).
pub fn spiffe_ids(der: &[u8]) -> Vec<String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| spiffe_ids_of(&cert))
        .unwrap_or_default()
}

/// What a stored certificate says, as far as reuse decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// DNS names and IP addresses in the subject alternative names, as strings.
    pub names: Vec<String>,
    /// Whether the certificate is a CA.
    pub is_ca: bool,
    /// Its serial, as [`serial_hex`].
    pub serial: String,
}

/// Parses a PEM certificate into a [`CertSummary`].
pub fn summarize(cert_pem: &str) -> Result<CertSummary, PkiError> {
    use x509_parser::extensions::GeneralName;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|_| PkiError::Malformed("certificate PEM"))?;
    let cert = pem
        .parse_x509()
        .map_err(|_| PkiError::Malformed("certificate"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        names.push(std::net::IpAddr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        names.push(std::net::IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertSummary {
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        names,
        is_ca: cert.is_ca(),
        serial: serial_hex(cert.raw_serial()),
    })
}

impl CertSummary {
    /// Whether a certificate with this summary can still be served at `now` for `names`:
    /// it covers every name and has at least a third of `validity` left.
    pub fn reusable_for(&self, names: &[String], validity: Duration, now: OffsetDateTime) -> bool {
        let covers = names.iter().all(|n| self.names.iter().any(|m| m == n));
        let left = self.not_after - now;
        covers && self.not_before <= now && left >= validity / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    #[test]
    fn root_and_server_certificate_describe_themselves() {
        let now = OffsetDateTime::now_utc();
        let root = create_root_ca("inst1", now).unwrap();
        let root_sum = summarize(&root.cert_pem).unwrap();
        assert!(root_sum.is_ca);
        let leaf = issue_server_cert(
            &root.cert_pem,
            &root.key_pem,
            &names(),
            Duration::from_secs(86400),
            now,
        )
        .unwrap();
        let s = summarize(&leaf.cert_pem).unwrap();
        assert!(!s.is_ca);
        assert_eq!(s.names, names());
        assert!(s.reusable_for(&names(), Duration::from_secs(86400), now));
        assert!(!s.reusable_for(&["other.example".into()], Duration::from_secs(86400), now));
        // With less than a third of its life left it is due for re-issue.
        let later = now + Duration::from_secs(80_000);
        assert!(!s.reusable_for(&names(), Duration::from_secs(86400), later));
    }

    #[test]
    fn client_certificates_carry_the_uri_and_client_auth_only() {
        let now = OffsetDateTime::now_utc();
        let ca = create_root_ca("test", now).unwrap();
        let uri = "spiffe://bulwark.test/org/acme/service/svc_a";
        let c = issue_client_cert(
            &ca.cert_pem,
            &ca.key_pem,
            uri,
            Duration::from_secs(3600),
            now,
        )
        .unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(c.cert_pem.as_bytes()).unwrap();
        let x = pem.parse_x509().unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!x.is_ca());
        assert!(
            issue_client_cert(&ca.cert_pem, &ca.key_pem, uri, MAX_LEAF_VALIDITY * 2, now).is_err()
        );
    }

    #[test]
    fn leaf_validity_is_capped() {
        let now = OffsetDateTime::now_utc();
        let root = create_root_ca("inst1", now).unwrap();
        let err = issue_server_cert(
            &root.cert_pem,
            &root.key_pem,
            &names(),
            MAX_LEAF_VALIDITY + Duration::from_secs(1),
            now,
        );
        assert!(matches!(err, Err(PkiError::ValidityTooLong { .. })));
    }
}
