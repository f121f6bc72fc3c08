//! `gauntlet check` as a user runs it: verdicts on the bundled Porcupine data, exit
//! codes, explanations, JSON output, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/porcupine")).join(rel)
}

fn gauntlet_check(args: &[&str], paths: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("check")
        .args(args)
        .args(paths)
        .output()
        .expect("gauntlet runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch file for one test.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check_cli");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("scratch file");
    path
}

const ETCD_VALID: [u32; 23] =
    [2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102];

#[test]
fn all_etcd_histories_in_one_call() {
    let numbers: Vec<u32> = (0..=102).filter(|&n| n != 95).collect();
    let paths: Vec<PathBuf> =
        numbers.iter().map(|n| data(&format!("jepsen/etcd_{n:03}.log"))).collect();
    let out = gauntlet_check(&["--model", "cas-register"], &paths);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().take(paths.len()).collect();
    for ((n, path), line) in numbers.iter().zip(&paths).zip(&lines) {
        let expected = if ETCD_VALID.contains(n) { "valid" } else { "invalid" };
        let prefix = format!("{}: {expected} (", path.display());
        assert!(line.starts_with(&prefix), "etcd_{n:03}: {line}");
    }
    assert_eq!(lines.iter().filter(|l| l.contains(": valid (")).count(), 23);
    assert_eq!(lines.iter().filter(|l| l.contains(": invalid (")).count(), 79);
    // then one explanation per violation
    assert_eq!(text.matches("Longest linearizable prefix found").count(), 79);
}

#[test]
fn kv_histories() {
    let mut all = Vec::new();
    for clients in ["c01", "c10", "c50"] {
        for (suffix, expected, code) in [("ok", "valid", 0), ("bad", "invalid", 1)] {
            let path = data(&format!("kv/{clients}-{suffix}.txt"));
            let out = gauntlet_check(&["--model", "kv"], std::slice::from_ref(&path));
            assert_eq!(out.status.code(), Some(code), "{}{}", stdout(&out), stderr(&out));
            let first = stdout(&out).lines().next().unwrap_or_default().to_string();
            assert!(first.starts_with(&format!("{}: {expected} (", path.display())), "{first}");
            all.push(path);
        }
    }
    // the model is chosen automatically for EDN with get, put and append
    let out = gauntlet_check(&[], &all);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).lines().filter(|l| l.contains(": valid (")).count(), 3);
    assert_eq!(stdout(&out).lines().filter(|l| l.contains(": invalid (key ")).count(), 3);
}

#[test]
fn exit_codes_for_valid_and_unknown() {
    let ok = data("kv/c10-ok.txt");
    let out = gauntlet_check(&[], std::slice::from_ref(&ok));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // a time limit too short for anything: unknown, exit 2
    let out = gauntlet_check(&["--time-limit", "0.000000001"], std::slice::from_ref(&ok));
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(": unknown (time limit"), "{}", stdout(&out));
    // invalid wins over unknown
    let bad = data("kv/c10-bad.txt");
    let out = gauntlet_check(&["--time-limit", "0.000000001"], &[ok, bad.clone()]);
    assert!(matches!(out.status.code(), Some(1) | Some(2)));
    let out = gauntlet_check(&[], &[bad]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn json_output() {
    let out =
        gauntlet_check(&["--json"], &[data("jepsen/etcd_000.log"), data("jepsen/etcd_002.log")]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["model"], "cas-register");
    assert_eq!(lines[0]["result"]["verdict"], "invalid");
    assert!(lines[0]["result"]["violation"]["prefix"].is_array());
    assert!(lines[0]["result"]["violation"]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(lines[1]["result"]["verdict"], "valid");
}

#[test]
fn a_run_directory_and_the_projects_format() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check_cli_run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("history.jsonl"),
        r#"{"index":0,"time":10,"process":0,"type":"invoke","f":"write","key":"k1","value":4}
{"index":1,"time":20,"process":0,"type":"ok","f":"write","key":"k1","value":4}
{"index":2,"time":30,"process":1,"type":"invoke","f":"cas","key":"k1","value":[4,1]}
{"index":3,"time":90,"process":1,"type":"info","f":"cas","key":"k1","value":[4,1],"error":"timeout"}
{"index":4,"time":95,"process":"nemesis","type":"info","f":"start-partition","value":{"kind":"majority"}}
{"index":5,"time":100,"process":2,"type":"invoke","f":"read","key":"k1","value":null}
{"index":6,"time":110,"process":2,"type":"ok","f":"read","key":"k1","value":1}
"#,
    )
    .unwrap();
    let out = gauntlet_check(&[], std::slice::from_ref(&dir));
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with(&format!("{}: valid (", dir.display())), "{}", stdout(&out));
}

