//! The client side of the node: a JSON Lines listener (the protocol is in `docs/protocol.md`),
//! the table of requests waiting for their log entry, and the applier that runs the state
//! machine and answers them.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use raft::node::{ApplyMsg, Node, ReadIndexError};
use raft::transport::WarningLimiter;
use raft::{EntryKind, Index, NodeId, ProposeError, Term};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::events::AppliedLog;
use super::kv::{Command, Kv, Op, Outcome, Value};

/// How long the leader waits for a proposed request's entry to be applied before it answers
/// `timeout` (indefinite: the entry may still commit later).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often expired requests are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_millis(50);
/// The longest request line accepted; a longer one closes the connection.
const MAX_LINE: u64 = 1 << 20;
/// The longest first line of a connection that must authenticate: an `auth` request is short,
/// and a client without the token must not make the node buffer a whole request line.
const MAX_AUTH_LINE: u64 = 4 << 10;
/// At most this many applied entries are handled in one batch (one write to applied.jsonl).
const MAX_APPLY_BATCH: usize = 4096;

/// The bounds on what clients can make the node hold (`docs/node.md`).
#[derive(Clone, Debug)]
pub struct ClientLimits {
    /// Client connections open at once; one more is answered `busy` and closed.
    pub max_connections: usize,
    /// A connection with no request outstanding that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Requests read from one connection whose answers have not been written back yet. At the
    /// bound the node stops reading from that connection until answers drain, so a client
    /// that pipelines without reading its answers is held back by TCP, not buffered.
    pub max_outstanding: usize,
    /// When set, the first request on every connection must be `auth` with this token.
    pub token: Option<String>,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            max_outstanding: 256,
            token: None,
        }
    }
}

/// When the node's service snapshots its state, so that the Raft log and its storage stay
/// bounded (`docs/node.md`): once either bound is reached since the last snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Entries applied (0: no bound by count).
    pub every_entries: u64,
    /// Bytes of commands applied (0: no bound by size).
    pub every_bytes: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy { every_entries: 10_000, every_bytes: 64 << 20 }
    }
}

impl SnapshotPolicy {
    /// Whether `entries` entries of `bytes` bytes applied since the last snapshot call for one.
    pub fn due(&self, entries: u64, bytes: u64) -> bool {
        (self.every_entries > 0 && entries >= self.every_entries)
            || (self.every_bytes > 0 && bytes >= self.every_bytes)
    }
}

/// How the node answers reads (`read`, `get`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadPath {
    /// Through the log, as writes: an entry per read.
    Log,
    /// ReadIndex (thesis §6.4): the leader confirms its leadership with a heartbeat round
    /// (or, with `lease`, its lease), and the node answers once it has applied the read's
    /// index. Followers serve reads too, asking their leader.
    #[default]
    ReadIndex,
    /// As `read-index`, with the core's lease reads (`raft::ReadOnly::LeaseBased`).
    Lease,
    /// The catalogue's `stale-read`: the leader answers from its own state, unconfirmed.
    #[value(skip)]
    Stale,
}

impl ReadPath {
    /// The value `--reads` takes for it.
    pub fn name(self) -> &'static str {
        match self {
            ReadPath::Log => "log",
            ReadPath::ReadIndex => "read-index",
            ReadPath::Lease => "lease",
            ReadPath::Stale => "stale",
        }
    }
}

/// A request waiting for the entry it proposed.
struct Waiter {
    term: Term,
    id: Option<u64>,
    conn: mpsc::UnboundedSender<Vec<u8>>,
    deadline: Instant,
}

