//! Cluster control: each node is a child process of the system under test (started by its
//! [`Launch`]) with its own data directory, log file and process group, so that a fault or the final clean-up reaches the node and
//! anything it started, and nothing is left behind.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::node::crash::{self, CrashRecord, CrashRequest, DiskErrorRecord, DiskErrorRequest};
use crate::system::Launch;

/// Where one node listens and keeps its files.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub id: u64,
    /// Its real address for peer traffic (the proxy forwards there).
    pub peer_addr: SocketAddr,
    /// Its address for clients.
    pub client_addr: SocketAddr,
    /// `nodes/n<id>/`: data, `events.jsonl`, `applied.jsonl`, `node.log`.
    pub dir: PathBuf,
    /// The address it uses to reach each other node (the proxy's port for that link).
    pub peers: BTreeMap<u64, SocketAddr>,
}

/// The cluster secret and the client token of one run, in files only the harness's user can
/// read, which every node is given.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The cluster secret (`cluster.secret`): the nodes authenticate each other with it.
    pub secret_file: PathBuf,
    /// The client token (`client.token`): every client connection starts by presenting it.
    pub token_file: PathBuf,
    pub token: String,
}

impl Credentials {
    /// Fresh random credentials in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Credentials> {
        let secret_file = dir.join("cluster.secret");
        write_private(&secret_file, &raft::transport::ClusterSecret::generate_hex())?;
        let token = raft::transport::ClusterSecret::generate_hex();
        let token_file = dir.join("client.token");
        write_private(&token_file, &token)?;
        Ok(Credentials { secret_file, token_file, token })
    }

    /// The options that give a node these credentials.
    pub fn node_args(&self) -> [std::ffi::OsString; 4] {
        [
            "--cluster-secret-file".into(),
            self.secret_file.clone().into(),
            "--client-token-file".into(),
            self.token_file.clone().into(),
        ]
    }
}

/// Writes `text` to a new file that only this user can read.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{text}").with_context(|| format!("writing {}", path.display()))
}

/// The state of one node's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    Running,
    Paused,
    Killed,
}

struct NodeProcess {
    info: NodeInfo,
    child: Option<Child>,
    paused: bool,
}

/// Where the harness learns which node leads.
#[derive(Clone, Debug, Default)]
pub enum LeaderSource {
    /// The nodes' own `events.jsonl` (`gauntlet node`).
    #[default]
    EventFiles,
    /// What a watcher of the system reports (etcd's status, polled).
    Reported(Arc<Mutex<Option<u64>>>),
}

/// The node processes of one run.
pub struct Cluster {
    launcher: Box<dyn Launch>,
    nodes: Vec<NodeProcess>,
    client_addrs: BTreeMap<u64, SocketAddr>,
    /// Where the nemesis learns which node leads.
    pub leader_source: LeaderSource,
    /// The claims on the nodes' ports, held while the cluster lives (restarted nodes listen on
    /// them again).
    _ports: PortAllocator,
}

/// File descriptors the harness process holds at the peak of a run of `nodes` nodes and
/// `clients` client workers: for each directed link, the proxy's listener and both sockets of
/// the connection it forwards; for each worker, a cached connection to every node; for each
/// node, its log file and pipes; and a margin for the runtime, the history and the other files.
pub fn descriptors_needed(nodes: u64, clients: u64) -> u64 {
    let links = nodes.saturating_mul(nodes.saturating_sub(1));
    links
        .saturating_mul(3)
        .saturating_add(clients.saturating_mul(nodes))
        .saturating_add(nodes.saturating_mul(4).saturating_add(128))
}

/// Raises this process's soft limit on open files to its hard limit (what the children
/// inherit, too) and refuses a run that would still not fit, before anything starts: without
/// it, a large cluster fails seconds in with "Too many open files".
pub fn ensure_descriptors(nodes: u64, clients: u64) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let needed = descriptors_needed(nodes, clients);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return Ok(()) };
    if soft >= needed {
        return Ok(());
    }
    if hard >= needed && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Ok(());
    }
    Err(format!(
        "--nodes {nodes} with {clients} client workers needs about {needed} open files, but \
         this process may open at most {hard} (ulimit -n): use fewer nodes, or raise the limit"
    ))
}

