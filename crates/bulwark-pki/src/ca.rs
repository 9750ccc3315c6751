//! The instance CA hierarchy of DESIGN.md §4 "PKI and nodes": a root (meant to go offline)
//! and an intermediate that signs every leaf; leaves from CSRs with SPIFFE-id URI SANs,
//! 24 h by default and never above [`crate::MAX_LEAF_VALIDITY`].
//!
//! A CSR contributes only its public key (its signature is verified first); names,
//! extensions and lifetime are ours. Leaves end no later than the intermediate.

use std::fmt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ED25519, SanType, SignatureAlgorithm,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::{BACKDATE, Issued, MAX_LEAF_VALIDITY, PkiError, ROOT_VALIDITY};

/// Validity of a new intermediate (2 years; re-issued from the offline root before it ends).
pub const INTERMEDIATE_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// Leaf validity when none is asked for.
pub const DEFAULT_LEAF_TTL: Duration = Duration::from_secs(24 * 3600);

/// Key algorithm of a CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// ECDSA P-256 with SHA-256 (the default: every client speaks it).
    P256,
    /// Ed25519.
    Ed25519,
}

impl KeyAlg {
    fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            Self::P256 => &PKCS_ECDSA_P256_SHA256,
            Self::Ed25519 => &PKCS_ED25519,
        }
    }
}

/// Root and intermediate.
pub struct Hierarchy {
    /// The root (its key is to be exported and removed from the server).
    pub root: Issued,
    /// The intermediate that signs leaves.
    pub intermediate: Issued,
}

fn ca_params(
    cn: String,
    path_len: u8,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Bulwark");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(crate::new_serial()?);
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    Ok(params)
}

/// Creates a root and an intermediate for the instance `name`.
pub fn create_hierarchy(
    name: &str,
    alg: KeyAlg,
    now: OffsetDateTime,
) -> Result<Hierarchy, PkiError> {
    let root_key = KeyPair::generate_for(alg.rcgen())?;
    let mut root_params = ca_params(format!("Bulwark root CA {name}"), 1, ROOT_VALIDITY, now)?;
    root_params.use_authority_key_identifier_extension = false;
    let root_cert = root_params.self_signed(&root_key)?;
    let root = Issued {
        cert_pem: root_cert.pem(),
        key_pem: Zeroizing::new(root_key.serialize_pem()),
    };
    let intermediate = create_intermediate(&root.cert_pem, &root.key_pem, name, alg, now)?;
    Ok(Hierarchy { root, intermediate })
}

/// Issues an intermediate (path length 0) from the root.
pub fn create_intermediate(
    root_cert_pem: &str,
    root_key_pem: &str,
    name: &str,
    alg: KeyAlg,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let root_key = KeyPair::from_pem(root_key_pem).map_err(|_| PkiError::Malformed("root key"))?;
    let issuer = Issuer::from_ca_cert_pem(root_cert_pem, &root_key)
        .map_err(|_| PkiError::Malformed("root certificate"))?;
    let key = KeyPair::generate_for(alg.rcgen())?;
    let params = ca_params(
        format!("Bulwark intermediate CA {name}"),
        0,
        INTERMEDIATE_VALIDITY,
        now,
    )?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// What a SPIFFE id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A node (agent).
    Node,
    /// A service.
    Service,
}

/// `spiffe://<trust-domain>/org/<org>/node|service/<id>`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeId(String);

impl SpiffeId {
    /// Builds and validates an id: the trust domain is lower-case `[a-z0-9.-]`, the org a
    /// DNS label, the id `[A-Za-z0-9_-]{1,64}`.
    pub fn new(trust_domain: &str, org: &str, kind: Workload, id: &str) -> Result<Self, PkiError> {
        let td_ok = !trust_domain.is_empty()
            && trust_domain.len() <= 255
            && trust_domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        let org_ok = !org.is_empty()
            && org.len() <= 63
            && org.starts_with(|c: char| c.is_ascii_lowercase())
            && org
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !(td_ok && org_ok && id_ok) {
            return Err(PkiError::Malformed("SPIFFE id"));
        }
        let kind = match kind {
            Workload::Node => "node",
            Workload::Service => "service",
        };
        Ok(Self(format!(
            "spiffe://{trust_domain}/org/{org}/{kind}/{id}"
        )))
    }