/// What the connections, the applier and the sweeper share.
pub struct Server {
    node: Node,
    kv: Mutex<Kv>,
    /// Proposed requests by log index (one proposal per index on this node).
    pending: Mutex<BTreeMap<Index, Waiter>>,
    /// Each peer's client address, for not-leader hints.
    peer_clients: HashMap<NodeId, SocketAddr>,
    shutting_down: AtomicBool,
    reads: ReadPath,
    /// The last index the applier has run, for reads waiting on their read index.
    applied: watch::Sender<Index>,
    limits: ClientLimits,
    /// One permit per connection that may be open.
    connection_slots: Arc<Semaphore>,
    warnings: WarningLimiter,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    pub fn new(
        node: Node,
        peer_clients: HashMap<NodeId, SocketAddr>,
        reads: ReadPath,
        limits: ClientLimits,
    ) -> Server {
        Server {
            node,
            kv: Mutex::new(Kv::default()),
            pending: Mutex::new(BTreeMap::new()),
            peer_clients,
            shutting_down: AtomicBool::new(false),
            reads,
            applied: watch::Sender::new(0),
            connection_slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            warnings: WarningLimiter::default(),
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Refuses new requests and answers every waiting one `shutting-down` (indefinite: its
    /// entry may still commit).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let pending = std::mem::take(&mut *lock(&self.pending));
        for w in pending.into_values() {
            let _ = w.conn.send(info(w.id, "shutting-down"));
        }
    }

    /// Accepts client connections until the task is aborted.
    pub async fn accept(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let Ok(slot) = self.connection_slots.clone().try_acquire_owned() else {
                        let limit = self.limits.max_connections;
                        // Said without waiting: a client that does not read gets nothing.
                        let _ = stream.try_write(&fail(None, "busy", Some("too many clients")));
                        if let Some(held_back) = self.warnings.admit() {
                            tracing::warn!(%peer, limit, held_back,
                                "refusing a client: the connection limit is reached");
                        }
                        continue;
                    };
                    tracing::debug!(%peer, "client connected");
                    tokio::spawn(self.clone().serve(stream, peer, slot));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a client failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// One client connection: requests are read in order; answers go out as they are ready
    /// (a client may pipeline requests and match answers by id). Each request read takes one
    /// unit of the connection's credit, which comes back when its answer has been written: at
    /// `max_outstanding` the connection is not read until answers drain. `slot` is the
    /// connection's place under the connection limit, given back when it closes.
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
    ) {
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let max_outstanding = self.limits.max_outstanding.max(1);
        let credit = Arc::new(Semaphore::new(max_outstanding));
        let writer_credit = credit.clone();
        let write_timeout = self.limits.idle_timeout;
        let writer = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            while let Some(first) = rx.recv().await {
                buf.extend_from_slice(&first);
                let mut answers = 1;
                // Everything already answered goes out in one write.
                while let Ok(more) = rx.try_recv() {
                    buf.extend_from_slice(&more);
                    answers += 1;
                }
                // A client that stops reading its answers is closed after the idle timeout;
                // closing the credit ends the reader, which waits for it.
                match tokio::time::timeout(write_timeout, write.write_all(&buf)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return writer_credit.close(),
                    Err(_) => {
                        tracing::info!(%peer, "closing a client connection that reads no answers");
                        return writer_credit.close();
                    }
                }
                writer_credit.add_permits(answers);
                buf.clear();
            }
        });
        let mut reader = BufReader::new(read);
        let mut line = Vec::with_capacity(256);
        let mut authenticated = self.limits.token.is_none();
        'requests: loop {
            line.clear();
            // One unit of credit for the answer to the next request.
            let Ok(unit) = credit.acquire().await else { break };
            unit.forget();
            let max_line = if authenticated { MAX_LINE } else { MAX_AUTH_LINE };
            let ended = loop {
                let left = max_line + 1 - line.len() as u64;
                let mut limited = (&mut reader).take(left);
                // `read_until` is cancel-safe: bytes read before a timeout stay in `line`.
                let read = limited.read_until(b'\n', &mut line);
                match tokio::time::timeout(self.limits.idle_timeout, read).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break true,
                    Ok(Ok(_)) if line.last() == Some(&b'\n') => break false,
                    Ok(Ok(_)) if line.len() as u64 > max_line => {
                        let _ = tx.send(fail(None, "bad-request", Some("request line too long")));
                        if let Some(held_back) = self.warnings.admit() {
                            tracing::warn!(%peer, max_line, held_back,
                                "closing a client connection: request line too long");
                        }
                        break 'requests;
                    }
                    Ok(Ok(_)) => continue,
                    // Idle: nothing outstanding (the unit just taken aside) and nothing sent;
                    // or the writer gave up on a client that reads nothing.
                    Err(_)
                        if credit.is_closed()
                            || credit.available_permits() + 1 >= max_outstanding =>
                    {
                        let idle = self.limits.idle_timeout;
                        tracing::debug!(%peer, ?idle, "closing an idle client connection");
                        break 'requests;
                    }
                    Err(_) => continue,
                }
            };
            // A last request without its newline is still a request.
            if line.iter().all(u8::is_ascii_whitespace) {
                credit.add_permits(1);
            } else if !authenticated {
                authenticated = self.authenticate(&line, peer, &tx);
                if !authenticated {
                    break;
                }
            } else {
                self.handle(&line, &tx);
            }
            if ended {
                break;
            }
        }
        drop(tx);
        // Answers still pending go out when their entries apply; the writer ends when the last
        // sender (held by waiters) is gone.
        let _ = writer.await;
        drop(slot);
    }

    /// Checks a connection's first request against the token; answers it either way. Returns
    /// whether the connection may go on.
    fn authenticate(
        &self,
        line: &[u8],
        peer: SocketAddr,
        conn: &mpsc::UnboundedSender<Vec<u8>>,
    ) -> bool {
        let request = serde_json::from_slice::<AuthRequest>(line).ok();
        let id = request.as_ref().and_then(|r| r.id);
        let expected = self.limits.token.as_deref().unwrap_or_default();
        match request {
            Some(AuthRequest { op, token: Some(token), .. })
                if op == "auth" && same_secret(token.as_bytes(), expected.as_bytes()) =>
            {
                let _ = conn.send(line_of(format!("{{\"id\":{},\"type\":\"ok\"}}", id_json(id))));
                true
            }
            request => {
                let why = match request {
                    Some(AuthRequest { op, .. }) if op == "auth" => "wrong token",
                    _ => "the first request must be auth with the client token",
                };
                let _ = conn.send(fail(id, "unauthorized", Some(why)));
                if let Some(held_back) = self.warnings.admit() {
                    tracing::warn!(%peer, held_back, "closing a client connection: {why}");
                }
                false
            }
        }
    }

    /// Handles one request line; the answer goes to `conn` now or when its entry applies.
    fn handle(self: &Arc<Self>, line: &[u8], conn: &mpsc::UnboundedSender<Vec<u8>>) {
        let (id, cmd) = match parse_request(line) {
            Ok(request) => request,
            Err(BadRequest { id, why }) => {
                let _ = conn.send(fail(id, "bad-request", Some(&why)));
                return;
            }
        };
        if self.shutting_down.load(Ordering::SeqCst) {
            let _ = conn.send(info(id, "shutting-down"));
            return;
        }
        if cmd.op.is_read() {
            match self.reads {
                ReadPath::Stale if self.node.state().1 => {
                    // The deliberate bug: answer from this node's state, which may lag behind
                    // the cluster (or belong to a deposed leader), unconfirmed.
                    let outcome = lock(&self.kv).read_directly(&cmd.op);
                    let _ = conn.send(answer(id, &outcome));
                    return;
                }
                ReadPath::ReadIndex | ReadPath::Lease => {
                    tokio::spawn(self.clone().read(id, cmd.op, conn.clone()));
                    return;
                }
                _ => {}
            }
        }
        let bytes = cmd.encode();
        // The pending table stays locked across the proposal, so that the applier cannot see
        // the entry before its waiter is registered.
        let mut pending = lock(&self.pending);
        match self.node.propose(bytes) {
            Ok((index, term)) => {
                let waiter = Waiter {
                    term,
                    id,
                    conn: conn.clone(),
                    deadline: Instant::now() + REQUEST_TIMEOUT,
                };
                if let Some(old) = pending.insert(index, waiter) {
                    // An earlier proposal at this index was cut off the log by this new one.
                    let _ = old.conn.send(superseded(old.id, None, None));
                }
            }
            Err(ProposeError::NotLeader { leader }) => {
                drop(pending);
                let addr = leader.and_then(|l| self.peer_clients.get(&l));
                let _ = conn.send(not_leader(id, leader, addr));
            }
            Err(e @ ProposeError::Overloaded { .. }) => {
                // Nothing was proposed: a definite failure, which the client may try again.
                drop(pending);
                let _ = conn.send(fail(id, "busy", Some(&e.to_string())));
            }
        }
    }

    /// A read without the log: its read index confirmed, then answered from the state once
    /// the applier has run that index (`timeout` if that takes longer than a request may).
    async fn read(self: Arc<Self>, id: Option<u64>, op: Op, conn: mpsc::UnboundedSender<Vec<u8>>) {
        let confirmed = async {
            let index = self.node.read_index().await?;
            let mut applied = self.applied.subscribe();
            // The sender lives in `self`: the wait ends only when the index is applied.
            let _ = applied.wait_for(|&a| a >= index).await;
            Ok::<_, ReadIndexError>(lock(&self.kv).read_directly(&op))
        };
        let reply = match tokio::time::timeout(REQUEST_TIMEOUT, confirmed).await {
            Ok(Ok(outcome)) => answer(id, &outcome),
            // Nothing was read: the client may ask the leader, when one is known.
            Ok(Err(ReadIndexError::NoLeader | ReadIndexError::LeaderChanged)) => {
                let leader = self.node.status().leader.filter(|&l| l != self.node.id());
                not_leader(id, leader, leader.and_then(|l| self.peer_clients.get(&l)))
            }
            Ok(Err(ReadIndexError::Stopped)) => info(id, "shutting-down"),
            Err(_) => info(id, "timeout"),
        };
        let _ = conn.send(reply);
    }

    /// Runs the state machine over the committed entries, logs them in applied.jsonl and
    /// answers their waiters; takes a snapshot of the state as `snapshots` says, and restores
    /// the snapshots the node delivers. Ends when the node stops.
    pub async fn apply(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<ApplyMsg>,
        mut log: AppliedLog,
        snapshots: SnapshotPolicy,
    ) {
        let mut batch = Vec::with_capacity(256);
        let mut answers: Vec<(Index, Term, Outcome)> = Vec::with_capacity(256);
        // What was applied since the last snapshot: entries, and their commands' bytes.
        let (mut since_entries, mut since_bytes) = (0u64, 0u64);
        let mut applied = 0;
        'batches: while rx.recv_many(&mut batch, MAX_APPLY_BATCH).await > 0 {
            // Entries up to here are in this node's own durable log (the others were delivered
            // while its write of them was in progress); applied.jsonl says which.
            let persisted = self.node.status().persisted_index;
            {
                let mut kv = lock(&self.kv);
                for msg in batch.drain(..) {
                    let e = match msg {
                        ApplyMsg::Entry(e) => e,
                        ApplyMsg::Snapshot(snapshot) => {
                            match Kv::decode_state(&snapshot.data) {
                                Ok(state) => *kv = state,
                                Err(e) => {
                                    // Only a broken peer or disk makes this: serve nothing
                                    // rather than a state that is not the log's.
                                    let index = snapshot.index;
                                    tracing::error!(index, error = %e, "cannot restore the snapshot; no more entries are applied");
                                    break 'batches;
                                }
                            }
                            // The first message of a restart is the node's own snapshot; any
                            // other at or below what was applied takes the state back.
                            let back = applied > 0 && snapshot.index < applied;
                            if back {
                                tracing::error!(
                                    index = snapshot.index,
                                    applied,
                                    "a snapshot took the state back"
                                );
                            }
                            log.push_snapshot(snapshot.index, snapshot.term, &snapshot.data, back);
                            applied = snapshot.index;
                            (since_entries, since_bytes) = (0, 0);
                            continue;
                        }
                    };
                    let noop = e.kind == EntryKind::Noop;
                    let (outcome, session) = if noop {
                        (Outcome::Ok(None), None)
                    } else {
                        match Command::decode(&e.data) {
                            Ok(cmd) => {
                                let session = cmd.session;
                                (kv.apply(cmd), session)
                            }
                            Err(err) => {
                                tracing::error!(index = e.index, error = %err, "bad command in the log");
                                (Outcome::BadCommand, None)
                            }
                        }
                    };
                    let durable = e.index <= persisted;
                    log.push(e.index, e.term, noop, &e.data, session, durable);
                    answers.push((e.index, e.term, outcome));
                    applied = e.index;
                    since_entries += 1;
                    since_bytes += e.data.len() as u64;
                }
                if snapshots.due(since_entries, since_bytes) {
                    (since_entries, since_bytes) = (0, 0);
                    match self.node.snapshot(applied, kv.encode_state()) {
                        Ok(()) => tracing::debug!(index = applied, "snapshot taken"),
                        // A newer one (the leader's) is already in place.
                        Err(e) => tracing::debug!(index = applied, error = %e, "no snapshot"),
                    }
                }
            }
            if let Err(e) = log.flush() {
                tracing::error!(error = %e, "cannot write applied.jsonl");
            }
            self.applied.send_replace(applied);
            let leader = self.node.status().leader;
            let mut pending = lock(&self.pending);
            for (index, term, outcome) in answers.drain(..) {
                let Some(w) = pending.remove(&index) else { continue };
                let reply = if w.term == term {
                    answer(w.id, &outcome)
                } else {
                    // Another leader's entry took the index: this request's entry, which
                    // existed only at (index, w.term), can never commit.
                    superseded(w.id, leader, leader.and_then(|l| self.peer_clients.get(&l)))
                };
                let _ = w.conn.send(reply);
            }
        }
        if let Err(e) = log.flush() {
            tracing::error!(error = %e, "cannot write applied.jsonl");
        }
    }

    /// Answers `timeout` to requests that waited too long, and once a second reports the
    /// warnings about clients that were held back, until the task is aborted.
    pub async fn sweep(self: Arc<Self>) {
        let mut interval = tokio::time::interval(SWEEP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut summed = Instant::now();
        loop {
            interval.tick().await;
            let now = Instant::now();
            if now.duration_since(summed) >= Duration::from_secs(1) {
                summed = now;
                self.warnings.summarize("client connections");
            }
            let mut pending = lock(&self.pending);
            let expired: Vec<Index> =
                pending.iter().filter(|(_, w)| w.deadline <= now).map(|(&i, _)| i).collect();
            for index in expired {
                if let Some(w) = pending.remove(&index) {
                    let _ = w.conn.send(info(w.id, "timeout"));
                }
            }
        }
    }
}

