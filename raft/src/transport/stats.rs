//! Counters of what the transport sent, dropped and received.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::NodeId;

/// The state of the outbound link to one peer, as published by
/// [`Transport::watch_link`](super::Transport::watch_link).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Whether a connection to the peer is open now.
    pub connected: bool,
    /// Connections established so far.
    pub connects: u64,
    /// Connection attempts that failed (refused, unreachable or timed out).
    pub connect_failures: u64,
    /// Established connections that were lost (closed by the peer or broken).
    pub disconnects: u64,
}

/// Counters of the outbound link to one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Messages written to the peer's connection.
    pub messages_sent: u64,
    /// Bytes written to the peer's connection, length prefixes included.
    pub bytes_sent: u64,
    /// Messages dropped: queue full, peer down, connection lost with them in flight, or
    /// impossible to encode.
    pub messages_dropped: u64,
    /// The link's connection state.
    pub link: LinkState,
}

/// A snapshot of a transport's counters, from [`Transport::stats`](super::Transport::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages written to peers, over all links.
    pub messages_sent: u64,
    /// Bytes written to peers, length prefixes included.
    pub bytes_sent: u64,
    /// Messages dropped on the way out, over all links, plus those for unknown peers.
    pub messages_dropped: u64,
    /// Messages dropped because their destination is not a known peer.
    pub messages_unroutable: u64,
    /// Messages received and handed to the node.
    pub messages_received: u64,
    /// Bytes of frames received, length prefixes included.
    pub bytes_received: u64,
    /// Well-formed messages received but dropped because they were addressed to another node.
    pub messages_misaddressed: u64,
    /// Inbound connections accepted.
    pub inbound_connections: u64,
    /// Inbound connections closed because of a malformed frame.
    pub inbound_bad_frames: u64,
    /// Inbound connections closed because they did not complete the handshake (a wrong secret,
    /// no handshake at all, or none in time).
    pub inbound_unauthenticated: u64,
    /// Inbound connections closed at once because [`max_inbound_connections`] were open.
    ///
    /// [`max_inbound_connections`]: super::TransportConfig::max_inbound_connections
    pub inbound_refused: u64,
    /// Inbound connections closed because no frame came for the idle timeout.
    pub inbound_idle_closed: u64,
    /// Per-peer counters.
    pub peers: BTreeMap<NodeId, PeerStats>,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The live counters of one outbound link.
#[derive(Debug, Default)]
pub(crate) struct LinkCounters {
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_dropped: AtomicU64,
}

impl LinkCounters {
    pub(crate) fn sent(&self, messages: u64, bytes: u64) {
        add(&self.messages_sent, messages);
        add(&self.bytes_sent, bytes);
    }

    pub(crate) fn dropped(&self, messages: u64) {
        add(&self.messages_dropped, messages);
    }

    pub(crate) fn snapshot(&self, link: LinkState) -> PeerStats {
        PeerStats {
            messages_sent: get(&self.messages_sent),
            bytes_sent: get(&self.bytes_sent),
            messages_dropped: get(&self.messages_dropped),
            link,
        }
    }
}

/// The live counters of the inbound side and of unroutable messages.
#[derive(Debug, Default)]
pub(crate) struct SharedCounters {
    pub(crate) messages_unroutable: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) messages_misaddressed: AtomicU64,
    pub(crate) inbound_connections: AtomicU64,
    pub(crate) inbound_bad_frames: AtomicU64,
    pub(crate) inbound_unauthenticated: AtomicU64,
    pub(crate) inbound_refused: AtomicU64,
    pub(crate) inbound_idle_closed: AtomicU64,
}

impl SharedCounters {
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        add(counter, n);
    }

    pub(crate) fn snapshot(&self, peers: BTreeMap<NodeId, PeerStats>) -> TransportStats {
        let unroutable = get(&self.messages_unroutable);
        TransportStats {
            messages_sent: peers.values().map(|p| p.messages_sent).sum(),
            bytes_sent: peers.values().map(|p| p.bytes_sent).sum(),
            messages_dropped: peers.values().map(|p| p.messages_dropped).sum::<u64>() + unroutable,
            messages_unroutable: unroutable,
            messages_received: get(&self.messages_received),
            bytes_received: get(&self.bytes_received),
            messages_misaddressed: get(&self.messages_misaddressed),
            inbound_connections: get(&self.inbound_connections),
            inbound_bad_frames: get(&self.inbound_bad_frames),
            inbound_unauthenticated: get(&self.inbound_unauthenticated),
            inbound_refused: get(&self.inbound_refused),
            inbound_idle_closed: get(&self.inbound_idle_closed),
            peers,
        }
    }
}
