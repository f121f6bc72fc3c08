//! The proxy that sits on every directed link between two nodes.
//!
//! Node A reaches peer B at a proxy port; the proxy forwards A's traffic to B's real peer
//! address, and a partition is a set of cut links. It works in one of two modes:
//!
//! - **frames** ([`frames`]): for systems that speak the project's transport (`u32` length +
//!   payload). One port per directed link; whole messages are dropped, delayed, duplicated and
//!   reordered, never torn bytes.
//! - **bytes** ([`bytes`]): for systems whose traffic the proxy does not understand (etcd's
//!   HTTP). Byte streams are delayed, black-holed and closed, per directed link: a byte from A
//!   to B flows only while the link A->B is up, on a connection either of them opened. A
//!   connection that a cut reaches is closed at the cut's start (never resumed with a hole in
//!   its stream); one opened while the cut is in force is a black hole, closed when the cut
//!   heals. Duplication, reordering and loss of single messages need frames and are not
//!   offered. Where every member must be given the same peer addresses (etcd's
//!   `--initial-cluster`), a node has one port for all its peers, and the proxy tells the
//!   sending member apart from what it says of itself in its first request ([`Sniff`]).

mod bytes;
mod frames;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What a link does to the traffic that crosses it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Nothing crosses (a partition, in this direction).
    pub cut: bool,
    /// Probability that a message is dropped (frames only).
    pub loss: f64,
    /// Each message (frames) or chunk of bytes (bytes, in order) is held for a uniform random
    /// time in this range, in milliseconds; different delays reorder frames.
    pub delay_ms: (u64, u64),
    /// Probability that a message is delivered twice (frames only).
    pub duplicate: f64,
    /// Probability that a message is held back an extra 5-50 ms, so that later ones overtake it
    /// (frames only).
    pub reorder: f64,
}

/// Late copies of a link's messages (frames only): each message is delivered again, with
/// probability `chance`, `delay_ms` after the first copy, as a retransmitting middlebox or a
/// replayed packet would. Set apart from [`LinkFaults`] by [`Proxy::set_echo`], so that the
/// nemesis's own link faults and heals leave it alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Echo {
    pub chance: f64,
    pub delay_ms: (u64, u64),
}

/// A directed link between two nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    pub from: u64,
    pub to: u64,
}

/// Counters of one link: messages in frames mode, bytes in bytes mode.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LinkCounts {
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
    /// Connections closed at a cut's start or opened into a black hole (bytes mode).
    pub connections_cut: u64,
}

struct LinkState {
    faults: LinkFaults,
    echo: Option<Echo>,
    counts: LinkCounts,
    rng: ChaCha8Rng,
}

/// Reads, from the first bytes a peer sent on a new connection (up to the end of its first
/// request's head), the address the sending member says it is reached at, if it says so.
pub type Sniff = fn(&[u8]) -> Option<SocketAddr>;

/// How the proxy carries traffic.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// The project's frames; one port per directed link.
    Frames,
    /// Byte streams; one port per directed link when `sniff` is None, else one port per node
    /// and the sender found by `sniff`.
    Bytes { sniff: Option<Sniff> },
}

/// The proxies of a whole cluster.
pub struct Proxy {
    mode: Mode,
    /// The port node `from` uses to reach `to`, by link (the same for every `from` when the
    /// proxy sniffs).
    addrs: BTreeMap<Link, SocketAddr>,
    links: Arc<BTreeMap<Link, Arc<Mutex<LinkState>>>>,
    /// Bumped at every change of the faults, so that byte-stream connections look again.
    changed: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Starts a frames proxy for every ordered pair of `nodes` (id, real peer address). `seed`
    /// seeds each link's random choices.
    pub async fn start(nodes: &[(u64, SocketAddr)], seed: u64) -> anyhow::Result<Proxy> {
        Proxy::start_mode(nodes, seed, Mode::Frames).await
    }

