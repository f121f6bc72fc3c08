//! Running a scenario under one seed or many, as the environment asks:
//!
//! - by default, under [`DEFAULT_SEED`];
//! - `RAFT_SEED=<n>`: under seed `n` (to replay a failure);
//! - `RAFT_SEEDS=<k>`: under `k` seeds, from `RAFT_SEED` (or the default seed) on, printing
//!   `seed N FAILED: <message>` for each failing one and failing at the end if any did;
//! - `RAFT_BUG=<name>` (builds with the cargo feature `bugs`): every peer runs that deliberately
//!   broken variant of the catalogue.

use super::cluster::Cluster;
use super::world::SimConfig;
use crate::core::Bug;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The seed a scenario runs under when the environment names none.
pub const DEFAULT_SEED: u64 = 1;

/// The seeds and the bug a scenario runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The seeds to run under, in order.
    pub seeds: Vec<u64>,
    /// The bug of the catalogue every peer runs with, if any.
    pub bug: Option<Bug>,
}

impl Plan {
    /// Reads `RAFT_SEED`, `RAFT_SEEDS` and `RAFT_BUG`.
    pub fn from_env() -> Result<Plan, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Plan::parse(
            var("RAFT_SEED").as_deref(),
            var("RAFT_SEEDS").as_deref(),
            var("RAFT_BUG").as_deref(),
        )
    }

    /// The plan for these values of `RAFT_SEED`, `RAFT_SEEDS` and `RAFT_BUG`.
    pub fn parse(
        seed: Option<&str>,
        seeds: Option<&str>,
        bug: Option<&str>,
    ) -> Result<Plan, String> {
        let base = match seed {
            Some(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("RAFT_SEED={s:?} is not a seed: {e}"))?,
            None => DEFAULT_SEED,
        };
        let count = match seeds {
            Some(s) => match s.trim().parse::<u64>() {
                Ok(k) if k > 0 => k,
                _ => return Err(format!("RAFT_SEEDS={s:?} is not a positive number of seeds")),
            },
            None => 1,
        };
        let seeds = (0..count).map(|k| base.wrapping_add(k)).collect();
        let bug = match bug {
            None => None,
            Some(name) => Some(parse_bug(name.trim())?),
        };
        Ok(Plan { seeds, bug })
    }
}

#[cfg(feature = "bugs")]
fn parse_bug(name: &str) -> Result<Bug, String> {
    name.parse::<Bug>().map_err(|e| format!("RAFT_BUG: {e}"))
}

#[cfg(not(feature = "bugs"))]
fn parse_bug(name: &str) -> Result<Bug, String> {
    Err(format!(
        "RAFT_BUG={name:?} needs a build with the bug catalogue: run with `--features bugs`"
    ))
}

/// One run of a scenario: its seed and the bug switched on, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trial {
    /// The seed every random choice of the run derives from.
    pub seed: u64,
    /// The bug of the catalogue every peer runs with, if any.
    pub bug: Option<Bug>,
}

impl Trial {
    /// The simulator configuration for `n` peers under this trial.
    pub fn config(&self, n: usize) -> SimConfig {
        SimConfig { bug: self.bug, ..SimConfig::new(n, self.seed) }
    }

    /// A cluster of `n` peers under this trial.
    pub fn cluster(&self, n: usize) -> Cluster {
        Cluster::with_config(self.config(n))
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Runs `body` under every seed of the environment's plan, each in isolation; prints
/// `seed N FAILED: <message>` for each failure and panics at the end if any failed.
pub fn run_scenario(name: &str, body: impl Fn(&Trial)) {
    let plan = Plan::from_env().unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut failed: Vec<(u64, String)> = Vec::new();
    for &seed in &plan.seeds {
        let trial = Trial { seed, bug: plan.bug };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| body(&trial))) {
            let msg = panic_message(payload.as_ref());
            // The first failures in full, then only their first line.
            if failed.len() < 3 {
                eprintln!("seed {seed} FAILED: {msg}");
            } else {
                eprintln!("seed {seed} FAILED: {}", msg.lines().next().unwrap_or(""));
            }
            failed.push((seed, msg));
        }
    }
    if failed.is_empty() {
        return;
    }
    let bug = plan.bug.map(|b| format!(" with RAFT_BUG={b}")).unwrap_or_default();
    if plan.seeds.len() == 1 {
        let (seed, msg) = &failed[0];
        panic!("{name} FAILED under seed {seed}{bug} (replay with RAFT_SEED={seed}):\n{msg}");
    }
    let seeds: Vec<String> = failed.iter().map(|(s, _)| s.to_string()).collect();
    panic!(
        "{name}: {} of {} seeds FAILED{bug}: {}; replay one with RAFT_SEED=<seed>",
        failed.len(),
        plan.seeds.len(),
        seeds.join(" ")
    );
}

/// Runs a scenario on a fresh cluster of `n` peers under every seed of the plan: `body` gets
/// the cluster and returns the scenario's future.
pub fn scenario<F, Fut>(name: &str, n: usize, body: F)
where
    F: Fn(Cluster) -> Fut,
    Fut: Future<Output = ()>,
{
    scenario_with(name, n, |_| {}, body);
}

/// [`scenario`] on a cluster whose configuration `configure` adjusts first (for example to
/// make the service snapshot).
pub fn scenario_with<F, Fut>(name: &str, n: usize, configure: impl Fn(&mut SimConfig), body: F)
where
    F: Fn(Cluster) -> Fut,
    Fut: Future<Output = ()>,
{
    run_scenario(name, |trial| {
        let mut cfg = trial.config(n);
        configure(&mut cfg);
        let c = Cluster::with_config(cfg);
        c.block_on(body(c.clone()));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_environment() {
        assert_eq!(
            Plan::parse(None, None, None).unwrap(),
            Plan { seeds: vec![DEFAULT_SEED], bug: None }
        );
        assert_eq!(Plan::parse(Some("42"), None, None).unwrap().seeds, vec![42]);
        assert_eq!(Plan::parse(Some("7"), Some("3"), None).unwrap().seeds, vec![7, 8, 9]);
        assert_eq!(
            Plan::parse(None, Some("2"), None).unwrap().seeds,
            vec![DEFAULT_SEED, DEFAULT_SEED + 1]
        );
        assert!(Plan::parse(Some("x"), None, None).unwrap_err().contains("RAFT_SEED"));
        assert!(Plan::parse(None, Some("0"), None).unwrap_err().contains("RAFT_SEEDS"));
    }

    #[cfg(feature = "bugs")]
    #[test]
    fn parses_bug_names() {
        let p = Plan::parse(None, None, Some("forget-vote")).unwrap();
        assert_eq!(p.bug, Some(Bug::ForgetVote));
        let err = Plan::parse(None, None, Some("no-such-bug")).unwrap_err();
        assert!(err.contains("unknown bug") && err.contains("vote-without-log-check"), "{err}");
    }

    #[cfg(not(feature = "bugs"))]
    #[test]
    fn refuses_a_bug_without_the_catalogue() {
        let err = Plan::parse(None, None, Some("forget-vote")).unwrap_err();
        assert!(err.contains("--features bugs"), "{err}");
    }
}
