//! The deterministic simulator: whole clusters of [`RawNode`](crate::RawNode)s in one thread and
//! virtual time.
//!
//! - [`Sim`] ([`world`]): the event queue, the peers ([`node`]) and the [`network`] between them.
//!   It drives each peer by the core's contract (persist, send, apply, advance), with
//!   persistence instant: a crash keeps exactly what the processed readies wrote. It delays,
//!   drops, duplicates and reorders messages (the seed labs' reliable, unreliable and
//!   long-reordering modes), disconnects and reconnects peers, crashes and restarts them, and
//!   counts each peer's requests and bytes.
//! - [`invariants`]: after every step, election safety, log matching, leader completeness,
//!   state machine safety and durability-before-send; a violation fails the run with the seed
//!   and the [`trace`] of the events that led to it.
//! - [`Cluster`] ([`cluster`]): the seed labs' tester over the simulator (`check_one_leader`,
//!   `one`, `wait`, `crash`, ...), with cooperative tasks standing in for tester threads.
//! - [`seeds`]: running a scenario under `RAFT_SEED`, `RAFT_SEEDS` and `RAFT_BUG`.
//!
//! Given a seed, a run is exactly reproducible: every random choice (network fates, tick
//! phases, the peers' election timeouts, the scenario's own choices) comes from ChaCha8
//! generators derived from it.
//!
//! ```no_run
//! use raft::sim::{num, scenario};
//!
//! scenario("example", 3, |c| async move {
//!     let leader = c.check_one_leader().await;
//!     c.disconnect(leader);
//!     assert_eq!(c.one(num(7), 2, false).await, 1);
//! });
//! ```

pub mod cluster;
mod executor;
pub mod invariants;
pub mod mutate;
pub mod network;
pub mod node;
pub mod seeds;
pub mod service;
pub mod shrink;
pub mod swarm;
pub mod torture;
pub mod trace;
pub mod world;

pub use cluster::{num, Cluster, Cmd, Sleep, ELECTION_TIMEOUT_MS};
pub use executor::JoinHandle;
pub use mutate::mutate;
pub use seeds::{run_scenario, scenario, scenario_with, Plan, Trial, DEFAULT_SEED};
pub use shrink::{shrink, shrink_failure, Shrunk};
pub use swarm::Swarm;
pub use torture::{Action, Failure, Family, Passed, Phase, RunOptions, Schedule, Step, Target};
pub use world::{NodeStats, Sim, SimConfig};
