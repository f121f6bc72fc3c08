//! The `Cluster` test fixture: the seed labs' tester (`checkOneLeader`, `one`, `wait`, `crash`,
//! ...) over the simulator, in virtual time.
//!
//! Operations that wait (`sleep`, `check_one_leader`, `one`, `wait`) are `async`: they advance
//! virtual time instead of blocking. A scenario runs as a future under [`Cluster::block_on`], and
//! the labs' concurrent tester threads become tasks made with [`Cluster::spawn`], all in one
//! thread and deterministic.
//!
//! Peers are numbered `0..n` (their ids in the protocol are the same numbers). A peer is *up*
//! when it runs and is connected; the labs' "connected peers" are the peers that are up.

use super::executor::{Executor, JoinHandle};
use super::invariants::describe;
use super::world::{derive_seed, Sim, SimConfig, STREAM_TEST};
use crate::core::{EntryKind, Index, Role, Term};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::{Ref, RefCell, RefMut};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A command as the applier saw it.
pub type Cmd = Arc<[u8]>;

/// The labs' election timeout constant, in milliseconds.
pub const ELECTION_TIMEOUT_MS: u64 = 1_000;

/// A command made of one integer (8 bytes, little endian), as the labs' integer commands.
pub fn num(x: u64) -> Vec<u8> {
    x.to_le_bytes().to_vec()
}

/// A simulated cluster with the labs' tester operations. Cloning gives another handle to the same
/// cluster (for tasks).
#[derive(Clone)]
pub struct Cluster {
    inner: Rc<Inner>,
}

struct Inner {
    sim: RefCell<Sim>,
    exec: Executor,
    rng: RefCell<ChaCha8Rng>,
    n: usize,
}

/// The future of [`Cluster::sleep`].
pub struct Sleep<'a> {
    cluster: &'a Cluster,
    deadline_us: u64,
}

impl Future for Sleep<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.cluster.inner.sim.borrow().now_us() >= self.deadline_us {
            Poll::Ready(())
        } else {
            self.cluster.inner.exec.wake_at(self.deadline_us);
            Poll::Pending
        }
    }
}

impl Cluster {
    /// `n` fresh peers with the lab profile on a reliable network, everything derived from
    /// `seed`.
    pub fn new(n: usize, seed: u64) -> Cluster {
        Cluster::with_config(SimConfig::new(n, seed))
    }