    /// The URI.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads `uri` as an id of `trust_domain`: `(org, kind, id)`, or `None` if it is of
    /// another trust domain or not in our shape (it must round-trip through [`Self::new`]).
    pub fn parse(trust_domain: &str, uri: &str) -> Option<(String, Workload, String)> {
        let rest = uri
            .strip_prefix("spiffe://")?
            .strip_prefix(trust_domain)?
            .strip_prefix("/org/")?;
        let (org, rest) = rest.split_once('/')?;
        let (kind, id) = rest.split_once('/')?;
        let kind = match kind {
            "node" => Workload::Node,
            "service" => Workload::Service,
            _ => return None,
        };
        let again = Self::new(trust_domain, org, kind, id).ok()?;
        (again.as_str() == uri).then(|| (org.to_owned(), kind, id.to_owned()))
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A leaf just signed.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub pem: String,
    /// Its serial, as [`crate::serial_hex`].
    pub serial: String,
    /// Its end.
    pub not_after: OffsetDateTime,
}

/// The intermediate, parsed once, ready to sign leaves (the server keeps one: parsing the
/// key and the certificate per issuance cost more than the signature). No `Debug`.
pub struct LeafSigner {
    issuer: Issuer<'static, KeyPair>,
    issuer_end: OffsetDateTime,
}

impl LeafSigner {
    /// Parses the issuing CA's certificate and key (PEM).
    pub fn new(issuer_cert_pem: &str, issuer_key_pem: &str) -> Result<Self, PkiError> {
        let issuer_key =
            KeyPair::from_pem(issuer_key_pem).map_err(|_| PkiError::Malformed("issuer key"))?;
        let issuer = Issuer::from_ca_cert_pem(issuer_cert_pem, issuer_key)
            .map_err(|_| PkiError::Malformed("issuer certificate"))?;
        Ok(Self {
            issuer,
            issuer_end: crate::summarize(issuer_cert_pem)?.not_after,
        })
    }

