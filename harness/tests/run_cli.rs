//! `gauntlet run` as a user runs it: a short torture run ends with a verdict and leaves its
//! files; an interrupted run leaves no node process behind; bad options are refused.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{gauntlet, processes_mentioning};

/// A short 3-node run with faults every `interval` seconds, stored under `results`.
fn short_run(results: &Path, seed: &str, interval: &str) -> std::process::Output {
    gauntlet()
        .args(["run", "--nodes", "3", "--time-limit", "6", "--quiet"])
        .args(["--nemesis-interval", interval, "--seed", seed, "--results"])
        .arg(results)
        .output()
        .unwrap()
}

#[test]
fn a_short_run_with_faults_ends_valid_and_stores_its_files() {
    let results = tempfile::tempdir().unwrap();
    let out = short_run(results.path(), "11", "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("seed: 11\n"), "the seed comes first: {stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict: valid"));
    // It ends by saying where the report is, and the report is there.
    let report = stdout.lines().last().and_then(|l| l.strip_prefix("report: ")).expect(&stdout);
    assert!(report.ends_with("report.html") && std::path::Path::new(report).is_file(), "{report}");

    let run = results.path().join("latest");
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(verdict["verdict"], "valid");
    assert_eq!(verdict["seed"], 11);
    assert_eq!(verdict["liveness"]["valid"], true);
    assert!(verdict["stats"]["operations"]["ok"].as_u64().unwrap() > 0);
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(history.contains("\"process\":\"nemesis\""), "faults are recorded in the history");
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert!(test["replay"].as_str().unwrap().contains("--seed 11"));
    for n in 1..=3 {
        let node = run.join(format!("nodes/n{n}"));
        for file in ["applied.jsonl", "events.jsonl", "node.log"] {
            assert!(node.join(file).exists(), "{} is missing", node.join(file).display());
        }
    }
    assert!(processes_mentioning(&results.path().display().to_string()).is_empty());
}

#[test]
fn sigint_in_the_middle_of_a_run_leaves_no_node_behind() {
    let results = tempfile::tempdir().unwrap();
    let mut child = gauntlet()
        .args(["run", "--nodes", "3", "--time-limit", "120", "--quiet", "--seed", "5"])
        .arg("--results")
        .arg(results.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let needle = results.path().display().to_string();
    // Wait until the nodes run (their event logs appear), then interrupt.
    let started = Instant::now();
    let events = |n: u32| results.path().join(format!("latest/nodes/n{n}/events.jsonl"));
    // Some node processes must be up; not necessarily all three, as the nemesis may have
    // killed one already.
    let nodes = || processes_mentioning(&needle).iter().filter(|c| c.contains(" node ")).count();
    while !(1..=3).all(|n| events(n).exists()) || nodes() == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the nodes never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        processes_mentioning(&needle).is_empty(),
        "left behind: {:?}",
        processes_mentioning(&needle)
    );
    assert!(Path::new(&results.path().join("latest/history.jsonl")).exists());
}

#[test]
fn bad_options_are_refused_by_name() {
    let out = gauntlet().args(["run", "--workload", "queue"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("queue"));
    let out = gauntlet().args(["run", "--bug", "no-such-bug"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-bug"));
    let out = gauntlet().args(["run", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "a usage error is bad input, not the 2 of `unknown`");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = gauntlet().args(["run", "--nemesis", "kill,meteor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("meteor"));
}

/// The faults of a run's history, as (what, target or shape or loss rate), in order.
fn fault_schedule(run: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["process"] == "nemesis")
        // The faults on clocks of their own fire every second or two: how many fall inside a
        // 6 s window depends on where its edge falls, not on the seed.
        .filter(|e| {
            !["depose", "restart-storm"].iter().any(|c| e["f"].as_str().unwrap().contains(c))
        })
        .map(|e| {
            let v = &e["value"];
            // The drawn target ("leader", "majority", a partition's shape), not the node ids it
            // resolved to, which depend on who led at that instant.
            let what = [&v["target"], &v["kind"], &v["loss"]]
                .iter()
                .find(|x| !x.is_null())
                .map(|x| x.to_string())
                .unwrap_or_default();
            (e["f"].as_str().unwrap().to_string(), what)
        })
        .collect()
}

#[test]
fn the_same_seed_replays_the_same_fault_schedule() {
    let run = |dir: &Path| {
        let out = short_run(dir, "4242", "0.7");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        fault_schedule(&dir.join("latest"))
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = run(a.path());
    assert!(first.len() >= 4, "a 6 s run with a 0.7 s interval injects faults: {first:?}");
    assert_eq!(first, run(b.path()));
}

/// A 14 s run of three nodes with `args` that must end valid, with each of `events` in its
/// history, and leave no process behind; returns its verdict.
fn valid_run_with_events(seed: &str, args: &[&str], events: &[&str]) -> serde_json::Value {
    let results = tempfile::tempdir().unwrap();
    let out = gauntlet()
        .args(["run", "--nodes", "3", "--time-limit", "14", "--quiet", "--seed", seed])
        .args(args)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let run = results.path().join("latest");
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    for event in events {
        assert!(history.contains(&format!("\"f\":\"{event}\"")), "no {event} in the history");
    }
    assert!(processes_mentioning(&results.path().display().to_string()).is_empty());
    serde_json::from_str(&std::fs::read_to_string(run.join("verdict.json")).unwrap()).unwrap()
}

#[test]
fn leaders_are_deposed_nodes_restart_in_storms_and_clients_resend() {
    let verdict = valid_run_with_events(
        "21",
        &["--nemesis", "depose,restart-storm", "--rate", "300"],
        &["start-depose", "stop-depose", "start-restart-storm", "restart-storm-kill"],
    );
    let stats = &verdict["stats"];
    assert!(stats["leaders_deposed"].as_u64().unwrap() >= 3, "{stats}");
    assert!(stats["faults"]["restart-storm"].as_u64().unwrap() >= 3, "{stats}");
    // Deposed leaders leave requests unanswered past the resending workers' deadline.
    assert!(stats["client_resends"]["sent"].as_u64().unwrap() > 0, "{stats}");
}

#[test]
fn followers_come_back_behind_the_leaders_snapshot_with_late_copies_of_their_messages() {
    let verdict = valid_run_with_events(
        "23",
        &["--nemesis", "catch-up", "--rate", "400", "--snapshot-entries", "50"],
        &["start-catch-up", "catch-up-start-node", "stop-catch-up"],
    );
    let stats = &verdict["stats"];
    assert!(stats["faults"]["catch-up"].as_u64().unwrap() >= 1, "{stats}");
    // The follower came back behind the leader's compacted log: a snapshot brought it up.
    let restored: u64 = stats["snapshots_restored"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(restored >= 1, "{stats}");
    let duplicated: u64 = stats["proxy_messages"]["duplicated"].as_u64().unwrap_or(0);
    assert!(duplicated > 0, "no late copies: {stats}");
}