    /// A cluster built from `cfg`.
    pub fn with_config(cfg: SimConfig) -> Cluster {
        let rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, STREAM_TEST, 0));
        let n = cfg.nodes;
        Cluster {
            inner: Rc::new(Inner {
                sim: RefCell::new(Sim::new(cfg)),
                exec: Executor::default(),
                rng: RefCell::new(rng),
                n,
            }),
        }
    }

    /// How many peers.
    pub fn n(&self) -> usize {
        self.inner.n
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.view().seed()
    }

    /// The simulator itself, for what the fixture does not offer. Do not hold it across an
    /// `await`.
    pub fn sim(&self) -> RefMut<'_, Sim> {
        self.inner.sim.borrow_mut()
    }

    fn view(&self) -> Ref<'_, Sim> {
        self.inner.sim.borrow()
    }

    /// Virtual milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.view().now_ms()
    }

    // ---- running --------------------------------------------------------------------------

    /// Runs `fut` (the scenario) and every spawned task until `fut` completes, advancing virtual
    /// time whenever all of them wait. Tasks still running at the end are dropped.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.inner.exec.block_on(fut, |t| self.inner.sim.borrow_mut().run_until_us(t))
    }

    /// Starts a concurrent task (the labs' `go func() { ... }()`); await the handle for its
    /// result.
    pub fn spawn<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> JoinHandle<T> {
        self.inner.exec.spawn(fut)
    }

    /// Lets `ms` virtual milliseconds pass.
    pub fn sleep(&self, ms: u64) -> Sleep<'_> {
        let deadline_us = self.view().now_us() + ms * 1000;
        Sleep { cluster: self, deadline_us }
    }

    // ---- randomness for scenarios ---------------------------------------------------------

    /// A random number below `bound`, from the scenario's own stream.
    pub fn rand_below(&self, bound: u64) -> u64 {
        self.inner.rng.borrow_mut().gen_range(0..bound)
    }

    /// A random `u64` from the scenario's own stream.
    pub fn rand_u64(&self) -> u64 {
        self.inner.rng.borrow_mut().gen()
    }

    /// `len` random printable bytes (the labs' `randstring`).
    pub fn rand_bytes(&self, len: usize) -> Vec<u8> {
        let mut rng = self.inner.rng.borrow_mut();
        (0..len).map(|_| rng.gen_range(b'a'..=b'z')).collect()
    }

    // ---- faults ---------------------------------------------------------------------------

    /// Cuts all of peer `i`'s links.
    pub fn disconnect(&self, i: usize) {
        self.sim().disconnect(i);
    }

    /// Restores all of peer `i`'s links.
    pub fn connect(&self, i: usize) {
        self.sim().connect(i);
    }

    /// Crashes peer `i` (the labs' `crash1`): it stops, is disconnected, and keeps only what
    /// its storage made durable.
    pub fn crash(&self, i: usize) {
        let mut sim = self.sim();
        sim.disconnect(i);
        sim.crash(i);
    }

    /// Starts a new peer `i` from its storage and connects it (the labs' `start1` then
    /// `connect`). A running peer is crashed first. The new peer restores its durable snapshot
    /// and re-applies the log after it.
    pub fn restart(&self, i: usize) {
        let mut sim = self.sim();
        sim.restart(i);
        sim.connect(i);
    }

    /// Switches between the reliable and the unreliable network.
    pub fn set_reliable(&self, reliable: bool) {
        self.sim().set_reliable(reliable);
    }

    /// Switches long reordering of replies on or off.
    pub fn set_long_reordering(&self, on: bool) {
        self.sim().set_long_reordering(on);
    }

    // ---- observing ------------------------------------------------------------------------

    /// Whether peer `i` runs.
    pub fn is_alive(&self, i: usize) -> bool {
        self.view().is_alive(i)
    }

    /// Whether peer `i` is connected (it may be down).
    pub fn is_connected(&self, i: usize) -> bool {
        self.view().is_connected(i)
    }

    /// Whether peer `i` runs and is connected.
    pub fn is_up(&self, i: usize) -> bool {
        let sim = self.view();
        sim.is_alive(i) && sim.is_connected(i)
    }

    /// Peer `i`'s `(term, is_leader)` (the labs' `GetState`), if it runs.
    pub fn state(&self, i: usize) -> Option<(Term, bool)> {
        self.view().status(i).map(|s| (s.term, s.role == Role::Leader))
    }

    /// Offers `cmd` to peer `i` (the labs' `Start`), connected or not: `Some((index, term))` if
    /// it leads and appended it, `None` if it is down or not the leader.
    pub fn start(&self, i: usize, cmd: impl Into<Vec<u8>>) -> Option<(Index, Term)> {
        self.sim().propose(i, cmd.into())
    }

    /// The largest durable Raft state of any peer, in bytes, without the snapshots' data (the
    /// labs' `LogSize`, which a service that snapshots keeps bounded).
    pub fn log_size(&self) -> usize {
        let sim = self.view();
        (0..self.n()).map(|i| sim.node(i).image().raft_state_bytes()).max().unwrap_or(0)
    }

    /// The index of peer `i`'s durable snapshot (0: none).
    pub fn snapshot_index(&self, i: usize) -> Index {
        self.view().node(i).image().snapshot.index
    }

    /// Requests sent so far by all peers (the labs' RPC count).
    pub fn rpc_total(&self) -> u64 {
        self.view().total_stats().requests
    }

    /// Requests sent so far by peer `i`.
    pub fn rpc_count(&self, i: usize) -> u64 {
        self.view().stats(i).requests
    }

    /// Bytes sent so far by all peers, requests and replies.
    pub fn bytes_total(&self) -> u64 {
        self.view().total_stats().bytes
    }

    /// How many peers applied `index`, and the command applied there (empty for a no-op).
    /// Different commands at one index fail the run as soon as the second is applied.
    pub fn n_committed(&self, index: Index) -> (usize, Option<Cmd>) {
        if index == 0 {
            return (0, None);
        }
        let sim = self.view();
        let count = (0..self.n()).filter(|&i| sim.node(i).applied_ever() >= index).count();
        let cmd = sim.committed().get((index - 1) as usize).map(|c| c.data.clone());
        (count, cmd)
    }

    /// The committed entries' commands from index 1 (empty for no-ops).
    pub fn committed_log(&self) -> Vec<(Index, Option<Cmd>)> {
        let sim = self.view();
        sim.committed()
            .iter()
            .enumerate()
            .map(|(k, c)| ((k + 1) as Index, (c.kind == EntryKind::Normal).then(|| c.data.clone())))
            .collect()
    }

    /// Fails the scenario with `msg`, the seed, every peer's state and the recent events.
    pub fn fail(&self, msg: &str) -> ! {
        let sim = self.inner.sim.borrow();
        sim.fail(msg)
    }

    // ---- the tester's checks --------------------------------------------------------------

    /// Up to 10 rounds, each after 450-550 ms: collects the up peers that think they lead, by
    /// term; fails if a term has two; returns the leader of the newest term once there is one.
    pub async fn check_one_leader(&self) -> usize {
        for _ in 0..10 {
            let ms = 450 + self.rand_below(100);
            self.sleep(ms).await;
            let mut best: Option<(Term, usize)> = None;
            let mut leaders: Vec<(Term, usize)> = Vec::new();
            for i in 0..self.n() {
                if !self.is_up(i) {
                    continue;
                }
                if let Some((term, true)) = self.state(i) {
                    if let Some(&(_, other)) = leaders.iter().find(|(t, _)| *t == term) {
                        self.fail(&format!("term {term} has two leaders: n{other} and n{i}"));
                    }
                    leaders.push((term, i));
                    if best.is_none_or(|(t, _)| term > t) {
                        best = Some((term, i));
                    }
                }
            }
            if let Some((_, leader)) = best {
                return leader;
            }
        }
        self.fail("expected one leader, got none")
    }

    /// The term all up peers agree on; fails "servers disagree on term" otherwise.
    pub fn check_terms(&self) -> Term {
        let mut term = None;
        for i in 0..self.n() {
            if !self.is_up(i) {
                continue;
            }
            let (t, _) = self.state(i).expect("up peers run");
            match term {
                None => term = Some(t),
                Some(t0) if t0 != t => {
                    self.fail(&format!("servers disagree on term ({t0} and {t} at n{i})"))
                }
                Some(_) => {}
            }
        }
        term.unwrap_or_else(|| self.fail("check_terms: no peer is up"))
    }

    /// Fails if any up peer thinks it leads.
    pub fn check_no_leader(&self) {
        for i in 0..self.n() {
            if self.is_up(i) && self.state(i).is_some_and(|(_, l)| l) {
                self.fail(&format!(
                    "expected no leader among connected servers, but n{i} claims to be leader"
                ));
            }
        }
    }

    /// The labs' `one`: for up to 10 s, offers `cmd` to each up peer in turn; when one accepts,
    /// waits up to 2 s for `expected` peers to apply it at that index. With `retry` false, an
    /// attempt that does not succeed fails the run. Returns the index.
    pub async fn one(&self, cmd: impl Into<Vec<u8>>, expected: usize, retry: bool) -> Index {
        let cmd: Vec<u8> = cmd.into();
        let t0 = self.now_ms();
        let mut starts = 0;
        while self.now_ms() - t0 < 10_000 {
            let mut index = None;
            for _ in 0..self.n() {
                starts = (starts + 1) % self.n();
                if self.is_up(starts) {
                    if let Some((i, _)) = self.start(starts, cmd.clone()) {
                        index = Some(i);
                        break;
                    }
                }
            }
            if let Some(index) = index {
                let t1 = self.now_ms();
                while self.now_ms() - t1 < 2_000 {
                    let (nd, got) = self.n_committed(index);
                    if nd > 0 && nd >= expected && got.as_deref() == Some(&cmd[..]) {
                        return index;
                    }
                    self.sleep(20).await;
                }
                if !retry {
                    self.fail(&format!(
                        "one({}) failed to reach agreement (accepted at index {index})",
                        describe(EntryKind::Normal, &cmd)
                    ));
                }
            } else {
                self.sleep(50).await;
            }
        }
        self.fail(&format!(
            "one({}) failed to reach agreement in 10 s",
            describe(EntryKind::Normal, &cmd)
        ))
    }

    /// The labs' `wait`: polls (10 ms doubling to 1 s, 30 rounds) until `n` peers applied
    /// `index`, and returns the command there. Returns `None` early when `start_term` is given and
    /// some running peer's term has passed it. Fails if fewer than `n` applied it in the end.
    pub async fn wait(&self, index: Index, n: usize, start_term: Option<Term>) -> Option<Cmd> {
        let mut to = 10;
        for _ in 0..30 {
            let (nd, _) = self.n_committed(index);
            if nd >= n {
                break;
            }
            self.sleep(to).await;
            if to < 1_000 {
                to *= 2;
            }
            if let Some(start) = start_term {
                if (0..self.n()).any(|i| self.state(i).is_some_and(|(t, _)| t > start)) {
                    return None;
                }
            }
        }
        let (nd, cmd) = self.n_committed(index);
        if nd < n {
            self.fail(&format!("only {nd} decided for index {index}; wanted {n}"));
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short run on a lossy, duplicating network with a crash: what it did, in numbers.
    fn run(seed: u64) -> (u64, Vec<(Index, Option<Cmd>)>, crate::sim::NodeStats, u64) {
        let c = Cluster::new(5, seed);
        c.sim().network().set_duplicate_per_mille(100);
        c.block_on(async {
            c.set_reliable(false);
            for k in 0..20 {
                c.one(num(k), 3, true).await;
            }
            let leader = c.check_one_leader().await;
            c.crash(leader);
            for k in 20..30 {
                c.one(num(k), 3, true).await;
            }
            c.restart(leader);
            c.set_reliable(true);
            c.one(num(99), 5, true).await;
        });
        let log = c.committed_log();
        let sim = c.sim();
        (sim.now_us(), log, sim.total_stats(), sim.trace().total())
    }

    #[test]
    fn a_seed_replays_exactly() {
        let a = run(5);
        assert_eq!(a, run(5));
        assert_eq!(a.1.len(), 31);
        assert_ne!(a, run(6), "another seed should give another run");
    }

    #[test]
    fn tasks_interleave_in_virtual_time() {
        let c = Cluster::new(3, 1);
        let log = Rc::new(RefCell::new(Vec::new()));
        c.block_on(async {
            let handles: Vec<_> = [30u64, 10, 20]
                .into_iter()
                .map(|ms| {
                    let (c2, log) = (c.clone(), log.clone());
                    c.spawn(async move {
                        c2.sleep(ms).await;
                        log.borrow_mut().push((ms, c2.now_ms()));
                        ms
                    })
                })
                .collect();
            let mut results = Vec::new();
            for h in handles {
                results.push(h.await);
            }
            assert_eq!(results, vec![30, 10, 20]);
        });
        assert_eq!(*log.borrow(), vec![(10, 10), (20, 20), (30, 30)]);
    }

    #[test]
    fn a_failing_check_names_the_seed() {
        let err = std::panic::catch_unwind(|| {
            let c = Cluster::new(3, 77);
            c.block_on(async {
                for i in 0..3 {
                    c.disconnect(i);
                }
                c.check_one_leader().await;
            });
        })
        .unwrap_err();
        let msg = crate::sim::seeds::panic_message(err.as_ref());
        assert!(msg.starts_with("expected one leader, got none"), "{msg}");
        assert!(msg.contains("RAFT_SEED=77"), "{msg}");
    }

    #[test]
    fn counts_requests_and_their_encoded_bytes() {
        let c = Cluster::new(3, 3);
        c.block_on(async {
            c.one(num(1), 3, false).await;
        });
        let sim = c.sim();
        let total = sim.total_stats();
        assert!(total.requests >= 4, "an election and an append need requests: {total:?}");
        assert!(total.messages > total.requests && total.bytes > total.messages);
        // Bytes are exactly the postcard encodings.
        let m = crate::Message {
            from: 0,
            to: 1,
            term: 3,
            body: crate::MessageBody::Heartbeat { commit: 1, round: 1 },
        };
        assert_eq!(
            postcard::experimental::serialized_size(&m).unwrap(),
            postcard::to_allocvec(&m).unwrap().len()
        );
    }
}
