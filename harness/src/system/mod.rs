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
//! - `exec`: any service that speaks the project's client protocol, started from a command
//!   template ([`exec`]); the Raft checks run when it writes the node records.

pub mod etcd;
pub mod exec;
pub mod gauntlet;
mod leader;

pub use self::leader::LeaderWatch;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use anyhow::Context;

use crate::client::Api;
use crate::cluster::{Credentials, NodeInfo};
use crate::exit::bad_input;
use crate::nemesis::FaultKind;
use crate::node::server::ReadPath;
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
    /// A service of yours that speaks the client protocol, started by `--exec`.
    Exec,
}

impl System {
    /// The name `--system` takes.
    pub fn name(self) -> &'static str {
        match self {
            System::Gauntlet => "gauntlet",
            System::Etcd => "etcd",
            System::Exec => "exec",
        }
    }

    /// Whether the harness can inject `kind` into this system. Storage faults need the crash
    /// disk and the request files of `gauntlet node`, clock faults its SIGHUP request.
    pub fn supports(self, kind: FaultKind) -> bool {
        match self {
            System::Gauntlet => true,
            System::Etcd | System::Exec => !kind.is_storage_fault() && kind != FaultKind::Clock,
        }
    }

    /// The fault kinds this system takes, for messages.
    pub fn supported_faults(self) -> String {
        let names: Vec<&str> =
            FaultKind::EVERY.iter().filter(|k| self.supports(**k)).map(|k| k.name()).collect();
        names.join(", ")
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

/// Links of `--system exec`: how the proxy carries the service's peer traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecLinks {
    /// Byte streams, whatever the protocol: delays and cuts.
    #[default]
    Bytes,
    /// The `raft` crate's transport frames: message loss, duplication and reordering too.
    Frames,
}

/// The system under test and its options, shared by `run`, `campaign` and `bench`.
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
pub struct SystemArgs {
    /// The system under test: gauntlet (the project's `gauntlet node`: every fault, every
    /// check), etcd (etcd 3.4 from Debian's `etcd-server`: kill, pause, partition, net (delays
    /// only), depose, restart-storm; linearizability checked, the Raft log checks not
    /// available) or exec (a service of yours, started by --exec: the same faults as etcd, and
    /// net's loss, duplication and reordering with --exec-links frames).
    #[arg(long, value_enum, default_value_t = System::Gauntlet)]
    pub system: System,
    /// The etcd binary (--system etcd).
    #[arg(long, default_value = "etcd")]
    pub etcd_binary: String,
    /// Serve etcd's reads from each member's own state without confirming it is current
    /// (etcd's documented serializable reads, which may be stale: the check must catch them).
    #[arg(long)]
    pub etcd_serializable_reads: bool,
    /// The command that starts one node of --system exec, with placeholders {id}, {listen},
    /// {client}, {data_dir}, {peers}, {peer_clients}, {tick_ms} (docs/systems.md).
    #[arg(long)]
    pub exec: Option<String>,
    /// How the proxy carries the peer traffic of --system exec: bytes (any protocol) or frames
    /// (the raft crate's transport).
    #[arg(long, value_enum, default_value_t = ExecLinks::Bytes)]
    pub exec_links: ExecLinks,
    /// The --system exec service writes events.jsonl and applied.jsonl in its data directory,
    /// as gauntlet node does: the Raft checks run on them.
    #[arg(long)]
    pub exec_node_records: bool,
    /// How gauntlet node answers reads: log (an entry per read), read-index (the leader
    /// confirms its leadership with a heartbeat round; followers serve reads too) or lease
    /// (no round while the leader's lease holds: safe only while clocks keep within the
    /// lease's drift bound, so `all` then leaves out the clock fault).
    #[arg(long, value_enum, default_value = "read-index")]
    pub reads: ReadPath,
}

impl SystemArgs {
    /// How the proxy carries the system's peer traffic.
    pub fn proxy_mode(&self) -> Mode {
        match self.system {
            System::Gauntlet => Mode::Frames,
            System::Etcd => Mode::Bytes { sniff: Some(etcd::sniff_sender) },
            System::Exec if self.exec_links == ExecLinks::Frames => Mode::Frames,
            System::Exec => Mode::Bytes { sniff: None },
        }
    }

    /// Whether the nodes write the node records (`events.jsonl`, `applied.jsonl`) that the Raft
    /// safety checks read.
    pub fn writes_node_records(&self) -> bool {
        match self.system {
            System::Gauntlet => true,
            System::Etcd => false,
            System::Exec => self.exec_node_records,
        }
    }

    /// Whether the system applies a resent request once (client sessions, which the client
    /// protocol includes): without them, a client that resends a write may apply it twice,
    /// which is no bug of the system.
    pub fn has_sessions(&self) -> bool {
        self.system != System::Etcd
    }

