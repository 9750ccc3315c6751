//! Event envelopes from arbitrary bytes: the bounded parser never panics, and nothing the
//! fuzzer makes verifies under a real org key (it cannot forge Ed25519).
#![no_main]

use std::sync::OnceLock;

use bulwark_events::{Envelope, KeyRing};
use libfuzzer_sys::fuzz_target;

fn ring() -> &'static KeyRing {
    static R: OnceLock<KeyRing> = OnceLock::new();
    R.get_or_init(|| {
        let key = bulwark_crypto::SigningKey::generate().expect("key");
        let mut r = KeyRing::new();
        r.rotate_in(&key.verifying_key(), 0, 0);
        r
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::parse(data) {
        assert!(ring().verify(&env, env.issued_at).is_err(), "accepted a forged envelope");
        let again = Envelope::parse(&env.render().expect("render")).expect("re-parse");
        assert_eq!(again, env);
    }
});
