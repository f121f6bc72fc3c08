//! Writes the seed inputs of every target into `corpus/<target>/seed-<name>` (run from `fuzz/`:
//! `cargo run --example make_corpus`). The fuzzer adds what it finds beside them.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let testdata = root.join("../testdata");
    let targets = [
        ("peer_frames", gauntlet_fuzz::seeds::peer_frames()),
        ("peer_handshake", gauntlet_fuzz::seeds::peer_handshake()),
        ("storage_recovery", gauntlet_fuzz::seeds::storage_recovery()),
        ("client_requests", gauntlet_fuzz::seeds::client_requests()),
        ("histories", gauntlet_fuzz::seeds::histories(&testdata)),
        ("node_records", gauntlet_fuzz::seeds::node_records()),
    ];
    for (target, seeds) in targets {
        let dir = root.join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("a corpus directory");
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), &bytes).expect("a seed file");
            println!("{target}/seed-{name}: {} bytes", bytes.len());
        }
    }
}
