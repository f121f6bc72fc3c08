//! Links that understand the transport's frames (`u32` length + payload): they drop, delay,
//! duplicate and reorder whole messages, never torn bytes. A cut link is a black hole (the TCP
//! connection stays up and frames vanish), as a firewall that drops packets is.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::transport::{auth, frame_payload, FrameReader, DEFAULT_MAX_FRAME_LEN};
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{sleep_until_opt, LinkState};

/// Accepts the connections of one link until the proxy stops (dropping the connections with it).
pub(super) async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    state: Arc<Mutex<LinkState>>,
) {
    let mut conns = JoinSet::new();
    loop {
        let inbound = super::accept_next(&listener).await;
        conns.spawn(forward(inbound, target, state.clone()));
        // Forget the connections that ended.
        while conns.try_join_next().is_some() {}
    }
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
    let mut due: Vec<Instant> = (0..copies)
        .map(|_| {
            let (lo, hi) = f.delay_ms;
            let mut ms = if hi > lo { st.rng.gen_range(lo..=hi) } else { lo };
            if f.reorder > 0.0 && st.rng.gen_bool(f.reorder.min(1.0)) {
                ms += st.rng.gen_range(5..=50);
            }
            now + Duration::from_millis(ms)
        })
        .collect();
    if let Some(echo) = st.echo {
        if st.rng.gen_bool(echo.chance.clamp(0.0, 1.0)) {
            st.counts.duplicated += 1;
            let (lo, hi) = echo.delay_ms;
            let ms = if hi > lo { st.rng.gen_range(lo..=hi) } else { lo };
            due.push(due[0] + Duration::from_millis(ms));
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{Echo, Link, Proxy};
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
    async fn an_echo_delivers_a_late_copy_after_the_ones_that_followed() {
        let (proxy, target, mut sender) = pair().await;
        let echo = Echo { chance: 1.0, delay_ms: (150, 150) };
        proxy.set_echo(|l| (l == Link { from: 1, to: 2 }).then_some(echo));
        sender.write_all(&encode_frame(&5u32).unwrap()).await.unwrap();
        let (mut conn, _) = target.accept().await.unwrap();
        assert_eq!(read_one(&mut conn).await, Some(5));
        proxy.set_echo(|_| None);
        sender.write_all(&encode_frame(&6u32).unwrap()).await.unwrap();
        assert_eq!(read_one(&mut conn).await, Some(6), "the next message overtakes the copy");
        assert_eq!(read_one(&mut conn).await, Some(5), "the late copy");
        proxy.heal();
        assert_eq!(proxy.counts()[&Link { from: 1, to: 2 }].duplicated, 1);
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
