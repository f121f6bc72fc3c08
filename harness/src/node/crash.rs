//! Simulated power failures and disk errors of a node run with `--crash-disk`.
//!
//! The harness writes a [`CrashRequest`] to the node's data directory and sends SIGUSR1. The
//! node arms its [`CrashDisk`] to crash at its next sync (so the crash finds the writes that
//! sync was to make durable), waits for it up to the request's `wait_ms` (an idle node crashes
//! then, with whatever is unsynced), appends a [`CrashRecord`] to `crashes.jsonl`, and dies by
//! SIGKILL, as a killed node does.
//!
//! A disk error works the same way with a [`DiskErrorRequest`] and SIGUSR2: the node arms its
//! crash disk to fail the next sync (EIO) or write (ENOSPC), waits up to [`ERROR_WINDOW`] for
//! it, disarms it if it did not happen, and appends a [`DiskErrorRecord`] to
//! `disk-errors.jsonl`. A correct node then stops (its storage is poisoned) and exits.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use checker::safety::{NodeRecord, SafetyCheck};
use raft::storage::{CrashDisk, CrashFamily, CrashReport, DiskError, InjectedError};
use raft::Index;
use serde::{Deserialize, Serialize};

use super::events::{now_ms, Event, EventKind};

/// The request the harness leaves before its SIGUSR1.
pub const REQUEST_FILE: &str = "crash-request.json";
/// One [`CrashRecord`] per line, oldest first.
pub const RECORD_FILE: &str = "crashes.jsonl";
/// Where the crash disk keeps removed and replaced files until their directory is synced.
pub const TRASH_DIR: &str = "crash-trash";
/// How long a crash waits for a sync to crash at, unless the request says otherwise.
pub const WAIT_FOR_SYNC: Duration = Duration::from_millis(300);
/// The disk error request, and the records of disk errors.
pub const ERROR_REQUEST_FILE: &str = "disk-error-request.json";
pub const ERROR_RECORD_FILE: &str = "disk-errors.jsonl";
/// How long an armed disk error waits for the write or sync it fails.
pub const ERROR_WINDOW: Duration = Duration::from_secs(1);

/// What disk error to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskErrorRequest {
    pub error: DiskError,
}

/// A disk error, as the node recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskErrorRecord {
    /// When the error was injected (or the window closed), in ms since the Unix epoch.
    pub time_ms: u64,
    pub request: DiskErrorRequest,
    /// What was injected; `None` when the node did no write or sync in [`ERROR_WINDOW`].
    pub injected: Option<InjectedError>,
    /// The last log index the node knew durable when the error was requested.
    pub persisted_index: Index,
}

/// What crash to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashRequest {
    pub family: CrashFamily,
    pub seed: u64,
    /// Milliseconds to wait for a sync to crash at; then the crash comes with nothing in
    /// progress.
    #[serde(default = "default_wait_ms")]
    pub wait_ms: u64,
}

fn default_wait_ms() -> u64 {
    WAIT_FOR_SYNC.as_millis() as u64
}

impl CrashRequest {
    /// A crash of `family` drawn from `seed`, waiting the usual [`WAIT_FOR_SYNC`].
    pub fn new(family: CrashFamily, seed: u64) -> CrashRequest {
        CrashRequest { family, seed, wait_ms: default_wait_ms() }
    }
}

/// What a crash did, as the node recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashRecord {
    /// When the disk crashed, in milliseconds since the Unix epoch (as `events.jsonl`).
    pub time_ms: u64,
    pub request: CrashRequest,
    /// Whether the crash happened at a sync (rather than after `wait_ms` without one).
    pub at_sync: bool,
    /// The last log index the node knew durable when the crash was requested: its restart
    /// must recover at least this much.
    pub persisted_index: Index,
    pub report: CrashReport,
}

/// Asks the node in `dir` for `request` (the caller then sends SIGUSR1).
pub fn write_request(dir: &Path, request: CrashRequest) -> anyhow::Result<()> {
    write_json(&dir.join(REQUEST_FILE), &request)
}

/// Asks the node in `dir` for a disk error (the caller then sends SIGUSR2).
pub fn write_error_request(dir: &Path, request: DiskErrorRequest) -> anyhow::Result<()> {
    write_json(&dir.join(ERROR_REQUEST_FILE), &request)
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_vec(value).expect("a request serializes");
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

/// The request the harness left at `path`.
fn read_request<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{}: not a request", path.display()))
}

/// Every crash the node in `dir` recorded, oldest first.
pub fn records(dir: &Path) -> anyhow::Result<Vec<CrashRecord>> {
    read_records(&dir.join(RECORD_FILE))
}

/// Every disk error the node in `dir` recorded, oldest first.
pub fn error_records(dir: &Path) -> anyhow::Result<Vec<DiskErrorRecord>> {
    read_records(&dir.join(ERROR_RECORD_FILE))
}

