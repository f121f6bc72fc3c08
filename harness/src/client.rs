//! Client workers: each is a Jepsen process that invokes one operation at a time against the
//! cluster and records the outcome, mapped as Jepsen and Maelstrom map them:
//!
//! - `ok`: the node answered with a result;
//! - `fail`: certainly no effect — a definite error (`not-leader` before proposing,
//!   `cas-mismatch`, `superseded`), or any error on a read;
//! - `info`: may or may not have taken effect — a timeout or a lost connection after the request
//!   was sent. The worker then continues as a new process (its number grows by the number of
//!   workers), because the old one may still have an operation in flight.
//!
//! A process numbers its operations 1, 2, 3, ... and sends (process, number) as the request's
//! client id and sequence number, so that the node applies a retried write once and the safety
//! checks can find each acknowledged write in the nodes' logs.
//!
//! Jepsen's clients never resend; real client libraries do. A *retrying* worker (odd-numbered
//! workers, when `--client-retries` is above 0) resends a request whose answer was lost or late
//! (150 ms: a client library's deadline), with
//! the same client id and sequence number, to the same node or the next one, up to that many
//! times within the operation's budget, as etcd's and most Raft services' clients do: this is
//! what exercises the node's sessions (exactly-once application). The history still holds one
//! invocation and one completion for the operation: with sessions, every copy that takes
//! effect is the same single effect, somewhere between the invocation and the completion, so
//! the linearizability checker reasons about it as one operation. If the node applied a
//! resent copy twice, the history shows it (a register written back to an older value, an
//! element appended twice).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use checker::{EventType, Process};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use workloads::generator::Op;

use crate::recorder::Recorder;

/// How long a client waits for an answer after sending a request. Longer than the node's own
/// request timeout, so that the node's `timeout` answer usually arrives first.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(2500);
/// How long a resending worker waits for an answer before it resends: a client library's
/// deadline, far shorter than a commit under faults, so that copies of one request are often in
/// the log together and the node's sessions must make all but one of them no-ops.
pub const RESEND_AFTER: Duration = Duration::from_millis(150);
/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How the clients speak to the nodes.
#[derive(Clone, Debug)]
pub enum Api {
    /// The project's client protocol (`docs/protocol.md`): JSON lines over TCP, presenting the
    /// token first when the nodes require one.
    Lines { token: Option<String> },
    /// etcd's v3 JSON gateway over HTTP.
    Etcd(crate::system::etcd::EtcdApi),
}

/// Where the clients find the nodes, and how they speak to them.
pub struct Directory {
    /// Each node's client address.
    pub nodes: BTreeMap<u64, SocketAddr>,
    /// The protocol the nodes speak.
    pub api: Api,
}

impl Directory {
    pub fn new(nodes: BTreeMap<u64, SocketAddr>, api: Api) -> Directory {
        assert!(!nodes.is_empty(), "a cluster has at least one node");
        Directory { nodes, api }
    }

    /// The node a worker sends its operations to first: workers spread evenly over the nodes,
    /// as Jepsen binds each client to one node, so that a node that wrongly believes it leads
    /// keeps being asked.
    fn home(&self, worker: u64) -> u64 {
        *self.nodes.keys().nth((worker % self.nodes.len() as u64) as usize).unwrap()
    }

    /// The node after `id`, to try when `id` gave no useful hint.
    fn next_after(&self, id: u64) -> u64 {
        self.nodes
            .range(id + 1..)
            .next()
            .or_else(|| self.nodes.iter().next())
            .map(|(&k, _)| k)
            .unwrap()
    }
}

/// What became of one operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ok(Value),
    Fail(String),
    Info(String),
}

struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

/// One client worker's connections and numbering.
pub struct Client {
    pub process: u64,
    home: u64,
    workers: u64,
    seq: u64,
    /// How many times a request whose answer was lost is resent (0: never, as Jepsen's
    /// clients).
    resends: u32,
    next_request_id: u64,
    conns: BTreeMap<u64, Conn>,
    /// The HTTP connections of this worker (etcd's gateway), kept apart from other workers'.
    http: reqwest::Client,
    dir: Arc<Directory>,
    rec: Recorder,
}

