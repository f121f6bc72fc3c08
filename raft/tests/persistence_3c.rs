//! 3C: persistence and unreliable networks (seed labs 000, 002, 003, 004), on the simulator.

use raft::sim::{num, scenario, Cluster, ELECTION_TIMEOUT_MS};
use std::collections::HashSet;

#[test]
fn persist1_3c() {
    scenario("persist1_3c", 3, |c| async move {
        let n = c.n();
        c.one(num(11), n, true).await;

        // Crash and restart all.
        for i in 0..n {
            c.restart(i);
        }
        c.one(num(12), n, true).await;

        // Crash and restart the leader.
        let leader1 = c.check_one_leader().await;
        c.restart(leader1);
        c.one(num(13), n, true).await;

        // A leader goes away; the other two agree; it comes back and catches up.
        let leader2 = c.check_one_leader().await;
        c.disconnect(leader2);
        c.one(num(14), n - 1, true).await;
        c.restart(leader2);
        c.wait(4, n, None).await;

        // A follower goes away; the other two agree; it comes back.
        let i3 = (c.check_one_leader().await + 1) % n;
        c.disconnect(i3);
        c.one(num(15), n - 1, true).await;
        c.restart(i3);
        c.one(num(16), n, true).await;
    });
}

#[test]
fn persist2_3c() {
    scenario("persist2_3c", 5, |c| async move {
        let n = c.n();
        let mut index = 1;
        for _ in 0..5 {
            c.one(num(10 + index), n, true).await;
            index += 1;

            // Two followers fall behind.
            let leader1 = c.check_one_leader().await;
            c.disconnect((leader1 + 1) % n);
            c.disconnect((leader1 + 2) % n);
            c.one(num(10 + index), n - 2, true).await;
            index += 1;

            // The three that are ahead crash; the two behind restart, then one that is ahead.
            c.crash(leader1);
            c.crash((leader1 + 3) % n);
            c.crash((leader1 + 4) % n);
            c.restart((leader1 + 1) % n);
            c.restart((leader1 + 2) % n);
            c.sleep(ELECTION_TIMEOUT_MS).await;
            c.restart((leader1 + 3) % n);

            // The two behind must catch up from the one ahead.
            c.one(num(10 + index), n - 2, true).await;
            index += 1;

            c.restart((leader1 + 4) % n);
            c.restart(leader1);
        }
        c.one(num(1000), n, true).await;
    });
}

#[test]
fn persist3_3c() {
    scenario("persist3_3c", 3, |c| async move {
        let n = c.n();
        c.one(num(101), 3, true).await;

        let leader = c.check_one_leader().await;
        c.disconnect((leader + 2) % n);
        c.one(num(102), 2, true).await;

        // The two that are up to date crash; the lagging one comes back with the old leader.
        c.crash(leader);
        c.crash((leader + 1) % n);
        c.connect((leader + 2) % n);
        c.restart(leader);
        c.one(num(103), 2, true).await;

        c.restart((leader + 1) % n);
        c.one(num(104), n, true).await;
    });
}

/// Figure 8 of the paper, with crashes (`figure8_3c`) or, on an unreliable network with long
/// reordering, disconnections (`figure8_unreliable_3c`).
async fn figure8(c: Cluster, unreliable: bool) {
    let n = c.n();
    if unreliable {
        c.set_reliable(false);
    }
    c.one(num(c.rand_below(10_000)), 1, true).await;

    let mut nup = n;
    for iter in 0..1000 {
        if unreliable && iter == 200 {
            c.set_long_reordering(true);
        }
        // Offer a command to every live peer; remember one that took it as leader.
        let mut leader = None;
        for i in 0..n {
            let accepted = c.start(i, num(c.rand_below(10_000))).is_some();
            if accepted && (!unreliable || c.is_connected(i)) {
                leader = Some(i);
            }
        }

        let ms = if c.rand_below(1000) < 100 {
            c.rand_below(ELECTION_TIMEOUT_MS / 2)
        } else {
            c.rand_below(13)
        };
        c.sleep(ms).await;

        if let Some(leader) = leader {
            if !unreliable {
                c.crash(leader);
                nup -= 1;
            } else if c.rand_below(1000) < ELECTION_TIMEOUT_MS / 2 {
                c.disconnect(leader);
                nup -= 1;
            }
        }

        if nup < 3 {
            let s = c.rand_below(n as u64) as usize;
            if !unreliable && !c.is_alive(s) {
                c.restart(s);
                nup += 1;
            } else if unreliable && !c.is_connected(s) {
                c.connect(s);
                nup += 1;
            }
        }
    }

    for i in 0..n {
        if !c.is_alive(i) {
            c.restart(i);
        }
        c.connect(i);
    }
    c.one(num(c.rand_below(10_000)), n, true).await;
}

