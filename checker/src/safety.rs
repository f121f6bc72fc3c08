//! Raft's safety properties, checked offline over what every node wrote while it ran:
//! `applied.jsonl` (what it applied, in order) and `events.jsonl` (its role changes).
//!
//! - **State machine safety**: no two nodes applied different entries at one index.
//! - **In-order application**: each node applied indexes 1, 2, 3, ... without gaps, across
//!   restarts (a node re-applying its log after a restart does not log an index twice).
//! - **Election safety**: at most one node became leader in any term.
//! - **Durability of acknowledged writes**: every write a client saw acknowledged is in every
//!   node's final log.
//!
//! And Figure 2's rules over the protocol events the nodes report (see `raft::node::TraceEvent`),
//! which a run may break without any client noticing:
//!
//! - **Votes are durable**: a node grants at most one candidate per term, and a node that
//!   restarts in a term in which it voted recovers that vote.
//! - **Votes only for up-to-date logs** (§5.4.1): a node grants its vote only to a candidate
//!   whose last log entry has a higher term than its own, or the same term and an index at
//!   least as high.
//! - **Term adoption** (§5.1): a node that steps a message of a higher term (other than a vote
//!   request, which check-quorum's lease may ignore, or a granted pre-vote) takes that term.
//! - **Leader commit rule** (§5.4.2): a leader's commit index first moves to an entry of its own
//!   term; earlier terms' entries commit only together with one.
//!
//! The files' formats are those of the `gauntlet node` process; see `docs/node.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::history::{EventType, History, Process};

/// [`AppliedEntry::kind`] of a leader's no-op entry.
pub const NOOP_KIND: &str = "noop";

/// [`AppliedEntry::kind`] of a line that stands for a snapshot the node's state became: every
/// index after the line before it, up to its own, was applied as part of the snapshot rather
/// than one by one (its digest is the snapshot data's).
pub const SNAPSHOT_KIND: &str = "snapshot";

/// One line of `applied.jsonl`: the type its writer (the gauntlet node) and its readers share.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedEntry {
    /// The log index.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
    /// A digest of the command's bytes.
    pub digest: String,
    /// The client that proposed the command (absent for a leader's no-op entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<u64>,
    /// The client's sequence number of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// [`NOOP_KIND`] for a leader's no-op entry, [`SNAPSHOT_KIND`] for a snapshot; absent for
    /// commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether the entry was in the node's own durable log when it was applied (the node's
    /// persisted index had reached it). A committed entry is never removed from a log, so a
    /// restart must recover at least the last such entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub durable: bool,
}

/// One line of `events.jsonl`: when, which node, in which term, and what happened.
///
/// ```
/// use checker::safety::{NodeEvent, NodeEventKind};
/// let line = r#"{"time_ms":5,"node":2,"term":3,"event":"became-leader","last_index":9}"#;
/// let e: NodeEvent = serde_json::from_str(line)?;
/// assert_eq!(e.kind, NodeEventKind::BecameLeader { last_index: 9 });
/// assert_eq!(serde_json::to_string(&e)?, line);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// Wall-clock time of the event, milliseconds since the Unix epoch.
    #[serde(default)]
    pub time_ms: Option<u64>,
    /// The node.
    pub node: u64,
    /// The term the event happened in (for a start, the term it recovered; none when its
    /// storage could not be opened).
    #[serde(default)]
    pub term: Option<u64>,
    /// What happened, named by the line's `event` field.
    #[serde(flatten)]
    pub kind: NodeEventKind,
}

impl NodeEvent {
    /// An event of `node` in `term`, without a time.
    pub fn new(node: u64, term: Option<u64>, kind: NodeEventKind) -> Self {
        NodeEvent { time_ms: None, node, term, kind }
    }
}

