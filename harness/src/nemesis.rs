//! The nemesis: Jepsen's fault vocabulary, injected on a seeded schedule and recorded in the
//! history.
//!
//! - `kill`: SIGKILL, and later a restart from the node's data directory.
//! - `pause`: SIGSTOP, and later SIGCONT.
//! - `partition`: links cut at the proxy, in one of Jepsen's shapes.
//! - `net`: message loss, delay, duplication and reordering at the proxy.
//!
//! Process faults aim at one node, a minority, a majority, all of them, or the current leader.

use std::collections::BTreeSet;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::cluster::{Cluster, ProcessState};
use crate::proxy::{Link, LinkFaults, Proxy};
use crate::recorder::Recorder;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Kill,
    Pause,
    Partition,
    Net,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] =
        [FaultKind::Kill, FaultKind::Pause, FaultKind::Partition, FaultKind::Net];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Net => "net",
        }
    }

    /// Parses a comma-separated list such as `kill,pause,partition,net`, or `all` / `none`.
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>, String> {
        match s {
            "all" => return Ok(FaultKind::ALL.to_vec()),
            "none" | "" => return Ok(Vec::new()),
            _ => {}
        }
        let mut kinds = BTreeSet::new();
        for part in s.split(',') {
            let kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.name() == part.trim())
                .ok_or_else(|| format!("unknown nemesis {part:?}: expected kill, pause, partition, net, all or none"))?;
            kinds.insert(kind);
        }
        Ok(kinds.into_iter().collect())
    }
}

/// A fault in force, remembered so that it can be undone.
#[derive(Clone, Debug)]
enum Active {
    Killed(Vec<u64>),
    Paused(Vec<u64>),
    Links(&'static str),
}

/// The fault injector of one run.
pub struct Nemesis {
    kinds: Vec<FaultKind>,
    rng: ChaCha8Rng,
    active: Option<(FaultKind, Active)>,
    /// Faults started, by kind name.
    pub started: std::collections::BTreeMap<&'static str, u64>,
}

impl Nemesis {
    pub fn new(kinds: Vec<FaultKind>, seed: u64) -> Nemesis {
        Nemesis {
            kinds,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6E65_6D65_7369_7321),
            active: None,
            started: Default::default(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// A description of the fault in force, for progress lines.
    pub fn describe(&self) -> String {
        match &self.active {
            None => "none".into(),
            Some((_, Active::Killed(ids))) => format!("kill {ids:?}"),
            Some((_, Active::Paused(ids))) => format!("pause {ids:?}"),
            Some((_, Active::Links(shape))) => shape.to_string(),
        }
    }

    /// Starts the next fault of the schedule.
    pub fn start_fault(
        &mut self,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        if self.active.is_some() || self.kinds.is_empty() {
            return Ok(());
        }
        let kind = *self.kinds.choose(&mut self.rng).expect("kinds is not empty");
        let ids = cluster.ids();
        let leader = current_leader(cluster);
        let active = match kind {
            FaultKind::Kill | FaultKind::Pause => {
                let (target, nodes) = self.pick_targets(&ids, leader);
                let nodes: Vec<u64> = nodes
                    .into_iter()
                    .filter(|&id| cluster.state(id) == ProcessState::Running)
                    .collect();
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
            FaultKind::Partition => {
                let (shape, cut) = self.pick_partition(&ids, leader);
                for &link in &cut {
                    proxy.set(link, LinkFaults { cut: true, ..Default::default() });
                }
                let cut_json: Vec<Value> = cut.iter().map(|l| json!([l.from, l.to])).collect();
                rec.nemesis("start-partition", json!({"kind": shape, "cut": cut_json}))?;
                Active::Links(shape)
            }
            FaultKind::Net => {
                let faults = LinkFaults {
                    cut: false,
                    loss: [0.0, 0.05, 0.2][self.rng.gen_range(0..3)],
                    delay_ms: [(0, 0), (0, 20), (5, 100)][self.rng.gen_range(0..3)],
                    duplicate: [0.0, 0.1][self.rng.gen_range(0..2)],
                    reorder: [0.0, 0.2][self.rng.gen_range(0..2)],
                };
                proxy.update_all(|_, f| *f = faults);
                rec.nemesis(
                    "start-net",
                    json!({"loss": faults.loss, "delay_ms": [faults.delay_ms.0, faults.delay_ms.1],
                           "duplicate": faults.duplicate, "reorder": faults.reorder}),
                )?;
                Active::Links("net")
            }
        };
        *self.started.entry(kind.name()).or_default() += 1;
        self.active = Some((kind, active));
        Ok(())
    }

    /// Ends the fault in force.
    pub fn stop_fault(
        &mut self,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        let Some((kind, active)) = self.active.take() else { return Ok(()) };
        match active {
            Active::Killed(ids) => {
                for &id in &ids {
                    cluster.start(id)?;
                }
                rec.nemesis("stop-kill", json!({"nodes": ids}))?;
            }
            Active::Paused(ids) => {
                for &id in &ids {
                    cluster.resume(id);
                }
                rec.nemesis("stop-pause", json!({"nodes": ids}))?;
            }
            Active::Links(_) => {
                proxy.heal();
                rec.nemesis(&format!("stop-{}", kind.name()), Value::Null)?;
            }
        }
        Ok(())
    }

    /// Heals everything: the fault in force, and any node not running.
    pub fn heal_all(
        &mut self,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        self.stop_fault(cluster, proxy, rec)?;
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
                let k = (n / 2 + 1) / 2;
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

/// The node that most recently became leader in the highest term and has not stepped down or
/// been killed since, read from the nodes' `events.jsonl`.
pub fn current_leader(cluster: &Cluster) -> Option<u64> {
    let mut best: Option<(u64, u64)> = None;
    for id in cluster.ids() {
        if cluster.state(id) != ProcessState::Running {
            continue;
        }
        let Some(last) = last_role_event(&cluster.info(id).dir.join("events.jsonl")) else {
            continue;
        };
        if last.0 == "became-leader" && best.is_none_or(|(t, _)| last.1 > t) {
            best = Some((last.1, id));
        }
    }
    best.map(|(_, id)| id)
}

fn last_role_event(path: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find_map(|line| {
        let v: Value = serde_json::from_str(line).ok()?;
        let event = v.get("event")?.as_str()?;
        matches!(event, "became-leader" | "stepped-down" | "started" | "restarted")
            .then(|| (event.to_string(), v.get("term").and_then(Value::as_u64).unwrap_or(0)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_reject_unknown_names() {
        assert_eq!(FaultKind::parse_list("all").unwrap().len(), 4);
        assert_eq!(
            FaultKind::parse_list("net,kill").unwrap(),
            vec![FaultKind::Kill, FaultKind::Net]
        );
        assert!(FaultKind::parse_list("kill,flood").unwrap_err().contains("flood"));
    }

    #[test]
    fn partitions_keep_their_shapes() {
        let ids = [1, 2, 3, 4, 5];
        let mut nemesis = Nemesis::new(FaultKind::ALL.to_vec(), 3);
        let mut seen = BTreeSet::new();
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