/// Why a request line was refused (answered `bad-request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad request: {why}")]
pub struct BadRequest {
    /// The request's id, when one could be read, so that the answer names it.
    pub id: Option<u64>,
    /// What is wrong with it.
    pub why: String,
}

/// Reads one request line (`docs/protocol.md`) as the node does: its id and the command it
/// asks for.
///
/// ```
/// use harness::node::kv::{Command, Op};
/// use harness::node::server::parse_request;
///
/// let (id, cmd) = parse_request(br#"{"id":7,"op":"read","key":"x"}"#).unwrap();
/// assert_eq!((id, cmd), (Some(7), Command { session: None, op: Op::Read { key: "x".into() } }));
/// assert_eq!(parse_request(br#"{"id":8,"op":"read"}"#).unwrap_err().id, Some(8));
/// ```
pub fn parse_request(line: &[u8]) -> Result<(Option<u64>, Command), BadRequest> {
    let req: Request = serde_json::from_slice(line).map_err(|e| BadRequest {
        id: serde_json::from_slice::<IdOnly>(line).ok().and_then(|r| r.id),
        why: e.to_string(),
    })?;
    let id = req.id;
    let cmd = req.into_command().map_err(|why| BadRequest { id, why: why.to_string() })?;
    Ok((id, cmd))
}