pub(super) fn read_records<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a record", path.display(), i + 1))
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
    let request: CrashRequest = read_request(&dir.join(REQUEST_FILE))?;
    disk.crash_at_sync(request.family, request.seed, 0).context("arming the crash")?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(request.wait_ms);
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
    let record = CrashRecord { time_ms: now_ms(), request, at_sync, persisted_index, report };
    append_record(&dir.join(RECORD_FILE), &record)
}

pub(super) fn append_record(path: &Path, record: &impl Serialize) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(record).expect("a record serializes");
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(&line).with_context(|| format!("writing {}", path.display()))
}

/// Injects the disk error the request in `dir` asks for, and records it.
pub async fn inject_error(
    disk: &CrashDisk,
    dir: &Path,
    persisted_index: Index,
) -> anyhow::Result<()> {
    let request: DiskErrorRequest = read_request(&dir.join(ERROR_REQUEST_FILE))?;
    let before = disk.injected();
    disk.fail_next(Some(request.error)).context("arming the disk error")?;
    let deadline = tokio::time::Instant::now() + ERROR_WINDOW;
    while disk.injected() == before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = disk.fail_next(None);
    let injected = disk.injected().filter(|now| Some(now) != before.as_ref());
    match &injected {
        Some(injected) => tracing::warn!(error = %injected.error, path = %injected.path.display(),
            lost_bytes = injected.lost_bytes, "injected disk error"),
        None => tracing::info!(error = %request.error, "no write or sync to fail in the window"),
    }
    let record = DiskErrorRecord { time_ms: now_ms(), request, injected, persisted_index };
    append_record(&dir.join(ERROR_RECORD_FILE), &record)
}

