//! 3B: log replication (seed labs 000, 002, 003, 004), on the simulator.

use raft::sim::{num, scenario, ELECTION_TIMEOUT_MS};

#[test]
fn basic_agree_3b() {
    scenario("basic_agree_3b", 3, |c| async move {
        for index in 1..=3u64 {
            let (nd, _) = c.n_committed(index);
            assert_eq!(nd, 0, "some have committed index {index} before Start()");
            let xindex = c.one(num(index * 100), 3, false).await;
            assert_eq!(xindex, index, "got index {xindex} but expected {index}");
        }
    });
}

#[test]
fn rpc_bytes_3b() {
    scenario("rpc_bytes_3b", 3, |c| async move {
        c.one(num(99), 3, false).await;
        let bytes0 = c.bytes_total();
        let mut sent = 0u64;
        for index in 2..12u64 {
            let cmd = c.rand_bytes(5000);
            sent += cmd.len() as u64;
            let xindex = c.one(cmd, 3, false).await;
            assert_eq!(xindex, index, "got index {xindex} but expected {index}");
        }
        let got = c.bytes_total() - bytes0;
        let expected = 3 * sent;
        assert!(
            got <= expected + 50_000,
            "too many RPC bytes; got {got}, expected at most {}",
            expected + 50_000
        );
    });
}

#[test]
fn follower_failure_3b() {
    scenario("follower_failure_3b", 3, |c| async move {
        let n = c.n();
        c.one(num(101), n, false).await;

        // One follower disconnects: the other two still agree.
        let leader1 = c.check_one_leader().await;
        c.disconnect((leader1 + 1) % n);
        c.one(num(102), n - 1, false).await;
        c.sleep(ELECTION_TIMEOUT_MS).await;
        c.one(num(103), n - 1, false).await;

        // The other follower disconnects too: nothing commits.
        let leader2 = c.check_one_leader().await;
        c.disconnect((leader2 + 1) % n);
        c.disconnect((leader2 + 2) % n);
        let (index, _) =
            c.start(leader2, num(104)).unwrap_or_else(|| c.fail("leader rejected Start()"));
        assert_eq!(index, 4, "expected index 4, got {index}");
        c.sleep(2 * ELECTION_TIMEOUT_MS).await;
        let (nd, _) = c.n_committed(index);
        assert_eq!(nd, 0, "{nd} committed but no majority");
    });
}

#[test]
fn leader_failure_3b() {
    scenario("leader_failure_3b", 3, |c| async move {
        let n = c.n();
        c.one(num(101), n, false).await;

        // The leader disconnects: the other two elect a leader and agree.
        let leader1 = c.check_one_leader().await;
        c.disconnect(leader1);
        c.one(num(102), n - 1, false).await;
        c.sleep(ELECTION_TIMEOUT_MS).await;
        c.one(num(103), n - 1, false).await;

        // That leader disconnects too: a command offered to every peer never commits.
        let leader2 = c.check_one_leader().await;
        c.disconnect(leader2);
        for i in 0..n {
            c.start(i, num(104));
        }
        c.sleep(2 * ELECTION_TIMEOUT_MS).await;
        let (nd, _) = c.n_committed(4);
        assert_eq!(nd, 0, "{nd} committed but no majority");
    });
}

#[test]
fn fail_agree_3b() {
    scenario("fail_agree_3b", 3, |c| async move {
        let n = c.n();
        c.one(num(101), n, false).await;

        let leader = c.check_one_leader().await;
        c.disconnect((leader + 1) % n);
        c.one(num(102), n - 1, false).await;
        c.one(num(103), n - 1, false).await;
        c.sleep(ELECTION_TIMEOUT_MS).await;
        c.one(num(104), n - 1, false).await;
        c.one(num(105), n - 1, false).await;

        // The follower comes back and catches up.
        c.connect((leader + 1) % n);
        c.one(num(106), n, true).await;
        c.sleep(ELECTION_TIMEOUT_MS).await;
        c.one(num(107), n, true).await;
    });
}