/// A request line.
#[derive(Deserialize)]
struct Request {
    id: Option<u64>,
    client: Option<u64>,
    seq: Option<u64>,
    op: String,
    key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Option<JsonValue>>,
    #[serde(default, deserialize_with = "present")]
    from: Option<Option<JsonValue>>,
    #[serde(default, deserialize_with = "present")]
    to: Option<Option<JsonValue>>,
}

/// A connection's first request when the node requires a client token.
#[derive(Deserialize)]
struct AuthRequest {
    id: Option<u64>,
    op: String,
    token: Option<String>,
}

/// Compares a secret in time that depends on its length only, not on where it differs.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given.iter().zip(expected).fold(0, |d, (a, b)| d | (a ^ b)) == 0
}

/// Just the id of a request that does not parse, to answer it.
#[derive(Deserialize)]
struct IdOnly {
    id: Option<u64>,
}

/// A value in a request: an integer (registers) or a string (kv).
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum JsonValue {
    Int(i64),
    Str(String),
}

/// Tells a field given as `null` (Some(None)) from an absent one (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<JsonValue>>, D::Error> {
    Option::<JsonValue>::deserialize(d).map(Some)
}

impl Request {
    fn into_command(self) -> Result<Command, &'static str> {
        let session = match (self.client, self.seq) {
            (Some(c), Some(s)) => Some((c, s)),
            (None, None) => None,
            _ => return Err("client and seq go together"),
        };
        let key = self.key.ok_or("missing key")?;
        let int = |v: Option<Option<JsonValue>>| -> Result<Option<i64>, &'static str> {
            match v.flatten() {
                None => Ok(None),
                Some(JsonValue::Int(i)) => Ok(Some(i)),
                Some(JsonValue::Str(_)) => Err("register values are integers or null"),
            }
        };
        let string = |v: Option<Option<JsonValue>>| -> Result<String, &'static str> {
            match v.flatten() {
                Some(JsonValue::Str(s)) => Ok(s),
                _ => Err("kv values are strings"),
            }
        };
        let op = match self.op.as_str() {
            "read" => Op::Read { key },
            "write" => Op::Write { key, value: int(self.value)? },
            "cas" => {
                if self.to.is_none() {
                    return Err("cas needs to");
                }
                Op::Cas { key, from: int(self.from)?, to: int(self.to)? }
            }
            "get" => Op::Get { key },
            "put" => Op::Put { key, value: string(self.value)? },
            "append" => Op::Append { key, value: string(self.value)? },
            _ => return Err("unknown op: expected read, write, cas, get, put or append"),
        };
        Ok(Command { session, op })
    }
}

