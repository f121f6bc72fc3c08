//! `raft::Node` clusters over real loopback TCP with durable file storage: election,
//! replication, a leader killed and restarted from its directory, the whole cluster restarted,
//! and a clean shutdown that frees the ports.
//!
//! Timeouts here only keep a broken build from hanging the suite; nothing is asserted about
//! speed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::node::{ApplyMsg, Node, NodeConfig, TraceEvent};
use raft::storage::FileStorage;
use raft::{Config, Entry, EntryKind, Index, NodeId, Role};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::timeout;

/// How long any one wait may take before the test fails.
const GUARD: Duration = Duration::from_secs(60);

/// What one node applied, per incarnation: each restart starts a new list (a restarted node
/// delivers the log again from index 1).
#[derive(Default)]
struct Applied {
    incarnations: Vec<Vec<Entry>>,
}

impl Applied {
    fn current(&self) -> &[Entry] {
        self.incarnations.last().map_or(&[], |v| v.as_slice())
    }
}

struct Cluster {
    ids: Vec<NodeId>,
    dirs: Vec<TempDir>,
    addrs: Vec<SocketAddr>,
    nodes: Vec<Option<Node>>,
    applied: Vec<Arc<Mutex<Applied>>>,
    /// The protocol events each node reported, across restarts.
    traces: Vec<Arc<Mutex<Vec<TraceEvent>>>>,
    /// Bumped whenever any node applies something.
    changed: watch::Sender<u64>,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut cluster = Cluster {
            ids,
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            addrs,
            nodes: (0..n).map(|_| None).collect(),
            applied: (0..n).map(|_| Arc::default()).collect(),
            traces: (0..n).map(|_| Arc::default()).collect(),
            changed: watch::Sender::new(0),
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            cluster.launch(i, listener);
        }
        cluster
    }

    /// Starts node `i` from its directory on `listener`.
    fn launch(&mut self, i: usize, listener: TcpListener) {
        let id = self.ids[i];
        let mut config = NodeConfig::new(Config::service(id, self.ids.clone()));
        config.deliver_noops = true;
        config.seed = Some(1000 + id);
        let (trace, mut traced) = tokio::sync::mpsc::unbounded_channel();
        config.trace = Some(trace);
        let events = self.traces[i].clone();
        tokio::spawn(async move {
            while let Some(event) = traced.recv().await {
                events.lock().unwrap().push(event);
            }
        });
        let storage = FileStorage::open(self.dirs[i].path()).unwrap();
        let peers = self.ids.iter().copied().zip(self.addrs.iter().copied());
        let (node, mut rx) = Node::spawn(config, storage, listener, peers).unwrap();
        self.nodes[i] = Some(node);
        let applied = self.applied[i].clone();
        applied.lock().unwrap().incarnations.push(Vec::new());
        let changed = self.changed.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                // These nodes never snapshot: only entries come.
                let ApplyMsg::Entry(entry) = msg else { panic!("a snapshot: {msg:?}") };
                applied.lock().unwrap().incarnations.last_mut().unwrap().push(entry);
                changed.send_modify(|n| *n += 1);
            }
        });
    }

    /// Restarts node `i` on its old address, from its directory.
    async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} still runs");
        let listener =
            TcpListener::bind(self.addrs[i]).await.expect("the killed node's port is free");
        self.launch(i, listener);
    }

    async fn kill(&mut self, i: usize) {
        self.nodes[i].take().expect("node runs").kill().await;
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node runs")
    }

    fn running(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    /// Waits until a running node leads, and returns its position.
    async fn wait_leader(&self) -> usize {
        let mut watches: Vec<_> = self.running().map(|(i, n)| (i, n.subscribe())).collect();
        let wait = async {
            loop {
                for (i, w) in &mut watches {
                    if w.borrow_and_update().role == Role::Leader {
                        return *i;
                    }
                }
                // Any change of any node's status.
                let changes = watches.iter_mut().map(|(_, w)| Box::pin(w.changed()));
                let _ = select_all(changes).await;
            }
        };
        timeout(GUARD, wait).await.expect("a leader is elected")
    }

    /// Waits until `pred` holds over what the nodes applied.
    async fn wait_applied(&self, what: &str, pred: impl Fn(&Cluster) -> bool) {
        let mut changed = self.changed.subscribe();
        let wait = async {
            loop {
                changed.borrow_and_update();
                if pred(self) {
                    return;
                }
                changed.changed().await.unwrap();
            }
        };
        timeout(GUARD, wait).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    fn applied_by(&self, i: usize) -> Vec<Entry> {
        self.applied[i].lock().unwrap().current().to_vec()
    }

    fn last_applied(&self, i: usize) -> Index {
        self.applied[i].lock().unwrap().current().last().map_or(0, |m| m.index)
    }

    /// Commits every command (each must be unique): proposes them on the leader, and
    /// proposes again, on whoever leads then, those that another leader's entries displaced.
    async fn commit_all(&self, commands: &[Vec<u8>]) {
        let mut missing: Vec<Vec<u8>> = commands.to_vec();
        while !missing.is_empty() {
            let leader = self.wait_leader().await;
            let node = self.node(leader);
            let mut last = None;
            for cmd in &missing {
                match node.propose(cmd.clone()) {
                    Ok((index, term)) => last = Some((index, term)),
                    Err(_) => break, // lost leadership: start over with the next leader
                }
            }
            if let Some((index, term)) = last {
                // Until the leader applied its last proposal, or it lost its term.
                self.wait_applied("the leader to apply its proposals", |c| {
                    c.last_applied(leader) >= index || c.node(leader).state() != (term, true)
                })
                .await;
            }
            let done: BTreeSet<Vec<u8>> = self
                .applied_by(leader)
                .into_iter()
                .filter(|m| m.kind == EntryKind::Normal)
                .map(|m| m.data)
                .collect();
            missing.retain(|c| !done.contains(c));
        }
    }

    /// Waits until every running node applied up to the leader's commit index, and checks that
    /// they all applied the same entries, each from index 1 without gaps.
    async fn converge(&self) -> Vec<Entry> {
        let leader = self.wait_leader().await;
        let commit = self.node(leader).status().commit_index;
        let running: Vec<usize> = self.running().map(|(i, _)| i).collect();
        self.wait_applied("every node to apply up to the commit index", |c| {
            running.iter().all(|&i| c.last_applied(i) >= commit)
        })
        .await;
        let reference = self.applied_by(running[0]);
        assert_gap_free(&reference);
        for &i in &running {
            let log = self.applied_by(i);
            assert_gap_free(&log);
            let n = commit as usize;
            assert_eq!(
                log[..n],
                reference[..n],
                "node {} applied another log than node {}",
                self.ids[i],
                self.ids[running[0]]
            );
        }
        reference[..commit as usize].to_vec()
    }
}

/// Resolves when the first future does (a small `select_all` for boxed futures).
async fn select_all<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Indexes 1, 2, 3, ... in order: every entry delivered, none twice.
fn assert_gap_free(log: &[Entry]) {
    for (i, m) in log.iter().enumerate() {
        assert_eq!(m.index, i as Index + 1, "applied out of order or with a gap");
    }
}

fn commands(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{prefix}-{i}").into_bytes()).collect()
}

fn normal_commands(log: &[Entry]) -> Vec<Vec<u8>> {
    log.iter().filter(|m| m.kind == EntryKind::Normal).map(|m| m.data.clone()).collect()
}

fn assert_contains_all(log: &[Entry], expected: &[Vec<u8>]) {
    let applied: BTreeSet<Vec<u8>> = normal_commands(log).into_iter().collect();
    for cmd in expected {
        assert!(applied.contains(cmd), "{} was not applied", String::from_utf8_lossy(cmd));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_and_replicates_a_thousand_commands_in_order_on_every_node() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let (term, is_leader) = cluster.node(leader).state();
    assert!(is_leader && term >= 1);
    for (i, node) in cluster.running() {
        if i != leader {
            assert!(!node.state().1, "two leaders");
        }
    }

    let cmds = commands("cmd", 1000);
    cluster.commit_all(&cmds).await;
    let log = cluster.converge().await;
    assert_contains_all(&log, &cmds);
    // The first entry of every term is the leader's no-op, never a command.
    assert_eq!(log[0].kind, EntryKind::Noop);
    assert!(log[0].data.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_restarts_from_its_directory_with_every_committed_entry() {
    let mut cluster = Cluster::start(3).await;
    let before = commands("before", 300);
    cluster.commit_all(&before).await;
    let committed_before = cluster.converge().await;

    // Kill the leader: no clean shutdown, no final sync.
    let old_leader = cluster.wait_leader().await;
    cluster.kill(old_leader).await;

    // The others elect a new leader and go on.
    let during = commands("during", 300);
    cluster.commit_all(&during).await;
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, old_leader);

    // What the killed leader left on disk agrees with what the cluster committed.
    let on_disk = {
        let storage = FileStorage::open(cluster.dirs[old_leader].path()).unwrap();
        raft::storage::Storage::initial_state(&storage).unwrap().entries
    };
    assert!(!on_disk.is_empty());

    // The old leader comes back from its directory, catches up and applies everything again
    // from index 1.
    cluster.restart(old_leader).await;
    let after = commands("after", 100);
    cluster.commit_all(&after).await;
    let log = cluster.converge().await;

    let restarted = cluster.applied_by(old_leader);
    assert_eq!(restarted[..log.len()], log[..]);
    assert_eq!(log[..committed_before.len()], committed_before[..], "a committed entry changed");
    assert_contains_all(&log, &before);
    assert_contains_all(&log, &during);
    assert_contains_all(&log, &after);
    for e in &on_disk {
        let m = &log[e.index as usize - 1];
        assert_eq!((e.index, e.term, &e.data), (m.index, m.term, &m.data));
    }
    // The first incarnation of the old leader applied a prefix of the final log.
    let first_life = cluster.applied[old_leader].lock().unwrap().incarnations[0].clone();
    assert!(first_life.len() >= committed_before.len());
    assert_eq!(first_life[..], log[..first_life.len()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_report_votes_higher_terms_and_each_leaderships_first_commit() {
    let mut cluster = Cluster::start(3).await;
    cluster.commit_all(&commands("a", 20)).await;
    let leader = cluster.wait_leader().await;
    let (term, _) = cluster.node(leader).state();
    let leader_id = cluster.ids[leader];
    let trace = |cluster: &Cluster, i: usize| cluster.traces[i].lock().unwrap().clone();

    // The followers that elected it report their votes, and the terms they took on the way.
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let granted = followers
        .iter()
        .filter(|&&i| {
            trace(&cluster, i).iter().any(|e| match *e {
                TraceEvent::VoteGranted { term: t, candidate, candidate_last, own_last } => {
                    // §5.4.1: the winner's log was at least as up-to-date as the voter's.
                    let (Some(c), Some(o)) = (candidate_last, own_last) else { return false };
                    t == term && candidate == leader_id && (c.1, c.0) >= (o.1, o.0)
                }
                _ => false,
            })
        })
        .count();
    assert!(granted >= 1, "a majority of 3 needs one vote besides the leader's own");
    for &i in &followers {
        for event in trace(&cluster, i) {
            if let TraceEvent::HigherTerm { message, message_term, term_after, .. } = event {
                if message != "PreVote" {
                    assert_eq!(term_after, message_term, "node {i} adopts a {message}'s term");
                }
            }
        }
    }
    // The leadership began, then its commit index first moved to an entry of its own term
    // (§5.4.2), once.
    let leadership: Vec<TraceEvent> = trace(&cluster, leader)
        .into_iter()
        .filter(|e| match e {
            TraceEvent::BecameLeader { term: t, .. } | TraceEvent::LeaderCommit { term: t, .. } => {
                *t == term
            }
            _ => false,
        })
        .collect();
    assert!(
        matches!(leadership[..], [TraceEvent::BecameLeader { .. }, TraceEvent::LeaderCommit { entry_term, .. }] if entry_term == term),
        "{leadership:?}"
    );

    // Killed, the leadership ends; restarted, the old leader learns the new term from its
    // successor.
    cluster.kill(leader).await;
    let stepped_down = |events: &[TraceEvent]| matches!(events.last(), Some(TraceEvent::SteppedDown { term: t, .. }) if *t == term);
    // The events arrive through a channel: give its reader a moment.
    let wait = async {
        while !stepped_down(&trace(&cluster, leader)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(GUARD, wait).await.expect("the killed leader's last event is stepped-down");
    cluster.commit_all(&commands("b", 20)).await;
    let successor = cluster.wait_leader().await;
    let (new_term, _) = cluster.node(successor).state();
    assert!(new_term > term);
    let before_restart = trace(&cluster, leader).len();
    cluster.restart(leader).await;
    cluster.commit_all(&commands("c", 20)).await;
    cluster.converge().await;
    let adopted = trace(&cluster, leader)[before_restart..].iter().any(|e| {
        matches!(e, TraceEvent::HigherTerm { term_before, term_after, .. }
            if *term_before == term && *term_after == new_term)
    });
    assert!(adopted, "{:?}", trace(&cluster, leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_killed_and_restarted_keeps_every_committed_entry() {
    let mut cluster = Cluster::start(3).await;
    let cmds = commands("x", 200);
    cluster.commit_all(&cmds).await;
    let committed = cluster.converge().await;

    for i in 0..3 {
        cluster.kill(i).await;
    }
    for i in 0..3 {
        cluster.restart(i).await;
    }
    // A new command makes the new leader commit (and everyone apply) the old log again.
    cluster.commit_all(&commands("y", 1)).await;
    let log = cluster.converge().await;
    assert_eq!(log[..committed.len()], committed[..]);
    for i in 0..3 {
        assert_eq!(cluster.applied[i].lock().unwrap().incarnations.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_frees_the_ports_and_syncs_the_storage() {
    let mut cluster = Cluster::start(3).await;
    cluster.commit_all(&commands("z", 50)).await;
    let committed = cluster.converge().await;
    for i in 0..3 {
        let node = cluster.nodes[i].take().unwrap();
        node.shutdown().await.expect("a clean shutdown");
        // The port can be bound again at once.
        drop(TcpListener::bind(cluster.addrs[i]).await.expect("the port is free"));
    }
    // Everything the nodes held is on disk.
    for i in 0..3 {
        let storage = FileStorage::open(cluster.dirs[i].path()).unwrap();
        let state = raft::storage::Storage::initial_state(&storage).unwrap();
        assert!(state.entries.len() >= committed.len());
        for (e, m) in state.entries.iter().zip(&committed) {
            assert_eq!((e.index, e.term, &e.data), (m.index, m.term, &m.data));
        }
    }
}
