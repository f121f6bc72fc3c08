//! The project's own system: `gauntlet node` processes.

use std::path::PathBuf;
use std::process::Command;

use super::Launch;
use crate::cluster::{Credentials, NodeInfo};
use crate::node::server::ReadPath;

/// Starts `gauntlet node` processes.
pub struct GauntletNode {
    /// The `gauntlet` binary.
    pub exe: PathBuf,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Entries applied between two snapshots of a node's state.
    pub snapshot_entries: u64,
    /// A bug of the catalogue every node runs with.
    pub bug: Option<String>,
    /// The cluster secret and client token every node is given.
    pub credentials: Option<Credentials>,
    /// Whether nodes run on crash disks (`--crash-disk`), so that the nemesis can make them
    /// lose what they had not synced.
    pub crash_disk: bool,
    /// How the nodes answer reads (`--reads`).
    pub reads: ReadPath,
}

impl Launch for GauntletNode {
    fn command(&self, node: &NodeInfo, cluster: &[NodeInfo]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("node")
            .arg("--id")
            .arg(node.id.to_string())
            .arg("--listen")
            .arg(node.peer_addr.to_string())
            .arg("--client")
            .arg(node.client_addr.to_string())
            .arg("--data-dir")
            .arg(&node.dir)
            .arg("--tick-ms")
            .arg(self.tick_ms.to_string())
            .arg("--snapshot-entries")
            .arg(self.snapshot_entries.to_string());
        for (peer, addr) in &node.peers {
            cmd.arg("--peer").arg(format!("{peer}={addr}"));
        }
        for other in cluster.iter().filter(|n| n.id != node.id) {
            cmd.arg("--peer-client").arg(format!("{}={}", other.id, other.client_addr));
        }
        if let Some(bug) = &self.bug {
            cmd.arg("--bug").arg(bug);
        }
        if let Some(credentials) = &self.credentials {
            cmd.args(credentials.node_args());
        }
        if self.crash_disk {
            cmd.arg("--crash-disk");
        }
        if self.reads != ReadPath::ReadIndex {
            cmd.arg("--reads").arg(self.reads.name());
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd
    }
}
