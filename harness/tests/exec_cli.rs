//! `gauntlet run --system exec` on the example service that embeds the library
//! (`examples/register_service.rs`): valid under every fault it takes, invalid with a bug of
//! the library's catalogue planted, nothing left running; bad templates refused by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{first_invalid, gauntlet, processes_mentioning, text};

/// The example's binary, beside this test's (cargo builds examples with the tests); built here
/// when only this test was built.
fn example() -> PathBuf {
    let profile_dir =
        std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_owned();
    let binary = profile_dir.join("examples").join("register_service");
    if !binary.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "harness", "--example", "register_service"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let target_dir = profile_dir.parent().unwrap();
        let status = build.env("CARGO_TARGET_DIR", target_dir).status().unwrap();
        assert!(status.success(), "building the example failed");
    }
    binary
}

fn template(extra: &str) -> String {
    format!(
        "'{}' --id {{id}} --listen {{listen}} --client {{client}} --data-dir {{data_dir}} \
         --peers {{peers}} --peer-clients {{peer_clients}} --tick-ms {{tick_ms}} {extra}",
        example().display()
    )
}

fn exec_run(results: &Path, seed: &str, exec: &str) -> Output {
    gauntlet()
        .args(["run", "--system", "exec", "--exec-links", "frames", "--exec", exec])
        .args(["--nodes", "3", "--time-limit", "8", "--nemesis-interval", "1", "--quiet"])
        .args(["--seed", seed, "--results"])
        .arg(results)
        .output()
        .unwrap()
}

#[test]
fn the_example_service_is_valid_under_every_fault_it_takes() {
    let results = tempfile::tempdir().unwrap();
    let out = exec_run(results.path(), "8", &template(""));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("not available: raft-safety"), "{stdout}");
    let run = results.path().join("latest");
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(verdict["system"], "exec");
    // The leader was found through the client protocol, and faults reached the links.
    assert!(verdict["stats"]["leaders_elected"].as_u64().unwrap() >= 1, "{verdict}");
    assert!(verdict["stats"]["operations"]["ok"].as_u64().unwrap() > 0);
    // Every node kept its log in its own directory, and none is left running.
    assert!(run.join("nodes/n1").read_dir().unwrap().count() > 1);
    let dir = results.path().to_string_lossy().into_owned();
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
}

#[test]
fn a_bug_planted_in_the_library_makes_the_example_invalid() {
    let results = tempfile::tempdir().unwrap();
    let exec = template("--bug apply-uncommitted");
    // Whether a run's faults make the early applies visible is drawn: a few seeds.
    let seeds = ["1", "2", "3", "4", "5"];
    let stdout =
        first_invalid(&seeds, "apply-uncommitted", |seed| exec_run(results.path(), seed, &exec));
    assert!(stdout.contains("linearizability: invalid"), "{stdout}");
}

#[test]
fn exec_options_that_cannot_work_are_refused_by_name() {
    let good = template("");
    for (args, named) in [
        (vec!["--system", "exec"], "needs --exec"),
        (vec!["--exec", &good], "are for --system exec"),
        (vec!["--system", "exec", "--exec", "true {listen} {client} {peers} {port}"], "{port}"),
        (vec!["--system", "exec", "--exec", &good, "--nemesis", "disk-error"], "does not support"),
        (vec!["--system", "exec", "--exec", "/nonexistent {listen} {client} {peers}"], "not found"),
    ] {
        let out = gauntlet().arg("run").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}
