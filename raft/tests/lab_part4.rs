//! Seed lab 001, Part 4: unreliable networks, on the simulator.

use raft::sim::{num, scenario};

mod sim_support;

#[test]
fn unreliable_part4() {
    scenario("unreliable_part4", 5, |c| async move {
        let n = c.n();
        c.set_reliable(false);
        // 1. 250 rounds of consensus, by 25 threads running concurrently.
        let threads: Vec<_> = (0..25u64)
            .map(|t| {
                let c2 = c.clone();
                c.spawn(async move {
                    for k in 0..10u64 {
                        c2.one(num(1000 * (t + 1) + k), 1, true).await;
                    }
                })
            })
            .collect();
        // 2. All of them finish.
        for h in threads {
            h.await;
        }
        let (applied, _) = c.n_committed(250);
        assert!(applied >= 1, "250 commands were agreed on, yet index 250 is not applied");
        // 3. One more round, with every peer, as a consistency check.
        c.set_reliable(true);
        c.one(num(7), n, true).await;
    });
}

#[test]
fn unreliable_figure8_part4() {
    scenario("unreliable_figure8_part4", 5, |c| sim_support::figure8_crash_leaders(c, true));
}