impl Client {
    /// Worker `worker` of `workers`; its first process number is `worker`.
    pub fn new(worker: u64, workers: u64, dir: Arc<Directory>, rec: Recorder) -> Client {
        Client {
            process: worker,
            home: dir.home(worker),
            workers,
            seq: 0,
            resends: 0,
            next_request_id: 0,
            conns: BTreeMap::new(),
            http: reqwest::Client::new(),
            dir,
            rec,
        }
    }

    /// The same worker, resending a request whose answer was lost, or did not come within
    /// [`RESEND_AFTER`], up to `resends` times.
    pub fn resending(self, resends: u32) -> Client {
        Client { resends, ..self }
    }

    /// How long to wait for the answer to one copy of a request.
    fn reply_timeout(&self, resends_left: u32) -> Duration {
        if resends_left > 0 {
            RESEND_AFTER
        } else {
            REPLY_TIMEOUT
        }
    }

    /// Invokes `op`, records its invocation and completion, and returns the outcome.
    pub async fn run(&mut self, op: &Op, budget: Duration) -> anyhow::Result<Outcome> {
        self.seq += 1;
        let process = Process::Client(self.process);
        let key = Some(op.key.as_str());
        self.rec.record(process, EventType::Invoke, op.f, key, op.value.clone(), None)?;
        let outcome = self.perform(op, budget).await;
        let is_read = matches!(op.f, "read" | "get");
        let (kind, value, error) = match &outcome {
            Outcome::Ok(v) => (EventType::Ok, v.clone(), None),
            Outcome::Fail(e) => (EventType::Fail, op.value.clone(), Some(e.clone())),
            // A read that may not have happened observed nothing: it is a certain failure.
            Outcome::Info(e) if is_read => (EventType::Fail, op.value.clone(), Some(e.clone())),
            Outcome::Info(e) => (EventType::Info, op.value.clone(), Some(e.clone())),
        };
        self.rec.record(process, kind, op.f, key, value, error)?;
        if kind == EventType::Info {
            // The operation may still take effect later: a new process takes over.
            self.process += self.workers;
            self.seq = 0;
        }
        Ok(outcome)
    }

