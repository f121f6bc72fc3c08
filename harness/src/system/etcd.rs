//! etcd 3.4 as a system under test.
//!
//! - **Nodes**: `etcd` processes named `n<id>`, each listening for peers on its real peer
//!   address and advertising the proxy's port for it, so that every member's traffic to it
//!   crosses the harness's links. The advertised URLs form one `--initial-cluster` that every
//!   member agrees on; the proxy tells senders apart by the `X-PeerURLs` header etcd puts on
//!   every peer request ([`sniff_sender`]).
//! - **Clients**: the v3 JSON gateway over HTTP (`/v3/kv/range`, `put`, `txn`). A register
//!   value is stored as its JSON text. `cas` is a transaction comparing the value (or, from
//!   nothing, that the key does not exist); `append` reads the value and its revision and
//!   writes the longer string in a transaction that compares the revision, again until it
//!   wins or its time runs out. Reads are linearizable unless `--etcd-serializable-reads`
//!   (etcd's documented stale reads: the harness must catch them).
//! - **Outcomes**: an answer is `ok` (or a definite `fail` for a failed comparison); any error
//!   of etcd's after a request was sent is `info` (it may have taken effect); the client turns
//!   an `info` read into `fail`, since a read changes nothing.
//! - **Leader**: every member's status, asked 10 times a second ([`poll_leader`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use tokio::time::Instant;
use workloads::generator::Op;

use super::Launch;
use crate::client::Attempt;
use crate::cluster::NodeInfo;

/// Starts `etcd` members.
pub struct EtcdNode {
    /// The `etcd` binary.
    pub binary: PathBuf,
    /// The cluster's token (distinct per run, so that no member joins another run's cluster).
    pub token: String,
    /// etcd's heartbeat interval, in milliseconds.
    pub heartbeat_ms: u64,
    /// etcd's election timeout, in milliseconds.
    pub election_ms: u64,
}

/// The URL node `id` advertises to its peers: the proxy's port for it, which every other node
/// is given as its address of `id`.
fn advertised(id: u64, cluster: &[NodeInfo]) -> String {
    let addr = cluster
        .iter()
        .find(|n| n.id != id)
        .map(|n| n.peers[&id])
        .unwrap_or_else(|| cluster.iter().find(|n| n.id == id).unwrap().peer_addr);
    format!("http://{addr}")
}

impl Launch for EtcdNode {
    fn command(&self, node: &NodeInfo, cluster: &[NodeInfo]) -> Command {
        let initial: Vec<String> =
            cluster.iter().map(|n| format!("n{}={}", n.id, advertised(n.id, cluster))).collect();
        let client = format!("http://{}", node.client_addr);
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--name")
            .arg(format!("n{}", node.id))
            .arg("--data-dir")
            .arg(node.dir.join("data"))
            .arg("--listen-peer-urls")
            .arg(format!("http://{}", node.peer_addr))
            .arg("--initial-advertise-peer-urls")
            .arg(advertised(node.id, cluster))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--initial-cluster")
            .arg(initial.join(","))
            // Ignored once the data directory exists (a restart).
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--heartbeat-interval")
            .arg(self.heartbeat_ms.to_string())
            .arg("--election-timeout")
            .arg(self.election_ms.to_string())
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr");
        cmd
    }
}

/// The sender of an etcd peer connection: the first URL of the `X-PeerURLs` header of its
/// first request (stream and pipeline requests carry it; probes do not).
pub fn sniff_sender(head: &[u8]) -> Option<SocketAddr> {
    let head = std::str::from_utf8(head).ok()?;
    let value = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("x-peerurls").then_some(value)
    })?;
    let first = value.split(',').next()?.trim();
    first.strip_prefix("http://").unwrap_or(first).trim_end_matches('/').parse().ok()
}

/// How the clients talk to etcd.
#[derive(Clone, Debug)]
pub struct EtcdApi {
    /// Reads served by the member from its own state, without confirming it is current.
    pub serializable_reads: bool,
}

/// One HTTP call to the gateway: the JSON body of a 200 answer, or what went wrong.
enum Call {
    Answer(Value),
    /// etcd answered with an error (its message).
    Error(String),
    NotSent(String),
    Lost(String),
}

async fn call(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    body: Value,
    t: Duration,
) -> Call {
    let url = format!("http://{addr}{path}");
    let response = match http.post(&url).timeout(t).json(&body).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Call::NotSent(format!("connecting to {addr}: {e}")),
        Err(e) if e.is_timeout() => return Call::Lost("timeout".into()),
        Err(e) => return Call::Lost(format!("connection lost: {e}")),
    };
    let status = response.status();
    let value: Value = match response.json().await {
        Ok(v) => v,
        Err(e) if e.is_timeout() => return Call::Lost("timeout".into()),
        Err(e) => return Call::Lost(format!("unreadable answer ({status}): {e}")),
    };
    if !status.is_success() || value.get("error").is_some() {
        let message = value.get("message").or(value.get("error")).and_then(Value::as_str);
        return Call::Error(message.unwrap_or(status.as_str()).to_string());
    }
    Call::Answer(value)
}

