//! Snapshots through the runtime: three `Node`s on `FileStorage` over TCP, each with a service
//! that snapshots every few entries. A follower killed while the leader compacts comes back
//! by the leader's snapshot; a restarted node starts from its own.

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

/// The service snapshots every this many applied entries.
const EVERY: Index = 10;

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
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
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
        let mut config = NodeConfig::new(Config::service(id, self.ids.clone()));
        config.deliver_noops = true;
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
                        if e.index % EVERY == 0 {
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
    let mut c = Cluster::start(3).await;
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
