//! Shrinking: reducing a failing [`Schedule`] to a short one that still fails.
//!
//! [`shrink`] works on any predicate "this schedule still fails"; [`shrink_failure`] uses "it
//! fails with the same kind of violation" under the same seed and bug. The passes, repeated
//! until none changes anything or the budget of runs is spent:
//!
//! 1. cut the fault phase at the failure (steps after it never ran);
//! 2. delta debugging over the steps: drop chunks of half the steps, then quarters, ... then
//!    single steps, keeping every removal after which the schedule still fails;
//! 3. simplify steps: fewer commands per proposal, less duplication;
//! 4. shorten delays: move each step (with all later ones) as close to the step before it as
//!    still fails, by bisection, and end the fault phase as early as still fails.
//!
//! A run is a pure function of its seed, bug and schedule, so every candidate is judged
//! exactly; removing a step changes the randomness the rest of the run draws, so a shrunk
//! schedule is a different run that fails the same way, not a sub-run of the original.

use super::torture::{run, Action, Failure, Phase, RunOptions, Schedule};

/// The result of shrinking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shrunk {
    /// The smallest failing schedule found.
    pub schedule: Schedule,
    /// How many candidate schedules were run.
    pub runs: usize,
}

struct Search<F> {
    fails: F,
    runs: usize,
    budget: usize,
}

impl<F: FnMut(&Schedule) -> bool> Search<F> {
    /// Judges a candidate; `false` once the budget is spent.
    fn try_(&mut self, candidate: &Schedule) -> bool {
        if self.runs >= self.budget {
            return false;
        }
        self.runs += 1;
        (self.fails)(candidate)
    }

    fn drop_chunks(&mut self, s: &mut Schedule) -> bool {
        let mut changed = false;
        let mut chunk = (s.steps.len() / 2).max(1);
        loop {
            let mut i = 0;
            while i < s.steps.len() {
                let mut candidate = s.clone();
                let to = (i + chunk).min(s.steps.len());
                candidate.steps.drain(i..to);
                if self.try_(&candidate) {
                    *s = candidate;
                    changed = true;
                } else {
                    i += chunk;
                }
            }
            if chunk == 1 {
                return changed;
            }
            chunk /= 2;
        }
    }

    fn simplify_steps(&mut self, s: &mut Schedule) -> bool {
        let mut changed = false;
        for i in 0..s.steps.len() {
            loop {
                let simpler = match s.steps[i].action {
                    Action::Propose(k) if k > 1 => Action::Propose(k - 1),
                    Action::Duplicate(p) if p > 50 => Action::Duplicate(p / 2),
                    _ => break,
                };
                let mut candidate = s.clone();
                candidate.steps[i].action = simpler;
                if !self.try_(&candidate) {
                    break;
                }
                *s = candidate;
                changed = true;
            }
        }
        changed
    }

