//! The nemesis: Jepsen's fault vocabulary, injected on a seeded schedule and recorded in the
//! history.
//!
//! - `kill`: SIGKILL, and later a restart from the node's data directory.
//! - `crash`: a simulated power failure (the node runs on a crash disk): what the node had
//!   not synced is lost, kept in part, or torn, in one crash state drawn from the seed; later a
//!   restart.
//! - `disk-error`: the node's next log write fails with ENOSPC or its next sync with EIO
//!   (losing the unsynced writes, as a failed writeback does); a correct node stops, and is
//!   restarted later. One that carries on is killed and restarted at the fault's end.
//! - `disk-damage`: the node is killed and the last record of its log (a sync marker) torn or
//!   given a flipped byte; a correct node cuts it off on restart and keeps every entry.
//! - `disk-corrupt` (not in `all`): the node is killed and a synced entry of its log given a
//!   flipped byte or a zeroed block; a correct node refuses to start on it, and the nemesis
//!   then restores the log from a copy made before the damage (an operator's backup) and
//!   starts it again.
//! - `pause`: SIGSTOP, and later SIGCONT; a paused leader comes back stale (see
//!   `Nemesis::hold_stale_leader`).
//! - `partition`: links cut at the proxy, in one of Jepsen's shapes.
//! - `net`: message loss, delay, duplication and reordering at the proxy (delays only, in order,
//!   for systems whose links are byte streams).
//! - `clock`: the leader's clock (a random node's when none is known) runs 4-10 times slow and
//!   the node is cut off from its peers: it believes it leads long after a majority elected
//!   another, which is where unconfirmed reads and lease reads go wrong (`gauntlet node` only).
//!
//! Process faults aim at one node, a minority, a majority, all of them, or the current leader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use checker::safety::{NodeEvent, NodeEventKind};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use raft::storage::{CrashFamily, DiskError};

use crate::cluster::{Cluster, LeaderSource, ProcessState};
use crate::node::crash::{CrashRecord, CrashRequest, DiskErrorRequest};
use crate::node::damage::{self, Damage};
use crate::proxy::{Link, LinkFaults, Proxy};
use crate::recorder::Recorder;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Kill,
    Crash,
    DiskError,
    DiskDamage,
    DiskCorrupt,
    Pause,
    Partition,
    Net,
    /// A slow clock on a node cut off from its peers.
    Clock,
    /// Leaders paused right after a burst of client writes, on a clock of its own
    /// ([`crate::depose`]).
    Depose,
    /// Nodes killed and restarted in quick succession, on a clock of its own
    /// ([`crate::storm`]).
    RestartStorm,
    /// Followers brought back behind the leader's snapshot while late copies of their messages
    /// arrive, on a clock of its own ([`crate::catchup`]).
    CatchUp,
}

impl FaultKind {
    /// What `all` means: every kind but `disk-corrupt`, which damages data a node had made
    /// durable (a fault of the disk, not of the node) and is asked for by name.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::Kill,
        FaultKind::Crash,
        FaultKind::DiskError,
        FaultKind::DiskDamage,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Net,
        FaultKind::Clock,
        FaultKind::Depose,
        FaultKind::RestartStorm,
        FaultKind::CatchUp,
    ];

    /// Every kind.
    pub const EVERY: [FaultKind; 12] = [
        FaultKind::Kill,
        FaultKind::Crash,
        FaultKind::DiskError,
        FaultKind::DiskDamage,
        FaultKind::DiskCorrupt,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Net,
        FaultKind::Clock,
        FaultKind::Depose,
        FaultKind::RestartStorm,
        FaultKind::CatchUp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Crash => "crash",
            FaultKind::DiskError => "disk-error",
            FaultKind::DiskDamage => "disk-damage",
            FaultKind::DiskCorrupt => "disk-corrupt",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Net => "net",
            FaultKind::Clock => "clock",
            FaultKind::Depose => "depose",
            FaultKind::RestartStorm => "restart-storm",
            FaultKind::CatchUp => "catch-up",
        }
    }

    /// Parses a comma-separated list such as `kill,crash,disk-error,pause,partition,net`, or
    /// `all` (every kind but `disk-corrupt`) / `none`.
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>, String> {
        match s {
            "all" => return Ok(FaultKind::ALL.to_vec()),
            "none" | "" => return Ok(Vec::new()),
            _ => {}
        }
        let mut kinds = BTreeSet::new();
        for part in s.split(',') {
            let kind = FaultKind::EVERY
                .into_iter()
                .find(|k| k.name() == part.trim())
                .ok_or_else(|| format!("unknown nemesis {part:?}: expected kill, crash, disk-error, disk-damage, disk-corrupt, pause, partition, net, clock, depose, restart-storm, catch-up, all or none"))?;
            kinds.insert(kind);
        }
        Ok(kinds.into_iter().collect())
    }
}

