//! `gauntlet run`: one Jepsen-style test. It starts a cluster of `gauntlet node` processes
//! behind the frame-aware proxy, drives concurrent clients against it while the nemesis injects
//! faults, heals everything, checks that the cluster serves again, reads every key, stops the
//! nodes, and checks the run offline: linearizability of the history, Raft safety over what
//! every node applied, and liveness.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use checker::safety::{
    acknowledged_writes, check_safety, NodeEvent, NodeEventKind, NodeRecord, SafetyCheck,
};
use checker::{check, CheckOptions, CheckResult, Format, History, Verdict};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use workloads::generator::{Generator, Workload};
use workloads::{CasRegister, Kv};

use crate::catchup::CatchUp;
use crate::client::{Client, Directory, Outcome};
use crate::cluster::{Cluster, LeaderSource, NodeInfo, PortAllocator};
use crate::depose::Deposer;
use crate::exit;
use crate::nemesis::{current_leader, ClockedFault, FaultKind, Nemesis};
use crate::proxy::Proxy;
use crate::recorder::Recorder;
use crate::storm::RestartStorm;
use crate::system::{GauntletNodeOptions, LeaderWatch, System, SystemArgs};

/// Options of one test run.
#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct RunArgs {
    /// The system under test and its options.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: SystemArgs,
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// The workload: cas-register or kv.
    #[arg(long, default_value = "cas-register")]
    pub workload: String,
    /// Keys the clients spread over.
    #[arg(long, default_value_t = 5)]
    pub keys: usize,
    /// Client workers (Jepsen processes) running at once.
    #[arg(long, default_value_t = 10)]
    pub concurrency: u64,
    /// Operations per second over all workers.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of client load and faults, before the final phase.
    #[arg(long, default_value_t = 40)]
    pub time_limit: u64,
    /// Fault kinds, comma separated: kill, crash, disk-error, disk-damage, disk-corrupt, pause,
    /// partition, net, clock (the leader's clock slowed 4-10 times while it is cut off from
    /// its peers; gauntlet only), depose (leaders paused right after a burst of writes, every few
    /// seconds, beside the other faults), restart-storm (3-6 nodes killed and restarted in
    /// quick succession, every 5-10 s, beside the other faults), catch-up (a follower killed
    /// while the others write past its log, then brought back with late copies of the
    /// messages sent to it, every 3-6 s, beside the other faults); or all (every kind but
    /// disk-corrupt), or none.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// How many times the odd-numbered client workers resend a request whose answer was lost,
    /// with the same client id and sequence number, as real client libraries do (the
    /// even-numbered ones never resend, as Jepsen's clients); 0: no worker resends. Default: 2
    /// for systems with client sessions (gauntlet, exec), 0 for the others (etcd), where a resent
    /// write may rightly apply twice.
    #[arg(long)]
    pub client_retries: Option<u32>,
    /// Seconds between a fault's start and its end, and between one fault and the next.
    #[arg(long, default_value_t = 3.0)]
    pub nemesis_interval: f64,
    /// The seed of every random choice (operations, faults); random when absent, always printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run every node with a bug of the catalogue (raft's bugs, or the node-level stale-read).
    #[arg(long, value_parser = crate::node::bug_values(true))]
    pub bug: Option<String>,
    /// Where runs are stored.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// The nodes' tick in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// `gauntlet node`s snapshot their state every this many applied entries (0: never):
    /// often, so that a run compacts logs many times and lagging or restarted nodes come back
    /// by the leader's snapshot.
    #[arg(long, default_value_t = DEFAULT_SNAPSHOT_ENTRIES)]
    pub snapshot_entries: u64,
    /// After healing, the cluster must serve again within this many seconds.
    #[arg(long, default_value_t = 20)]
    pub recovery_timeout: u64,
    /// Longest time the linearizability search may take, in seconds (then: unknown).
    #[arg(long, default_value_t = 120)]
    pub check_time_limit: u64,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
}

