//! The inbound side: an accept loop and one read-only task per accepted connection, which
//! decodes frames into messages and hands them to the node.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::timeout;
use tracing::{debug, info, warn};

use super::auth;
use super::config::TransportConfig;
use super::frame::{decode, FrameError, HEADER_LEN};
use super::reader::FrameReader;
use super::stats::SharedCounters;
use super::warnings::WarningLimiter;
use crate::{Message, NodeId};

/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Where a connection stands in its handshake. The connection's task and the accept loop (which
/// may evict it) race to move it out of `HANDSHAKING`; whoever wins decides, so that a peer that
/// has just authenticated is never evicted as unauthenticated.
const HANDSHAKING: u8 = 0;
const THROUGH: u8 = 1;
const EVICTED: u8 = 2;

/// A connection with a handshake: its state, its task, its address.
type Handshaking = (Arc<AtomicU8>, AbortHandle, SocketAddr);

/// What every inbound task needs.
#[derive(Clone)]
pub(crate) struct Inbound {
    pub(crate) id: NodeId,
    pub(crate) deliver: mpsc::Sender<Message>,
    pub(crate) counters: Arc<SharedCounters>,
    pub(crate) config: Arc<TransportConfig>,
    pub(crate) warnings: Arc<WarningLimiter>,
}

