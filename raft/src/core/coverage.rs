//! Protocol coverage: which of its decisions a peer took, and how often.
//!
//! Every branch of the receiver rules and the rules for servers (Figure 2, with pre-vote,
//! check-quorum and the replication pipeline) is a [`Decision`]; the core counts each one it
//! takes. A counter is one array increment, so coverage is always on. The simulator sums the
//! counts of every peer and incarnation of a run, and `gauntlet sim` reports which decisions a
//! campaign never took and steers its schedules towards the rare ones.

use std::fmt;

macro_rules! decisions {
    ($($name:ident = $text:literal, $what:literal;)*) => {
        /// One decision of the protocol core.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Decision {
            $(#[doc = $what] $name,)*
        }

        impl Decision {
            /// Every decision, in the order of the protocol's rules.
            pub const ALL: &'static [Decision] = &[$(Decision::$name,)*];

            /// The decision's name in reports, e.g. `probe-to-replicate`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Decision::$name => $text,)*
                }
            }

            /// Whether only a broken or forged peer makes the core take this decision: a
            /// defence, which a correct cluster never reaches.
            pub fn is_defensive(self) -> bool {
                matches!(self, Decision::AckBeyondLog)
            }

            /// What the decision is, in one line.
            pub fn what(self) -> &'static str {
                match self {
                    $(Decision::$name => $what,)*
                }
            }
        }
    };
}

