//! 3A: leader election (seed labs 000, 002, 003, 004), on the simulator.

use raft::sim::{scenario, ELECTION_TIMEOUT_MS};

mod sim_support;

#[test]
fn initial_election_3a() {
    scenario("initial_election_3a", 3, |c| async move {
        sim_support::stable_initial_election(&c, 50).await;
    });
}

#[test]
fn re_election_3a() {
    scenario("re_election_3a", 3, |c| async move {
        let n = c.n();
        let leader1 = c.check_one_leader().await;

        // The leader disconnects: a new one is elected.
        c.disconnect(leader1);
        let leader2 = c.check_one_leader().await;
        assert_ne!(leader1, leader2);

        // The old leader rejoins: it does not disturb the new one.
        c.connect(leader1);
        let leader3 = c.check_one_leader().await;

        // No quorum: no leader.
        c.disconnect(leader3);
        c.disconnect((leader3 + 1) % n);
        c.sleep(2 * ELECTION_TIMEOUT_MS).await;
        c.check_no_leader();

        // A quorum again: a leader.
        c.connect((leader3 + 1) % n);
        c.check_one_leader().await;

        // The last one rejoins: still one leader.
        c.connect(leader3);
        c.check_one_leader().await;
    });
}

#[test]
fn many_elections_3a() {
    scenario("many_elections_3a", 7, |c| async move {
        let n = c.n() as u64;
        c.check_one_leader().await;
        for _ in 0..10 {
            // Disconnect three random peers (perhaps fewer, when the draws repeat).
            let i1 = c.rand_below(n) as usize;
            let i2 = c.rand_below(n) as usize;
            let i3 = c.rand_below(n) as usize;
            c.disconnect(i1);
            c.disconnect(i2);
            c.disconnect(i3);
            // Either the current leader is still alive, or the remaining four elect a new one.
            c.check_one_leader().await;
            c.connect(i1);
            c.connect(i2);
            c.connect(i3);
        }
        c.check_one_leader().await;
    });
}
