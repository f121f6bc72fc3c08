//! `gauntlet bench`: write throughput and latency of a 3-node cluster of real `gauntlet node`
//! processes on loopback, with durable storage (fdatasync on).
//!
//! Each client holds one connection to the leader and one request outstanding at a time; the
//! bench runs 1 client, then 64, each for a warm-up and then the measured duration. It prints a
//! table and, as its last line, one JSON object with the figures.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cluster::Credentials;

/// The options of `gauntlet bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Measured duration of each run, in seconds.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Warm-up before each measurement, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    /// The numbers of concurrent clients to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub clients: Vec<usize>,
    /// Keep the cluster's data directory (its path is printed) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

/// The figures of one run.
#[derive(Debug, Serialize)]
struct RunResult {
    clients: usize,
    writes: u64,
    errors: u64,
    seconds: f64,
    writes_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

const NODES: u64 = 3;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.seconds == 0 || args.clients.contains(&0) {
        return Err(crate::exit::bad_input("--seconds and --clients must be at least 1"));
    }
    let exe = std::env::current_exe().context("finding the gauntlet executable")?;
    let dir = TempDir::new(args.keep)?;
    let mut cluster = Cluster::start(&exe, dir.path())?;
    eprintln!("bench: 3 nodes in {}", dir.path().display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let results = runtime.block_on(async {
        tokio::select! {
            results = run_all(&args, &cluster.client_addrs) => results,
            // Interrupted: the cluster and the directory are cleaned up on the way out.
            _ = crate::run::interrupted() => Err(crate::exit::Interrupted.into()),
        }
    })?;
    cluster.stop();
    drop(dir);

    println!(
        "{:>8} {:>10} {:>8} {:>12} {:>9} {:>9} {:>9}",
        "clients", "writes", "errors", "writes/s", "p50 ms", "p99 ms", "max ms"
    );
    for r in &results {
        println!(
            "{:>8} {:>10} {:>8} {:>12.0} {:>9.3} {:>9.3} {:>9.3}",
            r.clients, r.writes, r.errors, r.writes_per_sec, r.p50_ms, r.p99_ms, r.max_ms
        );
    }
    let summary = serde_json::json!({
        "bench": "write",
        "nodes": NODES,
        "storage": "file, fdatasync",
        "results": results,
    });
    println!("{summary}");
    Ok(())
}

/// Finds the leader, then measures each client count in turn.
async fn run_all(args: &BenchArgs, client_addrs: &[SocketAddr]) -> anyhow::Result<Vec<RunResult>> {
    let leader = find_leader(client_addrs).await?;
    eprintln!("bench: leader at {leader}");
    let mut results = Vec::new();
    let mut next_client = 1_000_000;
    for &clients in &args.clients {
        let result = measure(
            leader,
            clients,
            next_client,
            Duration::from_millis(args.warmup_ms),
            Duration::from_secs(args.seconds),
        )
        .await?;
        next_client += clients as u64;
        results.push(result);
    }
    Ok(results)
}

/// A directory removed on drop (unless kept).
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn new(keep: bool) -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("gauntlet-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path, keep })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                eprintln!("bench: cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// The node processes; killed on drop, so that an error leaves nothing behind.
struct Cluster {
    children: Vec<Child>,
    client_addrs: Vec<SocketAddr>,
}

/// Free loopback ports: bound to port 0, then released for the nodes to bind.
fn free_addrs(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let listeners: Vec<StdListener> = (0..n)
        .map(|_| StdListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("finding free ports")?;
    listeners.iter().map(|l| l.local_addr().context("reading a bound address")).collect()
}

impl Cluster {
    fn start(exe: &Path, dir: &Path) -> anyhow::Result<Cluster> {
        let addrs = free_addrs(2 * NODES as usize)?;
        let (peer_addrs, client_addrs) = addrs.split_at(NODES as usize);
        let mut cluster = Cluster { children: Vec::new(), client_addrs: client_addrs.to_vec() };
        // Peers authenticate as in a run; clients need no token here.
        let credentials = Credentials::create(dir)?;
        for id in 1..=NODES {
            let i = (id - 1) as usize;
            let data = dir.join(format!("n{id}"));
            std::fs::create_dir_all(&data)?;
            let log = std::fs::File::create(data.join("node.log"))?;
            let mut cmd = Command::new(exe);
            cmd.arg("node")
                .arg("--id")
                .arg(id.to_string())
                .arg("--listen")
                .arg(peer_addrs[i].to_string())
                .arg("--client")
                .arg(client_addrs[i].to_string())
                .arg("--data-dir")
                .arg(&data)
                .arg("--cluster-secret-file")
                .arg(&credentials.secret_file);
            for peer in (1..=NODES).filter(|&p| p != id) {
                let j = (peer - 1) as usize;
                cmd.arg("--peer").arg(format!("{peer}={}", peer_addrs[j]));
                cmd.arg("--peer-client").arg(format!("{peer}={}", client_addrs[j]));
            }
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.env("RUST_LOG", "warn");
            }
            cmd.process_group(0);
            // SAFETY: the closure only calls prctl(2), which is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
                });
            }
            let child = cmd.spawn().with_context(|| format!("starting node {id}"))?;
            cluster.children.push(child);
        }
        Ok(cluster)
    }

    /// SIGTERM to every node, then waits; a node that does not exit in time is killed.
    fn stop(&mut self) {
        for child in &self.children {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            eprintln!("bench: node exited with {status}");
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One client connection speaking JSON Lines.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    id: u64,
    seq: u64,
    line: String,
    request: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr, id: u64) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(read),
            writer,
            id,
            seq: 0,
            line: String::with_capacity(128),
            request: Vec::with_capacity(128),
        })
    }

    /// Writes a register; Ok(true) when the node answered ok.
    async fn write(&mut self) -> anyhow::Result<bool> {
        use std::io::Write as _;
        self.seq += 1;
        self.request.clear();
        writeln!(
            self.request,
            "{{\"id\":{seq},\"client\":{id},\"seq\":{seq},\"op\":\"write\",\"key\":\"k{k}\",\"value\":{seq}}}",
            seq = self.seq,
            id = self.id,
            k = self.id % 16,
        )?;
        self.writer.write_all(&self.request).await?;
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            bail!("the node closed the connection");
        }
        Ok(self.line.contains("\"type\":\"ok\""))
    }
}