impl Inbound {
    /// Accepts connections until `stop` changes or its sender is dropped; then closes the
    /// listener and every connection before returning.
    pub(crate) async fn accept_loop(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let mut connections = JoinSet::new();
        let mut handshaking = VecDeque::new();
        let mut summary = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    // A task this loop aborted (to make room) is not a failure.
                    if let Err(e) = joined {
                        if e.is_panic() {
                            warn!(error = %e, "inbound connection task panicked");
                        }
                    }
                }
                _ = summary.tick() => self.warnings.summarize("inbound connections"),
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        SharedCounters::bump(&self.counters.inbound_connections, 1);
                        if connections.len() >= self.config.max_inbound_connections
                            && !self.make_room(&mut handshaking)
                        {
                            let limit = self.config.max_inbound_connections;
                            let open = if self.config.secret.is_some() {
                                "authenticated inbound connections"
                            } else {
                                "inbound connections"
                            };
                            self.refuse(&self.counters.inbound_refused, peer,
                                &format!("{limit} {open} are open"));
                            continue;
                        }
                        debug!(%peer, "accepted inbound connection");
                        let start = if self.config.secret.is_some() { HANDSHAKING } else { THROUGH };
                        let state = Arc::new(AtomicU8::new(start));
                        let task = self.clone().read_connection(stream, peer, state.clone());
                        let handle = connections.spawn(task);
                        if self.config.secret.is_some() {
                            // Only those still in their handshake are kept, so that the queue
                            // stays within the connection limit.
                            handshaking.retain(|(state, task, _)| {
                                state.load(Ordering::Acquire) == HANDSHAKING && !task.is_finished()
                            });
                            handshaking.push_back((state, handle, peer));
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::select! {
                            _ = stop.changed() => break,
                            _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                        }
                    }
                },
            }
        }
        drop(listener);
        connections.shutdown().await;
    }

    /// At the connection limit, closes the oldest connection still in its handshake, so that a
    /// flood of connections that never authenticate cannot lock the peers out: a peer's
    /// handshake takes a round trip, the flood's would-be ones are evicted first. Returns
    /// false when every connection is authenticated (then the new one is refused).
    fn make_room(&self, handshaking: &mut VecDeque<Handshaking>) -> bool {
        while let Some((state, task, peer)) = handshaking.pop_front() {
            let evicted =
                state.compare_exchange(HANDSHAKING, EVICTED, Ordering::AcqRel, Ordering::Acquire);
            if evicted.is_err() || task.is_finished() {
                continue;
            }
            task.abort();
            let why =
                "unauthenticated: closed in its handshake to make room for a newer connection";
            self.refuse(&self.counters.inbound_unauthenticated, peer, why);
            return true;
        }
        false
    }

    /// Authenticates one connection if the cluster has a secret (then moves `state` to
    /// `THROUGH`, unless it was evicted first), and reads frames from it until it ends, idles
    /// too long, or sends something malformed.
    async fn read_connection(self, mut stream: TcpStream, peer: SocketAddr, state: Arc<AtomicU8>) {
        let authenticated = match &self.config.secret {
            None => None,
            Some(secret) => {
                let handshake = auth::accept(&mut stream, secret, self.id);
                match timeout(self.config.handshake_timeout, handshake).await {
                    Ok(Ok(from)) => {
                        let through = state.compare_exchange(
                            HANDSHAKING,
                            THROUGH,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                        if through.is_err() {
                            // Evicted meanwhile; the evictor counted and logged it.
                            return;
                        }
                        debug!(%peer, from, "peer authenticated");
                        Some(from)
                    }
                    Ok(Err(e)) => {
                        let why = format!("unauthenticated: {e}");
                        return self.refuse(&self.counters.inbound_unauthenticated, peer, &why);
                    }
                    Err(_) => {
                        let within = self.config.handshake_timeout;
                        let why = format!("unauthenticated: no handshake within {within:?}");
                        return self.refuse(&self.counters.inbound_unauthenticated, peer, &why);
                    }
                }
            }
        };
        let mut frames = FrameReader::new(stream, self.config.max_frame_len);
        loop {
            // `next_frame` is cancel-safe, so the timeout loses nothing of a frame in progress.
            let Ok(frame) = timeout(self.config.idle_timeout, frames.next_frame()).await else {
                SharedCounters::bump(&self.counters.inbound_idle_closed, 1);
                let idle = self.config.idle_timeout;
                info!(%peer, ?idle, "closing an idle inbound connection");
                return;
            };
            let payload = match frame {
                Ok(Some(payload)) => payload,
                Ok(None) => {
                    debug!(%peer, "inbound connection closed by the peer");
                    return;
                }
                Err(FrameError::Io(e)) => {
                    info!(%peer, error = %e, "inbound connection failed");
                    return;
                }
                Err(e) => return self.reject(peer, e),
            };
            SharedCounters::bump(
                &self.counters.bytes_received,
                (HEADER_LEN + payload.len()) as u64,
            );
            let msg: Message = match decode(&payload) {
                Ok(msg) => msg,
                Err(e) => return self.reject(peer, e),
            };
            if msg.to != self.id {
                SharedCounters::bump(&self.counters.messages_misaddressed, 1);
                if let Some(held_back) = self.warnings.admit() {
                    warn!(%peer, from = msg.from, to = msg.to, me = self.id, held_back,
                        "dropping a message addressed to another node");
                }
                continue;
            }
            if let Some(from) = authenticated.filter(|&from| from != msg.from) {
                SharedCounters::bump(&self.counters.inbound_bad_frames, 1);
                if let Some(held_back) = self.warnings.admit() {
                    warn!(%peer, authenticated = from, claimed = msg.from, held_back,
                        "closing inbound connection: a message in another peer's name");
                }
                return;
            }
            SharedCounters::bump(&self.counters.messages_received, 1);
            if self.deliver.send(msg).await.is_err() {
                debug!(%peer, "the node stopped receiving; closing inbound connection");
                return;
            }
        }
    }

    /// Counts a connection closed before any frame was read, and says why (rate-limited).
    fn refuse(&self, counter: &AtomicU64, peer: SocketAddr, why: &str) {
        SharedCounters::bump(counter, 1);
        if let Some(held_back) = self.warnings.admit() {
            warn!(%peer, held_back, "closing inbound connection: {why}");
        }
    }

    /// Logs why the connection from `peer` is being closed; the caller then drops it.
    fn reject(&self, peer: SocketAddr, error: FrameError) {
        SharedCounters::bump(&self.counters.inbound_bad_frames, 1);
        if let Some(held_back) = self.warnings.admit() {
            warn!(%peer, %error, held_back, "closing inbound connection: malformed frame");
        }
    }
}
