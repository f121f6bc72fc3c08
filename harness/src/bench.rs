//! `gauntlet bench`: throughput and latency of writes, reads and a mix of both on a 3-node
//! cluster of real processes of the system under test on loopback, with durable storage
//! (`gauntlet node`: fdatasync on; etcd: its own fdatasync of its WAL), no proxy between the
//! nodes.
//!
//! Each client holds one connection and one request outstanding at a time: to the leader for
//! writes and the mix, and spread over every node for reads (any node serves a linearizable
//! read: `gauntlet node` through ReadIndex, etcd by its own read index); for each kind of
//! operation the bench runs 1 client, then 64, each for a warm-up and then the
//! measured duration. It prints a table and, as its last line, one JSON object with the
//! figures.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::client::{present_token, Api};
use crate::cluster::{Cluster, NodeInfo, PortAllocator};
use crate::system::{GauntletNodeOptions, System, SystemArgs};

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
    /// What the clients do, comma separated: write (a register write each), read (a
    /// linearizable read each: through ReadIndex on gauntlet node's default --reads), mix
    /// (every other operation a read).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "write,read,mix")]
    pub ops: Vec<BenchOp>,
    /// Keep the cluster's data directory (its path is printed) instead of removing it.
    #[arg(long)]
    pub keep: bool,
    /// The system to measure, and its options.
    #[command(flatten)]
    pub target: SystemArgs,
}

/// What a bench client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchOp {
    Write,
    Read,
    Mix,
}

impl BenchOp {
    /// Whether the `n`th operation of a client is a read.
    fn reads_at(self, n: u64) -> bool {
        match self {
            BenchOp::Write => false,
            BenchOp::Read => true,
            BenchOp::Mix => n % 2 == 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BenchOp::Write => "write",
            BenchOp::Read => "read",
            BenchOp::Mix => "mix",
        }
    }
}

