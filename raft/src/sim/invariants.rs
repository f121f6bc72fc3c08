//! Raft's safety properties, checked incrementally after every step of a simulation.
//!
//! - Election safety: at most one leader per term, and no peer grants its vote to two candidates
//!   in one term.
//! - Log matching: every entry any peer writes is registered by `(index, term)` with a digest of
//!   its contents and the term of the entry before it; every later write of the same
//!   `(index, term)` must agree. By induction on the index, two logs holding an entry with the
//!   same index and term are identical up to it.
//! - Leader completeness: a peer that becomes leader of term `T` holds every entry known
//!   committed (applied by some peer) whose term is below `T`; and no peer overwrites or
//!   truncates a committed entry it holds.
//! - State machine safety: peers apply indexes in order without gaps, and no two peers apply
//!   different entries at one index.
//! - Term adoption (Figure 2, rules for all servers): a peer that receives an append, a
//!   heartbeat or a reply of a higher term moves to that term. (Vote and pre-vote requests are
//!   exempt: check-quorum's lease lets a peer ignore them, and a pre-vote never changes terms.)
//! - Durability before sending: a vote grant goes out only once the vote is durable, a
//!   successful append acknowledgement only once the acknowledged entries are, and no message
//!   carries a term beyond the sender's durable term.
//!
//! - Read safety: a read the core lets go (a read state) is at an index no lower than what was
//!   committed when the read was asked (checked by the simulator, which asks the reads).
//! - Snapshot agreement (§7): a snapshot a peer persists or restores covers only committed
//!   entries, names the term of the last one, and holds the service state those entries make.
//! - Applied state never goes back: a peer restores no snapshot older than what it applied.
//!
//! Each check returns a [`Violation`]: the [`Property`] it breaks and a description; the
//! simulator turns it into a failure with the seed and the trace, classified by the property.

use super::service::{link, ServiceState};
use crate::core::{
    Entry, EntryKind, HardState, Index, Message, MessageBody, NodeId, Ready, Snapshot, Term,
};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A property the simulator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Property {
    /// At most one leader per term.
    ElectionSafety,
    /// No peer grants its vote to two candidates in one term.
    DoubleVote,
    /// Two copies of an entry agree, and so do the entries before them.
    LogMatching,
    /// A peer is asked to persist a log with a gap, or out of order.
    LogContiguity,
    /// A new leader holds every entry known committed.
    LeaderCompleteness,
    /// No peer overwrites or truncates a committed entry.
    CommittedOverwritten,
    /// Peers apply indexes in order, without gaps.
    ApplyOrder,
    /// No two peers apply different entries at one index.
    StateMachineSafety,
    /// A higher term in an append or a reply is adopted.
    TermAdoption,
    /// Vote grants and acknowledgements go out only once what they promise is durable.
    DurabilityBeforeSending,
    /// A durable term or vote goes backwards.
    DurableStateRegressed,
    /// No read goes below what was committed when it was asked.
    ReadSafety,
    /// A message to a peer that does not exist, or from another than its sender.
    Misaddressed,
    /// A snapshot agrees with the committed entries it stands for.
    SnapshotAgreement,
    /// A peer's applied state never goes back.
    AppliedRegressed,
}

impl Property {
    /// The property's name in failures and reports, e.g. `log matching`.
    pub fn name(self) -> &'static str {
        match self {
            Property::ElectionSafety => "election safety",
            Property::DoubleVote => "double vote",
            Property::LogMatching => "log matching",
            Property::LogContiguity => "log contiguity",
            Property::LeaderCompleteness => "leader completeness",
            Property::CommittedOverwritten => "committed entry overwritten",
            Property::ApplyOrder => "apply order",
            Property::StateMachineSafety => "state machine safety",
            Property::TermAdoption => "term adoption",
            Property::DurabilityBeforeSending => "durability before sending",
            Property::DurableStateRegressed => "durable state regressed",
            Property::ReadSafety => "read safety",
            Property::Misaddressed => "misaddressed message",
            Property::SnapshotAgreement => "snapshot agreement",
            Property::AppliedRegressed => "applied state regressed",
        }
    }
}

