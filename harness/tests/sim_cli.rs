//! `gauntlet sim` as a user runs it: a clean range of seeds passes, a bug of the catalogue is
//! found, shrunk and printed as a replay command that fails the same way, schedules replay from
//! the command line and from JSON files, and bad options are refused.

use std::process::{Command, Output};

fn gauntlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn explain(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(out), String::from_utf8_lossy(&out.stderr))
}

/// The text after `prefix` on the first line that has it (after leading spaces).
fn line_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.trim_start().strip_prefix(prefix))
}

/// The arguments of a printed `gauntlet sim ... --steps "<schedule>"` command.
fn replay_args(command: &str) -> Vec<String> {
    let rest = command.strip_prefix("gauntlet ").expect("a gauntlet command");
    let (head, steps) = rest.split_once(" --steps \"").expect("the schedule in --steps");
    let steps = steps.strip_suffix('"').expect("the schedule in quotes");
    let mut args: Vec<String> = head.split_whitespace().map(str::to_string).collect();
    args.push("--steps".to_string());
    args.push(steps.to_string());
    args
}

#[test]
fn a_correct_core_passes_two_hundred_seeds() {
    let out = gauntlet(&["sim", "--seeds", "0..200", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = stdout(&out);
    assert!(text.contains("seeds run: 200 in"), "{text}");
    assert!(text.contains("violations: none"), "{text}");
}

#[test]
fn a_bug_is_found_shrunk_and_replayed_the_same_way() {
    let out = gauntlet(&["sim", "--seeds", "0..1000", "--bug", "forget-vote", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let text = stdout(&out);
    let first = line_after(&text, "violation (").expect("the first failure's kind");
    let kind = first.split_once(')').unwrap().0.to_string();
    assert_eq!(kind, "durability before sending", "{text}");
    assert!(text.contains("shrunk from"), "{text}");
    let report = text.split("report of the replay:\n").nth(1).expect("the shrunk run's report");
    let replayed_headline = report.lines().next().unwrap().trim().to_string();
    let command = line_after(&text, "replay: ").expect("a replay command");
    assert!(command.contains("--bug forget-vote"), "{command}");

    let args = replay_args(command);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = gauntlet(&args);
    assert_eq!(again.status.code(), Some(1), "{}", explain(&again));
    let text = stdout(&again);
    let line = line_after(&text, "violation (").expect("the replay fails");
    let (kind2, headline) = line.split_once("): ").unwrap();
    assert_eq!(kind2, kind);
    assert_eq!(headline, replayed_headline, "the replay fails exactly as reported");
}

#[test]
fn a_schedule_replays_from_json_and_a_trace_shows_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = gauntlet(&["sim", "--seed", "3", "--print-schedule"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let file = dir.path().join("schedule.json");
    std::fs::write(&file, &out.stdout).unwrap();

    let own = gauntlet(&["sim", "--seed", "3"]);
    let from_file = gauntlet(&["sim", "--seed", "3", "--schedule", file.to_str().unwrap()]);
    assert_eq!(own.status.code(), Some(0), "{}", explain(&own));
    assert_eq!(from_file.status.code(), Some(0), "{}", explain(&from_file));
    let summary = |o: &Output| line_after(&stdout(o), "no violation: ").map(str::to_string);
    assert!(summary(&own).is_some());
    assert_eq!(summary(&own), summary(&from_file), "the same schedule, the same run");

    let traced = gauntlet(&["sim", "--seed", "3", "--trace"]);
    assert_eq!(traced.status.code(), Some(0), "{}", explain(&traced));
    let text = stdout(&traced);
    assert!(text.contains("deliver  n") && text.contains("-- step: "), "{text}");
    assert_eq!(summary(&traced), summary(&own), "tracing does not change the run");
}

#[test]
fn bad_options_are_refused_by_name() {
    for (args, needle) in [
        (vec!["sim", "--seeds", "9..3"], "9..3"),
        (vec!["sim", "--seeds", "many"], "many"),
        (vec!["sim", "--bug", "no-such-bug"], "no-such-bug"),
        (vec!["sim", "--trace"], "--trace"),
        (vec!["sim", "--seed", "1", "--steps", "nodes=3 end=10 5:explode"], "explode"),
        (vec!["sim", "--seed", "1", "--schedule", "/nonexistent/s.json"], "/nonexistent/s.json"),
        (vec!["sim", "--seeds", "0..10", "--jobs", "0"], "--jobs"),
        // A bug of FileStorage, which the simulator does not run.
        (
            vec!["sim", "--seeds", "0..10", "--bug", "skip-log-sync"],
            "gauntlet run --bug skip-log-sync",
        ),
    ] {
        let out = gauntlet(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", explain(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_range_reports_protocol_coverage_and_hunts_rare_decisions() {
    let out = gauntlet(&["sim", "--seeds", "0..200", "--hunt", "60", "--coverage", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = stdout(&out);
    assert!(text.contains("then 60 mutants hunting rare decisions"), "{text}");
    assert!(text.contains("260 runs in all"), "{text}");
    let taken = line_after(&text, "protocol coverage: ").expect("a coverage line");
    let (taken, all) = taken.split_once(" of ").unwrap();
    let all: usize = all.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(all, raft::Decision::ALL.len());
    assert!(taken.parse::<usize>().unwrap() >= all - 3, "{text}");
    assert!(line_after(&text, "rarest (runs): ").is_some(), "{text}");
    assert!(text.contains("seeds -> mutants:"), "{text}");
    // The table: a row for every decision, a column for the mutants.
    for d in raft::Decision::ALL {
        assert!(text.lines().any(|l| l.starts_with(d.name())), "no row for {d}: {text}");
    }
    assert!(text.lines().any(|l| l.starts_with("decision") && l.contains("mutants")), "{text}");
    let refused = gauntlet(&["sim", "--seed", "3", "--hunt", "5"]);
    assert_eq!(refused.status.code(), Some(3), "{}", explain(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--hunt is for --seeds"));
}
