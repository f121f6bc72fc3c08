//! Links for traffic the proxy does not understand: byte streams, forwarded in order, delayed,
//! black-holed and closed per directed link (see the module above for the rules).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

use super::{Link, LinkState, Sniff};

/// The most the proxy reads of a new connection, when it sniffs, before it must know the
/// sender: a request head of etcd's is about 400 bytes.
const HEAD_LIMIT: usize = 8 * 1024;
/// How long the proxy waits for a first request head before it forwards what it has.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What every connection of one proxy shares.
pub(super) struct Context {
    pub links: Arc<BTreeMap<Link, Arc<Mutex<LinkState>>>>,
    pub changed: watch::Receiver<u64>,
    /// The node each listening address stands for (when the proxy sniffs).
    pub by_addr: BTreeMap<SocketAddr, u64>,
}

impl Context {
    /// Whether bytes from `from` to `to` are cut. A side that is not known (a sender that did
    /// not say who it is) is any node: its bytes are cut if any matching link is, so that a
    /// partition never leaks through a connection the proxy could not attribute.
    fn cut(&self, from: Option<u64>, to: Option<u64>) -> bool {
        self.links.iter().any(|(link, state)| {
            from.is_none_or(|f| f == link.from)
                && to.is_none_or(|t| t == link.to)
                && state.lock().unwrap().faults.cut
        })
    }

    /// Whether a connection between `dialer` and `listener` crosses a cut, either way.
    fn crosses_cut(&self, dialer: Option<u64>, listener: u64) -> bool {
        self.cut(dialer, Some(listener)) || self.cut(Some(listener), dialer)
    }

    fn state(&self, from: Option<u64>, to: Option<u64>) -> Option<&Mutex<LinkState>> {
        let link = Link { from: from?, to: to? };
        self.links.get(&link).map(|s| &**s)
    }

    /// The delay of the next chunk from `from` to `to`, and counts its bytes as forwarded.
    fn forward(&self, from: Option<u64>, to: Option<u64>, bytes: usize) -> Duration {
        let Some(state) = self.state(from, to) else { return Duration::ZERO };
        let mut st = state.lock().unwrap();
        st.counts.forwarded += bytes as u64;
        let (lo, hi) = st.faults.delay_ms;
        Duration::from_millis(if hi > lo { st.rng.gen_range(lo..=hi) } else { lo })
    }

    /// Counts a connection between `dialer` and `listener` that a cut reached.
    fn cut_connection(&self, dialer: Option<u64>, listener: u64) {
        for (from, to) in [(dialer, Some(listener)), (Some(listener), dialer)] {
            if self.cut(from, to) {
                if let Some(state) = self.state(from, to) {
                    state.lock().unwrap().counts.connections_cut += 1;
                }
            }
        }
    }

    fn drop_bytes(&self, from: Option<u64>, to: Option<u64>, bytes: usize) {
        if let Some(state) = self.state(from, to) {
            state.lock().unwrap().counts.dropped += bytes as u64;
        }
    }
}

/// Accepts the connections to node `to` (from `from`, when the port is one link's; else from
/// whoever `sniff` finds) until the proxy stops, dropping every connection with it.
pub(super) async fn accept_loop(
    listener: TcpListener,
    to: u64,
    from: Option<u64>,
    target: SocketAddr,
    ctx: Arc<Context>,
    sniff: Sniff,
) {
    let mut conns = JoinSet::new();
    loop {
        let inbound = super::accept_next(&listener).await;
        conns.spawn(connection(inbound, to, from, target, ctx.clone(), sniff));
        while conns.try_join_next().is_some() {}
    }
}