/// A random time in `[lo, hi]` milliseconds from `rng`: the clocked faults' waits.
pub(crate) fn millis(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi))
}

/// A fault that runs on a clock of its own beside the nemesis's steps, so that it strikes many
/// times a run ([`crate::depose`], [`crate::storm`], [`crate::catchup`]).
pub trait ClockedFault: Send {
    /// Its kind.
    fn kind(&self) -> FaultKind;
    /// Moves the fault on; called at least every 50 ms.
    fn tick(&mut self, cluster: &mut Cluster, proxy: &Proxy, rec: &Recorder) -> anyhow::Result<()>;
    /// Ends it before the final phase (undoing what is in force); returns how many times it
    /// struck.
    fn stop(&mut self, cluster: &mut Cluster, proxy: &Proxy, rec: &Recorder)
        -> anyhow::Result<u64>;
}

/// A fault in force, remembered so that it can be undone.
#[derive(Clone, Debug)]
enum Active {
    Killed(Vec<u64>),
    Crashed(Vec<u64>),
    /// Nodes given a disk error, and those of them that carried on (to be killed).
    DiskErrored(Vec<u64>, Vec<u64>),
    /// A node whose log was damaged while it was down, and the copy of its log made before
    /// (for damage a correct node refuses).
    Damaged(Vec<u64>, Option<PathBuf>),
    Paused(Vec<u64>),
    Partition(&'static str, Vec<Link>),
    Net,
    /// A node whose clock runs slow, and the links cut around it.
    Clock(u64, Vec<Link>),
}

impl FaultKind {
    /// Whether the fault runs on a clock of its own, beside the nemesis's steps.
    pub fn is_clocked(self) -> bool {
        matches!(self, FaultKind::Depose | FaultKind::RestartStorm | FaultKind::CatchUp)
    }

    /// Whether the fault needs the nodes to run on crash disks (`--crash-disk`).
    pub fn needs_crash_disk(self) -> bool {
        matches!(self, FaultKind::Crash | FaultKind::DiskError)
    }

    /// Whether the fault reaches the nodes' storage (the check crash-recovery covers it).
    pub fn is_storage_fault(self) -> bool {
        matches!(
            self,
            FaultKind::Crash
                | FaultKind::DiskError
                | FaultKind::DiskDamage
                | FaultKind::DiskCorrupt
        )
    }

    /// Faults of one class act on the same thing (processes, or links), so at most one of each
    /// class is in force at a time; one of each may overlap.
    fn is_process_fault(self) -> bool {
        matches!(
            self,
            FaultKind::Kill
                | FaultKind::Crash
                | FaultKind::DiskError
                | FaultKind::DiskDamage
                | FaultKind::DiskCorrupt
                | FaultKind::Pause
        )
    }
}

/// The fault injector of one run.
///
/// At each step of the schedule it either starts a fault or ends the oldest one. Up to two
/// faults overlap, one on processes and one on links (as Jepsen composes nemeses): a node
/// lagging behind a partition while the leader is killed is where election bugs show.
pub struct Nemesis {
    kinds: Vec<FaultKind>,
    rng: ChaCha8Rng,
    active: Vec<(FaultKind, Active)>,
    /// A paused leader whose inbound links are held (see [`Nemesis::hold_stale_leader`]).
    stale_leader: Option<u64>,
    /// Faults started, by kind name.
    pub started: std::collections::BTreeMap<&'static str, u64>,
}

impl Nemesis {
    pub fn new(kinds: Vec<FaultKind>, seed: u64) -> Nemesis {
        Nemesis {
            kinds,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6E65_6D65_7369_7321),
            active: Vec::new(),
            stale_leader: None,
            started: Default::default(),
        }
    }

    /// A description of the faults in force, for progress lines.
    pub fn describe(&self) -> String {
        if self.active.is_empty() {
            return "none".into();
        }
        let one = |(_, a): &(FaultKind, Active)| match a {
            Active::Killed(ids) => format!("kill {ids:?}"),
            Active::Crashed(ids) => format!("crash {ids:?}"),
            Active::DiskErrored(ids, _) => format!("disk-error {ids:?}"),
            Active::Damaged(ids, _) => format!("disk damage {ids:?}"),
            Active::Paused(ids) => format!("pause {ids:?}"),
            Active::Partition(shape, _) => format!("partition {shape}"),
            Active::Net => "net".to_string(),
            Active::Clock(id, _) => format!("clock n{id}"),
        };
        self.active.iter().map(one).collect::<Vec<_>>().join(" + ")
    }

