//! The Raft protocol as a pure state machine, in the manner of etcd's raft.
//!
//! [`RawNode`] takes inputs — [`RawNode::step`] for a message from a peer, [`RawNode::tick`] for
//! the passing of time, [`RawNode::propose`] for a new command — and collects outputs in a
//! [`Ready`]: the hard state and entries to make durable, the messages to send, and the committed
//! entries to apply. It does no I/O, reads no clock and starts no thread; its only randomness
//! (election timeouts) comes from a seeded generator, so the same inputs always give the same
//! outputs.
//!
//! The driver's loop, for every [`Ready`]:
//! 1. persist `hard_state`, `snapshot` (which replaces the log up to its index) and `entries`
//!    (an entry at index `i` replaces the stored entry at `i` and everything after it) and make
//!    them durable;
//! 2. send `messages` (some of them — vote grants, append acknowledgements — are only true once
//!    step 1 is durable);
//! 3. if `restore_snapshot`, restore the service's state from `snapshot`; then apply
//!    `committed_entries` in order;
//! 4. call [`RawNode::advance`] with the ready;
//! 5. if `read_entries` asks for entries, read them from storage and hand them to
//!    [`RawNode::entries_read`].

mod bugs;
mod config;
mod coverage;
mod election;
mod log;
mod progress;
mod raw_node;
mod read_back;
mod read_only;
mod replication;
mod snapshot;
mod types;

pub use bugs::{Bug, UnknownBug};
pub use config::{Config, ConfigError, ReadOnly};
pub use coverage::{Coverage, Decision};
pub use raw_node::{ProposeError, RawNode, ReadError, Ready, Status};
pub use snapshot::SnapshotError;
pub use types::{
    Entry, EntryKind, HardState, Index, Message, MessageBody, NodeId, ReadState, Role, Snapshot,
    Term,
};

#[cfg(test)]
mod tests;
