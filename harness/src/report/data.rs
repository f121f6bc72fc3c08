//! Loading a stored run into the shapes the report draws: operations with their outcome and
//! latency, fault periods, and what every node did (leadership, restarts, applied index).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use checker::safety::{NodeEventKind, NodeRecord, SafetyCheck};
use checker::{CheckResult, Event, EventType, Format, History, Process, Verdict};
use serde::Deserialize;
use serde_json::Value;

/// Process numbers at or above this are not regular client workers (the final-read client uses
/// `u64::MAX / 2`); the timeline gives each of them a lane of its own.
const SPECIAL_PROCESS: u64 = 1 << 40;

/// How a client operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// It took effect.
    Ok,
    /// It certainly did not take effect, because of an error (not the leader, a lost
    /// connection before sending, a timeout of a read).
    Fail,
    /// It certainly did not take effect because the state machine refused it (a cas whose
    /// precondition did not hold): a `fail`, but one the cluster served.
    Refused,
    /// It may or may not have taken effect.
    Info,
    /// It never completed (the run ended first).
    Open,
}

impl Outcome {
    /// The word used in the report and in CSS classes.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Refused => "refused",
            Outcome::Info => "info",
            Outcome::Open => "open",
        }
    }
}

/// One client operation: an invocation and its completion.
#[derive(Clone, Debug)]
pub struct Op {
    /// The Jepsen process.
    pub process: u64,
    /// The function (`read`, `write`, `cas`, ...).
    pub f: String,
    /// The key, as text (empty for a single register).
    pub key: String,
    /// The invocation's value.
    pub value: Value,
    /// The completion's value (the result of an `ok`).
    pub result: Value,
    /// The completion's error, if any.
    pub error: Option<String>,
    /// Invocation time, nanoseconds since the run started.
    pub start: u64,
    /// Completion time; `None` when the operation never completed.
    pub end: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

#[cfg(test)]
impl Op {
    /// A test operation of process 0 on key `k` that completed between `start` and `end`.
    pub(crate) fn completed(f: &str, start: u64, end: u64, outcome: Outcome) -> Op {
        Op {
            process: 0,
            f: f.into(),
            key: "k".into(),
            value: Value::Null,
            result: Value::Null,
            error: None,
            start,
            end: Some(end),
            outcome,
        }
    }
}

impl Op {
    /// Latency in nanoseconds, for completed operations.
    pub fn latency(&self) -> Option<u64> {
        self.end.map(|e| e.saturating_sub(self.start))
    }

    /// A one-line description: `k1 write 3 -> ok`.
    pub fn describe(&self) -> String {
        let key = if self.key.is_empty() { String::new() } else { format!("{} ", self.key) };
        let value = if self.value.is_null() { String::new() } else { format!(" {}", self.value) };
        let tail = match self.outcome {
            Outcome::Ok if self.result != self.value => format!("ok {}", self.result),
            Outcome::Ok => "ok".to_string(),
            Outcome::Fail | Outcome::Refused | Outcome::Info => format!(
                "{} ({})",
                self.outcome.name(),
                self.error.as_deref().unwrap_or("no error given")
            ),
            Outcome::Open => "never completed".to_string(),
        };
        format!("{key}{}{value} -> {tail}", self.f)
    }
}

/// The kinds of fault the nemesis injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Processes killed (SIGKILL), restarted at the end of the period.
    Kill,
    /// Processes crashed in a simulated power failure (unsynced writes lost or torn),
    /// restarted at the end of the period.
    Crash,
    /// A write or sync of the processes' storage failed (ENOSPC, EIO); they stop, and are
    /// restarted at the end of the period.
    DiskError,
    /// Processes killed and their log damaged (a torn or flipped last record, or corrupted
    /// synced data), restarted at the end.
    DiskDamage,
    /// Processes paused (SIGSTOP), resumed at the end.
    Pause,
    /// Links cut.
    Partition,
    /// Message loss, delay, duplication and reordering on every link.
    Net,
    /// A node's clock slowed while it is cut off from its peers.
    Clock,
    /// A fault kind this report does not know.
    Other,
}

impl FaultKind {
    /// Every kind, in the order of the fault lanes.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Kill,
        FaultKind::Crash,
        FaultKind::DiskError,
        FaultKind::DiskDamage,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Net,
        FaultKind::Clock,
        FaultKind::Other,
    ];

    fn parse(name: &str) -> FaultKind {
        match name {
            "kill" | "restart-storm" | "catch-up" => FaultKind::Kill,
            "crash" => FaultKind::Crash,
            "disk-error" => FaultKind::DiskError,
            "disk-damage" | "disk-corrupt" => FaultKind::DiskDamage,
            "pause" | "depose" => FaultKind::Pause,
            "partition" => FaultKind::Partition,
            "net" => FaultKind::Net,
            "clock" => FaultKind::Clock,
            _ => FaultKind::Other,
        }
    }

    /// The word used in the report and in CSS classes.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Crash => "crash",
            FaultKind::DiskError => "disk-error",
            FaultKind::DiskDamage => "disk-damage",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Net => "net",
            FaultKind::Clock => "clock",
            FaultKind::Other => "other",
        }
    }
}

