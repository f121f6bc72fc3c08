//! Transports talking over real loopback TCP: delivery and order, drops, reconnects, shutdown.
//!
//! Timeouts here only turn a hang into a failure; no test depends on how fast anything is.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use raft::transport::{decode, read_frame, Transport, TransportConfig, DEFAULT_MAX_FRAME_LEN};
use raft::{Entry, EntryKind, Message, MessageBody, NodeId};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

const GUARD: Duration = Duration::from_secs(30);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(GUARD, f).await.unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A message from `from` to `to` whose term tells messages apart; every tenth one carries an
/// entry larger than one read of the receiver's buffer, so that frames span several reads and
/// batches.
fn msg(from: NodeId, to: NodeId, seq: u64) -> Message {
    let body = if seq % 10 == 9 {
        MessageBody::AppendEntries {
            prev_log_index: seq,
            prev_log_term: 1,
            entries: vec![Entry {
                index: seq + 1,
                term: 1,
                kind: EntryKind::Normal,
                data: vec![seq as u8; 70_000],
            }],
            leader_commit: seq,
        }
    } else {
        MessageBody::RequestVote { pre_vote: false, last_log_index: seq, last_log_term: 0 }
    };
    Message { from, to, term: seq, body }
}

fn config(peer_queue_len: usize) -> TransportConfig {
    TransportConfig { peer_queue_len, ..TransportConfig::default() }
}

async fn recv_n(inbox: &mut mpsc::Receiver<Message>, n: usize) -> Vec<Message> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        got.push(within("a message", inbox.recv()).await.expect("inbox closed"));
    }
    got
}

