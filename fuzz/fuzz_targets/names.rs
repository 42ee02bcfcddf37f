//! Channel names, app ids, service names, patterns and paths (`fuzz/src/names.rs`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        waas_fuzz::names::all(s);
    }
});