    /// Signs a leaf for `id` from `csr_pem`. Nodes get clientAuth; services clientAuth and
    /// serverAuth. `ttl` defaults to 24 h, is capped at 30 days and at the issuer's own end.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        id: &SpiffeId,
        kind: Workload,
        ttl: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Leaf, PkiError> {
        let ttl = ttl.unwrap_or(DEFAULT_LEAF_TTL);
        if ttl > MAX_LEAF_VALIDITY {
            return Err(PkiError::ValidityTooLong {
                requested: ttl,
                max: MAX_LEAF_VALIDITY,
            });
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|_| PkiError::Malformed("certificate signing request"))?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = vec![SanType::URI(id.as_str().try_into()?)];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Bulwark");
        dn.push(DnType::CommonName, id.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match kind {
            Workload::Node => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Workload::Service => vec![
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        let serial = crate::new_serial()?;
        let serial_hex = crate::serial_hex(serial.as_ref());
        params.serial_number = Some(serial);
        params.not_before = now - BACKDATE;
        params.not_after = (now + ttl).min(self.issuer_end);
        let not_after = params.not_after;
        Ok(Leaf {
            pem: params.signed_by(&csr.public_key, &self.issuer)?.pem(),
            serial: serial_hex,
            not_after,
        })
    }
}

/// Signs a leaf for `id` from `csr_pem` with the intermediate (see
/// [`LeafSigner::sign_csr`]; this parses the issuer each time).
pub fn sign_csr(
    issuer_cert_pem: &str,
    issuer_key_pem: &str,
    csr_pem: &str,
    id: &SpiffeId,
    kind: Workload,
    ttl: Option<Duration>,
    now: OffsetDateTime,
) -> Result<String, PkiError> {
    Ok(LeafSigner::new(issuer_cert_pem, issuer_key_pem)?
        .sign_csr(csr_pem, id, kind, ttl, now)?
        .pem)
}

/// A key and its CSR for `id` (what an agent does on its node; here for tests and tools).
pub fn make_csr(alg: KeyAlg) -> Result<(Zeroizing<String>, String), PkiError> {
    let key = KeyPair::generate_for(alg.rcgen())?;
    let params = CertificateParams::new(Vec::<String>::new())?;
    let csr = params.serialize_request(&key)?;
    Ok((Zeroizing::new(key.serialize_pem()), csr.pem()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy_and_leaves_chain_for_both_algorithms() {
        let now = OffsetDateTime::now_utc();
        for alg in [KeyAlg::P256, KeyAlg::Ed25519] {
            let h = create_hierarchy("test", alg, now).unwrap();
            let (_key, csr) = make_csr(alg).unwrap();
            let id = SpiffeId::new("bulwark.test", "acme", Workload::Node, "n1").unwrap();
            let leaf = sign_csr(
                &h.intermediate.cert_pem,
                &h.intermediate.key_pem,
                &csr,
                &id,
                Workload::Node,
                None,
                now,
            )
            .unwrap();
            let s = crate::summarize(&leaf).unwrap();
            assert!(!s.is_ca);
            let signer =
                LeafSigner::new(&h.intermediate.cert_pem, &h.intermediate.key_pem).unwrap();
            let again = signer
                .sign_csr(&csr, &id, Workload::Node, None, now)
                .unwrap();
            let read = crate::summarize(&again.pem).unwrap();
            assert_eq!(read.serial, again.serial);
            assert_eq!(
                read.not_after.unix_timestamp(),
                again.not_after.unix_timestamp()
            );
            let hours = (s.not_after - s.not_before).whole_hours();
            assert!((24..=25).contains(&hours), "{hours}");
            assert!(crate::summarize(&h.intermediate.cert_pem).unwrap().is_ca);
        }
    }

    #[test]
    fn policy_limits_and_bad_input() {
        let now = OffsetDateTime::now_utc();
        let h = create_hierarchy("test", KeyAlg::P256, now).unwrap();
        let (_k, csr) = make_csr(KeyAlg::P256).unwrap();
        let id = SpiffeId::new("bulwark.test", "acme", Workload::Service, "svc_1").unwrap();
        let sign = |csr: &str, ttl| {
            sign_csr(
                &h.intermediate.cert_pem,
                &h.intermediate.key_pem,
                csr,
                &id,
                Workload::Service,
                ttl,
                now,
            )
        };
        assert!(sign(&csr, Some(MAX_LEAF_VALIDITY)).is_ok());
        assert!(sign(&csr, Some(MAX_LEAF_VALIDITY + Duration::from_secs(1))).is_err());
        // A CSR whose signature does not match its key is refused.
        let (_k2, other) = make_csr(KeyAlg::P256).unwrap();
        let forged = csr
            .lines()
            .take(3)
            .chain(other.lines().skip(3))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(sign(&forged, None).is_err());
        assert!(sign("not a csr", None).is_err());
        let ok = SpiffeId::new("bulwark.test", "acme", Workload::Node, "n1").unwrap();
        assert_eq!(
            SpiffeId::parse("bulwark.test", ok.as_str()),
            Some(("acme".into(), Workload::Node, "n1".into()))
        );
        for uri in [
            "spiffe://bulwark.test/org/acme/node/n1/x",
            "spiffe://bulwark.testx/org/acme/node/n1",
            "spiffe://other/org/acme/node/n1",
            "spiffe://bulwark.test/org/acme/user/n1",
            "spiffe://bulwark.test/org/Acme/node/n1",
        ] {
            assert_eq!(SpiffeId::parse("bulwark.test", uri), None, "{uri}");
        }
        for (td, org, id) in [
            ("Bad", "acme", "n"),
            ("t", "Acme", "n"),
            ("t", "acme", "a/b"),
            ("t", "acme", ""),
        ] {
            assert!(
                SpiffeId::new(td, org, Workload::Node, id).is_err(),
                "{td} {org} {id}"
            );
        }
    }
}
