//! A replicated register service that embeds the `raft` library: the smallest service the
//! harness can torture with `gauntlet run --system exec` (see `docs/systems.md`).
//!
//! It keeps integer registers and strings by key, replicated with [`raft::node::Node`] on
//! durable [`FileStorage`], and serves the operations of the client protocol
//! (`docs/protocol.md`) over JSON Lines: `read`, `write` and `cas` on registers, `get`, `put`
//! and `append` on strings, with sessions (a retried request with the same `client` and `seq`
//! applies once). Every operation, reads too, goes
//! through the log, so every answer is linearizable. A follower answers `not-leader` with the
//! leader's id and client address.
//!
//! ```sh
//! cargo build --release -p harness --example register_service
//! gauntlet run --system exec --exec-links frames --exec 'target/release/examples/register_service
//!     --id {id} --listen {listen} --client {client} --data-dir {data_dir} --peers {peers}
//!     --peer-clients {peer_clients} --tick-ms {tick_ms}'
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use raft::node::{ApplyMsg, Node, NodeConfig};
use raft::storage::FileStorage;
use raft::{Config, NodeId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// How long a request waits for its entry to apply before answering `info`.
const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
struct Args {
    /// This node's id.
    #[arg(long)]
    id: NodeId,
    /// The address to listen on for the peers.
    #[arg(long)]
    listen: SocketAddr,
    /// The address to listen on for clients.
    #[arg(long)]
    client: SocketAddr,
    /// Where the Raft log lives.
    #[arg(long)]
    data_dir: PathBuf,
    /// ID=ADDR,...: how to reach each other peer.
    #[arg(long, value_parser = parse_pairs)]
    peers: BTreeMap<NodeId, SocketAddr>,
    /// ID=ADDR,...: the other peers' client addresses, for leader hints.
    #[arg(long, value_parser = parse_pairs, default_value = "")]
    peer_clients: BTreeMap<NodeId, SocketAddr>,
    /// The real time of one protocol tick, in milliseconds.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// A bug of the library's catalogue, to prove that the harness catches it.
    #[arg(long)]
    bug: Option<raft::Bug>,
}

fn parse_pairs(s: &str) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (id, addr) = pair.split_once('=').ok_or(format!("{pair:?}: expected ID=ADDR"))?;
            let id = id.parse().map_err(|e| format!("{pair:?}: bad id: {e}"))?;
            Ok((id, addr.parse().map_err(|e| format!("{pair:?}: bad address: {e}"))?))
        })
        .collect()
}

/// A request of the client protocol, as the log holds it.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Request {
    #[serde(default)]
    id: Value,
    client: Option<u64>,
    seq: Option<u64>,
    op: String,
    key: String,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    to: Option<i64>,
}

/// A key's value: a register's integer, or a string.
#[derive(Clone, Debug, PartialEq)]
enum Held {
    Int(i64),
    Str(String),
}

/// The replicated state: the values and, per client, its last request's seq and answer.
#[derive(Default)]
struct Registers {
    values: HashMap<String, Held>,
    sessions: HashMap<u64, (u64, Value)>,
}

impl Registers {
    /// Applies a committed request; returns its answer (without `id`).
    fn apply(&mut self, req: &Request) -> Value {
        if let (Some(client), Some(seq)) = (req.client, req.seq) {
            match self.sessions.get(&client) {
                Some((last, answer)) if *last == seq => return answer.clone(),
                Some((last, _)) if *last > seq => {
                    return json!({"type": "info", "error": "stale-request"})
                }
                _ => {}
            }
            let answer = self.apply_op(req);
            self.sessions.insert(client, (seq, answer.clone()));
            return answer;
        }
        self.apply_op(req)
    }

    fn apply_op(&mut self, req: &Request) -> Value {
        let ok = json!({"type": "ok"});
        let wrong_type = json!({"type": "fail", "error": "wrong-type"});
        let key = req.key.clone();
        let held = self.values.get(&key).cloned();
        let int = |v: Option<Held>| match v {
            None => Ok(None),
            Some(Held::Int(i)) => Ok(Some(i)),
            Some(Held::Str(_)) => Err(()),
        };
        let string = |v: Option<Held>| match v {
            None => Ok(String::new()),
            Some(Held::Str(s)) => Ok(s),
            Some(Held::Int(_)) => Err(()),
        };
        let mut set = |v: Option<i64>| match v {
            Some(v) => self.values.insert(key.clone(), Held::Int(v)),
            None => self.values.remove(&key),
        };
        match (req.op.as_str(), &req.value) {
            ("read", _) => int(held).map_or(wrong_type, |v| json!({"type": "ok", "value": v})),
            ("write", Value::Null) => {
                set(None);
                ok
            }
            ("write", Value::Number(n)) if n.is_i64() => {
                set(n.as_i64());
                ok
            }
            ("cas", _) => match int(held) {
                Err(()) => wrong_type,
                Ok(v) if v != req.from => json!({"type": "fail", "error": "cas-mismatch"}),
                Ok(_) => {
                    set(req.to);
                    ok
                }
            },
            ("get", _) => string(held).map_or(wrong_type, |v| json!({"type": "ok", "value": v})),
            ("put", Value::String(v)) => {
                self.values.insert(key, Held::Str(v.clone()));
                ok
            }
            ("append", Value::String(v)) => match string(held) {
                Err(()) => wrong_type,
                Ok(s) => {
                    self.values.insert(key, Held::Str(s + v));
                    ok
                }
            },
            (op, value) => json!({"type": "fail", "error": "bad-request",
                                  "message": format!("no op {op:?} with value {value}")}),
        }
    }
}

