//! The tokio runtime: a [`Node`] drives the protocol core ([`RawNode`]) with real time, a
//! [`Storage`] and the TCP [`Transport`].
//!
//! A node owns its core behind a mutex, so that [`Node::start`] appends a command and returns at
//! once, from any thread. A driver task does the rest:
//!
//! - it ticks the core every [`NodeConfig::tick`] (10 ms by default; the core's
//!   [`Config::lab`] and [`Config::service`] profiles assume it);
//! - it steps every message that arrived, and wakes at once for a new proposal;
//! - it carries out each [`Ready`](crate::Ready): the hard state and all the entries of the
//!   ready are written and made durable with one sync on a dedicated storage thread (while it
//!   runs, new proposals accumulate in the core and go to disk together in the next sync: group
//!   commit); messages go out only after the sync, except a leader's AppendEntries and
//!   heartbeats, which go out before its own write is durable (thesis §10.2.1); committed
//!   entries are delivered in order as [`ApplyMsg`]s on the channel returned at start.
//!
//! A storage or transport failure stops the node with a [`NodeError`]; nothing that was not
//! synced has been acknowledged to anyone by then.
//!
//! # Snapshots
//!
//! A service that has applied up to an index hands the node its state there with
//! [`Node::snapshot`]; the node replaces its log up to that index by the snapshot, in memory and
//! in storage (which drops the log it covers). A follower the leader can no longer bring up to
//! date with entries gets the leader's snapshot: it arrives on the apply channel as
//! [`ApplyMsg::Snapshot`], in order with the entries (the service replaces its state with it;
//! the entries after it follow). A restarted node (a new [`Node`] on the same storage)
//! delivers its latest snapshot first, then the log after it as it learns what is committed.
//!
//! # Example
//!
//! A cluster of three nodes on loopback commits a command:
//!
//! ```
//! use raft::node::{Node, NodeConfig};
//! use raft::storage::MemStorage;
//! use raft::{Config, Role};
//! use tokio::net::TcpListener;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Bind every listener first (port 0: any free port), so that each node knows the others.
//! let mut listeners = Vec::new();
//! for _ in 0..3 {
//!     listeners.push(TcpListener::bind("127.0.0.1:0").await?);
//! }
//! let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr()).collect::<Result<_, _>>()?;
//! let peers: Vec<(u64, _)> = (1..=3).zip(addrs).collect();
//!
//! let mut nodes = Vec::new();
//! let mut applied = Vec::new();
//! for (listener, (id, _)) in listeners.into_iter().zip(&peers) {
//!     let config = NodeConfig::new(Config::service(*id, vec![1, 2, 3]));
//!     let (node, apply) = Node::spawn(config, MemStorage::new(), listener, peers.clone())?;
//!     nodes.push(node);
//!     applied.push(apply);
//! }
//!
//! // Wait for a leader: follow every node's status.
//! let mut watches: Vec<_> = nodes.iter().map(|n| n.subscribe()).collect();
//! let leader = loop {
//!     if let Some(i) = watches.iter_mut().position(|w| w.borrow_and_update().role == Role::Leader) {
//!         break i;
//!     }
//!     let [a, b, c] = &mut watches[..] else { unreachable!() };
//!     tokio::select! {
//!         _ = a.changed() => {}
//!         _ = b.changed() => {}
//!         _ = c.changed() => {}
//!     }
//! };
//!
//! let (index, _term, is_leader) = nodes[leader].start(b"x = 1".to_vec());
//! assert!(is_leader);
//! // Every node applies it, at the same index (the leader's no-op entry of its term comes first
//! // and is not delivered as a command).
//! for apply in &mut applied {
//!     let msg = apply.recv().await.expect("the node runs");
//!     let entry = msg.entry().expect("an entry, not a snapshot");
//!     assert_eq!((entry.index, entry.data.as_slice()), (index, &b"x = 1"[..]));
//! }
//! for node in nodes {
//!     node.shutdown().await?;
//! }
//! # Ok(())
//! # }
//! ```

