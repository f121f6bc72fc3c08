//! `gauntlet report` end to end: small synthetic runs (a valid one, and one whose stale read
//! the real checker finds) are written to disk, reported, and rendered in headless Chromium,
//! which must run the page's script to its end and show every part. The pages stay in
//! `target/tmp/report-test/` and their screenshots in `target/tmp/report-screenshots/`.
//!
//! Chromium is required (Debian's `chromium` package; `.ci/run` installs it). Set `CHROMIUM`
//! to use another binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use checker::safety::{acknowledged_writes, check_safety, NodeRecord};
use checker::{check, CheckOptions, Format, History, Verdict};
use serde_json::{json, Value};
use workloads::CasRegister;

const MS: u64 = 1_000_000;
const STARTED_UNIX_MS: u64 = 1_795_000_000_000;
const WORKERS: u64 = 3;
const NODES: u64 = 3;

/// Builds a history of a small run: three workers, two keys, one operation every 40 ms
/// without overlap (so the register's values are known), a kill of n1 from 3 s to 5 s during
/// which writes are indeterminate and reads fail, a partition isolating n3 from 6 s to 7 s,
/// then `heal`. With `stale_read`, the last read returns a value overwritten before it began.
struct Builder {
    lines: Vec<Value>,
    process: [u64; WORKERS as usize],
    /// (process, per-process sequence number) of every acknowledged write, in order.
    writes: Vec<(u64, u64)>,
    seq: BTreeMap<u64, u64>,
}

impl Builder {
    fn event(
        &mut self,
        t: u64,
        process: Value,
        kind: &str,
        f: &str,
        key: Option<&str>,
        value: Value,
    ) {
        let mut e = json!({"index": self.lines.len(), "time": t, "process": process, "type": kind, "f": f, "value": value});
        if let Some(k) = key {
            e["key"] = json!(k);
        }
        self.lines.push(e);
    }

    fn op(
        &mut self,
        t: u64,
        worker: usize,
        f: &str,
        key: &str,
        value: Value,
        end: (&str, Value, u64),
    ) {
        let p = self.process[worker];
        let s = self.seq.entry(p).or_insert(0);
        *s += 1;
        let s = *s;
        self.event(t, json!(p), "invoke", f, Some(key), value);
        let (kind, result, latency) = end;
        self.event(t + latency, json!(p), kind, f, Some(key), result);
        if kind == "info" {
            self.process[worker] += WORKERS;
        }
        if kind == "ok" && f == "write" {
            self.writes.push((p, s));
        }
    }

    fn nemesis(&mut self, t: u64, f: &str, value: Value) {
        self.event(t, json!("nemesis"), "info", f, None, value);
    }
}

