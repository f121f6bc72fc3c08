//! The files a node writes for offline checking: `events.jsonl` (starts, role changes and the
//! protocol events of [`TraceEvent`]) and
//! `applied.jsonl` (every log entry it applied, in index order, once across restarts).
//!
//! Both are appended with plain `write` calls and not fsynced: they survive SIGKILL (the page
//! cache belongs to the kernel), which is the crash the gauntlet injects.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use raft::node::TraceEvent;
use raft::{Index, NodeId, Term};

use super::kv::digest;

/// One line of `events.jsonl`: the checker's type, so that writer and reader agree.
pub use checker::safety::{NodeEvent as Event, NodeEventKind as EventKind};

/// An event of this node in `term` (the [`EventLog`] stamps the node and the time).
pub fn event(term: Option<Term>, kind: EventKind) -> Event {
    Event::new(0, term, kind)
}

/// The line for a protocol event of the Raft node.
pub fn from_trace(trace: &TraceEvent) -> Event {
    match *trace {
        TraceEvent::VoteGranted { term, candidate, candidate_last, own_last } => event(
            Some(term),
            EventKind::VoteGranted {
                candidate,
                candidate_last_index: candidate_last.map(|l| l.0),
                candidate_last_term: candidate_last.map(|l| l.1),
                last_index: own_last.map(|l| l.0),
                last_term: own_last.map(|l| l.1),
            },
        ),
        TraceEvent::HigherTerm {
            from,
            message,
            granted,
            message_term,
            term_before,
            term_after,
            role_before,
        } => event(
            Some(term_before),
            EventKind::HigherTerm {
                from,
                message: message.to_string(),
                granted,
                message_term,
                term_after,
                role_before: format!("{role_before:?}"),
            },
        ),
        TraceEvent::BecameLeader { term, last_index } => {
            event(Some(term), EventKind::BecameLeader { last_index })
        }
        TraceEvent::SteppedDown { term, last_index } => {
            event(Some(term), EventKind::SteppedDown { last_index })
        }
        TraceEvent::LeaderCommit { term, index, entry_term } => {
            event(Some(term), EventKind::LeaderCommit { index, entry_term })
        }
    }
}

/// The newest term, and the vote in it, that `events.jsonl` in `dir` shows were durable: a
/// `vote-granted` is written after the vote's sync, and a `started` or `restarted` records the
/// hard state its start recovered. `None` when the file holds neither.
///
/// A node whose storage recovers less than this lost its hard state (a restored old copy, a
/// damaged disk): running on could make it vote twice in a term.
pub fn durable_vote(dir: &Path, node: NodeId) -> anyhow::Result<Option<(Term, Option<NodeId>)>> {
    let record = checker::safety::NodeRecord::read_dir(node, dir)
        .with_context(|| format!("reading {}", dir.join("events.jsonl").display()))?;
    let mut newest: Option<(Term, Option<NodeId>)> = None;
    for e in &record.events {
        let (Some(term), vote) = (
            e.term,
            match e.kind {
                EventKind::VoteGranted { candidate, .. } => Some(candidate),
                EventKind::Started { vote, .. } | EventKind::Restarted { vote, .. } => vote,
                _ => continue,
            },
        ) else {
            continue;
        };
        newest = match newest {
            Some((t, v)) if t > term || (t == term && vote.is_none()) => Some((t, v)),
            _ => Some((term, vote)),
        };
    }
    Ok(newest)
}

/// Now, in milliseconds since the Unix epoch: the clock of every record a node directory
/// holds (`events.jsonl`, crashes, disk errors, damage).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `events.jsonl`.
pub struct EventLog {
    file: File,
    node: NodeId,
}

