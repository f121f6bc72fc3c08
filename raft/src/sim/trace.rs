//! A bounded record of the simulation's most recent events, printed when a check fails so that
//! the reader sees what led there.
//!
//! Events are stored as small copyable values and only formatted when the trace is printed, so
//! recording costs little on every step.

use crate::core::{Index, Message, MessageBody, NodeId, Role, Term};
use std::collections::VecDeque;
use std::fmt;

/// The part of a message worth showing in a trace (no entry payloads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgSummary {
    /// The sender.
    pub from: NodeId,
    /// The destination.
    pub to: NodeId,
    /// The message's term.
    pub term: Term,
    /// The kind-specific fields.
    pub detail: MsgDetail,
}

/// The kind-specific fields of a [`MsgSummary`], named as in [`MessageBody`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgDetail {
    /// A (pre-)vote request.
    Vote {
        /// Whether it is a pre-vote.
        pre_vote: bool,
        /// The candidate's last log index.
        last_log_index: Index,
        /// The candidate's last log term.
        last_log_term: Term,
    },
    /// The answer to a (pre-)vote request.
    VoteResponse {
        /// Whether it answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// An AppendEntries request.
    Append {
        /// The index before the entries.
        prev_log_index: Index,
        /// The term at `prev_log_index`.
        prev_log_term: Term,
        /// How many entries it carries.
        entries: usize,
        /// The term of its last entry (0 without entries).
        last_term: Term,
        /// The leader's commit index.
        commit: Index,
    },
    /// The answer to AppendEntries.
    AppendResponse {
        /// Whether the entries were accepted.
        success: bool,
        /// The matching index on success, the rejected `prev_log_index` on failure.
        index: Index,
        /// On failure, the term of the follower's conflicting entry.
        conflict_term: Option<Term>,
        /// On failure, the first index of that term (or the follower's last index + 1).
        conflict_index: Index,
    },
    /// A heartbeat.
    Heartbeat {
        /// The commit index it announces.
        commit: Index,
        /// The leader's heartbeat round.
        round: u64,
    },
    /// The answer to a heartbeat.
    HeartbeatResponse {
        /// The round it answers.
        round: u64,
    },
    /// A follower's read, forwarded to the leader.
    ReadIndex {
        /// The follower's number for it.
        request: u64,
    },
    /// The leader's answer to a forwarded read.
    ReadIndexResponse {
        /// The follower's number for it.
        request: u64,
        /// The index the read may be served at.
        index: Index,
    },
    /// A chunk of the leader's snapshot.
    SnapshotChunk {
        /// The snapshot's last index and term.
        index: Index,
        snapshot_term: Term,
        /// Where the chunk starts, how long it is, and the snapshot's whole length.
        offset: u64,
        len: usize,
        total: u64,
    },
    /// The answer to a chunk.
    SnapshotResponse {
        /// The snapshot's last index.
        index: Index,
        /// How many of its bytes the follower holds.
        received: u64,
    },
}

impl MsgSummary {
    /// Summarizes `msg`.
    pub fn of(msg: &Message) -> MsgSummary {
        let detail = match &msg.body {
            MessageBody::RequestVote { pre_vote, last_log_index, last_log_term } => {
                MsgDetail::Vote {
                    pre_vote: *pre_vote,
                    last_log_index: *last_log_index,
                    last_log_term: *last_log_term,
                }
            }
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                MsgDetail::VoteResponse { pre_vote: *pre_vote, granted: *granted }
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => MsgDetail::Append {
                prev_log_index: *prev_log_index,
                prev_log_term: *prev_log_term,
                entries: entries.len(),
                last_term: entries.last().map_or(0, |e| e.term),
                commit: *leader_commit,
            },
            MessageBody::AppendEntriesResponse {
                success,
                index,
                conflict_term,
                conflict_index,
            } => MsgDetail::AppendResponse {
                success: *success,
                index: *index,
                conflict_term: *conflict_term,
                conflict_index: *conflict_index,
            },
            MessageBody::Heartbeat { commit, round } => {
                MsgDetail::Heartbeat { commit: *commit, round: *round }
            }
            MessageBody::HeartbeatResponse { round } => {
                MsgDetail::HeartbeatResponse { round: *round }
            }
            MessageBody::ReadIndex { request } => MsgDetail::ReadIndex { request: *request },
            MessageBody::ReadIndexResponse { request, index } => {
                MsgDetail::ReadIndexResponse { request: *request, index: *index }
            }
            MessageBody::InstallSnapshot { index, snapshot_term, offset, total, data } => {
                MsgDetail::SnapshotChunk {
                    index: *index,
                    snapshot_term: *snapshot_term,
                    offset: *offset,
                    len: data.len(),
                    total: *total,
                }
            }
            MessageBody::InstallSnapshotResponse { index, received } => {
                MsgDetail::SnapshotResponse { index: *index, received: *received }
            }
        };
        MsgSummary { from: msg.from, to: msg.to, term: msg.term, detail }
    }
}

