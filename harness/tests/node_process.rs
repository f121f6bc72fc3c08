//! Three `gauntlet node` processes on loopback: a put and a get served through any node (a
//! follower redirects to the leader), a retried append applied once, and after SIGKILL of every
//! node and a restart from their directories, the data is still there. SIGTERM then stops each
//! node cleanly.
//!
//! Deadlines here only keep a broken build from hanging the suite; nothing is asserted about
//! speed.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const GUARD: Duration = Duration::from_secs(60);

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path =
            std::env::temp_dir().join(format!("gauntlet-node-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The three node processes; every child is killed and reaped when the test ends, however it
/// ends.
struct Nodes {
    peer_addrs: Vec<SocketAddr>,
    client_addrs: Vec<SocketAddr>,
    dir: PathBuf,
    children: Vec<Option<Child>>,
    /// `--bug` for every node.
    bug: Option<&'static str>,
    /// Holds the claims of the nodes' ports, below the ephemeral range, so that no other
    /// harness process (or outgoing connection) takes one while a node is down.
    _ports: harness::cluster::PortAllocator,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Nodes {
    fn new(dir: &Path) -> Nodes {
        // Ports bound to 0 and let go are ephemeral ports: any outgoing connection may take
        // one before its node binds it.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let mut ports = harness::cluster::PortAllocator::new(u64::from(nanos));
        let addrs: Vec<SocketAddr> = (0..6).map(|_| ports.next_addr().unwrap()).collect();
        Nodes {
            peer_addrs: addrs[..3].to_vec(),
            client_addrs: addrs[3..].to_vec(),
            dir: dir.to_path_buf(),
            children: vec![None, None, None],
            bug: None,
            _ports: ports,
        }
    }

    /// The last lines of every node's log, for a failure message.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for i in 0..3 {
            let log =
                std::fs::read_to_string(self.data_dir(i).join("node.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!(
                "--- node {} (last {} lines)\n{}\n",
                i + 1,
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{}", i + 1))
    }

    fn start(&mut self, i: usize) {
        let id = i + 1;
        std::fs::create_dir_all(self.data_dir(i)).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir(i).join("node.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gauntlet"));
        cmd.arg("node")
            .args(["--id", &id.to_string()])
            .args(["--listen", &self.peer_addrs[i].to_string()])
            .args(["--client", &self.client_addrs[i].to_string()])
            .arg("--data-dir")
            .arg(self.data_dir(i));
        for j in (0..3).filter(|&j| j != i) {
            cmd.args(["--peer", &format!("{}={}", j + 1, self.peer_addrs[j])]);
            cmd.args(["--peer-client", &format!("{}={}", j + 1, self.client_addrs[j])]);
        }
        if let Some(bug) = self.bug {
            cmd.args(["--bug", bug]);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).env("RUST_LOG", "info");
        self.children[i] = Some(cmd.spawn().expect("gauntlet node starts"));
    }

    fn sigkill(&mut self, i: usize) {
        let mut child = self.children[i].take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and the exit status.
    fn sigterm(&mut self, i: usize) -> std::process::ExitStatus {
        let mut child = self.children[i].take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {} ignores SIGTERM", i + 1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends one request line to `addr` and reads the answer. Connection failures (a node still
/// starting) are `None`.
fn call(addr: SocketAddr, request: &Value) -> Option<Value> {
    let stream = TcpStream::connect(addr).ok()?;
    // A node answers within its own request timeout (2 s); a silent one is retried.
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writeln!(writer, "{request}").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(serde_json::from_str(&line).expect("answers are JSON"))
}

/// Sends `request` to node `first`, following not-leader hints, until a definite answer other
/// than not-leader; returns it and whether it came from a redirect.
fn call_any(nodes: &Nodes, first: usize, request: &Value) -> (Value, bool) {
    let deadline = Instant::now() + GUARD;
    let mut addr = nodes.client_addrs[first];
    let mut redirected = false;
    loop {
        assert!(Instant::now() < deadline, "no answer to {request}\n{}", nodes.log_tails());
        match call(addr, request) {
            Some(answer) if answer["error"] == "not-leader" => {
                match answer["leader_addr"].as_str() {
                    Some(hint) => {
                        addr = hint.parse().unwrap();
                        assert!(nodes.client_addrs.contains(&addr), "hint {hint} is a node");
                        redirected = true;
                        continue;
                    }
                    // No leader known yet: an election is under way.
                    None => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            Some(answer) if answer["type"] == "info" => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Some(answer) => return (answer, redirected),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
        addr = nodes.client_addrs[first];
        redirected = false;
    }
}

/// Waits until some node answers as the leader, and returns its position.
fn leader(nodes: &Nodes) -> usize {
    // Writes, not reads: any node serves a read, only the leader takes a write.
    let probe = json!({"id": 0, "op": "put", "key": "probe-leader", "value": "x"});
    let (answer, _) = call_any(nodes, 0, &probe);
    assert_eq!(answer["type"], "ok", "{answer}");
    // Ask each node directly: the leader is the one that does not redirect.
    for i in 0..3 {
        if let Some(a) = call(nodes.client_addrs[i], &probe) {
            if a["type"] == "ok" {
                return i;
            }
        }
    }
    leader(nodes)
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn three_processes_serve_through_any_node_and_keep_data_across_sigkill() {
    let dir = TempDir::new();
    let mut nodes = Nodes::new(&dir.0);
    for i in 0..3 {
        nodes.start(i);
    }

    let lead = leader(&nodes);
    let follower = (lead + 1) % 3;
    let other = (lead + 2) % 3;

    // A put through a follower is redirected to the leader and applied.
    let put = json!({"id": 1, "client": 42, "seq": 1, "op": "put", "key": "k", "value": "v"});
    let (answer, redirected) = call_any(&nodes, follower, &put);
    assert_eq!(answer, json!({"id": 1, "type": "ok"}));
    assert!(redirected, "the follower answered not-leader with the leader's client address");

    // The same request again (a client retry) is not applied twice.
    let append = json!({"id": 2, "client": 42, "seq": 2, "op": "append", "key": "k", "value": "+"});
    assert_eq!(call_any(&nodes, lead, &append).0["type"], "ok");
    assert_eq!(call_any(&nodes, lead, &append).0["type"], "ok");

    // A get through the other follower.
    let get = json!({"id": 3, "op": "get", "key": "k"});
    let (answer, redirected) = call_any(&nodes, other, &get);
    assert_eq!(answer, json!({"id": 3, "type": "ok", "value": "v+"}));
    assert!(!redirected, "a follower serves a read itself (ReadIndex through its leader)");

    // Registers: cas on an absent key fails unless it expects absence.
    let cas =
        |id, from: Value, to| json!({"id": id, "op": "cas", "key": "r", "from": from, "to": to});
    assert_eq!(call_any(&nodes, lead, &cas(4, json!(0), 1)).0["error"], "cas-mismatch");
    assert_eq!(call_any(&nodes, lead, &cas(5, Value::Null, 1)).0["type"], "ok");
    assert_eq!(call_any(&nodes, lead, &cas(6, json!(1), 2)).0["type"], "ok");

    // Garbage gets a definite error, and the node keeps serving.
    let garbage = call(nodes.client_addrs[lead], &json!("not a request")).unwrap();
    assert_eq!(garbage["error"], "bad-request");

    // SIGKILL every node, then restart them all from their directories.
    for i in 0..3 {
        nodes.sigkill(i);
    }
    for i in 0..3 {
        nodes.start(i);
    }
    let (answer, _) = call_any(&nodes, 0, &json!({"id": 7, "op": "get", "key": "k"}));
    assert_eq!(answer, json!({"id": 7, "type": "ok", "value": "v+"}));
    let (answer, _) = call_any(&nodes, 1, &json!({"id": 8, "op": "read", "key": "r"}));
    assert_eq!(answer, json!({"id": 8, "type": "ok", "value": 2}));

    // SIGTERM: a clean exit.
    for i in 0..3 {
        let status = nodes.sigterm(i);
        assert!(status.success(), "node {} exited with {status}", i + 1);
    }

    // The files for offline checking.
    for i in 0..3 {
        let events = read_lines(&nodes.data_dir(i).join("events.jsonl"));
        assert_eq!(events[0]["event"], "started");
        assert!(events
            .iter()
            .any(|e| e["event"] == "restarted" && e["last_index"].as_u64() > Some(0)));
        assert!(events.iter().all(|e| e["node"] == i as u64 + 1));

        let applied = read_lines(&nodes.data_dir(i).join("applied.jsonl"));
        for (n, line) in applied.iter().enumerate() {
            assert_eq!(line["index"], n as u64 + 1, "one gap-free sequence across restarts");
            assert_eq!(line["digest"].as_str().map(str::len), Some(16));
        }
        assert_eq!(applied[0]["kind"], "noop");
        // The put, the append once (its retry is a second entry with the same session), and
        // the register writes are all there.
        let client_42: Vec<u64> = applied
            .iter()
            .filter(|l| l["client"] == 42)
            .map(|l| l["seq"].as_u64().unwrap())
            .collect();
        assert!(client_42.starts_with(&[1, 2]), "{client_42:?}");
    }
    // Some node led in some term, and no term had two leaders.
    let mut leaders = std::collections::BTreeMap::new();
    for i in 0..3 {
        for e in read_lines(&nodes.data_dir(i).join("events.jsonl")) {
            if e["event"] == "became-leader" {
                let term = e["term"].as_u64().unwrap();
                if let Some(prev) = leaders.insert(term, i) {
                    assert_eq!(prev, i, "two leaders in term {term}");
                }
            }
        }
    }
    assert!(!leaders.is_empty());
}

/// A follower that voted for the leader is killed and restarted in the same term: it must come
/// back with its vote. With `forget-vote` it does not, and the votes-durable check says so.
#[test]
fn a_vote_lost_in_a_crash_is_found_by_the_votes_durable_check() {
    for bug in [None, Some("forget-vote")] {
        let dir = TempDir::new();
        let mut nodes = Nodes::new(&dir.0);
        nodes.bug = bug;
        (0..3).for_each(|i| nodes.start(i));
        let leader = leader(&nodes);
        let dirs: Vec<PathBuf> = (0..3).map(|i| nodes.data_dir(i)).collect();
        // The files are written while we read them: a torn last line is skipped.
        let events = |i: usize| -> Vec<Value> {
            let text = std::fs::read_to_string(dirs[i].join("events.jsonl")).unwrap_or_default();
            text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
        };
        let term = events(leader)
            .iter()
            .rev()
            .find(|e| e["event"] == "became-leader")
            .map(|e| e["term"].as_u64().unwrap())
            .expect("the leader wrote became-leader");
        let voted_for_leader = |i: usize| {
            events(i).iter().any(|e| {
                e["event"] == "vote-granted"
                    && e["term"] == term
                    && e["candidate"] == leader as u64 + 1
            })
        };
        let deadline = Instant::now() + GUARD;
        let voter = loop {
            if let Some(voter) = (0..3).find(|&i| voted_for_leader(i)) {
                break voter;
            }
            assert!(Instant::now() < deadline, "a follower reports its vote for the leader");
            std::thread::sleep(Duration::from_millis(20));
        };

        nodes.sigkill(voter);
        nodes.start(voter);
        let deadline = Instant::now() + GUARD;
        // A node that lost its vote refuses to start, recording what it recovered.
        while !events(voter).iter().any(|e| e["event"] == "restarted" || e["event"] == "refused") {
            assert!(Instant::now() < deadline, "node {} writes restarted or refused", voter + 1);
            std::thread::sleep(Duration::from_millis(20));
        }

        let records: Vec<_> = (0..3)
            .map(|i| checker::safety::NodeRecord::read_dir(i as u64 + 1, &dirs[i]))
            .collect::<Result<_, _>>()
            .unwrap();
        let checks = checker::safety::check_safety(&records, &Default::default());
        let votes = checks.iter().find(|c| c.name == "votes-durable").unwrap();
        match bug {
            None => assert!(votes.valid, "{votes:?}"),
            Some(_) => {
                assert!(!votes.valid, "forget-vote must be found");
                let expected = format!("node {} granted its vote in term {term}", voter + 1);
                assert!(votes.violations[0].starts_with(&expected), "{votes:?}");
                assert!(votes.violations[0].ends_with("with vote none"), "{votes:?}");
            }
        }
    }
}