/// A broken property, and what broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: Property,
    /// What happened, naming peers, terms and indexes.
    pub what: String,
}

impl Violation {
    pub fn new(property: Property, what: String) -> Violation {
        Violation { property, what }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

/// An entry known committed: the first peer to apply an index defines it for every other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedEntry {
    /// The entry's term.
    pub term: Term,
    /// A command or a no-op.
    pub kind: EntryKind,
    /// The command (empty for a no-op).
    pub data: Arc<[u8]>,
    digest: u64,
    /// The service's state once it is applied (see [`ServiceState`]).
    chain: u64,
    /// The peer that applied it first.
    pub first_applier: NodeId,
}

/// A peer's log as the checks read it: a snapshot standing for the entries up to its index,
/// then the entries after it.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogView<'a> {
    /// The last index the snapshot covers (0: none).
    pub snapshot_index: Index,
    /// The term of the entry at `snapshot_index`.
    pub snapshot_term: Term,
    /// The entries after the snapshot: `entries[i]` has index `snapshot_index + 1 + i`.
    pub entries: &'a [Entry],
}

impl<'a> LogView<'a> {
    /// A log from index 1, never compacted.
    pub fn from_start(entries: &'a [Entry]) -> LogView<'a> {
        LogView { snapshot_index: 0, snapshot_term: 0, entries }
    }

    /// The index of the last entry (the snapshot's when no entry follows it).
    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    /// The entry at `index`, if the log holds it (not compacted, not past the end).
    pub fn entry(&self, index: Index) -> Option<&'a Entry> {
        let k = index.checked_sub(self.snapshot_index + 1)?;
        self.entries.get(k as usize)
    }

    /// The term at `index`: the snapshot's at its index (0 at index 0), `None` when compacted
    /// or past the end.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The log once a snapshot at `index` of `term` is installed (Figure 13): the entries after
    /// it stay when the log holds its last entry with its term; otherwise they all go.
    pub fn after_install(self, index: Index, term: Term) -> LogView<'a> {
        let entries = match self.term_at(index) {
            Some(t) if t == term && index >= self.snapshot_index => {
                &self.entries[(index - self.snapshot_index) as usize..]
            }
            _ => &[],
        };
        LogView { snapshot_index: index, snapshot_term: term, entries }
    }
}

/// The incremental state of every check.
#[derive(Debug, Default)]
pub struct Invariants {
    /// term -> the peer that led it.
    leaders: HashMap<Term, NodeId>,
    /// (peer, term) -> the candidate it voted for.
    votes: HashMap<(NodeId, Term), NodeId>,
    /// (index, term) -> (digest of the entry, term of the entry before it).
    written: HashMap<(Index, Term), (u64, Term)>,
    /// committed[i] is the entry at index i + 1.
    committed: Vec<CommittedEntry>,
}

/// A digest of an entry's kind and data.
pub fn digest(kind: EntryKind, data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kind.hash(&mut h);
    data.hash(&mut h);
    h.finish()
}

impl Invariants {
    /// Fresh state for a new cluster.
    pub fn new() -> Invariants {
        Invariants::default()
    }

    /// The entries known committed, from index 1.
    pub fn committed(&self) -> &[CommittedEntry] {
        &self.committed
    }

    /// The leader recorded for `term`, if any.
    pub fn leader_of(&self, term: Term) -> Option<NodeId> {
        self.leaders.get(&term).copied()
    }

