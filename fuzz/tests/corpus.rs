//! Every stored input of every target (`corpus/` and `regressions/`) replayed through the
//! target's function on stable `cargo test`, without libFuzzer: a defect once found stays
//! found, and a change that breaks a target's property on a known input fails here.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
        for entry in dir {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            eprintln!("{}", path.display());
            run(&input);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no stored inputs for {target}");
}

#[test]
fn peer_frames() {
    replay("peer_frames", gauntlet_fuzz::peer_frames);
}

#[test]
fn peer_handshake() {
    replay("peer_handshake", gauntlet_fuzz::peer_handshake);
}

#[test]
fn storage_recovery() {
    replay("storage_recovery", gauntlet_fuzz::storage_recovery);
}

#[test]
fn client_requests() {
    replay("client_requests", gauntlet_fuzz::client_requests);
}

#[test]
fn histories() {
    replay("histories", gauntlet_fuzz::histories);
}

#[test]
fn node_records() {
    replay("node_records", gauntlet_fuzz::node_records);
}