/// Hands out loopback addresses for the nodes to listen on, and holds each one claimed for as
/// long as it lives.
///
/// The ports lie below the kernel's ephemeral range, which outbound connections draw their
/// source ports from: a port taken from that range (by binding port 0) could be reused as the
/// source port of some connection while its node is killed, and the node could not listen there
/// again when it restarts.
///
/// That a port can be bound now says nothing of another harness process on the machine that
/// picked it a moment ago and has not started its node yet (tests and campaign shards run side
/// by side). So each port is also claimed by an abstract Unix socket named after it: the kernel
/// lets one process hold a name, the name vanishes with its process (also on SIGKILL), and it
/// leaves no file behind.
pub struct PortAllocator {
    next: u16,
    end: u16,
    /// The claims of the ports handed out; dropping them frees the ports for others.
    claims: Vec<std::os::unix::net::UnixDatagram>,
}

impl PortAllocator {
    /// Starts at a port drawn from `seed` within the range below the ephemeral ports.
    pub fn new(seed: u64) -> PortAllocator {
        let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(32768);
        let end = ephemeral_low.max(12_000);
        // Mixed, so that seeds and process ids that differ by little start far apart.
        let mixed: u64 = {
            use rand::{Rng, SeedableRng};
            rand_chacha::ChaCha8Rng::seed_from_u64(seed).gen()
        };
        let start = 10_000 + (mixed % u64::from(end - 10_000 - 1_000)) as u16;
        PortAllocator { next: start, end, claims: Vec::new() }
    }

    /// The next port that no other harness process holds and that can be bound now.
    pub fn next_addr(&mut self) -> anyhow::Result<SocketAddr> {
        while self.next < self.end {
            let port = self.next;
            self.next += 1;
            let Some(claim) = claim_port(port) else { continue };
            if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                self.claims.push(claim);
                return Ok(listener.local_addr()?);
            }
        }
        anyhow::bail!("no free loopback port below {}", self.end)
    }
}

/// Whether process `pid` has a handler installed for `signal` (its `SigCgt` mask).
fn catches(pid: u32, signal: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"));
    let mask = mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
    mask.is_some_and(|mask| mask & (1 << (signal as i32 - 1)) != 0)
}

/// Claims `port` among the harness processes on this machine; `None` if one holds it.
fn claim_port(port: u16) -> Option<std::os::unix::net::UnixDatagram> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("gauntlet-port-{port}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    std::os::unix::net::UnixDatagram::bind_addr(&addr).ok()
}

impl Cluster {
    /// A cluster of `infos` (not started yet), each started by `launcher`, on ports handed out
    /// by `ports`.
    pub fn new(launcher: Box<dyn Launch>, infos: Vec<NodeInfo>, ports: PortAllocator) -> Cluster {
        let client_addrs = infos.iter().map(|i| (i.id, i.client_addr)).collect();
        let nodes = infos
            .into_iter()
            .map(|info| NodeProcess { info, child: None, paused: false })
            .collect();
        Cluster {
            launcher,
            nodes,
            client_addrs,
            leader_source: LeaderSource::default(),
            _ports: ports,
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.info.id).collect()
    }

    pub fn info(&self, id: u64) -> &NodeInfo {
        &self.node(id).info
    }

    pub fn client_addrs(&self) -> &BTreeMap<u64, SocketAddr> {
        &self.client_addrs
    }

    fn node(&self, id: u64) -> &NodeProcess {
        self.nodes.iter().find(|n| n.info.id == id).expect("unknown node id")
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProcess {
        self.nodes.iter_mut().find(|n| n.info.id == id).expect("unknown node id")
    }

    pub fn state(&self, id: u64) -> ProcessState {
        let n = self.node(id);
        match (&n.child, n.paused) {
            (None, _) => ProcessState::Killed,
            (Some(_), true) => ProcessState::Paused,
            (Some(_), false) => ProcessState::Running,
        }
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(id)?;
        }
        Ok(())
    }

