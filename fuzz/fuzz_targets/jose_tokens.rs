//! Access tokens, DPoP proofs and client assertions from arbitrary bytes: the verifiers
//! never panic, and nothing unsigned by a trusted key is accepted.
#![no_main]

use bulwark_identity::{assertion, dpop, token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let now = 1_800_000_000;
    let key = [7u8; 32];
    let v = token::AccessVerifier::new("https://f", "https://f", [("k", &key)]);
    assert!(v.verify(s, now).is_err(), "accepted a token without our key's signature");
    let expect = dpop::Expect {
        method: "GET",
        url: "https://f/x",
        access_token: Some("t"),
        nonces: None,
        nonce_required: false,
    };
    // A proof may verify (it carries its own key); it must not panic either way.
    let _ = dpop::verify(s, &expect, now);
    if let Ok(ck) = assertion::ClientKey::parse(
        &serde_json::json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
    ) {
        assert!(assertion::verify(s, "c", &ck, &["https://f"], now).is_err());
    }
    let _ = dpop::normalize_htu(s);
});
