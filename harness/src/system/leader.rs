//! Where the harness learns the leader of a system that writes no node records: a task that
//! asks the nodes in the background, as their own protocol allows.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The leader as the nodes report it, polled in the background.
pub struct LeaderWatch {
    /// The node that leads, as last reported.
    pub leader: Arc<Mutex<Option<u64>>>,
    /// The leaderships seen: (term, leader); where the system tells no terms, the term is
    /// the leadership's number in the order seen (each change of leader is a new one).
    pub leaderships: Arc<Mutex<BTreeSet<(u64, u64)>>>,
    task: JoinHandle<()>,
}

impl LeaderWatch {
    /// Asks etcd's members for their status.
    pub fn etcd(nodes: BTreeMap<u64, SocketAddr>) -> LeaderWatch {
        LeaderWatch::start(|report| super::etcd::poll_leader(nodes, report))
    }

    /// Asks nodes that speak the client protocol with a read: the leader serves it, a follower
    /// answers `not-leader`. Leaderships are told apart by a change of leader.
    pub fn lines(nodes: BTreeMap<u64, SocketAddr>) -> LeaderWatch {
        LeaderWatch::start(|report| poll_lines(nodes, report))
    }

    fn start<F, P>(poll: P) -> LeaderWatch
    where
        P: FnOnce(Box<dyn Fn(Option<u64>, Option<u64>) + Send + Sync>) -> F,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let leader = Arc::new(Mutex::new(None));
        let leaderships = Arc::new(Mutex::new(BTreeSet::new()));
        let (l, seen) = (leader.clone(), leaderships.clone());
        // The last leader known, kept across rounds that found none (a probe timed out, an
        // election was under way): the same leader answering again is no new leadership.
        let last_known = Mutex::new(None);
        let report = move |now: Option<u64>, term: Option<u64>| {
            if let Some(id) = now {
                let mut seen = seen.lock().unwrap();
                let mut last_known = last_known.lock().unwrap();
                match term {
                    Some(term) => {
                        seen.insert((term, id));
                    }
                    // Without terms, a new leadership is a change of leader.
                    None if *last_known != now => {
                        let n = seen.len() as u64;
                        seen.insert((n, id));
                    }
                    None => {}
                }
                *last_known = now;
            }
            *l.lock().unwrap() = now;
        };
        let task = tokio::spawn(poll(Box::new(report)));
        LeaderWatch { leader, leaderships, task }
    }

    /// Stops asking; what was seen stays.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// How many leaderships were seen.
    pub fn leaderships_seen(&self) -> usize {
        self.leaderships.lock().unwrap().len()
    }
}

impl Drop for LeaderWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

async fn poll_lines(nodes: BTreeMap<u64, SocketAddr>, report: impl Fn(Option<u64>, Option<u64>)) {
    loop {
        let mut asks = tokio::task::JoinSet::new();
        for (&id, &addr) in &nodes {
            asks.spawn(async move { (id, timeout(PROBE_TIMEOUT, serves_reads(addr)).await) });
        }
        let mut serving = Vec::new();
        while let Some(Ok((id, answer))) = asks.join_next().await {
            if let Ok(Some(true)) = answer {
                serving.push(id);
            }
        }
        // Two nodes serving reads at once (an old leader not yet deposed): which one leads
        // is not known, and a fault aimed at the leader waits for the next round.
        let leader = match serving[..] {
            [id] => Some(id),
            _ => None,
        };
        report(leader, None);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the node at `addr` serves a read (it leads), or refuses it as `not-leader`.
async fn serves_reads(addr: SocketAddr) -> Option<bool> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (read, mut write) = stream.into_split();
    let probe = json!({"id": 1, "op": "read", "key": "gauntlet-leader-probe"}).to_string() + "\n";
    write.write_all(probe.as_bytes()).await.ok()?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await.ok()?;
    let answer: Value = serde_json::from_str(&line).ok()?;
    Some(answer["type"] == "ok")
}
