//! Reads without the log (thesis §6.4): ReadIndex, and lease reads as an option.
//!
//! A read asked of the leader is given the leader's commit index at the time of the request.
//! It may be served once a majority has confirmed, after the request, that this peer still
//! leads: then no other leader can have committed anything the index lacks. The confirmation
//! is a heartbeat round: heartbeats carry the round's number, and a follower's answer echoes
//! it. All the reads asked while a round is in flight share the next one. A follower forwards a read to
//! the leader and serves it at the index the leader answers.
//!
//! Two more rules make the index right. A new leader does not know the cluster's commit index
//! until it has committed an entry of its own term (§8), so reads asked before that wait for
//! it. And a read at index `i` is only served by a state that has applied `i`: the core says
//! *when* a read may go ([`ReadState`]); the service waits until it has applied the index.
//!
//! With [`ReadOnly::LeaseBased`], a leader whose last confirmed round was sent less than
//! [`ReadOnly::lease_ticks`] ago serves reads at once, trusting the clocks (see there).

use std::collections::{BTreeMap, VecDeque};

use super::config::ReadOnly;
use super::coverage::Decision;
use super::raw_node::{RawNode, ReadError};
use super::types::{Index, MessageBody, NodeId, ReadState, Role};
use super::Bug;

/// At most this many rounds keep their sending time while unanswered: a leader cut off from
/// its followers starts one every heartbeat, and only a confirmed round's time is of use.
const MAX_ROUNDS_REMEMBERED: usize = 1024;

/// A leader's reads and heartbeat rounds, and every peer's clock for leases.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// Ticks since this peer started: the clock leases are measured on.
    pub ticks: u64,
    /// The last heartbeat round this leader started in its term (0: none yet).
    pub round: u64,
    /// A read waits for a round that is not started yet; the next ready starts it.
    pub round_wanted: bool,
    /// (round, tick it was sent at) of the rounds not confirmed yet, oldest first.
    sent_at: VecDeque<(u64, u64)>,
    /// The highest round each follower answered in this term.
    acked: BTreeMap<NodeId, u64>,
    /// The highest round a majority answered.
    confirmed: u64,
    /// When the `confirmed` round was sent: a lease runs from there.
    lease_from: Option<u64>,
    /// Reads waiting for their round, oldest first (their rounds only grow).
    pending: VecDeque<PendingRead>,
    /// Reads asked before this leader committed an entry of its term: (who asked, request).
    before_first_commit: Vec<(Option<NodeId>, u64)>,
    /// The reads this peer may serve, for the next ready.
    pub ready: Vec<ReadState>,
}

/// A read waiting for a majority to answer `round`.
#[derive(Debug)]
struct PendingRead {
    /// The follower that forwarded it; None for this peer's own service.
    from: Option<NodeId>,
    request: u64,
    /// The commit index when it was asked.
    index: Index,
    round: u64,
}

impl Reads {
    /// Forgets the leadership's rounds and waiting reads (a new term, or stepping down). Reads
    /// already confirmed stay ready: they were right when confirmed.
    pub fn end_leadership(&mut self) {
        let (ticks, ready) = (self.ticks, std::mem::take(&mut self.ready));
        *self = Reads { ticks, ready, ..Reads::default() };
    }
}

impl RawNode {
    /// Asks for a linearizable read, numbered `request` by the service. When a later
    /// [`Ready`](super::Ready) carries a [`ReadState`] with this number, the service may answer
    /// the read from its state once it has applied the read state's index. A leader confirms
    /// its leadership first (or holds a lease); a follower asks its leader. A read whose
    /// leader changes on the way gets no read state: the service times it out.
    ///
    /// Fails at once only when no leader is known.
    pub fn read_index(&mut self, request: u64) -> Result<(), ReadError> {
        if self.role == Role::Leader {
            self.leader_read(None, request);
            return Ok(());
        }
        match self.leader {
            Some(leader) => {
                self.coverage.hit(Decision::ReadForwarded);
                self.send(leader, MessageBody::ReadIndex { request });
                Ok(())
            }
            None => {
                self.coverage.hit(Decision::ReadRefusedNoLeader);
                Err(ReadError::NoLeader)
            }
        }
    }