/// One fault, from its start to its end.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Its kind.
    pub kind: FaultKind,
    /// The nemesis function without `start-` (`kill`, `partition`, ...).
    pub name: String,
    /// Start, nanoseconds since the run started.
    pub start: u64,
    /// End; `None` when it was still in force when the history ends.
    pub end: Option<u64>,
    /// A short label: `kill n2 n3 (minority)`.
    pub label: String,
    /// The longer description shown on hover.
    pub detail: String,
    /// The nodes it acts on (killed, paused, or cut off from some peer).
    pub nodes: Vec<u64>,
    /// For a partition: the nodes left without a quorum (they reach, both ways, fewer than a
    /// majority counting themselves).
    pub isolated: Vec<u64>,
}

/// A nemesis event that is not part of a start/stop pair (`heal`, or an unmatched stop).
#[derive(Clone, Debug)]
pub struct Mark {
    /// When, nanoseconds since the run started.
    pub time: u64,
    /// The nemesis function.
    pub f: String,
}

/// The `verdict.json` of a run, read leniently (every part may be missing).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct VerdictFile {
    /// The overall verdict.
    pub verdict: Option<Verdict>,
    /// The run's seed.
    pub seed: Option<u64>,
    /// The names of the checks that failed.
    #[serde(default)]
    pub failed_checks: Vec<String>,
    /// The linearizability checker's result.
    pub linearizability: Option<CheckResult>,
    /// Raft's safety checks.
    #[serde(default)]
    pub safety: Vec<SafetyCheck>,
    /// Checks the system under test cannot feed, and why.
    #[serde(default)]
    pub unavailable_checks: Vec<String>,
    /// Whether the healed cluster served again.
    pub liveness: Option<LivenessFile>,
    /// Nodes that exited by themselves.
    #[serde(default)]
    pub node_crashes: Vec<String>,
    /// Counters of the run.
    #[serde(default)]
    pub stats: Value,
}

/// The liveness part of `verdict.json`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LivenessFile {
    /// Whether every final read succeeded in time.
    #[serde(default)]
    pub valid: bool,
    /// Seconds from healing to the first successful operation.
    pub recovered_after_s: Option<f64>,
    /// Keys whose final read succeeded.
    #[serde(default)]
    pub final_reads_ok: usize,
    /// All keys.
    #[serde(default)]
    pub keys: usize,
}

/// A node's leadership of one term.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// The term.
    pub term: u64,
    /// When it became leader, nanoseconds since the run started.
    pub start: u64,
    /// When it stopped being leader (stepped down, restarted or killed); `None`: at the end.
    pub end: Option<u64>,
}

/// What one node did.
#[derive(Clone, Debug, Default)]
pub struct NodeData {
    /// The node's id.
    pub id: u64,
    /// Its leaderships, in time order.
    pub leaderships: Vec<Leadership>,
    /// Restarts: time (ns since start), term and last log index at the restart.
    pub restarts: Vec<(u64, Option<u64>, Option<u64>)>,
    /// The last index it applied.
    pub last_applied: Option<u64>,
    /// The term of the last entry it applied.
    pub last_applied_term: Option<u64>,
    /// How many entries it applied (over all its lives).
    pub applied_entries: usize,
    /// The highest term seen in its events.
    pub last_term: Option<u64>,
    /// A problem reading its files, shown instead of failing the report.
    pub error: Option<String>,
}

/// Everything the report shows about one run.
#[derive(Clone, Debug, Default)]
pub struct RunData {
    /// The run's directory.
    pub dir: PathBuf,
    /// Its name (the directory's name).
    pub id: String,
    /// `test.json`, if present.
    pub test: Value,
    /// `verdict.json`, if present.
    pub verdict: Option<VerdictFile>,
    /// A problem reading `verdict.json`.
    pub verdict_error: Option<String>,
    /// The client operations, by invocation time.
    pub ops: Vec<Op>,
    /// The faults, by start time.
    pub faults: Vec<Fault>,
    /// Other nemesis events (`heal`).
    pub marks: Vec<Mark>,
    /// The nodes, by id.
    pub nodes: Vec<NodeData>,
    /// The time of the last event of the history (or node event), ns since start.
    pub end: u64,
    /// The time of every history event by its `index`, for the linearization view.
    pub event_times: HashMap<u64, u64>,
    /// Client workers (`options.concurrency` of `test.json`), if known.
    pub concurrency: Option<u64>,
}