impl EventLog {
    /// Opens (or creates) the file in `dir` for appending.
    pub fn open(dir: &Path, node: NodeId) -> anyhow::Result<EventLog> {
        let path = dir.join("events.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(EventLog { file, node })
    }

    /// Appends one event, stamped with this node and the time.
    pub fn record(&mut self, mut event: Event) -> io::Result<()> {
        event.time_ms = Some(now_ms());
        event.node = self.node;
        let mut line = serde_json::to_vec(&event).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }
}

/// One line of `applied.jsonl`: the checker's type, so that writer and readers agree.
pub use checker::safety::AppliedEntry;
use checker::safety::{NOOP_KIND, SNAPSHOT_KIND};

/// `applied.jsonl`: one gap-free, in-order sequence of entries across restarts.
pub struct AppliedLog {
    file: File,
    /// The last index in the file.
    logged: Index,
    /// The last index marked durable in the file.
    durable: Index,
    buf: Vec<u8>,
}

impl AppliedLog {
    /// Opens (or creates) the file in `dir` and finds the last index it holds. An incomplete
    /// last line (a crash in the middle of a write) is cut off: its entry is logged again when
    /// the restarted node applies it.
    pub fn open(dir: &Path) -> anyhow::Result<AppliedLog> {
        let path = dir.join("applied.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).with_context(|| format!("reading {}", path.display()))?;
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        if complete < text.len() {
            tracing::warn!(
                file = %path.display(),
                dropped_bytes = text.len() - complete,
                "cutting an incomplete last line"
            );
            file.set_len(complete as u64)
                .with_context(|| format!("truncating {}", path.display()))?;
            file.seek(SeekFrom::End(0))?;
        }
        let mut logged = 0;
        let mut durable = 0;
        for (n, line) in text[..complete].split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let entry: AppliedEntry = serde_json::from_slice(line).with_context(|| {
                format!("{} line {}: not an applied entry", path.display(), n + 1)
            })?;
            // A snapshot stands for the indexes up to its own (one that went back is the
            // offline checks' to report; the node goes on from the highest index).
            let snapshot = entry.is_snapshot();
            if entry.index != logged + 1 && !snapshot {
                bail!(
                    "{} line {}: index {} follows index {logged}",
                    path.display(),
                    n + 1,
                    entry.index
                );
            }
            logged = logged.max(entry.index);
            if entry.durable {
                durable = entry.index;
            }
        }
        Ok(AppliedLog { file, logged, durable, buf: Vec::with_capacity(64 << 10) })
    }

    /// The last index in the file.
    pub fn logged(&self) -> Index {
        self.logged
    }

    /// The last index the file shows was in the node's own durable log when applied.
    pub fn durable(&self) -> Index {
        self.durable
    }

    /// Adds the entry at `index` if the file does not hold it yet (it does after a restart,
    /// when the node applies its log again from index 1). Buffered until [`flush`].
    ///
    /// [`flush`]: AppliedLog::flush
    pub fn push(
        &mut self,
        index: Index,
        term: Term,
        noop: bool,
        command: &[u8],
        session: Option<(u64, u64)>,
        durable: bool,
    ) {
        if index <= self.logged {
            return;
        }
        if index != self.logged + 1 {
            // The runtime delivers every index in order; a gap here would be a bug in it.
            tracing::error!(index, logged = self.logged, "applied.jsonl would get a gap");
        }
        let entry = AppliedEntry {
            index,
            term,
            digest: format!("{:016x}", digest(command)),
            client: session.map(|s| s.0),
            seq: session.map(|s| s.1),
            kind: noop.then(|| NOOP_KIND.to_string()),
            durable,
        };
        serde_json::to_writer(&mut self.buf, &entry).expect("an applied entry serializes");
        self.buf.push(b'\n');
        self.logged = index;
    }