#[tokio::test]
async fn two_transports_exchange_messages_in_order() {
    const N: u64 = 400;
    let (l1, l2) = (listener().await, listener().await);
    let (a1, a2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
    let (t1, mut in1) = Transport::start(1, l1, HashMap::from([(2, a2)]), config(N as usize));
    let (t2, mut in2) = Transport::start(2, l2, [(1, a1)], config(N as usize));
    assert_eq!(t1.local_addr(), a1);

    for seq in 0..N {
        assert!(t1.send(msg(1, 2, seq)), "queue sized for every message");
        assert!(t2.send(msg(2, 1, seq)), "queue sized for every message");
    }
    let to2 = recv_n(&mut in2, N as usize).await;
    let to1 = recv_n(&mut in1, N as usize).await;
    assert_eq!(to2, (0..N).map(|s| msg(1, 2, s)).collect::<Vec<_>>());
    assert_eq!(to1, (0..N).map(|s| msg(2, 1, s)).collect::<Vec<_>>());

    let (s1, s2) = (t1.stats(), t2.stats());
    for (sender, receiver) in [(&s1, &s2), (&s2, &s1)] {
        assert_eq!(sender.messages_sent, N);
        assert_eq!(sender.messages_dropped, 0);
        assert_eq!(receiver.messages_received, N);
        assert_eq!(sender.bytes_sent, receiver.bytes_received);
        assert_eq!(receiver.inbound_bad_frames, 0);
    }
    assert_eq!(s1.peers[&2].messages_sent, N);
    assert!(s1.peers[&2].link.connected);

    t1.shutdown().await;
    t2.shutdown().await;
}

#[tokio::test]
async fn three_transports_keep_order_on_every_link() {
    const N: u64 = 200;
    let ls = [listener().await, listener().await, listener().await];
    let addrs: Vec<SocketAddr> = ls.iter().map(|l| l.local_addr().unwrap()).collect();
    let all: Vec<(NodeId, SocketAddr)> = (1..=3).zip(addrs.iter().copied()).collect();
    let mut transports = Vec::new();
    let mut inboxes = Vec::new();
    for (id, l) in (1..=3).zip(ls) {
        // Each transport gets the whole map, itself included, which it ignores.
        let (t, inbox) = Transport::start(id, l, all.clone(), config(2 * N as usize));
        assert_eq!(t.stats().peers.len(), 2);
        transports.push(t);
        inboxes.push(inbox);
    }
    for seq in 0..N {
        for (i, t) in transports.iter().enumerate() {
            let from = i as NodeId + 1;
            for to in (1..=3).filter(|&to| to != from) {
                assert!(t.send(msg(from, to, seq)));
            }
        }
    }
    for (i, inbox) in inboxes.iter_mut().enumerate() {
        let me = i as NodeId + 1;
        let got = recv_n(inbox, 2 * N as usize).await;
        for from in (1..=3).filter(|&from| from != me) {
            let link: Vec<Message> = got.iter().filter(|m| m.from == from).cloned().collect();
            assert_eq!(link, (0..N).map(|s| msg(from, me, s)).collect::<Vec<_>>());
        }
    }
    for t in transports {
        assert_eq!(t.stats().messages_dropped, 0);
        t.shutdown().await;
    }
}

#[tokio::test]
async fn a_peer_down_at_first_gets_messages_once_it_comes_up() {
    // Bound but not listening: connections to it are refused until `listen`.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let a2 = socket.local_addr().unwrap();
    let (t1, _in1) = Transport::start(1, listener().await, [(2, a2)], config(64));
    let mut link = t1.watch_link(2).unwrap();

    // It keeps trying, backing off, while the peer is down.
    within("three failed attempts", link.wait_for(|s| s.connect_failures >= 3)).await.unwrap();
    assert_eq!(link.borrow().connects, 0);

    // What is sent while the peer is down is dropped (at once, or at the next failed attempt).
    for seq in 0..10 {
        t1.send(msg(1, 2, seq));
    }
    let failures = link.borrow().connect_failures;
    within("another failed attempt", link.wait_for(|s| s.connect_failures > failures))
        .await
        .unwrap();
    let stats = t1.stats();
    assert_eq!(stats.peers[&2].messages_dropped, 10);
    assert_eq!(stats.messages_sent, 0);

    // The peer comes up on the same address.
    let (t2, mut in2) = Transport::start(2, socket.listen(64).unwrap(), [], config(64));
    within("the link to connect", link.wait_for(|s| s.connected)).await.unwrap();
    for seq in 10..60 {
        assert!(t1.send(msg(1, 2, seq)));
    }
    let got = recv_n(&mut in2, 50).await;
    assert_eq!(got, (10..60).map(|s| msg(1, 2, s)).collect::<Vec<_>>());
    assert_eq!(t1.stats().peers[&2].messages_sent, 50);
    assert_eq!(t1.stats().peers[&2].messages_dropped, 10);

    t1.shutdown().await;
    t2.shutdown().await;
}

#[tokio::test]
async fn a_link_closed_by_the_peer_reconnects_and_speaks_the_frame_format() {
    // Peer 2 is a bare listener reading frames with the public codec, as a proxy would.
    let peer = listener().await;
    let (t1, _in1) =
        Transport::start(1, listener().await, [(2, peer.local_addr().unwrap())], config(64));
    let mut link = t1.watch_link(2).unwrap();

    assert!(t1.send(msg(1, 2, 0)));
    let (mut first, _) = within("the first connection", peer.accept()).await.unwrap();
    let payload = within("a frame", read_frame(&mut first, DEFAULT_MAX_FRAME_LEN))
        .await
        .unwrap()
        .expect("a frame before EOF");
    assert_eq!(decode::<Message>(&payload).unwrap(), msg(1, 2, 0));
    drop(first);

    let (mut second, _) = within("a new connection", peer.accept()).await.unwrap();
    within("the link to reconnect", link.wait_for(|s| s.connected && s.connects == 2))
        .await
        .unwrap();
    assert_eq!(link.borrow().disconnects, 1);
    for seq in 1..=9 {
        assert!(t1.send(msg(1, 2, seq)));
    }
    for seq in 1..=9 {
        let payload = within("a frame", read_frame(&mut second, DEFAULT_MAX_FRAME_LEN))
            .await
            .unwrap()
            .expect("a frame before EOF");
        assert_eq!(decode::<Message>(&payload).unwrap(), msg(1, 2, seq));
    }
    t1.shutdown().await;
    // Shutting down closes the connection: the reader sees a clean end of stream.
    let end = within("EOF", read_frame(&mut second, DEFAULT_MAX_FRAME_LEN)).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn send_drops_instead_of_waiting_when_the_queue_is_full() {
    let peer = listener().await;
    let (t1, _in1) =
        Transport::start(1, listener().await, [(2, peer.local_addr().unwrap())], config(4));

    // No await between sends: the link cannot drain the queue meanwhile.
    let accepted: Vec<u64> = (0..100).filter(|&seq| t1.send(msg(1, 2, seq))).collect();
    let refused = 100 - accepted.len() as u64;
    assert!(accepted.len() >= 4, "{accepted:?}");
    assert!(refused > 0, "a queue of 4 took 100 messages");
    assert_eq!(t1.stats().peers[&2].messages_dropped, refused);

    // Exactly the accepted messages go out, in order.
    let (mut stream, _) = within("the connection", peer.accept()).await.unwrap();
    for &seq in &accepted {
        let payload = within("a frame", read_frame(&mut stream, DEFAULT_MAX_FRAME_LEN))
            .await
            .unwrap()
            .expect("a frame before EOF");
        assert_eq!(decode::<Message>(&payload).unwrap(), msg(1, 2, seq));
    }
    assert_eq!(t1.stats().messages_sent, accepted.len() as u64);
    t1.shutdown().await;
}

#[tokio::test]
async fn a_message_for_an_unknown_peer_is_dropped_and_counted() {
    let (t1, _in1) = Transport::start(1, listener().await, [], config(4));
    assert!(!t1.send(msg(1, 9, 0)));
    assert!(!t1.send(msg(1, 1, 1)), "no link to itself");
    let stats = t1.stats();
    assert_eq!(stats.messages_unroutable, 2);
    assert_eq!(stats.messages_dropped, 2);
    assert!(t1.watch_link(9).is_none());
    t1.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections_and_frees_the_port() {
    let (l1, l2) = (listener().await, listener().await);
    let (a1, a2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
    let (t1, mut in1) = Transport::start(1, l1, [(2, a2)], config(64));
    let (t2, mut in2) = Transport::start(2, l2, [(1, a1)], config(64));
    assert!(t1.send(msg(1, 2, 0)));
    assert!(t2.send(msg(2, 1, 0)));
    assert_eq!(recv_n(&mut in2, 1).await, vec![msg(1, 2, 0)]);
    assert_eq!(recv_n(&mut in1, 1).await, vec![msg(2, 1, 0)]);
    let mut link1 = t1.watch_link(2).unwrap();

    t2.shutdown().await;
    // Every inbound task has ended: the channel is closed.
    assert_eq!(in2.recv().await, None);
    // The port is free.
    let again = TcpListener::bind(a2).await.expect("port freed by shutdown");
    // The other side saw its link go down.
    within("the link to drop", link1.wait_for(|s| !s.connected && s.disconnects == 1))
        .await
        .unwrap();
    drop(again);

    t1.shutdown().await;
    assert_eq!(in1.recv().await, None);
    TcpListener::bind(a1).await.expect("port freed by shutdown");
}

#[tokio::test]
async fn dropping_the_transport_stops_it_too() {
    let l2 = listener().await;
    let a2 = l2.local_addr().unwrap();
    let (t1, _in1) = Transport::start(1, listener().await, [(2, a2)], config(64));
    let (t2, mut in2) = Transport::start(2, l2, [], config(64));
    assert!(t1.send(msg(1, 2, 0)));
    assert_eq!(recv_n(&mut in2, 1).await, vec![msg(1, 2, 0)]);

    drop(t2);
    // The channel closes only after the accept loop has closed the listener and its connections.
    assert_eq!(within("the inbox to close", in2.recv()).await, None);
    TcpListener::bind(a2).await.expect("port freed after drop");
    t1.shutdown().await;
}

#[test]
fn a_transport_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Transport>();
}
