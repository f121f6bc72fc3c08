//! `gauntlet node`: one Raft peer as an OS process, serving a replicated key/value store to
//! clients over JSON Lines (see `docs/node.md` and `docs/protocol.md`).

pub mod clock;
pub mod crash;
pub mod damage;
pub mod events;
pub mod kv;
pub mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::builder::TypedValueParser;
use clap::Args;
use raft::node::{Node, NodeConfig, TraceEvent};
use raft::storage::{CrashDisk, Disk, FileStorage, FileStorageOptions, OsDisk, Storage};
use raft::transport::{ClusterSecret, TransportConfig};
use raft::{Config, Index, NodeId, Term};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use self::events::{AppliedLog, EventKind, EventLog};
use self::server::{ClientLimits, ReadPath, Server, SnapshotPolicy};

/// The smallest `--max-frame-bytes`: a longest request line (1 MiB) as one entry, with room for
/// the AppendEntries around it.
const MIN_FRAME_BYTES: usize = (1 << 20) + (64 << 10);

/// The options of `gauntlet node`.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// This node's id.
    #[arg(long)]
    pub id: NodeId,
    /// The address to listen on for the peers' traffic.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The address to listen on for clients (JSON Lines).
    #[arg(long)]
    pub client: SocketAddr,
    /// ID=ADDR: the address this node uses to reach peer ID (repeated, one per other peer).
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// ID=ADDR: the client address of peer ID, given to clients in not-leader answers.
    #[arg(long = "peer-client", value_parser = parse_peer)]
    pub peer_clients: Vec<(NodeId, SocketAddr)>,
    /// Where the Raft log, events.jsonl and applied.jsonl live.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The real time of one protocol tick, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// A deliberately broken variant: a name of the core's catalogue (raft::Bug), or the
    /// node's own `stale-read`.
    #[arg(long, value_parser = bug_values(true).try_map(|s| s.parse::<NodeBug>()))]
    pub bug: Option<NodeBug>,
    /// A file holding the cluster's secret (at least 16 bytes; a final newline is not part of
    /// it): peers prove they hold it before any frame is read. Required when --listen is not
    /// a loopback address.
    #[arg(long, value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// A file holding the client token: the first request on every client connection must be
    /// {"op":"auth","token":...} with it.
    #[arg(long, value_name = "FILE")]
    pub client_token_file: Option<PathBuf>,
    /// Client connections open at once; one more is answered `busy` and closed.
    #[arg(long, default_value_t = ClientLimits::default().max_connections)]
    pub max_clients: usize,
    /// Seconds after which a client connection with nothing outstanding that sends nothing
    /// is closed.
    #[arg(long, default_value_t = ClientLimits::default().idle_timeout.as_secs_f64())]
    pub client_idle_timeout: f64,
    /// Requests of one client connection read but not yet answered; at the bound the node
    /// stops reading that connection until its answers drain.
    #[arg(long, default_value_t = ClientLimits::default().max_outstanding)]
    pub max_outstanding: usize,
    /// How reads (read, get) are answered: through the log, by ReadIndex (a heartbeat round
    /// confirms the leadership; followers serve reads too), or by ReadIndex with lease reads
    /// (no round while the leader's lease holds; see docs/node.md for the clock bound).
    #[arg(long, value_enum, default_value = "read-index")]
    pub reads: ReadPath,
    /// Entries the leader holds above its commit index; one more proposal is answered `busy`
    /// (flow control: a cluster slower than its clients refuses work instead of holding it).
    #[arg(long, default_value_t = Config::service(1, vec![1]).max_uncommitted_entries)]
    pub max_uncommitted_entries: usize,
    /// As --max-uncommitted-entries, in bytes of entries.
    #[arg(long, default_value_t = Config::service(1, vec![1]).max_uncommitted_bytes)]
    pub max_uncommitted_bytes: usize,
    /// Inbound peer connections open at once.
    #[arg(long, default_value_t = TransportConfig::default().max_inbound_connections)]
    pub max_peer_connections: usize,
    /// Seconds after which an inbound peer connection that carries no frame is closed.
    #[arg(long, default_value_t = TransportConfig::default().idle_timeout.as_secs_f64())]
    pub peer_idle_timeout: f64,
    /// The largest frame a peer may send, in bytes: what one peer connection can make the
    /// node buffer. At least 1 MiB + 64 KiB, so that the largest request fits in one frame.
    #[arg(long, default_value_t = TransportConfig::default().max_frame_len)]
    pub max_frame_bytes: usize,
    /// Snapshot the state once this many entries were applied since the last snapshot, so that
    /// the log, its storage and a restart stay bounded (0: not by count).
    #[arg(long, default_value_t = SnapshotPolicy::default().every_entries)]
    pub snapshot_entries: u64,
    /// Snapshot the state once this many bytes of commands were applied since the last
    /// snapshot (0: not by size).
    #[arg(long, default_value_t = SnapshotPolicy::default().every_bytes)]
    pub snapshot_bytes: u64,
    /// Put the Raft storage on a disk that keeps track of what is not yet synced, so that
    /// the harness can make a simulated power failure (SIGUSR1 with a request file, see
    /// docs/node.md). For torture runs only: unsynced writes are kept in memory.
    #[arg(long)]
    pub crash_disk: bool,
}

