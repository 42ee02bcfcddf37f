//! Each op's fields: first byte picks the op, the rest is the JSON object (`fuzz/src/frames.rs`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| waas_fuzz::frames::op_json(data));