    /// One step of the schedule: start a fault, or end the oldest one.
    pub fn step(
        &mut self,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        match self.next_start() {
            Some(kind) => self.start(kind, cluster, proxy, rec),
            None => self.stop_oldest(cluster, proxy, rec),
        }
    }

    /// The fault to start at this step, or None to end the oldest one. It depends on the seed
    /// and the faults in force only, so a seed replays the same schedule.
    fn next_start(&mut self) -> Option<FaultKind> {
        let active: Vec<FaultKind> = self.active.iter().map(|(k, _)| *k).collect();
        let free: Vec<FaultKind> = self
            .kinds
            .iter()
            .copied()
            // These run on clocks of their own (crate::depose, crate::storm), not in these steps.
            .filter(|k| !k.is_clocked())
            .filter(|k| active.iter().all(|a| a.is_process_fault() != k.is_process_fault()))
            .collect();
        let overlap = self.rng.gen_bool(0.5);
        if active.is_empty() || (active.len() == 1 && overlap) {
            return free.choose(&mut self.rng).copied();
        }
        None
    }

    fn start(
        &mut self,
        kind: FaultKind,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        let ids = cluster.ids();
        let leader = current_leader(cluster);
        // A process fault aims at its targets first (in the same order of draws for every kind).
        let targets =
            kind.is_process_fault().then(|| self.pick_running_targets(&ids, leader, cluster));
        let active = match (kind, targets) {
            (FaultKind::Kill | FaultKind::Pause, Some((target, nodes))) => {
                for &id in &nodes {
                    if kind == FaultKind::Kill {
                        cluster.kill(id);
                    } else {
                        cluster.pause(id);
                    }
                }
                rec.nemesis(
                    &format!("start-{}", kind.name()),
                    json!({"target": target, "nodes": nodes}),
                )?;
                if kind == FaultKind::Kill {
                    Active::Killed(nodes)
                } else {
                    Active::Paused(nodes)
                }
            }
            (FaultKind::Crash, Some(targets)) => self.start_crash(&ids, targets, cluster, rec)?,
            (FaultKind::DiskError, Some(targets)) => {
                self.start_disk_error(targets, cluster, rec)?
            }
            (FaultKind::DiskDamage | FaultKind::DiskCorrupt, Some(targets)) => {
                self.start_damage(kind, targets, cluster, rec)?
            }
            (FaultKind::Partition, _) => {
                let (shape, cut) = self.pick_partition(&ids, leader);
                proxy.update_all(|link, f| f.cut |= cut.contains(&link));
                let cut_json: Vec<Value> = cut.iter().map(|l| json!([l.from, l.to])).collect();
                rec.nemesis("start-partition", json!({"kind": shape, "cut": cut_json}))?;
                Active::Partition(shape, cut)
            }
            (FaultKind::Clock, _) => {
                // Drawn whatever the leader, so that a seed replays the same draws.
                let fallback = *ids.choose(&mut self.rng).expect("a cluster has nodes");
                let slower = self.rng.gen_range(4..=10);
                let node = leader.unwrap_or(fallback);
                cluster.set_clock(node, slower)?;
                let cut = isolate(&ids, &[node]);
                proxy.update_all(|link, f| f.cut |= cut.contains(&link));
                let cut_json: Vec<Value> = cut.iter().map(|l| json!([l.from, l.to])).collect();
                rec.nemesis(
                    "start-clock",
                    json!({"node": node, "slower": slower, "cut": cut_json}),
                )?;
                Active::Clock(node, cut)
            }
            (FaultKind::Net, _) => {
                let mut faults = LinkFaults {
                    cut: false,
                    loss: [0.0, 0.05, 0.2][self.rng.gen_range(0..3)],
                    delay_ms: [(0, 0), (0, 20), (5, 100)][self.rng.gen_range(0..3)],
                    duplicate: [0.0, 0.1][self.rng.gen_range(0..2)],
                    reorder: [0.0, 0.2][self.rng.gen_range(0..2)],
                };
                if !proxy.understands_frames() {
                    // Byte streams can only be delayed: loss, duplication and reordering are
                    // of messages.
                    faults = LinkFaults {
                        delay_ms: [(0, 20), (5, 100), (20, 200)][self.rng.gen_range(0..3)],
                        ..LinkFaults::default()
                    };
                }
                if faults == LinkFaults::default() {
                    // A draw of all zeros would be no fault at all.
                    faults.loss = 0.05;
                }
                // A partition in force keeps its cut links.
                proxy.update_all(|_, f| *f = LinkFaults { cut: f.cut, ..faults });
                rec.nemesis(
                    "start-net",
                    json!({"loss": faults.loss, "delay_ms": [faults.delay_ms.0, faults.delay_ms.1],
                           "duplicate": faults.duplicate, "reorder": faults.reorder}),
                )?;
                Active::Net
            }
            // Started by their own clocks, never by a step; every process fault has targets.
            (FaultKind::Depose | FaultKind::RestartStorm | FaultKind::CatchUp, _) | (_, None) => {
                return Ok(())
            }
        };
        *self.started.entry(kind.name()).or_default() += 1;
        let paused_leader = match &active {
            Active::Paused(nodes) if nodes.len() == 1 && Some(nodes[0]) == leader => leader,
            _ => None,
        };
        self.active.push((kind, active));
        if let Some(leader) = paused_leader {
            self.hold_stale_leader(leader, &ids, proxy, rec)?;
        }
        Ok(())
    }

