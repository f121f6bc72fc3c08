//! Seed lab 001, Part 3: crashes and recovery, on the simulator.

use raft::sim::{num, scenario, ELECTION_TIMEOUT_MS};

mod sim_support;

#[test]
fn basic_persistence_part3() {
    scenario("basic_persistence_part3", 3, |c| async move {
        let n = c.n();
        // 1. Agreement: log length 1.
        assert_eq!(c.one(num(11), n, true).await, 1);

        // 2-3. Crash all, bring them up, agree: log length 2.
        for i in 0..n {
            c.crash(i);
        }
        for i in 0..n {
            c.restart(i);
        }
        assert_eq!(c.one(num(12), n, true).await, 2);

        // 4-5. Crash the leader and bring it back; agree: log length 3.
        let leader1 = c.check_one_leader().await;
        c.crash(leader1);
        c.restart(leader1);
        assert_eq!(c.one(num(13), n, true).await, 3);

        // 6-8. Crash the leader; agree with 2: log length 4; bring it back and let it catch up.
        let leader2 = c.check_one_leader().await;
        c.crash(leader2);
        assert_eq!(c.one(num(14), n - 1, true).await, 4);
        c.restart(leader2);
        c.wait(4, n, None).await;

        // 9-10. Crash a follower; agree: log length 5.
        let follower = (c.check_one_leader().await + 1) % n;
        c.crash(follower);
        assert_eq!(c.one(num(15), n - 1, true).await, 5);

        // 11-12. Bring it back; agree with all: log length 6.
        c.restart(follower);
        assert_eq!(c.one(num(16), n, true).await, 6);
    });
}

#[test]
fn recovery_with_lagging_followers_part3() {
    scenario("recovery_with_lagging_followers_part3", 5, |c| async move {
        let n = c.n();
        let mut cmd = 1;
        for _ in 0..5 {
            // 1. Agreement with all; call the leader 0.
            c.one(num(cmd), n, true).await;
            cmd += 1;
            let s0 = c.check_one_leader().await;
            let s = |k: usize| (s0 + k) % n;

            // 2-3. 1 and 2 crash; 0, 3 and 4 agree.
            c.crash(s(1));
            c.crash(s(2));
            c.one(num(cmd), n - 2, true).await;
            cmd += 1;

            // 4-6. 0, 3 and 4 crash; 1 and 2 recover and perhaps elect a leader.
            c.crash(s(0));
            c.crash(s(3));
            c.crash(s(4));
            c.restart(s(1));
            c.restart(s(2));
            c.sleep(ELECTION_TIMEOUT_MS).await;

            // 7-8. 3, which is ahead, recovers; 3, 1 and 2 agree (1 and 2 must catch up).
            c.restart(s(3));
            c.one(num(cmd), n - 2, true).await;
            cmd += 1;

            // 9. 0 and 4 recover.
            c.restart(s(0));
            c.restart(s(4));
        }
        // 10. A last agreement: 0 and 4 caught up.
        c.one(num(cmd), n, true).await;
    });
}

#[test]
fn figure8_part3() {
    scenario("figure8_part3", 5, |c| sim_support::figure8_crash_leaders(c, false));
}
