//! The peer's protocol state machine: its state, the public inputs and outputs, and the
//! dispatch of messages by term and role. Elections live in `election.rs`, log replication in
//! `replication.rs`.

use std::collections::BTreeMap;
use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::bugs::Bug;
use super::config::{Config, ConfigError};
use super::coverage::{Coverage, Decision};
use super::log::RaftLog;
use super::progress::Progress;
use super::read_back::ReadBack;
use super::read_only::Reads;
use super::snapshot::IncomingSnapshot;
use super::types::*;

/// Everything the driver must do after feeding inputs to a [`RawNode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot to persist after `hard_state` and before `entries`: it replaces the stored
    /// log up to its index (entries after it stay if the stored log holds its last entry with
    /// its term; otherwise the whole stored log goes), and storage may drop what it covers. The
    /// service's own (taken with [`RawNode::snapshot`]) or the leader's (installed).
    pub snapshot: Option<Snapshot>,
    /// Whether the service must restore its state from `snapshot` before applying
    /// `committed_entries`: set when the snapshot is the leader's, which covers entries this
    /// peer never applied.
    pub restore_snapshot: bool,
    /// Entries to persist: the first replaces the stored entry at its index and everything after.
    pub entries: Vec<Entry>,
    /// Messages to send once `hard_state` and `entries` are durable.
    pub messages: Vec<Message>,
    /// Committed entries to apply, in index order (no-op entries included).
    pub committed_entries: Vec<Entry>,
    /// Reads asked with [`RawNode::read_index`] that may now be served, once the service has
    /// applied their index.
    pub read_states: Vec<ReadState>,
    /// Entries a leader needs for a lagging follower and no longer holds in memory (evicted by
    /// [`Config::max_log_memory_bytes`]; they are durable): read them from storage and hand
    /// them to [`RawNode::entries_read`] after advancing this ready, an empty list if storage
    /// no longer has them (compacted since). One read is asked at a time; replication to that
    /// follower waits for the answer.
    pub read_entries: Option<Range<Index>>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
            && self.read_entries.is_none()
    }
}

/// A snapshot of a peer's protocol state, for tests, tools and the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub role: Role,
    /// The leader this peer knows of in `term`.
    pub leader: Option<NodeId>,
    pub commit_index: Index,
    pub applied_index: Index,
    pub last_index: Index,
    pub last_term: Term,
    /// The last index known durable.
    pub persisted_index: Index,
    /// The last index the latest snapshot covers (0 when the log was never compacted); entries
    /// up to it are no longer held.
    pub snapshot_index: Index,
    /// The first index held in memory: `snapshot_index + 1` unless applied entries were
    /// evicted ([`Config::max_log_memory_bytes`]).
    pub held_from: Index,
}

/// Why a proposal was refused. Either way nothing was appended: the proposal has no effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// The proposal reached a peer that is not the leader.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// The leader this peer knows of, if any.
        leader: Option<NodeId>,
    },
    /// The leader holds as many uncommitted entries (or bytes) as its configuration allows
    /// ([`Config::max_uncommitted_entries`], [`Config::max_uncommitted_bytes`]): try again once
    /// some commit.
    #[error(
        "too much uncommitted: {entries} entries, {bytes} bytes (limits: {max_entries} entries, \
         {max_bytes} bytes)"
    )]
    Overloaded {
        /// Entries above the commit index.
        entries: u64,
        /// Their bytes ([`Entry::payload_size`]).
        bytes: usize,
        /// The configured bounds.
        max_entries: usize,
        max_bytes: usize,
    },
}

/// Why a read could not be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// This peer neither leads nor knows a leader to ask.
    #[error("no leader known to confirm the read")]
    NoLeader,
}

impl ProposeError {
    /// The leader the refusing peer knows of: itself when it is an overloaded leader.
    pub fn leader_hint(&self, this: NodeId) -> Option<NodeId> {
        match *self {
            ProposeError::NotLeader { leader } => leader,
            ProposeError::Overloaded { .. } => Some(this),
        }
    }
}

