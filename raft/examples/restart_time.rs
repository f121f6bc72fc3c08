//! How long a node takes to serve again after a restart, with and without snapshots.
//!
//! ```sh
//! cargo run --release -p raft --example restart_time -- [COMMANDS] [SNAPSHOT_EVERY]
//! ```
//!
//! A one-node cluster on `FileStorage` in a temporary directory applies COMMANDS commands
//! (default 1,000,000) to a service that snapshots its state every SNAPSHOT_EVERY entries
//! (default 10,000; 0: never). The node shuts down and starts again from its directory; the
//! figures are the time to open the storage, until the service has its snapshot back, until
//! it has its whole state back (the log after the snapshot applied, which waits for a leader
//! to know the commit index: an election timeout, 300-600 ms with `Config::service`), and
//! until a new command commits.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::node::{ApplyMsg, Node, NodeConfig};
use raft::storage::{FileStorage, Storage};
use raft::{Config, Role};
use tokio::net::TcpListener;

/// What the service counts; its whole state is the last index it applied.
#[derive(Default)]
struct Service {
    last: AtomicU64,
    /// Entries applied one by one, and snapshots restored, in this incarnation.
    entries: AtomicUsize,
    restored: AtomicUsize,
}

async fn start(dir: &std::path::Path, every: u64) -> (Arc<Node>, Arc<Service>, Duration) {
    let opened = Instant::now();
    let storage = FileStorage::open(dir).expect("open the storage");
    let open_time = opened.elapsed();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = NodeConfig::new(Config::service(1, vec![1]));
    config.deliver_noops = true;
    let (node, mut rx) = Node::spawn(config, storage, listener, [(1, addr)]).unwrap();
    let node = Arc::new(node);
    let service = Arc::new(Service::default());
    let (weak, s) = (Arc::downgrade(&node), service.clone());
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                ApplyMsg::Snapshot(snapshot) => {
                    let last = u64::from_le_bytes(snapshot.data[..8].try_into().unwrap());
                    s.last.store(last, Ordering::Release);
                    s.restored.fetch_add(1, Ordering::Relaxed);
                }
                ApplyMsg::Entry(e) => {
                    s.last.store(e.index, Ordering::Release);
                    s.entries.fetch_add(1, Ordering::Relaxed);
                    if every > 0 && e.index % every == 0 {
                        if let Some(node) = weak.upgrade() {
                            let _ = node.snapshot(e.index, e.index.to_le_bytes().to_vec());
                        }
                    }
                }
            }
        }
    });
    (node, service, open_time)
}

async fn wait_until(what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let commands: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("COMMANDS"));
    let every: u64 = args.next().map_or(10_000, |a| a.parse().expect("SNAPSHOT_EVERY"));
    let dir = tempfile::tempdir().unwrap();

    let (node, service, _) = start(dir.path(), every).await;
    wait_until("a leader", || node.status().role == Role::Leader).await;
    let loaded = Instant::now();
    let mut last = 0;
    for i in 0..commands {
        loop {
            match node.propose(i.to_le_bytes().to_vec()) {
                Ok((index, _)) => {
                    last = index;
                    break;
                }
                // The flow-control bound: let the log drain.
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    wait_until("every command applied", || service.last.load(Ordering::Acquire) >= last).await;
    let load_time = loaded.elapsed();
    let status = node.status();
    node.shutdown().await.unwrap();
    println!(
        "applied {commands} commands (last index {last}) in {:.1} s; snapshot at {}; data directory {:.1} MiB",
        load_time.as_secs_f64(),
        status.snapshot_index,
        dir_bytes(dir.path()) as f64 / (1 << 20) as f64
    );

    let restarted = Instant::now();
    let (node, service, open_time) = start(dir.path(), every).await;
    wait_until("the snapshot restored", || {
        every == 0 || service.restored.load(Ordering::Relaxed) > 0
    })
    .await;
    let snapshot_time = restarted.elapsed();
    wait_until("the state back", || service.last.load(Ordering::Acquire) >= last).await;
    let state_time = restarted.elapsed();
    let (index, _) = loop {
        match node.propose(b"after".to_vec()) {
            Ok(at) => break at,
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    };
    wait_until("a new command applied", || service.last.load(Ordering::Acquire) >= index).await;
    let serving_time = restarted.elapsed();
    println!(
        "restart: storage opened in {:.0} ms, snapshot restored after {:.0} ms; state back after {:.0} ms ({} snapshot restored, {} entries re-applied once a leader knew the commit index); a new command committed after {:.0} ms",
        open_time.as_secs_f64() * 1e3,
        snapshot_time.as_secs_f64() * 1e3,
        state_time.as_secs_f64() * 1e3,
        service.restored.load(Ordering::Relaxed),
        service.entries.load(Ordering::Relaxed),
        serving_time.as_secs_f64() * 1e3,
    );
    node.shutdown().await.unwrap();
    let storage = FileStorage::open(dir.path()).unwrap();
    println!("after: first index {}, last index {}", storage.first_index(), storage.last_index());
}