async fn connection(
    mut inbound: TcpStream,
    to: u64,
    from: Option<u64>,
    target: SocketAddr,
    ctx: Arc<Context>,
    sniff: Sniff,
) {
    let _ = inbound.set_nodelay(true);
    let (from, head) = match from {
        Some(from) => (Some(from), Vec::new()),
        None => {
            let head = read_head(&mut inbound).await;
            (sniff(&head).and_then(|addr| ctx.by_addr.get(&addr).copied()), head)
        }
    };
    let mut changed = ctx.changed.clone();
    changed.borrow_and_update();
    if ctx.crosses_cut(from, to) {
        ctx.cut_connection(from, to);
        ctx.drop_bytes(from, Some(to), head.len());
        return black_hole(inbound, from, to, &ctx, changed).await;
    }
    let Ok(Ok(outbound)) = timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await else {
        // The target is down (killed): closing makes the sender reconnect later.
        return;
    };
    let _ = outbound.set_nodelay(true);
    let (inbound_read, inbound_write) = inbound.into_split();
    let (outbound_read, outbound_write) = outbound.into_split();
    let both = async {
        tokio::join!(
            direction(inbound_read, outbound_write, &ctx, from, Some(to), head),
            direction(outbound_read, inbound_write, &ctx, Some(to), from, Vec::new()),
        )
    };
    tokio::select! {
        _ = both => {}
        // A cut reaching the connection closes it: a stream is never resumed with a hole.
        _ = until(&mut changed, || ctx.crosses_cut(from, to)) => ctx.cut_connection(from, to),
    }
}

/// Reads the first request head (up to an empty line), or what came within the limits.
async fn read_head(inbound: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + SNIFF_TIMEOUT;
    while head.len() < HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, inbound.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    head
}

/// One direction of a connection: chunks read from `reader` are written to `writer` in order,
/// each after the link's delay, until `reader` ends (then `writer` is shut down, as the
/// sender's FIN would be) or `writer` fails.
async fn direction(
    mut reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    ctx: &Context,
    from: Option<u64>,
    to: Option<u64>,
    first: Vec<u8>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let pump = async move {
        let mut chunk = first;
        let mut last_due = Instant::now();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if !chunk.is_empty() {
                // Delays never reorder bytes: a chunk is due no earlier than the one before.
                let due = (Instant::now() + ctx.forward(from, to, chunk.len())).max(last_due);
                last_due = due;
                if tx.send((due, std::mem::take(&mut chunk))).await.is_err() {
                    return;
                }
            }
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => chunk = buf[..n].to_vec(),
            }
        }
    };
    let deliver = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    };
    tokio::join!(pump, deliver);
}

/// A connection opened across a cut: what the sender writes is read and dropped, nothing
/// reaches the target, and the connection is closed when the cut heals (the sender then
/// reconnects), or when the sender gives up.
async fn black_hole(
    mut inbound: TcpStream,
    from: Option<u64>,
    to: u64,
    ctx: &Context,
    mut changed: watch::Receiver<u64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = inbound.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => ctx.drop_bytes(from, Some(to), n),
            },
            _ = until(&mut changed, || !ctx.crosses_cut(from, to)) => return,
        }
    }
}

