//! Certificates: service certificates from CSRs, an org's issued certificates, revocation
//! (one journaled command; refused at the next handshake, open connections closed), and
//! the public revocation data (the CRL signed by the intermediate, the same as a list).
//!
//! Every issuance is journaled (`node.enroll`, `cert.issue`) before the certificate leaves,
//! with its serial: revocation names serials the journal knows.

use std::sync::Arc;
use std::time::Duration;

use bulwark_core::ProblemCode;
use bulwark_directory::Event;
use bulwark_directory::state::IssuedCert;
use bulwark_identity::jose::now_secs;
use bulwark_pki::ca::{SpiffeId, Workload};
use bulwark_pki::crl::Reason;
use time::OffsetDateTime;

use super::{OrgGrant, durable_seq};
use crate::AppState;
use crate::error::Error;

/// A certificate just signed by the intermediate.
pub struct Signed {
    /// The leaf, PEM.
    pub leaf_pem: String,
    /// Its serial (hex).
    pub serial: String,
    /// Its end (Unix seconds).
    pub not_after: i64,
}

/// Signs `csr_pem` for `id` with the intermediate (400 when the CSR or the TTL is refused).
pub fn sign(
    s: &AppState,
    csr_pem: &str,
    id: &SpiffeId,
    kind: Workload,
    ttl: Option<Duration>,
) -> Result<Signed, Error> {
    let leaf = s
        .pki
        .leaf_signer
        .sign_csr(csr_pem, id, kind, ttl, OffsetDateTime::now_utc())
        .map_err(|e| Error::bad_request(format!("the CSR was refused: {e}")))?;
    Ok(Signed {
        leaf_pem: leaf.pem,
        serial: leaf.serial,
        not_after: leaf.not_after.unix_timestamp(),
    })
}

/// A service certificate asked for.
pub struct IssueCert {
    /// The CSR, PEM.
    pub csr: String,
    /// The service it names (`spiffe://<td>/org/<org>/service/<service>`).
    pub service: String,
    /// Its lifetime, if not the default.
    pub ttl_secs: Option<u64>,
}

/// A certificate issued and journaled.
pub struct Issued {
    /// The SPIFFE id it names.
    pub id: SpiffeId,
    /// The certificate.
    pub signed: Signed,
    /// The journal entry that recorded it.
    pub seq: u64,
}

/// Issues a service certificate in the grant's org (`certs:issue` on it).
pub async fn issue(s: &AppState, g: &OrgGrant<'_>, req: IssueCert) -> Result<Issued, Error> {
    let org = g.org();
    if !s.directory.read().exists(g.scope()) {
        return Err(Error::not_found(g.scope()));
    }
    let id = SpiffeId::new(
        &s.pki.trust_domain,
        org.as_str(),
        Workload::Service,
        &req.service,
    )
    .map_err(|_| Error::bad_request("`service` is 1 to 64 of A-Z a-z 0-9 _ -"))?;
    let signed = sign(
        s,
        &req.csr,
        &id,
        Workload::Service,
        req.ttl_secs.map(Duration::from_secs),
    )?;
    let event = Event::CertIssue {
        org: org.to_string(),
        spiffe_id: id.to_string(),
        serial: signed.serial.clone(),
        not_after: signed.not_after,
        node: None,
        renewed_from: None,
    };
    // Re-decided and queued in order under the sequencer; durability is awaited outside
    // it, so that concurrent issuances share one group commit.
    let durable = {
        let _seq = s.journal.sequencer.lock().await;
        g.recheck(s)?;
        g.enqueue(s, &event)?
    };
    let seq = durable_seq(durable).await?;
    Ok(Issued { id, signed, seq })
}

/// The grant's org's issued certificates (kept until they expire), by serial.
pub fn list(s: &AppState, g: &OrgGrant<'_>) -> Result<Vec<(String, IssuedCert)>, Error> {
    let dir = s.directory.read();
    if !dir.exists(g.scope()) {
        return Err(Error::not_found(g.scope()));
    }
    Ok(dir
        .certs_in(g.org().as_str())
        .into_iter()
        .map(|(serial, c)| (serial.clone(), c.clone()))
        .collect())
}

