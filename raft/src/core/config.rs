//! How a peer is configured: its identity, its cluster, its timing in ticks, and which protocol
//! extensions are on.

use super::types::NodeId;
use thiserror::Error;

/// The configuration of one peer's protocol core.
///
/// Time is counted in ticks: the driver calls [`RawNode::tick`](super::RawNode::tick) at a fixed
/// interval (the runtime and the simulator use 10 ms), so these values are independent of the
/// clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This peer's id; must be one of `peers`.
    pub id: NodeId,
    /// Every voting member of the cluster, this peer included.
    pub peers: Vec<NodeId>,
    /// The base election timeout. Each peer picks its timeout at random in
    /// `[election_tick, 2 * election_tick)` every time it resets its timer (§5.2).
    pub election_tick: u32,
    /// How often a leader sends heartbeats to an idle follower.
    pub heartbeat_tick: u32,
    /// Pre-vote (thesis §9.6): a peer first polls the others and starts a real election only when
    /// a majority would vote for it, so a partitioned peer that comes back does not disrupt a
    /// healthy leader by raising the term.
    pub pre_vote: bool,
    /// Check-quorum (thesis §6.2): a leader that has not heard from a majority within an election
    /// timeout steps down, and a follower that heard from a leader within an election timeout
    /// ignores (pre-)vote requests.
    pub check_quorum: bool,
    /// Append an empty entry at the start of each term (§8), so that entries of earlier terms
    /// commit without waiting for a new command. Off in the lab profile: the labs expect the first
    /// command at index 1.
    pub noop_on_election: bool,
    /// At most this many entries in one AppendEntries message.
    pub max_append_entries: usize,
    /// At most about this many bytes of entries in one AppendEntries message (at least one entry
    /// is always sent).
    pub max_append_bytes: usize,
    /// At most this many AppendEntries messages carrying entries in flight to one follower at a
    /// time (pipelining).
    pub max_inflight: usize,
    /// A leader refuses a proposal while this many of its entries are not committed yet
    /// ([`ProposeError::Overloaded`](super::ProposeError::Overloaded)): proposals faster than
    /// a majority can take them wait in the service, not in the leader's memory.
    pub max_uncommitted_entries: usize,
    /// As `max_uncommitted_entries`, in bytes of entries (etcd's `MaxUncommittedEntriesSize`).
    /// An entry larger than the bound is still taken when nothing else is uncommitted.
    pub max_uncommitted_bytes: usize,
    /// How [`RawNode::read_index`](super::RawNode::read_index) confirms the leadership.
    pub read_only: ReadOnly,
    /// At most this many bytes of snapshot in one InstallSnapshot message: a large snapshot
    /// goes in chunks, one in flight per follower, so that it neither exceeds a transport's
    /// frame limit nor holds a link for long.
    pub max_snapshot_chunk_bytes: usize,
    /// When the entries held in memory pass this many bytes, those applied and durable are
    /// dropped from memory, oldest first, down to half of it: storage holds them, and a leader
    /// that needs them for a lagging follower reads them back
    /// ([`Ready::read_entries`](super::Ready::read_entries)). The log's memory then stays
    /// bounded between snapshots however long it grows; `usize::MAX` keeps every entry after
    /// the snapshot. Default: 64 MiB.
    pub max_log_memory_bytes: usize,
    /// A deliberately broken protocol variant, for proving that the tests find bugs.
    #[cfg(feature = "bugs")]
    pub bug: Option<super::Bug>,
}

/// How a leader confirms, for a read, that no other leader has committed anything newer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReadOnly {
    /// ReadIndex (thesis §6.4): a heartbeat round started after the request, answered by a
    /// majority. Safe whatever the clocks do.
    #[default]
    Safe,
    /// Lease reads (thesis §6.4.1): no round while the leader's lease holds. A majority that
    /// answered a round sent at tick `t` ignores other candidates for `election_tick` ticks
    /// of their own clocks after they heard it (check-quorum's lease), so the leader serves
    /// reads alone for [`ReadOnly::lease_ticks`] of its clock after `t`: three quarters of an
    /// election timeout, less the tick a boundary may cost on each side. Safe while no clock
    /// runs more than about a quarter faster or slower than another over an election timeout.
    /// Needs `check_quorum`; a peer that just started then also waits an election timeout
    /// before it votes (it may have answered the leader before it went down).
    LeaseBased,
}

