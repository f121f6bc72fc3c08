//! Authenticated transports over real loopback TCP: peers that share the secret talk; a wrong
//! secret, a raw connection, a flood of connections that never authenticate, an idle
//! connection and a message in another peer's name get nothing through, and are counted.
//!
//! Timeouts here only turn a hang into a failure; no test depends on how fast anything is.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use raft::transport::{
    auth, encode_frame, ClusterSecret, Transport, TransportConfig, TransportStats,
};
use raft::{Message, MessageBody, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const GUARD: Duration = Duration::from_secs(30);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(GUARD, f).await.unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

/// Polls the transport's counters until `done` holds for them.
async fn until_stats(t: &Transport, what: &str, done: impl Fn(&TransportStats) -> bool) {
    within(what, async {
        while !done(&t.stats()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn secret(s: &str) -> ClusterSecret {
    ClusterSecret::new(s.as_bytes().to_vec()).unwrap()
}

fn config(secret: ClusterSecret) -> TransportConfig {
    TransportConfig { secret: Some(secret), ..TransportConfig::default() }
}

fn vote(from: NodeId, to: NodeId, term: u64) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::RequestVote { pre_vote: false, last_log_index: 0, last_log_term: 0 },
    }
}

/// A transport for node 2 that knows node 1 at an address nothing listens on.
async fn acceptor(config: TransportConfig) -> (Transport, mpsc::Receiver<Message>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    Transport::start(2, listener, HashMap::from([(1, nowhere)]), config)
}

/// Reads until the peer closes the connection (or resets it).
async fn closed_by_peer(stream: &mut TcpStream) {
    let mut buf = [0u8; 256];
    within("the connection to be closed", async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
}

#[tokio::test]
async fn peers_holding_the_secret_exchange_messages() {
    let (l1, l2) = (
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (a1, a2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
    let s = secret("a secret of the cluster");
    let (t1, mut in1) = Transport::start(1, l1, [(2, a2)], config(s.clone()));
    let (t2, mut in2) = Transport::start(2, l2, [(1, a1)], config(s));
    assert!(t1.send(vote(1, 2, 7)));
    assert_eq!(within("1 -> 2", in2.recv()).await.unwrap(), vote(1, 2, 7));
    assert!(t2.send(vote(2, 1, 8)));
    assert_eq!(within("2 -> 1", in1.recv()).await.unwrap(), vote(2, 1, 8));
    assert_eq!(t2.stats().inbound_unauthenticated, 0);
}

#[tokio::test]
async fn a_peer_with_another_secret_gets_nothing_through() {
    let (t2, mut in2) = acceptor(config(secret("a secret of the cluster"))).await;
    let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (t1, _in1) =
        Transport::start(1, l1, [(2, t2.local_addr())], config(secret("an outsider's guess")));
    t1.send(vote(1, 2, 7));
    until_stats(&t2, "the refused handshake to be counted", |s| s.inbound_unauthenticated >= 1)
        .await;
    assert!(in2.try_recv().is_err(), "no message from a peer without the secret");
    assert_eq!(t2.stats().messages_received, 0);
}

#[tokio::test]
async fn a_raw_frame_without_the_handshake_is_refused() {
    let (t2, mut in2) = acceptor(config(secret("a secret of the cluster"))).await;
    let mut raw = TcpStream::connect(t2.local_addr()).await.unwrap();
    // A term no correct peer sends: it must not even reach the core.
    raw.write_all(&encode_frame(&vote(1, 2, u64::MAX)).unwrap()).await.unwrap();
    closed_by_peer(&mut raw).await;
    until_stats(&t2, "the raw connection to be counted", |s| s.inbound_unauthenticated >= 1).await;
    assert!(in2.try_recv().is_err());
}

#[tokio::test]
async fn a_flood_of_silent_connections_does_not_lock_out_a_peer() {
    let s = secret("a secret of the cluster");
    // A long handshake timeout: it is the eviction of handshakes that makes room here.
    let cfg = TransportConfig {
        max_inbound_connections: 4,
        handshake_timeout: Duration::from_secs(600),
        ..config(s.clone())
    };
    let (t2, mut in2) = acceptor(cfg).await;
    let mut flood = Vec::new();
    for _ in 0..50 {
        flood.push(TcpStream::connect(t2.local_addr()).await.unwrap());
    }
    until_stats(&t2, "the flood to be accepted", |s| s.inbound_connections >= 50).await;
    let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (t1, _in1) = Transport::start(1, l1, [(2, t2.local_addr())], config(s));
    t1.send(vote(1, 2, 9));
    let got = within("the real peer's message through the flood", async {
        loop {
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), in2.recv()).await
            {
                return m;
            }
            // The link may have been evicted while handshaking; it reconnects, and sends anew.
            t1.send(vote(1, 2, 9));
        }
    })
    .await;
    assert_eq!(got, vote(1, 2, 9));
    assert!(t2.stats().inbound_unauthenticated >= 46, "{:?}", t2.stats());
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_its_handshake() {
    let s = secret("a secret of the cluster");
    let cfg = TransportConfig { idle_timeout: Duration::from_millis(200), ..config(s.clone()) };
    let (t2, _in2) = acceptor(cfg).await;
    let mut stream = TcpStream::connect(t2.local_addr()).await.unwrap();
    within("the handshake", auth::dial(&mut stream, &s, 1, 2)).await.unwrap();
    closed_by_peer(&mut stream).await;
    assert_eq!(t2.stats().inbound_idle_closed, 1);
}

#[tokio::test]
async fn a_message_in_another_peers_name_closes_the_connection() {
    let s = secret("a secret of the cluster");
    let (t2, mut in2) = acceptor(config(s.clone())).await;
    let mut stream = TcpStream::connect(t2.local_addr()).await.unwrap();
    within("the handshake", auth::dial(&mut stream, &s, 1, 2)).await.unwrap();
    stream.write_all(&encode_frame(&vote(1, 2, 3)).unwrap()).await.unwrap();
    assert_eq!(within("node 1's own message", in2.recv()).await.unwrap(), vote(1, 2, 3));
    // Node 1 speaking as node 3.
    stream.write_all(&encode_frame(&vote(3, 2, 4)).unwrap()).await.unwrap();
    closed_by_peer(&mut stream).await;
    assert!(in2.try_recv().is_err(), "the forged message was not delivered");
    assert_eq!(t2.stats().inbound_bad_frames, 1);
}