    /// Refuses options that do not fit the system, by name.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.system.name();
        if self.system != System::Etcd && self.etcd_serializable_reads {
            return Err(format!("--etcd-serializable-reads is for --system etcd, not {name}"));
        }
        if self.system != System::Gauntlet && self.reads != ReadPath::ReadIndex {
            return Err(format!("--reads is for --system gauntlet, not {name}"));
        }
        let exec_options = self.exec_node_records || self.exec_links != ExecLinks::Bytes;
        if self.system != System::Exec && (self.exec.is_some() || exec_options) {
            return Err(format!(
                "--exec, --exec-links and --exec-node-records are for --system exec, not {name}"
            ));
        }
        match self.system {
            System::Etcd if find_program(&self.etcd_binary).is_none() => Err(format!(
                "--etcd-binary {}: not found (install Debian's etcd-server, or give its path)",
                self.etcd_binary
            )),
            System::Exec => match &self.exec {
                None => Err("--system exec needs --exec, the command that starts a node".into()),
                Some(template) => exec::ExecNode::parse(template, 10).map(|_| ()),
            },
            _ => Ok(()),
        }
    }

    /// The launcher of this system's nodes and the protocol its clients speak, for a cluster
    /// whose files live in `dir`. `gauntlet node` takes `own` (its tick, planted bug and disk);
    /// the others time their elections from `own.tick_ms` too. `cluster_name` tells clusters
    /// on one machine apart (etcd's initial cluster token).
    pub fn launcher(
        &self,
        dir: &Path,
        own: GauntletNodeOptions,
        cluster_name: &str,
    ) -> anyhow::Result<(Box<dyn Launch>, Api)> {
        Ok(match self.system {
            System::Gauntlet => {
                // Peers authenticate and clients present a token.
                let credentials = Credentials::create(dir)?;
                let token = Some(credentials.token.clone());
                let node = gauntlet::GauntletNode {
                    exe: std::env::current_exe().context("finding the gauntlet binary")?,
                    tick_ms: own.tick_ms,
                    snapshot_entries: own.snapshot_entries,
                    bug: own.bug,
                    credentials: Some(credentials),
                    crash_disk: own.crash_disk,
                    reads: self.reads,
                };
                (Box::new(node), Api::Lines { token })
            }
            System::Etcd => {
                let node = etcd::EtcdNode {
                    binary: find_program(&self.etcd_binary)
                        .with_context(|| format!("finding {}", self.etcd_binary))?,
                    token: cluster_name.to_string(),
                    heartbeat_ms: 10 * own.tick_ms,
                    election_ms: 100 * own.tick_ms,
                };
                let api = etcd::EtcdApi { serializable_reads: self.etcd_serializable_reads };
                (Box::new(node), Api::Etcd(api))
            }
            System::Exec => {
                let template = self.exec.as_deref().unwrap_or_default();
                let node = exec::ExecNode::parse(template, own.tick_ms).map_err(bad_input)?;
                (Box::new(node), Api::Lines { token: None })
            }
        })
    }

    /// The options that select this system again (for replay commands).
    pub fn replay_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.system != System::Gauntlet {
            args.extend(["--system".to_string(), self.system.name().to_string()]);
        }
        if self.system == System::Etcd && self.etcd_binary != "etcd" {
            args.extend(["--etcd-binary".to_string(), self.etcd_binary.clone()]);
        }
        if self.etcd_serializable_reads {
            args.push("--etcd-serializable-reads".into());
        }
        if let Some(exec) = &self.exec {
            args.extend(["--exec".to_string(), exec.clone()]);
        }
        if self.exec_links != ExecLinks::Bytes {
            args.extend(["--exec-links".to_string(), "frames".to_string()]);
        }
        if self.exec_node_records {
            args.push("--exec-node-records".into());
        }
        if self.reads != ReadPath::ReadIndex {
            args.extend(["--reads".to_string(), self.reads.name().to_string()]);
        }
        args
    }

    /// Whether `all` should take fault `kind` for this system and its options: every fault it
    /// supports, except the clock fault under lease reads (far beyond the clock bound lease
    /// reads assume; named, it shows that bound).
    pub fn takes_in_all(&self, kind: FaultKind) -> bool {
        self.system.supports(kind) && !(kind == FaultKind::Clock && self.reads == ReadPath::Lease)
    }
}

/// What `gauntlet node` is started with, beyond its addresses.
pub struct GauntletNodeOptions {
    /// Milliseconds per Raft tick (the other systems' election timing follows it too).
    pub tick_ms: u64,
    /// Entries applied between two snapshots of a node's state (`--snapshot-entries`).
    pub snapshot_entries: u64,
    /// A planted bug of the library's catalogue.
    pub bug: Option<String>,
    /// Whether the nodes write through the crash-consistent disk that storage faults need.
    pub crash_disk: bool,
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
