//! The `depose` fault: leaders deposed while they hold client requests they have not committed.
//!
//! Every 1-3 s, the clients are told to burst (every worker sends its next operations back to
//! back, without its pacing); 50-250 ms into the burst, the leader, which now holds a pipeline of
//! proposals that are not committed yet, is paused (SIGSTOP) for 0.5-2 s, long enough for the
//! others to elect a leader of a newer term, which overwrites the uncommitted tail. When the old
//! leader resumes, every client request it held must end as a failure or an unknown outcome,
//! never as an acknowledgement of a write that the new leader's log does not hold; a node that
//! answers from the wrong entry, or acknowledges on append instead of on apply, shows in the
//! history. It runs on its own clock beside the other faults, so that a run deposes many
//! leaders.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::{Cluster, ProcessState};
use crate::nemesis::{current_leader, millis, ClockedFault, FaultKind};
use crate::proxy::Proxy;
use crate::recorder::Recorder;

enum State {
    /// Waiting for the next burst.
    Idle { burst_at: Instant },
    /// The clients are bursting; the leader is paused at `depose_at`.
    Bursting { depose_at: Instant, started: Instant },
    /// `node` is paused until `until`.
    Deposed { node: u64, until: Instant },
}

/// The depose fault of one run.
pub struct Deposer {
    rng: ChaCha8Rng,
    state: State,
    /// Set while the clients burst; every worker reads it before pacing itself.
    pub burst: Arc<AtomicBool>,
    /// Leaders deposed so far.
    deposed: u64,
}

impl Deposer {
    /// A deposer whose choices derive from `seed`; its first burst 1-3 s from now.
    pub fn new(seed: u64) -> Deposer {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6465_706F_7365);
        let burst_at = Instant::now() + millis(&mut rng, 1_000, 3_000);
        Deposer { rng, state: State::Idle { burst_at }, burst: Arc::default(), deposed: 0 }
    }

    fn end(&mut self, cluster: &mut Cluster, rec: &Recorder, node: u64) -> anyhow::Result<()> {
        cluster.resume(node);
        rec.nemesis("stop-depose", json!({"nodes": [node]}))
    }

    fn idle(&mut self, now: Instant) {
        let burst_at = now + millis(&mut self.rng, 1_000, 3_000);
        self.state = State::Idle { burst_at };
    }
}

impl ClockedFault for Deposer {
    fn kind(&self) -> FaultKind {
        FaultKind::Depose
    }

    fn tick(&mut self, cluster: &mut Cluster, _: &Proxy, rec: &Recorder) -> anyhow::Result<()> {
        let now = Instant::now();
        match self.state {
            State::Idle { burst_at } if now >= burst_at => {
                self.burst.store(true, Ordering::Relaxed);
                let depose_at = now + millis(&mut self.rng, 50, 250);
                self.state = State::Bursting { depose_at, started: now };
            }
            State::Bursting { depose_at, started } if now >= depose_at => {
                self.burst.store(false, Ordering::Relaxed);
                let leader = current_leader(cluster)
                    .filter(|&id| cluster.state(id) == ProcessState::Running);
                match leader {
                    Some(node) => {
                        cluster.pause(node);
                        self.deposed += 1;
                        let burst_ms = (now - started).as_millis() as u64;
                        rec.nemesis(
                            "start-depose",
                            json!({"target": "leader", "nodes": [node], "after_burst_ms": burst_ms}),
                        )?;
                        let until = now + millis(&mut self.rng, 500, 2_000);
                        self.state = State::Deposed { node, until };
                    }
                    None => self.idle(now),
                }
            }
            State::Deposed { node, until } if now >= until => {
                self.end(cluster, rec, node)?;
                self.idle(now);
            }
            _ => {}
        }
        Ok(())
    }

    fn stop(&mut self, cluster: &mut Cluster, _: &Proxy, rec: &Recorder) -> anyhow::Result<u64> {
        self.burst.store(false, Ordering::Relaxed);
        if let State::Deposed { node, .. } = self.state {
            self.end(cluster, rec, node)?;
        }
        self.state = State::Idle { burst_at: Instant::now() + Duration::from_secs(3600) };
        Ok(self.deposed)
    }
}
