//! `raft::Node::read_index` over real loopback TCP: a read asked of the leader or of a
//! follower gets an index that covers every write acknowledged before it, and a leader cut
//! off from its majority confirms no read.
//!
//! Timeouts only keep a broken build from hanging the suite; nothing is asserted about speed.

use std::time::Duration;

use raft::node::{Node, NodeConfig, ReadIndexError};
use raft::storage::MemStorage;
use raft::{Config, Role};
use tokio::net::TcpListener;
use tokio::time::{sleep, timeout, Instant};

const GUARD: Duration = Duration::from_secs(30);

async fn cluster() -> Vec<Node> {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let peers: Vec<(u64, _)> = (1..=3).zip(addrs).collect();
    let mut nodes = Vec::new();
    for (listener, (id, _)) in listeners.into_iter().zip(&peers) {
        let mut config = NodeConfig::new(Config::service(*id, vec![1, 2, 3]));
        config.seed = Some(10 + id);
        let (node, mut rx) =
            Node::spawn(config, MemStorage::new(), listener, peers.clone()).unwrap();
        // A service that keeps up.
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        nodes.push(node);
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
async fn reads_on_the_leader_and_on_followers_cover_every_acknowledged_write() {
    let nodes = cluster().await;
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
    let mut nodes = cluster().await;
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