#[test]
fn fail_no_agree_3b() {
    scenario("fail_no_agree_3b", 5, |c| async move {
        let n = c.n();
        c.one(num(10), n, false).await;

        // Three of five followers disconnect.
        let leader = c.check_one_leader().await;
        for k in 1..=3 {
            c.disconnect((leader + k) % n);
        }
        let (index, _) =
            c.start(leader, num(20)).unwrap_or_else(|| c.fail("leader rejected Start()"));
        assert_eq!(index, 2, "expected index 2, got {index}");
        c.sleep(2 * ELECTION_TIMEOUT_MS).await;
        let (nd, _) = c.n_committed(index);
        assert_eq!(nd, 0, "{nd} committed but no majority");

        // Repair. The disconnected majority may have chosen a leader among themselves,
        // forgetting index 2.
        for k in 1..=3 {
            c.connect((leader + k) % n);
        }
        let leader2 = c.check_one_leader().await;
        let (index2, _) =
            c.start(leader2, num(30)).unwrap_or_else(|| c.fail("leader2 rejected Start()"));
        assert!((2..=3).contains(&index2), "unexpected index {index2}");

        c.one(num(1000), n, true).await;
    });
}

#[test]
fn concurrent_starts_3b() {
    scenario("concurrent_starts_3b", 3, |c| async move {
        let n = c.n();
        let mut success = false;
        'outer: for attempt in 0..5 {
            if attempt > 0 {
                // Give the cluster time to settle.
                c.sleep(3_000).await;
            }
            let leader = c.check_one_leader().await;
            let Some((_, term)) = c.start(leader, num(1)) else { continue };

            // Five tester threads offer a command each to the leader at once.
            let handles: Vec<_> = (0..5u64)
                .map(|k| {
                    let c = c.clone();
                    c.clone().spawn(async move {
                        match c.start(leader, num(100 + k)) {
                            Some((index, t)) if t == term => Some(index),
                            _ => None,
                        }
                    })
                })
                .collect();
            let mut indexes = Vec::new();
            for h in handles {
                if let Some(i) = h.await {
                    indexes.push(i);
                }
            }

            for i in 0..n {
                if c.state(i).map(|(t, _)| t) != Some(term) {
                    // The term moved on: try again.
                    continue 'outer;
                }
            }

            let mut cmds = Vec::new();
            for index in indexes {
                match c.wait(index, n, Some(term)).await {
                    Some(cmd) => cmds.push(cmd),
                    None => continue 'outer,
                }
            }
            for k in 0..5u64 {
                let x = num(100 + k);
                assert!(cmds.iter().any(|cmd| cmd[..] == x[..]), "cmd {} missing", 100 + k);
            }
            success = true;
            break;
        }
        assert!(success, "term changed too often");
    });
}

#[test]
fn rejoin_3b() {
    scenario("rejoin_3b", 3, |c| async move {
        let n = c.n();
        c.one(num(101), n, true).await;

        // The leader is partitioned away and accepts three commands that never commit.
        let leader1 = c.check_one_leader().await;
        c.disconnect(leader1);
        for cmd in [102, 103, 104] {
            assert!(
                c.start(leader1, num(cmd)).is_some(),
                "the partitioned leader rejected Start({cmd})"
            );
        }

        // The other two elect a new leader and agree.
        c.one(num(103), 2, true).await;

        // The new leader is partitioned away; the old one comes back.
        let leader2 = c.check_one_leader().await;
        c.disconnect(leader2);
        c.connect(leader1);
        c.one(num(104), 2, true).await;

        // Everyone back.
        c.connect(leader2);
        let index = c.one(num(105), n, true).await;
        // The old leader's uncommitted entries were discarded: 101, 103, 104, 105.
        assert_eq!(index, 4, "expected the final command at index 4, got {index}");
    });
}