/// What a [`NodeEvent`] records, with the fields each kind has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum NodeEventKind {
    /// A first start (on empty storage), with the hard state recovered (its term is the
    /// event's).
    Started {
        /// The vote recovered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vote: Option<u64>,
        /// The last log index recovered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_index: Option<u64>,
    },
    /// A start on existing storage, with the hard state recovered.
    Restarted {
        /// The vote recovered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vote: Option<u64>,
        /// The last log index recovered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_index: Option<u64>,
    },
    /// A start that found storage it cannot trust (the node then exited without serving).
    Refused {
        /// Why it refused.
        reason: String,
        /// The vote recovered, when the storage could be opened.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vote: Option<u64>,
        /// The last log index recovered, when the storage could be opened.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_index: Option<u64>,
    },
    /// The node stopped on an error (a failed sync, say) instead of carrying on.
    Failed {
        /// The error.
        reason: String,
    },
    /// The node became leader.
    BecameLeader {
        /// Its last log index then.
        last_index: u64,
    },
    /// The node stopped leading.
    SteppedDown {
        /// Its last log index then.
        last_index: u64,
    },
    /// The node granted its vote (the message went out after the vote's sync).
    VoteGranted {
        /// Whom to.
        candidate: u64,
        /// The last log index the vote request carried (absent: an empty log).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate_last_index: Option<u64>,
        /// The last log term the vote request carried.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate_last_term: Option<u64>,
        /// The node's own last log index when it decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_index: Option<u64>,
        /// The node's own last log term when it decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_term: Option<u64>,
    },
    /// The node stepped a message of a higher term than its own (the event's term is the
    /// node's before).
    HigherTerm {
        /// The sender.
        from: u64,
        /// The message's kind (`AppendEntries`, `PreVoteResponse`, ...).
        message: String,
        /// Whether a (pre-)vote response granted the vote.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        granted: Option<bool>,
        /// The term the message carried.
        message_term: u64,
        /// The node's term after it stepped the message.
        term_after: u64,
        /// The node's role before (`Leader`, `Follower`, ...).
        role_before: String,
    },
    /// Where a leadership's commit index first moved.
    LeaderCommit {
        /// The index.
        index: u64,
        /// The term of its entry.
        entry_term: u64,
    },
    /// An event this reader does not know (a newer writer's); the checks pass it by.
    #[serde(other)]
    Other,
}

impl NodeEventKind {
    /// Whether this is a start of the node: `started`, `restarted` or `refused`.
    pub fn is_start(&self) -> bool {
        matches!(
            self,
            NodeEventKind::Started { .. }
                | NodeEventKind::Restarted { .. }
                | NodeEventKind::Refused { .. }
        )
    }

    /// The last log index the event records, if it records one.
    pub fn last_index(&self) -> Option<u64> {
        match *self {
            NodeEventKind::Started { last_index, .. }
            | NodeEventKind::Restarted { last_index, .. }
            | NodeEventKind::Refused { last_index, .. }
            | NodeEventKind::VoteGranted { last_index, .. } => last_index,
            NodeEventKind::BecameLeader { last_index }
            | NodeEventKind::SteppedDown { last_index } => Some(last_index),
            _ => None,
        }
    }
}

/// What one node left behind.
#[derive(Clone, Debug, Default)]
pub struct NodeRecord {
    /// The node's id.
    pub node: u64,
    /// Its `applied.jsonl`, in file order.
    pub applied: Vec<AppliedEntry>,
    /// Its `events.jsonl`, in file order.
    pub events: Vec<NodeEvent>,
}

impl NodeRecord {
    /// Reads `applied.jsonl` and `events.jsonl` from a node's directory; a missing file counts as
    /// empty (a node that never applied anything), a malformed line is an error naming it.
    pub fn read_dir(node: u64, dir: &Path) -> Result<NodeRecord, Error> {
        Ok(NodeRecord {
            node,
            applied: read_jsonl(&dir.join("applied.jsonl"))?,
            events: read_jsonl(&dir.join("events.jsonl"))?,
        })
    }

    /// Reads a node's record from the texts of its `applied.jsonl` and `events.jsonl`, as
    /// [`read_dir`](Self::read_dir) does; `names` are what errors call the two texts.
    ///
    /// ```
    /// use checker::safety::NodeRecord;
    ///
    /// let applied = "{\"index\":1,\"term\":1,\"digest\":\"00ff\"}\n";
    /// let record = NodeRecord::parse(1, ("applied.jsonl", applied), ("events.jsonl", "")).unwrap();
    /// assert_eq!(record.applied.len(), 1);
    /// let bad = NodeRecord::parse(1, ("applied.jsonl", "{\n{}\n"), ("events.jsonl", ""));
    /// assert!(bad.unwrap_err().to_string().contains("applied.jsonl:1"));
    /// ```
    pub fn parse(
        node: u64,
        applied: (&str, &str),
        events: (&str, &str),
    ) -> Result<NodeRecord, Error> {
        Ok(NodeRecord {
            node,
            applied: parse_jsonl(applied.0, applied.1)?,
            events: parse_jsonl(events.0, events.1)?,
        })
    }
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, Error> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::Io { name, error }),
    };
    parse_jsonl(&name, &text)
}

