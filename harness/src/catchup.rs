//! The `catch-up` fault: followers brought back behind the leader's snapshot while late copies
//! of the messages sent to them arrive.
//!
//! Every 3-6 s a running follower is killed; 1.5-3 s later, once the others have written (and,
//! with snapshots every few hundred entries, compacted) past it, it starts again, and for the
//! next 2-3 s every message to it is delivered a second time with probability 0.5, 100-800 ms
//! after the first ([`Echo`]; frames only). It catches up by InstallSnapshot and appends while
//! old snapshot chunks and appends reach it again after it moved on: a node that installs a
//! snapshot older than what it applied, or takes a stale append for a new one, shows in its
//! applied records and in the history. It runs on its own clock beside the other faults, and
//! only touches a node that runs, so it never restarts a node another fault keeps down.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::{Cluster, ProcessState};
use crate::nemesis::{current_leader, millis, ClockedFault, FaultKind};
use crate::proxy::{Echo, Proxy};
use crate::recorder::Recorder;

/// The late copies while a node catches up.
const ECHO: Echo = Echo { chance: 0.5, delay_ms: (100, 800) };

enum State {
    /// Waiting for the next round.
    Idle { at: Instant },
    /// `node` is down until `until`.
    Down { node: u64, until: Instant },
    /// `node` runs again and gets late copies until `until`.
    CatchingUp { node: u64, until: Instant },
}

/// The catch-up fault of one run.
pub struct CatchUp {
    rng: ChaCha8Rng,
    state: State,
    /// Followers brought back so far.
    rounds: u64,
}

impl CatchUp {
    /// A catch-up fault whose choices derive from `seed`; its first round 3-6 s from now.
    pub fn new(seed: u64) -> CatchUp {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0063_6174_6368_7570);
        let at = Instant::now() + millis(&mut rng, 3_000, 6_000);
        CatchUp { rng, state: State::Idle { at }, rounds: 0 }
    }

    fn idle(&mut self, now: Instant) {
        let at = now + millis(&mut self.rng, 3_000, 6_000);
        self.state = State::Idle { at };
    }

    /// Starts `node` again (unless something else did) with late copies on its way.
    fn bring_back(
        &mut self,
        node: u64,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        start_if_killed(node, cluster)?;
        let echo = proxy.understands_frames();
        if echo {
            proxy.set_echo(|link| (link.to == node).then_some(ECHO));
        }
        self.rounds += 1;
        rec.nemesis("catch-up-start-node", json!({"nodes": [node], "late_copies": echo}))
    }

    fn end(&mut self, node: u64, proxy: &Proxy, rec: &Recorder) -> anyhow::Result<()> {
        proxy.set_echo(|_| None);
        rec.nemesis("stop-catch-up", json!({"nodes": [node]}))
    }
}

impl ClockedFault for CatchUp {
    fn kind(&self) -> FaultKind {
        FaultKind::CatchUp
    }

    fn tick(&mut self, cluster: &mut Cluster, proxy: &Proxy, rec: &Recorder) -> anyhow::Result<()> {
        let now = Instant::now();
        match self.state {
            State::Idle { at } if now >= at => {
                let leader = current_leader(cluster);
                let followers: Vec<u64> = cluster
                    .ids()
                    .into_iter()
                    .filter(|&id| cluster.state(id) == ProcessState::Running)
                    .filter(|&id| Some(id) != leader)
                    .collect();
                let Some(&node) = followers.choose(&mut self.rng) else {
                    self.idle(now);
                    return Ok(());
                };
                cluster.kill(node);
                rec.nemesis("start-catch-up", json!({"nodes": [node]}))?;
                let until = now + millis(&mut self.rng, 1_500, 3_000);
                self.state = State::Down { node, until };
            }
            State::Down { node, until } if now >= until => {
                self.bring_back(node, cluster, proxy, rec)?;
                let until = now + millis(&mut self.rng, 2_000, 3_000);
                self.state = State::CatchingUp { node, until };
            }
            State::CatchingUp { node, until } if now >= until => {
                self.end(node, proxy, rec)?;
                self.idle(now);
            }
            _ => {}
        }
        Ok(())
    }

    fn stop(
        &mut self,
        cluster: &mut Cluster,
        proxy: &Proxy,
        rec: &Recorder,
    ) -> anyhow::Result<u64> {
        match self.state {
            State::Down { node, .. } => {
                start_if_killed(node, cluster)?;
                self.end(node, proxy, rec)?;
            }
            State::CatchingUp { node, .. } => self.end(node, proxy, rec)?,
            State::Idle { .. } => {}
        }
        self.state = State::Idle { at: Instant::now() + Duration::from_secs(3600) };
        Ok(self.rounds)
    }
}

/// Starts the node this fault killed, unless something else started it since.
fn start_if_killed(node: u64, cluster: &mut Cluster) -> anyhow::Result<()> {
    if cluster.state(node) == ProcessState::Killed {
        cluster.start(node)?;
    }
    Ok(())
}