// Answers are formatted by hand: they are few shapes, and this is the hot path.

fn id_json(id: Option<u64>) -> String {
    id.map_or_else(|| "null".to_string(), |id| id.to_string())
}

fn line_of(body: String) -> Vec<u8> {
    let mut v = body.into_bytes();
    v.push(b'\n');
    v
}

fn answer(id: Option<u64>, outcome: &Outcome) -> Vec<u8> {
    match outcome {
        Outcome::Ok(None) => line_of(format!("{{\"id\":{},\"type\":\"ok\"}}", id_json(id))),
        Outcome::Ok(Some(Value::Int(v))) => {
            line_of(format!("{{\"id\":{},\"type\":\"ok\",\"value\":{v}}}", id_json(id)))
        }
        Outcome::Ok(Some(Value::Str(s))) => {
            let s = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
            line_of(format!("{{\"id\":{},\"type\":\"ok\",\"value\":{s}}}", id_json(id)))
        }
        Outcome::CasMismatch => fail(id, "cas-mismatch", None),
        Outcome::WrongType => fail(id, "wrong-type", None),
        Outcome::BadCommand => {
            fail(id, "bad-request", Some("the command in the log is not understood"))
        }
        Outcome::StaleSequence => info(id, "stale-request"),
    }
}

fn fail(id: Option<u64>, error: &str, message: Option<&str>) -> Vec<u8> {
    match message {
        Some(m) => {
            let m = serde_json::to_string(m).unwrap_or_else(|_| "\"\"".into());
            line_of(format!(
                "{{\"id\":{},\"type\":\"fail\",\"error\":\"{error}\",\"message\":{m}}}",
                id_json(id)
            ))
        }
        None => {
            line_of(format!("{{\"id\":{},\"type\":\"fail\",\"error\":\"{error}\"}}", id_json(id)))
        }
    }
}

