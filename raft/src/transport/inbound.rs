//! The inbound side: an accept loop and one read-only task per accepted connection, which
//! decodes frames into messages and hands them to the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::frame::{decode, FrameError, HEADER_LEN};
use super::reader::FrameReader;
use super::stats::SharedCounters;
use crate::{Message, NodeId};

/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every inbound task needs.
#[derive(Clone)]
pub(crate) struct Inbound {
    pub(crate) id: NodeId,
    pub(crate) deliver: mpsc::Sender<Message>,
    pub(crate) counters: Arc<SharedCounters>,
    pub(crate) max_frame_len: usize,
}

impl Inbound {
    /// Accepts connections until `stop` changes or its sender is dropped; then closes the
    /// listener and every connection before returning.
    pub(crate) async fn accept_loop(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(e) = joined {
                        warn!(error = %e, "inbound connection task failed");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        SharedCounters::bump(&self.counters.inbound_connections, 1);
                        debug!(%peer, "accepted inbound connection");
                        connections.spawn(self.clone().read_connection(stream, peer));
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

    /// Reads frames from one connection until it ends or sends something malformed.
    async fn read_connection(self, stream: TcpStream, peer: SocketAddr) {
        let mut frames = FrameReader::new(stream, self.max_frame_len);
        loop {
            let payload = match frames.next_frame().await {
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
                warn!(%peer, from = msg.from, to = msg.to, me = self.id,
                    "dropping a message addressed to another node");
                continue;
            }
            SharedCounters::bump(&self.counters.messages_received, 1);
            if self.deliver.send(msg).await.is_err() {
                debug!(%peer, "the node stopped receiving; closing inbound connection");
                return;
            }
        }
    }

    /// Logs why the connection from `peer` is being closed; the caller then drops it.
    fn reject(&self, peer: SocketAddr, error: FrameError) {
        SharedCounters::bump(&self.counters.inbound_bad_frames, 1);
        warn!(%peer, %error, "closing inbound connection: malformed frame");
    }
}