/// The figures of one run.
#[derive(Debug, Serialize)]
struct RunResult {
    op: BenchOp,
    clients: usize,
    /// Operations acknowledged within the measured duration.
    ops: u64,
    errors: u64,
    seconds: f64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

const NODES: u64 = 3;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.seconds == 0 || args.clients.contains(&0) {
        return Err(crate::exit::bad_input("--seconds and --clients must be at least 1"));
    }
    if args.ops.is_empty() {
        return Err(crate::exit::bad_input("--ops needs at least one of write, read, mix"));
    }
    args.target.validate().map_err(crate::exit::bad_input)?;
    let dir = TempDir::new(args.keep)?;
    let (mut cluster, api) = start_cluster(&args, dir.path())?;
    eprintln!("bench: 3 {} nodes in {}", args.target.system.name(), dir.path().display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let addrs: Vec<SocketAddr> = cluster.client_addrs().values().copied().collect();
    let results = runtime.block_on(async {
        tokio::select! {
            results = run_all(&args, &api, &addrs) => results,
            // Interrupted: the cluster and the directory are cleaned up on the way out.
            _ = crate::run::interrupted() => Err(crate::exit::Interrupted.into()),
        }
    })?;
    cluster.stop_all(Duration::from_secs(10));
    drop(dir);

    println!(
        "{:>6} {:>8} {:>10} {:>8} {:>12} {:>9} {:>9} {:>9}",
        "ops", "clients", "done", "errors", "ops/s", "p50 ms", "p99 ms", "max ms"
    );
    for r in &results {
        println!(
            "{:>6} {:>8} {:>10} {:>8} {:>12.0} {:>9.3} {:>9.3} {:>9.3}",
            r.op.name(),
            r.clients,
            r.ops,
            r.errors,
            r.ops_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.max_ms
        );
    }
    let summary = serde_json::json!({
        "bench": "ops",
        "system": args.target.system.name(),
        "nodes": NODES,
        "storage": match args.target.system {
            System::Gauntlet => "file, fdatasync",
            System::Etcd => "etcd's WAL, fdatasync",
            System::Exec => "the service's own",
        },
        "results": results,
    });
    println!("{summary}");
    Ok(())
}

/// Finds the leader, then measures each client count in turn.
async fn run_all(
    args: &BenchArgs,
    api: &Api,
    client_addrs: &[SocketAddr],
) -> anyhow::Result<Vec<RunResult>> {
    let leader = find_leader(api, client_addrs).await?;
    eprintln!("bench: leader at {leader}");
    let mut results = Vec::new();
    let mut next_client = 1_000_000;
    for &op in &args.ops {
        for &clients in &args.clients {
            let result = measure(api, leader, client_addrs, op, clients, next_client, args).await?;
            next_client += clients as u64;
            results.push(result);
        }
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

/// Starts the three nodes (the harness's cluster, killed on drop, so that an error leaves
/// nothing behind), each reaching its peers directly.
fn start_cluster(args: &BenchArgs, dir: &Path) -> anyhow::Result<(Cluster, Api)> {
    let mut ports = PortAllocator::new(u64::from(std::process::id()));
    let mut addrs = Vec::new();
    for id in 1..=NODES {
        addrs.push((id, ports.next_addr()?, ports.next_addr()?));
    }
    let infos = addrs
        .iter()
        .map(|&(id, peer_addr, client_addr)| NodeInfo {
            id,
            peer_addr,
            client_addr,
            dir: dir.join(format!("n{id}")),
            peers: addrs.iter().filter(|a| a.0 != id).map(|a| (a.0, a.1)).collect(),
        })
        .collect();
    let own = GauntletNodeOptions {
        tick_ms: 10,
        snapshot_entries: crate::node::server::SnapshotPolicy::default().every_entries,
        bug: None,
        crash_disk: false,
    };
    let cluster_name = format!("gauntlet-bench-{}", std::process::id());
    let (launcher, api) = args.target.launcher(dir, own, &cluster_name)?;
    let mut cluster = Cluster::new(launcher, infos, ports);
    cluster.start_all()?;
    Ok((cluster, api))
}

/// One benchmark client: a connection speaking the project's JSON Lines, or an HTTP client of
/// etcd's gateway.
enum Writer {
    Lines(Client),
    Etcd { http: reqwest::Client, api: crate::system::etcd::EtcdApi, addr: SocketAddr, key: String },
}

impl Writer {
    async fn connect(api: &Api, addr: SocketAddr, id: u64) -> anyhow::Result<Writer> {
        Ok(match api {
            Api::Lines { token } => {
                let mut client = Client::connect(addr, id).await?;
                if let Some(token) = token {
                    present_token(&mut client.reader, &mut client.writer, token)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                Writer::Lines(client)
            }
            Api::Etcd(api) => Writer::Etcd {
                http: reqwest::Client::new(),
                api: api.clone(),
                addr,
                key: format!("k{}", id % 16),
            },
        })
    }

    /// Writes a register; Ok(true) when the write was acknowledged.
    async fn write(&mut self) -> anyhow::Result<bool> {
        match self {
            Writer::Lines(client) => client.call("write").await,
            Writer::Etcd { http, addr, key, .. } => {
                Ok(crate::system::etcd::put(http, *addr, key, "1", Duration::from_secs(5)).await)
            }
        }
    }

    /// Reads a register; Ok(true) when the read was answered.
    async fn read(&mut self) -> anyhow::Result<bool> {
        match self {
            Writer::Lines(client) => client.call("read").await,
            Writer::Etcd { http, api, addr, key } => {
                let op = workloads::generator::Op {
                    f: "read",
                    key: key.clone(),
                    value: serde_json::Value::Null,
                };
                let t = Duration::from_secs(5);
                Ok(matches!(
                    crate::system::etcd::request(http, api, *addr, &op, t).await,
                    crate::client::Attempt::Answer(reply) if reply["type"] == "ok"
                ))
            }
        }
    }

    /// After a refused write: follow the leader's hint if there is one (etcd forwards writes
    /// to its leader itself), else give the cluster a moment to elect.
    async fn after_refusal(&mut self, api: &Api) -> anyhow::Result<()> {
        if let Writer::Lines(client) = self {
            if let Some(addr) = client.leader_hint() {
                // The same session on the new leader: its sequence numbers go on (a session
                // starting again at 0 would be answered "stale request" until it caught up).
                let seq = client.seq;
                *self = Writer::connect(api, addr, client.id).await?;
                if let Writer::Lines(moved) = self {
                    moved.seq = seq;
                }
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
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

    /// Writes (`op` write) or reads (`op` read) a register; Ok(true) when the node answered
    /// ok.
    async fn call(&mut self, op: &str) -> anyhow::Result<bool> {
        use std::io::Write as _;
        self.seq += 1;
        self.request.clear();
        match op {
            "read" => writeln!(
                self.request,
                "{{\"id\":{seq},\"op\":\"read\",\"key\":\"k{k}\"}}",
                seq = self.seq,
                k = self.id % 16,
            )?,
            _ => writeln!(
                self.request,
                "{{\"id\":{seq},\"client\":{id},\"seq\":{seq},\"op\":\"write\",\"key\":\"k{k}\",\"value\":{seq}}}",
                seq = self.seq,
                id = self.id,
                k = self.id % 16,
            )?,
        }
        self.writer.write_all(&self.request).await?;
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            bail!("the node closed the connection");
        }
        Ok(self.line.contains("\"type\":\"ok\""))
    }
}

impl Client {
    /// The leader's client address in the last answer, if it named one.
    fn leader_hint(&self) -> Option<SocketAddr> {
        let answer: serde_json::Value = serde_json::from_str(&self.line).ok()?;
        answer["leader_addr"].as_str()?.parse().ok()
    }
}

/// Finds the leader: for the project's nodes, by writing through every node until one
/// accepts; for etcd, by asking each member's status.
async fn find_leader(api: &Api, addrs: &[SocketAddr]) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client_id = 1;
    let http = reqwest::Client::new();
    while Instant::now() < deadline {
        for &addr in addrs {
            if let Api::Etcd(_) = api {
                if crate::system::etcd::is_leader(&http, addr).await {
                    return Ok(addr);
                }
                continue;
            }
            // Nodes may still be starting: a refused connection just means "not yet".
            if let Ok(mut client) = Writer::connect(api, addr, client_id).await {
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
    api: &Api,
    leader: SocketAddr,
    nodes: &[SocketAddr],
    op: BenchOp,
    clients: usize,
    first_client: u64,
    args: &BenchArgs,
) -> anyhow::Result<RunResult> {
    let warmup = Duration::from_millis(args.warmup_ms);
    let duration = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let id = first_client + c as u64;
        let api = api.clone();
        let addr = if op == BenchOp::Read { nodes[c % nodes.len()] } else { leader };
        tasks.spawn(async move {
            let mut client = Writer::connect(&api, addr, id).await?;
            let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            for n in 0.. {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let ok = if op.reads_at(n) { client.read().await? } else { client.write().await? };
                if sent >= measure_from {
                    if ok {
                        latencies_us.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
                if !ok {
                    // Leadership moved (or the write timed out).
                    client.after_refusal(&api).await?;
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
        op,
        clients,
        ops: all.len() as u64,
        errors,
        seconds,
        ops_per_sec: all.len() as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: all.last().map_or(0.0, |&us| us as f64 / 1000.0),
    })
}