decisions! {
    ElectionTimeout = "election-timeout", "a follower's or candidate's election timer ran out";
    PreVoteStarted = "pre-vote-started", "a peer polled the others before raising its term";
    ElectionStarted = "election-started", "a peer raised its term and asked for votes";
    PreVoteWon = "pre-vote-won", "a pre-candidate heard from a majority and became a candidate";
    ElectionWon = "election-won", "a candidate won a majority and became leader";
    ElectionLost = "election-lost", "a majority refused a (pre-)candidate: it became a follower";
    VoteGranted = "vote-granted", "a vote was granted";
    VoteRefusedVoted = "vote-refused-voted", "a vote was refused: voted for another in this term, or following a leader";
    VoteRefusedLog = "vote-refused-log", "a vote was refused: the candidate's log is behind (§5.4.1)";
    PreVoteGranted = "pre-vote-granted", "a pre-vote was granted";
    PreVoteRefusedLog = "pre-vote-refused-log", "a pre-vote was refused: the candidate's log is behind";
    PreVoteRefusedFollowing = "pre-vote-refused-following", "a pre-vote for this peer's own term was refused: it has a vote or a leader";
    PreVoteRefusedLease = "pre-vote-refused-lease", "a pre-vote was refused under the leader lease (check-quorum)";
    VoteIgnoredLease = "vote-ignored-lease", "a higher-term (pre-)vote request was ignored under the leader lease";
    VoteReplyOtherStage = "vote-reply-other-stage", "a vote reply to an earlier stage of the election was ignored";
    VoteReplyDuplicate = "vote-reply-duplicate", "a second vote reply from the same peer was not counted";
    CandidateFollowsLeader = "candidate-follows-leader", "a candidate heard from a leader of its term and followed it (§5.2)";
    HigherTermAdopted = "higher-term-adopted", "a message of a higher term made this peer a follower of it (§5.1)";
    StaleAppendAnswered = "stale-append-answered", "an append or heartbeat of an older term was answered with the newer term";
    StalePreVoteRefused = "stale-pre-vote-refused", "a pre-vote request of an older term was refused with the newer term";
    StaleMessageDropped = "stale-message-dropped", "another message of an older term was dropped";
    CheckQuorumStepDown = "check-quorum-step-down", "a leader that had not heard from a majority stepped down";
    ProposalAccepted = "proposal-accepted", "a leader appended a client's command";
    ProposalRefused = "proposal-refused", "a peer that does not lead refused a command";
    ProposalRefusedOverloaded = "proposal-refused-overloaded", "a leader refused a command: its uncommitted entries reached the flow-control bound";
    AppendPaused = "append-paused", "an append was held back: a probe unanswered or the pipeline full";
    EntriesEvicted = "entries-evicted", "applied, durable entries were dropped from memory to keep the log within its budget";
    EntriesReadAsked = "entries-read-asked", "a leader asked to read back evicted entries a follower lacks";
    EntriesReadBack = "entries-read-back", "a leader sent a follower entries read back from storage";
    BatchCutByCount = "batch-cut-by-count", "an append was cut at max_append_entries";
    BatchCutByBytes = "batch-cut-by-bytes", "an append was cut at max_append_bytes";
    PipelineStalled = "pipeline-stalled", "a pipeline without progress for a heartbeat round fell back to probing";
    HeartbeatFreedSlot = "heartbeat-freed-slot", "a heartbeat answer freed the oldest slot of a full pipeline";
    HeartbeatResumedAppend = "heartbeat-resumed-append", "a heartbeat answer from a lagging follower sent it entries";
    AckAccepted = "ack-accepted", "a leader counted an append's acknowledgement";
    AckBeyondLog = "ack-beyond-log", "a leader ignored an acknowledgement of entries it never had";
    ProbeToReplicate = "probe-to-replicate", "an acknowledged probe turned the follower's progress to replication";
    CommitAdvanced = "commit-advanced", "a leader advanced its commit index by a majority's matches";
    CommitWithheldOldTerm = "commit-withheld-old-term", "a majority held an earlier term's entry, which was not committed by counting (§5.4.2)";
    RejectionStale = "rejection-stale", "a rejection of an append the leader no longer waited for was ignored";
    RejectionSkippedTerm = "rejection-skipped-term", "a conflict hint skipped to the leader's last entry of the follower's term";
    RejectionUnknownTerm = "rejection-unknown-term", "a conflict hint named a term the leader lacks: back to its first index";
    RejectionShortLog = "rejection-short-log", "a rejection from a follower whose log is too short: back to its end";
    AppendMissingPrev = "append-missing-prev", "an append was rejected: the follower lacks its previous entry";
    AppendTermMismatch = "append-term-mismatch", "an append was rejected: the previous entry's term differs";
    AppendAccepted = "append-accepted", "an append passed the consistency check";
    AppendTruncated = "append-truncated", "an append conflicted with uncommitted entries, which were cut (§5.3)";
    AppendAlreadyHeld = "append-already-held", "an append brought only entries the follower holds (stale or duplicated)";
    FollowerCommitAdvanced = "follower-commit-advanced", "a follower advanced its commit index from the leader's";
    ReadForwarded = "read-forwarded", "a follower asked its leader for a read index";
    ReadRefusedNoLeader = "read-refused-no-leader", "a read was refused: no leader known";
    ReadWaitsForCommit = "read-waits-for-commit", "a read waited for the leader's first commit of its term (§6.4)";
    ReadServedAlone = "read-served-alone", "a read went without a heartbeat round (a single-peer cluster)";
    ReadServedByLease = "read-served-by-lease", "a read went under the leader's lease (§6.4.1)";
    ReadConfirmed = "read-confirmed", "a read went once a majority answered a round started after it (§6.4)";
    SnapshotTaken = "snapshot-taken", "the service's snapshot replaced the log up to an applied index (§7)";
    SnapshotSendStarted = "snapshot-send-started", "a leader began sending its snapshot to a follower that needs compacted entries";
    SnapshotAnswerStale = "snapshot-answer-stale", "a leader ignored an answer about a snapshot it no longer sends";
    SnapshotChunkReceived = "snapshot-chunk-received", "a follower took a chunk of the leader's snapshot and waits for the next";
    SnapshotChunkOutOfOrder = "snapshot-chunk-out-of-order", "a follower got a chunk other than the next one and asked again";
    SnapshotIgnoredCommitted = "snapshot-ignored-committed", "a follower ignored a snapshot covering only what it had committed";
    SnapshotAnswerNoProgress = "snapshot-answer-no-progress", "a leader sent no chunk for an answer that holds no more of its snapshot than the last (duplicated, late, or from a follower that lost it)";
    SnapshotInstalled = "snapshot-installed", "a follower installed the leader's snapshot in place of its whole log";
    SnapshotToReplicate = "snapshot-to-replicate", "a follower holding the snapshot was acknowledged and went back to appends";
    AppendBelowSnapshot = "append-below-snapshot", "an append began inside the follower's snapshot: checked from the snapshot's end";
    SnapshotInstalledKeepingLog = "snapshot-installed-keeping-log", "a follower installed a snapshot and kept the entries after it (§7)";
}

/// How often each [`Decision`] was taken.
#[derive(Clone, PartialEq, Eq)]
pub struct Coverage {
    counts: Vec<u64>,
}

impl Default for Coverage {
    fn default() -> Coverage {
        Coverage { counts: vec![0; Decision::ALL.len()] }
    }
}

impl Coverage {
    /// Counts one `decision`.
    #[inline]
    pub fn hit(&mut self, decision: Decision) {
        self.counts[decision as usize] += 1;
    }

    /// How often `decision` was taken.
    pub fn count(&self, decision: Decision) -> u64 {
        self.counts[decision as usize]
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Coverage) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// The decisions taken at least once.
    pub fn taken(&self) -> impl Iterator<Item = Decision> + '_ {
        Decision::ALL.iter().copied().filter(|&d| self.count(d) > 0)
    }

    /// The decisions never taken.
    pub fn never_taken(&self) -> Vec<Decision> {
        Decision::ALL.iter().copied().filter(|&d| self.count(d) == 0).collect()
    }
}

impl fmt::Debug for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.taken().map(|d| (d.name(), self.count(d)))).finish()
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