mod driver;
mod io;
mod trace;

pub use self::trace::{LogPosition, TraceEvent};

use std::collections::{HashMap, VecDeque};
use std::io as std_io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::core::{
    Config, ConfigError, Entry, Index, NodeId, ProposeError, RawNode, Role, Snapshot,
    SnapshotError, Status, Term,
};
use crate::storage::{Storage, StorageError};
use crate::transport::{Transport, TransportConfig};

use self::driver::Driver;
use self::io::StorageThread;
use self::trace::Tracer;

/// How a [`Node`] runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The protocol core's configuration (id, peers, timing in ticks, extensions).
    pub raft: Config,
    /// The real time of one tick. Default 10 ms, which the core's profiles assume.
    pub tick: Duration,
    /// The transport's tuning.
    pub transport: TransportConfig,
    /// The seed of the core's election timeouts; `None` draws one at random.
    pub seed: Option<u64>,
    /// Capacity of the channel of [`ApplyMsg`]s (at least 1). When the service falls this far
    /// behind, the node waits for it. Default 4096.
    pub apply_capacity: usize,
    /// Whether committed no-op entries (the entry a new leader appends, §8) are delivered too,
    /// as [`ApplyMsg`]s of kind [`EntryKind::Noop`](crate::EntryKind::Noop) with an empty
    /// command. Off by default: a service then sees only its commands, with gaps in the indexes
    /// where no-ops are. A service that records every index it applied turns it on.
    pub deliver_noops: bool,
    /// Where to report [`TraceEvent`]s (votes granted, higher terms stepped, each leadership's
    /// first commit) for offline checking of the protocol's rules. None by default.
    pub trace: Option<mpsc::UnboundedSender<TraceEvent>>,
}

impl NodeConfig {
    /// The defaults around the core's `raft` configuration.
    pub fn new(raft: Config) -> NodeConfig {
        NodeConfig {
            raft,
            tick: Duration::from_millis(10),
            transport: TransportConfig::default(),
            seed: None,
            apply_capacity: 4096,
            deliver_noops: false,
            trace: None,
        }
    }
}

/// What the service applies, in log order: committed entries, and snapshots that replace its
/// state (the seed labs' `ApplyMsg`, whose `CommandValid` and `SnapshotValid` are the two
/// variants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyMsg {
    /// A committed entry: its index, the term in which it was proposed, its kind
    /// ([`EntryKind::Normal`](crate::EntryKind::Normal) for a command;
    /// [`EntryKind::Noop`](crate::EntryKind::Noop) only with
    /// [`NodeConfig::deliver_noops`]) and the command as given to [`Node::start`] (empty for a
    /// no-op).
    Entry(Entry),
    /// A snapshot: the service's state after applying every entry up to `index` (whose term
    /// is `term`), as some service handed it to [`Node::snapshot`]. The service replaces its
    /// state with `data`; the next entry delivered is `index + 1`. It comes first after a
    /// restart from a snapshot, and when the leader's snapshot brought this node up to date.
    Snapshot(Snapshot),
}

impl ApplyMsg {
    /// The index of the entry, or the last index the snapshot covers.
    pub fn index(&self) -> Index {
        match self {
            ApplyMsg::Entry(e) => e.index,
            ApplyMsg::Snapshot(s) => s.index,
        }
    }

    /// The entry, if this is one.
    pub fn entry(&self) -> Option<&Entry> {
        match self {
            ApplyMsg::Entry(e) => Some(e),
            ApplyMsg::Snapshot(_) => None,
        }
    }
}

