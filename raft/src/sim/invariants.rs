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
//!
//! Each check returns a [`Violation`]: the [`Property`] it breaks and a description; the
//! simulator turns it into a failure with the seed and the trace, classified by the property.

use crate::core::{Entry, EntryKind, HardState, Index, Message, MessageBody, NodeId, Ready, Term};
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
    /// The peer that applied it first.
    pub first_applier: NodeId,
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
    /// to persist.
    pub fn on_persist(
        &mut self,
        node: NodeId,
        hard_state: &HardState,
        log: &[Entry],
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
        let Some(first) = ready.entries.first() else {
            return Ok(());
        };
        let start = first.index;
        let old_last = log.len() as Index;
        if start == 0 || start > old_last + 1 {
            return Err(Violation::new(Property::LogContiguity, format!(
                "n{node} was asked to persist entries from index {start} but holds only {old_last}: a gap"
            )));
        }
        let new_last = start + ready.entries.len() as Index - 1;
        // No committed entry this peer holds may be overwritten or truncated away.
        let check_to = old_last.min(self.committed.len() as Index);
        for k in start..=check_to {
            let old = &log[(k - 1) as usize];
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
        let mut prev_term = if start == 1 { 0 } else { log[(start - 2) as usize].term };
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
        log: &[Entry],
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
                if *index > log.len() as Index =>
            {
                return Err(Violation::new(
                    Property::DurabilityBeforeSending,
                    format!(
                        "n{node} acknowledged entries up to {index} but only {} are durable",
                        log.len()
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
    pub fn on_leader(&mut self, node: NodeId, term: Term, log: &[Entry]) -> Result<(), Violation> {
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
            let held = log.get(k).map(|e| e.term);
            if held != Some(c.term) {
                return Err(Violation::new(Property::LeaderCompleteness, format!(
                    "n{node} became leader of term {term} without committed entry {} (term {}); it holds {}",
                    k + 1,
                    c.term,
                    match held {
                        Some(t) => format!("an entry of term {t} there"),
                        None => format!("only {} entries", log.len()),
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
            self.committed.push(CommittedEntry {
                term: e.term,
                kind: e.kind,
                data: Arc::from(&e.data[..]),
                digest: d,
                first_applier: node,
            });
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
        inv.on_persist(0, &hs, &[], &ready(vec![e(1, 1, 10), e(2, 1, 20)])).unwrap();
        inv.on_persist(1, &hs, &[], &ready(vec![e(1, 1, 10)])).unwrap();
        let err = inv.on_persist(1, &hs, &[e(1, 1, 10)], &ready(vec![e(2, 1, 21)])).unwrap_err();
        assert_eq!(err.property, Property::LogMatching, "{err}");
        // Same index and term after a different previous term.
        let err = inv.on_persist(2, &hs, &[], &ready(vec![e(1, 2, 10), e(2, 1, 20)])).unwrap_err();
        assert!(err.what.contains("term"), "{err}");
    }

    #[test]
    fn persist_rejects_gaps_and_overwriting_committed_entries() {
        let mut inv = Invariants::new();
        let hs = HardState::default();
        let err = inv.on_persist(0, &hs, &[], &ready(vec![e(2, 1, 10)])).unwrap_err();
        assert_eq!(err.property, Property::LogContiguity, "{err}");
        assert!(err.what.contains("gap"), "{err}");
        inv.on_apply(0, 1, &e(1, 1, 10)).unwrap();
        let log = vec![e(1, 1, 10), e(2, 1, 20)];
        let err = inv.on_persist(1, &hs, &log, &ready(vec![e(1, 2, 11)])).unwrap_err();
        assert_eq!(err.property, Property::CommittedOverwritten, "{err}");
        assert!(err.what.contains("committed entry 1"), "{err}");
        // Rewriting the uncommitted suffix is fine.
        inv.on_persist(1, &hs, &log, &ready(vec![e(2, 2, 21)])).unwrap();
    }

    #[test]
    fn durable_hard_state_never_regresses() {
        let mut inv = Invariants::new();
        let hs = HardState { term: 3, vote: Some(1) };
        let back =
            Ready { hard_state: Some(HardState { term: 2, vote: None }), ..Ready::default() };
        assert!(inv.on_persist(0, &hs, &[], &back).is_err());
        let revote =
            Ready { hard_state: Some(HardState { term: 3, vote: Some(2) }), ..Ready::default() };
        assert!(inv.on_persist(0, &hs, &[], &revote).is_err());
        let next =
            Ready { hard_state: Some(HardState { term: 4, vote: None }), ..Ready::default() };
        inv.on_persist(0, &hs, &[], &next).unwrap();
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
        let err = inv.on_send(0, &HardState { term: 5, vote: None }, &[], &grant(1)).unwrap_err();
        assert!(err.what.contains("before the vote was durable"), "{err}");
        inv.on_send(0, &HardState { term: 5, vote: Some(1) }, &[], &grant(1)).unwrap();
        let err =
            inv.on_send(0, &HardState { term: 5, vote: Some(2) }, &[], &grant(2)).unwrap_err();
        assert_eq!(err.property, Property::DoubleVote, "{err}");
    }

    #[test]
    fn one_leader_per_term_holding_every_earlier_committed_entry() {
        let mut inv = Invariants::new();
        inv.on_apply(0, 1, &e(1, 1, 10)).unwrap();
        inv.on_apply(0, 2, &e(2, 2, 20)).unwrap();
        inv.on_leader(1, 3, &[e(1, 1, 10), e(2, 2, 20)]).unwrap();
        let err = inv.on_leader(2, 3, &[e(1, 1, 10), e(2, 2, 20)]).unwrap_err();
        assert_eq!(err.property, Property::ElectionSafety, "{err}");
        assert!(err.what.contains("both leaders of term 3"), "{err}");
        let err = inv.on_leader(2, 4, &[e(1, 1, 10)]).unwrap_err();
        assert_eq!(err.property, Property::LeaderCompleteness, "{err}");
        assert!(err.what.contains("without committed entry 2"), "{err}");
        // A leader of term 2 need not hold term 2's committed entry.
        inv.on_leader(2, 2, &[e(1, 1, 10)]).unwrap();
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
}
