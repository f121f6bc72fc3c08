//! Snapshots and a bounded log through the runtime: three `Node`s on `FileStorage` over TCP,
//! each with a service that snapshots every few entries. A follower killed while the leader
//! compacts comes back by the leader's snapshot; a restarted node starts from its own. Without
//! snapshots but with a log memory budget of nothing, the leader reads the entries a follower
//! lacks back from storage, and a slow service still gets every entry in order.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::node::{ApplyMsg, Node, NodeConfig};
use raft::storage::{FileStorage, Storage};
use raft::{Config, EntryKind, Index, NodeId, Role};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::time::{sleep, timeout};

/// How long any one wait may take before the test fails.
const GUARD: Duration = Duration::from_secs(60);

/// The service snapshots every this many applied entries (in the snapshot tests).
const EVERY: Index = 10;

/// How the nodes of a test cluster run.
#[derive(Clone, Copy)]
struct Setup {
    /// The service snapshots every this many entries, if at all.
    snapshot_every: Option<Index>,
    /// [`Config::max_log_memory_bytes`].
    log_memory: usize,
    /// [`NodeConfig::apply_capacity`], if not the default.
    apply_capacity: Option<usize>,
    /// The service takes this long over each entry.
    apply_delay: Duration,
}

const SNAPSHOTS: Setup = Setup {
    snapshot_every: Some(EVERY),
    log_memory: 64 << 20,
    apply_capacity: None,
    apply_delay: Duration::ZERO,
};

/// What a node's service holds in one incarnation.
#[derive(Default)]
struct Service {
    /// The last index applied (or restored).
    last: Index,
    /// Every command applied up to `last`, in order.
    commands: Vec<Vec<u8>>,
    /// Snapshots delivered to it, and entries applied one by one.
    restored: usize,
    entries: usize,
}

/// The service's snapshot: the last index and every command up to it.
fn encode(s: &Service) -> Vec<u8> {
    postcard::to_allocvec(&(s.last, &s.commands)).unwrap()
}

struct Cluster {
    ids: Vec<NodeId>,
    dirs: Vec<TempDir>,
    addrs: Vec<SocketAddr>,
    nodes: Vec<Option<Arc<Node>>>,
    services: Vec<Arc<Mutex<Service>>>,
    setup: Setup,
}

impl Cluster {
    async fn start(n: usize, setup: Setup) -> Cluster {
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let mut c = Cluster {
            ids: (1..=n as NodeId).collect(),
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            addrs: listeners.iter().map(|l| l.local_addr().unwrap()).collect(),
            nodes: (0..n).map(|_| None).collect(),
            services: Vec::new(),
            setup,
        };
        c.services = (0..n).map(|_| Arc::default()).collect();
        for (i, listener) in listeners.into_iter().enumerate() {
            c.launch(i, listener);
        }
        c
    }

