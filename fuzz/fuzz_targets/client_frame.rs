//! A client's WebSocket message through the gateway's read path (`fuzz/src/frames.rs`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| waas_fuzz::frames::message(data));