impl RunData {
    /// Reads a run directory: `history.jsonl` is required, everything else is optional.
    pub fn load(dir: &Path) -> anyhow::Result<RunData> {
        let history_path = dir.join("history.jsonl");
        if !history_path.is_file() {
            bail!("{} is not a run directory: it has no history.jsonl", dir.display());
        }
        let history = History::read_file(&history_path, Format::Jsonl)
            .with_context(|| format!("reading {}", history_path.display()))?;
        if let Some(line) = history.torn_line() {
            eprintln!(
                "warning: {}: line {line}, the last, is cut short (the run was killed); \
                 reported without it",
                history_path.display()
            );
        }
        let test: Value = match std::fs::read_to_string(dir.join("test.json")) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", dir.join("test.json").display()))?,
            Err(_) => Value::Null,
        };
        let (verdict, verdict_error) = match std::fs::read_to_string(dir.join("verdict.json")) {
            Ok(text) => match serde_json::from_str::<VerdictFile>(&text) {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(format!("verdict.json cannot be read: {e}"))),
            },
            Err(_) => (None, None),
        };
        let id = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let mut data = RunData::from_history(history.events(), test, verdict);
        data.dir = dir.to_path_buf();
        data.id = id;
        data.verdict_error = verdict_error;
        let started_ms = data.test.get("started_unix_ms").and_then(Value::as_u64);
        data.nodes = load_nodes(&dir.join("nodes"), started_ms, &data.faults, &mut data.end);
        Ok(data)
    }

    /// Builds the report's data from history events (in file order), `test.json` and the
    /// verdict; the nodes are loaded separately.
    pub fn from_history(events: &[Event], test: Value, verdict: Option<VerdictFile>) -> RunData {
        let mut ops: Vec<Op> = Vec::new();
        let mut open: HashMap<u64, usize> = HashMap::new();
        let mut faults: Vec<Fault> = Vec::new();
        let mut marks = Vec::new();
        let mut active: HashMap<String, usize> = HashMap::new();
        let event_times = event_times(events);
        let mut end = 0u64;
        let cluster_size = test.pointer("/options/nodes").and_then(Value::as_u64);
        for e in events {
            let t = event_times[&e.index];
            end = end.max(t);
            match e.process {
                Process::Client(p) => match e.kind {
                    EventType::Invoke => {
                        open.insert(p, ops.len());
                        ops.push(Op {
                            process: p,
                            f: e.f.clone(),
                            key: e.key.as_ref().map(key_text).unwrap_or_default(),
                            value: e.value.clone(),
                            result: Value::Null,
                            error: None,
                            start: t,
                            end: None,
                            outcome: Outcome::Open,
                        });
                    }
                    kind => {
                        let Some(i) = open.remove(&p) else { continue };
                        let op = &mut ops[i];
                        op.end = Some(t);
                        op.result = e.value.clone();
                        op.error = e.error.as_ref().map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        });
                        op.outcome = match kind {
                            EventType::Ok => Outcome::Ok,
                            EventType::Fail if is_refusal(op.error.as_deref()) => Outcome::Refused,
                            EventType::Fail => Outcome::Fail,
                            _ => Outcome::Info,
                        };
                    }
                },
                Process::Nemesis => {
                    if let Some(name) = e.f.strip_prefix("start-") {
                        let (label, detail, nodes, isolated) =
                            describe_fault(name, &e.value, cluster_size);
                        active.insert(name.to_string(), faults.len());
                        faults.push(Fault {
                            kind: FaultKind::parse(name),
                            name: name.to_string(),
                            start: t,
                            end: None,
                            label,
                            detail,
                            nodes,
                            isolated,
                        });
                    } else if let Some(name) = e.f.strip_prefix("stop-") {
                        match active.remove(name) {
                            Some(i) => faults[i].end = Some(t),
                            None => marks.push(Mark { time: t, f: e.f.clone() }),
                        }
                    } else {
                        // `heal` (or anything else) ends every fault still in force.
                        for (_, i) in active.drain() {
                            faults[i].end = Some(t);
                        }
                        marks.push(Mark { time: t, f: e.f.clone() });
                    }
                }
            }
        }
        ops.sort_by_key(|o| o.start);
        faults.sort_by_key(|f| f.start);
        let concurrency = test.pointer("/options/concurrency").and_then(Value::as_u64);
        RunData {
            test,
            verdict,
            ops,
            faults,
            marks,
            end: end.max(1),
            event_times,
            concurrency,
            ..RunData::default()
        }
    }

    /// The timeline's lane of a process: its worker when the number of workers is known (a
    /// worker continues under process `p + workers` after an indeterminate operation).
    pub fn lane_of(&self, process: u64) -> Lane {
        match self.concurrency {
            Some(c) if c > 0 && process < SPECIAL_PROCESS => Lane::Worker(process % c),
            _ => Lane::Process(process),
        }
    }

    /// The overall verdict, if the run was checked.
    pub fn overall(&self) -> Option<Verdict> {
        self.verdict.as_ref().and_then(|v| v.verdict)
    }

    /// How many operations ended each way.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.ops.iter().filter(|o| o.outcome == outcome).count()
    }
}