impl ReadOnly {
    /// The ticks after a confirmed round's sending during which a lease holds.
    pub fn lease_ticks(election_tick: u32) -> u64 {
        (u64::from(election_tick) * 3 / 4).saturating_sub(1)
    }
}

impl Config {
    /// The profile of the seed labs: 10 ms ticks, heartbeats every 100 ms (at most 10 per second),
    /// election timeouts of 300-600 ms, pre-vote and check-quorum on, and no no-op entry so that
    /// the first command lands at index 1.
    pub fn lab(id: NodeId, peers: Vec<NodeId>) -> Config {
        Config {
            id,
            peers,
            election_tick: 30,
            heartbeat_tick: 10,
            pre_vote: true,
            check_quorum: true,
            noop_on_election: false,
            max_append_entries: 64,
            max_append_bytes: 1 << 20,
            max_inflight: 16,
            max_uncommitted_entries: 1 << 16,
            max_uncommitted_bytes: 64 << 20,
            read_only: ReadOnly::Safe,
            max_snapshot_chunk_bytes: 1 << 20,
            max_log_memory_bytes: 64 << 20,
            #[cfg(feature = "bugs")]
            bug: None,
        }
    }

    /// The profile for services: as [`Config::lab`] but with the leader's no-op entry, which
    /// linearizable reads and prompt commits of earlier terms need.
    pub fn service(id: NodeId, peers: Vec<NodeId>) -> Config {
        Config { noop_on_election: true, ..Config::lab(id, peers) }
    }

    /// Checks that the configuration can run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.peers.contains(&self.id) {
            return Err(ConfigError::NotAPeer(self.id));
        }
        let mut sorted = self.peers.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicatePeer);
        }
        if self.heartbeat_tick == 0 {
            return Err(ConfigError::Invalid("heartbeat_tick must be at least 1"));
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(ConfigError::Invalid("election_tick must be greater than heartbeat_tick"));
        }
        if self.max_append_entries == 0 || self.max_inflight == 0 {
            return Err(ConfigError::Invalid(
                "max_append_entries and max_inflight must be at least 1",
            ));
        }
        if self.read_only == ReadOnly::LeaseBased && !self.check_quorum {
            return Err(ConfigError::Invalid("lease-based reads need check_quorum"));
        }
        if self.max_snapshot_chunk_bytes == 0 {
            return Err(ConfigError::Invalid("max_snapshot_chunk_bytes must be at least 1"));
        }
        if self.max_uncommitted_entries == 0 || self.max_uncommitted_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_uncommitted_entries and max_uncommitted_bytes must be at least 1",
            ));
        }
        Ok(())
    }

    /// The bug of the catalogue switched on, if `matches` it.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn bug_of_kind(&self, matches: impl Fn(super::Bug) -> bool) -> Option<super::Bug> {
        #[cfg(feature = "bugs")]
        {
            self.bug.filter(|&bug| matches(bug))
        }
        #[cfg(not(feature = "bugs"))]
        {
            None
        }
    }

    /// Whether the given bug of the catalogue is switched on.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn has_bug(&self, bug: super::Bug) -> bool {
        #[cfg(feature = "bugs")]
        {
            self.bug == Some(bug)
        }
        #[cfg(not(feature = "bugs"))]
        {
            false
        }
    }
}

/// Why a configuration cannot run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("peer id {0} is not among the configured peers")]
    NotAPeer(NodeId),
    #[error("a peer id appears twice in the configured peers")]
    DuplicatePeer,
    #[error("invalid configuration: {0}")]
    Invalid(&'static str),
}
