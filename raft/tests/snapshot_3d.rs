//! 3D: snapshots and log compaction, on the simulator. The service snapshots every
//! [`SNAPSHOT_INTERVAL`] applied entries; lagging and crashed peers catch up by InstallSnapshot;
//! the durable Raft state stays bounded. Every step is checked by the simulator's invariants,
//! among them that a snapshot agrees with the committed entries it stands for and that no
//! peer's applied state goes back. Described in `docs/scenarios-3d.md`.

use raft::sim::{num, scenario_with, Cluster, SimConfig};
use raft::Decision;

/// The labs' `SnapShotInterval`: the service snapshots once it applied this many entries.
const SNAPSHOT_INTERVAL: u64 = 10;

/// The labs' `MAXLOGSIZE`: the bound on the durable Raft state (without the snapshot), in bytes.
const MAX_LOG_SIZE: usize = 2_000;

fn snapshotting(cfg: &mut SimConfig) {
    cfg.snapshot_every = Some(SNAPSHOT_INTERVAL);
}

/// How the victim of each round of [`snapcommon`] falls behind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// It stays up: every follower keeps up, and no InstallSnapshot is needed.
    Stays,
    /// It is disconnected, then reconnected.
    Disconnected,
    /// It crashes, then restarts from its durable state.
    Crashed,
}

/// The labs' `snapcommon`: 30 rounds on 3 peers. Each round a victim (a follower, or the leader
/// every third round) falls behind while enough commands to cross a snapshot are offered to
/// a sender (the leader, or the victim itself every third round); the others agree, the Raft
/// state stays under [`MAX_LOG_SIZE`], and the victim comes back and must catch up, by a
/// snapshot when the leader compacted the entries it missed.
async fn snapcommon(c: Cluster, victim_falls: Victim, reliable: bool) {
    let servers = c.n();
    c.set_reliable(reliable);
    c.one(num(c.rand_u64()), servers, true).await;
    let mut leader = c.check_one_leader().await;
    for round in 0..30 {
        let (mut victim, mut sender) = ((leader + 1) % servers, leader);
        if round % 3 == 1 {
            (victim, sender) = (leader, (leader + 1) % servers);
        }
        match victim_falls {
            Victim::Disconnected => c.disconnect(victim),
            Victim::Crashed => c.crash(victim),
            Victim::Stays => {}
        }
        if victim_falls != Victim::Stays {
            c.one(num(c.rand_u64()), servers - 1, true).await;
        }

        // Perhaps enough to make a snapshot.
        let nn = SNAPSHOT_INTERVAL / 2 + c.rand_below(SNAPSHOT_INTERVAL);
        for _ in 0..nn {
            c.start(sender, num(c.rand_u64()));
        }

        // Let the appliers catch up; with nobody behind, every follower must, so that no
        // InstallSnapshot is needed in the basic scenario.
        let expected = if victim_falls == Victim::Stays { servers } else { servers - 1 };
        c.one(num(c.rand_u64()), expected, true).await;

        let size = c.log_size();
        if size >= MAX_LOG_SIZE {
            c.fail(&format!("log size too large: {size} bytes of Raft state in round {round}"));
        }

        match victim_falls {
            Victim::Disconnected => c.connect(victim),
            Victim::Crashed => c.restart(victim),
            Victim::Stays => continue,
        }
        // The victim may be behind the leader's snapshot and need it to catch up.
        c.one(num(c.rand_u64()), servers, true).await;
        leader = c.check_one_leader().await;
    }
}

/// At least one peer snapshotted, so that a scenario that passes did exercise compaction.
fn assert_compacted(c: &Cluster) {
    let highest = (0..c.n()).map(|i| c.snapshot_index(i)).max().unwrap_or(0);
    if highest == 0 {
        c.fail("no peer ever snapshotted: the scenario did not exercise compaction");
    }
}

