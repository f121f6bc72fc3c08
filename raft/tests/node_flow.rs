//! Flow control and reads without the log in `raft::Node`, over real loopback TCP: a service
//! that does not take its committed entries never stops its node from ticking and answering its
//! peers (the entries wait and go out in order once it reads them); a read asked of the leader
//! or of a follower gets an index that covers every write acknowledged before it; and a leader
//! cut off from its majority confirms no read.
//!
//! Timeouts only keep a broken build from hanging the suite; nothing is asserted about speed.

use std::time::Duration;

use raft::node::{ApplyMsg, Node, NodeConfig, ReadIndexError};
use raft::storage::MemStorage;
use raft::{Config, Role};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

const GUARD: Duration = Duration::from_secs(30);

/// Three nodes on loopback with apply channels of `apply_capacity`; their channels, unread.
async fn cluster(apply_capacity: usize) -> (Vec<Node>, Vec<mpsc::Receiver<ApplyMsg>>) {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let peers: Vec<(u64, _)> = (1..=3).zip(addrs).collect();
    let mut nodes = Vec::new();
    let mut applied = Vec::new();
    for (listener, (id, _)) in listeners.into_iter().zip(&peers) {
        let mut config = NodeConfig::new(Config::service(*id, vec![1, 2, 3]));
        config.apply_capacity = apply_capacity;
        config.seed = Some(10 + id);
        let (node, rx) = Node::spawn(config, MemStorage::new(), listener, peers.clone()).unwrap();
        nodes.push(node);
        applied.push(rx);
    }
    (nodes, applied)
}

/// Three nodes whose services keep up.
async fn serving_cluster() -> Vec<Node> {
    let (nodes, applied) = cluster(4096).await;
    for mut rx in applied {
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
    }
    nodes
}

async fn leader(nodes: &[Node]) -> usize {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Some(i) = nodes.iter().position(|n| n.status().role == Role::Leader) {
            return i;
        }
        assert!(Instant::now() < deadline, "no leader within {GUARD:?}");
        sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_stops_reading_does_not_stall_its_node() {
    // The channels fill after two entries, and are not read until the end.
    let (nodes, mut applied) = cluster(2).await;
    let leader = leader(&nodes).await;
    let deadline = Instant::now() + GUARD;
    let term = nodes[leader].status().term;
    let mut last = 0;
    for i in 0..100u32 {
        last = nodes[leader].propose(i.to_be_bytes().to_vec()).expect("the leader takes it").0;
    }
    // Every node learns that all of them committed, though none could deliver them.
    for node in &nodes {
        while node.status().commit_index < last {
            assert!(Instant::now() < deadline, "commit index of node {} below {last}", node.id());
            sleep(Duration::from_millis(10)).await;
        }
    }
    // Five election timeouts (300-600 ms each) with full apply channels everywhere: the
    // leader still leads the same term, so every node kept ticking and answering.
    sleep(Duration::from_millis(3_000)).await;
    let status = nodes[leader].status();
    assert_eq!((status.role, status.term), (Role::Leader, term), "{status:?}");

    // Now the services read: everything, in order, on every node.
    for (n, rx) in applied.iter_mut().enumerate() {
        for i in 0..100u32 {
            let msg = timeout(GUARD, rx.recv()).await.expect("an entry").expect("the node runs");
            let entry = msg.entry().expect("an entry: nothing snapshots here");
            assert_eq!(entry.data, i.to_be_bytes().to_vec(), "node {} entry {i}", n + 1);
        }
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_the_leader_and_on_followers_cover_every_acknowledged_write() {
    let nodes = serving_cluster().await;
    let l = leader(&nodes).await;
    let mut written = 0;
    for i in 0..20u8 {
        written = nodes[l].propose(vec![i]).unwrap().0;
    }
    let deadline = Instant::now() + GUARD;
    while nodes[l].status().commit_index < written {
        assert!(Instant::now() < deadline, "the writes never committed");
        sleep(Duration::from_millis(5)).await;
    }
    // Everything acknowledged (committed) before the read is at or below its index.
    for (i, node) in nodes.iter().enumerate() {
        let index = timeout(GUARD, node.read_index()).await.expect("an answer");
        let index = index.unwrap_or_else(|e| panic!("node {}: {e}", i + 1));
        assert!(index >= written, "node {}: read index {index} below {written}", i + 1);
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_majority_confirms_no_read() {
    let mut nodes = serving_cluster().await;
    let l = leader(&nodes).await;
    // Its no-op committed, so reads do not wait for it.
    timeout(GUARD, nodes[l].read_index()).await.unwrap().unwrap();
    let lead = nodes.remove(l);
    for node in nodes {
        node.kill().await;
    }
    // Check-quorum deposes it within about an election timeout; until then its read waits
    // for a round nobody answers, and then fails.
    let read = timeout(GUARD, lead.read_index()).await.expect("an answer");
    assert!(
        matches!(read, Err(ReadIndexError::LeaderChanged | ReadIndexError::NoLeader)),
        "{read:?}"
    );
    assert_ne!(lead.status().role, Role::Leader);
    assert_eq!(lead.read_index().await, Err(ReadIndexError::NoLeader));
    lead.shutdown().await.unwrap();
}