    /// Starts node `i` from its directory, with a fresh service that applies what it delivers.
    fn launch(&mut self, i: usize, listener: TcpListener) {
        let id = self.ids[i];
        let setup = self.setup;
        let mut raft = Config::service(id, self.ids.clone());
        raft.max_log_memory_bytes = setup.log_memory;
        let mut config = NodeConfig::new(raft);
        config.deliver_noops = true;
        if let Some(capacity) = setup.apply_capacity {
            config.apply_capacity = capacity;
        }
        config.seed = Some(7 + id);
        let storage = FileStorage::open(self.dirs[i].path()).unwrap();
        let peers = self.ids.iter().copied().zip(self.addrs.iter().copied());
        let (node, mut rx) = Node::spawn(config, storage, listener, peers).unwrap();
        let node = Arc::new(node);
        self.nodes[i] = Some(node.clone());
        let service = Arc::new(Mutex::new(Service::default()));
        self.services[i] = service.clone();
        let node = Arc::downgrade(&node);
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if !setup.apply_delay.is_zero() {
                    sleep(setup.apply_delay).await;
                }
                let mut s = service.lock().unwrap();
                match msg {
                    ApplyMsg::Snapshot(snapshot) => {
                        let (last, commands) = postcard::from_bytes(&snapshot.data).unwrap();
                        assert_eq!(last, snapshot.index, "a snapshot names its own index");
                        assert!(last > s.last, "a snapshot took the state back");
                        (s.last, s.commands) = (last, commands);
                        s.restored += 1;
                    }
                    ApplyMsg::Entry(e) => {
                        assert_eq!(e.index, s.last + 1, "applied out of order or with a gap");
                        s.last = e.index;
                        s.entries += 1;
                        if e.kind == EntryKind::Normal {
                            s.commands.push(e.data);
                        }
                        if setup.snapshot_every.is_some_and(|every| e.index % every == 0) {
                            let Some(node) = node.upgrade() else { return };
                            // Stale: the leader's snapshot got here first.
                            let _ = node.snapshot(e.index, encode(&s));
                        }
                    }
                }
            }
        });
    }

    async fn kill(&mut self, i: usize) {
        self.nodes[i].take().expect("node runs").kill().await;
    }

    async fn restart(&mut self, i: usize) {
        let listener = TcpListener::bind(self.addrs[i]).await.expect("the port is free");
        self.launch(i, listener);
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node runs")
    }

    /// Polls `what` until it holds, failing after [`GUARD`].
    async fn wait(&self, what: &str, pred: impl Fn(&Cluster) -> bool) {
        let wait = async {
            while !pred(self) {
                sleep(Duration::from_millis(10)).await;
            }
        };
        timeout(GUARD, wait).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    async fn leader(&self) -> usize {
        self.wait("a leader", |c| {
            c.nodes.iter().flatten().any(|n| n.status().role == Role::Leader)
        })
        .await;
        let leader = self
            .nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.status().role == Role::Leader));
        leader.expect("a leader")
    }

    /// Snapshots restored and entries applied one by one by node `i`'s service.
    fn counts(&self, i: usize) -> (usize, usize) {
        let s = self.services[i].lock().unwrap();
        (s.restored, s.entries)
    }

    fn commands(&self, i: usize) -> Vec<Vec<u8>> {
        self.services[i].lock().unwrap().commands.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compacted_log_catches_up_by_snapshot_and_a_restart_starts_from_one()
{
    let mut c = Cluster::start(3, SNAPSHOTS).await;
    let leader = c.leader().await;
    let behind = (leader + 1) % 3;
    c.kill(behind).await;

    let commands: Vec<Vec<u8>> = (0..60).map(|i| format!("cmd {i}").into_bytes()).collect();
    for cmd in &commands {
        let (index, _) = c.node(leader).propose(cmd.clone()).expect("the leader takes it");
        c.wait("the leader to apply its command", |c| {
            c.services[leader].lock().unwrap().last >= index
        })
        .await;
    }
    c.wait("the leader to compact", |c| c.node(leader).status().snapshot_index >= 50).await;

    // The follower's next entry is compacted away: only the snapshot brings it up to date.
    c.restart(behind).await;
    c.wait("the follower to catch up", |c| c.commands(behind) == commands).await;
    let (restored, entries) = c.counts(behind);
    assert_eq!(restored, 1, "one snapshot from the leader");
    assert!(entries < 20, "{entries} entries applied one by one: the snapshot did the rest");

    // A restart delivers the node's own snapshot first, then the log after it.
    c.kill(leader).await;
    let storage = FileStorage::open(c.dirs[leader].path()).unwrap();
    let state = storage.initial_state().unwrap();
    assert!(state.snapshot.index >= 50, "snapshot at {}", state.snapshot.index);
    assert_eq!(state.first_index, state.snapshot.index + 1);
    drop(storage);
    c.restart(leader).await;
    c.wait("the restarted node to restore its state", |c| c.commands(leader) == commands).await;
    let (restored, entries) = c.counts(leader);
    assert_eq!(restored, 1, "its own snapshot, first");
    assert!(entries < 20, "{entries} entries re-applied");

    // And the cluster goes on.
    let (index, _) = loop {
        match c.node(c.leader().await).propose(b"after".to_vec()) {
            Ok(at) => break at,
            Err(_) => sleep(Duration::from_millis(20)).await,
        }
    };
    c.wait("every node to apply the last command", |c| {
        c.services.iter().all(|s| s.lock().unwrap().last >= index)
    })
    .await;
    for i in 0..3 {
        c.node(i).shutdown().await.unwrap();
    }
}

/// Proposes `commands` to the leader one after another, each once the leader applied the one
/// before.
async fn propose_all(c: &Cluster, leader: usize, commands: &[Vec<u8>]) {
    for cmd in commands {
        let (index, _) = c.node(leader).propose(cmd.clone()).expect("the leader takes it");
        c.wait("the leader to apply its command", |c| {
            c.services[leader].lock().unwrap().last >= index
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_reads_evicted_entries_back_from_storage_for_a_follower_that_lags() {
    let setup = Setup { snapshot_every: None, log_memory: 0, ..SNAPSHOTS };
    let mut c = Cluster::start(3, setup).await;
    let leader = c.leader().await;
    let behind = (leader + 1) % 3;
    c.kill(behind).await;

    let commands: Vec<Vec<u8>> = (0..300).map(|i| format!("cmd {i}").into_bytes()).collect();
    propose_all(&c, leader, &commands).await;
    let status = c.node(leader).status();
    assert_eq!(status.snapshot_index, 0, "no snapshot: the log is whole in storage");
    assert!(status.held_from > 250, "the leader still holds entries from {}", status.held_from);

    // Everything the follower lacks was evicted from the leader's memory: it comes from disk,
    // in batches, and the follower's service applies every entry, one by one.
    c.restart(behind).await;
    c.wait("the follower to catch up", |c| c.commands(behind) == commands).await;
    let (restored, entries) = c.counts(behind);
    assert_eq!(restored, 0, "no snapshot anywhere");
    assert!(entries >= 300, "only {entries} entries applied");
    assert!(c.node(behind).status().held_from > 250, "the follower evicts what it applied too");
    for i in 0..3 {
        c.node(i).shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_service_gets_every_entry_in_order_though_the_core_evicts_them() {
    // The apply channel holds two entries and the service takes 2 ms over each, so the core
    // counts entries applied (and evicts them) long before the service takes them.
    let setup = Setup {
        snapshot_every: None,
        log_memory: 0,
        apply_capacity: Some(2),
        apply_delay: Duration::from_millis(2),
    };
    let c = Cluster::start(3, setup).await;
    let leader = c.leader().await;
    let commands: Vec<Vec<u8>> = (0..200).map(|i| format!("cmd {i}").into_bytes()).collect();
    let mut last = 0;
    for cmd in &commands {
        // Proposed without waiting: they commit faster than the services apply them.
        last = c.node(leader).propose(cmd.clone()).expect("the leader takes it").0;
    }
    c.wait("every node's core to evict what it counts applied", |c| {
        (0..3).all(|i| c.node(i).status().held_from > last / 2)
    })
    .await;
    assert!(
        (0..3).any(|i| c.services[i].lock().unwrap().last < last / 2),
        "some service should still be behind what its core evicted"
    );
    c.wait("every service to apply every command", |c| (0..3).all(|i| c.commands(i) == commands))
        .await;
    for i in 0..3 {
        c.node(i).shutdown().await.unwrap();
    }
}