/// One peer's protocol core.
///
/// # Example
///
/// A single-peer cluster elects itself and commits a command:
///
/// ```
/// use raft::{Config, HardState, RawNode, Role};
///
/// let mut node = RawNode::new(Config::lab(1, vec![1]), HardState::default(), vec![], 7).unwrap();
/// let mut applied = Vec::new();
/// let mut drive = |node: &mut RawNode, applied: &mut Vec<Vec<u8>>| {
///     while node.has_ready() {
///         let ready = node.ready();
///         // A real driver persists ready.hard_state and ready.entries here, then sends
///         // ready.messages; a single peer has nobody to send to.
///         applied.extend(ready.committed_entries.iter().map(|e| e.data.clone()));
///         node.advance(ready);
///     }
/// };
/// while node.status().role != Role::Leader {
///     node.tick();
///     drive(&mut node, &mut applied);
/// }
/// let (index, _term) = node.propose(b"x=1".to_vec()).unwrap();
/// drive(&mut node, &mut applied);
/// assert_eq!(index, 1);
/// assert_eq!(applied, vec![b"x=1".to_vec()]);
/// ```
pub struct RawNode {
    pub(super) config: Config,
    pub(super) id: NodeId,
    pub(super) term: Term,
    pub(super) vote: Option<NodeId>,
    pub(super) role: Role,
    pub(super) leader: Option<NodeId>,
    pub(super) log: RaftLog,
    /// The leader's view of each other peer.
    pub(super) progress: BTreeMap<NodeId, Progress>,
    /// Votes received in the current (pre-)election: peer -> granted.
    pub(super) votes: BTreeMap<NodeId, bool>,
    /// Ticks since the last reset of the election timer (for a leader: since the last
    /// check-quorum round).
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    /// This term's election timeout, drawn in `[election_tick, 2 * election_tick)`.
    pub(super) randomized_election_timeout: u32,
    /// The commit index advanced since the last heartbeat round: followers learn it at the next
    /// tick rather than at once, so one round of messages carries many commits.
    pub(super) commit_to_announce: bool,
    /// A leader's bytes of entries above the commit index, for `max_uncommitted_bytes`.
    pub(super) uncommitted_bytes: usize,
    pub(super) rng: ChaCha8Rng,
    pub(super) outbox: Vec<Message>,
    /// The hard state the driver was last told to persist.
    pub(super) reported_hard_state: HardState,
    /// Which decisions this peer took, for the simulator's coverage reports.
    pub(super) coverage: Coverage,
    /// Reads without the log, and the clock of leases.
    pub(super) reads: Reads,
    /// The leader's snapshot as far as its chunks came in.
    pub(super) incoming: Option<IncomingSnapshot>,
    /// The latest snapshot is not yet handed out to persist, or (for the leader's) to restore.
    pub(super) snapshot_to_persist: bool,
    pub(super) snapshot_to_restore: bool,
    /// Evicted entries to read back from storage, asked and answered one read at a time.
    pub(super) read_back: ReadBack,
}

impl RawNode {
    /// A peer restarting from `hard_state` and the `entries` its storage holds (contiguous, from
    /// index 1). `seed` seeds the random election timeouts.
    pub fn new(
        config: Config,
        hard_state: HardState,
        entries: Vec<Entry>,
        seed: u64,
    ) -> Result<RawNode, ConfigError> {
        RawNode::restore(config, hard_state, Snapshot::default(), entries, seed)
    }

