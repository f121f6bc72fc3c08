//! Reads without the log as a user runs them: under the `clock` fault (a leader with a slow
//! clock, cut off from its peers), a node that answers ReadIndex without its heartbeat round is
//! caught, and the correct node stays valid; options that do not fit are refused by name.

use std::path::Path;
use std::process::Output;

mod common;
use common::{first_invalid, gauntlet, text};

fn clock_run(results: &Path, seed: &str, extra: &[&str]) -> Output {
    gauntlet()
        .args(["run", "--nodes", "3", "--time-limit", "10", "--quiet", "--nemesis", "clock"])
        .args(["--nemesis-interval", "2", "--seed", seed])
        .args(extra)
        .arg("--results")
        .arg(results)
        .output()
        .unwrap()
}

#[test]
fn a_read_index_without_its_round_is_caught_under_a_slow_clock() {
    let results = tempfile::tempdir().unwrap();
    let stdout = first_invalid(&["1", "2", "3"], "unconfirmed reads", |seed| {
        clock_run(results.path(), seed, &["--bug", "read-index-without-quorum"])
    });
    assert!(stdout.contains("linearizability: invalid"), "{stdout}");
}

#[test]
fn read_index_stays_valid_under_a_slow_clock_and_the_fault_is_recorded() {
    let results = tempfile::tempdir().unwrap();
    let out = clock_run(results.path(), "1", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    let run = results.path().join("latest");
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let clock = history.lines().find(|l| l.contains("\"start-clock\"")).expect(&history);
    let event: serde_json::Value = serde_json::from_str(clock).unwrap();
    let slower = event["value"]["slower"].as_u64().unwrap();
    assert!((4..=10).contains(&slower), "{event}");
    assert_eq!(event["value"]["cut"].as_array().unwrap().len(), 4, "cut off both ways: {event}");
    assert!(history.contains("\"stop-clock\""), "the clock is put right");
    // The node itself says its ticks were stretched.
    let node = event["value"]["node"].as_u64().unwrap();
    let log = std::fs::read_to_string(run.join(format!("nodes/n{node}/node.log"))).unwrap();
    assert!(log.contains("clock fault"), "{log}");
}

#[test]
fn read_options_that_do_not_fit_are_refused_by_name() {
    for (args, named) in [
        (&["--system", "etcd", "--reads", "lease"][..], "--reads is for --system gauntlet"),
        (&["--system", "etcd", "--nemesis", "clock"], "does not support clock"),
        (&["--reads", "stale"], "stale"),
    ] {
        let out = gauntlet().arg("run").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}