fn encode(text: &str) -> String {
    B64.encode(text.as_bytes())
}

/// The value and modification revision of the first key of a range answer (Null and 0 when
/// the key does not exist).
fn first_kv(answer: &Value) -> Result<(Value, u64), String> {
    let Some(kv) = answer.get("kvs").and_then(|k| k.get(0)) else { return Ok((Value::Null, 0)) };
    let bytes = B64
        .decode(kv.get("value").and_then(Value::as_str).unwrap_or(""))
        .map_err(|e| format!("a value that is not base64: {e}"))?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("a value that is not JSON text: {e}"))?;
    let revision = kv.get("mod_revision").and_then(Value::as_str).unwrap_or("0");
    Ok((value, revision.parse().map_err(|_| format!("a bad mod_revision {revision:?}"))?))
}

/// A transaction that writes `value` to `key` if `compare` holds.
fn txn(key: &str, compare: Value, value: &Value) -> Value {
    json!({
        "compare": [compare],
        "success": [{"requestPut": {"key": encode(key), "value": encode(&value.to_string())}}],
    })
}

/// Performs `op` on the member at `addr`; answers in the project's client protocol (`ok` with a
/// value, `fail` with `cas-mismatch`, `info` with etcd's error), so that the client maps it as
/// it maps a `gauntlet node`'s answers.
pub(crate) async fn request(
    http: &reqwest::Client,
    api: &EtcdApi,
    addr: SocketAddr,
    op: &Op,
    t: Duration,
) -> Attempt {
    let key = encode(&op.key);
    let read = json!({"key": key, "serializable": api.serializable_reads});
    let answered = |call: Call, done: &dyn Fn(Value) -> Value| match call {
        Call::Answer(v) => Attempt::Answer(done(v)),
        Call::Error(e) => Attempt::Answer(json!({"type": "info", "error": e})),
        Call::NotSent(e) => Attempt::NotSent(e),
        Call::Lost(e) => Attempt::Lost(e),
    };
    match op.f {
        "read" | "get" => {
            answered(call(http, addr, "/v3/kv/range", read, t).await, &|v| match first_kv(&v) {
                Ok((value, _)) => json!({"type": "ok", "value": value}),
                Err(e) => json!({"type": "fail", "error": e}),
            })
        }
        "write" | "put" => {
            let body = json!({"key": key, "value": encode(&op.value.to_string())});
            answered(call(http, addr, "/v3/kv/put", body, t).await, &|_| json!({"type": "ok"}))
        }
        "cas" => {
            let (from, to) = (&op.value[0], &op.value[1]);
            let compare = if from.is_null() {
                json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
            } else {
                json!({"key": key, "target": "VALUE", "result": "EQUAL", "value": encode(&from.to_string())})
            };
            let body = txn(&op.key, compare, to);
            answered(call(http, addr, "/v3/kv/txn", body, t).await, &txn_outcome)
        }
        "append" => append(http, addr, op, t).await,
        other => Attempt::Answer(
            json!({"type": "fail", "error": format!("no etcd operation {other:?}")}),
        ),
    }
}

/// A plain put of `value` (the benchmark's write): whether etcd acknowledged it.
pub(crate) async fn put(
    http: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
    value: &str,
    t: Duration,
) -> bool {
    let body = json!({"key": encode(key), "value": encode(value)});
    matches!(call(http, addr, "/v3/kv/put", body, t).await, Call::Answer(_))
}

/// Whether the member at `addr` says it leads.
pub(crate) async fn is_leader(http: &reqwest::Client, addr: SocketAddr) -> bool {
    match call(http, addr, "/v3/maintenance/status", json!({}), STATUS_TIMEOUT).await {
        Call::Answer(status) => leads_in(&status).is_some(),
        _ => false,
    }
}

/// `ok` if the transaction's comparison held, else a definite `cas-mismatch`.
fn txn_outcome(answer: Value) -> Value {
    // proto3's JSON leaves out a false `succeeded`.
    if answer.get("succeeded").and_then(Value::as_bool) == Some(true) {
        json!({"type": "ok"})
    } else {
        json!({"type": "fail", "error": "cas-mismatch"})
    }
}

