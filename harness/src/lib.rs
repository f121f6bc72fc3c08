//! The gauntlet: a Jepsen-style torture harness for the `raft` crate. The `gauntlet` binary
//! (`src/main.rs`) is a thin command line over these modules; the library exists so that
//! tests and fuzz targets reach the same code the binary runs.

pub mod bench;
pub mod campaign;
pub mod catchup;
pub mod check;
pub mod client;
pub mod cluster;
pub mod depose;
pub mod exit;
pub mod hunt;
pub mod nemesis;
pub mod node;
pub mod proxy;
pub mod recorder;
pub mod report;
pub mod run;
pub mod shard;
pub mod sim;
pub mod storm;
pub mod synth;
pub mod system;
