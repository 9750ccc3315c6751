//! Tile paths: parsing never panics, and every accepted path re-encodes to itself.
#![no_main]

use bulwark_ledger::tiles;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(t) = tiles::parse(path) {
            let index = tiles::encode_index(t.index);
            let level = t.level.map_or_else(|| "entries".to_owned(), |l| l.to_string());
            let again = if t.width == tiles::TILE_WIDTH {
                format!("{level}/{index}")
            } else {
                format!("{level}/{index}.p/{}", t.width)
            };
            assert_eq!(again, path);
        }
    }
});
