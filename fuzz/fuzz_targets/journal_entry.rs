//! Stored entries: parsing never panics, and anything accepted is exactly canonical.
#![no_main]

use bulwark_ledger::entry::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::from_canonical(data) {
        assert_eq!(e.canonical().expect("re-encode"), data);
    }
});