/// A lane of the operations timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// A client worker and the processes it continued as.
    Worker(u64),
    /// One process.
    Process(u64),
}

impl Lane {
    /// Its label.
    pub fn label(self) -> String {
        match self {
            Lane::Worker(w) => format!("worker {w}"),
            Lane::Process(p) if p >= SPECIAL_PROCESS => "final reads".to_string(),
            Lane::Process(p) => format!("process {p}"),
        }
    }
}

/// Whether a `fail` completion's error says the state machine executed and refused the
/// operation (`cas-mismatch`: the cluster served it), rather than that it was not served.
/// Each event's time for drawing (ns), by its index: its own time, or, in a history without
/// times, its line (1 ms a line, the order of the lines being the real-time order).
pub fn event_times(events: &[checker::Event]) -> HashMap<u64, u64> {
    let untimed = events.iter().any(|e| e.time.is_none());
    let time = |line: usize, e: &checker::Event| {
        if untimed {
            line as u64 * 1_000_000
        } else {
            e.time.unwrap_or(0)
        }
    };
    events.iter().enumerate().map(|(line, e)| (e.index, time(line, e))).collect()
}

pub fn is_refusal(error: Option<&str>) -> bool {
    error.is_some_and(|e| e.contains("mismatch") || e.contains("precondition"))
}

/// What separates a partition's description from its list of cut links.
pub const CUT_LINKS: &str = "; cut links: ";

/// A key as text: strings without their quotes.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One node's injected disk error and what the node did, from a `start-disk-error` event.
fn describe_disk_error(error: &Value) -> String {
    let node = error.get("node").and_then(Value::as_u64).unwrap_or(0);
    let name = error.get("error").and_then(Value::as_str).unwrap_or("?");
    if error.get("injected").and_then(Value::as_bool) != Some(true) {
        return format!("n{node} {name}: no write or sync to fail");
    }
    let file = error.get("file").and_then(Value::as_str).unwrap_or("?");
    let lost = error.get("lost_bytes").and_then(Value::as_u64).unwrap_or(0);
    let exited = error.get("exited").and_then(Value::as_bool) == Some(true);
    format!(
        "n{node} {name} on {file} ({lost} unsynced bytes lost): {}",
        if exited { "stopped" } else { "carried on" }
    )
}

/// One node's crash state and what it destroyed, from a `start-crash` event.
fn describe_crash(crash: &Value) -> String {
    let node = crash.get("node").and_then(Value::as_u64).unwrap_or(0);
    let family = crash.get("family").and_then(Value::as_str).unwrap_or("?");
    if crash.get("recorded").and_then(Value::as_bool) != Some(true) {
        return format!("n{node} {family}: not recorded by the node (killed instead)");
    }
    let n = |key: &str| crash.get(key).and_then(Value::as_u64).unwrap_or(0);
    let torn = crash.get("files").and_then(Value::as_array).is_some_and(|files| {
        let torn = |f: &Value, key: &str| f.get(key).is_some_and(|t| !t.is_null());
        files.iter().any(|f| torn(f, "torn_at") || torn(f, "torn_pages"))
    });
    let lost_dir_ops = crash.get("lost_dir_ops").and_then(Value::as_array).map_or(0, Vec::len);
    format!(
        "n{node} {family}: kept {} of {} unsynced bytes, {} of {} unsynced operations{}{}",
        n("kept_bytes"),
        n("unsynced_bytes"),
        n("kept_ops"),
        n("unsynced_ops"),
        if torn { ", a torn write" } else { "" },
        if lost_dir_ops > 0 {
            format!(", {lost_dir_ops} directory change(s) lost")
        } else {
            String::new()
        },
    )
}

fn node_list(nodes: &[u64]) -> String {
    nodes.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(" ")
}

