//! Scenario code shared by more than one test file.

// Each test file includes this module and uses only part of it.
#![allow(dead_code)]

use raft::sim::{num, Cluster, ELECTION_TIMEOUT_MS};

/// Seed 001's Figure 8 test: repeatedly give a command to the leader, if there is one, and crash
/// it, quickly (90%, before it can replicate) or after a while (10%, when it most likely
/// committed); keep a majority running. Shared with Part 4, which adds a faulty network.
pub async fn figure8_crash_leaders(c: Cluster, unreliable: bool) {
    let n = c.n();
    if unreliable {
        c.set_reliable(false);
        c.set_long_reordering(true);
    }
    c.one(num(c.rand_below(10_000)), 1, true).await;

    for _ in 0..1000 {
        // 1. Start() on the leader of the newest term, if any.
        let leader = (0..n)
            .filter_map(|i| match c.state(i) {
                Some((term, true)) => Some((term, i)),
                _ => None,
            })
            .max()
            .map(|(_, i)| i);
        if let Some(leader) = leader {
            c.start(leader, num(c.rand_below(10_000)));
        }

        // 2-3. Crash it quickly, or after a while.
        let ms = if c.rand_below(1000) < 900 {
            c.rand_below(13)
        } else {
            c.rand_below(ELECTION_TIMEOUT_MS / 2)
        };
        c.sleep(ms).await;
        if let Some(leader) = leader {
            c.crash(leader);
        }

        // 4. Keep a majority running.
        let up = (0..n).filter(|&i| c.is_alive(i)).count();
        if up < 3 {
            let s = c.rand_below(n as u64) as usize;
            if !c.is_alive(s) {
                c.restart(s);
            }
        }
    }

    for i in 0..n {
        if !c.is_alive(i) {
            c.restart(i);
        }
    }
    c.one(num(c.rand_below(10_000)), n, true).await;
}

/// The initial election of 3A and of seed 001's Part 1: a leader; after `settle_ms` all peers
/// agree on a term of at least 1; with no failure for two election timeouts, neither the term
/// nor the leader changes.
pub async fn stable_initial_election(c: &Cluster, settle_ms: u64) {
    let leader1 = c.check_one_leader().await;
    c.sleep(settle_ms).await;
    let term1 = c.check_terms();
    assert!(term1 >= 1, "term is {term1}, but should be at least 1");
    c.sleep(2 * ELECTION_TIMEOUT_MS).await;
    let term2 = c.check_terms();
    assert_eq!(term1, term2, "term changed even though there were no failures");
    let leader2 = c.check_one_leader().await;
    assert_eq!(leader1, leader2, "leader changed even though there were no failures");
}
