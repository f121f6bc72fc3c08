//! Protocol events a node reports for offline checking.
//!
//! Some of Raft's rules leave no trace in what clients see or in what the nodes apply: a peer
//! that forgets its vote in a crash, or one that ignores a higher term in a reply, may never
//! lead to a lost write in a given run. The node therefore reports facts observed at the
//! boundary of its core (what it sent after a sync, what a stepped message did to its term,
//! where a leader's commit index first landed), and a checker verifies Figure 2's rules over
//! them after the run, as etcd's raft checks its traces against its TLA+ specification.
//!
//! Events are rare (elections and leadership changes only), so the channel is unbounded.

use tokio::sync::mpsc;

use crate::core::{Index, Message, MessageBody, NodeId, RawNode, Role, Status, Term};

/// A protocol event a node reports through [`NodeConfig::trace`](super::NodeConfig::trace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A vote for `candidate` in `term` was handed to the transport, after the sync that made
    /// the vote durable (Figure 2: "persistent state, updated on stable storage before
    /// responding to RPCs").
    VoteGranted { term: Term, candidate: NodeId },
    /// A message from `from` carrying a term above this peer's was stepped. §5.1: "if one
    /// server's current term is smaller than the other's, then it updates its current term".
    HigherTerm {
        from: NodeId,
        /// The message's kind ([`MessageBody::kind_name`]).
        message: &'static str,
        /// For a (pre-)vote response, whether it granted the vote.
        granted: Option<bool>,
        message_term: Term,
        /// This peer's term before and after stepping the message.
        term_before: Term,
        term_after: Term,
        /// This peer's role before stepping the message.
        role_before: Role,
    },
    /// The commit index of the leader of `term` moved for the first time in its leadership, to
    /// `index`, whose entry is of `entry_term`. §5.4.2: a leader commits by counting replicas
    /// only entries of its own term.
    LeaderCommit { term: Term, index: Index, entry_term: Term },
}

/// The driver's side of the trace: reports events and remembers what it needs to.
#[derive(Debug, Default)]
pub(super) struct Tracer {
    tx: Option<mpsc::UnboundedSender<TraceEvent>>,
    /// The leadership being followed: its term, and whether its first commit was reported.
    leading: Option<(Term, Index, bool)>,
}

impl Tracer {
    pub(super) fn new(tx: Option<mpsc::UnboundedSender<TraceEvent>>) -> Tracer {
        Tracer { tx, leading: None }
    }

    fn emit(&self, event: TraceEvent) {
        if let Some(tx) = &self.tx {
            // A receiver that went away no longer wants the events.
            let _ = tx.send(event);
        }
    }

    /// Reports a granted vote among the messages about to be sent.
    pub(super) fn sending(&self, msg: &Message) {
        if let MessageBody::RequestVoteResponse { pre_vote: false, granted: true } = msg.body {
            self.emit(TraceEvent::VoteGranted { term: msg.term, candidate: msg.to });
        }
    }

    /// Steps `msg` into `raw`, reporting it if its term was above this peer's.
    pub(super) fn step(&self, raw: &mut RawNode, msg: Message) {
        let before = raw.status();
        let mut pending = (self.tx.is_some() && msg.term > before.term).then(|| {
            let granted = match msg.body {
                MessageBody::RequestVoteResponse { granted, .. } => Some(granted),
                _ => None,
            };
            TraceEvent::HigherTerm {
                from: msg.from,
                message: msg.body.kind_name(),
                granted,
                message_term: msg.term,
                term_before: before.term,
                term_after: before.term,
                role_before: before.role,
            }
        });
        raw.step(msg);
        if let Some(TraceEvent::HigherTerm { term_after, .. }) = &mut pending {
            *term_after = raw.status().term;
        }
        if let Some(event) = pending {
            self.emit(event);
        }
    }

    /// Follows the leader's commit index: reports where it first moves in a leadership.
    /// `entry_term` gives the term of the entry at an index.
    pub(super) fn observe(&mut self, status: &Status, entry_term: impl Fn(Index) -> Option<Term>) {
        if self.tx.is_none() {
            return;
        }
        if status.role != Role::Leader {
            self.leading = None;
            return;
        }
        match self.leading {
            Some((term, _, _)) if term == status.term => {}
            _ => self.leading = Some((status.term, status.commit_index, false)),
        }
        let Some((term, start, reported)) = &mut self.leading else { return };
        if *reported || status.commit_index <= *start {
            return;
        }
        *reported = true;
        let index = status.commit_index;
        let event = TraceEvent::LeaderCommit {
            term: *term,
            index,
            entry_term: entry_term(index).unwrap_or(0),
        };
        self.emit(event);
    }
}
