//! The values the protocol core exchanges with the outside world: log entries, the hard state
//! that must survive a crash, and the one-way messages between peers.

use serde::{Deserialize, Serialize};

/// A peer's identity. Ids are chosen by the service; any `u64` works, `0` included.
pub type NodeId = u64;
/// A Raft term (§5.1). Terms start at 0 and only grow.
pub type Term = u64;
/// A position in the replicated log. The first entry has index 1; index 0 means "nothing".
pub type Index = u64;

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A command proposed by the service, delivered to it when committed.
    Normal,
    /// The empty entry a new leader appends at the start of its term (§8), so that entries of
    /// earlier terms commit without waiting for a new command. Never delivered as a command.
    Noop,
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub index: Index,
    pub term: Term,
    pub kind: EntryKind,
    /// Encoded as one byte string rather than a sequence of numbers (same postcard bytes,
    /// far less work per byte).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Entry {
    /// The bytes an entry costs beside its data (index, term, kind), in batching limits.
    pub const OVERHEAD: usize = 24;

    /// Bytes this entry adds to a message or to the uncommitted tail, for flow-control limits.
    pub fn payload_size(&self) -> usize {
        self.data.len() + Entry::OVERHEAD
    }
}

/// The service's state as of an applied index, standing in for the log up to it (§7).
///
/// The service takes one with [`RawNode::snapshot`](super::RawNode::snapshot); a leader sends
/// its latest to a follower whose missing entries it no longer holds (InstallSnapshot, in
/// chunks). `data` is the service's business: the library stores and sends it, never reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// The last index the snapshot covers (the paper's `lastIncludedIndex`).
    pub index: Index,
    /// The term of the entry at `index` (`lastIncludedTerm`): the log check of the entry after
    /// it needs it once the entry itself is gone.
    pub term: Term,
    /// The service's state, shared rather than copied between the core, storage and messages.
    pub data: std::sync::Arc<[u8]>,
}

/// The state that must be durable before the peer answers anything that depends on it (§5.1,
/// Figure 2 "Persistent state on all servers").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this peer has seen.
    pub term: Term,
    /// The candidate this peer voted for in `term`, if any.
    pub vote: Option<NodeId>,
}

/// A one-way message between two peers. A reply is just another message sent back; the
/// transport never pairs requests with replies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    /// The sender's term, or for a pre-vote request the term the sender would campaign in.
    pub term: Term,
    pub body: MessageBody,
}

/// The protocol's message kinds (Figure 2, plus pre-vote (§9.6 of Ongaro's thesis) and
/// separate heartbeats, as etcd's raft has them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// RequestVote, or with `pre_vote` the non-binding poll that precedes a real election.
    RequestVote { pre_vote: bool, last_log_index: Index, last_log_term: Term },
    /// The answer to a (pre-)vote request.
    RequestVoteResponse { pre_vote: bool, granted: bool },
    /// AppendEntries; with no entries it is a heartbeat.
    AppendEntries {
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: Index,
    },
    /// The answer to AppendEntries. On success `index` is the last index now known to match
    /// the leader's log; on failure it is the rejected `prev_log_index`, so that the leader can
    /// tell a stale rejection from a current one. On failure `conflict_term` and
    /// `conflict_index` let the leader skip a whole term at once (§5.3, "fast backtracking"):
    /// `conflict_term` is the term of the follower's entry at `prev_log_index` (None when its log
    /// is shorter) and `conflict_index` the first index the follower holds of that term (or its
    /// last index + 1 when its log is shorter).
    AppendEntriesResponse {
        success: bool,
        index: Index,
        conflict_term: Option<Term>,
        conflict_index: Index,
    },
    /// The leader's heartbeat. It carries no log check, so `commit` is capped by the sender at
    /// what it knows the follower holds (its match index). `round` numbers the leader's
    /// heartbeat rounds in its term, so that an answer confirms its leadership as of a round
    /// (ReadIndex, thesis §6.4).
    Heartbeat { commit: Index, round: u64 },
    /// The answer to a heartbeat: the follower is alive and accepts this leader, as of the
    /// heartbeat's `round`.
    HeartbeatResponse { round: u64 },
    /// A follower asks the leader for a read index on behalf of its service (thesis §6.4);
    /// `request` is the follower's own number for the read.
    ReadIndex { request: u64 },
    /// The leader's answer once a majority confirmed its leadership: reads of state that
    /// includes `index` are linearizable.
    ReadIndexResponse { request: u64, index: Index },
    /// One chunk of the leader's snapshot covering the log up to (`index`, `snapshot_term`)
    /// (§7, InstallSnapshot): `data` goes at byte `offset` of the snapshot, `total` bytes long.
    /// The chunk that reaches `total` completes it.
    InstallSnapshot {
        index: Index,
        snapshot_term: Term,
        offset: u64,
        total: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The answer to a chunk: the follower holds the first `received` bytes of the snapshot
    /// at `index`, so the next chunk it wants starts there (0 when it dropped what it had). A
    /// completed snapshot is answered by an [`AppendEntriesResponse`](Self::AppendEntriesResponse)
    /// as well, once it is durable.
    InstallSnapshotResponse { index: Index, received: u64 },
}

impl MessageBody {
    /// Whether this is a request (counted as one RPC by the labs) rather than a reply.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            MessageBody::RequestVote { .. }
                | MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::ReadIndex { .. }
                | MessageBody::InstallSnapshot { .. }
        )
    }

    /// A short name for traces and logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            MessageBody::RequestVote { pre_vote: true, .. } => "PreVote",
            MessageBody::RequestVote { pre_vote: false, .. } => "RequestVote",
            MessageBody::RequestVoteResponse { pre_vote: true, .. } => "PreVoteResponse",
            MessageBody::RequestVoteResponse { pre_vote: false, .. } => "RequestVoteResponse",
            MessageBody::AppendEntries { .. } => "AppendEntries",
            MessageBody::AppendEntriesResponse { .. } => "AppendEntriesResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
        }
    }
}

/// The role a peer plays (§5.2), plus the pre-candidate of pre-vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A read the service asked for with [`RawNode::read_index`](super::RawNode::read_index) may
/// now be served: once the service has applied `index`, its state answers the read as of a
/// moment after the request (thesis §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadState {
    /// The service's number for the read, as given to `read_index`.
    pub request: u64,
    /// The commit index when the read was requested.
    pub index: Index,
}