fn history(stale_read: bool) -> (String, Vec<(u64, u64)>) {
    let mut b =
        Builder { lines: Vec::new(), process: [0, 1, 2], writes: Vec::new(), seq: BTreeMap::new() };
    let mut value = [0i64; 2];
    let mut written = [false; 2];
    let mut fault_started = [false; 3];
    for i in 0..240u64 {
        let t = 100 * MS + i * 40 * MS;
        if t >= 3_000 * MS && !fault_started[0] {
            fault_started[0] = true;
            b.nemesis(t - MS, "start-kill", json!({"nodes": [1], "target": "leader"}));
        }
        if t >= 5_000 * MS && !fault_started[1] {
            fault_started[1] = true;
            b.nemesis(t - MS, "stop-kill", json!({"nodes": [1]}));
        }
        if t >= 6_000 * MS && !fault_started[2] {
            fault_started[2] = true;
            b.nemesis(
                t - MS,
                "start-partition",
                json!({"kind": "one", "cut": [[3, 1], [1, 3], [3, 2], [2, 3]]}),
            );
        }
        if t == 7_100 * MS {
            b.nemesis(t - MS, "stop-partition", Value::Null);
        }
        let worker = (i % WORKERS) as usize;
        let k = (i / 3 % 2) as usize;
        let key = format!("k{k}");
        let down = (3_000 * MS..5_000 * MS).contains(&t);
        let latency = if down { 30 * MS } else { (2 + i % 7) * MS };
        if i % 2 == 0 {
            let v = (i % 5) as i64;
            if down {
                // Indeterminate, and in fact not applied.
                b.op(t, worker, "write", &key, json!(v), ("info", json!(v), latency));
            } else {
                value[k] = v;
                written[k] = true;
                b.op(t, worker, "write", &key, json!(v), ("ok", json!(v), latency));
            }
        } else if down {
            b.op(t, worker, "read", &key, Value::Null, ("fail", Value::Null, latency));
        } else {
            let seen = if written[k] { json!(value[k]) } else { Value::Null };
            b.op(t, worker, "read", &key, Value::Null, ("ok", seen, latency));
        }
    }
    let t = 100 * MS + 240 * 40 * MS;
    if stale_read {
        b.nemesis(t, "start-pause", json!({"nodes": [2], "target": "leader"}));
        b.op(t + 10 * MS, 0, "write", "k0", json!(7), ("ok", json!(7), 5 * MS));
        b.op(t + 20 * MS, 1, "write", "k0", json!(8), ("ok", json!(8), 5 * MS));
        b.nemesis(t + 200 * MS, "stop-pause", json!({"nodes": [2]}));
        // A deposed leader answers from its old state: 7, overwritten by 8 before the read.
        b.op(t + 210 * MS, 2, "read", "k0", Value::Null, ("ok", json!(7), 3 * MS));
    }
    b.nemesis(t + 300 * MS, "heal", Value::Null);
    let text: Vec<String> = b.lines.iter().map(Value::to_string).collect();
    (text.join("\n") + "\n", b.writes)
}