    /// A peer restarting from what its storage holds: `hard_state`, the latest `snapshot`
    /// (index 0 for none) and the `entries` after it (contiguous from `snapshot.index + 1`).
    /// The service restores its state from the snapshot before anything else: the core counts
    /// it applied.
    pub fn restore(
        config: Config,
        hard_state: HardState,
        snapshot: Snapshot,
        entries: Vec<Entry>,
        seed: u64,
    ) -> Result<RawNode, ConfigError> {
        config.validate()?;
        if entries.iter().enumerate().any(|(i, e)| e.index != snapshot.index + 1 + i as Index) {
            return Err(ConfigError::Invalid("entries must be contiguous from the snapshot's"));
        }
        let last_term = entries.last().map_or(snapshot.term, |e| e.term);
        if last_term > hard_state.term {
            return Err(ConfigError::Invalid("an entry's term is above the hard state's term"));
        }
        if entries.first().is_some_and(|e| e.term < snapshot.term) {
            return Err(ConfigError::Invalid("an entry's term is below the snapshot's term"));
        }
        let mut node = RawNode {
            id: config.id,
            config,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log: RaftLog::restore(snapshot, entries),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            commit_to_announce: false,
            uncommitted_bytes: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            outbox: Vec::new(),
            reported_hard_state: hard_state,
            coverage: Coverage::default(),
            reads: Reads::default(),
            incoming: None,
            snapshot_to_persist: false,
            snapshot_to_restore: false,
            read_back: ReadBack::default(),
        };
        node.reset_election_timer();
        Ok(node)
    }

    /// Time passed by one tick.
    pub fn tick(&mut self) {
        self.reads.ticks += 1;
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    /// A message from a peer. Messages not addressed to this peer, from unknown peers, or not
    /// well formed are dropped: network input never panics the core.
    pub fn step(&mut self, msg: Message) {
        if msg.to != self.id || msg.from == self.id || !self.config.peers.contains(&msg.from) {
            tracing::debug!(
                id = self.id,
                from = msg.from,
                to = msg.to,
                "dropping misaddressed message"
            );
            return;
        }
        if !is_well_formed(&msg) {
            tracing::warn!(
                id = self.id,
                from = msg.from,
                "dropping malformed {}",
                msg.body.kind_name()
            );
            return;
        }

        if msg.term > self.term {
            if let MessageBody::RequestVote { .. } = msg.body {
                // Check-quorum's lease (thesis §6.2): while this peer hears from a leader, it
                // ignores candidates, so a partitioned peer cannot depose a healthy leader.
                if self.in_leader_lease() {
                    self.coverage.hit(Decision::VoteIgnoredLease);
                    tracing::debug!(
                        id = self.id,
                        from = msg.from,
                        "ignoring vote request within a leader lease"
                    );
                    return;
                }
            }
            match msg.body {
                // A pre-vote request does not change the receiver's term; a granted pre-vote
                // carries the term the candidate would campaign in, not a newer term.
                MessageBody::RequestVote { pre_vote: true, .. }
                | MessageBody::RequestVoteResponse { pre_vote: true, granted: true } => {}
                MessageBody::RequestVoteResponse { .. }
                | MessageBody::AppendEntriesResponse { .. }
                | MessageBody::HeartbeatResponse { .. }
                | MessageBody::InstallSnapshotResponse { .. }
                    if self.role == Role::Leader
                        && self.config.has_bug(Bug::IgnoreHigherTermReply) =>
                {
                    return;
                }
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    self.coverage.hit(Decision::HigherTermAdopted);
                    self.become_follower(msg.term, Some(msg.from));
                }
                _ => {
                    self.coverage.hit(Decision::HigherTermAdopted);
                    self.become_follower(msg.term, None)
                }
            }
        } else if msg.term < self.term {
            self.step_stale(msg);
            return;
        }

        match msg.body {
            MessageBody::RequestVote { pre_vote, last_log_index, last_log_term } => self
                .handle_vote_request(msg.from, msg.term, pre_vote, last_log_index, last_log_term),
            _ => match self.role {
                Role::Leader => self.step_leader(msg),
                Role::Candidate | Role::PreCandidate => self.step_candidate(msg),
                Role::Follower => self.step_follower(msg),
            },
        }
    }