/// A revocation asked for.
pub struct RevokeCert {
    /// The serial (lower-case hex).
    pub serial: String,
    /// Why, by its wire name (`key_compromise` …), if said.
    pub reason: Option<String>,
}

/// What a revocation did.
pub enum Revocation {
    /// Revoked now, by the entry `seq`.
    Revoked {
        /// When (Unix seconds).
        revoked_at: i64,
        /// The journal entry.
        seq: u64,
    },
    /// It was revoked before: nothing was written.
    Already {
        /// When it was.
        revoked_at: i64,
    },
}

/// Revokes one of the grant's org's certificates (an admin of it).
pub async fn revoke(s: &AppState, g: &OrgGrant<'_>, req: RevokeCert) -> Result<Revocation, Error> {
    if let Some(r) = &req.reason
        && Reason::parse(r).is_none()
    {
        return Err(Error::bad_request(
            "reason is one of key_compromise, affiliation_changed, superseded, cessation_of_operation",
        ));
    }
    if !bulwark_pki::crl::is_serial_hex(&req.serial) {
        return Err(Error::bad_request("a serial is lower-case hex"));
    }
    let org = g.org();
    let _seq = s.journal.sequencer.lock().await;
    let revoked_at = match s.directory.read().cert(&req.serial) {
        Some(c) if c.org == org.as_str() => c.revoked_at,
        // Another org's serial is as unknown as a made-up one.
        _ => return Err(Error::not_found(format!("certificate `{}`", req.serial))),
    };
    if let Some(at) = revoked_at {
        return Ok(Revocation::Already { revoked_at: at });
    }
    let event = Event::CertRevoke {
        org: org.to_string(),
        serial: req.serial,
        reason: req.reason,
    };
    let seq = g.commit(s, &event).await?;
    Ok(Revocation::Revoked {
        revoked_at: now_secs(),
        seq,
    })
}

/// The revoked, unexpired certificates at `now`, by serial.
pub fn revoked(s: &AppState, now: i64) -> Vec<(String, IssuedCert)> {
    s.directory
        .read()
        .revoked_certs(now)
        .into_iter()
        .map(|(serial, c)| (serial.clone(), c.clone()))
        .collect()
}

fn revoked_list(s: &AppState, now: i64) -> Vec<bulwark_pki::crl::Revoked> {
    s.directory
        .read()
        .revoked_certs(now)
        .into_iter()
        .map(|(serial, c)| bulwark_pki::crl::Revoked {
            serial_hex: serial.clone(),
            revoked_at: OffsetDateTime::from_unix_timestamp(c.revoked_at.unwrap_or(now))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            reason: c.reason.as_deref().and_then(Reason::parse),
        })
        .collect()
}

/// The CRL (DER) at `now`, signed by the intermediate, numbered by the journal's size when
/// it was made (so numbers only grow); made again only when the revocation epoch moved or
/// the last one is old.
pub fn crl(s: &AppState, now: i64) -> Result<Arc<Vec<u8>>, Error> {
    let epoch = *s.pki.peer_epoch.borrow();
    s.pki
        .crl
        .get_or_make(epoch, now, || {
            bulwark_pki::crl::sign_crl(
                &s.pki.intermediate.cert_pem,
                &s.pki.intermediate.key_pem,
                &revoked_list(s, now),
                s.journal.ledger.size(),
                OffsetDateTime::now_utc(),
                crate::pki::CRL_VALIDITY,
            )
        })
        .map_err(|e| {
            tracing::error!(error = %e, "could not sign the CRL");
            Error::refused(ProblemCode::Internal, "could not sign the CRL")
        })
}

/// The intermediate and the root, PEM (what a relying party trusts).
pub fn ca_chain(s: &AppState) -> String {
    format!("{}{}", s.pki.intermediate.cert_pem, s.pki.ca_cert_pem)
}

/// The leaf with the intermediate after it, PEM (what every issuance answers).
pub fn chain_of(s: &AppState, signed: &Signed) -> String {
    format!("{}{}", signed.leaf_pem, s.pki.intermediate.cert_pem)
}
