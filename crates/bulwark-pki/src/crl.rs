//! Certificate revocation lists (RFC 5280 §5), signed by the intermediate that issued the
//! leaves they list. The server decides what is revoked (the journal); this module only
//! renders and signs the list.

use std::time::Duration;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use crate::PkiError;

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Its serial, lower-case hex (as [`crate::serial_hex`]).
    pub serial_hex: String,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why, if said.
    pub reason: Option<Reason>,
}

/// The revocation reasons an operator may give (RFC 5280 §5.3.1, the useful subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The private key is known or suspected to be compromised.
    KeyCompromise,
    /// The holder's affiliation changed.
    AffiliationChanged,
    /// Replaced by another certificate.
    Superseded,
    /// No longer needed.
    CessationOfOperation,
}

impl Reason {
    /// Parses the wire name (`key_compromise`, `affiliation_changed`, `superseded`,
    /// `cessation_of_operation`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "key_compromise" => Self::KeyCompromise,
            "affiliation_changed" => Self::AffiliationChanged,
            "superseded" => Self::Superseded,
            "cessation_of_operation" => Self::CessationOfOperation,
            _ => return None,
        })
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KeyCompromise => "key_compromise",
            Self::AffiliationChanged => "affiliation_changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation_of_operation",
        }
    }

    const fn rcgen(self) -> RevocationReason {
        match self {
            Self::KeyCompromise => RevocationReason::KeyCompromise,
            Self::AffiliationChanged => RevocationReason::AffiliationChanged,
            Self::Superseded => RevocationReason::Superseded,
            Self::CessationOfOperation => RevocationReason::CessationOfOperation,
        }
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, PkiError> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 40 {
        return Err(PkiError::Malformed("serial"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PkiError::Malformed("serial"))
        })
        .collect()
}

/// Whether `s` is a serial in our hex form (1 to 20 bytes, lower-case, even length).
pub fn is_serial_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && unhex(s).is_ok()
}

/// Signs a CRL numbered `number` listing `revoked`, valid from `now` for `validity`.
/// Returns its DER.
pub fn sign_crl(
    issuer_cert_pem: &str,
    issuer_key_pem: &str,
    revoked: &[Revoked],
    number: u64,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<Vec<u8>, PkiError> {
    let key = KeyPair::from_pem(issuer_key_pem).map_err(|_| PkiError::Malformed("issuer key"))?;
    let issuer = Issuer::from_ca_cert_pem(issuer_cert_pem, &key)
        .map_err(|_| PkiError::Malformed("issuer certificate"))?;
    let revoked_certs = revoked
        .iter()
        .map(|r| {
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&unhex(&r.serial_hex)?),
                revocation_time: r.revoked_at,
                reason_code: r.reason.map(Reason::rcgen),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let params = CertificateRevocationListParams {
        this_update: now - crate::BACKDATE,
        next_update: now + validity,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(&issuer)?.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{KeyAlg, SpiffeId, Workload, create_hierarchy, make_csr, sign_csr};

    #[test]
    fn a_crl_lists_the_revoked_serials_and_names_its_issuer() {
        let now = OffsetDateTime::now_utc();
        let h = create_hierarchy("t", KeyAlg::P256, now).unwrap();
        let (_k, csr) = make_csr(KeyAlg::P256).unwrap();
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
        let serial = crate::summarize(&leaf).unwrap().serial;
        assert_eq!(serial.len(), 32, "16 random bytes: {serial}");
        assert!(is_serial_hex(&serial));
        let der = sign_crl(
            &h.intermediate.cert_pem,
            &h.intermediate.key_pem,
            &[Revoked {
                serial_hex: serial.clone(),
                revoked_at: now,
                reason: Some(Reason::KeyCompromise),
            }],
            7,
            now,
            Duration::from_secs(3600),
        )
        .unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
        let listed: Vec<String> = crl
            .iter_revoked_certificates()
            .map(|r| crate::serial_hex(r.raw_serial()))
            .collect();
        assert_eq!(listed, vec![serial]);
        assert!(crl.issuer().to_string().contains("intermediate"));
        assert_eq!(crl.crl_number().map(|n| n.to_string()), Some("7".into()));
    }

    #[test]
    fn serials_are_unique_even_for_one_key_and_malformed_ones_are_refused() {
        let now = OffsetDateTime::now_utc();
        let h = create_hierarchy("t", KeyAlg::P256, now).unwrap();
        let (_k, csr) = make_csr(KeyAlg::P256).unwrap();
        let id = SpiffeId::new("bulwark.test", "acme", Workload::Service, "s").unwrap();
        let sign = || {
            let pem = sign_csr(
                &h.intermediate.cert_pem,
                &h.intermediate.key_pem,
                &csr,
                &id,
                Workload::Service,
                None,
                now,
            )
            .unwrap();
            crate::summarize(&pem).unwrap().serial
        };
        assert_ne!(sign(), sign());
        for bad in ["", "0", "zz", "ABCD", &"ab".repeat(21)] {
            assert!(!is_serial_hex(bad), "{bad}");
        }
        assert_eq!(crate::serial_hex(&[0, 0, 1, 2]), "0102");
    }
}
