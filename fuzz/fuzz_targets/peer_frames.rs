#![no_main]
//! See `gauntlet_fuzz::peer_frames`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_fuzz::peer_frames(data));