    /// Tries the nodes, from the worker's home node on and following leader hints, until one
    /// takes the request or `budget` ends.
    async fn perform(&mut self, op: &Op, budget: Duration) -> Outcome {
        let deadline = Instant::now() + budget;
        let mut node = self.home;
        let mut last_error = String::from("no node reachable");
        let mut resends_left = self.resends;
        let mut lost: Option<String> = None;
        while Instant::now() < deadline {
            match self.request(node, op, self.reply_timeout(resends_left)).await {
                Attempt::Answer(reply) => match classify(&reply, op) {
                    // The node could not tell the outcome (its own timeout, a lost
                    // leadership): as lost as a lost answer.
                    Reply::Done(Outcome::Info(e)) if resends_left > 0 => {
                        resends_left -= 1;
                        node = self.resend(node, &mut lost, e);
                    }
                    Reply::Done(outcome) => {
                        let Some(e) = &lost else { return outcome };
                        self.rec.resent_then_answered();
                        return match outcome {
                            // A refusal of this copy says nothing of the copy whose answer
                            // was lost; only an outcome of applying the request does (once a
                            // copy is applied, the session makes every other copy a no-op).
                            Outcome::Fail(f) if f != "cas-mismatch" => Outcome::Info(e.clone()),
                            outcome => outcome,
                        };
                    }
                    // After a lost answer, a refusal does not make the operation a certain
                    // failure: an earlier copy may still be in some node's log.
                    Reply::Redirect(_) if lost.is_some() && resends_left == 0 => {
                        return Outcome::Info(lost.unwrap_or_default());
                    }
                    Reply::Redirect(hint) => {
                        last_error = "not-leader".into();
                        let next = hint
                            .filter(|&h| h != node)
                            .unwrap_or_else(|| self.dir.next_after(node));
                        if hint.is_none() {
                            // Nobody knows a leader yet: an election is under way.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        node = next;
                    }
                },
                Attempt::NotSent(e) => {
                    // Nothing reached the node: safe to try another.
                    last_error = e;
                    node = self.dir.next_after(node);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Attempt::Lost(e) if resends_left > 0 => {
                    resends_left -= 1;
                    node = self.resend(node, &mut lost, e);
                }
                Attempt::Lost(e) => return Outcome::Info(e),
            }
        }
        match lost {
            // A copy was sent and its answer lost: it may take effect.
            Some(e) => Outcome::Info(e),
            // Every attempt was refused before anything was proposed.
            None => Outcome::Fail(last_error),
        }
    }

    /// Notes that the answer to the copy sent to `node` was lost (`e`); returns where the same
    /// request (same client id and sequence number) goes next: the same node the first time,
    /// then the next one.
    fn resend(&mut self, node: u64, lost: &mut Option<String>, e: String) -> u64 {
        self.rec.resent();
        let next = if lost.is_some() { self.dir.next_after(node) } else { node };
        *lost = Some(e);
        next
    }

    async fn request(&mut self, node: u64, op: &Op, reply_timeout: Duration) -> Attempt {
        match &self.dir.api {
            Api::Etcd(api) => {
                let addr = self.dir.nodes[&node];
                crate::system::etcd::request(&self.http, api, addr, op, reply_timeout).await
            }
            Api::Lines { .. } => self.request_line(node, op, reply_timeout).await,
        }
    }

    /// One request in the project's client protocol.
    async fn request_line(&mut self, node: u64, op: &Op, reply_timeout: Duration) -> Attempt {
        self.next_request_id += 1;
        let id = self.next_request_id;
        let mut req =
            json!({"id": id, "client": self.process, "seq": self.seq, "op": op.f, "key": op.key});
        match op.f {
            "cas" => {
                req["from"] = op.value[0].clone();
                req["to"] = op.value[1].clone();
            }
            "write" | "put" | "append" => req["value"] = op.value.clone(),
            _ => {}
        }
        let mut line = req.to_string();
        line.push('\n');
        // The connection is put back only when the exchange went well: after any trouble the
        // stream may hold a late answer or half a line.
        let mut conn = match self.connection(node).await {
            Ok(conn) => conn,
            Err(e) => return Attempt::NotSent(e),
        };
        if let Err(e) = conn.writer.write_all(line.as_bytes()).await {
            // A write error may come after part of the line went out: the node may have it.
            return Attempt::Lost(format!("connection lost: {e}"));
        }
        let mut answer = String::new();
        loop {
            answer.clear();
            match timeout(reply_timeout, conn.reader.read_line(&mut answer)).await {
                Err(_) => return Attempt::Lost("timeout".into()),
                Ok(Ok(0)) | Ok(Err(_)) => return Attempt::Lost("connection lost".into()),
                Ok(Ok(_)) => {}
            }
            let Ok(reply) = serde_json::from_str::<Value>(&answer) else {
                return Attempt::Lost(format!("unreadable answer {:?}", answer.trim()));
            };
            // An answer to an earlier request of a timed-out process: skip it.
            if reply.get("id").and_then(Value::as_u64) == Some(id) {
                self.conns.insert(node, conn);
                return Attempt::Answer(reply);
            }
        }
    }

    /// Takes the connection to `node` out of the cache, or opens one.
    async fn connection(&mut self, node: u64) -> Result<Conn, String> {
        if let Some(conn) = self.conns.remove(&node) {
            return Ok(conn);
        }
        let addr = self.dir.nodes[&node];
        let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("connecting to node {node}: {e}")),
            Err(_) => return Err(format!("connecting to node {node}: timeout")),
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut conn = Conn { reader: BufReader::new(r), writer: w };
        if let Api::Lines { token: Some(token) } = &self.dir.api {
            let auth = present_token(&mut conn.reader, &mut conn.writer, token);
            match timeout(CONNECT_TIMEOUT, auth).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("authenticating to node {node}: {e}")),
                Err(_) => return Err(format!("authenticating to node {node}: timeout")),
            }
        }
        Ok(conn)
    }
}