    /// Checks a [`Ready`] that `node`, whose durable state is `hard_state` and `log`, is about
    /// to persist: its hard state, then its snapshot, then its entries, in the order storage
    /// writes them.
    pub fn on_persist(
        &mut self,
        node: NodeId,
        hard_state: &HardState,
        log: LogView<'_>,
        ready: &Ready,
    ) -> Result<(), Violation> {
        if let Some(hs) = &ready.hard_state {
            if hs.term < hard_state.term {
                return Err(Violation::new(
                    Property::DurableStateRegressed,
                    format!(
                        "n{node}'s durable term went backwards from {} to {}",
                        hard_state.term, hs.term
                    ),
                ));
            }
            if hs.term == hard_state.term && hard_state.vote.is_some() && hs.vote != hard_state.vote
            {
                return Err(Violation::new(
                    Property::DurableStateRegressed,
                    format!(
                        "n{node}'s durable vote in term {} changed from {:?} to {:?}",
                        hs.term, hard_state.vote, hs.vote
                    ),
                ));
            }
        }
        let mut log = log;
        if let Some(snapshot) = &ready.snapshot {
            if snapshot.index < log.snapshot_index {
                return Err(Violation::new(
                    Property::DurableStateRegressed,
                    format!(
                        "n{node}'s durable snapshot went back from index {} to {}",
                        log.snapshot_index, snapshot.index
                    ),
                ));
            }
            self.check_snapshot(node, snapshot)?;
            log = log.after_install(snapshot.index, snapshot.term);
        }
        let Some(first) = ready.entries.first() else {
            return Ok(());
        };
        let start = first.index;
        let old_last = log.last_index();
        if start <= log.snapshot_index {
            return Err(Violation::new(Property::LogContiguity, format!(
                "n{node} was asked to persist entries from index {start}, which its snapshot up to {} covers",
                log.snapshot_index
            )));
        }
        if start > old_last + 1 {
            return Err(Violation::new(Property::LogContiguity, format!(
                "n{node} was asked to persist entries from index {start} but holds only {old_last}: a gap"
            )));
        }
        let new_last = start + ready.entries.len() as Index - 1;
        // No committed entry this peer holds may be overwritten or truncated away.
        let check_to = old_last.min(self.committed.len() as Index);
        for k in start..=check_to {
            let old = log.entry(k).expect("held: between the snapshot and the log's end");
            let c = &self.committed[(k - 1) as usize];
            if old.term != c.term {
                continue;
            }
            let replaced_by = ready.entries.get((k - start) as usize);
            if k > new_last || replaced_by.map(|e| e.term) != Some(old.term) {
                return Err(Violation::new(Property::CommittedOverwritten, format!(
                    "n{node} overwrote or truncated committed entry {k} (term {}): persisting {}..={} over a log ending at {old_last}",
                    c.term, start, new_last
                )));
            }
        }
        let mut prev_term = log.term_at(start - 1).expect("the entry before a contiguous write");
        for (k, e) in ready.entries.iter().enumerate() {
            let expected = start + k as Index;
            if e.index != expected {
                return Err(Violation::new(Property::LogContiguity, format!(
                    "n{node} was asked to persist entries that are not contiguous: index {} where {expected} was due",
                    e.index
                )));
            }
            if e.term < prev_term {
                return Err(Violation::new(Property::LogMatching, format!(
                    "n{node}'s log would hold entry {} of term {} after an entry of term {prev_term}",
                    e.index, e.term
                )));
            }
            let d = digest(e.kind, &e.data);
            match self.written.get(&(e.index, e.term)) {
                Some(&(d0, p0)) => {
                    if d0 != d {
                        return Err(Violation::new(Property::LogMatching, format!(
                            "n{node} wrote entry {} of term {} with contents that differ from another copy of it",
                            e.index, e.term
                        )));
                    }
                    if p0 != prev_term {
                        return Err(Violation::new(Property::LogMatching, format!(
                            "n{node} holds entry {} of term {} after an entry of term {prev_term}, another peer after one of term {p0}",
                            e.index, e.term
                        )));
                    }
                }
                None => {
                    self.written.insert((e.index, e.term), (d, prev_term));
                }
            }
            prev_term = e.term;
        }
        Ok(())
    }