impl Client {
    /// Moves the session to another node: same client id, the sequence goes on.
    async fn reconnect(&mut self, addr: SocketAddr) -> std::io::Result<()> {
        let fresh = Client::connect(addr, self.id).await?;
        self.reader = fresh.reader;
        self.writer = fresh.writer;
        Ok(())
    }

    /// The leader's client address in the last answer, if it named one.
    fn leader_hint(&self) -> Option<SocketAddr> {
        let answer: serde_json::Value = serde_json::from_str(&self.line).ok()?;
        answer["leader_addr"].as_str()?.parse().ok()
    }
}

/// Finds the leader by writing through every node until one accepts.
async fn find_leader(addrs: &[SocketAddr]) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client_id = 1;
    while Instant::now() < deadline {
        for &addr in addrs {
            // Nodes may still be starting: a refused connection just means "not yet".
            if let Ok(mut client) = Client::connect(addr, client_id).await {
                client_id += 1;
                if let Ok(true) = client.write().await {
                    return Ok(addr);
                }
            }
        }
        // Waiting for other processes to start and elect: nothing to wait on but time.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no leader within 30 s")
}

/// Runs `clients` closed-loop clients against the leader.
async fn measure(
    leader: SocketAddr,
    clients: usize,
    first_client: u64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<RunResult> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let id = first_client + c as u64;
        tasks.spawn(async move {
            let mut client = Client::connect(leader, id).await?;
            let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let ok = client.write().await?;
                if sent >= measure_from {
                    if ok {
                        latencies_us.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
                if !ok {
                    // Leadership moved (or the write timed out): follow the hint if there is
                    // one, and do not hammer the cluster while it elects.
                    if let Some(addr) = client.leader_hint() {
                        client.reconnect(addr).await?;
                    } else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            anyhow::Ok((latencies_us, errors))
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (lat, err) = joined.context("a client task failed")??;
        all.extend(lat);
        errors += err;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    let seconds = duration.as_secs_f64();
    Ok(RunResult {
        clients,
        writes: all.len() as u64,
        errors,
        seconds,
        writes_per_sec: all.len() as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: all.last().map_or(0.0, |&us| us as f64 / 1000.0),
    })
}