    /// A message from an older term.
    fn step_stale(&mut self, msg: Message) {
        match msg.body {
            // A deposed leader (or one cut off for a while) learns the newer term from this
            // answer and steps down; without it, pre-vote and check-quorum could leave it
            // leading alone forever.
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.coverage.hit(Decision::StaleAppendAnswered);
                self.send(
                    msg.from,
                    MessageBody::AppendEntriesResponse {
                        success: false,
                        index: 0,
                        conflict_term: None,
                        conflict_index: 0,
                    },
                );
            }
            // A stale pre-candidate learns the newer term and stops polling.
            MessageBody::RequestVote { pre_vote: true, .. } => {
                self.coverage.hit(Decision::StalePreVoteRefused);
                self.send(
                    msg.from,
                    MessageBody::RequestVoteResponse { pre_vote: true, granted: false },
                );
            }
            _ => self.coverage.hit(Decision::StaleMessageDropped),
        }
    }

    pub(super) fn step_follower(&mut self, msg: Message) {
        match msg.body {
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => {
                self.election_elapsed = 0;
                self.leader = Some(msg.from);
                self.handle_append(msg.from, prev_log_index, prev_log_term, entries, leader_commit);
            }
            MessageBody::Heartbeat { commit, round } => {
                self.election_elapsed = 0;
                self.leader = Some(msg.from);
                self.handle_heartbeat(msg.from, commit, round);
            }
            MessageBody::ReadIndexResponse { request, index } => {
                self.reads.ready.push(ReadState { request, index });
            }
            MessageBody::InstallSnapshot { index, snapshot_term, offset, total, data } => {
                self.election_elapsed = 0;
                self.leader = Some(msg.from);
                self.handle_snapshot_chunk(msg.from, index, snapshot_term, offset, total, data);
            }
            _ => {}
        }
    }

    /// Appends a command to the leader's log; returns where it will commit if it does.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        if self.role != Role::Leader {
            self.coverage.hit(Decision::ProposalRefused);
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        let entries = self.log.last_index() - self.log.committed;
        let size = data.len() + Entry::OVERHEAD;
        let (max_entries, max_bytes) =
            (self.config.max_uncommitted_entries, self.config.max_uncommitted_bytes);
        if entries >= max_entries as u64
            || (self.uncommitted_bytes > 0 && self.uncommitted_bytes + size > max_bytes)
        {
            self.coverage.hit(Decision::ProposalRefusedOverloaded);
            let bytes = self.uncommitted_bytes;
            return Err(ProposeError::Overloaded { entries, bytes, max_entries, max_bytes });
        }
        self.coverage.hit(Decision::ProposalAccepted);
        let index = self.append_to_own_log(EntryKind::Normal, data);
        self.broadcast_append();
        Ok((index, self.term))
    }

    /// Whether [`RawNode::ready`] has anything to do.
    pub fn has_ready(&self) -> bool {
        self.hard_state() != self.reported_hard_state
            || !self.outbox.is_empty()
            || self.log.persisted < self.log.last_index()
            || self.snapshot_to_persist
            || self.snapshot_to_restore
            || self.applicable_up_to() > self.log.applied
            || !self.reads.ready.is_empty()
            || self.read_round_due()
            || matches!(self.read_back, ReadBack::ToAsk(_))
    }

    /// Takes what the driver must persist, send and apply. Call [`RawNode::advance`] with it
    /// before the next call.
    pub fn ready(&mut self) -> Ready {
        if self.read_round_due() {
            // One round for every read asked since the last one started.
            self.send_heartbeats();
        }
        let hard_state = self.hard_state();
        let hard_state = (hard_state != self.reported_hard_state).then(|| {
            self.reported_hard_state = hard_state;
            if self.config.has_bug(Bug::ForgetVote) {
                HardState { vote: None, ..hard_state }
            } else {
                hard_state
            }
        });
        let snapshot = std::mem::take(&mut self.snapshot_to_persist).then(|| {
            let snapshot = self.log.snapshot().clone();
            if self.config.has_bug(Bug::SnapshotWithoutTerm) {
                Snapshot { term: 0, ..snapshot }
            } else {
                snapshot
            }
        });
        Ready {
            hard_state,
            snapshot,
            restore_snapshot: std::mem::take(&mut self.snapshot_to_restore),
            entries: self.log.unpersisted().to_vec(),
            messages: std::mem::take(&mut self.outbox),
            committed_entries: self
                .log
                .slice(self.log.applied + 1, self.applicable_up_to())
                .to_vec(),
            read_states: std::mem::take(&mut self.reads.ready),
            read_entries: self.read_back.hand_out(),
        }
    }

    /// Acknowledges that `ready` was handled: its entries are durable and its committed entries
    /// applied.
    pub fn advance(&mut self, ready: Ready) {
        if let Some(snapshot) = ready.snapshot.as_ref().filter(|_| ready.restore_snapshot) {
            self.log.applied = self.log.applied.max(snapshot.index);
        }
        if let Some(last) = ready.entries.last() {
            self.log.persisted_to(last.index, last.term);
            if self.role == Role::Leader {
                // The leader's own log counts towards a majority only once it is durable.
                self.maybe_commit();
            }
        }
        if let Some(last) = ready.committed_entries.last() {
            self.log.applied = self.log.applied.max(last.index);
        }
        if self.log.evict(self.config.max_log_memory_bytes) > 0 {
            self.coverage.hit(Decision::EntriesEvicted);
        }
    }

    /// The peer's state.
    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            term: self.term,
            vote: self.vote,
            role: self.role,
            leader: self.leader,
            commit_index: self.log.committed,
            applied_index: self.log.applied,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            persisted_index: self.log.persisted,
            snapshot_index: self.log.snapshot().index,
            held_from: self.log.held_from(),
        }
    }

    /// The entries this peer holds in memory: those after its latest snapshot that were not
    /// evicted ([`Config::max_log_memory_bytes`]), up to the last; `entries()[i]` has index
    /// `status().held_from + i`.
    pub fn entries(&self) -> &[Entry] {
        self.log.held()
    }

    /// The term of the entry at `index`, held in memory or evicted; the snapshot's at its index;
    /// `None` when compacted or past the end.
    pub fn term(&self, index: Index) -> Option<Term> {
        self.log.term_at(index)
    }

    /// The entry at `index`, if this peer holds it.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// How often this peer took each protocol decision since it started.
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(super) fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote }
    }

    /// The last index that may be handed to the service.
    fn applicable_up_to(&self) -> Index {
        if self.config.has_bug(Bug::ApplyUncommitted) {
            return self.log.last_index();
        }
        self.log.committed
    }

    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.outbox.push(Message { from: self.id, to, term: self.term, body });
    }

    pub(super) fn quorum(&self) -> usize {
        self.config.peers.len() / 2 + 1
    }

    pub(super) fn other_peers(&self) -> Vec<NodeId> {
        self.config.peers.iter().copied().filter(|&p| p != self.id).collect()
    }

    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.config.election_tick;
        self.randomized_election_timeout = self.rng.gen_range(base..2 * base);
    }
}

/// Whether a message's contents are consistent with themselves: entries carry the indexes that
/// follow `prev_log_index`, in one term order, and no term or index leaves room for overflow.
/// Anything else came from a broken or hostile peer.
fn is_well_formed(msg: &Message) -> bool {
    // No peer can be in the last term: there is no term to campaign in after it, and adopting
    // it would leave the receiver unable ever to elect a leader.
    if msg.term == Term::MAX {
        return false;
    }
    match &msg.body {
        MessageBody::AppendEntries { prev_log_index, prev_log_term, entries, .. } => {
            let mut prev = (*prev_log_index, *prev_log_term);
            for e in entries {
                if Some(e.index) != prev.0.checked_add(1) || e.term < prev.1 || e.term > msg.term {
                    return false;
                }
                prev = (e.index, e.term);
            }
            true
        }
        MessageBody::InstallSnapshot { offset, total, data, .. } => {
            offset.checked_add(data.len() as u64).is_some_and(|end| end <= *total)
        }
        _ => true,
    }
}
