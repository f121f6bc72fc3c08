#![no_main]
//! See `gauntlet_fuzz::histories`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_fuzz::histories(data));
