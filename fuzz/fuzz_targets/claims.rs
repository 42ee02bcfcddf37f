//! JWT claims: the payload signed with the app's secret and verified as the gateway does, and
//! the input as a raw token (`fuzz/src/claims.rs`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    waas_fuzz::claims::signed(data);
    waas_fuzz::claims::raw_token(data);
});