    /// Checks a message `node` sends, against its durable state at that moment.
    pub fn on_send(
        &mut self,
        node: NodeId,
        hard_state: &HardState,
        log: LogView<'_>,
        msg: &Message,
    ) -> Result<(), Violation> {
        match &msg.body {
            MessageBody::RequestVote { pre_vote: true, .. }
            | MessageBody::RequestVoteResponse { pre_vote: true, .. } => {
                return Ok(());
            }
            MessageBody::RequestVoteResponse { pre_vote: false, granted: true } => {
                if hard_state.term != msg.term || hard_state.vote != Some(msg.to) {
                    return Err(Violation::new(Property::DurabilityBeforeSending, format!(
                        "n{node} granted its vote to n{} in term {} before the vote was durable (durable: term {}, vote {:?})",
                        msg.to, msg.term, hard_state.term, hard_state.vote
                    )));
                }
                if let Some(&other) = self.votes.get(&(node, msg.term)) {
                    if other != msg.to {
                        return Err(Violation::new(
                            Property::DoubleVote,
                            format!(
                                "n{node} granted its vote in term {} to both n{other} and n{}",
                                msg.term, msg.to
                            ),
                        ));
                    }
                } else {
                    self.votes.insert((node, msg.term), msg.to);
                }
            }
            MessageBody::AppendEntriesResponse { success: true, index, .. }
                if *index > log.last_index() =>
            {
                return Err(Violation::new(
                    Property::DurabilityBeforeSending,
                    format!(
                        "n{node} acknowledged entries up to {index} but only {} are durable",
                        log.last_index()
                    ),
                ));
            }
            _ => {}
        }
        if msg.term > hard_state.term {
            return Err(Violation::new(
                Property::DurabilityBeforeSending,
                format!(
                    "n{node} sent a {} of term {} while its durable term is {}",
                    msg.body.kind_name(),
                    msg.term,
                    hard_state.term
                ),
            ));
        }
        Ok(())
    }

