//! Scenario code shared by more than one test file.

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
