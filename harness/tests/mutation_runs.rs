//! The test of the mutation score's service phase (`scripts/mutants service`): two short
//! `gauntlet run`s of a 5-node cluster under every fault, with resending clients and the depose
//! fault, must end valid. Ignored in the ordinary suite (it takes about a minute); a mutant of
//! the runtime or the node service that either run finds invalid, or that breaks a run, is
//! killed.

use std::process::Command;

#[test]
#[ignore = "the mutation score's test: scripts/mutants service"]
fn two_short_runs_stay_valid() {
    let results = tempfile::tempdir().unwrap();
    for seed in ["11", "12"] {
        let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args(["run", "--time-limit", "15", "--quiet", "--seed", seed, "--results"])
            .arg(results.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "seed {seed}:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("verdict: valid"), "seed {seed}:\n{text}");
    }
}