/// Bad input: exit 3 and a message naming the file and the line.
fn assert_bad_input(name: &str, text: &str, line: usize, needle: &str) {
    let path = scratch(name, text);
    let out = gauntlet_check(&[], std::slice::from_ref(&path));
    assert_eq!(out.status.code(), Some(3), "{name}: {}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    let at = if line == 0 {
        format!("{}: ", path.display())
    } else {
        format!("{}:{line}: ", path.display())
    };
    assert!(err.contains(&at), "{name}: expected {at:?} in {err}");
    assert!(err.contains(needle), "{name}: expected {needle:?} in {err}");
}

const WRITE: &str = r#"{"index":0,"process":0,"type":"invoke","f":"write","value":1}
{"index":1,"process":0,"type":"ok","f":"write","value":1}
"#;

#[test]
fn bad_input_exits_3_naming_the_line() {
    assert_bad_input(
        // written whole (it ends in a newline), so not the torn tail of a killed writer
        "truncated.jsonl",
        &format!("{WRITE}{}\n", r#"{"index":2,"process":0,"type":"invoke","f":"re"#),
        3,
        "EOF while parsing",
    );
    assert_bad_input(
        "unknown-type.jsonl",
        &format!("{WRITE}{}", r#"{"index":2,"process":0,"type":"done","f":"read","value":null}"#),
        3,
        "unknown variant `done`",
    );
    assert_bad_input(
        "orphan.jsonl",
        &format!("{WRITE}{}", r#"{"index":2,"process":4,"type":"ok","f":"read","value":1}"#),
        3,
        "without an invocation",
    );
    assert_bad_input("empty.jsonl", "", 0, "empty history");
    assert_bad_input(
        "bad-value.jsonl",
        &format!(
            "{WRITE}{}\n{}",
            r#"{"index":2,"process":0,"type":"invoke","f":"cas","value":"x"}"#,
            r#"{"index":3,"process":0,"type":"ok","f":"cas","value":"x"}"#
        ),
        3,
        "bad value for cas",
    );
    assert_bad_input(
        "truncated.log",
        "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\nINFO  jepsen.util - 2\t:ok\t:cas",
        2,
        "truncated line",
    );
    assert_bad_input(
        "truncated.edn",
        "{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"1\", :value \"ab\n{:process 1, :type :invoke, :f :get, :key \"1\", :value nil}",
        2,
        "inside a string",
    );
    // a file that does not exist
    let missing = PathBuf::from("/nonexistent/history.jsonl");
    let out = gauntlet_check(&[], std::slice::from_ref(&missing));
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("/nonexistent/history.jsonl"), "{}", stderr(&out));
    // good files are still checked and reported next to a bad one
    let out = gauntlet_check(&[], &[data("kv/c01-ok.txt"), missing]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).contains("c01-ok.txt: valid ("), "{}", stdout(&out));
}

#[test]
fn a_device_is_refused_and_a_torn_last_line_is_a_warning() {
    let out = gauntlet_check(&[], &[PathBuf::from("/dev/zero")]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/zero: a device"), "{}", stderr(&out));

    // what a run killed in the middle of a line leaves
    let torn = scratch(
        "torn.jsonl",
        "{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
         {\"index\":1,\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n\
         {\"index\":2,\"process\":0,\"type\":\"invo",
    );
    let out = gauntlet_check(&[], std::slice::from_ref(&torn));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid"), "{}", stdout(&out));
    assert!(stderr(&out).contains("line 3, the last, is cut short"), "{}", stderr(&out));
}

#[test]
fn a_search_past_the_memory_limit_is_unknown_and_bad_limits_are_refused() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("explode.edn");
    let synth = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["synth", "--ops", "3000", "--keys", "1", "--clients", "64"])
        .args(["--info-per-mille", "300", "--violation", "--seed", "3", "-o"])
        .arg(&history)
        .output()
        .unwrap();
    assert_eq!(synth.status.code(), Some(0), "{}", stderr(&synth));
    assert!(stderr(&synth).contains("seed: 3"), "the seed is printed: {}", stderr(&synth));
    let out = gauntlet_check(&["--memory-limit", "8"], std::slice::from_ref(&history));
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("unknown (memory limit of 8 MiB reached"), "{}", stdout(&out));
    let out = gauntlet_check(&["--memory-limit", "0"], std::slice::from_ref(&history));
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("--memory-limit"), "{}", stderr(&out));
}

#[test]
fn export_edn_writes_a_history_that_checks_the_same() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check_cli");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exported = out_dir.join("etcd_002.edn");
    let source = data("jepsen/etcd_002.log");
    let out = gauntlet_check(
        &["--export-edn", exported.to_str().unwrap()],
        std::slice::from_ref(&source),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.starts_with("{:index 0, :type :invoke, :f :"), "{}", &text[..80]);
    let again = gauntlet_check(&["--model", "cas-register"], std::slice::from_ref(&exported));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    // one history at a time
    let two = gauntlet_check(&["--export-edn", "x.edn"], &[source.clone(), source]);
    assert_eq!(two.status.code(), Some(3));
    assert!(stderr(&two).contains("give one PATH"), "{}", stderr(&two));
}