impl fmt::Display for MsgSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}->n{} ", self.from, self.to)?;
        match self.detail {
            MsgDetail::Vote { pre_vote, last_log_index, last_log_term } => write!(
                f,
                "{} t{} last={}/t{}",
                if pre_vote { "PreVote" } else { "RequestVote" },
                self.term,
                last_log_index,
                last_log_term
            ),
            MsgDetail::VoteResponse { pre_vote, granted } => write!(
                f,
                "{} t{} {}",
                if pre_vote { "PreVoteResponse" } else { "RequestVoteResponse" },
                self.term,
                if granted { "granted" } else { "rejected" }
            ),
            MsgDetail::Append { prev_log_index, prev_log_term, entries, last_term, commit } => {
                write!(
                    f,
                    "AppendEntries t{} prev={}/t{}",
                    self.term, prev_log_index, prev_log_term
                )?;
                if entries > 0 {
                    write!(
                        f,
                        " entries={}..={} (last t{})",
                        prev_log_index + 1,
                        prev_log_index + entries as Index,
                        last_term
                    )?;
                }
                write!(f, " commit={commit}")
            }
            MsgDetail::AppendResponse { success, index, conflict_term, conflict_index } => {
                write!(f, "AppendEntriesResponse t{} ", self.term)?;
                if success {
                    write!(f, "ok match={index}")
                } else {
                    write!(
                        f,
                        "reject prev={index} conflict_index={conflict_index} conflict_term={conflict_term:?}"
                    )
                }
            }
            MsgDetail::Heartbeat { commit, round } => {
                write!(f, "Heartbeat t{} commit={commit} round={round}", self.term)
            }
            MsgDetail::HeartbeatResponse { round } => {
                write!(f, "HeartbeatResponse t{} round={round}", self.term)
            }
            MsgDetail::ReadIndex { request } => {
                write!(f, "ReadIndex t{} request={request}", self.term)
            }
            MsgDetail::ReadIndexResponse { request, index } => {
                write!(f, "ReadIndexResponse t{} request={request} index={index}", self.term)
            }
            MsgDetail::SnapshotChunk { index, snapshot_term, offset, len, total } => write!(
                f,
                "InstallSnapshot t{} snap={index}/t{snapshot_term} bytes {offset}+{len} of {total}",
                self.term
            ),
            MsgDetail::SnapshotResponse { index, received } => {
                write!(f, "InstallSnapshotResponse t{} snap={index} received={received}", self.term)
            }
        }
    }
}