    /// The smallest value in `0..=hi` for which `make(value)` fails, knowing `hi` fails, by
    /// trying 0 and then bisecting.
    fn bisect(&mut self, hi: u64, make: impl Fn(u64) -> Schedule) -> u64 {
        if hi == 0 {
            return 0;
        }
        if self.try_(&make(0)) {
            return 0;
        }
        let (mut lo, mut hi) = (0, hi);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.try_(&make(mid)) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    fn shorten_delays(&mut self, s: &mut Schedule) -> bool {
        let mut changed = false;
        for i in 0..s.steps.len() {
            let prev = if i == 0 { 0 } else { s.steps[i - 1].at_ms };
            let gap = s.steps[i].at_ms - prev;
            let shifted = |new_gap: u64| {
                let delta = gap - new_gap;
                let mut c = s.clone();
                c.steps[i..].iter_mut().for_each(|st| st.at_ms -= delta);
                c.end_ms -= delta;
                c
            };
            let best = self.bisect(gap, shifted);
            if best < gap {
                *s = shifted(best);
                changed = true;
            }
        }
        let last = s.steps.last().map_or(0, |st| st.at_ms);
        let tail = s.end_ms - last;
        let ended = |new_tail: u64| Schedule { end_ms: last + new_tail, ..s.clone() };
        let best = self.bisect(tail, ended);
        if best < tail {
            *s = ended(best);
            changed = true;
        }
        changed
    }
}

/// Shrinks `schedule`, which fails (`fails(schedule)` is true), to a smaller schedule for which
/// `fails` is still true, running at most `budget` candidates. `failed_at_ms`, when known, is
/// when the original failed during its fault phase: the steps after it are dropped first.
pub fn shrink(
    schedule: &Schedule,
    failed_at_ms: Option<u64>,
    budget: usize,
    fails: impl FnMut(&Schedule) -> bool,
) -> Shrunk {
    let mut search = Search { fails, runs: 0, budget };
    let mut s = schedule.clone();
    if let Some(t) = failed_at_ms.filter(|&t| t < s.end_ms) {
        let mut candidate = s.clone();
        candidate.steps.retain(|st| st.at_ms <= t);
        candidate.end_ms = t + 1;
        if search.try_(&candidate) {
            s = candidate;
        }
    }
    loop {
        let mut changed = search.drop_chunks(&mut s);
        changed |= search.simplify_steps(&mut s);
        changed |= search.shorten_delays(&mut s);
        if !changed || search.runs >= search.budget {
            break;
        }
    }
    Shrunk { schedule: s, runs: search.runs }
}

/// Shrinks a schedule that failed with `failure` under `opts` to a smaller one that fails with
/// the same [kind](Failure::kind) under the same seed and bug, running at most `budget`
/// candidates.
pub fn shrink_failure(
    opts: &RunOptions,
    schedule: &Schedule,
    failure: &Failure,
    budget: usize,
) -> Shrunk {
    let quick = RunOptions { trace_len: 0, keep_trace: false, ..*opts };
    let failed_at_ms = (failure.phase == Phase::Faults).then_some(failure.at_us / 1000);
    shrink(schedule, failed_at_ms, budget, |candidate| {
        run(&quick, candidate).is_err_and(|f| f.kind == failure.kind)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::torture::{Step, Target};

    fn at(at_ms: u64, action: Action) -> Step {
        Step { at_ms, action }
    }

    /// Fails when n1 crashes and is restarted at least 100 ms later.
    fn crash_then_restart(s: &Schedule) -> bool {
        s.steps.iter().any(|a| {
            a.action == Action::Crash(Target::Node(1))
                && s.steps.iter().any(|b| {
                    b.action == Action::Restart(Target::Node(1)) && b.at_ms >= a.at_ms + 100
                })
        })
    }

    fn with_noise(seed: u64, extra: Vec<Step>) -> Schedule {
        let mut s = Schedule::generate(seed);
        s.nodes = 5;
        s.steps.retain(|st| {
            !matches!(st.action, Action::Crash(Target::Node(1)) | Action::Restart(Target::Node(1)))
        });
        s.steps.extend(extra);
        s.steps.sort_by_key(|st| st.at_ms);
        s
    }

    #[test]
    fn a_synthetic_failure_shrinks_to_its_minimal_schedule() {
        let s = with_noise(
            7,
            vec![
                at(900, Action::Crash(Target::Node(1))),
                at(1_700, Action::Restart(Target::Node(1))),
            ],
        );
        assert!(s.steps.len() > 40 && crash_then_restart(&s));
        let shrunk = shrink(&s, None, 10_000, crash_then_restart);
        let minimal = Schedule {
            nodes: 5,
            swarm: s.swarm,
            end_ms: 100,
            steps: vec![
                at(0, Action::Crash(Target::Node(1))),
                at(100, Action::Restart(Target::Node(1))),
            ],
        };
        assert_eq!(shrunk.schedule, minimal);
        assert!(shrunk.runs < 1_000, "{} runs", shrunk.runs);
    }

    #[test]
    fn proposals_shrink_to_as_few_commands_as_still_fail() {
        let fails = |s: &Schedule| s.proposals() >= 3;
        let shrunk = shrink(&Schedule::generate(11), None, 10_000, fails);
        assert_eq!(shrunk.schedule.proposals(), 3);
        assert!(shrunk.schedule.steps.len() <= 3);
        assert!(shrunk.schedule.steps.iter().all(|st| st.at_ms == 0));
        assert_eq!(shrunk.schedule.end_ms, 0);
    }

    #[test]
    fn the_steps_after_a_known_failure_time_go_first_and_the_budget_holds() {
        let s = Schedule::generate(5);
        let mut seen = Vec::new();
        let shrunk = shrink(&s, Some(2_000), 25, |c| {
            seen.push(c.clone());
            c.steps.len() >= 10
        });
        assert_eq!(seen.len(), 25);
        assert_eq!(shrunk.runs, 25);
        assert!(seen[0].steps.iter().all(|st| st.at_ms <= 2_000) && seen[0].end_ms == 2_001);
        assert!(shrunk.schedule.steps.len() >= 10);
    }

    #[cfg(feature = "bugs")]
    #[test]
    fn a_real_failure_shrinks_and_still_fails_the_same_way() {
        use crate::core::Bug;
        crate::sim::torture::silence_run_panics();
        let opts = RunOptions { bug: Some(Bug::ForgetVote), ..RunOptions::new(2) };
        let s = Schedule::generate(2);
        let f = run(&opts, &s).unwrap_err();
        let shrunk = shrink_failure(&opts, &s, &f, 2_000);
        assert!(shrunk.schedule.steps.len() < s.steps.len());
        let again = run(&opts, &shrunk.schedule).unwrap_err();
        assert_eq!(again.kind, f.kind);
    }
}
