//! Malformed input from the network: each kind closes the connection that sent it, with a
//! warning naming the remote address and the problem, and the transport keeps serving.
//!
//! Timeouts here only turn a hang into a failure; no test depends on how fast anything is.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::transport::{encode_frame, frame_payload, Transport, TransportConfig};
use raft::{Message, MessageBody, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const GUARD: Duration = Duration::from_secs(30);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(GUARD, f).await.unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

/// Collects the fields of every warning, one string per event.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Warnings {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Warnings {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn vote(from: NodeId, to: NodeId, term: u64) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::RequestVote { pre_vote: false, last_log_index: term, last_log_term: 0 },
    }
}

struct Fixture {
    /// Node 2, under test.
    t2: Transport,
    in2: mpsc::Receiver<Message>,
    /// Node 1, a well-behaved peer with a connection to node 2 open throughout.
    t1: Transport,
    term: u64,
}

impl Fixture {
    async fn new() -> Fixture {
        let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a2 = l2.local_addr().unwrap();
        let (t1, _) = Transport::start(1, l1, [(2, a2)], TransportConfig::default());
        let (t2, in2) = Transport::start(2, l2, [], TransportConfig::default());
        let mut f = Fixture { t2, in2, t1, term: 0 };
        f.peer_still_delivers().await;
        f
    }

    fn next_term(&mut self) -> u64 {
        self.term += 1;
        self.term
    }

    async fn expect(&mut self, want: Message) {
        let got = within("a message", self.in2.recv()).await.expect("inbox closed");
        assert_eq!(got, want);
    }

    /// Node 1's connection still delivers.
    async fn peer_still_delivers(&mut self) {
        let m = vote(1, 2, self.next_term());
        assert!(self.t1.send(m.clone()));
        self.expect(m).await;
    }

    /// A raw connection to node 2 that has delivered one valid message.
    async fn raw(&mut self) -> TcpStream {
        let mut stream = TcpStream::connect(self.t2.local_addr()).await.unwrap();
        let m = vote(7, 2, self.next_term());
        stream.write_all(&encode_frame(&m).unwrap()).await.unwrap();
        self.expect(m).await;
        stream
    }
}

/// Waits until the other side closes `stream` (end of stream or reset).
async fn closed_by_peer(stream: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match within("the connection to close", stream.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("the transport wrote {n} bytes on an inbound connection"),
    }
}

/// Sends `bad` on a fresh connection (then half-closes it if `then_eof`), and checks that
/// the transport closes just that connection with a warning naming the connection's address
/// and containing `problem`, and keeps serving old and new connections.
async fn rejects(f: &mut Fixture, warnings: &Warnings, bad: &[u8], then_eof: bool, problem: &str) {
    let before = f.t2.stats().inbound_bad_frames;
    let mut stream = f.raw().await;
    let local: SocketAddr = stream.local_addr().unwrap();
    // The peer may already have closed by the time the last bytes go out.
    let _ = stream.write_all(bad).await;
    if then_eof {
        let _ = stream.shutdown().await;
    }
    closed_by_peer(&mut stream).await;

    assert_eq!(f.t2.stats().inbound_bad_frames, before + 1);
    let warned = warnings.take();
    assert!(
        warned.iter().any(|w| w.contains(&format!("peer={local}")) && w.contains(problem)),
        "no warning naming {local} and {problem:?} in {warned:#?}"
    );
    // The peer's connection and a new one both still deliver.
    f.peer_still_delivers().await;
    let mut again = f.raw().await;
    let m = vote(8, 2, f.next_term());
    again.write_all(&encode_frame(&m).unwrap()).await.unwrap();
    f.expect(m).await;
}

/// Runs `test` on a current-thread runtime with `warnings` collecting every warning: the
/// transport's tasks run on this thread, so they log to it.
fn with_warnings<F: Future<Output = ()>>(test: impl FnOnce(Warnings) -> F) {
    let warnings = Warnings::default();
    let _guard = tracing::subscriber::set_default(warnings.clone());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test(warnings));
}

#[test]
fn garbage_bytes_close_the_connection() {
    with_warnings(|w| async move {
        let mut f = Fixture::new().await;
        // Read as a length prefix, "GET " announces about 1.2 GB.
        rejects(&mut f, &w, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, "exceeds the limit").await;
        // Short garbage within the limit does not decode.
        rejects(&mut f, &w, &[0, 0, 0, 3, 0xff, 0xff, 0xff], false, "undecodable").await;
        f.t1.shutdown().await;
        f.t2.shutdown().await;
    });
}

#[test]
fn a_4_gib_length_prefix_closes_the_connection() {
    with_warnings(|w| async move {
        let mut f = Fixture::new().await;
        let mut bad = u32::MAX.to_be_bytes().to_vec();
        bad.extend([0; 64]);
        rejects(&mut f, &w, &bad, false, "frame length 4294967295 exceeds the limit").await;
        f.t1.shutdown().await;
        f.t2.shutdown().await;
    });
}

#[test]
fn a_truncated_frame_closes_the_connection() {
    with_warnings(|w| async move {
        let mut f = Fixture::new().await;
        // Ten bytes of a hundred-byte payload, then end of stream.
        let mut bad = 100u32.to_be_bytes().to_vec();
        bad.extend([1; 10]);
        rejects(&mut f, &w, &bad, true, "truncated").await;
        // Half a length prefix, then end of stream.
        rejects(&mut f, &w, &[0, 0], true, "truncated").await;
        f.t1.shutdown().await;
        f.t2.shutdown().await;
    });
}

#[test]
fn an_undecodable_payload_closes_the_connection() {
    with_warnings(|w| async move {
        let mut f = Fixture::new().await;
        // A well-formed frame: from 1, to 2, term 3, then a message kind that does not exist.
        rejects(&mut f, &w, &frame_payload(&[1, 2, 3, 200]).unwrap(), false, "undecodable").await;
        // A valid message followed by a stray byte inside the same frame.
        let mut payload = encode_frame(&vote(1, 2, 99)).unwrap()[4..].to_vec();
        payload.push(0);
        rejects(&mut f, &w, &frame_payload(&payload).unwrap(), false, "trailing").await;
        f.t1.shutdown().await;
        f.t2.shutdown().await;
    });
}

#[test]
fn a_message_for_another_node_is_dropped_but_the_connection_stays() {
    with_warnings(|w| async move {
        let mut f = Fixture::new().await;
        let mut stream = f.raw().await;
        let local = stream.local_addr().unwrap();
        stream.write_all(&encode_frame(&vote(7, 5, 1000)).unwrap()).await.unwrap();
        let m = vote(7, 2, f.next_term());
        stream.write_all(&encode_frame(&m).unwrap()).await.unwrap();
        // Same connection, so the misaddressed message was handled before this one.
        f.expect(m).await;
        let stats = f.t2.stats();
        assert_eq!(stats.messages_misaddressed, 1);
        assert_eq!(stats.inbound_bad_frames, 0);
        let warned = w.take();
        assert!(
            warned.iter().any(|x| x.contains(&format!("peer={local}")) && x.contains("to=5")),
            "{warned:#?}"
        );
        f.t1.shutdown().await;
        f.t2.shutdown().await;
    });
}
