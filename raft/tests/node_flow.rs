//! Flow control in `raft::Node`: a service that does not take its committed entries never stops
//! its node from ticking and answering its peers. The entries wait in the node and go out in
//! order once the service reads them.
//!
//! Timeouts only keep a broken build from hanging the suite; nothing is asserted about speed.

use std::time::Duration;

use raft::node::{Node, NodeConfig};
use raft::storage::MemStorage;
use raft::{Config, Role};
use tokio::net::TcpListener;
use tokio::time::{sleep, timeout, Instant};

const GUARD: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_stops_reading_does_not_stall_its_node() {
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
        config.apply_capacity = 2;
        config.seed = Some(*id);
        let (node, rx) = Node::spawn(config, MemStorage::new(), listener, peers.clone()).unwrap();
        nodes.push(node);
        // Held, and not read until the end: the channel fills after two entries.
        applied.push(rx);
    }

    let deadline = Instant::now() + GUARD;
    let leader = loop {
        if let Some(i) = nodes.iter().position(|n| n.status().role == Role::Leader) {
            break i;
        }
        assert!(Instant::now() < deadline, "no leader within {GUARD:?}");
        sleep(Duration::from_millis(10)).await;
    };
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
            assert_eq!(msg.command, i.to_be_bytes().to_vec(), "node {} entry {i}", n + 1);
        }
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
