//! A campaign fanned out over machines: each shard learns its slice from the batch engine's
//! index variables, and `gauntlet report` on the directory of their results builds one index.

use std::path::Path;
use std::process::{Command, Output};

fn campaign_shard(results: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gauntlet"));
    cmd.args(["campaign", "--runs", "2", "--time-limit", "2", "--nodes", "3", "--seed", "77"])
        .args(["--nemesis", "none", "--keep", "all", "--quiet", "--results"])
        .arg(results);
    for var in ["GAUNTLET_SHARD", "JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CIRCLE_NODE_INDEX"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

fn report(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet")).arg("report").arg(dir).output().unwrap()
}

#[test]
fn shards_from_index_variables_make_one_campaign_index() {
    let results = tempfile::tempdir().unwrap();
    // A Kubernetes Indexed Job's first pod, and a GitLab job's second.
    let first = campaign_shard(
        results.path(),
        &[("JOB_COMPLETION_INDEX", "0"), ("GAUNTLET_SHARD_COUNT", "2")],
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("shard 1/2 (from JOB_COMPLETION_INDEX/GAUNTLET_SHARD_COUNT)"),
        "{stderr}"
    );

    let out = report(results.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 of 2 shards, missing 2/2"), "{stdout}");

    let second = campaign_shard(results.path(), &[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "2")]);
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
    let out = report(results.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("(2 runs; campaign s77: 2 of 2 shards)"), "{stdout}");
    let index = std::fs::read_to_string(results.path().join("index.html")).unwrap();
    let links: std::collections::BTreeSet<&str> = index
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|link| link.ends_with("report.html"))
        .collect();
    assert_eq!(links.len(), 2, "both runs are linked: {links:?}");
    assert!(links.iter().all(|l| results.path().join(l).is_file()), "{links:?}");
}

#[test]
fn a_wrong_shard_variable_is_named() {
    let results = tempfile::tempdir().unwrap();
    let out = campaign_shard(results.path(), &[("JOB_COMPLETION_INDEX", "3")]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GAUNTLET_SHARD_COUNT is not"), "{stderr}");
}