/// A bug to switch on in the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeBug {
    /// One of the protocol core's catalogue.
    Core(raft::Bug),
    /// The leader answers reads from its own state without the log or a leadership check.
    StaleRead,
}

/// `--bug`'s values, with what each breaks, as `--help` lists them: the core's catalogue, and
/// with `node_level` also the node's own `stale-read`.
pub fn bug_values(node_level: bool) -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    let core = raft::Bug::ALL.into_iter().map(|b| PossibleValue::new(b.name()).help(b.summary()));
    let node = PossibleValue::new("stale-read")
        .help("(node) the leader answers reads from its own state, without a leadership check");
    let values: Vec<PossibleValue> = core.chain(node_level.then_some(node)).collect();
    clap::builder::PossibleValuesParser::new(values)
}

impl FromStr for NodeBug {
    type Err = String;
    fn from_str(s: &str) -> Result<NodeBug, String> {
        if s == "stale-read" {
            return Ok(NodeBug::StaleRead);
        }
        raft::Bug::from_str(s)
            .map(NodeBug::Core)
            .map_err(|e| format!("{e}; or the node's: stale-read"))
    }
}

fn parse_peer(s: &str) -> Result<(NodeId, SocketAddr), String> {
    let (id, addr) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected ID=ADDR"))?;
    let id = id.parse().map_err(|e| format!("{s:?}: bad id: {e}"))?;
    let addr = addr.parse().map_err(|e| format!("{s:?}: bad address: {e}"))?;
    Ok((id, addr))
}

/// Runs the node until SIGTERM or SIGINT (then a clean shutdown) or a fatal error.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    init_logging();
    // One thread runs every task of the node; the Raft storage has its own thread for fsync.
    // A node's work per request is small, and on a machine whose cores several nodes share,
    // hand-offs between worker threads cost more than they give (measured with `gauntlet
    // bench`: about 25% more writes per second, and lower latency, than a multi-threaded
    // runtime).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The Raft configuration of this node.
fn raft_config(args: &NodeArgs) -> anyhow::Result<Config> {
    let mut peers: Vec<NodeId> = args.peers.iter().map(|(id, _)| *id).collect();
    peers.push(args.id);
    peers.sort_unstable();
    let mut config = Config::service(args.id, peers);
    config.max_uncommitted_entries = args.max_uncommitted_entries;
    config.max_uncommitted_bytes = args.max_uncommitted_bytes;
    if args.reads == ReadPath::Lease {
        config.read_only = raft::ReadOnly::LeaseBased;
    }
    if let Some(NodeBug::Core(bug)) = args.bug {
        #[cfg(feature = "bugs")]
        {
            config.bug = Some(bug);
        }
        #[cfg(not(feature = "bugs"))]
        bail!("--bug {bug}: this gauntlet was built without the `bugs` feature");
    }
    config.validate().context("the cluster configuration")?;
    Ok(config)
}

/// The options, checked before anything starts: an error here is the command line's fault.
fn check_options(args: &NodeArgs) -> anyhow::Result<(Config, TransportConfig, ClientLimits)> {
    if args.peers.iter().any(|(p, _)| *p == args.id) {
        bail!("--peer {}=...: a node is not its own peer", args.id);
    }
    if args.tick_ms == 0 {
        bail!("--tick-ms must be at least 1");
    }
    Ok((raft_config(args)?, transport_config(args)?, client_limits(args)?))
}