/// Resolves once `condition` holds after a change of the faults (never, once the proxy is
/// gone).
async fn until(changed: &mut watch::Receiver<u64>, condition: impl Fn() -> bool) {
    loop {
        if changed.changed().await.is_err() {
            return std::future::pending().await;
        }
        if condition() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{Mode, Proxy};

    /// Two nodes, the proxy's links between them, and node 2's real listener.
    async fn pair(mode: Mode) -> (Proxy, TcpListener) {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nodes = [(1, other.local_addr().unwrap()), (2, target.local_addr().unwrap())];
        (Proxy::start_mode(&nodes, 7, mode).await.unwrap(), target)
    }

    async fn read_some(conn: &mut TcpStream) -> Result<Vec<u8>, &'static str> {
        let mut buf = vec![0u8; 256];
        match timeout(Duration::from_millis(300), conn.read(&mut buf)).await {
            Err(_) => Err("nothing arrived"),
            Ok(Ok(0)) | Ok(Err(_)) => Err("closed"),
            Ok(Ok(n)) => Ok(buf[..n].to_vec()),
        }
    }

    #[tokio::test]
    async fn a_cut_closes_open_connections_and_black_holes_new_ones_until_it_heals() {
        let (proxy, target) = pair(Mode::Bytes { sniff: None }).await;
        let mut sender = TcpStream::connect(proxy.addr(1, 2)).await.unwrap();
        sender.write_all(b"hello").await.unwrap();
        let (mut conn, _) = target.accept().await.unwrap();
        assert_eq!(read_some(&mut conn).await, Ok(b"hello".to_vec()));
        conn.write_all(b"back").await.unwrap();
        assert_eq!(read_some(&mut sender).await, Ok(b"back".to_vec()));

        // A one-way cut of the reverse direction closes the connection both ways.
        proxy.update_all(|l, f| f.cut = l == Link { from: 2, to: 1 });
        assert_eq!(read_some(&mut sender).await, Err("closed"));
        assert_eq!(read_some(&mut conn).await, Err("closed"));

        // A connection opened during the cut reaches nobody.
        let mut during = TcpStream::connect(proxy.addr(1, 2)).await.unwrap();
        during.write_all(b"lost").await.unwrap();
        assert!(timeout(Duration::from_millis(300), target.accept()).await.is_err());
        assert_eq!(read_some(&mut during).await, Err("nothing arrived"));
        // The heal closes it, and a new connection goes through.
        proxy.heal();
        assert_eq!(read_some(&mut during).await, Err("closed"));
        let mut after = TcpStream::connect(proxy.addr(1, 2)).await.unwrap();
        after.write_all(b"again").await.unwrap();
        let (mut conn, _) = target.accept().await.unwrap();
        assert_eq!(read_some(&mut conn).await, Ok(b"again".to_vec()));
        let counts = proxy.counts()[&Link { from: 1, to: 2 }];
        assert_eq!((counts.forwarded, counts.dropped), (10, 4));
        let reverse = proxy.counts()[&Link { from: 2, to: 1 }];
        assert_eq!(reverse.connections_cut, 2, "the open connection and the black hole");
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn delays_keep_the_bytes_in_order() {
        let (proxy, target) = pair(Mode::Bytes { sniff: None }).await;
        proxy.update_all(|_, f| f.delay_ms = (0, 60));
        let mut sender = TcpStream::connect(proxy.addr(1, 2)).await.unwrap();
        let (mut conn, _) = target.accept().await.unwrap();
        let mut sent = Vec::new();
        for i in 0..50u8 {
            sender.write_all(&[i]).await.unwrap();
            sent.push(i);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(sender);
        let mut got = Vec::new();
        timeout(Duration::from_secs(5), conn.read_to_end(&mut got)).await.unwrap().unwrap();
        assert_eq!(got, sent);
        proxy.shutdown().await;
    }

    /// A sender that names itself in its first line, as etcd's `X-PeerURLs` header does.
    fn sniff_first_line(head: &[u8]) -> Option<SocketAddr> {
        let text = std::str::from_utf8(head).ok()?;
        text.lines().next()?.strip_prefix("FROM ")?.trim().parse().ok()
    }

    #[tokio::test]
    async fn a_shared_port_tells_senders_apart_by_what_they_say() {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nodes: Vec<(u64, SocketAddr)> = vec![
            (1, "127.0.0.1:9".parse().unwrap()),
            (2, target.local_addr().unwrap()),
            (3, "127.0.0.1:9".parse().unwrap()),
        ];
        let proxy = Proxy::start_mode(&nodes, 1, Mode::Bytes { sniff: Some(sniff_first_line) })
            .await
            .unwrap();
        let port = proxy.addr(1, 2);
        assert_eq!(port, proxy.addr(3, 2), "every sender reaches node 2 at one address");
        proxy.update_all(|l, f| f.cut = l == Link { from: 1, to: 2 });
        let hello = |from: u64| format!("FROM {}\r\n\r\n", proxy.addr(2, from));

        let mut one = TcpStream::connect(port).await.unwrap();
        one.write_all(hello(1).as_bytes()).await.unwrap();
        let mut three = TcpStream::connect(port).await.unwrap();
        three.write_all(hello(3).as_bytes()).await.unwrap();
        let (mut conn, _) =
            timeout(Duration::from_secs(2), target.accept()).await.unwrap().unwrap();
        assert_eq!(read_some(&mut conn).await, Ok(hello(3).into_bytes()), "3 -> 2 is up");
        assert!(
            timeout(Duration::from_millis(300), target.accept()).await.is_err(),
            "1 -> 2 is cut"
        );

        // A sender that does not say who it is is cut while any link into its target is.
        let mut anonymous = TcpStream::connect(port).await.unwrap();
        anonymous.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(timeout(Duration::from_millis(300), target.accept()).await.is_err());
        proxy.shutdown().await;
    }
}