/// Writes a run directory like `gauntlet run` leaves it, checked by the real checkers.
fn write_run(dir: &Path, stale_read: bool) -> Verdict {
    std::fs::create_dir_all(dir).unwrap();
    let (text, writes) = history(stale_read);
    std::fs::write(dir.join("history.jsonl"), &text).unwrap();
    let test = json!({
        "seed": 42,
        "options": {"nodes": NODES, "workload": "cas-register", "keys": 2, "concurrency": WORKERS,
                    "nemesis": "kill,partition,pause", "bug": if stale_read { json!("stale-read") } else { Value::Null }},
        "replay": "gauntlet run --seed 42 --nodes 3 --keys 2 --concurrency 3",
        "started_unix_ms": STARTED_UNIX_MS,
    });
    std::fs::write(dir.join("test.json"), test.to_string()).unwrap();

    // The nodes: n1 leads term 1 until it is killed, restarts at 5 s; n2 leads term 2.
    let at = |ms: u64| STARTED_UNIX_MS + ms;
    let events: [Vec<Value>; 3] = [
        vec![
            json!({"time_ms": at(5), "node": 1, "event": "started", "term": 0, "last_index": 0}),
            json!({"time_ms": at(60), "node": 1, "event": "became-leader", "term": 1, "last_index": 1}),
            json!({"time_ms": at(5_000), "node": 1, "event": "restarted", "term": 1, "last_index": 40}),
        ],
        vec![
            json!({"time_ms": at(5), "node": 2, "event": "started", "term": 0, "last_index": 0}),
            json!({"time_ms": at(3_400), "node": 2, "event": "became-leader", "term": 2, "last_index": 40}),
        ],
        vec![json!({"time_ms": at(6), "node": 3, "event": "started", "term": 0, "last_index": 0})],
    ];
    let applied: Vec<Value> = writes
        .iter()
        .enumerate()
        .map(|(i, &(client, seq))| {
            json!({"index": i + 1, "term": 1 + u64::from(i >= 40), "digest": format!("{:016x}", i * 7919), "client": client, "seq": seq})
        })
        .collect();
    for (n, node_events) in events.iter().enumerate() {
        let node_dir = dir.join("nodes").join(format!("n{}", n + 1));
        std::fs::create_dir_all(&node_dir).unwrap();
        let lines = |v: &[Value]| v.iter().map(|e| e.to_string() + "\n").collect::<String>();
        std::fs::write(node_dir.join("events.jsonl"), lines(node_events)).unwrap();
        std::fs::write(node_dir.join("applied.jsonl"), lines(&applied)).unwrap();
        std::fs::write(node_dir.join("node.log"), "log\n").unwrap();
    }

    let history = History::parse_str("history.jsonl", &text, Format::Jsonl).unwrap();
    let lin = check(&CasRegister, &history, &CheckOptions::default()).unwrap();
    let records: Vec<NodeRecord> = (1..=NODES)
        .map(|n| NodeRecord::read_dir(n, &dir.join("nodes").join(format!("n{n}"))).unwrap())
        .collect();
    let safety = check_safety(&records, &acknowledged_writes(&history));
    assert!(safety.iter().all(|c| c.valid), "the synthetic nodes are consistent: {safety:?}");
    let verdict = lin.verdict;
    let failed: Vec<&str> =
        if verdict == Verdict::Invalid { vec!["linearizability"] } else { vec![] };
    let v = json!({
        "verdict": verdict,
        "seed": 42,
        "failed_checks": failed,
        "linearizability": lin,
        "safety": safety,
        "liveness": {"valid": true, "recovered_after_s": 0.004, "final_reads_ok": 2, "keys": 2},
        "node_crashes": [],
        "stats": {"operations": {"invoked": 240}},
    });
    std::fs::write(dir.join("verdict.json"), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    verdict
}

fn gauntlet(args: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet")).arg("report").args(args).output().unwrap()
}

fn chromium() -> PathBuf {
    let name = std::env::var_os("CHROMIUM").unwrap_or_else(|| "chromium".into());
    let found = Command::new(&name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "this test renders reports in headless Chromium, and `{}` cannot be run: install Debian's \
         chromium package (`apt-get install -y chromium`; .ci/run does it) or set CHROMIUM",
        name.to_string_lossy()
    );
    PathBuf::from(name)
}

/// Runs headless Chromium on `page` with `extra` flags and returns its standard output.
fn run_chromium(page: &Path, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    // Standard output goes to a file: a pipe nobody reads while waiting would fill up.
    let out_path = profile.path().join("stdout");
    let stdout = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A guard against a hung browser, not a measurement.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish rendering {} in 120 s", page.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed on {}: {status}", page.display());
    String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned()
}

fn dump_dom(page: &Path) -> String {
    let dom = run_chromium(page, &["--dump-dom".to_string()]);
    assert!(
        dom.contains(r#"data-ready="1""#),
        "the page's script did not run to its end in {}",
        page.display()
    );
    dom
}

fn screenshot(page: &Path, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    run_chromium(
        page,
        &[format!("--screenshot={}", png.display()), "--window-size=1400,2000".to_string()],
    );
    let bytes = std::fs::read(&png).unwrap_or_default();
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "no screenshot of {} in {}",
        page.display(),
        png.display()
    );
    png
}

