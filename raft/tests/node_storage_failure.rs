//! A storage failure stops a `raft::Node` with a typed error, and nothing that was not made
//! durable is acknowledged: the entry whose sync failed is never committed nor applied.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raft::node::{Node, NodeConfig, NodeError};
use raft::storage::{InitialState, MemStorage, Storage, StorageError};
use raft::{Config, Entry, HardState, Index, Role, Snapshot};
use tokio::net::TcpListener;
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(60);

/// A [`MemStorage`] whose `sync` fails once `fail` is set.
struct FailingStorage {
    inner: MemStorage,
    fail: Arc<AtomicBool>,
}

impl Storage for FailingStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        self.inner.initial_state()
    }
    fn hard_state(&self) -> HardState {
        self.inner.hard_state()
    }
    fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }
    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.inner.apply_snapshot(snapshot)
    }
    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.inner.set_hard_state(hard_state)
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.inner.append(entries)
    }
    fn truncate_suffix(&mut self, from: Index) -> Result<(), StorageError> {
        self.inner.truncate_suffix(from)
    }
    fn entries(&self, range: Range<Index>) -> Result<Vec<Entry>, StorageError> {
        self.inner.entries(range)
    }
    fn first_index(&self) -> Index {
        self.inner.first_index()
    }
    fn last_index(&self) -> Index {
        self.inner.last_index()
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StorageError::Poisoned("injected fdatasync failure".into()));
        }
        self.inner.sync()
    }
}

#[tokio::test]
async fn a_failed_sync_stops_the_node_with_a_storage_error_and_acknowledges_nothing() {
    let fail = Arc::new(AtomicBool::new(false));
    let storage = FailingStorage { inner: MemStorage::new(), fail: fail.clone() };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (node, mut applied) =
        Node::spawn(NodeConfig::new(Config::service(1, vec![1])), storage, listener, [(1, addr)])
            .unwrap();

    // A single-peer cluster elects itself and commits.
    let mut status = node.subscribe();
    timeout(GUARD, status.wait_for(|s| s.role == Role::Leader)).await.unwrap().unwrap();
    let (index, _) = node.propose(b"durable".to_vec()).unwrap();
    let msg = timeout(GUARD, applied.recv()).await.unwrap().unwrap();
    let entry = msg.entry().expect("an entry");
    assert_eq!((entry.index, &entry.data[..]), (index, &b"durable"[..]));

    fail.store(true, Ordering::SeqCst);
    let (lost, _) = node.propose(b"never durable".to_vec()).unwrap();
    timeout(GUARD, node.stopped()).await.expect("the node stops");
    assert!(node.is_stopped());
    assert!(!node.state().1, "a stopped node does not claim to lead");
    assert!(node.propose(b"after".to_vec()).is_err(), "a stopped node takes no proposals");

    // The entry whose sync failed was never delivered: the channel ends without it.
    let rest = timeout(GUARD, async {
        let mut rest = Vec::new();
        while let Some(m) = applied.recv().await {
            rest.push(m);
        }
        rest
    })
    .await
    .unwrap();
    assert!(
        rest.iter().all(|m| m.index() < lost),
        "applied an entry that is not durable: {rest:?}"
    );

    match node.shutdown().await {
        Err(NodeError::Storage(StorageError::Poisoned(why))) => {
            assert!(why.contains("injected"))
        }
        other => panic!("expected the storage error, got {other:?}"),
    }
}