    /// Starts a `crash`: see the module's documentation.
    fn start_crash(
        &mut self,
        ids: &[u64],
        (target, nodes): (&'static str, Vec<u64>),
        cluster: &mut Cluster,
        rec: &Recorder,
    ) -> anyhow::Result<Active> {
        let request = |rng: &mut ChaCha8Rng| {
            let family = *CrashFamily::ALL.choose(rng).expect("families");
            CrashRequest::new(family, rng.gen())
        };
        let mut requests: Vec<(u64, CrashRequest)> =
            nodes.iter().map(|&id| (id, request(&mut self.rng))).collect();
        let mut records = cluster.crash(&requests)?;
        // Half of the leader's crashes are followed by one of a follower at its next
        // sync within 1.5 s: with no leader to append, that sync is most likely the
        // term and vote of the election that follows (where a vote answered before
        // its sync shows).
        let mut nodes = nodes;
        if target == "leader" && self.rng.gen_bool(0.5) {
            let others: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| !nodes.contains(id))
                .filter(|&id| cluster.state(id) == ProcessState::Running)
                .collect();
            if let Some(&voter) = others.choose(&mut self.rng) {
                let then = CrashRequest { wait_ms: 1_500, ..request(&mut self.rng) };
                records.extend(cluster.crash(&[(voter, then)])?);
                requests.push((voter, then));
                nodes.push(voter);
            }
        }
        let crashes: Vec<Value> = requests
            .iter()
            .zip(&records)
            .map(|(&(id, request), record)| crash_json(id, request, record.as_ref()))
            .collect();
        rec.nemesis("start-crash", json!({"target": target, "nodes": nodes, "crashes": crashes}))?;
        Ok(Active::Crashed(nodes))
    }

