//! Simulated power failures of a node run with `--crash-disk`.
//!
//! The harness writes a [`CrashRequest`] to the node's data directory and sends SIGUSR1. The
//! node arms its [`CrashDisk`] to crash at its next sync (so the crash finds the writes that
//! sync was to make durable), waits for it up to [`WAIT_FOR_SYNC`] (an idle node crashes
//! then, with whatever is unsynced), appends a [`CrashRecord`] to `crashes.jsonl`, and dies by
//! SIGKILL, as a killed node does.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use checker::safety::{NodeRecord, SafetyCheck};
use raft::storage::{CrashDisk, CrashFamily, CrashReport};
use raft::Index;
use serde::{Deserialize, Serialize};

/// The request the harness leaves before its SIGUSR1.
pub const REQUEST_FILE: &str = "crash-request.json";
/// One [`CrashRecord`] per line, oldest first.
pub const RECORD_FILE: &str = "crashes.jsonl";
/// Where the crash disk keeps removed and replaced files until their directory is synced.
pub const TRASH_DIR: &str = "crash-trash";
/// How long a crash waits for a sync to crash at.
pub const WAIT_FOR_SYNC: Duration = Duration::from_millis(300);

/// What crash to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashRequest {
    pub family: CrashFamily,
    pub seed: u64,
}

/// What a crash did, as the node recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashRecord {
    /// When the disk crashed, in milliseconds since the Unix epoch (as `events.jsonl`).
    pub time_ms: u64,
    pub request: CrashRequest,
    /// Whether the crash happened at a sync (rather than after [`WAIT_FOR_SYNC`] without one).
    pub at_sync: bool,
    /// The last log index the node knew durable when the crash was requested: its restart
    /// must recover at least this much.
    pub persisted_index: Index,
    pub report: CrashReport,
}

/// Asks the node in `dir` for `request` (the caller then sends SIGUSR1).
pub fn write_request(dir: &Path, request: CrashRequest) -> anyhow::Result<()> {
    let path = dir.join(REQUEST_FILE);
    let json = serde_json::to_vec(&request).expect("a request serializes");
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
}

/// Every crash the node in `dir` recorded, oldest first.
pub fn records(dir: &Path) -> anyhow::Result<Vec<CrashRecord>> {
    let path = dir.join(RECORD_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a crash record", path.display(), i + 1))
        })
        .collect()
}

/// Crashes `disk` as the request in `dir` asks, records it, and dies by SIGKILL.
pub async fn crash_and_die(disk: &CrashDisk, dir: &Path, persisted_index: Index) -> ! {
    let result = crash(disk, dir, persisted_index).await;
    if let Err(e) = result {
        // The harness finds no record and says so; the disk is crashed (or never was) anyway.
        tracing::error!(error = format!("{e:#}"), "the requested crash failed");
    }
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    unreachable!("SIGKILL cannot be caught")
}

async fn crash(disk: &CrashDisk, dir: &Path, persisted_index: Index) -> anyhow::Result<()> {
    let path = dir.join(REQUEST_FILE);
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let request: CrashRequest = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a crash request", path.display()))?;
    disk.crash_at_sync(request.family, request.seed, 0).context("arming the crash")?;
    let deadline = tokio::time::Instant::now() + WAIT_FOR_SYNC;
    while !disk.has_crashed() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let at_sync = disk.has_crashed();
    let report = match disk.report() {
        Some(report) => report,
        None => disk.crash(request.family, request.seed).context("crashing the disk")?,
    };
    tracing::warn!(family = %request.family, seed = request.seed, at_sync,
        unsynced_bytes = report.unsynced_bytes(), kept_bytes = report.kept_bytes(),
        "simulated power failure");
    let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let record = CrashRecord { time_ms, request, at_sync, persisted_index, report };
    let mut line = serde_json::to_vec(&record).expect("a record serializes");
    line.push(b'\n');
    let path = dir.join(RECORD_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(&line).with_context(|| format!("writing {}", path.display()))
}

/// The check `crash-recovery`: after every crash the node started again, without refusing,
/// with at least the log it knew durable when the crash was requested. `nodes` are the nodes'
/// ids and data directories.
pub fn check_recovery(nodes: &[(u64, &Path)]) -> anyhow::Result<SafetyCheck> {
    let mut violations = Vec::new();
    for &(node, dir) in nodes {
        let events = NodeRecord::read_dir(node, dir)?.events;
        for crash in records(dir)? {
            let CrashRecord { time_ms, request, persisted_index, .. } = &crash;
            let what = format!(
                "node {node} after its crash at {time_ms} ms ({}, seed {}; {})",
                request.family,
                request.seed,
                crash_state(&crash)
            );
            let start = events.iter().find(|e| {
                e.time_ms.is_some_and(|t| t >= *time_ms)
                    && matches!(e.event.as_str(), "started" | "restarted" | "refused")
            });
            match start {
                None => violations.push(format!("{what}: never started again")),
                Some(e) if e.event == "refused" => violations.push(format!(
                    "{what}: refused to start: {}",
                    e.reason.as_deref().unwrap_or("(no reason recorded)")
                )),
                Some(e) if e.event == "started" && *persisted_index > 0 => violations.push(
                    format!("{what}: started on a new, empty storage, but index {persisted_index} was durable before the crash"),
                ),
                Some(e) => match e.last_index {
                    Some(last) if last < *persisted_index => violations.push(format!(
                        "{what}: recovered its log up to index {last}, but index \
                         {persisted_index} was durable before the crash"
                    )),
                    _ => {}
                },
            }
        }
    }
    let violation_count = violations.len();
    violations.truncate(10);
    Ok(SafetyCheck {
        name: "crash-recovery".into(),
        valid: violation_count == 0,
        violations,
        violation_count,
    })
}

/// The crash state in a few words: what was destroyed and kept, file by file.
fn crash_state(crash: &CrashRecord) -> String {
    let report = &crash.report;
    let mut parts: Vec<String> = report
        .files
        .iter()
        .map(|f| {
            let name = f.path.file_name().unwrap_or(f.path.as_os_str()).to_string_lossy();
            let torn = f.torn_at.map_or(String::new(), |t| format!(", the last torn at byte {t}"));
            format!("{name}: {} of {} unsynced writes kept{torn}", f.kept_ops, f.unsynced_ops)
        })
        .collect();
    parts.extend(report.dirs.iter().flat_map(|d| d.lost.iter().map(|op| format!("lost: {op}"))));
    if parts.is_empty() {
        return "nothing was unsynced".into();
    }
    parts.join("; ")
}