    /// A read asked of this leader, by its own service or forwarded by `from`.
    pub(super) fn leader_read(&mut self, from: Option<NodeId>, request: u64) {
        if self.log.term_at(self.log.committed) != Some(self.term) {
            // §8: until an entry of its term commits, the leader's commit index may lag the
            // cluster's.
            self.coverage.hit(Decision::ReadWaitsForCommit);
            self.reads.before_first_commit.push((from, request));
            return;
        }
        let index = self.log.committed;
        if self.quorum() == 1 || self.config.has_bug(Bug::ReadIndexWithoutQuorum) {
            self.coverage.hit(Decision::ReadServedAlone);
            self.serve_read(from, request, index);
        } else if self.lease_holds() {
            self.coverage.hit(Decision::ReadServedByLease);
            self.serve_read(from, request, index);
        } else {
            // A round started after the request: one sent before it could have been answered
            // before the request came, by followers that have since moved on.
            let round = self.reads.round + 1;
            self.reads.pending.push_back(PendingRead { from, request, index, round });
            self.reads.round_wanted = true;
        }
    }

    /// The first entry of this leader's term committed: the reads that waited for it go on.
    pub(super) fn reads_after_first_commit(&mut self) {
        for (from, request) in std::mem::take(&mut self.reads.before_first_commit) {
            self.leader_read(from, request);
        }
    }

    /// The read may go: to this peer's service, or back to the follower that forwarded it.
    fn serve_read(&mut self, from: Option<NodeId>, request: u64, index: Index) {
        match from {
            None => self.reads.ready.push(ReadState { request, index }),
            Some(follower) => {
                self.send(follower, MessageBody::ReadIndexResponse { request, index })
            }
        }
    }

    /// Whether the next ready starts a round for waiting reads: some wait, and no round this
    /// leader started is still unconfirmed. One round in flight at a time batches the reads
    /// of a busy leader into one round per round trip instead of one per ready; a round whose
    /// heartbeats were lost is overtaken by the next heartbeat interval's round.
    pub(super) fn read_round_due(&self) -> bool {
        self.role == Role::Leader
            && self.reads.round_wanted
            && self.reads.round <= self.reads.confirmed
    }

    /// Whether the leader may serve a read alone: lease reads are on and its lease holds.
    fn lease_holds(&self) -> bool {
        let broken = self.config.has_bug(Bug::LeaseReadAfterExpiry);
        if self.config.read_only != ReadOnly::LeaseBased && !broken {
            return false;
        }
        let lease = ReadOnly::lease_ticks(self.config.election_tick);
        self.reads.lease_from.is_some_and(|from| broken || self.reads.ticks < from + lease)
    }

    /// Starts a heartbeat round: its number for the heartbeats, and when it went.
    pub(super) fn start_round(&mut self) -> u64 {
        let reads = &mut self.reads;
        reads.round += 1;
        reads.round_wanted = false;
        if reads.sent_at.len() >= MAX_ROUNDS_REMEMBERED {
            reads.sent_at.pop_front();
        }
        reads.sent_at.push_back((reads.round, reads.ticks));
        reads.round
    }

