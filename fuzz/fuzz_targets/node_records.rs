#![no_main]
//! See `gauntlet_fuzz::node_records`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_fuzz::node_records(data));
