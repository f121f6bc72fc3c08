//! A one-node cluster on a crash disk: acknowledged puts, a simulated power failure at the
//! node's next sync (SIGUSR1 with a request), and a restart. A correct node keeps every
//! acknowledged put and the `crash-recovery` check holds; with `skip-log-sync` the log
//! vanishes with the page cache, and `crash-recovery` names the gap. A plain SIGKILL finds
//! nothing wrong with either.
//!
//! Deadlines only keep a broken build from hanging the suite.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::node::crash::{self, CrashRequest};
use raft::storage::CrashFamily;
use serde_json::{json, Value};

const GUARD: Duration = Duration::from_secs(60);

struct Node {
    child: Option<Child>,
    peer: SocketAddr,
    client: SocketAddr,
    /// Holds the claims of the node's ports (below the ephemeral range: a port bound to 0 and
    /// let go may be taken by any outgoing connection before the node binds it).
    _ports: harness::cluster::PortAllocator,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Node {
    fn new() -> Node {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let mut ports = harness::cluster::PortAllocator::new(u64::from(nanos));
        let peer = ports.next_addr().unwrap();
        let client = ports.next_addr().unwrap();
        Node { child: None, peer, client, _ports: ports }
    }

    fn start(&mut self, dir: &Path, bug: Option<&str>) {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gauntlet"));
        cmd.args(["node", "--id", "1", "--crash-disk"])
            .args(["--listen", &self.peer.to_string(), "--client", &self.client.to_string()])
            .arg("--data-dir")
            .arg(dir);
        if let Some(bug) = bug {
            cmd.args(["--bug", bug]);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("gauntlet node starts"));
    }

    /// Starts the node again and returns whether it serves; `false` when it refuses to start
    /// (exits 255).
    fn restart(&mut self, dir: &Path, bug: Option<&str>) -> bool {
        self.start(dir, bug);
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                assert_eq!(status.code(), Some(255), "a refusal exits 255");
                return false;
            }
            if TcpStream::connect(self.client).is_ok() {
                return true;
            }
            assert!(Instant::now() < deadline, "the node neither serves nor refuses");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `request` until the node answers it as the leader.
    fn call(&self, request: &Value) -> Value {
        let deadline = Instant::now() + GUARD;
        loop {
            assert!(Instant::now() < deadline, "no answer to {request}");
            if let Ok(stream) = TcpStream::connect(self.client) {
                stream.set_read_timeout(Some(GUARD)).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut line = String::new();
                if writeln!(writer, "{request}").is_ok()
                    && BufReader::new(stream).read_line(&mut line).is_ok()
                {
                    let answer: Value = serde_json::from_str(&line).expect("answers are JSON");
                    if answer["type"] == "ok" {
                        return answer;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the node to die, and how.
    fn wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the node did not die");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Puts k0..k9, crashes (or kills) the node, restarts it, and returns the values read back
/// (none if it refused to start) and the crash-recovery check.
fn put_crash_restart(
    bug: Option<&str>,
    crash_it: bool,
) -> (Option<Vec<Value>>, checker::safety::SafetyCheck) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let mut node = Node::new();
    node.start(&data, bug);
    for i in 0..10 {
        node.call(&json!({"id": i, "op": "put", "key": format!("k{i}"), "value": format!("v{i}")}));
    }
    if crash_it {
        let request = CrashRequest::new(CrashFamily::LoseUnsynced, 7);
        crash::write_request(&data, request).unwrap();
        let pid = nix::unistd::Pid::from_raw(node.child.as_ref().unwrap().id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    } else {
        node.child.as_mut().unwrap().kill().unwrap();
    }
    assert_eq!(node.wait().signal(), Some(9), "the node dies as if killed");
    let records = crash::records(&data).unwrap();
    assert_eq!(records.len(), usize::from(crash_it), "{records:?}");
    if let Some(record) = records.first() {
        assert_eq!(record.request.family, CrashFamily::LoseUnsynced);
        assert!(record.persisted_index >= 10, "{record:?}");
    }

    let values = node.restart(&data, bug).then(|| {
        (0..10)
            .map(|i| {
                let get = json!({"id": 100 + i, "op": "get", "key": format!("k{i}")});
                node.call(&get)["value"].clone()
            })
            .collect()
    });
    let check = crash::check_recovery(&[(1, data.as_path())]).unwrap();
    (values, check)
}

#[test]
fn a_correct_node_keeps_every_acknowledged_put_through_a_power_failure() {
    let (values, check) = put_crash_restart(None, true);
    let expected: Vec<Value> = (0..10).map(|i| json!(format!("v{i}"))).collect();
    assert_eq!(values, Some(expected));
    assert!(check.valid, "{check:?}");
}

#[test]
fn skip_log_sync_loses_acknowledged_puts_in_a_power_failure_and_crash_recovery_says_so() {
    let (values, check) = put_crash_restart(Some("skip-log-sync"), true);
    // The log was never synced: the node finds it empty, and its applied.jsonl shows that
    // entries it had taken for durable are gone.
    assert_eq!(values, None, "the node must not serve from a log that lost synced entries");
    assert!(!check.valid);
    let violation = &check.violations[0];
    assert!(violation.starts_with("node 1 after its crash at"), "{violation}");
    assert!(violation.contains("lose-unsynced, seed 7"), "{violation}");
    assert!(violation.contains("refused to start"), "{violation}");
    assert!(violation.contains("entries that were synced are gone"), "{violation}");
}

#[test]
fn a_kill_keeps_the_page_cache_so_skip_log_sync_survives_it() {
    let (values, check) = put_crash_restart(Some("skip-log-sync"), false);
    let expected: Vec<Value> = (0..10).map(|i| json!(format!("v{i}"))).collect();
    assert_eq!(values, Some(expected));
    assert!(check.valid, "no crash, nothing to violate: {check:?}");
}

/// Puts k0..k4, injects EIO at the node's next sync and puts once more; returns the node's
/// exit (None if it kept running) and the crash-recovery check after a restart.
fn put_with_a_failed_sync(
    bug: Option<&str>,
) -> (Option<std::process::ExitStatus>, checker::safety::SafetyCheck) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let mut node = Node::new();
    node.start(&data, bug);
    for i in 0..5 {
        node.call(&json!({"id": i, "op": "put", "key": format!("k{i}"), "value": format!("v{i}")}));
    }
    let request = crash::DiskErrorRequest { error: raft::storage::DiskError::EioOnSync };
    crash::write_error_request(&data, request).unwrap();
    let pid = nix::unistd::Pid::from_raw(node.child.as_ref().unwrap().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR2).unwrap();
    // The put that meets the failed sync gets no ok from a correct node; give it a moment.
    let put = json!({"id": 9, "op": "put", "key": "k9", "value": "v9"});
    let client = node.client;
    std::thread::spawn(move || {
        if let Ok(stream) = TcpStream::connect(client) {
            let _ = writeln!(&stream, "{put}");
            let _ = BufReader::new(stream).read_line(&mut String::new());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(3);
    let exit = loop {
        if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
            node.child = None;
            break Some(status);
        }
        if Instant::now() >= deadline {
            node.child.as_mut().unwrap().kill().unwrap();
            node.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let records = crash::error_records(&data).unwrap();
    assert!(records[0].injected.is_some(), "the put's sync failed: {records:?}");
    if node.restart(&data, bug) {
        for i in 0..5 {
            let answer = node.call(&json!({"id": 100 + i, "op": "get", "key": format!("k{i}")}));
            assert_eq!(answer["value"], format!("v{i}"), "acknowledged before the error");
        }
    } else {
        assert!(bug.is_some(), "a correct node recovers from a failed sync");
    }
    (exit, crash::check_recovery(&[(1, data.as_path())]).unwrap())
}

#[test]
fn a_failed_sync_stops_a_correct_node_and_it_recovers_on_restart() {
    let (exit, check) = put_with_a_failed_sync(None);
    assert_eq!(exit.and_then(|e| e.code()), Some(255), "the node exits on its storage error");
    assert!(check.valid, "{check:?}");
}

#[test]
fn ignore_failed_fsync_carries_on_and_crash_recovery_says_so() {
    let (exit, check) = put_with_a_failed_sync(Some("ignore-failed-fsync"));
    assert_eq!(exit, None, "the node carried on");
    assert!(!check.valid);
    assert!(check.violations[0].contains("carried on instead of stopping"), "{check:?}");
}