/// Requests proposed by this node, waiting for their entry: index -> (term, answer channel).
type Waiters = Arc<Mutex<HashMap<u64, (u64, oneshot::Sender<Value>)>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut ids: Vec<NodeId> = args.peers.keys().copied().collect();
    ids.push(args.id);
    ids.sort_unstable();
    #[allow(unused_mut)]
    let mut raft = Config::service(args.id, ids);
    if let Some(bug) = args.bug {
        #[cfg(feature = "bugs")]
        {
            raft.bug = Some(bug);
        }
        #[cfg(not(feature = "bugs"))]
        anyhow::bail!("--bug {bug}: built without the `bugs` feature");
    }
    let mut config = NodeConfig::new(raft);
    config.tick = Duration::from_millis(args.tick_ms);
    let storage = FileStorage::open(&args.data_dir)
        .with_context(|| format!("opening the log in {}", args.data_dir.display()))?;
    let (node, applied) = Node::bind(config, storage, args.listen, args.peers.clone()).await?;
    let node = Arc::new(node);
    let clients = TcpListener::bind(args.client)
        .await
        .with_context(|| format!("listening for clients on {}", args.client))?;

    let waiters: Waiters = Arc::default();
    tokio::spawn(apply_loop(applied, waiters.clone()));
    let hints = Arc::new(args.peer_clients);
    loop {
        tokio::select! {
            accepted = clients.accept() => {
                let (conn, _) = accepted.context("accepting a client")?;
                tokio::spawn(serve(conn, node.clone(), waiters.clone(), hints.clone()));
            }
            _ = node.stopped() => anyhow::bail!("the raft node stopped"),
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    node.shutdown().await?;
    Ok(())
}

/// Applies committed entries in order, answering the requests this node proposed.
async fn apply_loop(mut applied: mpsc::Receiver<ApplyMsg>, waiters: Waiters) {
    let mut registers = Registers::default();
    while let Some(msg) = applied.recv().await {
        // No node of this service snapshots, so none is ever delivered.
        let ApplyMsg::Entry(entry) = msg else { unreachable!("a snapshot: {msg:?}") };
        // Every node proposes only well-formed requests.
        let req: Request = serde_json::from_slice(&entry.data).expect("a request in the log");
        let answer = registers.apply(&req);
        if let Some((term, tx)) = waiters.lock().unwrap().remove(&entry.index) {
            // Another leader's entry took the index: this request can never apply.
            let answer = if term == entry.term {
                answer
            } else {
                json!({"type": "fail", "error": "superseded"})
            };
            let _ = tx.send(answer);
        }
    }
}

/// Serves one client connection: a request per line, an answer per line.
async fn serve(
    conn: TcpStream,
    node: Arc<Node>,
    waiters: Waiters,
    hints: Arc<BTreeMap<NodeId, SocketAddr>>,
) {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let id = req.id.clone();
                let mut answer = handle(req, &node, &waiters, &hints).await;
                answer["id"] = id;
                answer
            }
            Err(e) => {
                json!({"id": null, "type": "fail", "error": "bad-request", "message": e.to_string()})
            }
        };
        if write.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Proposes a request and waits for its entry to apply.
async fn handle(
    req: Request,
    node: &Node,
    waiters: &Waiters,
    hints: &BTreeMap<NodeId, SocketAddr>,
) -> Value {
    let command = serde_json::to_vec(&req).expect("a request serializes");
    // The lock is held across propose and insert, so that the entry cannot apply before its
    // waiter is in place.
    let (index, rx) = {
        let mut waiting = waiters.lock().unwrap();
        match node.propose(command) {
            Ok((index, term)) => {
                let (tx, rx) = oneshot::channel();
                waiting.insert(index, (term, tx));
                (index, rx)
            }
            Err(e @ raft::ProposeError::Overloaded { .. }) => {
                // Nothing was appended: a definite failure.
                return json!({"type": "fail", "error": "busy", "message": e.to_string()});
            }
            Err(raft::ProposeError::NotLeader { leader }) => {
                let mut answer = json!({"type": "fail", "error": "not-leader"});
                if let Some(leader) = leader {
                    answer["leader"] = json!(leader);
                    if let Some(addr) = hints.get(&leader) {
                        answer["leader_addr"] = json!(addr.to_string());
                    }
                }
                return answer;
            }
        }
    };
    match tokio::time::timeout(APPLY_TIMEOUT, rx).await {
        Ok(Ok(answer)) => answer,
        // The entry may still commit later: the outcome is unknown.
        _ => {
            waiters.lock().unwrap().remove(&index);
            json!({"type": "info", "error": "timeout"})
        }
    }
}
