//! Signed-note and checkpoint parsing never panics, and never accepts a note that was not
//! signed by the key (the fuzzer cannot forge Ed25519).
#![no_main]

use std::sync::OnceLock;

use bulwark_crypto::SigningKey;
use bulwark_ledger::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static NoteVerifier {
    static V: OnceLock<NoteVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let key = SigningKey::generate().expect("key");
        let vkey = NoteSigner::new("bulwark/fuzz", &key).expect("signer").vkey();
        NoteVerifier::from_vkey(&vkey).expect("vkey")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Checkpoint::parse_body(text);
        let _ = NoteVerifier::from_vkey(text);
        assert!(verifier().verify(text).is_err(), "accepted an unsigned note");
    }
});
