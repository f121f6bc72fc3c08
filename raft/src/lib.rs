//! A Raft consensus library.
//!
//! - [`core`]: the protocol as a pure state machine ([`RawNode`]), with no I/O.
//! - [`storage`]: where a peer keeps its hard state and log: in memory, or durable in files.
//! - [`transport`]: length-prefixed frames over TCP between peers.
//! - [`node`]: the tokio runtime ([`Node`]) that drives the core with real time, storage and
//!   transport.
//! - `sim` (feature `sim`): a deterministic simulator of whole clusters in virtual time.

pub mod core;
pub mod node;
#[cfg(feature = "sim")]
pub mod sim;
pub mod storage;
pub mod transport;

pub use crate::core::{
    Bug, Config, ConfigError, Coverage, Decision, Entry, EntryKind, HardState, Index, Message,
    MessageBody, NodeId, ProposeError, RawNode, ReadError, ReadOnly, ReadState, Ready, Role,
    Snapshot, SnapshotError, Status, Term,
};
pub use crate::node::{ApplyMsg, Node, NodeConfig, NodeError, ReadIndexError};
