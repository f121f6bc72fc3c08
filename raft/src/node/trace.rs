//! Protocol events a node reports for offline checking.
//!
//! Some of Raft's rules leave no trace in what clients see or in what the nodes apply: a peer
//! that forgets its vote in a crash, or one that ignores a higher term in a reply, may never
//! lead to a lost write in a given run. The node therefore reports facts observed at the
//! boundary of its core (what it sent after a sync, what a stepped message did to its term,
//! where a leader's commit index first landed, when leaderships began and ended), and a checker verifies Figure 2's rules over
//! them after the run, as etcd's raft checks its traces against its TLA+ specification.
//!
//! Events are rare (elections and leadership changes only), so the channel is unbounded.
//! Leadership events are exact: the driver looks after every message it steps and every tick.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use crate::core::{Index, Message, MessageBody, NodeId, RawNode, Role, Term};

/// A position in a log: the last entry's (index, term).
pub type LogPosition = (Index, Term);

/// A protocol event a node reports through [`NodeConfig::trace`](super::NodeConfig::trace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A vote for `candidate` in `term` was handed to the transport, after the sync that made
    /// the vote durable (Figure 2: "persistent state, updated on stable storage before
    /// responding to RPCs"). `candidate_last` is the last log position (index, term) the
    /// request carried and `own_last` this peer's when it decided (§5.4.1: the candidate's log
    /// must be at least as up-to-date); both are None if the request was not seen.
    VoteGranted {
        term: Term,
        candidate: NodeId,
        candidate_last: Option<LogPosition>,
        own_last: Option<LogPosition>,
    },
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
    /// This peer became the leader of `term`, with `last_index` as its last log index.
    BecameLeader { term: Term, last_index: Index },
    /// This peer's leadership of `term` ended (it stepped down, or the node stopped).
    SteppedDown { term: Term, last_index: Index },
    /// The commit index of the leader of `term` moved for the first time in its leadership, to
    /// `index`, whose entry is of `entry_term`. §5.4.2: a leader commits by counting replicas
    /// only entries of its own term.
    LeaderCommit { term: Term, index: Index, entry_term: Term },
}

/// The driver's side of the trace: reports events and follows the leadership.
#[derive(Debug, Default)]
pub(super) struct Tracer {
    tx: Option<mpsc::UnboundedSender<TraceEvent>>,
    leading: Option<Leadership>,
    /// Vote requests of the latest term stepped: (term, candidate) -> (the candidate's last
    /// log position, this peer's), until the grant goes out.
    vote_requests: BTreeMap<(Term, NodeId), (LogPosition, LogPosition)>,
}

/// The leadership this peer holds.
#[derive(Debug)]
struct Leadership {
    term: Term,
    /// The commit index when it began.
    commit_at_start: Index,
    /// Whether its first commit was reported.
    committed: bool,
}

impl Tracer {
    pub(super) fn new(tx: Option<mpsc::UnboundedSender<TraceEvent>>) -> Tracer {
        Tracer { tx, ..Tracer::default() }
    }

    fn emit(&self, event: TraceEvent) {
        if let Some(tx) = &self.tx {
            // A receiver that went away no longer wants the events.
            let _ = tx.send(event);
        }
    }

    /// Reports a granted vote among the messages about to be sent.
    pub(super) fn sending(&mut self, msg: &Message) {
        if let MessageBody::RequestVoteResponse { pre_vote: false, granted: true } = msg.body {
            let logs = self.vote_requests.remove(&(msg.term, msg.to));
            self.emit(TraceEvent::VoteGranted {
                term: msg.term,
                candidate: msg.to,
                candidate_last: logs.map(|l| l.0),
                own_last: logs.map(|l| l.1),
            });
        }
    }

    /// Steps `msg` into `raw`, reporting it if its term was above this peer's, and what it did
    /// to the leadership.
    pub(super) fn step(&mut self, raw: &mut RawNode, msg: Message) {
        if self.tx.is_none() {
            raw.step(msg);
            return;
        }
        let before = raw.status();
        if let MessageBody::RequestVote { pre_vote: false, last_log_index, last_log_term } =
            msg.body
        {
            // Only the latest term's requests can still be answered with a grant.
            self.vote_requests.retain(|&(term, _), _| term >= msg.term);
            self.vote_requests.insert(
                (msg.term, msg.from),
                ((last_log_index, last_log_term), (before.last_index, before.last_term)),
            );
        }
        // What the report needs of the message, taken before stepping consumes it.
        let higher = (msg.term > before.term).then(|| {
            let granted = match msg.body {
                MessageBody::RequestVoteResponse { granted, .. } => Some(granted),
                _ => None,
            };
            (msg.from, msg.body.kind_name(), granted, msg.term)
        });
        raw.step(msg);
        if let Some((from, message, granted, message_term)) = higher {
            self.emit(TraceEvent::HigherTerm {
                from,
                message,
                granted,
                message_term,
                term_before: before.term,
                term_after: raw.status().term,
                role_before: before.role,
            });
        }
        self.observe(raw);
    }

    /// Reports a leadership that began or ended, and where its commit index first moved,
    /// since the last call. Called after every step and every tick.
    pub(super) fn observe(&mut self, raw: &RawNode) {
        if self.tx.is_none() {
            return;
        }
        let status = raw.status();
        let now_leading = (status.role == Role::Leader).then_some(status.term);
        if now_leading != self.leading.as_ref().map(|l| l.term) {
            self.stopped(status.last_index);
            if let Some(term) = now_leading {
                self.emit(TraceEvent::BecameLeader { term, last_index: status.last_index });
                let commit_at_start = status.commit_index;
                self.leading = Some(Leadership { term, commit_at_start, committed: false });
            }
        }
        let Some(l) = &mut self.leading else { return };
        if l.committed || status.commit_index <= l.commit_at_start {
            return;
        }
        l.committed = true;
        let (term, index) = (l.term, status.commit_index);
        let entry_term = raw.entry(index).map_or(0, |e| e.term);
        self.emit(TraceEvent::LeaderCommit { term, index, entry_term });
    }

    /// Ends the leadership, if this peer holds one (it stepped down, or the node stops).
    pub(super) fn stopped(&mut self, last_index: Index) {
        if let Some(l) = self.leading.take() {
            self.emit(TraceEvent::SteppedDown { term: l.term, last_index });
        }
    }
}
