//! What reaches the CA from outside: CSRs (enrolment, renewal, service certificates),
//! client certificates (SPIFFE ids and serials read at the handshake and per request) and
//! SPIFFE URIs. None may panic; a CSR is signed only if it parses and its signature holds,
//! and what comes out always carries our SPIFFE id, never anything from the input.
#![no_main]

use std::sync::OnceLock;

use bulwark_pki::ca::{KeyAlg, SpiffeId, Workload, create_hierarchy, sign_csr};
use libfuzzer_sys::fuzz_target;

fn hierarchy() -> &'static bulwark_pki::ca::Hierarchy {
    static H: OnceLock<bulwark_pki::ca::Hierarchy> = OnceLock::new();
    H.get_or_init(|| {
        create_hierarchy("fuzz", KeyAlg::P256, time::OffsetDateTime::now_utc()).expect("ca")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = bulwark_pki::serial_and_spiffe_ids(data);
    let _ = bulwark_pki::spiffe_ids(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SpiffeId::parse("bulwark.local", text);
        let _ = bulwark_pki::crl::is_serial_hex(text);
        let h = hierarchy();
        let id = SpiffeId::new("bulwark.local", "acme", Workload::Node, "n1").expect("id");
        if let Ok(leaf) = sign_csr(
            &h.intermediate.cert_pem,
            &h.intermediate.key_pem,
            text,
            &id,
            Workload::Node,
            None,
            time::OffsetDateTime::now_utc(),
        ) {
            let der = rustls_pki_types::pem::PemObject::from_pem_slice(leaf.as_bytes())
                .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
                .expect("our own PEM");
            assert_eq!(bulwark_pki::spiffe_ids(&der), vec![id.to_string()]);
        }
    }
});