/// The check `crash-recovery`: after every crash, injected disk error and damaged log tail the
/// node started again, without refusing, with at least the log it knew durable when the fault
/// came; after a disk error it stopped (recorded `failed`) instead of carrying on; and after
/// damage to synced data it refused to start.
/// `nodes` are the nodes' ids and data directories.
pub fn check_recovery(nodes: &[(u64, &Path)]) -> anyhow::Result<SafetyCheck> {
    let mut violations = Vec::new();
    for &(node, dir) in nodes {
        let events = NodeRecord::read_dir(node, dir)?.events;
        let mut incidents: Vec<(u64, String, Index, bool)> = Vec::new();
        for crash in records(dir)? {
            let CrashRecord { time_ms, request, persisted_index, .. } = &crash;
            let what = format!(
                "node {node} after its crash at {time_ms} ms ({}, seed {}; {})",
                request.family,
                request.seed,
                crash_state(&crash)
            );
            incidents.push((*time_ms, what, *persisted_index, false));
        }
        for error in error_records(dir)? {
            let Some(injected) = &error.injected else { continue };
            let file = injected.path.file_name().unwrap_or(injected.path.as_os_str());
            let what = format!(
                "node {node} after its disk error at {} ms ({} on {}, {} unsynced bytes lost)",
                error.time_ms,
                injected.error,
                file.to_string_lossy(),
                injected.lost_bytes
            );
            incidents.push((error.time_ms, what, error.persisted_index, true));
        }
        let mut must_refuse = Vec::new();
        for damage in super::damage::records(dir)? {
            let file = damage.file.file_name().unwrap_or(damage.file.as_os_str());
            let what = format!(
                "node {node} after {} of {} at byte offset {} ({} bytes)",
                damage.damage.name(),
                file.to_string_lossy(),
                damage.offset,
                damage.bytes
            );
            match damage.damage.expects_refusal() {
                true => must_refuse.push((damage.time_ms, what)),
                false => incidents.push((damage.time_ms, what, damage.last_index, false)),
            }
        }
        for (time_ms, what) in must_refuse {
            let refused = events
                .iter()
                .filter(|e| e.time_ms.is_some_and(|t| t >= time_ms))
                .filter(|e| e.kind.is_start())
                .take(2)
                .any(|e| matches!(e.kind, EventKind::Refused { .. }));
            if !refused {
                violations
                    .push(format!("{what}: started on damaged synced data instead of refusing"));
            }
        }
        for (time_ms, what, persisted_index, must_fail) in incidents {
            let mut after = events.iter().filter(|e| {
                e.time_ms.is_some_and(|t| t >= time_ms)
                    && (e.kind.is_start() || matches!(e.kind, EventKind::Failed { .. }))
            });
            let mut next = after.next();
            if must_fail {
                match next {
                    Some(Event { kind: EventKind::Failed { .. }, .. }) => next = after.next(),
                    _ => violations.push(format!(
                        "{what}: carried on instead of stopping (it may acknowledge what it \
                         could not sync)"
                    )),
                }
            }
            match next {
                None => violations.push(format!("{what}: never started again")),
                Some(Event { kind: EventKind::Refused { reason, .. }, .. }) => {
                    let reason = reason.strip_prefix("refusing to start: ").unwrap_or(reason);
                    violations.push(format!("{what}: refused to start: {reason}"))
                }
                Some(Event { kind: EventKind::Started { .. }, .. }) if persisted_index > 0 => {
                    violations.push(format!(
                        "{what}: started on a new, empty storage, but index {persisted_index} \
                         was durable before it"
                    ))
                }
                Some(e) => match e.kind.last_index() {
                    Some(last) if last < persisted_index => violations.push(format!(
                        "{what}: recovered its log up to index {last}, but index \
                         {persisted_index} was durable before it"
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
        unseen: Vec::new(),
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
            let torn = match (f.torn_at, &f.torn_pages) {
                (Some(t), _) => format!(", the last torn at byte {t}"),
                (None, Some(pages)) => format!(", the last torn: pages {pages:?} kept"),
                (None, None) => String::new(),
            };
            format!("{name}: {} of {} unsynced writes kept{torn}", f.kept_ops, f.unsynced_ops)
        })
        .collect();
    parts.extend(report.dirs.iter().flat_map(|d| d.lost.iter().map(|op| format!("lost: {op}"))));
    if parts.is_empty() {
        return "nothing was unsynced".into();
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::storage::DiskError;

    fn crash_at(time_ms: u64, persisted_index: Index) -> CrashRecord {
        let request = CrashRequest::new(CrashFamily::LoseUnsynced, 3);
        let report = CrashReport { family: request.family, seed: 3, files: vec![], dirs: vec![] };
        CrashRecord { time_ms, request, at_sync: true, persisted_index, report }
    }

    fn event(time_ms: u64, name: &str, last_index: Option<Index>) -> String {
        let reason = matches!(name, "refused" | "failed").then(|| "bad storage".to_string());
        let e = serde_json::json!({"time_ms": time_ms, "node": 1, "event": name, "term": 1,
                                   "last_index": last_index, "reason": reason});
        e.to_string() + "\n"
    }

    /// The check over one node whose records are `crashes`, `errors` and `events`.
    fn check(
        crashes: &[CrashRecord],
        errors: &[DiskErrorRecord],
        events: &[String],
    ) -> SafetyCheck {
        let dir = tempfile::tempdir().unwrap();
        for c in crashes {
            append_record(&dir.path().join(RECORD_FILE), c).unwrap();
        }
        for e in errors {
            append_record(&dir.path().join(ERROR_RECORD_FILE), e).unwrap();
        }
        std::fs::write(dir.path().join("events.jsonl"), events.concat()).unwrap();
        std::fs::write(dir.path().join("applied.jsonl"), "").unwrap();
        check_recovery(&[(1, dir.path())]).unwrap()
    }

    #[test]
    fn a_restart_with_the_durable_log_is_a_recovery() {
        let c = check(
            &[crash_at(100, 5)],
            &[],
            &[event(50, "started", Some(0)), event(120, "restarted", Some(5))],
        );
        assert!(c.valid, "{c:?}");
    }

    #[test]
    fn a_shorter_log_a_refusal_or_no_restart_after_a_crash_is_a_violation() {
        let c = check(&[crash_at(100, 5)], &[], &[event(120, "restarted", Some(4))]);
        assert!(c.violations[0].contains("recovered its log up to index 4, but index 5"), "{c:?}");
        let c = check(&[crash_at(100, 5)], &[], &[event(120, "refused", None)]);
        assert!(c.violations[0].ends_with("refused to start: bad storage"), "{c:?}");
        let c = check(&[crash_at(100, 5)], &[], &[event(50, "started", Some(0))]);
        assert!(c.violations[0].ends_with("never started again"), "{c:?}");
    }

    #[test]
    fn a_node_must_stop_after_an_injected_disk_error() {
        let injected =
            InjectedError { error: DiskError::EioOnSync, path: "wal.log".into(), lost_bytes: 9 };
        let error = DiskErrorRecord {
            time_ms: 100,
            request: DiskErrorRequest { error: DiskError::EioOnSync },
            injected: Some(injected),
            persisted_index: 5,
        };
        let stopped = [event(101, "failed", None), event(200, "restarted", Some(5))];
        assert!(check(&[], std::slice::from_ref(&error), &stopped).valid);
        let c = check(&[], std::slice::from_ref(&error), &[event(200, "restarted", Some(5))]);
        assert!(
            c.violations[0].contains("(eio-on-sync on wal.log, 9 unsynced bytes lost): carried on"),
            "{c:?}"
        );
        // An error that found nothing to fail asks nothing of the node.
        let idle = DiskErrorRecord { injected: None, ..error };
        assert!(check(&[], &[idle], &[]).valid);
    }
}
