//! `gauntlet sim`'s protocol coverage and its hunt for rare decisions.
//!
//! Every run reports which decisions of the protocol core its peers took
//! ([`raft::Coverage`]). A [`Tally`] counts, for each decision, the runs that took it (by family,
//! for the report) and keeps a few of those runs' schedules. The hunt then runs mutants
//! ([`raft::sim::mutate`]) of the schedules that reached the rarest decisions, picking a
//! decision with a chance inversely proportional to the runs that took it, so that the search
//! spends its runs where the seeds rarely went; a mutant that reaches a decision whose examples
//! are not full yet joins them, and is mutated in turn.

use raft::sim::{mutate, Family, Schedule};
use raft::{Coverage, Decision};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How many schedules a tally keeps for each decision.
const EXAMPLES: usize = 8;

/// Where a run came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A seed's generated schedule, of this family.
    Seed(Family),
    /// A mutant of the hunt.
    Mutant,
}

impl Origin {
    fn name(self) -> &'static str {
        match self {
            Origin::Seed(f) => f.name(),
            Origin::Mutant => "mutants",
        }
    }
}

/// A run to tally: its seed and its schedule (`None`: the seed's own).
#[derive(Clone, Debug)]
pub struct RunRef {
    /// The seed the run ran under.
    pub seed: u64,
    /// The schedule, when it is not the seed's generated one.
    pub schedule: Option<Schedule>,
}

impl RunRef {
    /// The schedule the run ran.
    pub fn schedule(&self) -> Schedule {
        self.schedule.clone().unwrap_or_else(|| Schedule::generate(self.seed))
    }
}

/// Which decisions the runs of a campaign took.
#[derive(Default)]
pub struct Tally {
    /// Runs tallied.
    pub runs: u64,
    /// For each decision (by its index in [`Decision::ALL`]), the runs that took it.
    runs_taking: Vec<u64>,
    /// The same, by origin.
    by_origin: BTreeMap<Origin, (u64, Vec<u64>)>,
    /// Every decision's count over every run.
    total: Coverage,
    /// Up to [`EXAMPLES`] runs that took each decision.
    examples: Vec<Vec<RunRef>>,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        let n = Decision::ALL.len();
        Tally { runs_taking: vec![0; n], examples: vec![Vec::new(); n], ..Tally::default() }
    }

    /// Adds one run; it becomes an example of each decision it took that has fewer than
    /// [`EXAMPLES`] of them.
    pub fn add(&mut self, run: &RunRef, origin: Origin, coverage: &Coverage) {
        self.runs += 1;
        self.total.merge(coverage);
        let (runs, by) =
            self.by_origin.entry(origin).or_insert_with(|| (0, vec![0; Decision::ALL.len()]));
        *runs += 1;
        for d in coverage.taken() {
            let i = d as usize;
            self.runs_taking[i] += 1;
            by[i] += 1;
            if self.examples[i].len() < EXAMPLES {
                self.examples[i].push(run.clone());
            }
        }
    }

    /// How many runs took `decision`.
    pub fn runs_taking(&self, decision: Decision) -> u64 {
        self.runs_taking[decision as usize]
    }

    /// The decisions no run took.
    pub fn never_taken(&self) -> Vec<Decision> {
        Decision::ALL.iter().copied().filter(|&d| self.runs_taking(d) == 0).collect()
    }

    /// A schedule to mutate: one of the kept runs of a decision drawn with a chance inversely
    /// proportional to the runs that took it. `None` before any run took anything.
    pub fn pick(&self, rng: &mut ChaCha8Rng) -> Option<&RunRef> {
        let weights: Vec<f64> =
            self.runs_taking.iter().map(|&r| if r == 0 { 0.0 } else { 1.0 / r as f64 }).collect();
        let sum: f64 = weights.iter().sum();
        if sum == 0.0 {
            return None;
        }
        let mut x = rng.gen_range(0.0..sum);
        for (i, w) in weights.iter().enumerate() {
            if x < *w && !self.examples[i].is_empty() {
                return Some(&self.examples[i][rng.gen_range(0..self.examples[i].len())]);
            }
            x -= w;
        }
        self.examples.iter().rev().find(|e| !e.is_empty()).map(|e| &e[0])
    }

    /// The one-paragraph summary `gauntlet sim` prints.
    pub fn summary(&self) -> String {
        let all = Decision::ALL.len();
        let taken = all - self.never_taken().len();
        let mut out =
            format!("protocol coverage: {taken} of {all} decisions taken in {} runs\n", self.runs);
        let mut rare: Vec<(u64, Decision)> = Decision::ALL
            .iter()
            .map(|&d| (self.runs_taking(d), d))
            .filter(|(r, _)| *r > 0)
            .collect();
        rare.sort();
        let rare: Vec<String> = rare.iter().take(5).map(|(r, d)| format!("{d} ({r})")).collect();
        let _ = writeln!(out, "  rarest (runs): {}", rare.join(", "));
        for d in self.never_taken() {
            let why =
                if d.is_defensive() { " (only a broken or forged peer makes it)" } else { "" };
            let _ = writeln!(out, "  never taken: {d}: {}{why}", d.what());
        }
        out
    }

    /// How the hunt's mutants took the decisions rarest among the seeds, against the seeds:
    /// the share of runs of each that took them.
    pub fn hunt_summary(&self) -> String {
        let share = |origin: &dyn Fn(&Origin) -> bool, d: Decision| {
            let (runs, took) = self
                .by_origin
                .iter()
                .filter(|(o, _)| origin(o))
                .fold((0, 0), |(r, t), (_, (runs, by))| (r + runs, t + by[d as usize]));
            100.0 * took as f64 / runs.max(1) as f64
        };
        let seeds = |o: &Origin| *o != Origin::Mutant;
        let mutants = |o: &Origin| *o == Origin::Mutant;
        let mut rare: Vec<(u64, Decision)> = Decision::ALL
            .iter()
            .map(|&d| {
                (
                    self.runs_taking(d)
                        - self.by_origin.get(&Origin::Mutant).map_or(0, |m| m.1[d as usize]),
                    d,
                )
            })
            .filter(|(r, _)| *r > 0)
            .collect();
        rare.sort();
        let parts: Vec<String> = rare
            .iter()
            .take(5)
            .map(|&(_, d)| format!("{d} {:.1}% -> {:.1}%", share(&seeds, d), share(&mutants, d)))
            .collect();
        format!(
            "  hunt: runs taking the seeds' rarest decisions, seeds -> mutants: {}\n",
            parts.join(", ")
        )
    }

    /// The table `gauntlet sim --coverage` prints: every decision, the runs that took it by
    /// origin, and its count.
    pub fn table(&self) -> String {
        let origins: Vec<&Origin> = self.by_origin.keys().collect();
        let mut out = format!("{:<28}", "decision");
        for o in &origins {
            let _ = write!(out, " {:>14}", o.name());
        }
        let _ = writeln!(out, " {:>10} {:>12}", "runs", "count");
        let _ = write!(out, "{:<28}", "(runs)");
        for o in &origins {
            let _ = write!(out, " {:>14}", self.by_origin[o].0);
        }
        let _ = writeln!(out, " {:>10}", self.runs);
        for &d in Decision::ALL {
            let _ = write!(out, "{:<28}", d.name());
            for o in &origins {
                let _ = write!(out, " {:>14}", self.by_origin[o].1[d as usize]);
            }
            let _ = writeln!(out, " {:>10} {:>12}", self.runs_taking(d), self.total.count(d));
        }
        out
    }
}