/// Some follower caught up by installing a leader's snapshot.
fn assert_installed(c: &Cluster) {
    let coverage = c.sim().coverage();
    let installs = coverage.count(Decision::SnapshotInstalled)
        + coverage.count(Decision::SnapshotInstalledKeepingLog);
    if installs == 0 {
        c.fail("no follower installed a snapshot: the scenario did not exercise InstallSnapshot");
    }
}

#[test]
fn snapshot_basic_3d() {
    scenario_with("snapshot_basic_3d", 3, snapshotting, |c| async move {
        snapcommon(c.clone(), Victim::Stays, true).await;
        assert_compacted(&c);
    });
}

#[test]
fn snapshot_install_3d() {
    scenario_with("snapshot_install_3d", 3, snapshotting, |c| async move {
        snapcommon(c.clone(), Victim::Disconnected, true).await;
        assert_compacted(&c);
        assert_installed(&c);
    });
}

#[test]
fn snapshot_install_unreliable_3d() {
    scenario_with("snapshot_install_unreliable_3d", 3, snapshotting, |c| async move {
        snapcommon(c.clone(), Victim::Disconnected, false).await;
        assert_compacted(&c);
        assert_installed(&c);
    });
}

#[test]
fn snapshot_install_crash_3d() {
    scenario_with("snapshot_install_crash_3d", 3, snapshotting, |c| async move {
        snapcommon(c.clone(), Victim::Crashed, true).await;
        assert_compacted(&c);
        assert_installed(&c);
    });
}

#[test]
fn snapshot_install_uncrash_3d() {
    scenario_with("snapshot_install_uncrash_3d", 3, snapshotting, |c| async move {
        snapcommon(c.clone(), Victim::Crashed, false).await;
        assert_compacted(&c);
        assert_installed(&c);
    });
}

/// Do the peers persist their snapshots and restart from them with the tail of the log? Five
/// rounds: enough agreements to perhaps cross a snapshot, then every peer crashes and restarts;
/// the next agreement must land after the last one before the crash.
#[test]
fn snapshot_all_crash_3d() {
    scenario_with("snapshot_all_crash_3d", 3, snapshotting, |c| async move {
        let servers = c.n();
        c.one(num(c.rand_u64()), servers, true).await;
        for _ in 0..5 {
            let nn = SNAPSHOT_INTERVAL / 2 + c.rand_below(SNAPSHOT_INTERVAL);
            for _ in 0..nn {
                c.one(num(c.rand_u64()), servers, true).await;
            }
            let index1 = c.one(num(c.rand_u64()), servers, true).await;
            for i in 0..servers {
                c.crash(i);
            }
            for i in 0..servers {
                c.restart(i);
            }
            let index2 = c.one(num(c.rand_u64()), servers, true).await;
            if index2 < index1 + 1 {
                c.fail(&format!("index decreased from {index1} to {index2}"));
            }
        }
        assert_compacted(&c);
    });
}

/// Do the peers initialize their in-memory copy of the snapshot, so that later writes to their
/// durable state lose nothing? Enough agreements for a snapshot; all crash and restart; one
/// agreement writes something back; all crash and restart again; one more agreement.
#[test]
fn snapshot_init_3d() {
    scenario_with("snapshot_init_3d", 3, snapshotting, |c| async move {
        let servers = c.n();
        c.one(num(c.rand_u64()), servers, true).await;
        for _ in 0..=SNAPSHOT_INTERVAL {
            c.one(num(c.rand_u64()), servers, true).await;
        }
        let restart_all = || {
            for i in 0..servers {
                c.crash(i);
            }
            for i in 0..servers {
                c.restart(i);
            }
        };
        restart_all();
        c.one(num(c.rand_u64()), servers, true).await;
        restart_all();
        c.one(num(c.rand_u64()), servers, true).await;
        for i in 0..servers {
            if c.snapshot_index(i) == 0 {
                c.fail(&format!("n{i} never persisted a snapshot"));
            }
        }
    });
}
