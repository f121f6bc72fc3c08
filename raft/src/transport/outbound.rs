//! The outbound link to one peer: a bounded queue and a task that keeps one TCP connection
//! open, reconnecting with exponential backoff, and writes queued messages in batches.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, timeout, Instant};
use tracing::{debug, info, warn};

use super::auth;
use super::config::TransportConfig;
use super::frame::{encode_frame_into, HEADER_LEN};
use super::stats::{LinkCounters, LinkState};
use crate::{Message, NodeId};

/// What the sending side and the link task share.
pub(crate) struct LinkShared {
    /// False while the link is backing off after a failure: messages are dropped at once
    /// instead of waiting in the queue for a connection that may be long in coming.
    accepting: AtomicBool,
    pub(crate) counters: LinkCounters,
    pub(crate) state: watch::Sender<LinkState>,
}

/// The sending side of a link, kept by the transport.
pub(crate) struct LinkHandle {
    queue: mpsc::Sender<Message>,
    pub(crate) shared: Arc<LinkShared>,
}

impl LinkHandle {
    /// Queues `msg` without waiting; drops and counts it if the peer is down or the queue full.
    pub(crate) fn send(&self, msg: Message) -> bool {
        if self.shared.accepting.load(Ordering::Acquire) && self.queue.try_send(msg).is_ok() {
            return true;
        }
        self.shared.counters.dropped(1);
        false
    }
}

/// Everything the link task needs.
pub(crate) struct Link {
    /// This node, as it introduces itself in the handshake.
    me: NodeId,
    pub(crate) peer: NodeId,
    pub(crate) addr: SocketAddr,
    queue: mpsc::Receiver<Message>,
    shared: Arc<LinkShared>,
    config: Arc<TransportConfig>,
}

/// Makes the two halves of a link to `peer` at `addr`.
pub(crate) fn link(
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    config: Arc<TransportConfig>,
) -> (LinkHandle, Link) {
    let (tx, rx) = mpsc::channel(config.peer_queue_len);
    let shared = Arc::new(LinkShared {
        accepting: AtomicBool::new(true),
        counters: LinkCounters::default(),
        state: watch::Sender::new(LinkState::default()),
    });
    let handle = LinkHandle { queue: tx, shared: shared.clone() };
    (handle, Link { me, peer, addr, queue: rx, shared, config })
}

/// How a connection ended.
enum End {
    /// The transport is gone: the task ends.
    QueueClosed,
    /// The connection failed; the reason is for the log.
    Broken(String),
}

impl Link {
    /// Runs until the transport drops its handle (or the task is aborted).
    pub(crate) async fn run(mut self) {
        let config = self.config.clone();
        let mut delay = config.backoff_min;
        // Ends when the transport drops its handle, whatever state the link is in.
        while !self.queue.is_closed() {
            self.shared.accepting.store(true, Ordering::Release);
            match self.connect().await {
                Some(stream) => {
                    debug!(peer = self.peer, addr = %self.addr, "connected");
                    self.shared.state.send_modify(|s| {
                        s.connected = true;
                        s.connects += 1;
                    });
                    let since = Instant::now();
                    let end = self.serve(stream).await;
                    self.shared.state.send_modify(|s| {
                        s.connected = false;
                        s.disconnects += 1;
                    });
                    match end {
                        End::QueueClosed => return,
                        End::Broken(reason) => {
                            let addr = self.addr;
                            info!(peer = self.peer, %addr, %reason, "outbound connection lost");
                        }
                    }
                    if since.elapsed() >= config.backoff_max {
                        // A connection that worked for a while: try again at once, keeping
                        // what is queued.
                        delay = config.backoff_min;
                        continue;
                    }
                    self.go_down();
                }
                None => {
                    self.go_down();
                    self.shared.state.send_modify(|s| s.connect_failures += 1);
                }
            }
            sleep(delay).await;
            delay = (delay * 2).min(config.backoff_max);
        }
    }