    /// Records that the state became a snapshot's, up to `index` (of `term`), when the file does
    /// not reach `index` yet: the indexes after its last line up to `index` were applied as part
    /// of the snapshot (the leader's, installed because this node was too far behind, or its
    /// own, after a crash that lost the file's last lines), not one by one. The line's digest
    /// is the snapshot data's. A snapshot that took the state `back` is written wherever it
    /// is, for the checks to find. Buffered until [`flush`].
    ///
    /// [`flush`]: AppliedLog::flush
    pub fn push_snapshot(&mut self, index: Index, term: Term, data: &[u8], back: bool) {
        if index <= self.logged && !back {
            return;
        }
        let entry = AppliedEntry {
            index,
            term,
            digest: format!("{:016x}", digest(data)),
            kind: Some(SNAPSHOT_KIND.to_string()),
            ..AppliedEntry::default()
        };
        serde_json::to_writer(&mut self.buf, &entry).expect("an applied entry serializes");
        self.buf.push(b'\n');
        self.logged = self.logged.max(index);
    }

    /// Writes what was pushed, in one write.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "gauntlet-events-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn applied_lines_are_logged_once_across_restarts_and_a_torn_line_is_cut() {
        let dir = temp_dir("applied");
        let mut log = AppliedLog::open(&dir).unwrap();
        log.push(1, 1, true, b"", None, true);
        log.push(2, 1, false, b"cmd", Some((4, 9)), false);
        log.flush().unwrap();
        drop(log);

        // A torn write of the third line.
        let path = dir.join("applied.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"index\":3,\"te").unwrap();
        drop(f);

        let mut log = AppliedLog::open(&dir).unwrap();
        assert_eq!((log.logged(), log.durable()), (2, 1));
        // The restarted node applies from index 1 again.
        log.push(1, 1, true, b"", None, true);
        log.push(2, 1, false, b"cmd", Some((4, 9)), true);
        log.push(3, 2, false, b"next", None, true);
        log.flush().unwrap();
        assert_eq!(AppliedLog::open(&dir).unwrap().durable(), 3);

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<AppliedEntry> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.iter().map(|l| l.index).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(lines[0].kind.as_deref(), Some("noop"));
        assert_eq!(lines[0].client, None);
        assert_eq!((lines[1].client, lines[1].seq), (Some(4), Some(9)));
        assert_eq!(lines[1].digest, format!("{:016x}", digest(b"cmd")));
        assert_eq!(lines[1].kind, None);
        // Lines already in the file are not written again, with their flags.
        assert_eq!(lines.iter().map(|l| l.durable).collect::<Vec<_>>(), vec![true, false, true]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_gap_in_the_file_is_refused() {
        let dir = temp_dir("gap");
        std::fs::write(
            dir.join("applied.jsonl"),
            "{\"index\":1,\"term\":1,\"digest\":\"00\"}\n{\"index\":3,\"term\":1,\"digest\":\"00\"}\n",
        )
        .unwrap();
        let err = AppliedLog::open(&dir).err().expect("refused");
        assert!(err.to_string().contains("index 3 follows index 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_snapshot_line_skips_forward_and_one_that_went_back_is_written_for_the_checks() {
        let dir = temp_dir("snapshot");
        let mut log = AppliedLog::open(&dir).unwrap();
        log.push(1, 1, true, b"", None, true);
        // The leader's snapshot up to 5; then entry 6.
        log.push_snapshot(5, 1, b"state", false);
        log.push(6, 1, false, b"cmd", None, true);
        // A restart's own snapshot at 5 again: already covered, not written.
        log.push_snapshot(5, 1, b"state", false);
        // One that took the state back is written all the same.
        log.push_snapshot(3, 1, b"older", true);
        log.flush().unwrap();
        let reopened = AppliedLog::open(&dir).unwrap();
        assert_eq!(reopened.logged(), 6);
        let text = std::fs::read_to_string(dir.join("applied.jsonl")).unwrap();
        let lines: Vec<AppliedEntry> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.iter().map(|l| l.index).collect::<Vec<_>>(), vec![1, 5, 6, 3]);
        assert!(lines[1].is_snapshot() && lines[3].is_snapshot());
        assert_eq!(lines[1].digest, format!("{:016x}", digest(b"state")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
