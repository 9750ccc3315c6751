//! Request body decoding: never panics, never returns more than the cap.
#![no_main]

use bulwark_http::decode::{Coding, DecodeLimits, decode_bounded, parse_content_encoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let _ = parse_content_encoding(body.split(|b| *b == b'\n').take(4));
    let coding = match selector % 3 {
        0 => Coding::Gzip,
        1 => Coding::Deflate,
        _ => Coding::Zstd,
    };
    let limits = DecodeLimits {
        max_decoded: 1 << 20,
        max_ratio: 10,
    };
    if let Ok(out) = decode_bounded(coding, body, limits) {
        assert!(out.len() <= limits.cap_for(body.len()));
    }
});