    /// Starts (or restarts, from its data directory) node `id`.
    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        let infos: Vec<NodeInfo> = self.nodes.iter().map(|n| n.info.clone()).collect();
        let node = self.nodes.iter().find(|n| n.info.id == id).expect("unknown node id");
        if node.child.is_some() {
            return Ok(());
        }
        let mut cmd = self.launcher.command(&node.info, &infos);
        let node = self.node_mut(id);
        std::fs::create_dir_all(&node.info.dir)?;
        let log = open_log(&node.info.dir.join("node.log"))?;
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // Its own process group, so that signals reach the node and nothing else; and killed by
        // the kernel should the harness itself die without cleaning up.
        cmd.process_group(0);
        // SAFETY: the closure only calls prctl(2), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd.spawn().with_context(|| format!("starting node {id} ({program})"))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    fn signal(&self, id: u64, signal: Signal) {
        if let Some(child) = &self.node(id).child {
            let _ = killpg(Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// SIGKILL: the node loses everything not yet durable.
    pub fn kill(&mut self, id: u64) {
        self.signal(id, Signal::SIGKILL);
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// A simulated power failure of nodes run on crash disks, all at once (as a rack losing
    /// power): asks each for its request, signals them all, then waits until all died. Returns
    /// what each node recorded, or `None` for one that did not record its crash in time (it
    /// is then killed).
    pub fn crash(
        &mut self,
        requests: &[(u64, CrashRequest)],
    ) -> anyhow::Result<Vec<Option<CrashRecord>>> {
        let before =
            self.request_all(requests, Signal::SIGUSR1, crash::records, crash::write_request)?;
        let longest = requests.iter().map(|(_, r)| r.wait_ms).max().unwrap_or(0);
        let deadline =
            std::time::Instant::now() + Duration::from_millis(longest) + Duration::from_secs(2);
        let mut records = Vec::new();
        for (&(id, _), before) in requests.iter().zip(before) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !self.wait_for_exit(id, left) {
                self.kill(id);
            }
            let dir = self.info(id).dir.clone();
            let _ = std::fs::remove_file(dir.join(crash::REQUEST_FILE));
            records.push(crash::records(&dir)?.into_iter().nth(before));
        }
        Ok(records)
    }

    /// Disk errors injected into nodes run on crash disks: asks each for its request, signals
    /// them all, and waits for each node's record of it. A node whose error was injected is
    /// then given a moment to exit, as a correct node does once its storage failed. Returns
    /// each node's record (`None` if it recorded nothing in time) and whether it exited.
    pub fn disk_error(
        &mut self,
        requests: &[(u64, DiskErrorRequest)],
    ) -> anyhow::Result<Vec<(Option<DiskErrorRecord>, bool)>> {
        let before = self.request_all(
            requests,
            Signal::SIGUSR2,
            crash::error_records,
            crash::write_error_request,
        )?;
        let deadline = std::time::Instant::now() + crash::ERROR_WINDOW + Duration::from_secs(2);
        let mut outcomes = Vec::new();
        for (&(id, _), before) in requests.iter().zip(before) {
            let dir = self.info(id).dir.clone();
            let record = loop {
                if let Some(record) = crash::error_records(&dir)?.into_iter().nth(before) {
                    break Some(record);
                }
                if std::time::Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let injected = record.as_ref().is_some_and(|r| r.injected.is_some());
            let exited = injected && self.wait_for_exit(id, Duration::from_secs(3));
            let _ = std::fs::remove_file(dir.join(crash::ERROR_REQUEST_FILE));
            outcomes.push((record, exited));
        }
        Ok(outcomes)
    }

    /// Leaves each node its request (`write`) and then signals them all at once; returns how
    /// many records (`count`) each node had before.
    fn request_all<R: Copy, T>(
        &self,
        requests: &[(u64, R)],
        signal: Signal,
        count: impl Fn(&Path) -> anyhow::Result<Vec<T>>,
        write: impl Fn(&Path, R) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<usize>> {
        let mut before = Vec::new();
        for &(id, request) in requests {
            let dir = &self.info(id).dir;
            before.push(count(dir)?.len());
            write(dir, request)?;
        }
        for &(id, _) in requests {
            self.signal_request(id, signal);
        }
        Ok(before)
    }

    /// Sends `signal`, which `gauntlet node` takes as a request (SIGUSR1, SIGUSR2, SIGHUP) but
    /// whose default action ends a process, once the node has installed its handler: a node
    /// just restarted may still be starting, and the signal would kill it. Returns whether it
    /// was sent (not if the handler is not there within 2 s).
    fn signal_request(&self, id: u64, signal: Signal) -> bool {
        let Some(child) = &self.node(id).child else { return false };
        let pid = child.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !catches(pid, signal) {
            if std::time::Instant::now() >= deadline {
                tracing::warn!(id, %signal, "the node never handled the signal: not sent");
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.signal(id, signal);
        true
    }

    /// Waits up to `bound` for node `id` to exit by itself; whether it did (it is then reaped).
    pub fn wait_for_exit(&mut self, id: u64, bound: Duration) -> bool {
        let deadline = std::time::Instant::now() + bound;
        let node = self.node_mut(id);
        let Some(child) = &mut node.child else { return true };
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    node.child = None;
                    node.paused = false;
                    return true;
                }
                Ok(None) if std::time::Instant::now() >= deadline => return false,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// SIGSTOP: the node freezes with its connections open.
    pub fn pause(&mut self, id: u64) {
        if self.state(id) == ProcessState::Running {
            self.signal(id, Signal::SIGSTOP);
            self.node_mut(id).paused = true;
        }
    }

    /// A clock fault: the node's ticks last `slower` times its tick from now on (1: the clock
    /// put right). Only for `gauntlet node`, which reads the request on SIGHUP
    /// ([`crate::node::clock`]). A node that is not running is left alone (it starts with a
    /// right clock).
    pub fn set_clock(&mut self, id: u64, slower: u32) -> anyhow::Result<()> {
        if self.state(id) != ProcessState::Running {
            return Ok(());
        }
        crate::node::clock::write_request(
            &self.info(id).dir,
            crate::node::clock::ClockRequest { slower },
        )?;
        self.signal_request(id, Signal::SIGHUP);
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) {
        if self.state(id) == ProcessState::Paused {
            self.signal(id, Signal::SIGCONT);
            self.node_mut(id).paused = false;
        }
    }

    /// Reaps nodes that exited by themselves; returns their ids and exit status.
    pub fn reap_exited(&mut self) -> Vec<(u64, std::process::ExitStatus)> {
        let mut exited = Vec::new();
        for n in &mut self.nodes {
            if let Some(child) = &mut n.child {
                if let Ok(Some(status)) = child.try_wait() {
                    exited.push((n.info.id, status));
                    n.child = None;
                    n.paused = false;
                }
            }
        }
        exited
    }

    /// Stops every node: SIGCONT, SIGTERM, and SIGKILL after `grace`; reaps them all.
    pub fn stop_all(&mut self, grace: Duration) {
        for id in self.ids() {
            self.signal(id, Signal::SIGCONT);
            self.signal(id, Signal::SIGTERM);
        }
        let deadline = std::time::Instant::now() + grace;
        for n in &mut self.nodes {
            let Some(child) = &mut n.child else { continue };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() >= deadline => {
                        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            n.child = None;
            n.paused = false;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
            }
        }
    }
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_handler_is_seen_before_the_signal_is_sent() {
        let mut plain = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let script = "trap 'exit 0' HUP; while :; do sleep 0.05; done";
        let mut trapping = std::process::Command::new("bash").args(["-c", script]).spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !catches(trapping.id(), Signal::SIGHUP) {
            assert!(std::time::Instant::now() < deadline, "bash never showed its HUP trap");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!catches(plain.id(), Signal::SIGHUP), "sleep handles no signal");
        assert!(!catches(trapping.id(), Signal::SIGUSR1));
        for child in [&mut plain, &mut trapping] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    #[test]
    fn node_ports_stay_below_the_ephemeral_range_and_differ() {
        let mut ports = PortAllocator::new(12345);
        let addrs: Vec<SocketAddr> = (0..20).map(|_| ports.next_addr().unwrap()).collect();
        let distinct: std::collections::BTreeSet<u16> = addrs.iter().map(|a| a.port()).collect();
        assert_eq!(distinct.len(), addrs.len());
        assert!(addrs.iter().all(|a| a.port() >= 10_000 && a.port() < ports.end));
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn a_port_held_by_one_allocator_is_skipped_by_the_next_until_it_is_dropped() {
        let mut first = PortAllocator::new(777);
        let held = first.next_addr().unwrap();
        assert!(claim_port(held.port()).is_none(), "the first allocator holds its claim");
        // The same seed starts at the same port, and must pass over the held one.
        let mut second = PortAllocator::new(777);
        assert_ne!(second.next_addr().unwrap(), held);
        // Dropped, the claim is free again. (Whether the port can be bound then depends on
        // every other process on the machine, so that is not asserted. A child that another
        // test is spawning holds a copy of every socket until its exec closes them: hence the
        // wait.)
        drop(first);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while claim_port(held.port()).is_none() {
            assert!(std::time::Instant::now() < deadline, "the claim outlived its allocator");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn close_seeds_start_far_apart() {
        let starts: Vec<u16> = (0..8).map(|seed| PortAllocator::new(seed).next).collect();
        for (i, a) in starts.iter().enumerate() {
            for b in &starts[i + 1..] {
                assert!(a.abs_diff(*b) > 16, "{starts:?}");
            }
        }
    }
}
