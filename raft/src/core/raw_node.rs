//! The peer's protocol state machine.

use super::config::{Config, ConfigError};
use super::types::*;

/// Everything the driver must do after feeding inputs to a [`RawNode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist: the first replaces the stored entry at its index and everything after.
    pub entries: Vec<Entry>,
    /// Messages to send once `hard_state` and `entries` are durable.
    pub messages: Vec<Message>,
    /// Committed entries to apply, in index order (no-op entries included).
    pub committed_entries: Vec<Entry>,
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
}

/// A proposal reached a peer that is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader hint: {leader:?})")]
pub struct NotLeader {
    /// The leader this peer knows of, if any.
    pub leader: Option<NodeId>,
}

/// One peer's protocol core.
pub struct RawNode {
    config: Config,
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
        config.validate()?;
        let _ = (hard_state, entries, seed);
        todo!()
    }

    /// Time passed by one tick.
    pub fn tick(&mut self) {
        todo!()
    }

    /// A message from a peer. Messages not addressed to this peer, or from unknown peers, are
    /// dropped.
    pub fn step(&mut self, msg: Message) {
        let _ = msg;
        todo!()
    }

    /// Appends a command to the leader's log; returns where it will commit if it does.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(Index, Term), NotLeader> {
        let _ = data;
        todo!()
    }

    /// Whether [`RawNode::ready`] has anything to do.
    pub fn has_ready(&self) -> bool {
        todo!()
    }

    /// Takes what the driver must persist, send and apply.
    pub fn ready(&mut self) -> Ready {
        todo!()
    }

    /// Acknowledges that `ready` was handled: its entries are durable and its committed entries
    /// applied.
    pub fn advance(&mut self, ready: Ready) {
        let _ = ready;
        todo!()
    }

    /// The peer's state.
    pub fn status(&self) -> Status {
        todo!()
    }

    /// The whole log this peer holds in memory; `entries()[i]` has index `i + 1`.
    pub fn entries(&self) -> &[Entry] {
        todo!()
    }

    /// The entry at `index`, if this peer holds it.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let _ = index;
        todo!()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