/// Why a node could not start, or why it stopped. The cause, where there is one, is the
/// error's [`source`](std::error::Error::source) (`{:#}` of an `anyhow` error shows the chain).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The core's configuration is invalid, or the storage holds a log the core refuses.
    #[error("cannot start the protocol core")]
    Config(#[from] ConfigError),
    /// Reading or writing the storage failed. Everything acknowledged before is durable.
    #[error("storage failed")]
    Storage(#[from] StorageError),
    /// The listening address could not be bound.
    #[error("cannot listen for peers on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std_io::Error,
    },
    /// The transport stopped delivering inbound messages.
    #[error("the transport's inbound channel closed")]
    TransportClosed,
    /// The storage thread could not be started.
    #[error("cannot start the storage thread")]
    StorageThread(#[source] std_io::Error),
    /// The storage thread ended while the node ran (it panicked).
    #[error("the storage thread ended unexpectedly")]
    StorageThreadLost,
    /// The driver task panicked or was cancelled.
    #[error("the driver task failed: {0}")]
    Driver(String),
}

/// Why [`Node::read_index`] gave no index. The read had no effect either way: ask again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadIndexError {
    /// This node neither leads nor knows a leader to ask.
    #[error("no leader known to confirm the read")]
    NoLeader,
    /// The node's role, term or leader changed before the read was confirmed.
    #[error("the leadership changed before the read was confirmed")]
    LeaderChanged,
    /// The node stopped.
    #[error("the node stopped")]
    Stopped,
}

/// Reads waiting for their read state, by request number.
type WaitingReads = HashMap<u64, oneshot::Sender<Result<Index, ReadIndexError>>>;

/// An error and its causes, as one line (`cause: its cause: ...`).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let chain: Vec<String> =
        std::iter::successors(Some(e), |e| e.source()).map(|e| e.to_string()).collect();
    chain.join(": ")
}

/// How the node is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopMode {
    Run,
    /// Finish the ready in progress, close the transport, sync and release the storage.
    Shutdown,
    /// Stop at once, as a crash would: nothing more sent, applied or synced.
    Kill,
}

/// The core and whether the driver still runs it.
struct Core {
    raw: RawNode,
    stopped: bool,
    /// A snapshot the service took of entries it was handed before the core counted them
    /// applied (their ready was still being written): taken once the core has.
    pending_snapshot: Option<(Index, Vec<u8>)>,
    /// Reads asked of the core and not answered yet.
    reads: WaitingReads,
    next_read: u64,
}

/// What the node's handle and its driver task share.
struct Shared {
    id: NodeId,
    core: Mutex<Core>,
    /// Wakes the driver for a new proposal.
    wake: Notify,
    /// The real time of one tick, in nanoseconds ([`Node::set_tick`]).
    tick_nanos: AtomicU64,
    status: watch::Sender<Status>,
    stop: watch::Sender<StopMode>,
    /// True once the driver has stopped.
    done: watch::Sender<bool>,
    /// True once the driver has also released the transport and the storage.
    released: watch::Sender<bool>,
}

impl Shared {
    fn tick(&self) -> Duration {
        Duration::from_nanos(self.tick_nanos.load(Ordering::Relaxed))
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // The core does not panic on any input; should it ever, its state is still the best
        // there is, and the driver's error reports the panic.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the status of `core` (locked by the caller) when the role, term, leader or
    /// vote changed. A change of leadership fails the waiting reads: the leader that was to
    /// confirm them may be gone, and the service asks again.
    fn publish_core(&self, core: &mut Core) {
        let status = core.raw.status();
        let leadership = {
            let old = self.status.borrow();
            (old.role, old.term, old.leader) != (status.role, status.term, status.leader)
        };
        if leadership {
            for (_, waiter) in core.reads.drain() {
                let _ = waiter.send(Err(ReadIndexError::LeaderChanged));
            }
        }
        self.publish(&status);
    }

    /// Publishes `status` to subscribers when the role, term, leader or vote changed.
    fn publish(&self, status: &Status) {
        self.status.send_if_modified(|old| {
            let changed = (old.role, old.term, old.leader, old.vote)
                != (status.role, status.term, status.leader, status.vote);
            if changed {
                *old = *status;
            }
            changed
        });
    }

    fn mark_stopped(&self) {
        let status = {
            let mut core = self.lock();
            core.stopped = true;
            for (_, waiter) in core.reads.drain() {
                let _ = waiter.send(Err(ReadIndexError::Stopped));
            }
            stopped_status(core.raw.status())
        };
        self.publish(&status);
        self.done.send_replace(true);
    }
}

/// The status a stopped node reports: it leads nothing and knows no leader.
fn stopped_status(status: Status) -> Status {
    Status { role: Role::Follower, leader: None, ..status }
}

/// Marks the node stopped and its resources released when the driver task ends, even by a
/// panic.
struct DoneGuard(Arc<Shared>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.mark_stopped();
        self.0.released.send_replace(true);
    }
}

