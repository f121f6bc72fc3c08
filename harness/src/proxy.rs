//! The frame-aware proxy that sits on every directed link between two nodes.
//!
//! Node A reaches peer B at the proxy's port for the link A->B; the proxy forwards A's frames to
//! B's real peer address. Because it understands the transport's frames (`u32` length + payload),
//! it drops, delays, duplicates and reorders whole messages, never torn bytes, and it cuts a link
//! in one direction only when asked: a partition is a set of cut links. A cut link is a black
//! hole (the TCP connection stays up and frames vanish), as a firewall that drops packets is.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use raft::transport::{auth, frame_payload, FrameReader, DEFAULT_MAX_FRAME_LEN};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What a link does to the messages that cross it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Every message is dropped (a partition, in this direction).
    pub cut: bool,
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Each message is held for a uniform random time in this range, in milliseconds; different
    /// delays reorder messages.
    pub delay_ms: (u64, u64),
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is held back an extra 5-50 ms, so that later ones overtake it.
    pub reorder: f64,
}

/// A directed link between two nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    pub from: u64,
    pub to: u64,
}

/// Counters of one link.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LinkCounts {
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

struct LinkState {
    faults: LinkFaults,
    counts: LinkCounts,
    rng: ChaCha8Rng,
}

/// The proxies of a whole cluster: one listening port per directed link.
pub struct Proxy {
    links: BTreeMap<Link, (SocketAddr, Arc<Mutex<LinkState>>)>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Starts a proxy for every ordered pair of `nodes` (id, real peer address). `seed` seeds
    /// each link's random choices.
    pub async fn start(nodes: &[(u64, SocketAddr)], seed: u64) -> anyhow::Result<Proxy> {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut links = BTreeMap::new();
        for &(from, _) in nodes {
            for &(to, target) in nodes {
                if from == to {
                    continue;
                }
                let listener =
                    TcpListener::bind("127.0.0.1:0").await.context("binding a proxy port")?;
                let addr = listener.local_addr()?;
                let link = Link { from, to };
                let state = Arc::new(Mutex::new(LinkState {
                    faults: LinkFaults::default(),
                    counts: LinkCounts::default(),
                    rng: ChaCha8Rng::seed_from_u64(
                        seed ^ (from << 32 | to).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    ),
                }));
                tasks.spawn(accept_loop(listener, target, state.clone(), stop_rx.clone()));
                links.insert(link, (addr, state));
            }
        }
        Ok(Proxy { links, stop, tasks })
    }

    /// The address node `from` must use to reach peer `to`.
    pub fn addr(&self, from: u64, to: u64) -> SocketAddr {
        self.links[&Link { from, to }].0
    }

    /// Changes the faults of every link with `f`.
    pub fn update_all(&self, mut f: impl FnMut(Link, &mut LinkFaults)) {
        for (&link, (_, state)) in &self.links {
            f(link, &mut state.lock().unwrap().faults);
        }
    }

    /// Clears every fault on every link.
    pub fn heal(&self) {
        self.update_all(|_, faults| *faults = LinkFaults::default());
    }

    /// Every link's counters.
    pub fn counts(&self) -> BTreeMap<Link, LinkCounts> {
        self.links.iter().map(|(&l, (_, s))| (l, s.lock().unwrap().counts)).collect()
    }

    /// Stops every proxy task and frees the ports.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.tasks.shutdown().await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    state: Arc<Mutex<LinkState>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                conns.spawn(forward(inbound, target, state.clone()));
            }
        }
    }
    conns.shutdown().await;
}

/// Forwards frames from one inbound connection to the target, applying the link's faults, and
/// whatever the target writes back (the handshake's challenge and proof; nothing after it)
/// unchanged. Ends when either side closes.
async fn forward(inbound: TcpStream, target: SocketAddr, state: Arc<Mutex<LinkState>>) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        // The target is down (killed): closing makes the sender reconnect later.
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (inbound_read, mut inbound_write) = inbound.into_split();
    let (mut outbound_read, outbound_write) = outbound.into_split();
    tokio::select! {
        _ = tokio::io::copy(&mut outbound_read, &mut inbound_write) => {}
        _ = forward_frames(inbound_read, outbound_write, state) => {}
    }
}

