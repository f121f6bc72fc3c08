//! The `restart-storm` fault: nodes killed and restarted in quick succession.
//!
//! Every 5-10 s a storm of 3 to 6 restarts: a running node (the leader half of the time) is
//! killed (SIGKILL) and started again 50-300 ms later, and the next one goes 100-500 ms after
//! that, so restarts land in the middle of the elections and catch-ups the last ones started:
//! a node that recovers its log, term or vote wrongly, or a cluster that cannot settle while its
//! members keep coming back, shows. It runs on its own clock beside the other faults and only
//! touches nodes that run, so it never restarts a node another fault keeps down.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::{Cluster, ProcessState};
use crate::nemesis::{current_leader, millis, ClockedFault, FaultKind};
use crate::proxy::Proxy;
use crate::recorder::Recorder;

enum State {
    /// Waiting for the next storm.
    Idle { storm_at: Instant },
    /// `left` restarts to go; the next kill at `next_at`, and `down` waiting to start again.
    Storming { left: u32, next_at: Instant, down: Option<(u64, Instant)> },
}

/// The restart-storm fault of one run.
pub struct RestartStorm {
    rng: ChaCha8Rng,
    state: State,
    /// Nodes restarted so far.
    restarts: u64,
}

impl RestartStorm {
    /// A storm fault whose choices derive from `seed`; the first storm 5-10 s from now.
    pub fn new(seed: u64) -> RestartStorm {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7374_6F72_6D21);
        let storm_at = Instant::now() + millis(&mut rng, 5_000, 10_000);
        RestartStorm { rng, state: State::Idle { storm_at }, restarts: 0 }
    }
}

impl ClockedFault for RestartStorm {
    fn kind(&self) -> FaultKind {
        FaultKind::RestartStorm
    }

    fn tick(&mut self, cluster: &mut Cluster, _: &Proxy, rec: &Recorder) -> anyhow::Result<()> {
        let now = Instant::now();
        match self.state {
            State::Idle { storm_at } if now >= storm_at => {
                let left = self.rng.gen_range(3..=6);
                rec.nemesis("start-restart-storm", json!({"restarts": left}))?;
                self.state = State::Storming { left, next_at: now, down: None };
            }
            State::Storming { left, next_at, down } => {
                let mut down = down;
                if let Some((id, start_at)) = down {
                    if now >= start_at {
                        cluster.start(id)?;
                        self.restarts += 1;
                        down = None;
                    }
                }
                let mut left = left;
                let mut next_at = next_at;
                if down.is_none() && now >= next_at {
                    if left == 0 {
                        rec.nemesis("stop-restart-storm", json!({}))?;
                        let storm_at = now + millis(&mut self.rng, 5_000, 10_000);
                        self.state = State::Idle { storm_at };
                        return Ok(());
                    }
                    let running: Vec<u64> = cluster
                        .ids()
                        .into_iter()
                        .filter(|&id| cluster.state(id) == ProcessState::Running)
                        .collect();
                    let leader = current_leader(cluster).filter(|id| running.contains(id));
                    let target = match leader {
                        Some(l) if self.rng.gen_bool(0.5) => Some(l),
                        _ => running.choose(&mut self.rng).copied(),
                    };
                    if let Some(id) = target {
                        cluster.kill(id);
                        rec.nemesis(
                            "restart-storm-kill",
                            json!({"nodes": [id], "leader": leader == Some(id)}),
                        )?;
                        down = Some((id, now + millis(&mut self.rng, 50, 300)));
                    }
                    left -= 1;
                    next_at = now + millis(&mut self.rng, 100, 500);
                }
                self.state = State::Storming { left, next_at, down };
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends a storm in force: the node it killed starts again.
    fn stop(&mut self, cluster: &mut Cluster, _: &Proxy, rec: &Recorder) -> anyhow::Result<u64> {
        if let State::Storming { down, .. } = self.state {
            if let Some((id, _)) = down {
                cluster.start(id)?;
                self.restarts += 1;
            }
            rec.nemesis("stop-restart-storm", json!({}))?;
        }
        self.state = State::Idle { storm_at: Instant::now() + Duration::from_secs(3600) };
        Ok(self.restarts)
    }
}
