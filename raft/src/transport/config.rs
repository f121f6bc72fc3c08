//! Tuning knobs of the transport.

use std::time::Duration;

use super::auth::ClusterSecret;
use super::frame::DEFAULT_MAX_FRAME_LEN;

/// How a [`Transport`](super::Transport) behaves. [`Default`] suits a cluster on one machine or
/// one data centre.
///
/// Values below a documented minimum are raised to it when the transport starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest payload accepted from a peer, and sent to one, in bytes. A peer announcing a
    /// longer frame is disconnected; a longer outgoing message is dropped. Default 16 MiB.
    pub max_frame_len: usize,
    /// Messages waiting to be written to one peer (at least 1). When full, [`send`] drops.
    /// Default 1024.
    ///
    /// [`send`]: super::Transport::send
    pub peer_queue_len: usize,
    /// Capacity of the channel of received messages (at least 1). When full, reading from the
    /// peers pauses, and TCP pushes back on them. Default 4096.
    pub inbound_queue_len: usize,
    /// First delay before reconnecting after a failure (at least 1 ms). Default 10 ms.
    pub backoff_min: Duration,
    /// Cap of the exponential backoff (at least `backoff_min`). A connection that lived at
    /// least this long resets the backoff. Default 1 s.
    pub backoff_max: Duration,
    /// How long one connection attempt may take before it counts as failed. Default 1 s.
    pub connect_timeout: Duration,
    /// A write batch stops growing at about this many bytes. Default 256 KiB.
    pub max_batch_bytes: usize,
    /// The cluster's secret. When set, every connection starts with a handshake in which both
    /// ends prove they hold it (see [`ClusterSecret`] and `docs/security.md`), and a connection
    /// that does not is closed before any frame is read. When `None` (the default, for tests
    /// and networks only the cluster reaches), any process that reaches the port is a peer.
    pub secret: Option<ClusterSecret>,
    /// How long an accepted connection may take to complete the handshake (at least 1 ms).
    /// Default 5 s.
    pub handshake_timeout: Duration,
    /// Inbound connections open at once (at least 1). At the cap, a new connection makes room
    /// by closing the oldest one still in its handshake; when every connection is
    /// authenticated, the new one is closed at once. A peer needs one, two while it
    /// reconnects. Default 64.
    pub max_inbound_connections: usize,
    /// An inbound connection that carries no frame for this long is closed (at least 1 ms);
    /// the peer's outbound side sees the close and dials again. Default 5 minutes.
    pub idle_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            peer_queue_len: 1024,
            inbound_queue_len: 4096,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_batch_bytes: 256 << 10,
            secret: None,
            handshake_timeout: Duration::from_secs(5),
            max_inbound_connections: 64,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

impl TransportConfig {
    /// This configuration with every value raised to its minimum.
    pub(crate) fn normalized(mut self) -> Self {
        self.peer_queue_len = self.peer_queue_len.max(1);
        self.inbound_queue_len = self.inbound_queue_len.max(1);
        self.backoff_min = self.backoff_min.max(Duration::from_millis(1));
        self.backoff_max = self.backoff_max.max(self.backoff_min);
        self.connect_timeout = self.connect_timeout.max(Duration::from_millis(1));
        self.handshake_timeout = self.handshake_timeout.max(Duration::from_millis(1));
        self.max_inbound_connections = self.max_inbound_connections.max(1);
        self.idle_timeout = self.idle_timeout.max(Duration::from_millis(1));
        self
    }
}