    /// The kind name of a message whose higher term the receiver must adopt, or `None` for the
    /// exempt kinds (vote and pre-vote requests, pre-vote replies).
    pub fn adoption_kind(body: &MessageBody) -> Option<&'static str> {
        match body {
            MessageBody::RequestVote { .. }
            | MessageBody::RequestVoteResponse { pre_vote: true, .. } => None,
            other => Some(other.kind_name()),
        }
    }

    /// Checks that `node`, in `term_before` when it received a `kind` message of `msg_term`, is
    /// at least in `msg_term` after handling it.
    pub fn on_delivered(
        node: NodeId,
        kind: &str,
        msg_term: Term,
        term_before: Term,
        term_after: Term,
    ) -> Result<(), Violation> {
        if msg_term > term_before && term_after < msg_term {
            return Err(Violation::new(Property::TermAdoption, format!(
                "n{node} received a {kind} of term {msg_term} in term {term_before} and stayed in term {term_after} (a higher term in any append or reply must be adopted)"
            )));
        }
        Ok(())
    }

    /// Checks that `node`, which became leader of `term` holding `log`, is the only leader of
    /// that term and holds every committed entry of an earlier term.
    pub fn on_leader(
        &mut self,
        node: NodeId,
        term: Term,
        log: LogView<'_>,
    ) -> Result<(), Violation> {
        match self.leaders.get(&term) {
            Some(&other) if other != node => {
                return Err(Violation::new(
                    Property::ElectionSafety,
                    format!("n{other} and n{node} are both leaders of term {term}"),
                ));
            }
            Some(_) => {}
            None => {
                self.leaders.insert(term, node);
            }
        }
        for (k, c) in self.committed.iter().enumerate() {
            // A log's terms never decrease, so past here every committed entry is of a term >= T.
            if c.term >= term {
                break;
            }
            let index = k as Index + 1;
            if index < log.snapshot_index {
                // Its snapshot stands for it (and agreed with it when it was persisted).
                continue;
            }
            let held = log.term_at(index);
            if held != Some(c.term) {
                return Err(Violation::new(Property::LeaderCompleteness, format!(
                    "n{node} became leader of term {term} without committed entry {index} (term {}); it holds {}",
                    c.term,
                    match held {
                        Some(t) => format!("an entry of term {t} there"),
                        None => format!("only {} entries", log.last_index()),
                    }
                )));
            }
        }
        Ok(())
    }

    /// Checks an entry `node` applies, `expected` being the index it must apply next; records
    /// it as committed when it is the first to apply that index.
    pub fn on_apply(&mut self, node: NodeId, expected: Index, e: &Entry) -> Result<(), Violation> {
        if e.index != expected {
            return Err(Violation::new(
                Property::ApplyOrder,
                format!("n{node} applied index {} out of order (expected {expected})", e.index),
            ));
        }
        let d = digest(e.kind, &e.data);
        let k = (e.index - 1) as usize;
        if let Some(c) = self.committed.get(k) {
            if c.digest != d || c.term != e.term || c.kind != e.kind {
                return Err(Violation::new(
                    Property::StateMachineSafety,
                    format!(
                        "at index {} n{node} applied {} (term {}) but n{} applied {} (term {})",
                        e.index,
                        describe(e.kind, &e.data),
                        e.term,
                        c.first_applier,
                        describe(c.kind, &c.data),
                        c.term
                    ),
                ));
            }
        } else {
            debug_assert_eq!(k, self.committed.len());
            let before = self.committed.last().map_or(0, |c| c.chain);
            self.committed.push(CommittedEntry {
                term: e.term,
                kind: e.kind,
                data: Arc::from(&e.data[..]),
                digest: d,
                chain: link(before, d),
                first_applier: node,
            });
        }
        Ok(())
    }

    /// Checks a snapshot `node`, which had applied up to `applied`, restores its service from:
    /// it must not take the state back, and it must agree with the committed entries.
    pub fn on_restore(
        &self,
        node: NodeId,
        applied: Index,
        snapshot: &Snapshot,
    ) -> Result<(), Violation> {
        if snapshot.index < applied {
            return Err(Violation::new(
                Property::AppliedRegressed,
                format!(
                    "n{node} restored a snapshot at index {} after applying up to {applied}: its state went back",
                    snapshot.index
                ),
            ));
        }
        self.check_snapshot(node, snapshot)
    }

    /// Checks that `snapshot` covers only committed entries, names the last one's term, and
    /// holds the state the simulated service reaches by applying them.
    fn check_snapshot(&self, node: NodeId, snapshot: &Snapshot) -> Result<(), Violation> {
        let (index, term) = (snapshot.index, snapshot.term);
        let Some(c) = index.checked_sub(1).and_then(|k| self.committed.get(k as usize)) else {
            return Err(Violation::new(
                Property::SnapshotAgreement,
                format!(
                    "n{node}'s snapshot at index {index} covers entries never known committed ({} are)",
                    self.committed.len()
                ),
            ));
        };
        if c.term != term {
            return Err(Violation::new(
                Property::SnapshotAgreement,
                format!(
                    "n{node}'s snapshot at index {index} names term {term}, but the entry committed there is of term {}",
                    c.term
                ),
            ));
        }
        if ServiceState::decode(&snapshot.data) != Some(ServiceState { index, chain: c.chain }) {
            return Err(Violation::new(
                Property::SnapshotAgreement,
                format!(
                    "n{node}'s snapshot at index {index} holds a state other than the committed entries' up to it"
                ),
            ));
        }
        Ok(())
    }
}

