//! Seed lab 001, Part 1: leader election, on the simulator.

use raft::sim::{scenario, ELECTION_TIMEOUT_MS};

mod sim_support;

#[test]
fn election_no_failure_part1() {
    scenario("election_no_failure_part1", 3, |c| async move {
        // A leader is elected.
        sim_support::stable_initial_election(&c, ELECTION_TIMEOUT_MS).await;
    });
}

#[test]
fn election_with_failure_part1() {
    scenario("election_with_failure_part1", 3, |c| async move {
        let n = c.n();
        // 1-3: a leader; it disconnects; a new leader in a new term.
        let leader1 = c.check_one_leader().await;
        let (term1, _) = c.state(leader1).expect("the leader runs");
        c.disconnect(leader1);
        let leader2 = c.check_one_leader().await;
        assert_ne!(leader2, leader1, "the disconnected leader cannot stay leader of the others");
        let (term2, _) = c.state(leader2).expect("the leader runs");
        assert!(term2 > term1, "the new leader's term {term2} is not above the old {term1}");

        // 4-5: the old leader rejoins; the new leader remains the leader.
        c.connect(leader1);
        let leader3 = c.check_one_leader().await;
        assert_eq!(leader3, leader2, "the rejoining old leader disrupted the new leader");

        // 6-7: the leader and another peer leave: no leader.
        c.disconnect(leader3);
        c.disconnect((leader3 + 1) % n);
        c.sleep(2 * ELECTION_TIMEOUT_MS).await;
        c.check_no_leader();

        // 8-9: one comes back: a leader.
        c.connect((leader3 + 1) % n);
        let leader4 = c.check_one_leader().await;

        // 10-11: the last rejoins: the leader stays the same.
        c.connect(leader3);
        let leader5 = c.check_one_leader().await;
        assert_eq!(leader5, leader4, "the rejoining peer disrupted the leader");
    });
}