/// Why the network lost a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The unreliable network lost it.
    Lost,
    /// The link was cut when it was sent.
    CutAtSend,
    /// The link was cut when it arrived.
    CutAtDelivery,
    /// The destination was down when it was sent.
    DestinationDown,
    /// The destination crashed (or restarted) while it was in flight.
    DestinationCrashed,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// A message left its sender.
    Sent {
        /// The message.
        msg: MsgSummary,
        /// Microseconds until it arrives.
        delay_us: u64,
        /// Microseconds until its duplicate arrives, when the network duplicated it.
        duplicate_delay_us: Option<u64>,
    },
    /// A message reached its destination and was stepped.
    Delivered(MsgSummary),
    /// A message was lost.
    Dropped(MsgSummary, DropReason),
    /// A peer's role or term changed.
    Role {
        /// The peer.
        node: NodeId,
        /// Its role now.
        role: Role,
        /// Its term now.
        term: Term,
    },
    /// A proposal was accepted by a leader.
    Proposed {
        /// The leader.
        node: NodeId,
        /// The index the command got.
        index: Index,
        /// The leader's term.
        term: Term,
    },
    /// A power failure struck a peer during a sync, keeping part of one ready's writes.
    PowerFailure {
        /// The peer.
        node: NodeId,
        /// The crash family.
        family: crate::storage::CrashFamily,
        /// What of the ready reached the disk.
        kept: super::node::PartialWrite,
    },
    /// A peer applied entries `from..=to`.
    Applied {
        /// The peer.
        node: NodeId,
        /// The first index applied.
        from: Index,
        /// The last index applied.
        to: Index,
    },
    /// A peer made entries `from..=to` durable (replacing whatever followed `from - 1`).
    Persisted {
        /// The peer.
        node: NodeId,
        /// The first index written.
        from: Index,
        /// The last index written.
        to: Index,
    },
    /// A peer's service snapshotted its state at `index`.
    SnapshotTaken {
        /// The peer.
        node: NodeId,
        /// The last index the snapshot covers.
        index: Index,
    },
    /// A peer's service restored the leader's snapshot up to `index` (of `term`).
    SnapshotRestored {
        /// The peer.
        node: NodeId,
        /// The last index the snapshot covers.
        index: Index,
        /// The term of the entry at `index`.
        term: Term,
    },
    /// A peer crashed.
    Crash(NodeId),
    /// A peer restarted from its durable state.
    Restart(NodeId),
    /// A peer was connected.
    Connect(NodeId),
    /// A peer was disconnected.
    Disconnect(NodeId),
    /// A free-form note from the driver (a network mode change, a test step).
    Note(String),
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Virtual time in microseconds.
    pub time_us: u64,
    /// What happened.
    pub kind: TraceKind,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>6}.{:03}ms  ", self.time_us / 1000, self.time_us % 1000)?;
        match &self.kind {
            TraceKind::Sent { msg, delay_us, duplicate_delay_us } => {
                write!(f, "send     {msg} (arrives in {:.1}ms", *delay_us as f64 / 1000.0)?;
                if let Some(d) = duplicate_delay_us {
                    write!(f, ", duplicate in {:.1}ms", *d as f64 / 1000.0)?;
                }
                write!(f, ")")
            }
            TraceKind::Delivered(msg) => write!(f, "deliver  {msg}"),
            TraceKind::Dropped(msg, why) => {
                let why = match why {
                    DropReason::Lost => "lost by the network",
                    DropReason::CutAtSend => "link cut at send",
                    DropReason::CutAtDelivery => "link cut at delivery",
                    DropReason::DestinationDown => "destination down",
                    DropReason::DestinationCrashed => "destination crashed in flight",
                };
                write!(f, "drop     {msg} ({why})")
            }
            TraceKind::Role { node, role, term } => write!(f, "n{node} is {role:?} in term {term}"),
            TraceKind::Proposed { node, index, term } => {
                write!(f, "n{node} accepted a proposal at index {index} term {term}")
            }
            TraceKind::Applied { node, from, to } => write!(f, "n{node} applied {from}..={to}"),
            TraceKind::Persisted { node, from, to } => {
                if to < from {
                    write!(f, "n{node} truncated its log after {}", from - 1)
                } else {
                    write!(f, "n{node} persisted {from}..={to}")
                }
            }
            TraceKind::PowerFailure { node, family, kept } => write!(
                f,
                "n{node} POWER FAILURE ({family}) at the {:?} step of a sync: kept the hard state: {}, the snapshot: {}, the cut: {}, {} appended entries",
                kept.crashed_at, kept.hard_state, kept.snapshot, kept.cut, kept.entries
            ),
            TraceKind::SnapshotTaken { node, index } => {
                write!(f, "n{node} snapshotted its state up to {index}")
            }
            TraceKind::SnapshotRestored { node, index, term } => {
                write!(f, "n{node} restored the leader's snapshot up to {index} (term {term})")
            }
            TraceKind::Crash(n) => write!(f, "n{n} CRASHED"),
            TraceKind::Restart(n) => write!(f, "n{n} restarted from its durable state"),
            TraceKind::Connect(n) => write!(f, "n{n} connected"),
            TraceKind::Disconnect(n) => write!(f, "n{n} disconnected"),
            TraceKind::Note(s) => write!(f, "-- {s}"),
        }
    }
}

/// A ring buffer of the last `capacity` events.
#[derive(Clone, Debug)]
pub struct Trace {
    events: VecDeque<TraceEvent>,
    capacity: usize,
    total: u64,
}

impl Trace {
    /// An empty trace keeping the last `capacity` events (0 records nothing).
    pub fn new(capacity: usize) -> Trace {
        Trace { events: VecDeque::with_capacity(capacity), capacity, total: 0 }
    }

    /// Records an event.
    #[inline]
    pub fn record(&mut self, time_us: u64, kind: TraceKind) {
        self.total += 1;
        if self.capacity == 0 {
            return;
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(TraceEvent { time_us, kind });
    }

    /// The events kept, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &TraceEvent> {
        self.events.iter()
    }

    /// How many events were recorded in all (kept or not).
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skipped = self.total - self.events.len() as u64;
        if skipped > 0 {
            writeln!(f, "  ... {skipped} earlier events")?;
        }
        for e in &self.events {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_events() {
        let mut t = Trace::new(2);
        t.record(1, TraceKind::Crash(0));
        t.record(2, TraceKind::Restart(0));
        t.record(3_500, TraceKind::Connect(1));
        let kept: Vec<_> = t.events().map(|e| e.time_us).collect();
        assert_eq!(kept, vec![2, 3_500]);
        assert_eq!(t.total(), 3);
        let text = t.to_string();
        assert!(text.contains("1 earlier events"), "{text}");
        assert!(text.contains("3.500ms  n1 connected"), "{text}");
    }
}