/// The outcome of a run, also written as `verdict.json`.
#[derive(Debug, Serialize)]
pub struct RunVerdict {
    pub verdict: Verdict,
    pub seed: u64,
    /// The system under test.
    #[serde(default)]
    pub system: System,
    /// The checks that failed, by name.
    pub failed_checks: Vec<String>,
    pub linearizability: Option<CheckResult>,
    pub safety: Vec<SafetyCheck>,
    /// Checks the system cannot feed, and why (never counted as valid).
    #[serde(default)]
    pub unavailable_checks: Vec<String>,
    pub liveness: Liveness,
    pub node_crashes: Vec<String>,
    /// Refusals to start on damaged synced data (`disk-corrupt`), as a correct node must.
    pub expected_refusals: Vec<String>,
    pub stats: Value,
}

/// Whether the healed cluster served again in time.
#[derive(Clone, Debug, Serialize)]
pub struct Liveness {
    pub valid: bool,
    /// Seconds from healing to the first successful operation.
    pub recovered_after_s: Option<f64>,
    /// Keys whose final read succeeded, of all keys.
    pub final_reads_ok: usize,
    pub keys: usize,
}

/// How often the nodes of a torture run snapshot, in applied entries.
pub const DEFAULT_SNAPSHOT_ENTRIES: u64 = 200;

impl RunArgs {
    /// How many times the resending workers resend.
    pub fn client_retries(&self) -> u32 {
        self.client_retries.unwrap_or(if self.target.has_sessions() { 2 } else { 0 })
    }
}

/// Runs the test and returns the exit code: 0 valid, 1 invalid, 2 unknown, 3 bad options,
/// 130 interrupted, 255 when the harness itself failed.
pub fn run(args: RunArgs) -> i32 {
    let (workload, kinds) = match validate(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::FAILED;
        }
    };
    match runtime.block_on(run_async(args, workload, kinds)) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}

fn validate(args: &RunArgs) -> Result<(Workload, Vec<FaultKind>), String> {
    let workload: Workload = args.workload.parse()?;
    let mut kinds = FaultKind::parse_list(&args.nemesis)?;
    args.target.system.check_faults(&args.nemesis, &mut kinds)?;
    if args.nemesis == "all" {
        kinds.retain(|&k| args.target.takes_in_all(k));
    }
    args.target.validate()?;
    validate_system(args)?;
    if let Some(bug) = &args.bug {
        check_bug(args.target.system, bug)?;
    }
    if args.nodes == 0 || args.concurrency == 0 || args.keys == 0 {
        return Err("--nodes, --concurrency and --keys must be at least 1".into());
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(format!("--rate must be a positive number, not {}", args.rate));
    }
    // Each worker waits concurrency / rate seconds between operations.
    crate::exit::seconds("--rate", args.concurrency as f64 / args.rate).map_err(|_| {
        format!("--rate {}: too low for --concurrency {}", args.rate, args.concurrency)
    })?;
    crate::exit::seconds("--nemesis-interval", args.nemesis_interval)?;
    if args.tick_ms == 0 {
        return Err("--tick-ms must be at least 1".into());
    }
    let longest = crate::exit::MAX_SECONDS as u64;
    for (option, value) in [
        ("--time-limit", args.time_limit),
        ("--recovery-timeout", args.recovery_timeout),
        ("--check-time-limit", args.check_time_limit),
    ] {
        if !(1..=longest).contains(&value) {
            return Err(format!("{option} {value}: expected 1 to {longest} seconds"));
        }
    }
    crate::cluster::ensure_descriptors(args.nodes, args.concurrency)?;
    Ok((workload, kinds))
}

/// Whether `bug` can be planted in `system`'s nodes (for `gauntlet run` and campaigns).
pub(crate) fn check_bug(system: System, bug: &str) -> Result<(), String> {
    if system != System::Gauntlet {
        let name = system.name();
        return Err(format!("--bug plants bugs in gauntlet's nodes; --system {name} has none"));
    }
    if bug != "stale-read" {
        bug.parse::<raft::Bug>()
            .map_err(|e| format!("--bug: {e}; or the node-level stale-read"))?;
    }
    Ok(())
}

/// The run's options that depend on the system.
fn validate_system(args: &RunArgs) -> Result<(), String> {
    let system = args.target.system.name();
    if !args.target.has_sessions() && args.client_retries.is_some_and(|r| r > 0) {
        return Err(format!(
            "--client-retries: --system {system} has no client sessions, so a resent write may \
             apply twice and look like a bug of the system; use 0"
        ));
    }
    Ok(())
}

