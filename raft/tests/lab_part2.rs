//! Seed lab 001, Part 2: log replication, on the simulator.

use raft::sim::{num, scenario, ELECTION_TIMEOUT_MS};
use raft::Index;

#[test]
fn consensus_no_failure_part2() {
    scenario("consensus_no_failure_part2", 5, |c| async move {
        let n = c.n();
        for index in 1..=3u64 {
            let (nd, _) = c.n_committed(index);
            assert_eq!(nd, 0, "some have committed index {index} before Start()");
            let xindex = c.one(num(index * 100), n, false).await;
            assert_eq!(xindex, index, "got index {xindex} but expected {index}");
            let (nd, cmd) = c.n_committed(index);
            assert_eq!(nd, n, "only {nd} of {n} servers applied index {index}");
            assert_eq!(cmd.as_deref(), Some(&num(index * 100)[..]));
        }
    });
}

#[test]
fn consensus_with_quorum_part2() {
    scenario("consensus_with_quorum_part2", 3, |c| async move {
        let n = c.n();
        c.one(num(101), n, false).await;

        // A follower disconnects; the other two agree a few times.
        let leader = c.check_one_leader().await;
        let follower = (leader + 1) % n;
        c.disconnect(follower);
        for cmd in 102..=104 {
            c.one(num(cmd), n - 1, false).await;
        }

        // It reconnects; all three agree, its log checked by the appliers.
        c.connect(follower);
        let index = c.one(num(105), n, true).await;
        assert_eq!(index, 5);
    });
}

#[test]
fn consensus_without_quorum_part2() {
    scenario("consensus_without_quorum_part2", 5, |c| async move {
        let n = c.n();
        c.one(num(10), n, false).await;

        // Three of five disconnect.
        let leader = c.check_one_leader().await;
        for k in 1..=3 {
            c.disconnect((leader + k) % n);
        }
        // An attempt at consensus does not succeed.
        let (index, _) =
            c.start(leader, num(20)).unwrap_or_else(|| c.fail("leader rejected Start()"));
        assert_eq!(index, 2);
        c.sleep(2 * ELECTION_TIMEOUT_MS).await;
        let (nd, _) = c.n_committed(index);
        assert_eq!(nd, 0, "{nd} committed but no majority");

        // They reconnect: consensus again.
        for k in 1..=3 {
            c.connect((leader + k) % n);
        }
        c.one(num(30), n, true).await;
    });
}

#[test]
fn concurrent_consensus_part2() {
    scenario("concurrent_consensus_part2", 3, |c| async move {
        let n = c.n();
        let mut success = false;
        'outer: for attempt in 0..5 {
            if attempt > 0 {
                c.sleep(3_000).await;
            }
            // 1. The current leader.
            let leader = c.check_one_leader().await;
            let Some((term, true)) = c.state(leader) else { continue };

            // 2. Five threads call Start() on the leader in parallel.
            let handles: Vec<_> = (0..5u64)
                .map(|k| {
                    let c2 = c.clone();
                    c.spawn(async move { c2.start(leader, num(100 + k)) })
                })
                .collect();
            let mut started: Vec<(Index, u64)> = Vec::new();
            for (k, h) in handles.into_iter().enumerate() {
                match h.await {
                    Some((index, t)) if t == term => started.push((index, 100 + k as u64)),
                    _ => continue 'outer,
                }
            }

            // 3. All of them commit, in that same term.
            for &(index, x) in &started {
                match c.wait(index, n, Some(term)).await {
                    None => continue 'outer,
                    Some(cmd) => assert!(
                        cmd[..] == num(x)[..],
                        "index {index} holds another command than {x}"
                    ),
                }
            }
            for i in 0..n {
                if c.state(i).map(|(t, _)| t) != Some(term) {
                    continue 'outer;
                }
            }
            let sim = c.sim();
            for &(index, x) in &started {
                let entry = &sim.committed()[(index - 1) as usize];
                assert_eq!(
                    entry.term, term,
                    "command {x} committed in term {} instead of {term}",
                    entry.term
                );
            }
            success = true;
            break;
        }
        assert!(success, "term changed too often");
    });
}