/// One value per line; blank lines are skipped, and a torn last line (no final newline) is
/// what a killed writer leaves, not an error.
fn parse_jsonl<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            // A node killed in the middle of a write leaves a torn last line: not an error.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(Error::line(name, i + 1, e)),
        }
    }
    Ok(out)
}

/// The outcome of one safety check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyCheck {
    /// The check's name.
    pub name: String,
    /// Whether it held.
    pub valid: bool,
    /// The first violations found, in words (at most ten).
    pub violations: Vec<String>,
    /// How many violations there were in all.
    pub violation_count: usize,
    /// What the check could not see (for example entries a node only holds under a snapshot),
    /// in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unseen: Vec<String>,
}

impl SafetyCheck {
    fn new(name: &str, violations: Vec<String>) -> SafetyCheck {
        let violation_count = violations.len();
        SafetyCheck {
            name: name.to_string(),
            valid: violations.is_empty(),
            violations: violations.into_iter().take(10).collect(),
            violation_count,
            unseen: Vec::new(),
        }
    }
}

impl AppliedEntry {
    /// Whether the line stands for a snapshot rather than one entry.
    pub fn is_snapshot(&self) -> bool {
        self.kind.as_deref() == Some(SNAPSHOT_KIND)
    }
}

/// The (client, sequence number) of every write that a client saw acknowledged (`ok`).
///
/// A client process numbers its operations 1, 2, 3, ... in invocation order and the node records
/// that number with the entry, so the history alone names each write's log entry. Reads are not
/// writes; a `fail` write never took effect; an `info` write may or may not have.
pub fn acknowledged_writes(history: &History) -> BTreeSet<(u64, u64)> {
    let mut seq: HashMap<u64, u64> = HashMap::new();
    let mut open: HashMap<u64, u64> = HashMap::new();
    let mut acked = BTreeSet::new();
    for e in history.events() {
        let Process::Client(p) = e.process else { continue };
        match e.kind {
            EventType::Invoke => {
                let s = seq.entry(p).or_insert(0);
                *s += 1;
                open.insert(p, *s);
            }
            EventType::Ok if matches!(e.f.as_str(), "write" | "cas" | "put" | "append") => {
                if let Some(s) = open.remove(&p) {
                    acked.insert((p, s));
                }
            }
            _ => {
                open.remove(&p);
            }
        }
    }
    acked
}

/// Runs every safety check over the nodes' records. `acknowledged` comes from
/// [`acknowledged_writes`].
pub fn check_safety(nodes: &[NodeRecord], acknowledged: &BTreeSet<(u64, u64)>) -> Vec<SafetyCheck> {
    vec![
        check_state_machine_safety(nodes),
        check_in_order(nodes),
        check_one_leader_per_term(nodes),
        check_acknowledged_writes(nodes, acknowledged),
        check_votes_durable(nodes),
        check_votes_up_to_date(nodes),
        check_term_adoption(nodes),
        check_leader_commit_rule(nodes),
    ]
}

fn check_state_machine_safety(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut first: BTreeMap<u64, (u64, &AppliedEntry)> = BTreeMap::new();
    let mut snapshots: BTreeMap<u64, (u64, &AppliedEntry)> = BTreeMap::new();
    let mut violations = Vec::new();
    for n in nodes {
        for e in &n.applied {
            if e.is_snapshot() {
                // The same state at one index encodes to the same bytes.
                match snapshots.get(&e.index) {
                    None => {
                        snapshots.insert(e.index, (n.node, e));
                    }
                    Some((other, o)) if o.term != e.term || o.digest != e.digest => {
                        violations.push(format!(
                            "index {}: node {} restored a snapshot of term {} digest {}, node {} one of term {} digest {}",
                            e.index, other, o.term, o.digest, n.node, e.term, e.digest
                        ));
                    }
                    Some(_) => {}
                }
                continue;
            }
            match first.get(&e.index) {
                None => {
                    first.insert(e.index, (n.node, e));
                }
                Some((other, o)) if o.term != e.term || o.digest != e.digest => {
                    violations.push(format!(
                        "index {}: node {} applied term {} digest {}, node {} applied term {} digest {}",
                        e.index, other, o.term, o.digest, n.node, e.term, e.digest
                    ));
                }
                Some(_) => {}
            }
        }
    }
    // A snapshot names the term of the last entry it covers: the one applied there.
    for (index, (node, snapshot)) in &snapshots {
        if let Some((other, e)) = first.get(index).filter(|(_, e)| e.term != snapshot.term) {
            violations.push(format!(
                "index {index}: node {node} restored a snapshot ending in term {}, node {other} applied an entry of term {} there",
                snapshot.term, e.term
            ));
        }
    }
    SafetyCheck::new("state-machine-safety", violations)
}

