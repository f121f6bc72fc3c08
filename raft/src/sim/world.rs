//! The simulated world: virtual time, an event queue, the peers and the network between them.
//!
//! Everything runs in one thread. Events (a peer's tick, a message's arrival) are ordered by
//! `(time, sequence number)`, and every random choice comes from generators derived from the
//! seed, so a run is exactly reproducible from its seed.

use super::invariants::{CommittedEntry, Invariants, LogView, Property, Violation};
use super::network::{Fate, Network};
use super::node::SimNode;
use super::service::ServiceState;
use super::swarm::Swarm;
use super::trace::{DropReason, MsgSummary, Trace, TraceKind};
use crate::core::{Bug, Config, Coverage, Index, Message, NodeId, RawNode, Role, Status, Term};
use crate::storage::CrashFamily;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;

/// How to build a simulated cluster.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How many peers; they get ids `0..nodes`.
    pub nodes: usize,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Virtual milliseconds per tick of the protocol core.
    pub tick_ms: u64,
    /// How many recent events the trace keeps.
    pub trace_len: usize,
    /// The protocol configuration of peer `id` among `peers` (default [`Config::lab`]).
    pub profile: fn(NodeId, Vec<NodeId>) -> Config,
    /// A deliberately broken variant for every peer (only with the cargo feature `bugs`).
    pub bug: Option<Bug>,
    /// A swarm configuration over the profile: its protocol settings, its tick jitter and its
    /// network noise (none: the profile as it is, a steady clock, the labs' network).
    pub swarm: Option<Swarm>,
    /// Every peer's service snapshots its state once it applied this many entries past its
    /// latest snapshot (the labs' `SnapShotInterval`); `None`: never.
    pub snapshot_every: Option<Index>,
}

impl SimConfig {
    /// `nodes` peers with the lab profile, 10 ms ticks and a trace of 100 events.
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            tick_ms: 10,
            trace_len: 100,
            profile: Config::lab,
            bug: None,
            swarm: None,
            snapshot_every: None,
        }
    }
}

/// Counters of what one peer sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Requests (vote, pre-vote, append) sent: what the labs count as RPCs.
    pub requests: u64,
    /// Every message sent, replies included.
    pub messages: u64,
    /// Postcard-encoded bytes of every message sent.
    pub bytes: u64,
}

enum Event {
    Tick { node: usize, incarnation: u32 },
    Deliver { msg: Message, incarnation: u32 },
}

struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: `BinaryHeap` is a max-heap and the earliest event must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// A seed for stream `a`, item `b`, derived from `seed` (splitmix64 finalizer).
pub fn derive_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream ids for [`derive_seed`].
pub(crate) const STREAM_NET: u64 = 1;
pub(crate) const STREAM_SIM: u64 = 2;
pub(crate) const STREAM_NODE: u64 = 3;
pub(crate) const STREAM_TEST: u64 = 4;

/// A whole simulated cluster.
pub struct Sim {
    seed: u64,
    now: u64,
    seq: u64,
    tick_us: u64,
    /// How far a tick may stray from `tick_us`, in microseconds either way.
    tick_jitter_us: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<SimNode>,
    net: Network,
    inv: Invariants,
    trace: Trace,
    stats: Vec<NodeStats>,
    rng: ChaCha8Rng,
    /// Events (ticks, deliveries) run so far, and how many may run before the run fails.
    events: u64,
    max_events: u64,
    /// (peer, read number) -> how many entries were known committed when the read was asked:
    /// the least index a linearizable read may be served at.
    reads_asked: HashMap<(usize, u64), Index>,
    next_read: u64,
    /// The property whose violation stopped the run, for its classification.
    broken: std::cell::Cell<Option<Property>>,
}