    /// Opens a connection to the peer and, when the cluster has a secret, completes the
    /// handshake on it; `None` when either fails.
    async fn connect(&self) -> Option<TcpStream> {
        let (peer, addr) = (self.peer, self.addr);
        let mut stream = match timeout(self.config.connect_timeout, TcpStream::connect(addr)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                debug!(peer, %addr, error = %e, "connect failed");
                return None;
            }
            Err(_) => {
                debug!(peer, %addr, "connect timed out");
                return None;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            warn!(peer, %addr, error = %e, "cannot set TCP_NODELAY");
        }
        if let Some(secret) = &self.config.secret {
            let handshake = auth::dial(&mut stream, secret, self.me, peer);
            match timeout(self.config.handshake_timeout, handshake).await {
                Ok(Ok(())) => {}
                // A peer that went away in the middle (killed, say) is no news.
                Ok(Err(e @ auth::AuthError::Io(_))) => {
                    debug!(peer, %addr, error = %e, "the connection failed during the handshake");
                    return None;
                }
                Ok(Err(e)) => {
                    warn!(peer, %addr, error = %e, "the peer failed the handshake");
                    return None;
                }
                Err(_) => {
                    warn!(peer, %addr, "the peer did not complete the handshake in time");
                    return None;
                }
            }
        }
        Some(stream)
    }

    /// Stops accepting messages and drops those waiting, until the next attempt.
    fn go_down(&mut self) {
        self.shared.accepting.store(false, Ordering::Release);
        let mut dropped = 0;
        while self.queue.try_recv().is_ok() {
            dropped += 1;
        }
        self.shared.counters.dropped(dropped);
    }

    /// Writes queued messages to `stream` until the queue closes or the connection fails.
    async fn serve(&mut self, mut stream: TcpStream) -> End {
        let (mut reader, mut writer) = stream.split();
        // The peer never writes on this connection: a read returns only when it closes.
        let mut probe = [0u8; 64];
        let mut buf = Vec::with_capacity(64 << 10);
        loop {
            let first = tokio::select! {
                biased;
                read = reader.read(&mut probe) => {
                    return End::Broken(match read {
                        Ok(0) => "closed by the peer".to_string(),
                        Ok(n) => format!("the peer sent {n} unexpected bytes"),
                        Err(e) => e.to_string(),
                    });
                }
                msg = self.queue.recv() => match msg {
                    Some(msg) => msg,
                    None => return End::QueueClosed,
                },
            };
            buf.clear();
            let mut count = 0u64;
            let mut next = Some(first);
            while let Some(msg) = next {
                if self.encode(&msg, &mut buf) {
                    count += 1;
                }
                if buf.len() >= self.config.max_batch_bytes {
                    break;
                }
                next = self.queue.try_recv().ok();
            }
            if count == 0 {
                continue;
            }
            if let Err(e) = writer.write_all(&buf).await {
                self.shared.counters.dropped(count);
                return End::Broken(e.to_string());
            }
            self.shared.counters.sent(count, buf.len() as u64);
        }
    }

    /// Appends `msg` to `buf` as a frame; drops and counts it if it cannot be sent.
    fn encode(&self, msg: &Message, buf: &mut Vec<u8>) -> bool {
        let start = buf.len();
        let problem = match encode_frame_into(msg, buf) {
            Ok(n) if n - HEADER_LEN <= self.config.max_frame_len => return true,
            Ok(n) => {
                buf.truncate(start);
                format!(
                    "frame length {} exceeds the limit of {} bytes",
                    n - HEADER_LEN,
                    self.config.max_frame_len
                )
            }
            Err(e) => e.to_string(),
        };
        let kind = msg.body.kind_name();
        warn!(peer = self.peer, kind, %problem, "dropping a message that cannot be sent");
        self.shared.counters.dropped(1);
        false
    }
}