fn check_in_order(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut violations = Vec::new();
    for n in nodes {
        let mut next = 1;
        for e in &n.applied {
            // A snapshot may move the state past indexes never applied one by one; never back.
            if e.index == next || (e.is_snapshot() && e.index >= next) {
                next = e.index + 1;
                continue;
            }
            let what = if e.is_snapshot() { "restored a snapshot up to" } else { "applied" };
            violations.push(format!(
                "node {} {what} index {} where index {next} was due",
                n.node, e.index
            ));
            break;
        }
    }
    SafetyCheck::new("applied-in-order", violations)
}

fn check_one_leader_per_term(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut leaders: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for n in nodes {
        for e in &n.events {
            if let (NodeEventKind::BecameLeader { .. }, Some(term)) = (&e.kind, e.term) {
                leaders.entry(term).or_default().insert(n.node);
            }
        }
    }
    let violations = leaders
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(term, ids)| format!("term {term} had leaders {ids:?}"))
        .collect();
    SafetyCheck::new("one-leader-per-term", violations)
}

fn check_acknowledged_writes(
    nodes: &[NodeRecord],
    acknowledged: &BTreeSet<(u64, u64)>,
) -> SafetyCheck {
    let mut violations = Vec::new();
    let mut unseen = Vec::new();
    // Where some node applied each write one by one.
    let mut applied_at: HashMap<(u64, u64), u64> = HashMap::new();
    for n in nodes {
        for e in &n.applied {
            if let (Some(client), Some(seq)) = (e.client, e.seq) {
                applied_at.entry((client, seq)).or_insert(e.index);
            }
        }
    }
    for n in nodes {
        let held: BTreeSet<(u64, u64)> =
            n.applied.iter().filter_map(|e| Some((e.client?, e.seq?))).collect();
        // Writes under one of its snapshots are in its state if they are where another node
        // applied them (state machine safety checks that the logs agree).
        let snapshot_to = n.applied.iter().filter(|e| e.is_snapshot()).map(|e| e.index).max();
        let under_snapshot = |w: &(u64, u64)| {
            snapshot_to.is_some_and(|to| applied_at.get(w).is_none_or(|&at| at <= to))
        };
        type Writes<'a> = Vec<&'a (u64, u64)>;
        let (covered, missing): (Writes, Writes) =
            acknowledged.difference(&held).partition(|w| under_snapshot(w));
        let invisible = covered.iter().filter(|w| !applied_at.contains_key(w)).count();
        if invisible > 0 {
            unseen.push(format!(
                "node {}: {invisible} acknowledged write(s) lie under its snapshot up to index {} and no node's record shows them one by one",
                n.node,
                snapshot_to.unwrap_or(0)
            ));
        }
        if let Some(first) = missing.first() {
            violations.push(format!(
                "node {} lacks {} acknowledged write(s), first: client {} seq {}",
                n.node,
                missing.len(),
                first.0,
                first.1
            ));
        }
    }
    SafetyCheck { unseen, ..SafetyCheck::new("acknowledged-writes-durable", violations) }
}