    /// Starts a proxy in `mode` for every ordered pair of `nodes`.
    pub async fn start_mode(
        nodes: &[(u64, SocketAddr)],
        seed: u64,
        mode: Mode,
    ) -> anyhow::Result<Proxy> {
        let (stop, stop_rx) = watch::channel(false);
        let (changed, changed_rx) = watch::channel(0);
        let mut links = BTreeMap::new();
        for &(from, _) in nodes {
            for &(to, _) in nodes.iter().filter(|(to, _)| *to != from) {
                let state = LinkState {
                    faults: LinkFaults::default(),
                    echo: None,
                    counts: LinkCounts::default(),
                    rng: ChaCha8Rng::seed_from_u64(
                        seed ^ (from << 32 | to).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    ),
                };
                links.insert(Link { from, to }, Arc::new(Mutex::new(state)));
            }
        }
        let links = Arc::new(links);
        let mut tasks = JoinSet::new();
        let mut addrs = BTreeMap::new();
        let bind = || async {
            let listener =
                TcpListener::bind("127.0.0.1:0").await.context("binding a proxy port")?;
            let addr = listener.local_addr()?;
            anyhow::Ok((listener, addr))
        };
        if let Mode::Bytes { sniff: Some(sniff) } = mode {
            let mut listeners = Vec::new();
            for &(to, target) in nodes {
                let (listener, addr) = bind().await?;
                for &(from, _) in nodes.iter().filter(|(from, _)| *from != to) {
                    addrs.insert(Link { from, to }, addr);
                }
                listeners.push((to, target, listener));
            }
            let by_addr: BTreeMap<SocketAddr, u64> =
                addrs.iter().map(|(link, &addr)| (addr, link.to)).collect();
            let ctx =
                Arc::new(bytes::Context { links: links.clone(), changed: changed_rx, by_addr });
            for (to, target, listener) in listeners {
                let accept = bytes::accept_loop(listener, to, None, target, ctx.clone(), sniff);
                tasks.spawn(stop_on(stop_rx.clone(), accept));
            }
        } else {
            let ctx = Arc::new(bytes::Context {
                links: links.clone(),
                changed: changed_rx,
                by_addr: BTreeMap::new(),
            });
            for (&link, state) in links.iter() {
                let (listener, addr) = bind().await?;
                addrs.insert(link, addr);
                let target = nodes.iter().find(|(id, _)| *id == link.to).unwrap().1;
                match mode {
                    Mode::Frames => {
                        tasks.spawn(stop_on(
                            stop_rx.clone(),
                            frames::accept_loop(listener, target, state.clone()),
                        ));
                    }
                    Mode::Bytes { .. } => {
                        let accept = bytes::accept_loop(
                            listener,
                            link.to,
                            Some(link.from),
                            target,
                            ctx.clone(),
                            |_| None,
                        );
                        tasks.spawn(stop_on(stop_rx.clone(), accept));
                    }
                }
            }
        }
        Ok(Proxy { mode, addrs, links, changed, stop, tasks })
    }

    /// The address node `from` must use to reach peer `to`.
    pub fn addr(&self, from: u64, to: u64) -> SocketAddr {
        self.addrs[&Link { from, to }]
    }

    /// Whether the proxy understands messages (and so can drop, duplicate and reorder them).
    pub fn understands_frames(&self) -> bool {
        matches!(self.mode, Mode::Frames)
    }

    /// Changes the faults of every link with `f`.
    pub fn update_all(&self, mut f: impl FnMut(Link, &mut LinkFaults)) {
        for (&link, state) in self.links.iter() {
            f(link, &mut state.lock().unwrap().faults);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Sets the late copies of every link's messages: `f` says each link's (frames only).
    pub fn set_echo(&self, mut f: impl FnMut(Link) -> Option<Echo>) {
        for (&link, state) in self.links.iter() {
            state.lock().unwrap().echo = f(link);
        }
    }

    /// Clears every fault on every link (but the late copies of [`Proxy::set_echo`]).
    pub fn heal(&self) {
        self.update_all(|_, faults| *faults = LinkFaults::default());
    }

    /// Every link's counters.
    pub fn counts(&self) -> BTreeMap<Link, LinkCounts> {
        self.links.iter().map(|(&l, s)| (l, s.lock().unwrap().counts)).collect()
    }

    /// Stops every proxy task, closes every connection and frees the ports.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.tasks.shutdown().await;
    }
}

/// Runs `task` until the proxy stops.
async fn stop_on(mut stop: watch::Receiver<bool>, task: impl std::future::Future<Output = ()>) {
    tokio::select! {
        _ = stop.changed() => {}
        _ = task => {}
    }
}

async fn sleep_until_opt(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The next connection to `listener`. A failed accept (out of file descriptors, most
/// likely) is logged and retried after a pause, instead of in a hot loop.
async fn accept_next(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(e) => {
                tracing::warn!("the proxy cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