fn info(id: Option<u64>, error: &str) -> Vec<u8> {
    line_of(format!("{{\"id\":{},\"type\":\"info\",\"error\":\"{error}\"}}", id_json(id)))
}

fn with_hint(
    error: &str,
    id: Option<u64>,
    leader: Option<NodeId>,
    addr: Option<&SocketAddr>,
) -> Vec<u8> {
    let mut s = format!("{{\"id\":{},\"type\":\"fail\",\"error\":\"{error}\"", id_json(id));
    if let Some(l) = leader {
        s.push_str(&format!(",\"leader\":{l}"));
    }
    if let Some(a) = addr {
        s.push_str(&format!(",\"leader_addr\":\"{a}\""));
    }
    s.push('}');
    line_of(s)
}

fn not_leader(id: Option<u64>, leader: Option<NodeId>, addr: Option<&SocketAddr>) -> Vec<u8> {
    with_hint("not-leader", id, leader, addr)
}

fn superseded(id: Option<u64>, leader: Option<NodeId>, addr: Option<&SocketAddr>) -> Vec<u8> {
    with_hint("superseded", id, leader, addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_paths_are_named_as_reads_takes_them() {
        use clap::ValueEnum;
        for path in ReadPath::value_variants() {
            let value = path.to_possible_value().unwrap();
            assert_eq!(path.name(), value.get_name());
            assert_eq!(ReadPath::from_str(path.name(), false), Ok(*path));
        }
    }

    fn parse(s: &str) -> Result<Command, String> {
        parse_request(s.as_bytes()).map(|(_, cmd)| cmd).map_err(|e| e.why)
    }

    #[test]
    fn requests_parse_into_commands() {
        assert_eq!(
            parse(r#"{"id":1,"client":2,"seq":3,"op":"write","key":"k","value":5}"#),
            Ok(Command {
                session: Some((2, 3)),
                op: Op::Write { key: "k".into(), value: Some(5) }
            })
        );
        assert_eq!(
            parse(r#"{"id":1,"op":"cas","key":"k","from":null,"to":1}"#),
            Ok(Command { session: None, op: Op::Cas { key: "k".into(), from: None, to: Some(1) } })
        );
        assert_eq!(
            parse(r#"{"id":1,"op":"append","key":"k","value":"x"}"#),
            Ok(Command { session: None, op: Op::Append { key: "k".into(), value: "x".into() } })
        );
        assert!(parse(r#"{"id":1,"op":"cas","key":"k","from":1}"#).is_err());
        assert!(parse(r#"{"id":1,"op":"put","key":"k","value":1}"#).is_err());
        assert!(parse(r#"{"id":1,"op":"write","key":"k","value":"x"}"#).is_err());
        assert!(parse(r#"{"id":1,"op":"frob","key":"k"}"#).is_err());
        assert!(parse(r#"{"id":1,"client":1,"op":"read","key":"k"}"#).is_err());
        assert!(parse(r#"{"id":1,"op":"read"}"#).is_err());
    }

    #[test]
    fn answers_are_json_lines() {
        let v: serde_json::Value =
            serde_json::from_slice(&answer(Some(4), &Outcome::Ok(Some(Value::Str("a\"b".into())))))
                .unwrap();
        assert_eq!(v, serde_json::json!({"id": 4, "type": "ok", "value": "a\"b"}));
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&not_leader(None, Some(2), Some(&addr))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": null, "type": "fail", "error": "not-leader", "leader": 2, "leader_addr": "127.0.0.1:9"})
        );
        let v: serde_json::Value = serde_json::from_slice(&info(Some(1), "timeout")).unwrap();
        assert_eq!(v, serde_json::json!({"id": 1, "type": "info", "error": "timeout"}));
    }

    /// A single-peer node, leading, behind a server; the test feeds the applier itself.
    async fn server() -> (Arc<Server>, mpsc::Receiver<ApplyMsg>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = raft::NodeConfig {
            deliver_noops: true,
            ..raft::NodeConfig::new(raft::Config::service(1, vec![1]))
        };
        let (node, applied) =
            Node::spawn(config, raft::storage::MemStorage::new(), listener, [(1, addr)]).unwrap();
        let mut status = node.subscribe();
        tokio::time::timeout(
            Duration::from_secs(30),
            status.wait_for(|s| s.role == raft::Role::Leader),
        )
        .await
        .unwrap()
        .unwrap();
        let server = Server::new(node, HashMap::new(), ReadPath::Log, ClientLimits::default());
        (Arc::new(server), applied)
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gauntlet-server-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn parse_answer(line: Vec<u8>) -> serde_json::Value {
        serde_json::from_slice(&line).unwrap()
    }

    #[tokio::test]
    async fn a_request_is_answered_when_its_entry_applies_and_a_retry_applies_once() {
        let (server, applied) = server().await;
        let dir = temp_dir("apply");
        let log = AppliedLog::open(&dir).unwrap();
        let applier = tokio::spawn(server.clone().apply(applied, log, SnapshotPolicy::default()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let put = br#"{"id":1,"client":9,"seq":1,"op":"append","key":"k","value":"x"}"#;
        server.handle(put, &tx);
        assert_eq!(parse_answer(rx.recv().await.unwrap()), serde_json::json!({"id":1,"type":"ok"}));
        server.handle(put, &tx);
        assert_eq!(parse_answer(rx.recv().await.unwrap())["type"], "ok");
        server.handle(br#"{"id":2,"op":"get","key":"k"}"#, &tx);
        assert_eq!(
            parse_answer(rx.recv().await.unwrap()),
            serde_json::json!({"id":2,"type":"ok","value":"x"})
        );
        server.handle(br#"{"id":3,"op":"cas","key":"k","from":1,"to":2}"#, &tx);
        assert_eq!(parse_answer(rx.recv().await.unwrap())["error"], "wrong-type");
        server.handle(b"{not json", &tx);
        assert_eq!(parse_answer(rx.recv().await.unwrap())["error"], "bad-request");

        server.node().shutdown().await.unwrap();
        applier.await.unwrap();
        // The no-op and the four commands (the retry is an entry too), in order.
        let text = std::fs::read_to_string(dir.join("applied.jsonl")).unwrap();
        let indexes: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["index"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(indexes, vec![1, 2, 3, 4, 5]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn another_entry_at_the_index_is_superseded_and_a_slow_one_times_out() {
        let (server, _applied) = server().await;
        let dir = temp_dir("superseded");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let waiter = |term, id, deadline| Waiter { term, id: Some(id), conn: tx.clone(), deadline };
        {
            let mut pending = lock(&server.pending);
            let later = Instant::now() + Duration::from_secs(600);
            pending.insert(100, waiter(1, 7, later));
            pending.insert(200, waiter(1, 8, Instant::now()));
        }
        // The entry at 100 is of another term: another leader's.
        let (feed, entries) = mpsc::channel(4);
        let log = AppliedLog::open(&dir).unwrap();
        let applier = tokio::spawn(server.clone().apply(entries, log, SnapshotPolicy::default()));
        let noop = raft::Entry { index: 100, term: 2, kind: EntryKind::Noop, data: vec![] };
        feed.send(ApplyMsg::Entry(noop)).await.unwrap();
        let answer = parse_answer(rx.recv().await.unwrap());
        assert_eq!(
            (answer["id"].as_u64(), answer["error"].as_str()),
            (Some(7), Some("superseded"))
        );
        assert_eq!(answer["type"], "fail");

        let sweeper = tokio::spawn(server.clone().sweep());
        let answer = parse_answer(rx.recv().await.unwrap());
        assert_eq!(answer, serde_json::json!({"id":8,"type":"info","error":"timeout"}));
        sweeper.abort();
        drop(feed);
        applier.await.unwrap();
        server.node().shutdown().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
