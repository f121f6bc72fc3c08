//! Systems under test, in the manner of Jepsen's `db` and `client`: how a system's nodes are
//! started ([`Launch`]), which faults its links and processes take, how its clients speak to
//! it ([`crate::client::Api`]), how the harness learns its leader, and which offline checks it
//! can feed. Everything else of a run (the nemesis, the clients' numbering and outcomes, the
//! history, the linearizability check, the report, campaigns) is the same for every system.
//!
//! - `gauntlet`: the project's own `gauntlet node`, with every fault and every check.
//! - `etcd`: Debian's `etcd-server` (3.4), driven through its v3 JSON gateway. Its peers speak
//!   HTTP, so its links are byte streams ([`crate::proxy::Mode::Bytes`]); it writes no node
//!   records, so the Raft log checks are not available for it.

pub mod etcd;
pub mod gauntlet;

use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;

use crate::cluster::NodeInfo;
use crate::nemesis::FaultKind;
use crate::proxy::Mode;

/// A system the harness can test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// The project's own `gauntlet node` (every fault, every check).
    #[default]
    Gauntlet,
    /// etcd 3.4 (`etcd-server`): kill, pause, partition, net (delays), depose, restart-storm;
    /// linearizability only.
    Etcd,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Gauntlet => "gauntlet",
            System::Etcd => "etcd",
        }
    }

    /// Whether the harness can inject `kind` into this system. Storage faults need the crash
    /// disk and the request files of `gauntlet node`.
    pub fn supports(self, kind: FaultKind) -> bool {
        match self {
            System::Gauntlet => true,
            System::Etcd => !kind.is_storage_fault(),
        }
    }

    /// The fault kinds this system takes, for messages.
    pub fn supported_faults(self) -> String {
        let names: Vec<&str> =
            FaultKind::EVERY.iter().filter(|k| self.supports(**k)).map(|k| k.name()).collect();
        names.join(", ")
    }

    /// How the proxy carries the system's peer traffic.
    pub fn proxy_mode(self) -> Mode {
        match self {
            System::Gauntlet => Mode::Frames,
            System::Etcd => Mode::Bytes { sniff: Some(etcd::sniff_sender) },
        }
    }

    /// Whether the nodes write the node records (`events.jsonl`, `applied.jsonl`) that the Raft
    /// safety checks read.
    pub fn writes_node_records(self) -> bool {
        self == System::Gauntlet
    }

    /// Whether the system applies a resent request once (client sessions): without them, a
    /// client that resends a write may apply it twice, which is no bug of the system.
    pub fn has_sessions(self) -> bool {
        self == System::Gauntlet
    }

    /// What a faults list of `all` means for this system, and a refusal naming the faults it
    /// does not take.
    pub fn check_faults(self, requested: &str, kinds: &mut Vec<FaultKind>) -> Result<(), String> {
        if requested == "all" {
            kinds.retain(|k| self.supports(*k));
            return Ok(());
        }
        let unsupported: Vec<&str> =
            kinds.iter().filter(|k| !self.supports(**k)).map(|k| k.name()).collect();
        if unsupported.is_empty() {
            return Ok(());
        }
        Err(format!(
            "--nemesis: --system {} does not support {}; it supports {}",
            self.name(),
            unsupported.join(", "),
            self.supported_faults()
        ))
    }
}

/// How the nodes of a system are started: the command line of each.
pub trait Launch: Send {
    /// The command that starts (or restarts, from its data directory) `node` of `cluster`. The
    /// cluster sets its working directory, output and process group.
    fn command(&self, node: &NodeInfo, cluster: &[NodeInfo]) -> Command;
}

/// Finds `program` as a shell would (a path, or a name looked up in `PATH`).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = PathBuf::from(program);
    if program.contains('/') {
        return path.is_file().then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