/// The sender-to-target half of [`forward`]. A handshake's hello passes untouched, whatever the
/// link's faults: a cut link is a black hole for messages, as a firewall that drops a
/// connection's packets is once the connection is up.
async fn forward_frames(
    inbound: OwnedReadHalf,
    mut outbound: OwnedWriteHalf,
    state: Arc<Mutex<LinkState>>,
) {
    // Cancel-safe: the delivery timer may win the select in the middle of a frame.
    let mut reader = FrameReader::new(inbound, DEFAULT_MAX_FRAME_LEN);
    // Frames waiting for their delivery time: (due, sequence) -> frame.
    let mut pending: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut frames: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut seq = 0u64;
    let mut first = true;
    loop {
        let next_due = pending.peek().map(|Reverse((due, _))| *due);
        tokio::select! {
            frame = reader.next_frame() => {
                let Ok(Some(payload)) = frame else { return };
                let Ok(bytes) = frame_payload(&payload) else { return };
                if std::mem::take(&mut first) && auth::is_hello_frame(&payload) {
                    if outbound.write_all(&bytes).await.is_err() {
                        return;
                    }
                    continue;
                }
                let now = Instant::now();
                for due in schedule(&state, now) {
                    seq += 1;
                    frames.insert(seq, bytes.clone());
                    pending.push(Reverse((due, seq)));
                }
            }
            _ = sleep_until_opt(next_due) => {}
        }
        let now = Instant::now();
        let mut batch = Vec::new();
        while let Some(Reverse((due, s))) = pending.peek().copied() {
            if due > now {
                break;
            }
            pending.pop();
            if let Some(bytes) = frames.remove(&s) {
                batch.extend_from_slice(&bytes);
            }
        }
        if !batch.is_empty() && outbound.write_all(&batch).await.is_err() {
            return;
        }
    }
}

/// When (if at all) each copy of a message just read is to be delivered.
fn schedule(state: &Mutex<LinkState>, now: Instant) -> Vec<Instant> {
    let mut st = state.lock().unwrap();
    let f = st.faults;
    if f.cut || (f.loss > 0.0 && st.rng.gen_bool(f.loss.min(1.0))) {
        st.counts.dropped += 1;
        return Vec::new();
    }
    let copies = if f.duplicate > 0.0 && st.rng.gen_bool(f.duplicate.min(1.0)) {
        st.counts.duplicated += 1;
        2
    } else {
        1
    };
    st.counts.forwarded += 1;
    (0..copies)
        .map(|_| {
            let (lo, hi) = f.delay_ms;
            let mut ms = if hi > lo { st.rng.gen_range(lo..=hi) } else { lo };
            if f.reorder > 0.0 && st.rng.gen_bool(f.reorder.min(1.0)) {
                ms += st.rng.gen_range(5..=50);
            }
            now + Duration::from_millis(ms)
        })
        .collect()
}

async fn sleep_until_opt(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::transport::encode_frame;
    use tokio::io::AsyncReadExt;

    async fn pair() -> (Proxy, TcpListener, TcpStream) {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taddr = target.local_addr().unwrap();
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy::start(&[(1, other.local_addr().unwrap()), (2, taddr)], 7).await.unwrap();
        let sender = TcpStream::connect(proxy.addr(1, 2)).await.unwrap();
        (proxy, target, sender)
    }

    async fn read_one(conn: &mut TcpStream) -> Option<u32> {
        let mut r = tokio::io::BufReader::new(conn);
        let payload = tokio::time::timeout(
            Duration::from_millis(300),
            raft::transport::read_frame(&mut r, 1 << 20),
        )
        .await
        .ok()?
        .ok()??;
        Some(raft::transport::decode::<u32>(&payload).unwrap())
    }

    #[tokio::test]
    async fn forwards_whole_frames_and_cuts_one_way() {
        let (proxy, target, mut sender) = pair().await;
        sender.write_all(&encode_frame(&7u32).unwrap()).await.unwrap();
        let (mut conn, _) = target.accept().await.unwrap();
        assert_eq!(read_one(&mut conn).await, Some(7));

        proxy.update_all(|l, f| f.cut = l == Link { from: 1, to: 2 });
        sender.write_all(&encode_frame(&8u32).unwrap()).await.unwrap();
        assert_eq!(read_one(&mut conn).await, None, "a cut link delivers nothing");

        proxy.heal();
        sender.write_all(&encode_frame(&9u32).unwrap()).await.unwrap();
        assert_eq!(read_one(&mut conn).await, Some(9), "the frame dropped while cut stays lost");
        let counts = proxy.counts()[&Link { from: 1, to: 2 }];
        assert_eq!((counts.forwarded, counts.dropped), (2, 1));
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn duplicates_whole_frames() {
        let (proxy, target, mut sender) = pair().await;
        proxy.update_all(|_, f| f.duplicate = 1.0);
        sender.write_all(&encode_frame(&5u32).unwrap()).await.unwrap();
        let (mut conn, _) = target.accept().await.unwrap();
        let mut buf = vec![0u8; 64];
        let mut got = Vec::new();
        while got.len() < 2 * (4 + 1) {
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        let one = encode_frame(&5u32).unwrap();
        assert_eq!(got, [one.clone(), one].concat());
        proxy.shutdown().await;
    }
}