/// Label, hover text, affected nodes and (for a partition) the nodes without a quorum of a
/// `start-*` nemesis event. `cluster_size` (from `test.json`) makes partitions exact; without
/// it the highest node id named is taken as the size.
fn describe_fault(
    name: &str,
    value: &Value,
    cluster_size: Option<u64>,
) -> (String, String, Vec<u64>, Vec<u64>) {
    let ids = |v: Option<&Value>| -> Vec<u64> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    match name {
        "kill" | "pause" | "depose" | "crash" | "disk-error" | "disk-damage" | "disk-corrupt" => {
            let nodes = ids(value.get("nodes"));
            let target = value.get("target").and_then(Value::as_str).unwrap_or("");
            let what = if nodes.is_empty() { "no node".to_string() } else { node_list(&nodes) };
            let label = format!("{name} {what}");
            let mut detail = if target.is_empty() {
                label.clone()
            } else {
                format!("{label} (target: {target})")
            };
            if let Some(crashes) = value.get("crashes").and_then(Value::as_array) {
                let states: Vec<String> = crashes.iter().map(describe_crash).collect();
                detail = format!("{detail}: {}", states.join("; "));
            }
            if let Some(damage) = value.get("damage").and_then(Value::as_str) {
                detail = match (value.get("file").and_then(Value::as_str), value.get("offset")) {
                    (Some(file), Some(offset)) => {
                        let bytes = value.get("bytes").and_then(Value::as_u64).unwrap_or(0);
                        format!("{detail}: {damage} of {file} at byte {offset} ({bytes} bytes)")
                    }
                    _ => format!("{detail}: {damage}, nothing to damage"),
                };
            }
            if let Some(errors) = value.get("errors").and_then(Value::as_array) {
                let errors: Vec<String> = errors.iter().map(describe_disk_error).collect();
                detail = format!("{detail}: {}", errors.join("; "));
            }
            (label, detail, nodes, Vec::new())
        }
        "partition" => {
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("partition");
            let mut links: Vec<(u64, u64)> = value
                .get("cut")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|l| Some((l.get(0)?.as_u64()?, l.get(1)?.as_u64()?)))
                        .collect()
                })
                .unwrap_or_default();
            links.sort_unstable();
            links.dedup();
            let mut nodes: Vec<u64> = links.iter().flat_map(|&(a, b)| [a, b]).collect();
            nodes.sort_unstable();
            nodes.dedup();
            let n = cluster_size.unwrap_or(0).max(nodes.last().copied().unwrap_or(0));
            let (groups, isolated) = partition_shape(n, &links);
            let shown: Vec<String> = links.iter().map(|(a, b)| format!("{a}->{b}")).collect();
            let label = match groups {
                Some(groups) => groups.iter().map(|g| node_list(g)).collect::<Vec<_>>().join(" | "),
                None => format!("partition {kind}"),
            };
            let mut detail = format!("partition ({kind}): {label}");
            if !isolated.is_empty() {
                detail.push_str(&format!("; without a quorum: {}", node_list(&isolated)));
            }
            detail.push_str(CUT_LINKS);
            detail.push_str(&shown.join(", "));
            (label, detail, nodes, isolated)
        }
        "net" => {
            let num = |k: &str| value.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let delay = value
                .get("delay_ms")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<_>>())
                .unwrap_or_default();
            let mut parts = Vec::new();
            if num("loss") > 0.0 {
                parts.push(format!("loss {:.0}%", num("loss") * 100.0));
            }
            if delay.iter().any(|&d| d > 0) {
                parts.push(format!(
                    "delay {}-{} ms",
                    delay.first().unwrap_or(&0),
                    delay.get(1).unwrap_or(&0)
                ));
            }
            if num("duplicate") > 0.0 {
                parts.push(format!("dup {:.0}%", num("duplicate") * 100.0));
            }
            if num("reorder") > 0.0 {
                parts.push(format!("reorder {:.0}%", num("reorder") * 100.0));
            }
            if parts.is_empty() {
                parts.push("(every rate zero)".into());
            }
            let label = format!("net {}", parts.join(", "));
            (label.clone(), format!("{label} on every link"), Vec::new(), Vec::new())
        }
        "clock" => {
            let node = value.get("node").and_then(Value::as_u64);
            let slower = value.get("slower").and_then(Value::as_u64).unwrap_or(0);
            let nodes: Vec<u64> = node.into_iter().collect();
            let label = format!("clock {} ×{slower} slow", node_list(&nodes));
            let detail = format!(
                "{label}: each tick lasts {slower} times as long, and the node is cut off from \
                 its peers both ways"
            );
            (label, detail, nodes.clone(), nodes)
        }
        other => {
            let detail =
                if value.is_null() { other.to_string() } else { format!("{other} {value}") };
            (other.to_string(), detail, Vec::new(), Vec::new())
        }
    }
}