async fn run_async(
    args: RunArgs,
    workload: Workload,
    kinds: Vec<FaultKind>,
) -> anyhow::Result<i32> {
    let seed = args.seed.unwrap_or_else(|| rand::thread_rng().gen());
    println!("seed: {seed}");
    let dir = create_run_dir(&args.results, seed)?;
    println!("run: {}", dir.display());
    write_test_json(&dir, &args, seed)?;

    let mut run = Run::start(&args, seed, &dir, &kinds).await?;
    let outcome = tokio::select! {
        r = run.drive(&args, seed, workload, kinds) => r.map(Some),
        _ = interrupted() => Ok(None),
    };
    run.stop().await;
    let Some(()) = outcome? else {
        eprintln!("interrupted: every node was stopped; the partial run is in {}", dir.display());
        return Ok(exit::INTERRUPTED);
    };

    let verdict = check_run(&dir, &args, seed, workload, &run).await?;
    std::fs::write(dir.join("verdict.json"), serde_json::to_string_pretty(&verdict)? + "\n")?;
    let report = crate::report::write_report(&dir)
        .map_err(|e| eprintln!("warning: no report.html: {e:#}"))
        .ok();
    print_summary(&verdict, &dir, report.as_deref());
    Ok(exit::of_verdict(verdict.verdict))
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// A run in progress: the processes, the proxy, the history.
struct Run {
    cluster: Cluster,
    proxy: Option<Proxy>,
    rec: Recorder,
    dir: Arc<Directory>,
    nemesis: Nemesis,
    started: Instant,
    healed_at: Option<Instant>,
    liveness: Option<Liveness>,
    crashes: Vec<String>,
    /// Whether the nemesis may crash nodes, fail their disks or damage their logs (then the
    /// check crash-recovery runs).
    storage_faults: bool,
    /// Messages (bytes, for byte-stream links) the proxy forwarded, dropped and duplicated,
    /// over all links.
    proxy_totals: Value,
    target: SystemArgs,
    /// The leader as the nodes report it (systems without node records).
    leader_watch: Option<LeaderWatch>,
}

impl Run {
    async fn start(
        args: &RunArgs,
        seed: u64,
        dir: &Path,
        kinds: &[FaultKind],
    ) -> anyhow::Result<Run> {
        let ids: Vec<u64> = (1..=args.nodes).collect();
        let mut ports = PortAllocator::new(seed ^ (u64::from(std::process::id()) << 32));
        let mut addrs = Vec::new();
        for &id in &ids {
            addrs.push((id, ports.next_addr()?, ports.next_addr()?));
        }
        let peers: Vec<(u64, SocketAddr)> = addrs.iter().map(|&(id, peer, _)| (id, peer)).collect();
        let proxy = Proxy::start_mode(&peers, seed, args.target.proxy_mode()).await?;
        let infos = addrs
            .iter()
            .map(|&(id, peer_addr, client_addr)| NodeInfo {
                id,
                peer_addr,
                client_addr,
                dir: dir.join("nodes").join(format!("n{id}")),
                peers: ids.iter().filter(|&&p| p != id).map(|&p| (p, proxy.addr(id, p))).collect(),
            })
            .collect();
        let own = GauntletNodeOptions {
            tick_ms: args.tick_ms,
            snapshot_entries: args.snapshot_entries,
            bug: args.bug.clone(),
            crash_disk: kinds.iter().any(|k| k.needs_crash_disk()),
        };
        let cluster_name = format!("gauntlet-{seed}-{}", std::process::id());
        let (launcher, api) = args.target.launcher(dir, own, &cluster_name)?;
        let mut cluster = Cluster::new(launcher, infos, ports);
        let started = Instant::now();
        let rec = Recorder::create(&dir.join("history.jsonl"), started.into_std())?;
        cluster.start_all()?;
        let leader_watch = match args.target.system {
            _ if args.target.writes_node_records() => None,
            System::Etcd => Some(LeaderWatch::etcd(cluster.client_addrs().clone())),
            _ => Some(LeaderWatch::lines(cluster.client_addrs().clone())),
        };
        if let Some(watch) = &leader_watch {
            cluster.leader_source = LeaderSource::Reported(watch.leader.clone());
        }
        let directory = Arc::new(Directory::new(cluster.client_addrs().clone(), api));
        Ok(Run {
            cluster,
            proxy: Some(proxy),
            rec,
            dir: directory,
            nemesis: Nemesis::new(Vec::new(), seed),
            started,
            healed_at: None,
            liveness: None,
            crashes: Vec::new(),
            storage_faults: kinds.iter().any(|k| k.is_storage_fault()),
            proxy_totals: Value::Null,
            target: args.target.clone(),
            leader_watch,
        })
    }

    /// The whole test: wait for a leader, load and faults, heal, final reads.
    async fn drive(
        &mut self,
        args: &RunArgs,
        seed: u64,
        workload: Workload,
        kinds: Vec<FaultKind>,
    ) -> anyhow::Result<()> {
        self.wait_for_leader(Duration::from_secs(args.recovery_timeout)).await?;
        let deposer = kinds.contains(&FaultKind::Depose).then(|| Deposer::new(seed));
        let burst = deposer.as_ref().map(|d| d.burst.clone()).unwrap_or_default();
        let storm = kinds.contains(&FaultKind::RestartStorm).then(|| RestartStorm::new(seed));
        let catch_up = kinds.contains(&FaultKind::CatchUp).then(|| CatchUp::new(seed));
        let mut clocked: Vec<Box<dyn ClockedFault>> = deposer
            .map(|d| Box::new(d) as Box<dyn ClockedFault>)
            .into_iter()
            .chain(storm.map(|s| Box::new(s) as Box<dyn ClockedFault>))
            .chain(catch_up.map(|c| Box::new(c) as Box<dyn ClockedFault>))
            .collect();
        self.nemesis = Nemesis::new(kinds, seed);

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut workers = tokio::task::JoinSet::new();
        let per_worker = Duration::from_secs_f64(args.concurrency as f64 / args.rate);
        for w in 0..args.concurrency {
            let resends = if w % 2 == 1 { args.client_retries() } else { 0 };
            let mut client = Client::new(w, args.concurrency, self.dir.clone(), self.rec.clone())
                .resending(resends);
            let burst = burst.clone();
            let mut gen = Generator::new(workload, args.keys, seed, w);
            let mut stop = stop_rx.clone();
            workers.spawn(async move {
                let mut pace = tokio::time::interval(per_worker);
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    // In a burst (the depose fault's), operations go back to back.
                    if !burst.load(std::sync::atomic::Ordering::Relaxed) {
                        tokio::select! {
                            _ = stop.changed() => break,
                            _ = pace.tick() => {}
                        }
                    }
                    if *stop.borrow() {
                        break;
                    }
                    let op = gen.next_op();
                    if let Outcome::Ok(result) = client.run(&op, Duration::from_secs(5)).await? {
                        gen.observe(op.f, &op.key, &result);
                    }
                }
                anyhow::Ok(())
            });
        }

        let bar = progress_bar(args);
        let end = Instant::now() + Duration::from_secs(args.time_limit);
        let interval = Duration::from_secs_f64(args.nemesis_interval);
        let mut jitter = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
        let mut next_fault = Instant::now() + interval.mul_f64(jitter.gen_range(0.5..1.5));
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        while Instant::now() < end {
            ticker.tick().await;
            self.note_crashes();
            let proxy = self.proxy.as_ref().expect("the proxy runs until the run stops");
            for fault in &mut clocked {
                fault.tick(&mut self.cluster, proxy, &self.rec)?;
            }
            if Instant::now() >= next_fault {
                self.nemesis.step(
                    &mut self.cluster,
                    self.proxy.as_ref().expect("the proxy runs until the run stops"),
                    &self.rec,
                )?;
                next_fault = Instant::now() + interval.mul_f64(jitter.gen_range(0.5..1.5));
            }
            let c = self.rec.counts();
            bar.set_position(self.started.elapsed().as_secs().min(args.time_limit));
            bar.set_message(format!(
                "ops {} (ok {} fail {} info {}) | fault: {}",
                c.invoked,
                c.ok,
                c.fail,
                c.info,
                self.nemesis.describe()
            ));
        }
        let _ = stop_tx.send(true);
        for fault in &mut clocked {
            let proxy = self.proxy.as_ref().expect("the proxy runs until the run stops");
            let struck = fault.stop(&mut self.cluster, proxy, &self.rec)?;
            self.nemesis.started.insert(fault.kind().name(), struck);
        }
        bar.set_message("waiting for clients to finish their operations");
        while let Some(joined) = workers.join_next().await {
            joined.context("a client worker panicked")??;
        }
        bar.finish_and_clear();

        // The final phase: heal everything and require the cluster to serve again.
        self.nemesis.heal_all(
            &mut self.cluster,
            self.proxy.as_ref().expect("the proxy runs until the run stops"),
            &self.rec,
        )?;
        self.rec.nemesis("heal", Value::Null)?;
        self.healed_at = Some(Instant::now());
        self.liveness = Some(self.final_reads(args, workload).await?);
        if self.target.writes_node_records() {
            self.wait_for_convergence(Duration::from_secs(10)).await;
        }
        self.note_crashes();
        self.rec.flush()?;
        Ok(())
    }

    async fn wait_for_leader(&mut self, bound: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + bound;
        while current_leader(&self.cluster).is_none() {
            self.note_crashes();
            if Instant::now() >= deadline {
                let mut why = format!(
                    "no leader was elected within {} s of starting the cluster",
                    bound.as_secs()
                );
                for crash in &self.crashes {
                    why.push_str(&format!("; {crash} (see its node.log)"));
                }
                bail!(why);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Reads every key through a fresh client; the first success after healing measures
    /// recovery.
    async fn final_reads(
        &mut self,
        args: &RunArgs,
        workload: Workload,
    ) -> anyhow::Result<Liveness> {
        let healed = self.healed_at.unwrap_or_else(Instant::now);
        let deadline = healed + Duration::from_secs(args.recovery_timeout);
        // A process number no worker uses.
        let mut client = Client::new(u64::MAX / 2, 1, self.dir.clone(), self.rec.clone());
        let mut recovered_after = None;
        let mut ok = 0;
        for key in 0..args.keys {
            let op = Generator::final_read(workload, key);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                if let Outcome::Ok(_) = client.run(&op, left.min(Duration::from_secs(5))).await? {
                    recovered_after.get_or_insert(healed.elapsed().as_secs_f64());
                    ok += 1;
                    break;
                }
            }
        }
        Ok(Liveness {
            valid: ok == args.keys,
            recovered_after_s: recovered_after,
            final_reads_ok: ok,
            keys: args.keys,
        })
    }

    /// Waits (bounded) until every node applied as far as the furthest one, so that the final
    /// logs can be compared.
    async fn wait_for_convergence(&mut self, bound: Duration) {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            let last: Vec<u64> = self
                .cluster
                .ids()
                .iter()
                .map(|&id| last_applied(&self.cluster.info(id).dir))
                .collect();
            if last.iter().min() == last.iter().max() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn note_crashes(&mut self) {
        for (id, status) in self.cluster.reap_exited() {
            let what = format!("node {id} exited by itself: {status}");
            tracing::warn!("{what}");
            self.crashes.push(what);
        }
    }

    /// Stops every node and the proxy; safe to call twice.
    async fn stop(&mut self) {
        self.cluster.stop_all(Duration::from_secs(3));
        if let Some(watch) = &self.leader_watch {
            // Nothing leads any more; what it saw stays for the verdict.
            watch.stop();
        }
        if let Some(proxy) = self.proxy.take() {
            let counts = proxy.counts();
            let sum = |f: fn(&crate::proxy::LinkCounts) -> u64| counts.values().map(f).sum::<u64>();
            self.proxy_totals = json!({
                "forwarded": sum(|c| c.forwarded),
                "dropped": sum(|c| c.dropped),
                "duplicated": sum(|c| c.duplicated),
                "connections_cut": sum(|c| c.connections_cut),
            });
            proxy.shutdown().await;
        }
        let _ = self.rec.flush();
    }
}

fn last_applied(node_dir: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(node_dir.join("applied.jsonl")) else { return 0 };
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok()?.get("index")?.as_u64())
        .unwrap_or(0)
}

async fn check_run(
    dir: &Path,
    args: &RunArgs,
    seed: u64,
    workload: Workload,
    run: &Run,
) -> anyhow::Result<RunVerdict> {
    let history_path = dir.join("history.jsonl");
    let history = History::read_file(&history_path, Format::Jsonl)
        .with_context(|| format!("reading {}", history_path.display()))?;
    let options = CheckOptions {
        time_limit: Some(Duration::from_secs(args.check_time_limit)),
        threads: 0,
        memory_limit: CheckOptions::machine_memory_limit(),
    };
    let checking = std::time::Instant::now();
    let linearizability = match workload {
        Workload::CasRegister => check(&CasRegister, &history, &options),
        Workload::Kv => check(&Kv, &history, &options),
    }
    .context("checking linearizability")?;
    let check_secs = checking.elapsed().as_secs_f64();

    let mut records = Vec::new();
    let mut unavailable_checks = Vec::new();
    if run.target.writes_node_records() {
        for id in run.cluster.ids() {
            records.push(NodeRecord::read_dir(id, &run.cluster.info(id).dir)?);
        }
    } else {
        unavailable_checks.push(format!(
            "raft-safety (election safety, log matching, state machine safety, acknowledged \
             writes in the logs): {} writes no node records",
            run.target.system.name()
        ));
    }
    let mut safety = if run.target.writes_node_records() {
        check_safety(&records, &acknowledged_writes(&history))
    } else {
        Vec::new()
    };
    let mut expected_refusals = Vec::new();
    for record in &records {
        let dir = &run.cluster.info(record.node).dir;
        expected_refusals.extend(crate::node::damage::refusals(record, dir)?);
    }
    if run.storage_faults {
        let ids = run.cluster.ids();
        let dirs: Vec<(u64, &Path)> =
            ids.iter().map(|&id| (id, run.cluster.info(id).dir.as_path())).collect();
        safety.push(crate::node::crash::check_recovery(&dirs)?);
    }
    let liveness = run.liveness.clone().unwrap_or(Liveness {
        valid: false,
        recovered_after_s: None,
        final_reads_ok: 0,
        keys: args.keys,
    });

    let mut failed = Vec::new();
    if linearizability.verdict == Verdict::Invalid {
        failed.push("linearizability".to_string());
    }
    failed.extend(safety.iter().filter(|c| !c.valid).map(|c| c.name.clone()));
    if !liveness.valid {
        failed.push("liveness".into());
    }
    if !run.crashes.is_empty() {
        failed.push("node-crashes".into());
    }
    let verdict = if !failed.is_empty() {
        Verdict::Invalid
    } else if linearizability.verdict == Verdict::Unknown {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };

    let leaders: usize = match &run.leader_watch {
        // Terms in which a member said it led, as often as the harness asked.
        Some(watch) => watch.leaderships_seen(),
        None => records
            .iter()
            .map(|r| {
                let leads = |e: &&NodeEvent| matches!(e.kind, NodeEventKind::BecameLeader { .. });
                r.events.iter().filter(leads).count()
            })
            .sum(),
    };
    let counts = run.rec.counts();
    let stats = json!({
        "duration_s": run.started.elapsed().as_secs_f64(),
        "operations": {"invoked": counts.invoked, "ok": counts.ok, "fail": counts.fail, "info": counts.info},
        "client_resends": {"sent": counts.resent, "then_answered": counts.resent_then_answered},
        "leaders_deposed": run.nemesis.started.get(FaultKind::Depose.name()).copied().unwrap_or(0),
        "faults": run.nemesis.started,
        "nemesis_events": counts.faults,
        "leaders_elected": leaders,
        "applied": records.iter().map(|r| (r.node.to_string(), r.applied.len())).collect::<BTreeMap<_, _>>(),
        // Snapshots each node's state became: the leader's, installed because it was behind, or
        // its own after a crash that lost the end of its applied records.
        "snapshots_restored": records.iter().map(|r| (r.node.to_string(), r.applied.iter().filter(|e| e.is_snapshot()).count())).collect::<BTreeMap<_, _>>(),
        "check_seconds": check_secs,
        "proxy_messages": run.proxy_totals,
    });
    Ok(RunVerdict {
        verdict,
        seed,
        system: run.target.system,
        failed_checks: failed,
        linearizability: Some(linearizability),
        safety,
        unavailable_checks,
        liveness,
        node_crashes: run.crashes.clone(),
        expected_refusals,
        stats,
    })
}

/// Now as `YYYYmmdd-HHMMSS` in UTC.
pub fn utc_now_stamp() -> String {
    utc_stamp(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}

/// `results/<run-id>/`, with `results/latest` pointing at it.
fn create_run_dir(results: &Path, seed: u64) -> anyhow::Result<PathBuf> {
    let id = format!("{}-s{seed}", utc_now_stamp());
    let dir = results.join(&id);
    std::fs::create_dir_all(dir.join("nodes")).map_err(|e| {
        exit::bad_input(format!(
            "--results {}: cannot create {}: {e}",
            results.display(),
            dir.display()
        ))
    })?;
    let latest = results.join("latest");
    let _ = std::fs::remove_file(&latest);
    std::os::unix::fs::symlink(&id, &latest)
        .with_context(|| format!("linking {}", latest.display()))?;
    Ok(dir)
}

/// `YYYYmmdd-HHMMSS` in UTC, from seconds since the epoch (the civil calendar from days).
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

fn write_test_json(dir: &Path, args: &RunArgs, seed: u64) -> anyhow::Result<()> {
    let mut replay = format!(
        "gauntlet run --seed {seed} --nodes {} --workload {} --keys {} --concurrency {} --rate {} --time-limit {} --nemesis {} --nemesis-interval {}",
        args.nodes, args.workload, args.keys, args.concurrency, args.rate, args.time_limit, args.nemesis, args.nemesis_interval
    );
    if let Some(bug) = &args.bug {
        replay.push_str(&format!(" --bug {bug}"));
    }
    for arg in args.target.replay_args() {
        replay.push(' ');
        replay.push_str(&shell_words::quote(&arg));
    }
    if let Some(retries) = args.client_retries {
        replay.push_str(&format!(" --client-retries {retries}"));
    }
    if args.snapshot_entries != DEFAULT_SNAPSHOT_ENTRIES {
        replay.push_str(&format!(" --snapshot-entries {}", args.snapshot_entries));
    }
    let test = json!({
        "seed": seed,
        "options": args,
        "replay": replay,
        "version": env!("CARGO_PKG_VERSION"),
        "started_unix_ms": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
    });
    std::fs::write(dir.join("test.json"), serde_json::to_string_pretty(&test)? + "\n")?;
    Ok(())
}

fn progress_bar(args: &RunArgs) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(args.time_limit);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// The run's summary; its last lines are the verdict and where to look at the run.
fn print_summary(v: &RunVerdict, dir: &Path, report: Option<&Path>) {
    let ops = &v.stats["operations"];
    println!(
        "operations: {} invoked, {} ok, {} fail, {} info; faults: {}; leaders elected: {}",
        ops["invoked"],
        ops["ok"],
        ops["fail"],
        ops["info"],
        v.stats["faults"],
        v.stats["leaders_elected"]
    );
    if let Some(l) = &v.linearizability {
        println!("linearizability: {} ({})", l.verdict, l.reason);
        if let Some(violation) = &l.violation {
            println!("{}", violation.render());
        }
    }
    for c in &v.safety {
        let state = if c.valid { "valid" } else { "INVALID" };
        println!("{}: {state}", c.name);
        for what in &c.violations {
            println!("  {what}");
        }
        for what in &c.unseen {
            println!("  not seen: {what}");
        }
    }
    for what in &v.unavailable_checks {
        println!("not available: {what}");
    }
    for refusal in &v.expected_refusals {
        println!("refused (expected): {refusal}");
    }
    match v.liveness.recovered_after_s {
        Some(s) if v.liveness.valid => println!("liveness: valid (served {s:.2} s after healing)"),
        _ => println!(
            "liveness: INVALID ({} of {} final reads succeeded)",
            v.liveness.final_reads_ok, v.liveness.keys
        ),
    }
    for c in &v.node_crashes {
        println!("node crash: {c}");
    }
    println!("results: {}", dir.display());
    println!("verdict: {}", v.verdict);
    if let Some(report) = report {
        println!("report: {}", report.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_follow_the_calendar() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_795_000_000 + 3_661), "20261118-120741");
    }
}