#[test]
fn reports_of_a_valid_and_an_invalid_run_and_their_index_render_in_chromium() {
    // Kept after the test (with the screenshots) so that the pages can be opened.
    let campaign = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-test").join("campaign-test");
    let _ = std::fs::remove_dir_all(&campaign);
    let valid = campaign.join("run-valid");
    let invalid = campaign.join("run-stale-read");
    assert_eq!(write_run(&valid, false), Verdict::Valid);
    assert_eq!(write_run(&invalid, true), Verdict::Invalid);

    for dir in [&valid, &invalid] {
        let out = gauntlet(&[dir]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(dir.join("report.html").is_file());
    }

    let common = [
        r#"id="summary""#,
        r#"id="checks""#,
        r#"id="check-linearizability""#,
        r#"id="check-acknowledged-writes-durable""#,
        r#"id="check-liveness""#,
        r#"id="overview""#,
        r#"class="shade kill""#,
        r#"class="shade partition""#,
        r#"class="dots ok""#,
        r#"class="area ok""#,
        r#"id="node-lane-1""#,
        r#"id="node-lane-3""#,
        r#"class="isolated""#,
        r#"class="restart""#,
        r#"id="faults""#,
        r#"id="nodes""#,
        "n1 leader of term 1",
        "n2 leader of term 2",
    ];
    let dom = dump_dom(&valid.join("report.html"));
    for part in common {
        assert!(dom.contains(part), "the valid run's report lacks {part}");
    }
    assert!(dom.contains(r#"<span class="badge valid" id="verdict">valid</span>"#));
    assert!(!dom.contains(r#"id="linearization""#), "no violation, no linearization view");
    assert!(!dom.contains("pill invalid"));

    let dom = dump_dom(&invalid.join("report.html"));
    for part in common {
        assert!(dom.contains(part), "the invalid run's report lacks {part}");
    }
    assert!(dom.contains(r#"<span class="badge invalid" id="verdict">invalid</span>"#));
    assert!(dom.contains(r#"class="shade pause""#));
    for part in [
        r#"id="linearization""#,
        r#"id="violation-mark""#,
        r#"class="lin-op step""#,
        r#"class="lin-op blocked""#,
        r#"class="lin-path""#,
        r#"id="lin-state""#,
        // The read of 7 cannot follow the write of 8: the state before it is 8.
        r#"data-op="read -&gt; 7""#,
        r#"data-before="8""#,
    ] {
        assert!(dom.contains(part), "the invalid run's report lacks {part}");
    }

    // The campaign index: both runs, coloured by verdict, linked to their reports.
    let out = gauntlet(&[&campaign]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = campaign.join("index.html");
    let dom = dump_dom(&index);
    assert!(dom.contains(r#"<a class="valid" href="run-valid/report.html""#));
    assert!(dom.contains(r#"<a class="invalid" href="run-stale-read/report.html""#));
    assert!(dom.contains(r#"<span class="badge invalid" id="verdict">invalid</span>"#));

    let shots = [
        screenshot(&valid.join("report.html"), "valid"),
        screenshot(&invalid.join("report.html"), "invalid"),
        screenshot(&index, "campaign-index"),
    ];
    eprintln!("screenshots: {shots:?}");
}

#[test]
fn report_refuses_a_directory_that_holds_no_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = gauntlet(&[dir.path()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("neither a run directory"), "{err}");
    let out = gauntlet(&[&dir.path().join("missing")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}

#[test]
fn check_html_pages_of_any_history_render_in_chromium() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-test").join("check-html");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = env!("CARGO_BIN_EXE_gauntlet");
    let check_html = |history: &Path, page: &Path| {
        let out = Command::new(exe).arg("check").arg("--html").arg(page).arg(history).output();
        out.unwrap().status.code()
    };

    // an invalid etcd history: the partial linearization is drawn
    let etcd =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/porcupine/jepsen/etcd_000.log");
    let page = dir.join("etcd_000.html");
    assert_eq!(check_html(&etcd, &page), Some(1));
    let dom = dump_dom(&page);
    assert!(dom.contains(r#"id="linearization""#), "the violation is drawn");
    assert!(dom.contains(r#"id="verdict">invalid<"#), "the verdict is shown");
    assert!(dom.contains("lin-state"), "the state read-out is there");
    screenshot(&page, "check-etcd_000");

    // a 100,000-operation history stays small and renders
    let big = dir.join("kv100k.edn");
    let synth = Command::new(exe)
        .args(["synth", "--ops", "100000", "--seed", "5", "-o"])
        .arg(&big)
        .output()
        .unwrap();
    assert!(synth.status.success());
    let page = dir.join("kv100k.html");
    assert_eq!(check_html(&big, &page), Some(0));
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(size < 2 << 20, "the page of 100,000 operations is {size} bytes");
    let dom = dump_dom(&page);
    assert!(dom.contains(r#"id="timeline""#) && !dom.contains(r#"id="linearization""#));
    screenshot(&page, "check-kv100k");
}