/// The shape of a partition of nodes `1..=n` with the directed links `cut`: the groups, when
/// they are clean (every link inside a group up, every link between groups cut both ways),
/// and the nodes that reach fewer than a majority (themselves included) over links up both
/// ways.
fn partition_shape(n: u64, cut: &[(u64, u64)]) -> (Option<Vec<Vec<u64>>>, Vec<u64>) {
    let up = |a: u64, b: u64| !cut.contains(&(a, b)) && !cut.contains(&(b, a));
    let majority = n / 2 + 1;
    let isolated: Vec<u64> = (1..=n)
        .filter(|&a| (1..=n).filter(|&b| b == a || up(a, b)).count() < majority as usize)
        .collect();
    let mut groups: Vec<Vec<u64>> = Vec::new();
    for a in 1..=n {
        match groups.iter_mut().find(|g| up(g[0], a)) {
            Some(g) => g.push(a),
            None => groups.push(vec![a]),
        }
    }
    let clean = groups.len() > 1
        && groups.iter().all(|g| {
            g.iter().all(|&a| {
                (1..=n).all(|b| {
                    let one_way = cut.contains(&(a, b)) != cut.contains(&(b, a));
                    b == a || (!one_way && g.contains(&b) == up(a, b))
                })
            })
        });
    groups.sort_by_key(|g| (g.len(), g[0]));
    (clean.then_some(groups), isolated)
}

/// Reads `nodes/n<i>/`: events (leaderships, restarts) and the applied log's end.
fn load_nodes(
    nodes_dir: &Path,
    started_ms: Option<u64>,
    faults: &[Fault],
    end: &mut u64,
) -> Vec<NodeData> {
    let mut ids: Vec<u64> = std::fs::read_dir(nodes_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix('n')?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    let records: Vec<(u64, Result<NodeRecord, String>)> = ids
        .iter()
        .map(|&id| {
            let dir = nodes_dir.join(format!("n{id}"));
            (id, NodeRecord::read_dir(id, &dir).map_err(|e| e.to_string()))
        })
        .collect();
    // Without the run's start time, the first node event is taken as the start.
    let base_ms = started_ms.or_else(|| {
        records
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .flat_map(|r| r.events.iter().filter_map(|e| e.time_ms))
            .min()
    });
    records
        .into_iter()
        .map(|(id, record)| match record {
            Ok(record) => node_data(&record, base_ms, faults, end),
            Err(error) => NodeData { id, error: Some(error), ..NodeData::default() },
        })
        .collect()
}

fn node_data(
    record: &NodeRecord,
    base_ms: Option<u64>,
    faults: &[Fault],
    end: &mut u64,
) -> NodeData {
    let mut node = NodeData { id: record.node, ..NodeData::default() };
    let to_ns = |ms: Option<u64>| -> Option<u64> {
        Some(ms?.saturating_sub(base_ms?).saturating_mul(1_000_000))
    };
    // A kill or a crash ends the leadership of the nodes it stops.
    let kills: Vec<u64> = faults
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FaultKind::Kill | FaultKind::Crash | FaultKind::DiskError | FaultKind::DiskDamage
            )
        })
        .filter(|f| f.nodes.contains(&record.node))
        .map(|f| f.start)
        .collect();
    let mut current: Option<Leadership> = None;
    let close = |current: &mut Option<Leadership>, at: u64, out: &mut Vec<Leadership>| {
        if let Some(mut l) = current.take() {
            // The kill may come first: end the leadership there.
            let killed = kills.iter().copied().find(|&k| k >= l.start && k <= at);
            l.end = Some(killed.unwrap_or(at));
            out.push(l);
        }
    };
    for e in &record.events {
        let Some(t) = to_ns(e.time_ms) else { continue };
        *end = (*end).max(t);
        if let Some(term) = e.term {
            node.last_term = Some(node.last_term.map_or(term, |m| m.max(term)));
        }
        match e.kind {
            NodeEventKind::BecameLeader { .. } => {
                close(&mut current, t, &mut node.leaderships);
                current = Some(Leadership { term: e.term.unwrap_or(0), start: t, end: None });
            }
            NodeEventKind::SteppedDown { .. } | NodeEventKind::Started { .. } => {
                close(&mut current, t, &mut node.leaderships)
            }
            NodeEventKind::Restarted { last_index, .. } => {
                close(&mut current, t, &mut node.leaderships);
                node.restarts.push((t, e.term, last_index));
            }
            _ => {}
        }
    }
    if let Some(mut l) = current.take() {
        l.end = kills.iter().copied().find(|&k| k >= l.start);
        node.leaderships.push(l);
    }
    node.applied_entries = record.applied.len();
    node.last_applied = record.applied.iter().map(|a| a.index).max();
    node.last_applied_term = record.applied.last().map(|a| a.term);
    node
}

