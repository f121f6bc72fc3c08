#![no_main]
//! See `gauntlet_fuzz::peer_handshake`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_fuzz::peer_handshake(data));