    /// `from` answered heartbeat round `round`: the reads of every round a majority has now
    /// answered may go.
    pub(super) fn round_answered(&mut self, from: NodeId, round: u64) {
        let acked = self.reads.acked.entry(from).or_default();
        *acked = (*acked).max(round.min(self.reads.round));
        let mut rounds: Vec<u64> = self
            .other_peers()
            .iter()
            .map(|p| self.reads.acked.get(p).copied().unwrap_or(0))
            .collect();
        rounds.push(self.reads.round);
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = rounds[self.quorum() - 1];
        if confirmed <= self.reads.confirmed {
            return;
        }
        let reads = &mut self.reads;
        reads.confirmed = confirmed;
        while let Some(&(round, sent)) = reads.sent_at.front() {
            if round > confirmed {
                break;
            }
            if round == confirmed {
                reads.lease_from = Some(sent);
            }
            reads.sent_at.pop_front();
        }
        while self.reads.pending.front().is_some_and(|r| r.round <= confirmed) {
            let read = self.reads.pending.pop_front().expect("checked above");
            self.coverage.hit(Decision::ReadConfirmed);
            self.serve_read(read.from, read.request, read.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn msg(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
        Message { from, to, term, body }
    }

    /// Peer 2's acknowledgement of the term-2 leader's no-op at index 1.
    fn no_op_acked_by_2() -> Message {
        let ack = MessageBody::AppendEntriesResponse {
            success: true,
            index: 1,
            conflict_term: None,
            conflict_index: 0,
        };
        msg(2, 1, 2, ack)
    }

    use super::super::tests::flush_with_reads as flush;

    /// Peer 1 leads term 2 of {1, 2, 3} and has committed its no-op (index 1) with peer 2.
    fn leader(read_only: ReadOnly) -> RawNode {
        let config = Config { read_only, ..Config::service(1, vec![1, 2, 3]) };
        let mut node = RawNode::new(config, HardState { term: 1, vote: None }, vec![], 1).unwrap();
        for _ in 0..1_000 {
            if node.status().role == Role::PreCandidate {
                break;
            }
            node.tick();
        }
        flush(&mut node);
        let grant = |pre_vote| MessageBody::RequestVoteResponse { pre_vote, granted: true };
        node.step(msg(2, 1, 2, grant(true)));
        flush(&mut node);
        node.step(msg(2, 1, 2, grant(false)));
        assert_eq!(node.status().role, Role::Leader);
        flush(&mut node);
        node.step(no_op_acked_by_2());
        assert_eq!(node.status().commit_index, 1);
        flush(&mut node);
        node
    }

    fn heartbeat_round(out: &[Message], to: NodeId) -> u64 {
        out.iter()
            .find_map(|m| match m.body {
                MessageBody::Heartbeat { round, .. } if m.to == to => Some(round),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no heartbeat to {to} in {out:?}"))
    }

    #[test]
    fn a_read_goes_once_a_majority_answers_a_round_started_after_it() {
        let mut l = leader(ReadOnly::Safe);
        // A round answered before the read says nothing about it.
        l.tick_until_heartbeat();
        let (out, _) = flush(&mut l);
        let early = heartbeat_round(&out, 2);
        l.read_index(7).unwrap();
        l.read_index(8).unwrap();
        l.step(msg(2, 1, 2, MessageBody::HeartbeatResponse { round: early }));
        let (out, reads) = flush(&mut l);
        assert_eq!(reads, vec![], "an earlier round's answer does not confirm the read");
        // Both reads share the round the next ready started.
        let round = heartbeat_round(&out, 3);
        assert!(round > early);
        l.step(msg(3, 1, 2, MessageBody::HeartbeatResponse { round }));
        let (_, reads) = flush(&mut l);
        let at = |request| ReadState { request, index: 1 };
        assert_eq!(reads, vec![at(7), at(8)]);
        assert_eq!(l.coverage().count(Decision::ReadConfirmed), 2);
    }

    #[test]
    fn a_read_before_the_first_commit_of_the_term_waits_for_it() {
        let config = Config::service(1, vec![1, 2, 3]);
        let mut l = RawNode::new(config, HardState { term: 1, vote: None }, vec![], 1).unwrap();
        while l.status().role != Role::PreCandidate {
            l.tick();
        }
        let grant = |pre_vote| MessageBody::RequestVoteResponse { pre_vote, granted: true };
        l.step(msg(2, 1, 2, grant(true)));
        l.step(msg(2, 1, 2, grant(false)));
        flush(&mut l);
        l.read_index(1).unwrap();
        assert_eq!(l.coverage().count(Decision::ReadWaitsForCommit), 1);
        let (out, reads) = flush(&mut l);
        assert!(
            reads.is_empty()
                && !out.iter().any(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
        );
        l.step(no_op_acked_by_2());
        let (out, _) = flush(&mut l);
        let round = heartbeat_round(&out, 2);
        l.step(msg(2, 1, 2, MessageBody::HeartbeatResponse { round }));
        assert_eq!(flush(&mut l).1, vec![ReadState { request: 1, index: 1 }]);
    }

    #[test]
    fn a_follower_forwards_a_read_and_serves_it_at_the_leaders_index() {
        let mut f =
            RawNode::new(Config::service(2, vec![1, 2, 3]), HardState::default(), vec![], 2)
                .unwrap();
        assert_eq!(f.read_index(5), Err(ReadError::NoLeader));
        f.step(msg(1, 2, 1, MessageBody::Heartbeat { commit: 0, round: 1 }));
        let (out, _) = flush(&mut f);
        assert!(out.contains(&msg(2, 1, 1, MessageBody::HeartbeatResponse { round: 1 })));
        f.read_index(5).unwrap();
        let (out, _) = flush(&mut f);
        assert_eq!(out, vec![msg(2, 1, 1, MessageBody::ReadIndex { request: 5 })]);
        f.step(msg(1, 2, 1, MessageBody::ReadIndexResponse { request: 5, index: 9 }));
        assert_eq!(flush(&mut f).1, vec![ReadState { request: 5, index: 9 }]);

        // The leader's side: a forwarded read is answered to the follower once confirmed.
        let mut l = leader(ReadOnly::Safe);
        l.step(msg(3, 1, 2, MessageBody::ReadIndex { request: 5 }));
        let (out, _) = flush(&mut l);
        let round = heartbeat_round(&out, 2);
        l.step(msg(2, 1, 2, MessageBody::HeartbeatResponse { round }));
        let (out, reads) = flush(&mut l);
        assert!(reads.is_empty());
        assert!(out.contains(&msg(
            1,
            3,
            2,
            MessageBody::ReadIndexResponse { request: 5, index: 1 }
        )));
    }

    #[test]
    fn a_lease_serves_reads_alone_until_it_runs_out() {
        let mut l = leader(ReadOnly::LeaseBased);
        l.tick_until_heartbeat();
        let (out, _) = flush(&mut l);
        let round = heartbeat_round(&out, 2);
        let sent = l.reads.ticks;
        l.step(msg(2, 1, 2, MessageBody::HeartbeatResponse { round }));
        l.read_index(1).unwrap();
        assert_eq!(flush(&mut l).1, vec![ReadState { request: 1, index: 1 }]);
        assert_eq!(l.coverage().count(Decision::ReadServedByLease), 1);
        // Past the lease, with no newer round answered (the followers cut off), a read waits.
        let lease = ReadOnly::lease_ticks(l.config.election_tick);
        while l.reads.ticks < sent + lease {
            l.tick();
        }
        flush(&mut l);
        l.read_index(2).unwrap();
        assert_eq!(flush(&mut l).1, vec![], "the lease ran out");
    }

    #[test]
    fn a_leader_that_steps_down_drops_its_waiting_reads() {
        let mut l = leader(ReadOnly::Safe);
        l.read_index(1).unwrap();
        let (out, _) = flush(&mut l);
        let round = heartbeat_round(&out, 2);
        l.step(msg(3, 1, 3, MessageBody::Heartbeat { commit: 0, round: 1 }));
        assert_eq!(l.status().role, Role::Follower);
        l.step(msg(2, 1, 2, MessageBody::HeartbeatResponse { round }));
        assert_eq!(flush(&mut l).1, vec![], "no read state from a lost leadership");
    }

    impl RawNode {
        fn tick_until_heartbeat(&mut self) {
            for _ in 0..=self.config.heartbeat_tick {
                self.tick();
                if self.outbox.iter().any(|m| matches!(m.body, MessageBody::Heartbeat { .. })) {
                    return;
                }
            }
            panic!("no heartbeat within a heartbeat interval");
        }
    }
}