async fn serve(args: NodeArgs) -> anyhow::Result<()> {
    let id = args.id;
    let (config, transport, limits) =
        check_options(&args).map_err(|e| crate::exit::bad_input(format!("{e:#}")))?;
    let dir = &args.data_dir;
    // Installed first: a crash requested while the node starts waits for it.
    let mut crash_signal = match args.crash_disk {
        true => Some(signal(SignalKind::user_defined1()).context("installing a SIGUSR1 handler")?),
        false => None,
    };
    // Clock faults (clock.rs); installed first too, as SIGHUP would otherwise end the process.
    let mut clock_signal = signal(SignalKind::hangup()).context("installing a SIGHUP handler")?;
    let error_signal = match args.crash_disk {
        true => Some(signal(SignalKind::user_defined2()).context("installing a SIGUSR2 handler")?),
        false => None,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let durable_vote = events::durable_vote(dir, id)?;
    let mut events = EventLog::open(dir, id)?;
    let applied_log = AppliedLog::open(dir)?;

    let crash_disk = match args.crash_disk {
        true => Some(CrashDisk::new(dir.join(crash::TRASH_DIR)).context("the crash disk's trash")?),
        false => None,
    };
    let disk: Arc<dyn Disk> = match &crash_disk {
        Some(disk) => Arc::new(disk.clone()),
        None => Arc::new(OsDisk),
    };
    let core_bug = match args.bug {
        Some(NodeBug::Core(bug)) => Some(bug),
        _ => None,
    };
    // Each start records one of started, restarted or refused, with what it recovered: a
    // vote granted before a crash must be here after it.
    let storage = match open_storage(dir, disk, core_bug, durable_vote, &applied_log) {
        Ok(storage) => {
            let (term, vote, last_index) = recovered(&storage);
            let kind = match storage.recovery().created {
                true => EventKind::Started { vote, last_index },
                false => EventKind::Restarted { vote, last_index },
            };
            events.record(events::event(term, kind))?;
            storage
        }
        Err(Refusal { error, storage }) => {
            // For the offline checks, which tell an expected refusal (after damage to synced
            // data) from one a crash alone caused.
            let (term, vote, last_index) = storage.as_deref().map_or((None, None, None), recovered);
            let reason = format!("{error:#}");
            events.record(events::event(term, EventKind::Refused { reason, vote, last_index }))?;
            return Err(error);
        }
    };
    let restarted = !storage.recovery().created;
    let last_index = storage.last_index();

    // From here on, SIGTERM and SIGINT mean a clean shutdown.
    let mut term_signal =
        signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int_signal = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    // Bind the client port first: failing there must not leave a half-started peer.
    let clients = TcpListener::bind(args.client)
        .await
        .with_context(|| format!("listening for clients on {}", args.client))?;
    let mut node_config = NodeConfig::new(config);
    node_config.tick = Duration::from_millis(args.tick_ms);
    node_config.deliver_noops = true;
    node_config.transport = transport;
    let (trace, traced) = mpsc::unbounded_channel();
    node_config.trace = Some(trace);
    let (node, applied) = Node::bind(node_config, storage, args.listen, args.peers.clone())
        .await
        .with_context(|| format!("starting node {id}"))?;
    tracing::info!(
        id,
        listen = %args.listen,
        client = %args.client,
        restarted,
        last_index,
        applied_logged = applied_log.logged(),
        bug = ?args.bug,
        "node started"
    );

    let peer_clients: HashMap<NodeId, SocketAddr> = args.peer_clients.iter().copied().collect();
    let reads = if args.bug == Some(NodeBug::StaleRead) { ReadPath::Stale } else { args.reads };
    let server = Arc::new(Server::new(node, peer_clients, reads, limits));
    let snapshots =
        SnapshotPolicy { every_entries: args.snapshot_entries, every_bytes: args.snapshot_bytes };
    let applier = tokio::spawn(server.clone().apply(applied, applied_log, snapshots));
    let accept = tokio::spawn(server.clone().accept(clients));
    let sweep = tokio::spawn(server.clone().sweep());
    let recorder = tokio::spawn(record_events(events, traced));
    {
        let (server, dir, tick) =
            (server.clone(), dir.clone(), Duration::from_millis(args.tick_ms));
        tokio::spawn(async move {
            while clock_signal.recv().await.is_some() {
                match clock::read_request(&dir) {
                    Ok(request) => {
                        tracing::info!(slower = request.slower, "clock fault: ticks stretched");
                        server.node().set_tick(tick * request.slower);
                    }
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "SIGHUP without a clock request")
                    }
                }
            }
        });
    }
    // Held while a disk error is injected and recorded: the error stops the node, and the
    // process must not exit before the record is written.
    let injecting = Arc::new(tokio::sync::Mutex::new(()));
    if let (Some(disk), Some(mut error_signal)) = (crash_disk.clone(), error_signal) {
        let (server, dir, injecting) = (server.clone(), dir.clone(), injecting.clone());
        tokio::spawn(async move {
            while error_signal.recv().await.is_some() {
                let _held = injecting.lock().await;
                let persisted_index = server.node().status().persisted_index;
                if let Err(e) = crash::inject_error(&disk, &dir, persisted_index).await {
                    tracing::error!(error = format!("{e:#}"), "the requested disk error failed");
                }
            }
        });
    }

    tokio::select! {
        _ = term_signal.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int_signal.recv() => tracing::info!("SIGINT: shutting down"),
        _ = server.node().stopped() => tracing::error!("the Raft node stopped"),
        _ = async { crash_signal.as_mut().expect("only with a crash disk").recv().await },
            if crash_signal.is_some() =>
        {
            let disk = crash_disk.as_ref().expect("SIGUSR1 is handled with a crash disk only");
            crash::crash_and_die(disk, dir, server.node().status().persisted_index).await
        }
    }

    accept.abort();
    sweep.abort();
    server.begin_shutdown();
    let _ = accept.await;
    let _ = sweep.await;
    // The applier ends when the node's channel closes, once the node stopped.
    let node_result = server.node().shutdown().await;
    let _ = applier.await;
    let _ = recorder.await;
    let _ = injecting.lock().await;
    let node_result = node_result.with_context(|| format!("node {id}"));
    if let Err(e) = &node_result {
        // For the offline checks: the node stopped on an error (a failed sync, say) instead
        // of carrying on.
        let reason = format!("{e:#}");
        let term = Some(server.node().status().term);
        let failed = events::event(term, EventKind::Failed { reason });
        let _ = EventLog::open(dir, id).and_then(|mut log| Ok(log.record(failed)?));
    }
    node_result?;
    tracing::info!(id, "stopped cleanly");
    Ok(())
}