fn check_votes_durable(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut violations = Vec::new();
    for n in nodes {
        // term -> the candidate this node granted its vote to, across restarts.
        let mut granted: BTreeMap<u64, u64> = BTreeMap::new();
        for e in &n.events {
            let Some(term) = e.term else { continue };
            match e.kind {
                NodeEventKind::VoteGranted { candidate, .. } => match granted.get(&term) {
                    Some(&first) if first != candidate => violations.push(format!(
                        "node {} granted its vote in term {term} to {first}, then to {candidate}",
                        n.node
                    )),
                    Some(_) => {}
                    None => {
                        granted.insert(term, candidate);
                    }
                },
                // A refused start records the hard state it recovered too: it lost the vote
                // all the same, even though the node did not run on it.
                NodeEventKind::Restarted { vote, .. } | NodeEventKind::Refused { vote, .. } => {
                    if let Some(&voted_term) = granted.keys().next_back() {
                        if voted_term > term {
                            violations.push(format!(
                                "node {} granted a vote in term {voted_term}, then restarted in \
                                 term {term}",
                                n.node
                            ));
                        }
                    }
                    if let Some(&candidate) = granted.get(&term) {
                        if vote != Some(candidate) {
                            violations.push(format!(
                                "node {} granted its vote in term {term} to {candidate}, then \
                                 restarted in term {term} with vote {}",
                                n.node,
                                vote.map_or("none".to_string(), |v| v.to_string())
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    SafetyCheck::new("votes-durable", violations)
}

fn check_votes_up_to_date(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut violations = Vec::new();
    for n in nodes {
        for e in &n.events {
            let (
                Some(term),
                NodeEventKind::VoteGranted {
                    candidate,
                    candidate_last_index: Some(c_index),
                    candidate_last_term: Some(c_term),
                    last_index: Some(own_index),
                    last_term: Some(own_term),
                },
            ) = (e.term, &e.kind)
            else {
                continue;
            };
            if (c_term, c_index) < (own_term, own_index) {
                violations.push(format!(
                    "node {} voted in term {term} for {candidate}, whose log ends at index \
                     {c_index} of term {c_term}, behind its own (index {own_index} of term \
                     {own_term})",
                    n.node
                ));
            }
        }
    }
    SafetyCheck::new("votes-up-to-date", violations)
}

fn check_term_adoption(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut violations = Vec::new();
    for n in nodes {
        for e in &n.events {
            let (
                Some(before),
                NodeEventKind::HigherTerm {
                    from,
                    message,
                    granted,
                    message_term: carried,
                    term_after: after,
                    ..
                },
            ) = (e.term, &e.kind)
            else {
                continue;
            };
            let message = message.as_str();
            // A vote request may be ignored within a leader lease, and a granted pre-vote
            // carries the term its candidate would campaign in: neither must be adopted.
            let exempt = matches!(message, "RequestVote" | "PreVote")
                || (message == "PreVoteResponse" && *granted == Some(true));
            if !exempt && after < carried {
                violations.push(format!(
                    "node {} in term {before} stepped a {message} of term {carried} from node \
                     {from} and stayed in term {after}",
                    n.node
                ));
            }
        }
    }
    SafetyCheck::new("term-adoption", violations)
}

fn check_leader_commit_rule(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut violations = Vec::new();
    for n in nodes {
        for e in &n.events {
            let (Some(term), NodeEventKind::LeaderCommit { index, entry_term }) = (e.term, &e.kind)
            else {
                continue;
            };
            let (index, entry_term) = (*index, *entry_term);
            if entry_term != term {
                violations.push(format!(
                    "node {}, leader of term {term}, first committed index {index}, an entry of \
                     term {entry_term}, by counting replicas",
                    n.node
                ));
            }
        }
    }
    SafetyCheck::new("leader-commit-rule", violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn entry(index: u64, term: u64, digest: &str, cs: Option<(u64, u64)>) -> AppliedEntry {
        AppliedEntry {
            index,
            term,
            digest: digest.into(),
            client: cs.map(|c| c.0),
            seq: cs.map(|c| c.1),
            ..AppliedEntry::default()
        }
    }

    fn leader(node: u64, term: u64) -> NodeEvent {
        NodeEvent::new(node, Some(term), NodeEventKind::BecameLeader { last_index: 0 })
    }

    fn node(id: u64, applied: Vec<AppliedEntry>, events: Vec<NodeEvent>) -> NodeRecord {
        NodeRecord { node: id, applied, events }
    }

    fn by_name<'a>(checks: &'a [SafetyCheck], name: &str) -> &'a SafetyCheck {
        checks.iter().find(|c| c.name == name).unwrap()
    }

    fn snapshot_line(index: u64, term: u64, digest: &str) -> AppliedEntry {
        AppliedEntry { kind: Some(SNAPSHOT_KIND.into()), ..entry(index, term, digest, None) }
    }

    #[test]
    fn snapshots_skip_indexes_forward_only_and_agree_with_the_entries_they_cover() {
        let full: Vec<AppliedEntry> =
            (1..=4).map(|i| entry(i, 1, &format!("d{i}"), Some((7, i)))).collect();
        // Node 2 caught up by the leader's snapshot up to 3, then applied 4.
        let caught_up =
            vec![entry(1, 1, "d1", Some((7, 1))), snapshot_line(3, 1, "s3"), full[3].clone()];
        let nodes = [node(1, full.clone(), vec![]), node(2, caught_up, vec![])];
        let acked: BTreeSet<(u64, u64)> = (1..=4).map(|s| (7, s)).collect();
        let checks = check_safety(&nodes, &acked);
        assert!(checks.iter().all(|c| c.valid), "{checks:?}");
        assert!(by_name(&checks, "acknowledged-writes-durable").unseen.is_empty());
        // A snapshot of another term than the entry applied at its index; one that goes back.
        let wrong_term = vec![snapshot_line(3, 2, "s3")];
        let back = vec![full[0].clone(), full[1].clone(), snapshot_line(1, 1, "s1")];
        let nodes =
            [node(1, full.clone(), vec![]), node(2, wrong_term, vec![]), node(3, back, vec![])];
        let checks = check_safety(&nodes, &BTreeSet::new());
        let sms = by_name(&checks, "state-machine-safety");
        assert!(sms.violations.iter().any(|v| v.contains("snapshot ending in term 2")), "{sms:?}");
        let order = by_name(&checks, "applied-in-order");
        assert!(
            order.violations[0].contains("node 3 restored a snapshot up to index 1 where index 3"),
            "{order:?}"
        );
        // Two snapshots at one index with different states.
        let nodes = [
            node(1, vec![snapshot_line(3, 1, "a")], vec![]),
            node(2, vec![snapshot_line(3, 1, "b")], vec![]),
        ];
        let sms = by_name(&check_safety(&nodes, &BTreeSet::new()), "state-machine-safety").clone();
        assert!(sms.violations[0].contains("restored a snapshot of term 1 digest a"), "{sms:?}");
    }

    #[test]
    fn a_write_only_under_snapshots_is_not_seen_and_said_so() {
        // No node shows write (7, 1) one by one; node 2 holds it under its snapshot.
        let nodes = [node(2, vec![snapshot_line(5, 1, "s5")], vec![])];
        let acked: BTreeSet<(u64, u64)> = [(7, 1)].into();
        let check = by_name(&check_safety(&nodes, &acked), "acknowledged-writes-durable").clone();
        assert!(check.valid, "{check:?}");
        assert!(
            check.unseen[0]
                .contains("1 acknowledged write(s) lie under its snapshot up to index 5"),
            "{check:?}"
        );
        // Without a snapshot it is missing.
        let nodes = [node(2, vec![entry(1, 1, "d", None)], vec![])];
        assert!(!by_name(&check_safety(&nodes, &acked), "acknowledged-writes-durable").valid);
    }

    #[test]
    fn events_read_by_kind_a_known_one_without_its_fields_is_an_error_naming_its_line() {
        let events = concat!(
            r#"{"time_ms":1,"node":2,"event":"started","term":0,"last_index":0}"#,
            "\n",
            r#"{"time_ms":2,"node":2,"event":"snapshot-taken","term":1,"index":9}"#,
            "\n",
            r#"{"time_ms":3,"node":2,"event":"vote-granted","term":2,"candidate":3}"#,
            "\n",
        );
        let record = NodeRecord::parse(2, ("applied.jsonl", ""), ("events.jsonl", events)).unwrap();
        let kinds: Vec<_> = record.events.iter().map(|e| &e.kind).collect();
        assert!(matches!(kinds[..], [NodeEventKind::Started { .. }, NodeEventKind::Other, _]));
        assert_eq!(record.events[0].kind.last_index(), Some(0));
        let granted = &record.events[2].kind;
        assert!(matches!(
            granted,
            NodeEventKind::VoteGranted { candidate: 3, last_index: None, .. }
        ));

        let lacking = format!("{events}{}\n", r#"{"node":2,"event":"leader-commit","term":2}"#);
        let err = NodeRecord::parse(2, ("applied.jsonl", ""), ("events.jsonl", &lacking));
        let err = err.unwrap_err().to_string();
        assert!(err.contains("events.jsonl:4") && err.contains("index"), "{err}");
    }

    #[test]
    fn agreeing_nodes_pass_every_check() {
        let log = vec![entry(1, 1, "aa", None), entry(2, 1, "bb", Some((0, 1)))];
        let nodes = [node(1, log.clone(), vec![leader(1, 1)]), node(2, log, vec![])];
        let checks = check_safety(&nodes, &BTreeSet::from([(0, 1)]));
        assert!(checks.iter().all(|c| c.valid), "{checks:?}");
    }

    #[test]
    fn each_violation_is_found_and_named() {
        let nodes = [
            node(
                1,
                vec![entry(1, 1, "aa", None), entry(2, 1, "bb", Some((0, 1)))],
                vec![leader(1, 2)],
            ),
            node(2, vec![entry(1, 1, "aa", None), entry(2, 2, "cc", None)], vec![leader(2, 2)]),
            node(3, vec![entry(2, 1, "bb", Some((0, 1)))], vec![]),
        ];
        let checks = check_safety(&nodes, &BTreeSet::from([(0, 1), (5, 5)]));
        let smr = by_name(&checks, "state-machine-safety");
        assert!(!smr.valid);
        assert!(smr.violations[0].contains("index 2"), "{smr:?}");
        let order = by_name(&checks, "applied-in-order");
        assert_eq!(order.violation_count, 1);
        assert!(order.violations[0].contains("node 3"));
        assert!(!by_name(&checks, "one-leader-per-term").valid);
        let acked = by_name(&checks, "acknowledged-writes-durable");
        assert_eq!(acked.violation_count, 3, "every node lacks (5, 5); node 2 also lacks (0, 1)");
    }

    #[test]
    fn a_vote_forgotten_in_a_restart_or_given_twice_is_found() {
        let grant = |term, candidate| {
            let kind = NodeEventKind::VoteGranted {
                candidate,
                candidate_last_index: None,
                candidate_last_term: None,
                last_index: None,
                last_term: None,
            };
            NodeEvent::new(1, Some(term), kind)
        };
        let restart = |term, vote| {
            NodeEvent::new(1, Some(term), NodeEventKind::Restarted { vote, last_index: None })
        };
        let check = |events: Vec<NodeEvent>| check_votes_durable(&[node(1, vec![], events)]);

        // Kept: the restart recovers the vote, and a later term's vote is free.
        let kept = check(vec![grant(3, 2), restart(3, Some(2)), grant(3, 2), grant(4, 5)]);
        assert!(kept.valid, "{kept:?}");
        // A restart into a later term (learned before the crash) needs no vote of it.
        assert!(check(vec![grant(3, 2), restart(4, None)]).valid);

        let forgotten = check(vec![grant(3, 2), restart(3, None)]);
        assert!(!forgotten.valid);
        assert!(
            forgotten.violations[0].contains("restarted in term 3 with vote none"),
            "{forgotten:?}"
        );
        let twice = check(vec![grant(3, 2), restart(3, Some(2)), grant(3, 4)]);
        assert!(twice.violations[0].contains("in term 3 to 2, then to 4"), "{twice:?}");
        let term_lost = check(vec![grant(5, 2), restart(4, None)]);
        assert!(term_lost.violations[0].contains("restarted in term 4"), "{term_lost:?}");
    }

    #[test]
    fn a_vote_for_a_log_behind_the_voters_is_found() {
        let grant = |candidate_last: (u64, u64), own_last: (u64, u64)| {
            let kind = NodeEventKind::VoteGranted {
                candidate: 2,
                candidate_last_index: Some(candidate_last.0),
                candidate_last_term: Some(candidate_last.1),
                last_index: Some(own_last.0),
                last_term: Some(own_last.1),
            };
            NodeEvent::new(1, Some(5), kind)
        };
        let check = |events: Vec<NodeEvent>| check_votes_up_to_date(&[node(1, vec![], events)]);
        // A later last term wins whatever the length; the same term needs the same length.
        assert!(check(vec![grant((3, 4), (9, 3)), grant((9, 3), (9, 3))]).valid);
        let shorter = check(vec![grant((8, 3), (9, 3))]);
        assert!(!shorter.valid);
        assert!(shorter.violations[0].contains("ends at index 8 of term 3"), "{shorter:?}");
        assert!(!check(vec![grant((20, 2), (9, 3))]).valid, "an older last term loses");
    }

    #[test]
    fn a_higher_term_not_adopted_is_found_except_where_the_rules_allow_it() {
        let higher = |message: &str, granted, carried, after| {
            let kind = NodeEventKind::HigherTerm {
                from: 2,
                message: message.into(),
                granted,
                message_term: carried,
                term_after: after,
                role_before: "Follower".into(),
            };
            NodeEvent::new(1, Some(3), kind)
        };
        let check = |events: Vec<NodeEvent>| check_term_adoption(&[node(1, vec![], events)]);
        let allowed = check(vec![
            higher("AppendEntries", None, 4, 4),
            higher("AppendEntriesResponse", None, 5, 5),
            higher("RequestVote", None, 6, 3),
            higher("PreVote", None, 6, 3),
            higher("PreVoteResponse", Some(true), 4, 3),
        ]);
        assert!(allowed.valid, "{allowed:?}");
        for ignored in [
            higher("AppendEntriesResponse", None, 5, 3),
            higher("HeartbeatResponse", None, 5, 3),
            higher("PreVoteResponse", Some(false), 5, 3),
            higher("Heartbeat", None, 4, 3),
        ] {
            let NodeEventKind::HigherTerm { message: name, .. } = ignored.kind.clone() else {
                unreachable!("made as a higher-term event")
            };
            let found = check(vec![ignored]);
            assert!(!found.valid, "{name}");
            assert!(
                found.violations[0].contains(&format!("stepped a {name} of term")),
                "{found:?}"
            );
        }
    }

    #[test]
    fn a_leader_committing_an_earlier_terms_entry_first_is_found() {
        let commit = |term, index, entry_term| {
            NodeEvent::new(1, Some(term), NodeEventKind::LeaderCommit { index, entry_term })
        };
        let check = |events: Vec<NodeEvent>| check_leader_commit_rule(&[node(1, vec![], events)]);
        assert!(check(vec![commit(2, 7, 2), commit(3, 9, 3)]).valid);
        let broken = check(vec![commit(4, 7, 2)]);
        assert!(!broken.valid);
        assert!(broken.violations[0].contains("index 7, an entry of term 2"), "{broken:?}");
    }

    #[test]
    fn acknowledged_writes_follow_each_process_numbering() {
        let text = r#"{"process":0,"type":"invoke","f":"read","key":"k","value":null}
{"process":0,"type":"ok","f":"read","key":"k","value":null}
{"process":0,"type":"invoke","f":"write","key":"k","value":3}
{"process":1,"type":"invoke","f":"cas","key":"k","value":[3,4]}
{"process":0,"type":"ok","f":"write","key":"k","value":3}
{"process":1,"type":"fail","f":"cas","key":"k","value":[3,4]}
{"process":1,"type":"invoke","f":"append","key":"k","value":"x"}
{"process":1,"type":"info","f":"append","key":"k","value":"x"}"#;
        let h = History::parse_str("t", text, Format::Jsonl).unwrap();
        assert_eq!(acknowledged_writes(&h), BTreeSet::from([(0, 2)]));
    }

    #[test]
    fn a_torn_last_line_is_tolerated_but_a_bad_middle_line_is_not() {
        let dir = std::env::temp_dir().join(format!("safety-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("applied.jsonl"),
            "{\"index\":1,\"term\":1,\"digest\":\"a\"}\n{\"index\":2,\"te",
        )
        .unwrap();
        let rec = NodeRecord::read_dir(1, &dir).unwrap();
        assert_eq!(rec.applied.len(), 1);
        std::fs::write(
            dir.join("applied.jsonl"),
            "{\"index\":1}\n{\"index\":1,\"term\":1,\"digest\":\"a\"}\n",
        )
        .unwrap();
        let err = NodeRecord::read_dir(1, &dir).unwrap_err().to_string();
        assert!(err.contains("applied.jsonl:1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
