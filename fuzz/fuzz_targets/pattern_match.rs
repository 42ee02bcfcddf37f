//! Patterns (one a line) against a channel (the last line), compared with a reference
//! implementation of NATS matching (`fuzz/src/names.rs`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        waas_fuzz::names::pattern_match(s);
    }
});
