//! `gauntlet run --system etcd` as a user runs it: real etcd members behind the byte-stream
//! links, valid under faults, caught when its reads are made serializable, nothing left
//! running; options that do not fit etcd are refused by name.
//!
//! etcd is required (Debian's `etcd-server` package; `.ci/run` installs it). Set `ETCD` to use
//! another binary.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{first_invalid, gauntlet, processes_mentioning, text};

fn etcd() -> PathBuf {
    let name = std::env::var_os("ETCD").unwrap_or_else(|| "etcd".into());
    let found = harness::system::find_program(&name.to_string_lossy());
    found.unwrap_or_else(|| {
        panic!(
            "etcd is required: install Debian's etcd-server package (`apt-get install -y \
             etcd-server`; .ci/run does it) or set ETCD"
        )
    })
}

fn etcd_run(results: &Path, seed: &str, extra: &[&str]) -> Output {
    gauntlet()
        .args(["run", "--system", "etcd", "--nodes", "3", "--quiet", "--seed", seed])
        .arg("--etcd-binary")
        .arg(etcd())
        .args(extra)
        .arg("--results")
        .arg(results)
        .output()
        .unwrap()
}

#[test]
fn an_etcd_run_under_faults_is_valid_and_leaves_nothing_running() {
    let results = tempfile::tempdir().unwrap();
    let faults = ["--nemesis", "partition,kill,pause,net", "--nemesis-interval", "1"];
    // Seed 1's schedule starts with a partition.
    let out = etcd_run(results.path(), "1", &[&["--time-limit", "8"][..], &faults].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    // What etcd cannot feed is said to be unavailable, never valid.
    assert!(stdout.contains("not available: raft-safety"), "{stdout}");
    assert!(!stdout.contains("state-machine-safety"), "{stdout}");

    let run = results.path().join("latest");
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(verdict["system"], "etcd");
    assert_eq!(verdict["safety"], serde_json::json!([]));
    assert!(verdict["stats"]["operations"]["ok"].as_u64().unwrap() > 0);
    assert!(verdict["stats"]["leaders_elected"].as_u64().unwrap() >= 1, "{verdict}");
    // The partitions reached etcd's peer traffic: connections were cut at the links.
    assert!(verdict["stats"]["faults"]["partition"].as_u64().unwrap() > 0, "{verdict}");
    let cut = verdict["stats"]["proxy_messages"]["connections_cut"].as_u64().unwrap();
    assert!(cut > 0, "{verdict}");
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert!(test["replay"].as_str().unwrap().contains("--system etcd"), "{test}");
    // The members ran in the run's directory, and none is left.
    assert!(run.join("nodes/n1/data/member").is_dir());
    let dir = results.path().to_string_lossy().into_owned();
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
}

#[test]
fn serializable_reads_under_partitions_are_caught() {
    let results = tempfile::tempdir().unwrap();
    // Two partitions of 4 s each: long enough for the majority to elect a leader and commit
    // writes that an isolated member's local reads do not see. A run catches it most of the
    // time (whether a partition isolates a member, and whose clients read there, is drawn).
    let args = [
        "--etcd-serializable-reads",
        "--nemesis",
        "partition",
        "--nemesis-interval",
        "4",
        "--time-limit",
        "15",
    ];
    let seeds = ["1", "2", "3", "4", "5"];
    let stdout = first_invalid(&seeds, "stale reads", |seed| etcd_run(results.path(), seed, &args));
    assert!(stdout.contains("linearizability: invalid"), "{stdout}");
}

#[test]
fn options_that_do_not_fit_etcd_are_refused_by_name() {
    for (args, named) in [
        (&["--nemesis", "crash,kill"][..], "does not support crash"),
        (&["--bug", "commit-old-term"], "--bug"),
        (&["--client-retries", "2"], "no client sessions"),
        (&["--etcd-binary", "/nonexistent/etcd"], "/nonexistent/etcd: not found"),
    ] {
        let out = gauntlet().args(["run", "--system", "etcd"]).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    let out = gauntlet().args(["run", "--etcd-serializable-reads"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is for --system etcd"));
}
