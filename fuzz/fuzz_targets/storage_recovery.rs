#![no_main]
//! See `gauntlet_fuzz::storage_recovery`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_fuzz::storage_recovery(data));