    /// Starts a `disk-error`.
    fn start_disk_error(
        &mut self,
        (target, nodes): (&'static str, Vec<u64>),
        cluster: &mut Cluster,
        rec: &Recorder,
    ) -> anyhow::Result<Active> {
        let requests: Vec<(u64, DiskErrorRequest)> = nodes
            .iter()
            .map(|&id| {
                let error = *DiskError::ALL.choose(&mut self.rng).expect("errors");
                (id, DiskErrorRequest { error })
            })
            .collect();
        let outcomes = cluster.disk_error(&requests)?;
        let mut carried_on = Vec::new();
        let mut errors = Vec::new();
        for (&(id, request), (record, exited)) in requests.iter().zip(&outcomes) {
            let injected = record.as_ref().and_then(|r| r.injected.as_ref());
            if injected.is_some() && !exited {
                carried_on.push(id);
            }
            let file =
                injected.and_then(|i| i.path.file_name()).map(|n| n.to_string_lossy().into_owned());
            errors.push(json!({"node": id, "error": request.error.name(),
                    "injected": injected.is_some(), "file": file,
                    "lost_bytes": injected.map(|i| i.lost_bytes), "exited": exited}));
        }
        rec.nemesis(
            "start-disk-error",
            json!({"target": target, "nodes": nodes, "errors": errors}),
        )?;
        Ok(Active::DiskErrored(nodes, carried_on))
    }

    /// Starts a `disk-damage` or a `disk-corrupt` (`kind`).
    fn start_damage(
        &mut self,
        kind: FaultKind,
        (target, nodes): (&'static str, Vec<u64>),
        cluster: &mut Cluster,
        rec: &Recorder,
    ) -> anyhow::Result<Active> {
        let node = nodes.first().copied();
        let kinds = match kind {
            FaultKind::DiskCorrupt => Damage::SYNCED,
            _ => Damage::TAIL,
        };
        let damage = *kinds.choose(&mut self.rng).expect("damages");
        let mut rng = ChaCha8Rng::seed_from_u64(self.rng.gen());
        let mut value = json!({"target": target, "nodes": Vec::from_iter(node),
                                   "damage": damage.name()});
        let mut backup = None;
        if let Some(id) = node {
            cluster.kill(id);
            let dir = cluster.info(id).dir.clone();
            if damage.expects_refusal() {
                backup = Some(copy_log(&dir)?);
            }
            match damage::damage(&dir, damage, &mut rng)? {
                Some(done) => {
                    value["file"] = json!(done.file.file_name().map(|n| n.to_string_lossy()));
                    value["offset"] = json!(done.offset);
                    value["bytes"] = json!(done.bytes);
                    value["last_index"] = json!(done.last_index);
                }
                None => value["applied"] = json!(false),
            }
        }
        rec.nemesis(&format!("start-{}", kind.name()), value)?;
        Ok(Active::Damaged(Vec::from_iter(node), backup))
    }

    /// Composes a stale leader (a "zombie") when the leader alone is paused and partitions are
    /// among the faults: nothing reaches the paused leader, and when it resumes it hears again
    /// from every node but the one that leads now. It then learns of the newer term only from
    /// its followers' replies (§5.1), instead of from the new leader's messages, which a plain
    /// pause leaves queued in its socket to be read first. The held links are a third fault in
    /// force, on top of the process fault and link fault that may overlap.
    fn hold_stale_leader(
        &mut self,
        leader: u64,
        ids: &[u64],
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        if !self.kinds.contains(&FaultKind::Partition) {
            return Ok(());
        }
        let cut: Vec<Link> =
            ids.iter().filter(|&&id| id != leader).map(|&from| Link { from, to: leader }).collect();
        let cut_json: Vec<Value> = cut.iter().map(|l| json!([l.from, l.to])).collect();
        rec.nemesis("start-partition", json!({"kind": "stale-leader", "cut": cut_json}))?;
        *self.started.entry(FaultKind::Partition.name()).or_default() += 1;
        self.active.push((FaultKind::Partition, Active::Partition("stale-leader", cut)));
        self.apply_cuts(proxy);
        self.stale_leader = Some(leader);
        Ok(())
    }

    /// Cuts exactly the links that some partition in force cuts (partitions may overlap).
    fn apply_cuts(&self, proxy: &Proxy) {
        let cut: Vec<Link> = self
            .active
            .iter()
            .filter_map(|(_, a)| match a {
                Active::Partition(_, cut) | Active::Clock(_, cut) => Some(cut.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        proxy.update_all(|link, f| f.cut = cut.contains(&link));
    }

    /// Before a held stale leader resumes: keeps only the new leader's link to it cut.
    fn release_stale_leader(&mut self, resuming: &[u64], cluster: &Cluster, proxy: &Proxy) {
        let Some(old) = self.stale_leader.take_if(|old| resuming.contains(old)) else { return };
        // The paused node does not run, so it cannot be taken for the current leader.
        let keep: Vec<Link> = current_leader(cluster)
            .map(|new| vec![Link { from: new, to: old }])
            .unwrap_or_default();
        for (_, active) in &mut self.active {
            if let Active::Partition("stale-leader", cut) = active {
                *cut = keep.clone();
            }
        }
        self.apply_cuts(proxy);
    }

    fn stop_oldest(
        &mut self,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        if self.active.is_empty() {
            return Ok(());
        }
        let (kind, active) = self.active.remove(0);
        match active {
            Active::Killed(ids) | Active::Crashed(ids) | Active::Damaged(ids, None) => {
                for &id in &ids {
                    cluster.start(id)?;
                }
                rec.nemesis(&format!("stop-{}", kind.name()), json!({"nodes": ids}))?;
            }
            Active::Damaged(ids, Some(backup)) => {
                // A correct node refuses to start on damaged synced data; then the operator's
                // remedy: the log restored from a copy, and a start.
                let mut refused = Vec::new();
                for &id in &ids {
                    cluster.start(id)?;
                    if cluster.wait_for_exit(id, Duration::from_secs(5)) {
                        refused.push(id);
                    } else {
                        cluster.kill(id);
                    }
                    restore_log(&cluster.info(id).dir, &backup)?;
                    cluster.start(id)?;
                }
                rec.nemesis("stop-disk-corrupt", json!({"nodes": ids, "refused": refused}))?;
            }
            Active::DiskErrored(ids, carried_on) => {
                // A node that carried on after its error runs on storage that lost data: it is
                // killed and restarted (the check crash-recovery names it).
                for &id in &carried_on {
                    cluster.kill(id);
                }
                for &id in &ids {
                    cluster.start(id)?;
                }
                rec.nemesis("stop-disk-error", json!({"nodes": ids, "killed": carried_on}))?;
            }
            Active::Paused(ids) => {
                self.release_stale_leader(&ids, cluster, proxy);
                for &id in &ids {
                    cluster.resume(id);
                }
                rec.nemesis("stop-pause", json!({"nodes": ids}))?;
            }
            Active::Partition(shape, _) => {
                // Another partition in force keeps its own cuts.
                self.apply_cuts(proxy);
                rec.nemesis("stop-partition", json!({"kind": shape}))?;
            }
            Active::Net => {
                proxy.update_all(|_, f| *f = LinkFaults { cut: f.cut, ..LinkFaults::default() });
                rec.nemesis("stop-net", Value::Null)?;
            }
            Active::Clock(node, _) => {
                cluster.set_clock(node, 1)?;
                self.apply_cuts(proxy);
                rec.nemesis("stop-clock", json!({"node": node}))?;
            }
        }
        Ok(())
    }

    /// Heals everything: every fault in force, and any node not running.
    pub fn heal_all(
        &mut self,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        while !self.active.is_empty() {
            self.stop_oldest(cluster, proxy, rec)?;
        }
        proxy.heal();
        for id in cluster.ids() {
            match cluster.state(id) {
                ProcessState::Paused => cluster.resume(id),
                ProcessState::Killed => cluster.start(id)?,
                ProcessState::Running => {}
            }
        }
        Ok(())
    }

    /// Picks the nodes a process fault aims at, and keeps those that run.
    fn pick_running_targets(
        &mut self,
        ids: &[u64],
        leader: Option<u64>,
        cluster: &Cluster,
    ) -> (&'static str, Vec<u64>) {
        let (target, mut nodes) = self.pick_targets(ids, leader);
        nodes.retain(|&id| cluster.state(id) == ProcessState::Running);
        (target, nodes)
    }

    /// Picks the nodes a process fault aims at.
    fn pick_targets(&mut self, ids: &[u64], leader: Option<u64>) -> (&'static str, Vec<u64>) {
        let n = ids.len();
        let mut shuffled = ids.to_vec();
        shuffled.shuffle(&mut self.rng);
        // The leader is the most revealing target (a deposed leader that still believes it
        // leads), so it is drawn as often as all the others together. The draw never depends on
        // the cluster's state, so that a seed replays the same schedule; an unknown leader
        // falls back to one random node.
        const CHOICES: [&str; 8] =
            ["one", "minority", "majority", "all", "leader", "leader", "leader", "leader"];
        let target = *CHOICES.choose(&mut self.rng).unwrap();
        let count = match target {
            "one" => 1,
            "minority" => (n - 1) / 2,
            "majority" => n / 2 + 1,
            "all" => n,
            _ => match leader {
                Some(leader) => return (target, vec![leader]),
                None => 1,
            },
        };
        shuffled.truncate(count.max(1));
        shuffled.sort_unstable();
        (target, shuffled)
    }

    /// Picks a partition shape and the directed links it cuts.
    fn pick_partition(&mut self, ids: &[u64], leader: Option<u64>) -> (&'static str, Vec<Link>) {
        let mut shuffled = ids.to_vec();
        shuffled.shuffle(&mut self.rng);
        let n = ids.len();
        // As for process faults, the draw does not depend on the cluster's state.
        const SHAPES: [&str; 7] =
            ["one", "halves", "majorities-ring", "bridge", "leader", "leader", "one-way"];
        let shape = *SHAPES.choose(&mut self.rng).unwrap();
        let cut = match shape {
            "one" => isolate(ids, &[shuffled[0]]),
            "leader" => isolate(ids, &[leader.unwrap_or(shuffled[0])]),
            "halves" => isolate(ids, &shuffled[..n / 2]),
            "majorities-ring" => {
                // Each node keeps its links to the k nearest nodes on each side of a random ring,
                // so that it sees a bare majority, but no two nodes see the same majority.
                let k = (n / 2).div_ceil(2);
                let mut cut = Vec::new();
                for (i, &a) in shuffled.iter().enumerate() {
                    for (j, &b) in shuffled.iter().enumerate() {
                        let d = i.abs_diff(j);
                        if d.min(n - d) > k {
                            cut.push(Link { from: a, to: b });
                        }
                    }
                }
                cut
            }
            "bridge" => {
                // Two halves that meet only through one bridging node, shuffled[0].
                let (left, right) = shuffled[1..].split_at((n - 1) / 2);
                let mut cut = Vec::new();
                for &a in left {
                    for &b in right {
                        cut.push(Link { from: a, to: b });
                        cut.push(Link { from: b, to: a });
                    }
                }
                cut
            }
            _ => {
                // One-way: one node still hears everyone but nobody hears it.
                let node = shuffled[0];
                ids.iter().filter(|&&b| b != node).map(|&b| Link { from: node, to: b }).collect()
            }
        };
        (shape, cut)
    }
}

/// Copies the stopped node's log (`dir/raft`, a flat directory) to `dir/raft-backup`.
fn copy_log(dir: &Path) -> anyhow::Result<PathBuf> {
    let (from, to) = (dir.join("raft"), dir.join("raft-backup"));
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir(&to).with_context(|| format!("creating {}", to.display()))?;
    for item in std::fs::read_dir(&from).with_context(|| format!("listing {}", from.display()))? {
        let item = item?;
        std::fs::copy(item.path(), to.join(item.file_name()))
            .with_context(|| format!("copying {}", item.path().display()))?;
    }
    Ok(to)
}

/// Puts the copy `backup` of a stopped node's log back in place of `dir/raft`.
fn restore_log(dir: &Path, backup: &Path) -> anyhow::Result<()> {
    let log = dir.join("raft");
    std::fs::remove_dir_all(&log).with_context(|| format!("removing {}", log.display()))?;
    std::fs::rename(backup, &log).with_context(|| format!("restoring {}", log.display()))
}

/// What one crash did, for the history: the crash state chosen, and how many unsynced bytes
/// and operations it destroyed and kept (per file too).
fn crash_json(node: u64, request: CrashRequest, record: Option<&CrashRecord>) -> Value {
    let Some(record) = record else {
        return json!({"node": node, "family": request.family, "seed": request.seed,
                      "recorded": false});
    };
    let report = &record.report;
    let (unsynced_ops, kept_ops) = report.ops();
    let files: Vec<Value> = report
        .files
        .iter()
        .map(|f| {
            let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned());
            json!({"file": name, "unsynced_ops": f.unsynced_ops, "kept_ops": f.kept_ops,
                   "torn_at": f.torn_at, "torn_pages": f.torn_pages,
                   "unsynced_bytes": f.unsynced_bytes, "kept_bytes": f.kept_bytes})
        })
        .collect();
    let lost_dir_ops: Vec<&String> = report.dirs.iter().flat_map(|d| &d.lost).collect();
    json!({"node": node, "family": request.family, "seed": request.seed, "recorded": true,
           "at_sync": record.at_sync, "persisted_index": record.persisted_index,
           "unsynced_bytes": report.unsynced_bytes(), "kept_bytes": report.kept_bytes(),
           "unsynced_ops": unsynced_ops, "kept_ops": kept_ops, "files": files,
           "lost_dir_ops": lost_dir_ops})
}

/// The links that separate `group` from the other nodes, both ways.
fn isolate(ids: &[u64], group: &[u64]) -> Vec<Link> {
    let mut cut = Vec::new();
    for &a in group {
        for &b in ids.iter().filter(|b| !group.contains(b)) {
            cut.push(Link { from: a, to: b });
            cut.push(Link { from: b, to: a });
        }
    }
    cut
}

/// The node that leads, as far as the harness can tell, among the running ones: for systems
/// that write node records, the one that most recently became leader in the highest term and
/// has not stepped down or been killed since, read from the nodes' `events.jsonl`.
pub fn current_leader(cluster: &Cluster) -> Option<u64> {
    if let LeaderSource::Reported(leader) = &cluster.leader_source {
        let leader = *leader.lock().unwrap();
        return leader.filter(|&id| cluster.state(id) == ProcessState::Running);
    }
    let mut best: Option<(u64, u64)> = None;
    for id in cluster.ids() {
        if cluster.state(id) != ProcessState::Running {
            continue;
        }
        let Some(last) = last_role_event(&cluster.info(id).dir.join("events.jsonl")) else {
            continue;
        };
        let term = last.term.unwrap_or(0);
        let leads = matches!(last.kind, NodeEventKind::BecameLeader { .. });
        if leads && best.is_none_or(|(t, _)| term > t) {
            best = Some((term, id));
        }
    }
    best.map(|(_, id)| id)
}

/// The node's last event that changed its role: a leadership won or lost, or a start.
fn last_role_event(path: &Path) -> Option<NodeEvent> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find_map(|line| {
        let e: NodeEvent = serde_json::from_str(line).ok()?;
        let role = matches!(
            e.kind,
            NodeEventKind::BecameLeader { .. }
                | NodeEventKind::SteppedDown { .. }
                | NodeEventKind::Started { .. }
                | NodeEventKind::Restarted { .. }
        );
        role.then_some(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_reject_unknown_names() {
        let all = FaultKind::parse_list("all").unwrap();
        assert_eq!(all, FaultKind::ALL.to_vec());
        assert!(!all.contains(&FaultKind::DiskCorrupt), "disk-corrupt is asked for by name");
        assert_eq!(FaultKind::parse_list("disk-corrupt").unwrap(), vec![FaultKind::DiskCorrupt]);
        assert_eq!(
            FaultKind::parse_list("net,kill").unwrap(),
            vec![FaultKind::Kill, FaultKind::Net]
        );
        assert!(FaultKind::parse_list("kill,flood").unwrap_err().contains("flood"));
    }

    #[test]
    fn at_most_one_process_and_one_link_fault_overlap() {
        let mut nemesis = Nemesis::new(FaultKind::ALL.to_vec(), 9);
        let mut overlapped = 0;
        for _ in 0..500 {
            match nemesis.next_start() {
                Some(kind) => {
                    assert!(
                        nemesis
                            .active
                            .iter()
                            .all(|(k, _)| k.is_process_fault() != kind.is_process_fault()),
                        "two faults of one class"
                    );
                    nemesis.active.push((kind, Active::Net));
                }
                None => {
                    assert!(!nemesis.active.is_empty(), "nothing to end");
                    nemesis.active.remove(0);
                }
            }
            assert!(nemesis.active.len() <= 2);
            overlapped += usize::from(nemesis.active.len() == 2);
        }
        assert!(overlapped > 50, "faults overlap often: {overlapped}");
        // With one class only, faults never overlap.
        let mut kills = Nemesis::new(vec![FaultKind::Kill], 9);
        for _ in 0..100 {
            match kills.next_start() {
                Some(kind) => kills.active.push((kind, Active::Killed(vec![]))),
                None => {
                    kills.active.remove(0);
                }
            }
            assert!(kills.active.len() <= 1);
        }
    }

    #[tokio::test]
    async fn overlapping_partitions_each_keep_their_cuts() {
        let nodes: Vec<(u64, std::net::SocketAddr)> =
            (1..=3).map(|id| (id, "127.0.0.1:9".parse().unwrap())).collect();
        let proxy = Proxy::start(&nodes, 1).await.unwrap();
        let cut_links = |proxy: &Proxy| {
            let mut cut = BTreeSet::new();
            proxy.update_all(|link, f| {
                if f.cut {
                    cut.insert((link.from, link.to));
                }
            });
            cut
        };
        let link = |from, to| Link { from, to };
        let mut nemesis = Nemesis::new(FaultKind::ALL.to_vec(), 1);
        nemesis.active.push((FaultKind::Pause, Active::Paused(vec![2])));
        nemesis.active.push((
            FaultKind::Partition,
            Active::Partition("one-way", vec![link(1, 2), link(2, 3)]),
        ));
        nemesis.active.push((
            FaultKind::Partition,
            Active::Partition("stale-leader", vec![link(1, 2), link(3, 2)]),
        ));
        nemesis.apply_cuts(&proxy);
        assert_eq!(cut_links(&proxy), BTreeSet::from([(1, 2), (2, 3), (3, 2)]));
        // Ending the first partition leaves the second one's cuts, shared link included.
        nemesis.active.remove(1);
        nemesis.apply_cuts(&proxy);
        assert_eq!(cut_links(&proxy), BTreeSet::from([(1, 2), (3, 2)]));
        nemesis.active.clear();
        nemesis.apply_cuts(&proxy);
        assert!(cut_links(&proxy).is_empty());
        proxy.shutdown().await;
    }

    #[test]
    fn partitions_keep_their_shapes() {
        let ids = [1, 2, 3, 4, 5];
        let mut nemesis = Nemesis::new(FaultKind::ALL.to_vec(), 3);
        let mut seen = BTreeSet::new();
        assert!(nemesis.describe() == "none");
        for _ in 0..200 {
            let (shape, cut) = nemesis.pick_partition(&ids, Some(2));
            seen.insert(shape);
            let connected = |a: u64, b: u64| !cut.contains(&Link { from: a, to: b });
            match shape {
                "leader" => assert!(ids
                    .iter()
                    .filter(|&&b| b != 2)
                    .all(|&b| !connected(2, b) && !connected(b, 2))),
                "majorities-ring" => {
                    for &a in &ids {
                        let hears = ids.iter().filter(|&&b| b == a || connected(b, a)).count();
                        assert_eq!(hears, 3, "node {a} must hear exactly a bare majority: {cut:?}");
                    }
                }
                "bridge" => {
                    let bridges: Vec<u64> = ids
                        .iter()
                        .copied()
                        .filter(|&a| ids.iter().all(|&b| connected(a, b) && connected(b, a)))
                        .collect();
                    assert_eq!(bridges.len(), 1, "{cut:?}");
                }
                "one-way" => assert_eq!(cut.len(), 4),
                "halves" => assert_eq!(cut.len(), 2 * 2 * 3),
                _ => assert_eq!(cut.len(), 8),
            }
        }
        assert_eq!(seen.len(), 6, "every shape comes up: {seen:?}");
    }
}
