//! Leader election (§5.2, §5.4.1), with pre-vote (thesis §9.6) and check-quorum's leader lease
//! (thesis §6.2): the role transitions and the vote handling.

use super::config::ReadOnly;
use super::coverage::Decision;
use super::progress::Progress;
use super::raw_node::RawNode;
use super::types::*;
use super::Bug;

impl RawNode {
    /// A follower's or candidate's tick: start an election when the timer runs out.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_election_timeout {
            self.coverage.hit(Decision::ElectionTimeout);
            self.campaign();
        }
    }

    /// Starts an election: first a pre-vote poll when configured, else a real one.
    pub(super) fn campaign(&mut self) {
        // The next term must exist, and be one whose messages peers accept: they refuse
        // `Term::MAX` as malformed. A node gets this far up only through a forged or broken
        // message; it then waits as a follower instead of wrapping around to term 0.
        if self.term.checked_add(1).is_none_or(|next| next == Term::MAX) {
            tracing::error!(
                id = self.id,
                term = self.term,
                "cannot campaign: no term after this one"
            );
            self.reset_election_timer();
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if self.role == Role::Leader {
            tracing::info!(id = self.id, term = self.term, "stepping down");
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.reads.end_leadership();
        self.progress.clear();
        self.votes.clear();
        self.reset_election_timer();
    }

    /// Polls the peers for the next term without raising this peer's own term: a peer that
    /// cannot win (a stale log, or cut off from a majority) never disturbs the cluster's term.
    fn become_pre_candidate(&mut self) {
        self.coverage.hit(Decision::PreVoteStarted);
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        tracing::debug!(id = self.id, term = self.term, "starting pre-vote");
        self.request_votes(true);
    }

    fn become_candidate(&mut self) {
        self.coverage.hit(Decision::ElectionStarted);
        self.term += 1;
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        tracing::debug!(id = self.id, term = self.term, "starting election");
        self.request_votes(false);
    }

    fn request_votes(&mut self, pre_vote: bool) {
        self.votes.insert(self.id, true);
        if self.tally_votes(pre_vote) {
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        // A pre-vote asks about the term this peer would campaign in.
        let term = if pre_vote { self.term + 1 } else { self.term };
        for peer in self.other_peers() {
            self.outbox.push(Message {
                from: self.id,
                to: peer,
                term,
                body: MessageBody::RequestVote { pre_vote, last_log_index, last_log_term },
            });
        }
    }

    /// Acts on the votes so far; returns whether the (pre-)election is decided.
    fn tally_votes(&mut self, pre_vote: bool) -> bool {
        let granted = self.votes.values().filter(|&&g| g).count();
        let rejected = self.votes.len() - granted;
        if granted >= self.quorum() {
            if pre_vote {
                self.coverage.hit(Decision::PreVoteWon);
                self.become_candidate();
            } else {
                self.coverage.hit(Decision::ElectionWon);
                self.become_leader();
            }
            true
        } else if rejected >= self.quorum() {
            self.coverage.hit(Decision::ElectionLost);
            self.become_follower(self.term, None);
            true
        } else {
            false
        }
    }

    pub(super) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.reads.end_leadership();
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let next = self.log.last_index() + 1;
        self.progress = self.other_peers().into_iter().map(|p| (p, Progress::new(next))).collect();
        // Earlier terms' entries above the commit index count towards the flow-control bound
        // too: they commit only with this term's first entry.
        self.uncommitted_bytes = self
            .log
            .slice(self.log.committed + 1, self.log.last_index())
            .iter()
            .map(Entry::payload_size)
            .sum();
        tracing::info!(
            id = self.id,
            term = self.term,
            last_index = self.log.last_index(),
            "became leader"
        );
        // An implementation that commits earlier terms' entries by counting replicas has no use
        // for the no-op (whose purpose is to commit them through an entry of the new term), and
        // with it the bug would hide: the first acknowledgement would cover the no-op too.
        if self.config.noop_on_election && !self.config.has_bug(Bug::CommitOldTerm) {
            // §8: an entry of the leader's own term, so that everything before it commits.
            self.append_to_own_log(EntryKind::Noop, Vec::new());
        }
        // Probe every follower at once, so that match indexes (and commits) are known early.
        self.broadcast_append_even_if_empty();
    }

    /// A candidate's or pre-candidate's handling of the messages of its own term.
    pub(super) fn step_candidate(&mut self, msg: Message) {
        match msg.body {
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                let polling = self.role == Role::PreCandidate;
                if pre_vote != polling {
                    // An answer to an earlier stage of this election.
                    self.coverage.hit(Decision::VoteReplyOtherStage);
                    return;
                }
                if self.votes.contains_key(&msg.from) {
                    // A duplicate: a peer's first answer is the one that counts.
                    self.coverage.hit(Decision::VoteReplyDuplicate);
                    return;
                }
                self.votes.insert(msg.from, granted);
                self.tally_votes(pre_vote);
            }
            // Another peer won this term (§5.2): follow it.
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.coverage.hit(Decision::CandidateFollowsLeader);
                self.become_follower(msg.term, Some(msg.from));
                self.step_follower(msg);
            }
            _ => {}
        }
    }

    /// Answers a vote or pre-vote request whose term is not older than this peer's.
    pub(super) fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_log_index: Index,
        last_log_term: Term,
    ) {
        let can_vote = if pre_vote {
            // A pre-vote for a later term is granted freely (it binds nothing), but not while
            // this peer follows a live leader.
            term > self.term || (self.vote.is_none() && self.leader.is_none())
        } else {
            self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none())
        };
        // §5.4.1: only a candidate whose log is at least as up-to-date can win.
        let log_ok = self.log.is_up_to_date(last_log_index, last_log_term)
            || self.config.has_bug(Bug::VoteWithoutLogCheck);
        let lease = pre_vote && self.in_leader_lease();
        let granted = can_vote && log_ok && !lease;
        self.coverage.hit(match (pre_vote, granted) {
            (false, true) => Decision::VoteGranted,
            (false, false) if !can_vote => Decision::VoteRefusedVoted,
            (false, false) => Decision::VoteRefusedLog,
            (true, true) => Decision::PreVoteGranted,
            (true, false) if lease => Decision::PreVoteRefusedLease,
            (true, false) if !can_vote => Decision::PreVoteRefusedFollowing,
            (true, false) => Decision::PreVoteRefusedLog,
        });
        if granted && !pre_vote {
            self.vote = Some(from);
            self.reset_election_timer();
        }
        // A grant answers in the requested term, so a pre-candidate does not take it for news
        // of a newer term; a refusal carries this peer's term.
        let reply_term = if granted { term } else { self.term };
        tracing::debug!(id = self.id, from, term, pre_vote, granted, "vote request");
        self.outbox.push(Message {
            from: self.id,
            to: from,
            term: reply_term,
            body: MessageBody::RequestVoteResponse { pre_vote, granted },
        });
    }

    /// Whether this peer heard from a leader within the election timeout (check-quorum's lease).
    /// A leader counts itself: while a majority answers it, it ignores candidates too.
    pub(super) fn in_leader_lease(&self) -> bool {
        // With lease reads, a peer that just started may have answered a leader's round
        // before it went down: it keeps that lease too, for an election timeout.
        let just_started = self.config.read_only == ReadOnly::LeaseBased
            && self.reads.ticks < u64::from(self.config.election_tick);
        self.config.check_quorum
            && (self.leader.is_some() || just_started)
            && self.election_elapsed < self.config.election_tick
    }
}
