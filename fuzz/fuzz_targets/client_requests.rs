#![no_main]
//! See `gauntlet_fuzz::client_requests`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_fuzz::client_requests(data));