/// A running Raft peer: the protocol core driven by a tokio task, with durable storage and a
/// TCP transport. See the [module documentation](self) for how it works and an example.
///
/// Dropping a `Node` kills it (see [`Node::kill`]) without waiting; [`Node::shutdown`] stops it
/// cleanly and waits until its port and storage are released. Both take `&self`, so a service
/// can share the node (in an `Arc`) between its tasks and still stop it.
pub struct Node {
    shared: Arc<Shared>,
    /// The driver task, until someone waits for it.
    driver: Mutex<Option<JoinHandle<Result<(), NodeError>>>>,
    local_addr: SocketAddr,
}

impl Node {
    /// Binds `listen` for the peers' traffic and starts the node; see [`Node::spawn`].
    pub async fn bind<S: Storage + 'static>(
        config: NodeConfig,
        storage: S,
        listen: impl ToSocketAddrs + std::fmt::Debug,
        peers: impl IntoIterator<Item = (NodeId, SocketAddr)>,
    ) -> Result<(Node, mpsc::Receiver<ApplyMsg>), NodeError> {
        let addr = format!("{listen:?}");
        let listener =
            TcpListener::bind(listen).await.map_err(|source| NodeError::Bind { addr, source })?;
        Node::spawn(config, storage, listener, peers)
    }

    /// Starts the node `config.raft.id` from what `storage` holds, accepting the peers'
    /// connections on `listener` and reaching each peer at its address in `peers` (an entry
    /// for this node itself is ignored). Returns the node and the channel of committed entries.
    ///
    /// Reads the storage's initial state on the calling thread.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn spawn<S: Storage + 'static>(
        config: NodeConfig,
        storage: S,
        listener: TcpListener,
        peers: impl IntoIterator<Item = (NodeId, SocketAddr)>,
    ) -> Result<(Node, mpsc::Receiver<ApplyMsg>), NodeError> {
        let id = config.raft.id;
        let initial = storage.initial_state()?;
        let seed = config.seed.unwrap_or_else(|| rand::random::<u64>() ^ id);
        let early_bug = config.raft.bug_of_kind(|bug| {
            matches!(bug, crate::Bug::AckBeforeSync | crate::Bug::VoteBeforeSync)
        });
        let raw = RawNode::restore(
            config.raft,
            initial.hard_state,
            initial.snapshot,
            initial.entries,
            seed,
        )?;
        let status = raw.status();
        tracing::info!(
            id,
            term = status.term,
            snapshot_index = status.snapshot_index,
            last_index = status.last_index,
            "starting the node"
        );
        let storage = StorageThread::start(format!("raft-storage-{id}"), Box::new(storage))?;
        let (transport, inbox) = Transport::start(id, listener, peers, config.transport);
        let local_addr = transport.local_addr();
        let (apply, applied) = mpsc::channel(config.apply_capacity.max(1));
        let (stop, stop_rx) = watch::channel(StopMode::Run);
        let tick = config.tick.max(Duration::from_millis(1));
        let shared = Arc::new(Shared {
            id,
            tick_nanos: AtomicU64::new(tick.as_nanos() as u64),
            core: Mutex::new(Core {
                raw,
                stopped: false,
                pending_snapshot: None,
                reads: HashMap::new(),
                next_read: 0,
            }),
            wake: Notify::new(),
            status: watch::Sender::new(status),
            stop,
            done: watch::Sender::new(false),
            released: watch::Sender::new(false),
        });
        let driver = Driver {
            shared: shared.clone(),
            inbox,
            transport,
            storage,
            apply,
            stop: stop_rx,
            deliver_noops: config.deliver_noops,
            next_tick: tokio::time::Instant::now() + tick,
            delivered: 0,
            applicable: 0,
            backlog: false,
            undelivered: VecDeque::new(),
            apply_closed: false,
            tracer: Tracer::new(config.trace),
            early_bug,
        };
        let guard = DoneGuard(shared.clone());
        let driver = tokio::spawn(async move {
            let _guard = guard;
            driver.run().await
        });
        Ok((Node { shared, driver: Mutex::new(Some(driver)), local_addr }, applied))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The address this node listens on for its peers.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Proposes `command` and returns at once: `(index, term, true)` where it will be
    /// committed if it ever is, or `(0, current term, false)` if this node is not the leader
    /// or refused the command under flow control (see [`Node::propose`]). The seed labs'
    /// `Start`.
    pub fn start(&self, command: Vec<u8>) -> (Index, Term, bool) {
        match self.propose(command) {
            Ok((index, term)) => (index, term, true),
            Err(_) => (0, self.state().0, false),
        }
    }

    /// Proposes `command`: on the leader, appends it to the log and returns the index and term
    /// at which it will be committed, if it ever is (another leader may overwrite it: watch
    /// which entry the [`ApplyMsg`] at that index carries). A follower, or a stopped node,
    /// answers [`ProposeError::NotLeader`] with the leader it knows of; a leader whose
    /// uncommitted entries reached the configured bounds answers [`ProposeError::Overloaded`].
    pub fn propose(&self, command: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        let result = {
            let mut core = self.shared.lock();
            if core.stopped {
                return Err(ProposeError::NotLeader { leader: None });
            }
            core.raw.propose(command)
        };
        if result.is_ok() {
            self.shared.wake.notify_one();
        }
        result
    }

    /// The service's state after applying every entry up to `index` is `data` (the seed labs'
    /// `Snapshot(index, snapshot)`): the node replaces its log up to `index` with it, and its
    /// storage drops the entries it covers once the snapshot is durable. `index` must have been
    /// delivered to the service; if the node has not yet counted it applied (its ready is still
    /// being written), the snapshot is taken as soon as it has. Refused with
    /// [`SnapshotError::Stale`] when the log is already compacted at or past `index`, and with
    /// [`SnapshotError::NotApplied`] for an index never delivered.
    pub fn snapshot(&self, index: Index, data: Vec<u8>) -> Result<(), SnapshotError> {
        {
            let mut core = self.shared.lock();
            let status = core.raw.status();
            if index <= status.snapshot_index {
                return Err(SnapshotError::Stale { index, snapshot_index: status.snapshot_index });
            }
            if index > status.commit_index {
                return Err(SnapshotError::NotApplied { index, applied: status.applied_index });
            }
            if index > status.applied_index {
                // Delivered, but its ready is still being written: the driver takes it after.
                if core.pending_snapshot.as_ref().is_none_or(|(pending, _)| *pending < index) {
                    core.pending_snapshot = Some((index, data));
                }
                return Ok(());
            }
            core.raw.snapshot(index, data)?;
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Asks for a linearizable read without a log entry (ReadIndex, thesis §6.4): resolves to
    /// an index once the leader has confirmed, after this call, that it still leads (or holds
    /// its lease, with [`ReadOnly::LeaseBased`](crate::ReadOnly)). A state that has applied
    /// that index answers the read linearizably: wait until the service has applied it (the
    /// [`ApplyMsg`]s), then read the service's state. Works on followers too: they ask their
    /// leader.
    ///
    /// The read fails if no leader is known, if the leadership changes before it is
    /// confirmed, or if the node stops; a read whose confirmation is lost on the network
    /// waits for the caller's own timeout.
    pub async fn read_index(&self) -> Result<Index, ReadIndexError> {
        let answer = {
            let mut core = self.shared.lock();
            if core.stopped {
                return Err(ReadIndexError::Stopped);
            }
            core.next_read += 1;
            let request = core.next_read;
            if core.raw.read_index(request).is_err() {
                return Err(ReadIndexError::NoLeader);
            }
            if core.reads.len() >= 1024 {
                // Reads whose callers gave up (a confirmation lost on the way) go, so that a
                // long leadership does not gather them.
                core.reads.retain(|_, waiter| !waiter.is_closed());
            }
            let (tx, rx) = oneshot::channel();
            core.reads.insert(request, tx);
            rx
        };
        self.shared.wake.notify_one();
        answer.await.unwrap_or(Err(ReadIndexError::Stopped))
    }

    /// Changes the real time of one tick from the next tick on (at least 1 ms). All the core's
    /// timing (elections, heartbeats, check-quorum, leases) is counted in ticks, so a longer
    /// tick is a clock that runs slow: for tests of clock drift, as the torture harness's
    /// `clock` fault does.
    pub fn set_tick(&self, tick: Duration) {
        let tick = tick.max(Duration::from_millis(1));
        self.shared.tick_nanos.store(tick.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The current term and whether this node believes it is the leader. The seed labs'
    /// `GetState`.
    pub fn state(&self) -> (Term, bool) {
        let status = self.status();
        (status.term, status.role == Role::Leader)
    }

    /// The core's current status. A stopped node reports itself a follower that knows no
    /// leader.
    pub fn status(&self) -> Status {
        let core = self.shared.lock();
        let status = core.raw.status();
        if core.stopped {
            stopped_status(status)
        } else {
            status
        }
    }

    /// Follows the node's status: the receiver sees a new value whenever the role, the term,
    /// the known leader or the vote changes (not at every commit), and a last one when the
    /// node stops.
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Whether the node has stopped (shut down, killed, or failed).
    pub fn is_stopped(&self) -> bool {
        *self.shared.done.borrow()
    }

    /// Resolves when the node has stopped: after [`Node::shutdown`] or [`Node::kill`] began, or
    /// when a storage or transport failure stopped it. Then call [`Node::shutdown`] to learn
    /// why.
    pub async fn stopped(&self) {
        let mut done = self.shared.done.subscribe();
        // The sender lives as long as `self`.
        let _ = done.wait_for(|done| *done).await;
    }

    /// Stops the node cleanly: finishes the ready in progress, stops ticking, closes the
    /// transport (its port is free when this returns), syncs and releases the storage.
    /// Returns the error that stopped the node earlier, if one did (to the first caller of
    /// `shutdown` or `kill` only; later callers just wait for the release).
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.shared.stop.send_if_modified(|mode| {
            let run = *mode == StopMode::Run;
            if run {
                *mode = StopMode::Shutdown;
            }
            run
        });
        self.join().await
    }

    /// Stops the node at once, as a crash would: nothing more is sent, applied or made
    /// durable, and there is no final sync (what was written but not synced may be lost).
    /// Returns once the transport's port and the storage are released, so that a new node can
    /// start on them. For tests of recovery.
    pub async fn kill(&self) {
        self.shared.stop.send_replace(StopMode::Kill);
        if let Err(e) = self.join().await {
            tracing::debug!(error = with_causes(&e), "the node had failed before it was killed");
        }
    }

    async fn join(&self) -> Result<(), NodeError> {
        let driver = self.driver.lock().unwrap_or_else(PoisonError::into_inner).take();
        match driver {
            Some(driver) => match driver.await {
                Ok(result) => result,
                Err(e) => Err(NodeError::Driver(e.to_string())),
            },
            None => {
                // Another caller waits for the driver; wait for it to release everything.
                let mut released = self.shared.released.subscribe();
                // The sender lives as long as `self`.
                let _ = released.wait_for(|r| *r).await;
                Ok(())
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let running = self.driver.get_mut().map_or(true, |d| d.is_some());
        if running {
            self.shared.stop.send_replace(StopMode::Kill);
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.shared.id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