/// An append: read the string and its revision (linearizably), write the longer one if the
/// revision is unchanged; again after a lost race, until `t` runs out.
async fn append(http: &reqwest::Client, addr: SocketAddr, op: &Op, t: Duration) -> Attempt {
    let deadline = Instant::now() + t;
    let key = encode(&op.key);
    let suffix = op.value.as_str().unwrap_or("");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Every write sent lost its race (definitely not applied): nothing took effect.
            return Attempt::Answer(json!({"type": "fail", "error": "append-contended"}));
        }
        let read = json!({"key": key});
        let (current, revision) = match call(http, addr, "/v3/kv/range", read, left).await {
            Call::Answer(v) => match first_kv(&v) {
                Ok(kv) => kv,
                Err(e) => return Attempt::Answer(json!({"type": "fail", "error": e})),
            },
            // Nothing was written yet: a certain failure.
            Call::Error(e) | Call::Lost(e) => {
                return Attempt::Answer(json!({"type": "fail", "error": e}))
            }
            Call::NotSent(e) => return Attempt::NotSent(e),
        };
        let longer = json!(format!("{}{suffix}", current.as_str().unwrap_or("")));
        let compare = json!({"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string()});
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        match call(http, addr, "/v3/kv/txn", txn(&op.key, compare, &longer), left).await {
            Call::Answer(v) if v.get("succeeded").and_then(Value::as_bool) == Some(true) => {
                return Attempt::Answer(json!({"type": "ok"}))
            }
            // Someone wrote in between: read again.
            Call::Answer(_) => {}
            Call::Error(e) => return Attempt::Answer(json!({"type": "info", "error": e})),
            // The read went through, so the write was on its way: it may have applied.
            Call::NotSent(e) | Call::Lost(e) => return Attempt::Lost(e),
        }
    }
}

const STATUS_TIMEOUT: Duration = Duration::from_millis(250);

/// Polls the members at `nodes` (id, client address) for the leader, 10 times a second:
/// `report(leader, term)` after each round, with the member that says it leads in the highest
/// term any member reports.
pub(crate) async fn poll_leader(
    nodes: BTreeMap<u64, SocketAddr>,
    report: impl Fn(Option<u64>, Option<u64>),
) {
    let http = reqwest::Client::new();
    loop {
        let mut asks = tokio::task::JoinSet::new();
        for (&id, &addr) in &nodes {
            let http = http.clone();
            asks.spawn(async move {
                let status = call(&http, addr, "/v3/maintenance/status", json!({}), STATUS_TIMEOUT);
                (id, status.await)
            });
        }
        let mut best: Option<(u64, u64)> = None;
        while let Some(Ok((id, status))) = asks.join_next().await {
            let Call::Answer(status) = status else { continue };
            if let Some(term) = leads_in(&status) {
                if best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, id));
                }
            }
        }
        report(best.map(|(_, id)| id), best.map(|(term, _)| term));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The term in which the member that answered `status` leads, if it says it leads.
fn leads_in(status: &Value) -> Option<u64> {
    let me = status.get("header")?.get("member_id")?.as_str()?;
    let leader = status.get("leader")?.as_str()?;
    (me == leader).then(|| status.get("raftTerm")?.as_str()?.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_read_from_its_peer_urls_header() {
        let head =
            b"GET /raft/stream/msgapp/bdae9bbc11dd390d HTTP/1.1\r\nHost: 127.0.0.1:23802\r\n\
            X-Peerurls: http://127.0.0.1:23801\r\nX-Server-From: bdae9bbc11dd390d\r\n\r\n";
        assert_eq!(sniff_sender(head), Some("127.0.0.1:23801".parse().unwrap()));
        let several =
            b"POST /raft HTTP/1.1\r\nx-peerurls: http://127.0.0.1:5,http://127.0.0.1:6\r\n\r\n";
        assert_eq!(sniff_sender(several), Some("127.0.0.1:5".parse().unwrap()));
        assert_eq!(sniff_sender(b"GET /raft/probing HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(sniff_sender(b"\xff\xfe"), None);
    }

    #[test]
    fn range_answers_give_the_value_and_its_revision() {
        let answer =
            json!({"kvs": [{"key": "azA=", "mod_revision": "7", "value": B64.encode("12")}]});
        assert_eq!(first_kv(&answer), Ok((json!(12), 7)));
        assert_eq!(first_kv(&json!({"header": {}})), Ok((Value::Null, 0)));
        let garbage = json!({"kvs": [{"value": "!!"}]});
        assert!(first_kv(&garbage).unwrap_err().contains("base64"));
    }

    #[test]
    fn a_transaction_succeeds_only_when_etcd_says_so() {
        assert_eq!(txn_outcome(json!({"succeeded": true}))["type"], "ok");
        assert_eq!(txn_outcome(json!({"header": {}}))["error"], "cas-mismatch");
    }

    #[test]
    fn the_leader_is_the_member_that_names_itself() {
        let status = |me: &str, leader: &str| json!({"header": {"member_id": me}, "leader": leader, "raftTerm": "4"});
        assert_eq!(leads_in(&status("11", "11")), Some(4));
        assert_eq!(leads_in(&status("11", "12")), None);
    }
}