/// One line per key of a map, for small tables in the report.
pub fn sorted_stats(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) if n.is_f64() => {
                            format!("{:.3}", n.as_f64().unwrap_or(0.0))
                        }
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<Event> {
        History::parse_str("t", text, Format::Jsonl).unwrap().events().to_vec()
    }

    #[test]
    fn pairs_operations_and_faults() {
        let h = events(concat!(
            r#"{"index":0,"time":10,"process":0,"type":"invoke","f":"write","key":"k1","value":3}"#,
            "\n",
            r#"{"index":1,"time":20,"process":"nemesis","type":"info","f":"start-kill","value":{"nodes":[2,3],"target":"minority"}}"#,
            "\n",
            r#"{"index":2,"time":30,"process":0,"type":"info","f":"write","key":"k1","value":3,"error":"timeout"}"#,
            "\n",
            r#"{"index":3,"time":40,"process":2,"type":"invoke","f":"read","key":"k1","value":null}"#,
            "\n",
            r#"{"index":4,"time":50,"process":"nemesis","type":"info","f":"start-net","value":{"loss":0.2,"delay_ms":[0,20],"duplicate":0.0,"reorder":0.0}}"#,
            "\n",
            r#"{"index":5,"time":60,"process":"nemesis","type":"info","f":"stop-kill","value":{"nodes":[2,3]}}"#,
            "\n",
            r#"{"index":6,"time":70,"process":"nemesis","type":"info","f":"heal","value":null}"#,
            "\n",
        ));
        let test = serde_json::json!({"options": {"concurrency": 2}});
        let run = RunData::from_history(&h, test, None);
        assert_eq!(run.ops.len(), 2);
        assert_eq!(run.ops[0].outcome, Outcome::Info);
        assert_eq!(run.ops[0].latency(), Some(20));
        assert_eq!(run.ops[0].error.as_deref(), Some("timeout"));
        assert_eq!(run.ops[1].outcome, Outcome::Open);
        assert_eq!(run.faults.len(), 2);
        assert_eq!(run.faults[0].label, "kill n2 n3");
        assert!(run.faults[0].isolated.is_empty());
        assert_eq!(run.faults[0].nodes, vec![2, 3]);
        assert_eq!((run.faults[0].start, run.faults[0].end), (20, Some(60)));
        assert_eq!(run.faults[1].label, "net loss 20%, delay 0-20 ms");
        assert_eq!(run.faults[1].end, Some(70), "heal ends the faults still in force");
        assert_eq!(run.marks.len(), 1);
        assert_eq!(run.lane_of(2), Lane::Worker(0));
        assert_eq!(run.lane_of(u64::MAX / 2), Lane::Process(u64::MAX / 2));
        assert_eq!(run.end, 70);
    }

    #[test]
    fn a_clock_fault_names_its_node_and_factor_and_isolates_it() {
        let h = events(concat!(
            r#"{"index":0,"time":10,"process":"nemesis","type":"info","f":"start-clock","value":{"node":2,"slower":6,"cut":[[2,1],[1,2],[2,3],[3,2]]}}"#,
            "\n",
            r#"{"index":1,"time":20,"process":"nemesis","type":"info","f":"stop-clock","value":{"node":2}}"#,
            "\n",
        ));
        let run = RunData::from_history(&h, serde_json::json!({}), None);
        let fault = &run.faults[0];
        assert_eq!((fault.kind, fault.label.as_str()), (FaultKind::Clock, "clock n2 ×6 slow"));
        assert_eq!((fault.nodes.clone(), fault.isolated.clone()), (vec![2], vec![2]));
        assert!(fault.detail.contains("cut off from its peers"), "{}", fault.detail);
        assert_eq!((fault.start, fault.end), (10, Some(20)));
    }

    #[test]
    fn partitions_are_named_by_their_groups() {
        let both = |pairs: &[(u64, u64)]| -> Vec<(u64, u64)> {
            pairs.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect()
        };
        // n4 alone.
        let cut = both(&[(4, 1), (4, 2), (4, 3), (4, 5)]);
        let (groups, isolated) = partition_shape(5, &cut);
        assert_eq!(groups, Some(vec![vec![4], vec![1, 2, 3, 5]]));
        assert_eq!(isolated, vec![4]);
        // Halves.
        let cut = both(&[(1, 3), (1, 4), (1, 5), (2, 3), (2, 4), (2, 5)]);
        let (groups, isolated) = partition_shape(5, &cut);
        assert_eq!(groups, Some(vec![vec![1, 2], vec![3, 4, 5]]));
        assert_eq!(isolated, vec![1, 2]);
        // A bridge: 1 2 | 3 | 4 5 where 3 sees everyone: not clean groups, nobody isolated.
        let cut = both(&[(1, 4), (1, 5), (2, 4), (2, 5)]);
        let (groups, isolated) = partition_shape(5, &cut);
        assert_eq!(groups, None);
        assert!(isolated.is_empty());
        // One way: nobody hears n1; n1 still hears everyone, but no link is up both ways.
        let cut = vec![(1, 2), (1, 3), (1, 4), (1, 5)];
        let (groups, isolated) = partition_shape(5, &cut);
        assert_eq!(groups, None);
        assert_eq!(isolated, vec![1]);
        let value =
            serde_json::json!({"kind": "one", "cut": both(&[(4, 1), (4, 2), (4, 3), (4, 5)])});
        let (label, detail, nodes, isolated) = describe_fault("partition", &value, Some(5));
        assert_eq!(label, "n4 | n1 n2 n3 n5");
        assert!(detail.starts_with(
            "partition (one): n4 | n1 n2 n3 n5; without a quorum: n4; cut links: 1->4"
        ));
        assert_eq!(nodes, vec![1, 2, 3, 4, 5]);
        assert_eq!(isolated, vec![4]);
    }

    #[test]
    fn a_crash_says_what_each_node_lost_and_kept() {
        let value = serde_json::json!({"target": "minority", "nodes": [2, 4], "crashes": [
            {"node": 2, "family": "torn-prefix", "recorded": true, "unsynced_bytes": 395,
             "kept_bytes": 322, "unsynced_ops": 1, "kept_ops": 1,
             "files": [{"file": "wal.log", "torn_at": 322}], "lost_dir_ops": []},
            {"node": 4, "family": "lose-unsynced", "recorded": true, "unsynced_bytes": 58,
             "kept_bytes": 0, "unsynced_ops": 2, "kept_ops": 0,
             "files": [{"file": "wal.log", "torn_at": null}], "lost_dir_ops": ["rename a -> b"]},
        ]});
        let (label, detail, nodes, _) = describe_fault("crash", &value, Some(5));
        assert_eq!(label, "crash n2 n4");
        assert_eq!(nodes, vec![2, 4]);
        assert_eq!(
            detail,
            "crash n2 n4 (target: minority): n2 torn-prefix: kept 322 of 395 unsynced bytes, 1 of \
             1 unsynced operations, a torn write; n4 lose-unsynced: kept 0 of 58 unsynced bytes, 0 \
             of 2 unsynced operations, 1 directory change(s) lost"
        );
        assert_eq!(FaultKind::parse("crash"), FaultKind::Crash);
    }

    #[test]
    fn leaderships_end_at_step_down_restart_or_kill() {
        let record = NodeRecord {
            node: 5,
            applied: Vec::new(),
            events: [
                (1000, NodeEventKind::Started { vote: None, last_index: Some(0) }, 0),
                (1100, NodeEventKind::BecameLeader { last_index: 0 }, 1),
                (1900, NodeEventKind::Restarted { vote: None, last_index: Some(0) }, 1),
                (2000, NodeEventKind::BecameLeader { last_index: 0 }, 2),
                (2500, NodeEventKind::SteppedDown { last_index: 0 }, 2),
                (2600, NodeEventKind::BecameLeader { last_index: 0 }, 3),
            ]
            .into_iter()
            .map(|(t, kind, term)| checker::safety::NodeEvent {
                time_ms: Some(t),
                ..checker::safety::NodeEvent::new(5, Some(term), kind)
            })
            .collect(),
        };
        let kill = Fault {
            kind: FaultKind::Kill,
            name: "kill".into(),
            start: 500_000_000,
            end: Some(900_000_000),
            label: String::new(),
            detail: String::new(),
            nodes: vec![5],
            isolated: Vec::new(),
        };
        let mut end = 0;
        let node = node_data(&record, Some(1000), &[kill], &mut end);
        let spans: Vec<_> = node.leaderships.iter().map(|l| (l.term, l.start, l.end)).collect();
        assert_eq!(
            spans,
            vec![
                (1, 100_000_000, Some(500_000_000)),
                (2, 1_000_000_000, Some(1_500_000_000)),
                (3, 1_600_000_000, None),
            ]
        );
        assert_eq!(node.restarts.len(), 1);
        assert_eq!(node.last_term, Some(3));
        assert_eq!(end, 1_600_000_000);
    }
}