#[test]
fn figure8_3c() {
    scenario("figure8_3c", 5, |c| figure8(c, false));
}

#[test]
fn figure8_unreliable_3c() {
    scenario("figure8_unreliable_3c", 5, |c| figure8(c, true));
}

#[test]
fn unreliable_agree_3c() {
    scenario("unreliable_agree_3c", 5, |c| async move {
        let n = c.n();
        c.set_reliable(false);
        let mut clients = Vec::new();
        for iter in 1..50u64 {
            for j in 0..4u64 {
                let c2 = c.clone();
                clients.push(c.spawn(async move {
                    c2.one(num(100 * iter + j), 1, true).await;
                }));
            }
            c.one(num(iter), 1, true).await;
        }
        c.set_reliable(true);
        for h in clients {
            h.await;
        }
        c.one(num(100), n, true).await;
    });
}

/// The churn tests: three clients keep offering commands while peers are disconnected,
/// crashed and restarted; every command a client saw committed must be in the final log.
async fn churn(c: Cluster, unreliable: bool) {
    let n = c.n();
    if unreliable {
        c.set_reliable(false);
    }
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));

    let mut clients = Vec::new();
    for me in 0..3u64 {
        let c = c.clone();
        let stop = stop.clone();
        clients.push(c.clone().spawn(async move {
            let mut values = Vec::new();
            while !stop.get() {
                let x = c.rand_u64();
                let mut index = None;
                for i in 0..n {
                    // Try them all: maybe one of them is a leader.
                    if let Some((i1, _)) = c.start(i, num(x)) {
                        index = Some(i1);
                    }
                }
                match index {
                    Some(index) => {
                        // Maybe the leader commits the value, maybe not; do not wait forever.
                        for to in [10, 20, 50, 100, 200] {
                            let (nd, cmd) = c.n_committed(index);
                            if nd > 0 {
                                if cmd.is_some_and(|cmd| cmd[..] == num(x)[..]) {
                                    values.push(x);
                                }
                                break;
                            }
                            c.sleep(to).await;
                        }
                    }
                    None => c.sleep(79 + me * 17).await,
                }
            }
            values
        }));
    }

    for _ in 0..20 {
        if c.rand_below(1000) < 200 {
            c.disconnect(c.rand_below(n as u64) as usize);
        }
        if c.rand_below(1000) < 500 {
            let i = c.rand_below(n as u64) as usize;
            if !c.is_alive(i) {
                c.restart(i);
            }
            c.connect(i);
        }
        if c.rand_below(1000) < 200 {
            let i = c.rand_below(n as u64) as usize;
            if c.is_alive(i) {
                c.crash(i);
            }
        }
        // Often enough that peers rarely settle, rarely enough that they can keep up.
        c.sleep(ELECTION_TIMEOUT_MS * 7 / 10).await;
    }

    c.sleep(ELECTION_TIMEOUT_MS).await;
    c.set_reliable(true);
    for i in 0..n {
        if !c.is_alive(i) {
            c.restart(i);
        }
        c.connect(i);
    }
    stop.set(true);
    let mut values = Vec::new();
    for h in clients {
        values.extend(h.await);
    }
    assert!(!values.is_empty(), "no client saw any of its commands committed");

    c.sleep(ELECTION_TIMEOUT_MS).await;
    let last_index = c.one(num(c.rand_u64()), n, true).await;

    let mut really = HashSet::new();
    for index in 1..=last_index {
        let cmd = c.wait(index, n, None).await.expect("wait without a term never gives up");
        really.insert(cmd.to_vec());
    }
    for v in values {
        assert!(really.contains(&num(v)), "didn't find a value ({v}) a client saw committed");
    }
}

#[test]
fn reliable_churn_3c() {
    scenario("reliable_churn_3c", 5, |c| churn(c, false));
}

#[test]
fn unreliable_churn_3c() {
    scenario("unreliable_churn_3c", 5, |c| churn(c, true));
}
