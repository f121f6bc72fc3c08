//! Mutations of schedules, for a search that favours the schedules reaching rare protocol
//! decisions: from a schedule that took a rare decision, small changes in the schedule language
//! (a step removed, repeated, moved, a fault added, one setting of the swarm redrawn) give
//! neighbours that are likely to take it again, and sometimes to go further.

use super::swarm::Swarm;
use super::torture::{Action, Schedule, Step, Target};
use crate::storage::CrashFamily;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `schedule` changed by one to three mutations; always [valid](Schedule::validate).
pub fn mutate(schedule: &Schedule, rng: &mut ChaCha8Rng) -> Schedule {
    let mut s = schedule.clone();
    for _ in 0..rng.gen_range(1..=3) {
        mutate_once(&mut s, rng);
    }
    s.steps.sort_by_key(|st| st.at_ms);
    debug_assert!(s.validate().is_ok(), "a mutant is valid: {:?}", s.validate());
    s
}

fn mutate_once(s: &mut Schedule, rng: &mut ChaCha8Rng) {
    let n = s.steps.len();
    match rng.gen_range(0..10) {
        // Remove a step.
        0 | 1 if n > 1 => {
            s.steps.remove(rng.gen_range(0..n));
        }
        // Repeat a step a little later or earlier.
        2 | 3 if n > 0 => {
            let mut step = s.steps[rng.gen_range(0..n)].clone();
            step.at_ms = shifted(step.at_ms, rng, s.end_ms);
            s.steps.push(step);
        }
        // Move a step.
        4 if n > 0 => {
            let i = rng.gen_range(0..n);
            s.steps[i].at_ms = shifted(s.steps[i].at_ms, rng, s.end_ms);
        }
        // Redraw one setting of the swarm.
        5 => redraw_one_setting(&mut s.swarm, rng),
        // Add a fault, or a burst of commands.
        _ => {
            let at_ms = rng.gen_range(0..=s.end_ms);
            let action = random_action(s.nodes, rng);
            s.steps.push(Step { at_ms, action });
        }
    }
}

fn shifted(at_ms: u64, rng: &mut ChaCha8Rng, end_ms: u64) -> u64 {
    let by = rng.gen_range(0..=200u64);
    let t = if rng.gen_bool(0.5) { at_ms.saturating_sub(by) } else { at_ms + by };
    t.min(end_ms)
}

fn random_action(nodes: usize, rng: &mut ChaCha8Rng) -> Action {
    let who = if rng.gen_bool(0.5) {
        Target::Leader
    } else {
        Target::Node(rng.gen_range(0..nodes) as u8)
    };
    match rng.gen_range(0..12) {
        0 => Action::Crash(who),
        1 => Action::PowerFail(who, CrashFamily::ALL[rng.gen_range(0..3)]),
        2 => Action::Restart(who),
        3 => Action::Restart(Target::All),
        4 => Action::Isolate(who),
        5 => Action::Connect(Target::All),
        6 => Action::Partition(vec![who]),
        7 => Action::Heal,
        8 => Action::LongReordering(rng.gen_bool(0.5)),
        9 => Action::Duplicate([0, 100, 300][rng.gen_range(0..3)]),
        _ => Action::Propose(rng.gen_range(1..=50)),
    }
}

fn redraw_one_setting(swarm: &mut Swarm, rng: &mut ChaCha8Rng) {
    let other = Swarm::draw(rng);
    match rng.gen_range(0..7) {
        0 => {
            swarm.election_tick = other.election_tick;
            swarm.heartbeat_tick = other.heartbeat_tick;
        }
        1 => swarm.pre_vote = !swarm.pre_vote,
        2 => {
            swarm.check_quorum = !swarm.check_quorum;
            // Lease reads need check-quorum; they come back with it, as drawn.
            swarm.lease_reads = swarm.check_quorum && other.lease_reads;
        }
        3 => {
            swarm.max_append_entries = other.max_append_entries;
            swarm.max_append_bytes = other.max_append_bytes;
        }
        4 => swarm.max_inflight = other.max_inflight,
        5 => {
            swarm.tail_per_mille = other.tail_per_mille;
            swarm.tail_ms = other.tail_ms;
        }
        _ => swarm.dup_per_mille = other.dup_per_mille,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutants_are_valid_neighbours_that_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut changed = 0;
        for seed in 0..200 {
            let s = Schedule::generate(seed);
            let m = mutate(&s, &mut rng);
            m.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(Schedule::parse_compact(&m.to_compact()).unwrap(), m);
            assert_eq!((m.nodes, m.end_ms), (s.nodes, s.end_ms));
            assert!(m.steps.len().abs_diff(s.steps.len()) <= 3, "a mutant stays near its parent");
            changed += usize::from(m != s);
        }
        assert!(changed >= 190, "only {changed} of 200 mutants differ from their parent");
    }
}