#[test]
fn backup_3b() {
    scenario("backup_3b", 5, |c| async move {
        let n = c.n();
        c.one(num(c.rand_u64()), n, true).await;

        // The leader and one follower are partitioned away.
        let leader1 = c.check_one_leader().await;
        for k in 2..=4 {
            c.disconnect((leader1 + k) % n);
        }
        // Many commands that will not commit.
        for _ in 0..50 {
            c.start(leader1, num(c.rand_u64()));
        }
        c.sleep(ELECTION_TIMEOUT_MS / 2).await;
        c.disconnect(leader1);
        c.disconnect((leader1 + 1) % n);

        // The other three commit many commands.
        for k in 2..=4 {
            c.connect((leader1 + k) % n);
        }
        for _ in 0..50 {
            c.one(num(c.rand_u64()), 3, true).await;
        }

        // Now the new leader and one follower are partitioned away, with commands that will not
        // commit.
        let leader2 = c.check_one_leader().await;
        let mut other = (leader1 + 2) % n;
        if leader2 == other {
            other = (leader2 + 1) % n;
        }
        c.disconnect(other);
        for _ in 0..50 {
            c.start(leader2, num(c.rand_u64()));
        }
        c.sleep(ELECTION_TIMEOUT_MS / 2).await;

        // The original leader and its follower come back with the third of the majority.
        for i in 0..n {
            c.disconnect(i);
        }
        c.connect(leader1);
        c.connect((leader1 + 1) % n);
        c.connect(other);
        for _ in 0..50 {
            c.one(num(c.rand_u64()), 3, true).await;
        }

        // Everyone back.
        for i in 0..n {
            c.connect(i);
        }
        c.one(num(c.rand_u64()), n, true).await;
    });
}

#[test]
fn count_3b() {
    scenario("count_3b", 3, |c| async move {
        let n = c.n();
        let leader = c.check_one_leader().await;
        let total1 = c.rpc_total();
        assert!(
            (1..=30).contains(&total1),
            "too many or few RPCs ({total1}) to elect initial leader"
        );

        let iters = 10u64;
        let mut total2 = 0;
        let mut success = false;
        'outer: for attempt in 0..5 {
            if attempt > 0 {
                // Give the cluster time to settle.
                c.sleep(3_000).await;
            }
            let leader = if attempt == 0 { leader } else { c.check_one_leader().await };
            let total1 = c.rpc_total();

            // Start(1), then 11 more Starts back to back, all in one term.
            let Some((starti, term)) = c.start(leader, num(1)) else { continue };
            let mut cmds = Vec::new();
            for i in 1..iters + 2 {
                let x = c.rand_u64() >> 1;
                cmds.push(x);
                match c.start(leader, num(x)) {
                    Some((index1, term1)) if term1 == term => {
                        assert_eq!(index1, starti + i, "Start() failed");
                    }
                    _ => continue 'outer,
                }
            }

            // Wait for all of them.
            for (i, x) in (1..=iters + 1).zip(&cmds) {
                match c.wait(starti + i, n, Some(term)).await {
                    None => continue 'outer,
                    Some(cmd) => {
                        assert!(
                            cmd[..] == num(*x)[..],
                            "wrong value committed for index {}; expected {x}",
                            starti + i
                        )
                    }
                }
            }

            for i in 0..n {
                if c.state(i).map(|(t, _)| t) != Some(term) {
                    continue 'outer;
                }
            }
            total2 = c.rpc_total();
            let used = total2 - total1;
            let limit = (iters + 1 + 3) * 3;
            assert!(used <= limit, "too many RPCs ({used}) for {iters} entries (at most {limit})");
            success = true;
            break;
        }
        assert!(success, "term changed too often");

        // One idle second.
        c.sleep(ELECTION_TIMEOUT_MS).await;
        let total3 = c.rpc_total();
        assert!(
            total3 - total2 <= 3 * 20,
            "too many RPCs ({}) for 1 second of idleness",
            total3 - total2
        );
    });
}