impl Sim {
    /// A cluster of fresh peers (empty storage), all connected on a reliable network, each
    /// ticking from a random phase.
    pub fn new(cfg: SimConfig) -> Sim {
        assert!(cfg.nodes > 0, "a cluster needs at least one peer");
        assert!(cfg.tick_ms > 0, "a tick must last some time");
        let peers: Vec<NodeId> = (0..cfg.nodes as NodeId).collect();
        let snapshot_every = cfg.snapshot_every.or(cfg
            .swarm
            .and_then(|s| (s.snapshot_every > 0).then_some(s.snapshot_every as Index)));
        let mut nodes = Vec::with_capacity(cfg.nodes);
        for i in 0..cfg.nodes {
            #[allow(unused_mut)]
            let mut config = (cfg.profile)(i as NodeId, peers.clone());
            if let Some(swarm) = &cfg.swarm {
                swarm.configure(&mut config);
            }
            #[cfg(feature = "bugs")]
            {
                config.bug = cfg.bug;
            }
            #[cfg(not(feature = "bugs"))]
            assert!(
                cfg.bug.is_none(),
                "a bug can only be switched on in a build with the cargo feature `bugs`"
            );
            let seed = derive_seed(cfg.seed, STREAM_NODE, (i as u64) << 32);
            nodes.push(SimNode::new(config, seed, snapshot_every));
        }
        let mut sim = Sim {
            seed: cfg.seed,
            now: 0,
            seq: 0,
            tick_us: cfg.tick_ms * 1000,
            tick_jitter_us: cfg.swarm.map_or(0, |s| cfg.tick_ms * 10 * s.tick_jitter_pct as u64),
            queue: BinaryHeap::new(),
            nodes,
            net: Network::new(
                cfg.nodes,
                ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, STREAM_NET, 0)),
            ),
            inv: Invariants::new(),
            trace: Trace::new(cfg.trace_len),
            stats: vec![NodeStats::default(); cfg.nodes],
            rng: ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, STREAM_SIM, 0)),
            events: 0,
            max_events: u64::MAX,
            reads_asked: HashMap::new(),
            next_read: 0,
            broken: std::cell::Cell::new(None),
        };
        if let Some(s) = cfg.swarm {
            sim.net.set_noise(s.tail_per_mille as u32, s.tail_ms as u64, s.dup_per_mille as u32);
        }
        for i in 0..cfg.nodes {
            sim.schedule_first_tick(i);
        }
        sim
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many peers.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no peers (never: [`Sim::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Virtual time in microseconds since the start.
    pub fn now_us(&self) -> u64 {
        self.now
    }

    /// Virtual time in milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.now / 1000
    }

    /// Runs every event up to and including virtual time `t` (microseconds); the clock then
    /// reads `t`.
    pub fn run_until_us(&mut self, t: u64) {
        while let Some(top) = self.queue.peek() {
            if top.time > t {
                break;
            }
            let Scheduled { time, event, .. } = self.queue.pop().expect("peeked");
            self.now = time;
            self.events += 1;
            if self.events > self.max_events {
                self.fail(&format!(
                    "runaway: {} events (ticks and deliveries) ran, over the budget of {} (a message storm or livelock)",
                    self.events, self.max_events
                ));
            }
            match event {
                Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
                Event::Deliver { msg, incarnation } => self.on_deliver(msg, incarnation),
            }
        }
        self.now = self.now.max(t);
    }

    /// How many events (ticks and message deliveries) have run.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Fails the run (as [`Sim::fail`], with a message starting `runaway:`) as soon as more
    /// than `max` events have run: a bound on the work of runs whose messages multiply. No
    /// bound by default.
    pub fn set_max_events(&mut self, max: u64) {
        self.max_events = max;
    }

    /// Runs the simulation for `ms` virtual milliseconds.
    pub fn run_for_ms(&mut self, ms: u64) {
        self.run_until_us(self.now + ms * 1000);
    }

    /// Offers a command to peer `i`, as the labs' `Start`: `Some((index, term))` when it leads
    /// and appended it, `None` when it is down or not the leader.
    pub fn propose(&mut self, i: usize, data: Vec<u8>) -> Option<(Index, Term)> {
        let raw = self.nodes[i].raw.as_mut()?;
        let result = raw.propose(data);
        if let Ok((index, term)) = result {
            self.trace.record(self.now, TraceKind::Proposed { node: i as NodeId, index, term });
        }
        self.drive(i);
        result.ok()
    }

    /// The property whose violation stopped the run, if one did.
    pub fn broken(&self) -> Option<Property> {
        self.broken.get()
    }

    /// Asks peer `i` for a linearizable read ([`RawNode::read_index`]); whatever read state
    /// it later gives must be at an index no lower than what was committed now. Returns
    /// whether the peer took the request (it runs and knows a leader).
    pub fn read(&mut self, i: usize) -> bool {
        let Some(raw) = self.nodes[i].raw.as_mut() else { return false };
        self.next_read += 1;
        let request = self.next_read;
        if raw.read_index(request).is_err() {
            return false;
        }
        self.reads_asked.insert((i, request), self.inv.committed().len() as Index);
        self.drive(i);
        true
    }

    /// Crashes peer `i`: it stops, messages in flight to it will be lost, and only its durable
    /// image survives. Messages it sent before the crash are already on the wire and may still
    /// arrive. Nothing happens if it is already down.
    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].is_alive() {
            self.nodes[i].crash();
            self.trace.record(self.now, TraceKind::Crash(i as NodeId));
        }
    }

    /// A power failure of peer `i` at its next sync: part of the ready being persisted reaches
    /// its durable image, in one of `family`'s crash states (see
    /// [`DurableImage::write_partially`](super::node::DurableImage::write_partially)), and the peer
    /// stops before sending, applying or advancing anything of that ready. A peer with nothing
    /// to sync within 50 ms crashes then, keeping everything. Nothing happens if it is down.
    pub fn power_fail(&mut self, i: usize, family: CrashFamily) {
        if self.nodes[i].is_alive() {
            let seed = self.rng.gen();
            self.nodes[i].power_failure = Some((family, seed, self.now + 50_000));
        }
    }

    /// Calls off a power failure of peer `i` that has not struck yet.
    pub fn cancel_power_failure(&mut self, i: usize) {
        self.nodes[i].power_failure = None;
    }

    /// Starts a new incarnation of peer `i` from its durable image (crashing the running one
    /// first, if any). Its service restores the durable snapshot, and it re-applies the log after
    /// it as the commit index becomes known.
    pub fn restart(&mut self, i: usize) {
        self.crash(i);
        let seed = derive_seed(
            self.seed,
            STREAM_NODE,
            ((i as u64) << 32) | (self.nodes[i].incarnation as u64 + 1),
        );
        self.nodes[i].restart(seed);
        self.trace.record(self.now, TraceKind::Restart(i as NodeId));
        self.schedule_first_tick(i);
    }

    /// Whether peer `i` is running.
    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].is_alive()
    }

    /// Restores all of peer `i`'s links.
    pub fn connect(&mut self, i: usize) {
        if !self.net.is_connected(i) {
            self.net.set_connected(i, true);
            self.trace.record(self.now, TraceKind::Connect(i as NodeId));
        }
    }

    /// Cuts all of peer `i`'s links; messages to or from it are lost.
    pub fn disconnect(&mut self, i: usize) {
        if self.net.is_connected(i) {
            self.net.set_connected(i, false);
            self.trace.record(self.now, TraceKind::Disconnect(i as NodeId));
        }
    }

    /// Whether peer `i` is connected (it may still be down).
    pub fn is_connected(&self, i: usize) -> bool {
        self.net.is_connected(i)
    }

    /// Cuts (`up` false) or restores the one-way link from `from` to `to`.
    pub fn set_link(&mut self, from: usize, to: usize, up: bool) {
        self.net.set_link(from, to, up);
        self.note(format!("link n{from}->n{to} {}", if up { "restored" } else { "cut" }));
    }

    /// The network, to change its modes.
    pub fn network(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Switches between the reliable and unreliable network.
    pub fn set_reliable(&mut self, reliable: bool) {
        if self.net.reliable() != reliable {
            self.net.set_reliable(reliable);
            self.note(format!("network {}", if reliable { "reliable" } else { "unreliable" }));
        }
    }

    /// Switches long reordering of replies on or off.
    pub fn set_long_reordering(&mut self, on: bool) {
        if self.net.long_reordering() != on {
            self.net.set_long_reordering(on);
            self.note(format!("long reordering {}", if on { "on" } else { "off" }));
        }
    }

    /// Adds a note to the trace.
    pub fn note(&mut self, text: String) {
        self.trace.record(self.now, TraceKind::Note(text));
    }

    /// Peer `i`'s protocol status, if it is running.
    pub fn status(&self, i: usize) -> Option<Status> {
        self.nodes[i].raw.as_ref().map(RawNode::status)
    }

    /// Peer `i`.
    pub fn node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    /// The protocol decisions every peer took, over all their incarnations.
    pub fn coverage(&self) -> Coverage {
        let mut all = Coverage::default();
        for n in &self.nodes {
            all.merge(&n.coverage());
        }
        all
    }

    /// The entries known committed (applied by some peer), from index 1.
    pub fn committed(&self) -> &[CommittedEntry] {
        self.inv.committed()
    }

    /// What peer `i` sent.
    pub fn stats(&self, i: usize) -> NodeStats {
        self.stats[i]
    }

    /// What all peers sent.
    pub fn total_stats(&self) -> NodeStats {
        self.stats.iter().fold(NodeStats::default(), |a, s| NodeStats {
            requests: a.requests + s.requests,
            messages: a.messages + s.messages,
            bytes: a.bytes + s.bytes,
        })
    }

    /// The recent events.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// A table of every peer's state, for failure reports.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let link = if self.net.is_connected(i) { "connected" } else { "disconnected" };
            let img = &n.image;
            match n.raw.as_ref().map(RawNode::status) {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "  n{i}: {:?} term {} vote {:?} leader {:?} last {}/t{} commit {} applied {} snapshot {} durable {} ({link})",
                        s.role, s.term, s.vote, s.leader, s.last_index, s.last_term, s.commit_index,
                        s.applied_index, s.snapshot_index, img.last_index()
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  n{i}: DOWN durable term {} vote {:?} snapshot {} log {} ({link})",
                        img.hard_state.term,
                        img.hard_state.vote,
                        img.snapshot.index,
                        img.last_index()
                    );
                }
            }
        }
        out
    }

    /// Fails the run: panics with `what`, the seed, every peer's state and the recent events.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\nseed {seed} (replay with RAFT_SEED={seed}), at {}.{:03} ms of virtual time\npeers:\n{}last events:\n{}",
            self.now / 1000,
            self.now % 1000,
            self.describe(),
            self.trace,
            seed = self.seed,
        )
    }

    fn violation(&self, v: Violation) -> ! {
        self.broken.set(Some(v.property));
        self.fail(&format!("safety violation: {}: {}", v.property.name(), v.what))
    }

    fn push(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled { time, seq: self.seq, event });
    }

    fn schedule_first_tick(&mut self, i: usize) {
        let phase = self.rng.gen_range(1..=self.tick_us);
        let incarnation = self.nodes[i].incarnation;
        self.push(self.now + phase, Event::Tick { node: i, incarnation });
    }

    fn on_tick(&mut self, i: usize, incarnation: u32) {
        let node = &mut self.nodes[i];
        if node.incarnation != incarnation {
            return;
        }
        let Some(raw) = node.raw.as_mut() else { return };
        if node.power_failure.is_some_and(|(_, _, deadline)| self.now >= deadline) {
            self.crash(i);
            return;
        }
        raw.tick();
        self.drive(i);
        let tick = match self.tick_jitter_us {
            0 => self.tick_us,
            j => self.rng.gen_range(self.tick_us - j..=self.tick_us + j),
        };
        self.push(self.now + tick, Event::Tick { node: i, incarnation });
    }

    fn on_deliver(&mut self, msg: Message, incarnation: u32) {
        let to = msg.to as usize;
        let from = msg.from as usize;
        if !self.nodes[to].is_alive() || self.nodes[to].incarnation != incarnation {
            self.trace.record(
                self.now,
                TraceKind::Dropped(MsgSummary::of(&msg), DropReason::DestinationCrashed),
            );
            return;
        }
        if !self.net.link_up(from, to) {
            self.trace.record(
                self.now,
                TraceKind::Dropped(MsgSummary::of(&msg), DropReason::CutAtDelivery),
            );
            return;
        }
        self.trace.record(self.now, TraceKind::Delivered(MsgSummary::of(&msg)));
        let term_before = self.nodes[to].last_term;
        let (msg_term, body) = (msg.term, Invariants::adoption_kind(&msg.body));
        self.nodes[to].raw.as_mut().expect("alive").step(msg);
        self.drive(to);
        if !self.nodes[to].is_alive() {
            // A power failure struck while it persisted what the message made it do.
            return;
        }
        if let Some(kind) = body {
            let term_after = self.nodes[to].last_term;
            if let Err(e) =
                Invariants::on_delivered(to as NodeId, kind, msg_term, term_before, term_after)
            {
                self.violation(e);
            }
        }
    }

    /// Handles every ready of peer `i` as the driver contract says (persist, send, apply,
    /// advance), then checks what changed.
    fn drive(&mut self, i: usize) {
        loop {
            let mut ready = {
                let raw = self.nodes[i].raw.as_mut().expect("driving a running peer");
                if !raw.has_ready() {
                    break;
                }
                raw.ready()
            };
            // 1. Persist.
            let node = &mut self.nodes[i];
            if let Err(e) =
                self.inv.on_persist(i as NodeId, &node.image.hard_state, node.image.view(), &ready)
            {
                self.violation(e);
            }
            // The catalogue's ack-before-sync and vote-before-sync: some answers go before the
            // write.
            let early_bug = self.nodes[i]
                .config
                .bug_of_kind(|bug| matches!(bug, Bug::AckBeforeSync | Bug::VoteBeforeSync));
            let early = |msg: &Message| early_bug.is_some_and(|bug| bug.sends_before_sync(msg));
            for msg in ready.messages.iter().filter(|m| early(m)) {
                self.send(i, msg);
            }
            let node = &mut self.nodes[i];
            if let Some((family, seed, _)) = node.power_failure {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                if let Some(kept) = node.image.write_partially(&ready, family, &mut rng) {
                    self.trace.record(
                        self.now,
                        TraceKind::PowerFailure { node: i as NodeId, family, kept },
                    );
                    self.crash(i);
                    return;
                }
            }
            node.image.write(&ready);
            if let Some(first) = ready.entries.first() {
                let to = first.index + ready.entries.len() as Index - 1;
                self.trace.record(
                    self.now,
                    TraceKind::Persisted { node: i as NodeId, from: first.index, to },
                );
            }
            // 2. Send.
            let messages = std::mem::take(&mut ready.messages);
            for msg in messages.iter().filter(|m| !early(m)) {
                self.send(i, msg);
            }
            ready.messages = messages;
            // 3. Apply: the leader's snapshot first, when it brought one.
            if let Some(snapshot) = ready.snapshot.as_ref().filter(|_| ready.restore_snapshot) {
                let node = &mut self.nodes[i];
                if let Err(e) = self.inv.on_restore(i as NodeId, node.service.index, snapshot) {
                    self.violation(e);
                }
                node.service = ServiceState::decode(&snapshot.data).unwrap_or_default();
                node.next_apply = snapshot.index + 1;
                node.applied_ever = node.applied_ever.max(snapshot.index);
                let (index, term) = (snapshot.index, snapshot.term);
                self.trace.record(
                    self.now,
                    TraceKind::SnapshotRestored { node: i as NodeId, index, term },
                );
            }
            if let (Some(first), Some(last)) =
                (ready.committed_entries.first(), ready.committed_entries.last())
            {
                let (from, to) = (first.index, last.index);
                for e in &ready.committed_entries {
                    let node = &mut self.nodes[i];
                    if let Err(err) = self.inv.on_apply(i as NodeId, node.next_apply, e) {
                        self.violation(err);
                    }
                    node.next_apply += 1;
                    node.applied_ever = node.applied_ever.max(e.index);
                    node.service.apply(e);
                }
                self.trace.record(self.now, TraceKind::Applied { node: i as NodeId, from, to });
            }
            // Reads: none may miss an entry committed before it was asked.
            for read in &ready.read_states {
                // A read state seen before: a duplicated forward or answer (the service
                // serves a read once).
                let Some(known) = self.reads_asked.remove(&(i, read.request)) else { continue };
                if read.index < known {
                    self.violation(Violation::new(
                        Property::ReadSafety,
                        format!(
                            "n{i} let read {} go at index {}, but index {known} was committed \
                             before it was asked (a stale leader served it)",
                            read.request, read.index
                        ),
                    ));
                }
            }
            // 4. Advance, and 5. read back the evicted entries the leader asked for.
            let node = &mut self.nodes[i];
            let read = ready.read_entries.clone();
            node.raw.as_mut().expect("running").advance(ready);
            if let Some(range) = read {
                let entries = node.image.read(range);
                node.raw.as_mut().expect("running").entries_read(entries);
            }
            // The service snapshots when it is due; the next ready persists the snapshot.
            if node.snapshot_due() {
                let index = node.service.index;
                let raw = node.raw.as_mut().expect("running");
                raw.snapshot(index, node.service.encode()).unwrap_or_else(|e| {
                    panic!("n{i}'s service applied up to {index} but cannot snapshot there: {e}")
                });
                self.trace.record(self.now, TraceKind::SnapshotTaken { node: i as NodeId, index });
            }
        }
        self.after_step(i);
    }

    fn after_step(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let raw = node.raw.as_ref().expect("running");
        let s = raw.status();
        if s.role == node.last_role && s.term == node.last_term {
            return;
        }
        node.last_role = s.role;
        node.last_term = s.term;
        self.trace
            .record(self.now, TraceKind::Role { node: i as NodeId, role: s.role, term: s.term });
        if s.role == Role::Leader {
            // Evicted entries count as a snapshot would: only their terms are at hand.
            let log = LogView {
                snapshot_index: s.held_from - 1,
                snapshot_term: raw.term(s.held_from - 1).expect("the entry before those held"),
                entries: raw.entries(),
            };
            if let Err(e) = self.inv.on_leader(i as NodeId, s.term, log) {
                self.violation(e);
            }
        }
    }

    fn send(&mut self, from: usize, msg: &Message) {
        let node = &self.nodes[from];
        if let Err(e) =
            self.inv.on_send(from as NodeId, &node.image.hard_state, node.image.view(), msg)
        {
            self.violation(e);
        }
        let to = msg.to as usize;
        if to >= self.nodes.len() || msg.from as usize != from {
            self.violation(Violation::new(
                Property::Misaddressed,
                format!("n{from} sent a message from n{} to unknown peer n{}", msg.from, msg.to),
            ));
        }
        let is_request = msg.body.is_request();
        let size =
            postcard::experimental::serialized_size(msg).expect("messages always encode") as u64;
        let stats = &mut self.stats[from];
        stats.messages += 1;
        stats.bytes += size;
        if is_request {
            stats.requests += 1;
        }
        let summary = MsgSummary::of(msg);
        if !self.nodes[to].is_alive() {
            self.trace.record(self.now, TraceKind::Dropped(summary, DropReason::DestinationDown));
            return;
        }
        if !self.net.link_up(from, to) {
            self.trace.record(self.now, TraceKind::Dropped(summary, DropReason::CutAtSend));
            return;
        }
        let incarnation = self.nodes[to].incarnation;
        match self.net.fate(is_request) {
            Fate::Drop => {
                self.trace.record(self.now, TraceKind::Dropped(summary, DropReason::Lost))
            }
            Fate::Deliver(d) => {
                self.trace.record(
                    self.now,
                    TraceKind::Sent { msg: summary, delay_us: d, duplicate_delay_us: None },
                );
                self.push(self.now + d, Event::Deliver { msg: msg.clone(), incarnation });
            }
            Fate::Duplicate(d1, d2) => {
                self.trace.record(
                    self.now,
                    TraceKind::Sent { msg: summary, delay_us: d1, duplicate_delay_us: Some(d2) },
                );
                self.push(self.now + d1, Event::Deliver { msg: msg.clone(), incarnation });
                self.push(self.now + d2, Event::Deliver { msg: msg.clone(), incarnation });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_failure_strikes_at_the_next_sync_and_loses_its_writes() {
        for seed in 0..10 {
            let mut sim = Sim::new(SimConfig::new(3, seed));
            sim.run_for_ms(2_000);
            let leader = (0..3)
                .find(|&i| sim.status(i).is_some_and(|s| s.role == Role::Leader))
                .expect("a leader within 2 s");
            let before = sim.node(leader).image().clone();
            sim.power_fail(leader, CrashFamily::LoseUnsynced);
            assert!(sim.is_alive(leader), "it strikes at a sync, not at once");
            let (index, _) = sim.propose(leader, vec![7]).expect("the leader accepts");
            assert!(!sim.is_alive(leader), "the proposal's sync met the power failure");
            assert_eq!(sim.node(leader).image(), &before, "nothing of the ready was kept");
            assert!(sim.node(leader).image().last_index() < index);
            sim.restart(leader);
            sim.run_for_ms(2_000);
            assert!((0..3).all(|i| sim.status(i).is_some()), "everyone runs again");
        }
    }
}