/// Presents the client token on a new connection (the protocol's `auth` request) and reads the
/// node's answer.
pub async fn present_token<R, W>(reader: &mut R, writer: &mut W, token: &str) -> Result<(), String>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let auth = json!({"op": "auth", "token": token}).to_string() + "\n";
    writer.write_all(auth.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    reader.read_line(&mut answer).await.map_err(|e| e.to_string())?;
    match serde_json::from_str::<Value>(&answer) {
        Ok(reply) if reply["type"] == "ok" => Ok(()),
        _ => Err(format!("the token was refused: {}", answer.trim())),
    }
}

/// What became of one copy of a request.
pub(crate) enum Attempt {
    /// An answer, in the project's client protocol.
    Answer(Value),
    /// Nothing reached the node.
    NotSent(String),
    /// The request may have reached the node, and no answer came.
    Lost(String),
}

enum Reply {
    Done(Outcome),
    Redirect(Option<u64>),
}

/// Maps a node's answer to an outcome (or a redirect to another node).
fn classify(reply: &Value, op: &Op) -> Reply {
    let error = reply.get("error").and_then(Value::as_str).unwrap_or("").to_string();
    match reply.get("type").and_then(Value::as_str) {
        Some("ok") => {
            let value = match op.f {
                // A read answers the value, or nothing when the key is absent.
                "read" | "get" => reply.get("value").cloned().unwrap_or(Value::Null),
                _ => op.value.clone(),
            };
            Reply::Done(Outcome::Ok(value))
        }
        Some("fail") if error == "not-leader" => {
            Reply::Redirect(reply.get("leader").and_then(Value::as_u64))
        }
        Some("fail") => Reply::Done(Outcome::Fail(error)),
        _ => Reply::Done(Outcome::Info(if error.is_empty() {
            "unknown answer".into()
        } else {
            error
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &'static str, value: Value) -> Op {
        Op { f, key: "k0".into(), value }
    }

    #[test]
    fn answers_map_to_outcomes() {
        let done = |reply: Value, op: &Op| match classify(&reply, op) {
            Reply::Done(o) => o,
            Reply::Redirect(h) => panic!("unexpected redirect to {h:?}"),
        };
        let read = op("read", Value::Null);
        assert_eq!(done(json!({"id":1,"type":"ok","value":3}), &read), Outcome::Ok(json!(3)));
        assert_eq!(done(json!({"id":1,"type":"ok"}), &read), Outcome::Ok(Value::Null));
        let cas = op("cas", json!([1, 2]));
        assert_eq!(done(json!({"id":1,"type":"ok"}), &cas), Outcome::Ok(json!([1, 2])));
        assert_eq!(
            done(json!({"id":1,"type":"fail","error":"cas-mismatch"}), &cas),
            Outcome::Fail("cas-mismatch".into())
        );
        assert_eq!(
            done(json!({"id":1,"type":"info","error":"timeout"}), &cas),
            Outcome::Info("timeout".into())
        );
        assert!(matches!(
            classify(&json!({"id":1,"type":"fail","error":"not-leader","leader":3}), &cas),
            Reply::Redirect(Some(3))
        ));
    }

    #[test]
    fn workers_spread_over_home_nodes() {
        let nodes: BTreeMap<u64, SocketAddr> =
            (1..=3).map(|i| (i, SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)))).collect();
        let dir = Directory::new(nodes, Api::Lines { token: None });
        assert_eq!(dir.next_after(1), 2);
        assert_eq!(dir.next_after(3), 1);
        assert_eq!((0..6).map(|w| dir.home(w)).collect::<Vec<_>>(), vec![1, 2, 3, 1, 2, 3]);
    }
}
