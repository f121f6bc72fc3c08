//! The bounds of one `gauntlet node` process, as an attacker or a careless client meets them:
//! the client token, the connection cap, a final line without its newline, a client that never
//! reads its answers, an idle client, and frames forged on the peer port, with and without a
//! cluster secret. Through all of it the node keeps serving. And the one input it must not
//! serve from: a data directory whose log lost entries the node had applied.
//!
//! One node is a cluster of its own (it elects itself), which keeps these tests cheap.
//! Deadlines only keep a broken build from hanging the suite; nothing is asserted about speed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raft::transport::encode_frame;
use raft::{Message, MessageBody};
use serde_json::{json, Value};

const GUARD: Duration = Duration::from_secs(30);

/// One node process, killed and reaped when the test ends.
struct Node {
    child: Child,
    peer: SocketAddr,
    client: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// Holds the node's ports claimed while it runs.
    _ports: harness::cluster::PortAllocator,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts a node with `extra` flags; `files` are written into its directory first (as
    /// name, content) and `{dir}` in a flag stands for that directory.
    fn start(extra: &[&str], files: &[(&str, &str)]) -> Node {
        Node::start_in(tempfile::tempdir().unwrap(), extra, files)
    }

    /// As [`Node::start`], in a directory that may hold an earlier node's data.
    fn start_in(dir: tempfile::TempDir, extra: &[&str], files: &[(&str, &str)]) -> Node {
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        // Ports below the ephemeral range, which no outgoing connection can take meanwhile;
        // a random start keeps the tests running at once apart.
        let mut ports = harness::cluster::PortAllocator::new(rand::random());
        let addrs: Vec<SocketAddr> = (0..2).map(|_| ports.next_addr().unwrap()).collect();
        let log = dir.path().join("node.log");
        let shown = dir.path().display().to_string();
        let extra: Vec<String> = extra.iter().map(|a| a.replace("{dir}", &shown)).collect();
        let child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args(["node", "--id", "1", "--listen", &addrs[0].to_string()])
            .args(["--client", &addrs[1].to_string(), "--data-dir"])
            .arg(dir.path().join("data"))
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap();
        Node { child, peer: addrs[0], client: addrs[1], log, _dir: dir, _ports: ports }
    }

    /// Kills the node and hands back its directory.
    fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        drop(self);
        dir
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A connection to the client port, with a read timeout as a guard.
    fn connect(&self) -> Conn {
        let deadline = Instant::now() + GUARD;
        loop {
            match TcpStream::connect(self.client) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(GUARD)).unwrap();
                    let reader = BufReader::new(stream.try_clone().unwrap());
                    return Conn { stream, reader };
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "the node never listened: {e}\n{}",
                        self.log()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// A connection the node serves, once a slot is free: a slot comes back when the node has
    /// seen its connection close, and until then a new connection is refused (answered busy,
    /// or closed before its request is read).
    fn connect_served(&self) -> Conn {
        let deadline = Instant::now() + GUARD;
        loop {
            let mut conn = self.connect();
            let answer = conn.call(&json!({"op": "read", "key": "k"}));
            if answer["type"] == "ok" {
                return conn;
            }
            assert!(answer["error"] == "busy" || answer.is_null(), "{answer}");
            assert!(Instant::now() < deadline, "no slot came free");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the node has elected itself and serves a write, on connections that
    /// present `token` first when given.
    fn until_serving(&self, token: Option<&str>) {
        let deadline = Instant::now() + GUARD;
        loop {
            let mut conn = self.connect();
            if let Some(token) = token {
                assert_eq!(conn.call(&json!({"op": "auth", "token": token}))["type"], "ok");
            }
            let answer = conn.call(&json!({"id": 1, "op": "write", "key": "k", "value": 1}));
            if answer["type"] == "ok" {
                return;
            }
            assert!(Instant::now() < deadline, "the node never served: {answer}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resident memory of the node process, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }
}

struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Sends one request line. A write error is left to the answer: a connection the node
    /// refused may be closed before the request gets there.
    fn send(&mut self, request: &Value) {
        let _ = writeln!(self.stream, "{request}");
    }

    /// The next answer line; `Value::Null` when the node closed the connection.
    fn answer(&mut self) -> Value {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => Value::Null,
            Ok(_) => serde_json::from_str(&line).expect("answers are JSON"),
        }
    }

    fn call(&mut self, request: &Value) -> Value {
        self.send(request);
        self.answer()
    }

    /// Whether the node closed the connection (end of stream or reset) within the guard.
    fn closed_by_node(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

fn vote_frame(term: u64) -> Vec<u8> {
    let body =
        MessageBody::RequestVote { pre_vote: false, last_log_index: u64::MAX, last_log_term: term };
    encode_frame(&Message { from: 2, to: 1, term, body }).unwrap()
}

#[test]
fn the_client_token_comes_first_or_the_connection_is_closed() {
    let node = Node::start(&["--client-token-file", "{dir}/token"], &[("token", "open-sesame\n")]);
    node.until_serving(Some("open-sesame"));

    let mut conn = node.connect();
    let answer = conn.call(&json!({"id": 5, "op": "read", "key": "k"}));
    assert_eq!((answer["id"].clone(), answer["error"].clone()), (json!(5), json!("unauthorized")));
    assert!(conn.closed_by_node());

    let mut conn = node.connect();
    assert_eq!(conn.call(&json!({"op": "auth", "token": "open-says-me"}))["error"], "unauthorized");
    assert!(conn.closed_by_node());

    // Without the token, a client cannot make the node buffer a whole request line.
    let mut conn = node.connect();
    conn.stream.write_all(&[b' '; 5000]).unwrap();
    let answer = conn.answer();
    assert_eq!(answer["message"], "request line too long", "{answer}");
    assert!(conn.closed_by_node());

    let mut conn = node.connect();
    assert_eq!(conn.call(&json!({"id": 1, "op": "auth", "token": "open-sesame"}))["type"], "ok");
    assert_eq!(conn.call(&json!({"id": 2, "op": "read", "key": "k"}))["value"], 1);
    assert!(node.log().contains("wrong token"), "the refusal is logged: {}", node.log());
}

#[test]
fn a_connection_over_the_cap_is_answered_busy_and_a_freed_slot_serves_again() {
    let node = Node::start(&["--max-clients", "3"], &[]);
    node.until_serving(None);
    // Three connections, each shown to be served, hold every slot.
    let mut held: Vec<Conn> = (0..3).map(|_| node.connect_served()).collect();
    let mut extra = node.connect();
    let answer = extra.answer();
    assert_eq!(answer["error"], "busy", "{answer}");
    assert!(extra.closed_by_node());
    drop(held.pop());
    held.push(node.connect_served());
}

#[test]
fn a_last_line_without_its_newline_is_answered() {
    let node = Node::start(&[], &[]);
    node.until_serving(None);
    let mut conn = node.connect();
    conn.stream.write_all(br#"{"id":9,"op":"read","key":"k"}"#).unwrap();
    conn.stream.shutdown(Shutdown::Write).unwrap();
    let answer = conn.answer();
    assert_eq!((answer["id"].clone(), answer["value"].clone()), (json!(9), json!(1)), "{answer}");
}

#[test]
fn an_idle_client_is_closed() {
    let node = Node::start(&["--client-idle-timeout", "0.3"], &[]);
    node.until_serving(None);
    let mut conn = node.connect();
    assert_eq!(conn.call(&json!({"op": "read", "key": "k"}))["type"], "ok");
    assert!(conn.closed_by_node(), "an idle connection is closed");
}

#[test]
fn a_client_that_never_reads_is_bounded_and_closed_while_others_are_served() {
    let node = Node::start(&["--max-outstanding", "4", "--client-idle-timeout", "1"], &[]);
    node.until_serving(None);
    let before = node.rss();
    // Pipelined requests, never read back: once the answers fill the socket buffers the node
    // stops reading at 4 outstanding, TCP fills up, and the writer below blocks until the node
    // gives up on the connection. The requests are refused ones (an unknown op), so that what
    // the node holds is the connection's buffers alone, not a log that grows with each request.
    let stream = TcpStream::connect(node.client).unwrap();
    stream.set_write_timeout(Some(GUARD)).unwrap();
    let flooder = std::thread::spawn(move || {
        let mut stream = stream;
        let line = format!("{}\n", json!({"op": "frobnicate", "key": "k".repeat(1000)}));
        let mut sent = 0usize;
        while stream.write_all(line.as_bytes()).is_ok() {
            sent += 1;
            if sent == 1_000_000 {
                break;
            }
        }
        sent
    });
    // Meanwhile another client is served.
    let mut other = node.connect();
    for i in 0..20 {
        assert_eq!(other.call(&json!({"op": "write", "key": "k", "value": i}))["type"], "ok");
    }
    let sent = flooder.join().unwrap();
    assert!(sent < 1_000_000, "the node closed the connection of a client that reads nothing");
    let grown = node.rss().saturating_sub(before);
    assert!(grown < 64 << 20, "the node grew by {grown} bytes for one connection");
    assert_eq!(other.call(&json!({"op": "read", "key": "k"}))["value"], 19);
}

#[test]
fn a_forged_term_on_an_open_peer_port_does_not_wedge_the_node() {
    // Without a secret (loopback only), a frame can reach the core; its term of u64::MAX is
    // refused as malformed, and the node goes on serving.
    let node = Node::start(&[], &[]);
    node.until_serving(None);
    let mut raw = TcpStream::connect(node.peer).unwrap();
    raw.write_all(&vote_frame(u64::MAX)).unwrap();
    raw.write_all(&vote_frame(u64::MAX - 1)).unwrap();
    drop(raw);
    let mut conn = node.connect();
    for i in 0..5 {
        let answer = conn.call(&json!({"op": "write", "key": "k", "value": 100 + i}));
        assert_eq!(answer["type"], "ok", "{answer}\n{}", node.log());
    }
    assert!(node.log().contains("peer traffic is not authenticated"), "{}", node.log());
}

#[test]
fn with_a_secret_no_frame_gets_in_and_the_offender_is_named() {
    let node = Node::start(
        &["--cluster-secret-file", "{dir}/secret"],
        &[("secret", "0123456789abcdef0123456789abcdef\n")],
    );
    node.until_serving(None);
    let mut raw = TcpStream::connect(node.peer).unwrap();
    raw.set_read_timeout(Some(GUARD)).unwrap();
    let offender = raw.local_addr().unwrap();
    raw.write_all(&vote_frame(u64::MAX)).unwrap();
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest);
    assert!(rest.starts_with(b"RAFTAUTH"), "the node sent its challenge and then closed");
    let deadline = Instant::now() + GUARD;
    while !node.log().contains(&offender.to_string()) {
        assert!(Instant::now() < deadline, "no warning names {offender}:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(node.log().contains("unauthenticated"), "{}", node.log());
    let mut conn = node.connect();
    assert_eq!(conn.call(&json!({"op": "write", "key": "k", "value": 2}))["type"], "ok");
}

#[test]
fn a_node_whose_log_lost_applied_entries_refuses_to_start() {
    let node = Node::start(&[], &[]);
    node.until_serving(None);
    let dir = node.kill();
    let raft = dir.path().join("data/raft");
    // The whole Raft directory lost (its hard state with it): storage alone would start empty.
    std::fs::remove_dir_all(&raft).unwrap();
    let log = refusal(Node::start_in(dir, &[], &[]), "a lost log");
    assert!(log.contains("refusing to start") && log.contains("applied.jsonl"), "{log}");
    assert!(log.contains("log and hard state were lost"), "{log}");
    assert!(!raft.exists(), "the refusal made no new storage, so a retry refuses too");
}

#[test]
fn a_node_whose_hard_state_went_back_refuses_to_start() {
    let node = Node::start(&[], &[]);
    node.until_serving(None);
    // A restart records the hard state it recovered (the term and the vote that elected it).
    let node = Node::start_in(node.kill(), &[], &[]);
    node.until_serving(None);
    let dir = node.kill();
    // An old copy of the hard state (term 0, no vote) over the one that elected the node.
    let blank = tempfile::tempdir().unwrap();
    drop(raft::storage::FileStorage::open(blank.path()).unwrap());
    let hard_state = dir.path().join("data/raft/hardstate");
    std::fs::copy(blank.path().join("hardstate"), &hard_state).unwrap();
    let log = refusal(Node::start_in(dir, &[], &[]), "an old hard state");
    assert!(log.contains("refusing to start") && log.contains("could vote twice"), "{log}");
    assert!(log.contains("holds term 0 with vote none"), "{log}");
}

/// Waits for `node` to refuse to start (exit 255) on `what`, and returns its log.
fn refusal(mut node: Node, what: &str) -> String {
    let deadline = Instant::now() + GUARD;
    let status = loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the node started on {what}:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(255), "a refusal is the tool failing, not bad input");
    node.log()
}

/// A log cut at a record boundary (after its first entry) or to its header looks whole to
/// the storage; the node's applied.jsonl shows which entries it had made durable.
#[test]
fn a_node_whose_log_was_cut_short_refuses_to_start() {
    for keep_first_entry in [true, false] {
        let node = Node::start(&[], &[]);
        node.until_serving(None);
        let mut conn = node.connect();
        for i in 0..5 {
            assert_eq!(conn.call(&json!({"op": "write", "key": "k", "value": i}))["type"], "ok");
        }
        drop(conn);
        let dir = node.kill();
        let raft = dir.path().join("data/raft");
        let segments = raft::storage::inspect(&raft).unwrap();
        let last = segments.last().unwrap();
        let cut = match keep_first_entry {
            // Just after the first sync's marker: a record boundary.
            true => {
                let marker = last.records.iter().position(|r| r.kind.synced_up_to().is_some());
                let marker = &last.records[marker.unwrap()];
                marker.offset + marker.len
            }
            false => 20,
        };
        let file = std::fs::OpenOptions::new().write(true).open(&last.path).unwrap();
        file.set_len(cut).unwrap();
        drop(file);
        let log = refusal(Node::start_in(dir, &[], &[]), "a log cut short");
        assert!(log.contains("refusing to start"), "{log}");
        assert!(log.contains("entries that were synced are gone"), "{log}");
    }
}
