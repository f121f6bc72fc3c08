//! Length-prefixed frames over TCP between peers.
//!
//! Every message travels as one frame: a `u32` big-endian payload length, then the
//! [`Message`] encoded with postcard ([`frame`] has the codec). Messages are one-way, so a
//! [`Transport`] never pairs requests with replies:
//!
//! - **Outbound**: one TCP connection per peer, opened at start and reopened with exponential
//!   backoff when it fails, with `TCP_NODELAY`. Each peer has a bounded queue; [`Transport::send`]
//!   never waits: a message for a peer that is down, or whose queue is full, is dropped and
//!   counted (Raft retransmits). The link task writes everything queued in one write.
//! - **Inbound**: an accept loop; each accepted connection is only read. Frames are decoded
//!   into [`Message`]s and delivered in order on the channel returned at start. A malformed
//!   frame (a length over the limit, a truncated frame, an undecodable payload) closes that
//!   connection with a warning naming the remote address and the problem; other connections
//!   carry on.
//!
//! ```
//! use std::collections::HashMap;
//! use raft::transport::{Transport, TransportConfig};
//! use raft::{Message, MessageBody};
//! use tokio::net::TcpListener;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // Bind both listeners first (port 0: any free port), so each knows the other's address.
//! let l1 = TcpListener::bind("127.0.0.1:0").await?;
//! let l2 = TcpListener::bind("127.0.0.1:0").await?;
//! let (a1, a2) = (l1.local_addr()?, l2.local_addr()?);
//! let config = TransportConfig::default();
//! let (t1, _inbox1) = Transport::start(1, l1, HashMap::from([(2, a2)]), config.clone());
//! let (t2, mut inbox2) = Transport::start(2, l2, [(1, a1)], config);
//!
//! let vote = Message {
//!     from: 1,
//!     to: 2,
//!     term: 1,
//!     body: MessageBody::RequestVote { pre_vote: false, last_log_index: 0, last_log_term: 0 },
//! };
//! assert!(t1.send(vote.clone()), "queued while the connection opens");
//! assert_eq!(inbox2.recv().await, Some(vote));
//! assert_eq!(t1.stats().messages_sent, 1);
//!
//! t1.shutdown().await;
//! t2.shutdown().await;
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```

pub mod auth;
mod config;
pub mod frame;
mod inbound;
mod outbound;
mod reader;
mod stats;
mod warnings;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use auth::{AuthError, ClusterSecret};
pub use config::TransportConfig;
pub use frame::{
    decode, encode_frame, encode_frame_into, frame_payload, read_frame, FrameError,
    DEFAULT_MAX_FRAME_LEN, HEADER_LEN,
};
pub use reader::FrameReader;
pub use stats::{LinkState, PeerStats, TransportStats};
pub use warnings::WarningLimiter;

use crate::{Message, NodeId};
use inbound::Inbound;
use outbound::LinkHandle;
use stats::SharedCounters;

/// A peer's end of the network: sends [`Message`]s to the other peers and receives theirs.
///
/// Dropping the transport stops it too, without waiting; [`Transport::shutdown`] also waits
/// until every connection is closed and the listening port is free.
pub struct Transport {
    id: NodeId,
    local_addr: SocketAddr,
    links: HashMap<NodeId, LinkHandle>,
    counters: Arc<SharedCounters>,
    stop: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
    links_tasks: JoinSet<()>,
}

impl Transport {
    /// Listens on `addr` and starts the transport of node `id`; see [`Transport::start`].
    pub async fn bind(
        id: NodeId,
        addr: impl ToSocketAddrs,
        peers: impl IntoIterator<Item = (NodeId, SocketAddr)>,
        config: TransportConfig,
    ) -> io::Result<(Transport, mpsc::Receiver<Message>)> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Transport::start(id, listener, peers, config))
    }

    /// Starts the transport of node `id` on an already bound `listener`, with the address of
    /// every peer (an entry for `id` itself is ignored). Returns the transport and the channel
    /// on which messages addressed to `id` arrive, in order per connection. Messages for
    /// another node are dropped and counted.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn start(
        id: NodeId,
        listener: TcpListener,
        peers: impl IntoIterator<Item = (NodeId, SocketAddr)>,
        config: TransportConfig,
    ) -> (Transport, mpsc::Receiver<Message>) {
        let config = Arc::new(config.normalized());
        // Read before the listener moves into its task; a bound listener always has one.
        let local_addr =
            listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let counters = Arc::new(SharedCounters::default());
        let (stop, stop_rx) = watch::channel(false);
        let (deliver, inbox) = mpsc::channel(config.inbound_queue_len);
        let inbound = Inbound {
            id,
            deliver,
            counters: counters.clone(),
            config: config.clone(),
            warnings: Default::default(),
        };
        let accept = tokio::spawn(inbound.accept_loop(listener, stop_rx));

        // A later address for the same peer replaces an earlier one.
        let peers: HashMap<NodeId, SocketAddr> =
            peers.into_iter().filter(|&(peer, _)| peer != id).collect();
        let mut links_tasks = JoinSet::new();
        let mut links = HashMap::new();
        for (peer, addr) in peers {
            let (handle, link) = outbound::link(id, peer, addr, config.clone());
            links_tasks.spawn(link.run());
            links.insert(peer, handle);
        }

        let transport =
            Transport { id, local_addr, links, counters, stop, accept: Some(accept), links_tasks };
        (transport, inbox)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the transport listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues `msg` for the peer `msg.to` and returns at once. Returns `false` if the message
    /// was dropped (and counted): unknown peer, peer down, or its queue full. `true` means
    /// queued, not delivered.
    pub fn send(&self, msg: Message) -> bool {
        match self.links.get(&msg.to) {
            Some(link) => link.send(msg),
            None => {
                SharedCounters::bump(&self.counters.messages_unroutable, 1);
                false
            }
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        let peers: BTreeMap<NodeId, PeerStats> = self
            .links
            .iter()
            .map(|(&peer, link)| {
                let state = *link.shared.state.borrow();
                (peer, link.shared.counters.snapshot(state))
            })
            .collect();
        self.counters.snapshot(peers)
    }

    /// Follows the state of the outbound link to `peer` (None for an unknown peer): wait for
    /// it to connect, or count its failed attempts.
    pub fn watch_link(&self, peer: NodeId) -> Option<watch::Receiver<LinkState>> {
        self.links.get(&peer).map(|link| link.shared.state.subscribe())
    }

    /// Stops accepting, closes every connection and the listener, and waits until all of the
    /// transport's tasks have ended: when it returns, the listening port can be bound again.
    /// Messages still queued are discarded. The inbound channel ends once the last message
    /// already received has been taken from it.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(accept) = self.accept.take() {
            if let Err(e) = accept.await {
                tracing::warn!(error = %e, "the accept loop failed");
            }
        }
        // Aborting also ends links that are backing off or blocked writing to a peer that
        // does not read.
        self.links_tasks.shutdown().await;
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        // The accept loop closes the listener and its connections when it sees the signal;
        // the link tasks are aborted when `links_tasks` is dropped.
        self.stop.send_replace(true);
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .field("peers", &self.links.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