#[test]
fn partition_reconnect_part2() {
    scenario("partition_reconnect_part2", 3, |c| async move {
        let n = c.n();
        // 1. One round of consensus.
        c.one(num(101), n, true).await;

        // 2-3. The leader disconnects and is offered commands that must later be discarded.
        let leader1 = c.check_one_leader().await;
        c.disconnect(leader1);
        for cmd in [102, 103, 104] {
            c.start(leader1, num(cmd));
        }

        // 4. A round with the new leader of the connected majority.
        c.one(num(103), 2, true).await;

        // 5-6. The new leader disconnects, the old one reconnects: a round.
        let leader2 = c.check_one_leader().await;
        c.disconnect(leader2);
        c.connect(leader1);
        c.one(num(104), 2, true).await;

        // 7-8. All reconnect: a round.
        c.connect(leader2);
        let last = c.one(num(105), n, true).await;

        // 9. Exactly the commits of rounds 1, 4, 6 and 8.
        assert_eq!(last, 4, "expected 4 committed entries, the last at index {last}");
        let log: Vec<_> = c
            .committed_log()
            .into_iter()
            .map(|(_, cmd)| cmd.expect("no no-ops in the lab profile").to_vec())
            .collect();
        assert_eq!(log, vec![num(101), num(103), num(104), num(105)]);
        for i in 0..n {
            let s = c.sim().status(i).expect("all run");
            assert_eq!(s.last_index, 4, "n{i} holds {} entries instead of 4", s.last_index);
        }
    });
}

#[test]
fn reconcile_long_logs_part2() {
    scenario("reconcile_long_logs_part2", 5, |c| async move {
        let n = c.n();
        // 1. An initial agreement.
        c.one(num(c.rand_u64()), n, true).await;

        // 2. The leader (0) and one more (1) are cut off from 2, 3, 4, and get many commands.
        let s0 = c.check_one_leader().await;
        let s = |k: usize| (s0 + k) % n;
        for k in 2..=4 {
            c.disconnect(s(k));
        }
        for _ in 0..50 {
            c.start(s0, num(c.rand_u64()));
        }
        c.sleep(ELECTION_TIMEOUT_MS / 2).await;

        // 3-4. 0 and 1 leave; 2-4 rejoin and commit many commands.
        c.disconnect(s(0));
        c.disconnect(s(1));
        for k in 2..=4 {
            c.connect(s(k));
        }
        for _ in 0..50 {
            c.one(num(c.rand_u64()), 3, true).await;
        }

        // 5. One of them (2 unless it leads) leaves; the two others get many commands.
        let leader2 = c.check_one_leader().await;
        let mut other = s(2);
        if other == leader2 {
            other = (leader2 + 1) % n;
        }
        c.disconnect(other);
        for _ in 0..50 {
            c.start(leader2, num(c.rand_u64()));
        }
        c.sleep(ELECTION_TIMEOUT_MS / 2).await;

        // 6. 0, 1 and that one come back and commit many commands: 0 and 1 catch up.
        for i in 0..n {
            c.disconnect(i);
        }
        c.connect(s(0));
        c.connect(s(1));
        c.connect(other);
        for _ in 0..50 {
            c.one(num(c.rand_u64()), 3, true).await;
        }

        // 7-8. Everyone back; a last round with all.
        for i in 0..n {
            c.connect(i);
        }
        let last = c.one(num(c.rand_u64()), n, true).await;
        assert_eq!(last, 102, "1 + 50 + 50 + 1 commands should be committed, the last at {last}");
    });
}

#[test]
fn rpc_efficiency_part2() {
    scenario("rpc_efficiency_part2", 3, |c| async move {
        let n = c.n();
        // 1. Electing the first leader takes at most about 30 RPCs.
        c.check_one_leader().await;
        let total0 = c.rpc_total();
        assert!(
            (1..=30).contains(&total0),
            "too many or few RPCs ({total0}) to elect initial leader"
        );

        // 2-4. A stable count of the RPCs a few agreements need, retried if the term moves on.
        let iters = 10u64;
        let mut success = false;
        let mut total2 = 0;
        'outer: for attempt in 0..5 {
            if attempt > 0 {
                c.sleep(3_000).await;
            }
            let leader = c.check_one_leader().await;
            let Some((term, true)) = c.state(leader) else { continue };
            let total1 = c.rpc_total();
            let t1 = c.now_ms();
            for k in 0..iters {
                c.one(num(1000 * (attempt + 1) + k), n, false).await;
                if c.state(leader) != Some((term, true)) {
                    continue 'outer;
                }
            }
            for i in 0..n {
                if c.state(i).map(|(t, _)| t) != Some(term) {
                    continue 'outer;
                }
            }
            total2 = c.rpc_total();
            // Per agreement, one append and one commit announcement to each follower, plus the
            // heartbeats (at most 10 per second to each follower) for the time it all took.
            let used = total2 - total1;
            let followers = n as u64 - 1;
            let limit = iters * 2 * followers + ((c.now_ms() - t1) / 100 + 1) * followers;
            assert!(
                used <= limit,
                "too many RPCs ({used}) for {iters} agreements (at most {limit})"
            );
            success = true;
            break;
        }
        assert!(success, "term changed too often");

        // 5. An idle steady state costs few RPCs.
        c.sleep(ELECTION_TIMEOUT_MS).await;
        let idle = c.rpc_total() - total2;
        assert!(idle <= 3 * 20, "too many RPCs ({idle}) for 1 second of idleness");
    });
}
