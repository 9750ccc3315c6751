//! The hierarchy and its leaves verify with tools we did not write: `openssl verify` and
//! Python `cryptography`'s X.509 path validation (RFC 5280 with its strict web-PKI-style
//! profile). The Python check needs `BULWARK_INTEROP_PYTHON` (made by `.ci/run`); without
//! it that half is skipped with a message, except under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use bulwark_pki::ca::{KeyAlg, SpiffeId, Workload, create_hierarchy, make_csr, sign_csr};

const PY: &str = r#"
import sys
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
load = lambda p: x509.load_pem_x509_certificate(open(p, "rb").read())
root, inter, leaf = (load(p) for p in sys.argv[1:4])
verifier = PolicyBuilder().store(Store([root])).build_client_verifier()
verified = verifier.verify(leaf, [inter])
print(";".join(str(s.value) for s in verified.subjects))
"#;

#[test]
fn openssl_and_python_cryptography_accept_our_chains() {
    let python = std::env::var_os("BULWARK_INTEROP_PYTHON");
    if python.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set BULWARK_INTEROP_PYTHON"
        );
        eprintln!("skipping the Python half: BULWARK_INTEROP_PYTHON is not set");
    }
    let now = time::OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    for alg in [KeyAlg::P256, KeyAlg::Ed25519] {
        let h = create_hierarchy("interop", alg, now).unwrap();
        for kind in [Workload::Node, Workload::Service] {
            let (_key, csr) = make_csr(alg).unwrap();
            let id = SpiffeId::new("bulwark.test", "acme", kind, "w1").unwrap();
            let leaf = sign_csr(
                &h.intermediate.cert_pem,
                &h.intermediate.key_pem,
                &csr,
                &id,
                kind,
                None,
                now,
            )
            .unwrap();
            let (r, i, l) = (
                dir.path().join("root.pem"),
                dir.path().join("inter.pem"),
                dir.path().join("leaf.pem"),
            );
            std::fs::write(&r, &h.root.cert_pem).unwrap();
            std::fs::write(&i, &h.intermediate.cert_pem).unwrap();
            std::fs::write(&l, &leaf).unwrap();
            let out = Command::new("openssl")
                .args(["verify", "-purpose", "sslclient", "-CAfile"])
                .arg(&r)
                .arg("-untrusted")
                .arg(&i)
                .arg(&l)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {alg:?} {kind:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
            // A leaf presented with the wrong root fails.
            let other = create_hierarchy("other", alg, now).unwrap();
            let o = dir.path().join("other.pem");
            std::fs::write(&o, &other.root.cert_pem).unwrap();
            let bad = Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(&o)
                .arg("-untrusted")
                .arg(&i)
                .arg(&l)
                .output()
                .unwrap();
            assert!(!bad.status.success());
            if let Some(py) = &python {
                let out = Command::new(py)
                    .args(["-c", PY])
                    .arg(&r)
                    .arg(&i)
                    .arg(&l)
                    .output()
                    .unwrap();
                if alg == KeyAlg::Ed25519 && !out.status.success() {
                    // cryptography's profile admits only RSA/ECDSA signature algorithms.
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(err.to_lowercase().contains("algorithm"), "{err}");
                    eprintln!(
                        "cryptography refused the Ed25519 chain: {}",
                        err.lines().last().unwrap_or_default()
                    );
                    continue;
                }
                assert!(
                    out.status.success(),
                    "cryptography {alg:?} {kind:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id.as_str());
            }
        }
    }
}