/// A refusal to start, with the storage it refused when it could be opened.
struct Refusal {
    error: anyhow::Error,
    storage: Option<Box<FileStorage>>,
}

/// What a start recovered from `storage`, for its event: the term, the vote and the last
/// log index.
fn recovered(storage: &FileStorage) -> (Option<Term>, Option<NodeId>, Option<Index>) {
    let hard_state = storage.hard_state();
    (Some(hard_state.term), hard_state.vote, Some(storage.last_index()))
}

/// Opens the Raft storage in `dir/raft` on `disk`, and refuses storage that holds less than
/// the node's own records show was durable.
fn open_storage(
    dir: &Path,
    disk: Arc<dyn Disk>,
    bug: Option<raft::Bug>,
    durable_vote: Option<(raft::Term, Option<NodeId>)>,
    applied_log: &AppliedLog,
) -> Result<FileStorage, Refusal> {
    let storage_dir = dir.join("raft");
    // A node applied entries, so it had a log: finding no storage directory means it was lost
    // (its hard state with it), and starting empty could lose committed entries and votes.
    // Refused before opening, which would create a new one and hide the loss from a retry.
    if !storage_dir.exists() && applied_log.logged() > 0 {
        let error = anyhow!(
            "refusing to start: {} records entries applied up to index {}, but {} does not \
             exist: the node's log and hard state were lost",
            dir.join("applied.jsonl").display(),
            applied_log.logged(),
            storage_dir.display()
        );
        return Err(Refusal { error, storage: None });
    }
    let storage = FileStorage::open_on(disk, &storage_dir, FileStorageOptions::default())
        .with_context(|| format!("opening the Raft storage in {}", storage_dir.display()))
        .map_err(|error| Refusal { error, storage: None })?;
    // Only a durability bug changes the storage; the check that the build has the catalogue
    // was made with the options.
    #[cfg(feature = "bugs")]
    let storage = storage.with_bug(bug);
    #[cfg(not(feature = "bugs"))]
    let _ = bug;
    match check_recovered(dir, &storage, durable_vote, applied_log) {
        Ok(()) => Ok(storage),
        Err(error) => Err(Refusal { error, storage: Some(Box::new(storage)) }),
    }
}