/// The generator of a hunt's choices, from the campaign's first seed (printed with it).
pub fn hunt_rng(first_seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(raft::sim::world::derive_seed(first_seed, 32, 0))
}

/// The next `count` mutants: each a mutation of a picked schedule, under the picked run's seed.
pub fn next_mutants(tally: &Tally, rng: &mut ChaCha8Rng, count: usize) -> Vec<RunRef> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(parent) = tally.pick(rng) else { break };
        let schedule = mutate(&parent.schedule(), rng);
        out.push(RunRef { seed: parent.seed, schedule: Some(schedule) });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::sim::torture::{run, RunOptions};

    #[test]
    fn the_hunt_picks_rare_decisions_far_more_often_than_common_ones() {
        let mut tally = Tally::new();
        let mut common = Coverage::default();
        common.hit(Decision::ElectionWon);
        let mut rare = common.clone();
        rare.hit(Decision::AppendTruncated);
        for seed in 0..100 {
            let cov = if seed == 7 { &rare } else { &common };
            tally.add(&RunRef { seed, schedule: None }, Origin::Seed(Family::Mixed), cov);
        }
        assert_eq!(tally.runs_taking(Decision::AppendTruncated), 1);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let picks = (0..1000).filter(|_| tally.pick(&mut rng).unwrap().seed == 7).count();
        // Weights 1/1 against 1/100 (the rare run is an example of both decisions).
        assert!(picks > 900, "the rare run was picked {picks} times in 1000");
        assert!(tally.never_taken().contains(&Decision::CheckQuorumStepDown));
        assert!(tally.summary().contains("append-truncated (1)"), "{}", tally.summary());
    }

    #[test]
    fn mutants_of_a_rare_run_take_its_decision_again() {
        // A seed whose run truncated a log: its mutants mostly do too.
        let (seed, _) = (0..)
            .map(|s| (s, run(&RunOptions::new(s), &Schedule::generate(s)).unwrap()))
            .find(|(_, p)| p.coverage.count(Decision::AppendTruncated) > 0)
            .unwrap();
        let mut tally = Tally::new();
        let passed = run(&RunOptions::new(seed), &Schedule::generate(seed)).unwrap();
        tally.add(
            &RunRef { seed, schedule: None },
            Origin::Seed(Family::of_seed(seed)),
            &passed.coverage,
        );
        let mut rng = hunt_rng(0);
        let again = next_mutants(&tally, &mut rng, 20)
            .iter()
            .filter(|m| {
                let p = run(&RunOptions::new(m.seed), m.schedule.as_ref().unwrap()).unwrap();
                p.coverage.count(Decision::AppendTruncated) > 0
            })
            .count();
        assert!(again >= 8, "{again} of 20 mutants truncated a log again");
    }
}