/// A short readable form of a command: an integer for 8 bytes, else its length and first bytes.
pub fn describe(kind: EntryKind, data: &[u8]) -> String {
    if kind == EntryKind::Noop {
        return "no-op".to_string();
    }
    if let Ok(b) = <[u8; 8]>::try_from(data) {
        return format!("cmd {}", u64::from_le_bytes(b));
    }
    let head: Vec<String> = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "cmd of {} bytes [{}{}]",
        data.len(),
        head.join(""),
        if data.len() > 8 { ".." } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: Index, term: Term, v: u64) -> Entry {
        Entry { index, term, kind: EntryKind::Normal, data: v.to_le_bytes().to_vec() }
    }

    fn ready(entries: Vec<Entry>) -> Ready {
        Ready { entries, ..Ready::default() }
    }

    #[test]
    fn log_matching_rejects_a_different_entry_under_the_same_index_and_term() {
        let mut inv = Invariants::new();
        let hs = HardState::default();
        inv.on_persist(0, &hs, LogView::default(), &ready(vec![e(1, 1, 10), e(2, 1, 20)])).unwrap();
        inv.on_persist(1, &hs, LogView::default(), &ready(vec![e(1, 1, 10)])).unwrap();
        let err = inv
            .on_persist(1, &hs, LogView::from_start(&[e(1, 1, 10)]), &ready(vec![e(2, 1, 21)]))
            .unwrap_err();
        assert_eq!(err.property, Property::LogMatching, "{err}");
        // Same index and term after a different previous term.
        let err = inv
            .on_persist(2, &hs, LogView::default(), &ready(vec![e(1, 2, 10), e(2, 1, 20)]))
            .unwrap_err();
        assert!(err.what.contains("term"), "{err}");
    }

    #[test]
    fn persist_rejects_gaps_and_overwriting_committed_entries() {
        let mut inv = Invariants::new();
        let hs = HardState::default();
        let err =
            inv.on_persist(0, &hs, LogView::default(), &ready(vec![e(2, 1, 10)])).unwrap_err();
        assert_eq!(err.property, Property::LogContiguity, "{err}");
        assert!(err.what.contains("gap"), "{err}");
        inv.on_apply(0, 1, &e(1, 1, 10)).unwrap();
        let log = vec![e(1, 1, 10), e(2, 1, 20)];
        let err = inv
            .on_persist(1, &hs, LogView::from_start(&log), &ready(vec![e(1, 2, 11)]))
            .unwrap_err();
        assert_eq!(err.property, Property::CommittedOverwritten, "{err}");
        assert!(err.what.contains("committed entry 1"), "{err}");
        // Rewriting the uncommitted suffix is fine.
        inv.on_persist(1, &hs, LogView::from_start(&log), &ready(vec![e(2, 2, 21)])).unwrap();
    }

    #[test]
    fn durable_hard_state_never_regresses() {
        let mut inv = Invariants::new();
        let hs = HardState { term: 3, vote: Some(1) };
        let back =
            Ready { hard_state: Some(HardState { term: 2, vote: None }), ..Ready::default() };
        assert!(inv.on_persist(0, &hs, LogView::default(), &back).is_err());
        let revote =
            Ready { hard_state: Some(HardState { term: 3, vote: Some(2) }), ..Ready::default() };
        assert!(inv.on_persist(0, &hs, LogView::default(), &revote).is_err());
        let next =
            Ready { hard_state: Some(HardState { term: 4, vote: None }), ..Ready::default() };
        inv.on_persist(0, &hs, LogView::default(), &next).unwrap();
    }

    #[test]
    fn votes_must_be_durable_and_unique() {
        let mut inv = Invariants::new();
        let grant = |to| Message {
            from: 0,
            to,
            term: 5,
            body: MessageBody::RequestVoteResponse { pre_vote: false, granted: true },
        };
        let err = inv
            .on_send(0, &HardState { term: 5, vote: None }, LogView::default(), &grant(1))
            .unwrap_err();
        assert!(err.what.contains("before the vote was durable"), "{err}");
        inv.on_send(0, &HardState { term: 5, vote: Some(1) }, LogView::default(), &grant(1))
            .unwrap();
        let err = inv
            .on_send(0, &HardState { term: 5, vote: Some(2) }, LogView::default(), &grant(2))
            .unwrap_err();
        assert_eq!(err.property, Property::DoubleVote, "{err}");
    }

    #[test]
    fn one_leader_per_term_holding_every_earlier_committed_entry() {
        let mut inv = Invariants::new();
        inv.on_apply(0, 1, &e(1, 1, 10)).unwrap();
        inv.on_apply(0, 2, &e(2, 2, 20)).unwrap();
        inv.on_leader(1, 3, LogView::from_start(&[e(1, 1, 10), e(2, 2, 20)])).unwrap();
        let err =
            inv.on_leader(2, 3, LogView::from_start(&[e(1, 1, 10), e(2, 2, 20)])).unwrap_err();
        assert_eq!(err.property, Property::ElectionSafety, "{err}");
        assert!(err.what.contains("both leaders of term 3"), "{err}");
        let err = inv.on_leader(2, 4, LogView::from_start(&[e(1, 1, 10)])).unwrap_err();
        assert_eq!(err.property, Property::LeaderCompleteness, "{err}");
        assert!(err.what.contains("without committed entry 2"), "{err}");
        // A leader of term 2 need not hold term 2's committed entry.
        inv.on_leader(2, 2, LogView::from_start(&[e(1, 1, 10)])).unwrap();
    }

    #[test]
    fn higher_terms_in_appends_and_replies_are_adopted() {
        let reply = MessageBody::HeartbeatResponse { round: 1 };
        let kind = Invariants::adoption_kind(&reply).unwrap();
        assert!(Invariants::on_delivered(0, kind, 5, 4, 5).is_ok());
        assert!(Invariants::on_delivered(0, kind, 4, 4, 4).is_ok());
        let err = Invariants::on_delivered(0, kind, 5, 4, 4).unwrap_err();
        assert!(err.what.contains("stayed in term 4"), "{err}");
        let vote =
            MessageBody::RequestVote { pre_vote: false, last_log_index: 0, last_log_term: 0 };
        assert_eq!(Invariants::adoption_kind(&vote), None);
    }

    #[test]
    fn applies_in_order_and_agree() {
        let mut inv = Invariants::new();
        inv.on_apply(0, 1, &e(1, 1, 10)).unwrap();
        assert_eq!(inv.on_apply(1, 1, &e(2, 1, 20)).unwrap_err().property, Property::ApplyOrder);
        let err = inv.on_apply(1, 1, &e(1, 1, 11)).unwrap_err();
        assert_eq!(err.property, Property::StateMachineSafety, "{err}");
        assert!(err.what.contains("at index 1 n1 applied cmd 11"), "{err}");
        inv.on_apply(1, 1, &e(1, 1, 10)).unwrap();
        assert_eq!(inv.committed().len(), 1);
    }

    /// The simulated service's snapshot after applying `entries`.
    fn snapshot_of(entries: &[Entry]) -> Snapshot {
        let mut state = ServiceState::default();
        entries.iter().for_each(|e| state.apply(e));
        let term = entries.last().map_or(0, |e| e.term);
        Snapshot { index: state.index, term, data: state.encode().into() }
    }

    #[test]
    fn a_snapshot_must_agree_with_the_committed_entries_it_stands_for() {
        let mut inv = Invariants::new();
        let log = [e(1, 1, 10), e(2, 1, 20), e(3, 2, 30)];
        for entry in &log[..2] {
            inv.on_apply(0, entry.index, entry).unwrap();
        }
        let hs = HardState { term: 2, vote: None };
        let good = snapshot_of(&log[..2]);
        let persist = |s: Snapshot| Ready { snapshot: Some(s), ..Ready::default() };
        inv.on_persist(1, &hs, LogView::from_start(&log), &persist(good.clone())).unwrap();
        inv.on_restore(1, 1, &good).unwrap();
        // The last included term lost, the state of other entries, uncommitted entries.
        let no_term = Snapshot { term: 0, ..good.clone() };
        let err = inv.on_persist(1, &hs, LogView::default(), &persist(no_term)).unwrap_err();
        assert_eq!(err.property, Property::SnapshotAgreement, "{err}");
        assert!(err.what.contains("names term 0"), "{err}");
        let other =
            Snapshot { data: snapshot_of(&[e(1, 1, 10), e(2, 1, 21)]).data, ..good.clone() };
        let err = inv.on_restore(1, 0, &other).unwrap_err();
        assert!(err.what.contains("a state other than"), "{err}");
        let ahead = snapshot_of(&log);
        let err = inv.on_restore(1, 0, &ahead).unwrap_err();
        assert!(err.what.contains("never known committed"), "{err}");
        // A restore below what was applied takes the state back.
        let err = inv.on_restore(1, 3, &good).unwrap_err();
        assert_eq!(err.property, Property::AppliedRegressed, "{err}");
        // A durable snapshot never goes back either.
        let view = LogView { snapshot_index: 2, snapshot_term: 1, entries: &log[2..] };
        let older = snapshot_of(&log[..1]);
        let err = inv.on_persist(1, &hs, view, &persist(older)).unwrap_err();
        assert_eq!(err.property, Property::DurableStateRegressed, "{err}");
    }

    #[test]
    fn entries_are_checked_against_the_log_after_the_snapshot_in_the_same_ready() {
        let mut inv = Invariants::new();
        let log = [e(1, 1, 10), e(2, 1, 20), e(3, 1, 30)];
        for entry in &log {
            inv.on_apply(0, entry.index, entry).unwrap();
        }
        let hs = HardState { term: 1, vote: None };
        let snapshot = snapshot_of(&log);
        // From an empty log: the snapshot, then the entry after it.
        let ready = Ready {
            snapshot: Some(snapshot.clone()),
            entries: vec![e(4, 1, 40)],
            ..Ready::default()
        };
        inv.on_persist(1, &hs, LogView::default(), &ready).unwrap();
        // An entry the snapshot covers is not the log's to write any more.
        let ready =
            Ready { snapshot: Some(snapshot), entries: vec![e(3, 1, 30)], ..Ready::default() };
        let err = inv.on_persist(1, &hs, LogView::default(), &ready).unwrap_err();
        assert_eq!(err.property, Property::LogContiguity, "{err}");
        assert!(err.what.contains("snapshot up to 3 covers"), "{err}");
        // A leader whose snapshot stands for the committed prefix is complete.
        let view = LogView { snapshot_index: 2, snapshot_term: 1, entries: &log[2..] };
        inv.on_leader(1, 2, view).unwrap();
        let view = LogView { snapshot_index: 2, snapshot_term: 1, entries: &[] };
        let err = inv.on_leader(2, 3, view).unwrap_err();
        assert!(err.what.contains("without committed entry 3"), "{err}");
    }

    #[test]
    fn installing_a_snapshot_keeps_the_tail_only_after_its_last_entry() {
        let log = [e(1, 1, 10), e(2, 1, 20), e(3, 2, 30)];
        let view = LogView::from_start(&log);
        let kept = view.after_install(2, 1);
        assert_eq!((kept.snapshot_index, kept.entries.len(), kept.last_index()), (2, 1, 3));
        assert_eq!(kept.term_at(2), Some(1));
        assert_eq!(kept.term_at(1), None, "compacted");
        assert_eq!(kept.entry(3).map(|e| e.term), Some(2));
        let dropped = view.after_install(2, 2);
        assert_eq!((dropped.entries.len(), dropped.last_index()), (0, 2));
        let beyond = view.after_install(5, 2);
        assert_eq!((beyond.entries.len(), beyond.last_index()), (0, 5));
    }
}