/// Refuses a recovered storage that holds less than the node's records show was durable.
fn check_recovered(
    dir: &Path,
    storage: &FileStorage,
    durable_vote: Option<(raft::Term, Option<NodeId>)>,
    applied_log: &AppliedLog,
) -> anyhow::Result<()> {
    let storage_dir = storage.dir();
    let last_index = storage.last_index();
    let recovered = storage.hard_state();
    if let Some((term, vote)) = durable_vote {
        let regressed = recovered.term < term
            || (recovered.term == term && vote.is_some() && recovered.vote != vote);
        if regressed {
            bail!(
                "refusing to start: {} shows term {term} with vote {} was durable, but the hard \
                 state in {} holds term {} with vote {}: the node could vote twice in a term",
                dir.join("events.jsonl").display(),
                vote.map_or("none".to_string(), |v| v.to_string()),
                storage_dir.display(),
                recovered.term,
                recovered.vote.map_or("none".to_string(), |v| v.to_string()),
            );
        }
    }
    if applied_log.durable() > last_index {
        bail!(
            "refusing to start: {} shows entry {} was applied from this node's own durable log, \
             but the log recovered in {} ends at index {last_index}: entries that were synced \
             are gone (a log cut short, or restored from an older copy), and committed entries \
             are never removed from a log",
            dir.join("applied.jsonl").display(),
            applied_log.durable(),
            storage_dir.display(),
        );
    }
    if applied_log.logged() > last_index {
        // Not a refusal: committed entries are delivered while this node's own write of them
        // is still in progress (the cluster has them), and a crash then loses the unsynced tail.
        tracing::warn!(
            applied = applied_log.logged(),
            last_index,
            "the recovered log ends before the last applied entry (a crash during a sync?); \
             the leader will send the rest"
        );
    }
    Ok(())
}

/// A duration option in seconds (see [`crate::exit::seconds`]).
fn seconds(option: &str, value: f64) -> anyhow::Result<Duration> {
    crate::exit::seconds(option, value).map_err(anyhow::Error::msg)
}

/// The transport's configuration: the cluster secret and the bounds on peer connections.
fn transport_config(args: &NodeArgs) -> anyhow::Result<TransportConfig> {
    let secret = match &args.cluster_secret_file {
        Some(path) => {
            warn_if_readable_by_others(path);
            Some(ClusterSecret::from_file(path).context("--cluster-secret-file")?)
        }
        None if !args.listen.ip().is_loopback() => bail!(
            "--listen {}: not a loopback address, so peers must authenticate: give \
             --cluster-secret-file (see docs/security.md)",
            args.listen
        ),
        None => {
            tracing::warn!(listen = %args.listen,
                "peer traffic is not authenticated: any local process can reach the peer port \
                 (give --cluster-secret-file)");
            None
        }
    };
    if args.max_peer_connections == 0 {
        bail!("--max-peer-connections 0: at least one connection per peer is needed");
    }
    // A request line of up to 1 MiB becomes one entry, which one AppendEntries must carry.
    if args.max_frame_bytes < MIN_FRAME_BYTES {
        bail!(
            "--max-frame-bytes {}: at least {MIN_FRAME_BYTES} bytes are needed (a request of \
             up to 1 MiB is one log entry, sent in one frame)",
            args.max_frame_bytes
        );
    }
    Ok(TransportConfig {
        secret,
        max_inbound_connections: args.max_peer_connections,
        idle_timeout: seconds("--peer-idle-timeout", args.peer_idle_timeout)?,
        max_frame_len: args.max_frame_bytes,
        ..TransportConfig::default()
    })
}

/// The bounds on what clients can make the node hold, and the client token.
fn client_limits(args: &NodeArgs) -> anyhow::Result<ClientLimits> {
    let token = match &args.client_token_file {
        Some(path) => {
            warn_if_readable_by_others(path);
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--client-token-file {}", path.display()))?;
            let token = text.trim();
            if token.is_empty() {
                bail!("--client-token-file {}: the file holds no token", path.display());
            }
            Some(token.to_string())
        }
        None => {
            if !args.client.ip().is_loopback() {
                tracing::warn!(client = %args.client,
                    "clients are not authenticated on a non-loopback address (give \
                     --client-token-file)");
            }
            None
        }
    };
    if args.max_clients == 0 || args.max_outstanding == 0 {
        bail!("--max-clients and --max-outstanding must be at least 1");
    }
    Ok(ClientLimits {
        max_connections: args.max_clients,
        idle_timeout: seconds("--client-idle-timeout", args.client_idle_timeout)?,
        max_outstanding: args.max_outstanding,
        token,
    })
}

/// A secret file that others may read is a secret no longer: say so.
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777),
                "a secret file that other users may read (chmod 600 it)");
        }
    }
}

/// Writes the Raft node's protocol events (leaderships, votes, higher terms, first commits)
/// until the node stops and drops its end of the channel (a leader's last event is then
/// `stepped-down`).
async fn record_events(mut events: EventLog, mut traced: mpsc::UnboundedReceiver<TraceEvent>) {
    while let Some(trace) = traced.recv().await {
        if let TraceEvent::BecameLeader { term, .. } | TraceEvent::SteppedDown { term, .. } = trace
        {
            tracing::info!(?trace, term, "role change");
        }
        if let Err(e) = events.record(events::from_trace(&trace)) {
            tracing::error!(error = %e, "cannot write events.jsonl");
        }
    }
}
