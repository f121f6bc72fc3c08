//! Randomized torture in virtual time: a random cluster, a random fault schedule and concurrent
//! proposals, with the safety invariants checked after every step and the seed labs' tester
//! checks at the end.
//!
//! A run is a pure function of its seed, the bug switched on (if any) and its [`Schedule`]: the
//! seed fixes the cluster's own randomness (network fates, election timeouts, tick phases), and
//! the schedule is an explicit list of timed [`Step`]s. [`Schedule::generate`] derives a schedule
//! from the seed; [`shrink`](mod@super::shrink) reduces a failing one. A schedule prints readably
//! ([`Schedule::describe`]), encodes compactly on one line ([`Schedule::to_compact`],
//! [`Schedule::parse_compact`]) and serializes with serde.
//!
//! A run ([`run`]) has two phases:
//! 1. faults: the steps, in time order, until [`Schedule::end_ms`]. Every accepted proposal is
//!    watched by a client that looks, 10 ms to 1 s after it was accepted, whether its command
//!    was committed at its index: those are the commands the client *saw committed*.
//! 2. final: everything is healed (crashed peers restart, every peer is connected, every cut link
//!    restored, the network reliable without reordering or duplicates); then there must be one
//!    leader (`check_one_leader`), all peers must agree on a final command (`one(cmd, n)`),
//!    every command a client saw committed must be at its index in every peer's log, and every
//!    peer's log must agree with the committed entries up to the final command.
//!
//! Any check that fails, during the run or at its end, is a [`Failure`]; its
//! [`kind`](Failure::kind) names the broken property, so that a shrunk schedule can be required
//! to fail the same way.

use super::cluster::{num, Cluster};
use super::invariants::describe;
use super::swarm::Swarm;
use super::world::{derive_seed, SimConfig};
use crate::core::{Bug, Coverage, EntryKind, Index, Role};
use crate::storage::CrashFamily;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// The stream of [`derive_seed`] that schedules are drawn from (the simulator's own streams
/// are below it).
const STREAM_SCHEDULE: u64 = 16;

/// When a client looks whether a proposal it saw accepted was committed, in milliseconds after
/// the acceptance.
const WATCH_OFFSETS_MS: [u64; 7] = [10, 20, 50, 100, 200, 500, 1_000];

/// Which peer a step acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// Peer `i`.
    Node(u8),
    /// The peer that leads when the step runs (of the newest term, if several think they lead);
    /// the step does nothing when none does.
    Leader,
    /// Every peer (what that means depends on the action).
    All,
}

impl Target {
    fn compact(self) -> String {
        match self {
            Target::Node(i) => i.to_string(),
            Target::Leader => "L".to_string(),
            Target::All => "*".to_string(),
        }
    }

    fn parse(s: &str, nodes: usize) -> Result<Target, String> {
        match s {
            "L" => Ok(Target::Leader),
            "*" => Ok(Target::All),
            _ => match s.parse::<u8>() {
                Ok(i) if (i as usize) < nodes => Ok(Target::Node(i)),
                Ok(i) => Err(format!("peer {i} does not exist in a cluster of {nodes}")),
                Err(_) => Err(format!("{s:?} is not a peer (a number, L or *)")),
            },
        }
    }

    fn describe(self, all: &str) -> String {
        match self {
            Target::Node(i) => format!("n{i}"),
            Target::Leader => "the leader".to_string(),
            Target::All => all.to_string(),
        }
    }
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Crashes a peer (`All`: every peer); it keeps only its durable state.
    Crash(Target),
    /// A power failure of a peer (`All`: every peer) at its next sync: part of the writes in
    /// progress reach its durable state, in one of the family's crash states.
    PowerFail(Target, CrashFamily),
    /// Starts a peer again from its durable state, crashing it first if it runs (a reboot);
    /// `All` restarts every crashed peer and leaves running ones alone.
    Restart(Target),
    /// Disconnects a peer (`All`: every peer) from the network.
    Isolate(Target),
    /// Reconnects a peer (`All`: every peer).
    Connect(Target),
    /// Cuts every link, both ways, between these peers and the others.
    Partition(Vec<Target>),
    /// Cuts the link one way, from the first peer to the second.
    Cut(Target, Target),
    /// Restores every cut link and reconnects every peer.
    Heal,
    /// Switches the unreliable network (10% loss, 0-27 ms delays) on or off.
    Unreliable(bool),
    /// Switches long reordering (2/3 of replies delayed 200-2200 ms) on or off.
    LongReordering(bool),
    /// Switches slow replies (every reply delayed 30-400 ms more) on or off.
    SlowReplies(bool),
    /// Duplicates this many messages per thousand (0: none).
    Duplicate(u16),
    /// Offers this many fresh commands to every running peer, as clients that look for the
    /// leader do: whoever leads (and thinks it leads) accepts them.
    Propose(u8),
}

impl Action {
    fn compact(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        match self {
            Action::Crash(t) => format!("crash:{}", t.compact()),
            Action::PowerFail(t, family) => format!("power:{}:{family}", t.compact()),
            Action::Restart(t) => format!("restart:{}", t.compact()),
            Action::Isolate(t) => format!("isolate:{}", t.compact()),
            Action::Connect(t) => format!("connect:{}", t.compact()),
            Action::Partition(side) => {
                let s: String = side.iter().map(|t| t.compact()).collect();
                format!("partition:{s}")
            }
            Action::Cut(a, b) => format!("cut:{}>{}", a.compact(), b.compact()),
            Action::Heal => "heal".to_string(),
            Action::Unreliable(b) => format!("unreliable:{}", on(*b)),
            Action::LongReordering(b) => format!("reorder:{}", on(*b)),
            Action::SlowReplies(b) => format!("slow:{}", on(*b)),
            Action::Duplicate(p) => format!("dup:{p}"),
            Action::Propose(k) => format!("propose:{k}"),
        }
    }

    fn parse(s: &str, nodes: usize) -> Result<Action, String> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        let target = || Target::parse(arg, nodes);
        let switch = || match arg {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(format!("{s:?}: expected on or off")),
        };
        let action = match name {
            "crash" => Action::Crash(target()?),
            "power" => {
                let (who, family) =
                    arg.split_once(':').ok_or_else(|| format!("{s:?}: expected power:T:FAMILY"))?;
                let family = family.parse::<CrashFamily>().map_err(|e| format!("{s:?}: {e}"))?;
                Action::PowerFail(Target::parse(who, nodes)?, family)
            }
            "restart" => Action::Restart(target()?),
            "isolate" => Action::Isolate(target()?),
            "connect" => Action::Connect(target()?),
            "partition" => {
                let mut side = Vec::new();
                for c in arg.chars() {
                    let t = Target::parse(&c.to_string(), nodes)?;
                    if t == Target::All {
                        return Err(format!("{s:?}: a partition's side names peers or L"));
                    }
                    side.push(t);
                }
                if side.is_empty() {
                    return Err(format!("{s:?}: a partition needs a side"));
                }
                Action::Partition(side)
            }
            "cut" => {
                let (a, b) =
                    arg.split_once('>').ok_or_else(|| format!("{s:?}: expected cut:A>B"))?;
                let (a, b) = (Target::parse(a, nodes)?, Target::parse(b, nodes)?);
                if a == Target::All || b == Target::All {
                    return Err(format!("{s:?}: a cut links two peers"));
                }
                Action::Cut(a, b)
            }
            "heal" if arg.is_empty() => Action::Heal,
            "unreliable" => Action::Unreliable(switch()?),
            "reorder" => Action::LongReordering(switch()?),
            "slow" => Action::SlowReplies(switch()?),
            "dup" => match arg.parse::<u16>() {
                Ok(p) if p <= 1000 => Action::Duplicate(p),
                _ => return Err(format!("{s:?}: expected dup:N with N per thousand, 0-1000")),
            },
            "propose" => match arg.parse::<u8>() {
                Ok(k) if k > 0 => Action::Propose(k),
                _ => return Err(format!("{s:?}: expected propose:K with K from 1 to 255")),
            },
            _ => return Err(format!("unknown step {s:?}")),
        };
        Ok(action)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = |b: bool| if b { "on" } else { "off" };
        match self {
            Action::Crash(t) => write!(f, "crash {}", t.describe("every peer")),
            Action::PowerFail(t, family) => {
                write!(
                    f,
                    "power failure ({family}) of {} at its next sync",
                    t.describe("every peer")
                )
            }
            Action::Restart(Target::All) => write!(f, "restart every crashed peer"),
            Action::Restart(t) => write!(f, "restart {} (a reboot if it runs)", t.describe("")),
            Action::Isolate(t) => write!(f, "disconnect {}", t.describe("every peer")),
            Action::Connect(t) => write!(f, "reconnect {}", t.describe("every peer")),
            Action::Partition(side) => {
                let names: Vec<String> = side.iter().map(|t| t.describe("")).collect();
                write!(f, "partition {{{}}} from the others (both ways)", names.join(", "))
            }
            Action::Cut(a, b) => {
                write!(f, "cut the link {} -> {} (one way)", a.describe(""), b.describe(""))
            }
            Action::Heal => write!(f, "heal: restore every link and reconnect every peer"),
            Action::Unreliable(b) => {
                write!(f, "unreliable network (10% loss, 0-27 ms delays) {}", on(*b))
            }
            Action::LongReordering(b) => {
                write!(f, "long reordering (replies delayed 200-2200 ms) {}", on(*b))
            }
            Action::SlowReplies(b) => write!(f, "slow replies (30-400 ms late) {}", on(*b)),
            Action::Duplicate(p) => write!(f, "duplicate {p} messages per thousand"),
            Action::Propose(1) => write!(f, "offer 1 command to whoever leads"),
            Action::Propose(k) => write!(f, "offer {k} commands to whoever leads"),
        }
    }
}

/// One timed step of a schedule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    /// Virtual milliseconds since the start of the run.
    pub at_ms: u64,
    /// What happens then.
    pub action: Action,
}

/// A run's cluster size, configuration, fault phase and steps.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schedule {
    /// How many peers (3 to 7 when generated; 1 to 10 allowed).
    pub nodes: usize,
    /// The protocol settings and network noise of the run (the lab profile when left out).
    #[serde(default)]
    pub swarm: Swarm,
    /// When the fault phase ends and the final phase (heal, then checks) begins, in virtual
    /// milliseconds.
    pub end_ms: u64,
    /// The steps, in time order, none after `end_ms`. Steps at the same time run in list order.
    pub steps: Vec<Step>,
}

/// The family of fault schedules a generated seed belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Every kind of fault, at random.
    Mixed,
    /// The labs' Figure 8 test: leaders cut off or crashed before they replicate.
    Churn,
    /// Many candidates at once, their replies late, duplicated and delivered into later terms.
    Storm,
    /// Leaders that append many entries alone, repaired by a new leader in small batches.
    Tails,
    /// Crashes and reboots in the middle of elections.
    ElectionCrash,
    /// Figure 8 composed: a leader that reaches one follower only, then crashes.
    Figure8,
    /// Followers brought back behind the leader's snapshot, and faults while it is in flight.
    Snapshots,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 7] = [
        Family::Mixed,
        Family::Churn,
        Family::Storm,
        Family::Tails,
        Family::ElectionCrash,
        Family::Figure8,
        Family::Snapshots,
    ];

    /// The family's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::Mixed => "mixed",
            Family::Churn => "churn",
            Family::Storm => "storm",
            Family::Tails => "tails",
            Family::ElectionCrash => "election-crash",
            Family::Figure8 => "figure-8",
            Family::Snapshots => "snapshots",
        }
    }

    /// The family of `seed`'s generated schedule.
    pub fn of_seed(seed: u64) -> Family {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_SCHEDULE, 2));
        match rng.gen_range(0..100) {
            0..=31 => Family::Mixed,
            32..=39 => Family::Snapshots,
            40..=54 => Family::Churn,
            55..=69 => Family::Storm,
            70..=81 => Family::Tails,
            82..=91 => Family::ElectionCrash,
            _ => Family::Figure8,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bounded random duration in milliseconds, skewed towards short ones.
fn duration(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    let upper = rng.gen_range(lo..=hi);
    rng.gen_range(lo..=upper)
}

/// Steps being laid out for a fault phase that ends at `end_ms`: steps after the end are left
/// out, and [`Steps::done`] sorts the rest by time.
struct Steps {
    end_ms: u64,
    steps: Vec<Step>,
}

impl Steps {
    fn new(end_ms: u64) -> Steps {
        Steps { end_ms, steps: Vec::new() }
    }

    fn push(&mut self, at_ms: u64, action: Action) {
        if at_ms <= self.end_ms {
            self.steps.push(Step { at_ms, action });
        }
    }

    /// Clients offering 1 to `most` commands every `lo`-`hi` ms, from a time before 200 ms.
    fn clients(&mut self, rng: &mut ChaCha8Rng, most: u8, lo: u64, hi: u64) {
        let mut t = rng.gen_range(0..200);
        while t < self.end_ms {
            self.push(t, Action::Propose(rng.gen_range(1..=most)));
            t += rng.gen_range(lo..=hi);
        }
    }

    fn done(mut self, nodes: usize, swarm: Swarm) -> Schedule {
        // A stable sort: steps at the same time keep the order they were laid out in.
        self.steps.sort_by_key(|s| s.at_ms);
        Schedule { nodes, swarm, end_ms: self.end_ms, steps: self.steps }
    }
}

/// A crash of `who`, or (half of the time) a power failure of one of the three families.
fn crash_or_power_failure(who: Target, power: &mut ChaCha8Rng) -> Action {
    match power.gen_bool(0.5) {
        true => Action::PowerFail(who, CrashFamily::ALL[power.gen_range(0..3)]),
        false => Action::Crash(who),
    }
}

fn random_node(rng: &mut ChaCha8Rng, nodes: usize) -> Target {
    Target::Node(rng.gen_range(0..nodes) as u8)
}

impl Schedule {
    /// The schedule of `seed`: a cluster of 3 to 7 peers (even sizes too), a [`Swarm`]
    /// configuration (the lab profile in a quarter of the seeds; otherwise the service
    /// snapshots in half of them), and the steps of one [`Family`]:
    ///
    /// - Mixed (32%): a fault phase of 2 to 4 virtual seconds, clients proposing 1 to 3
    ///   commands every 5-150 ms, and fault episodes every 30-500 ms, each undone after
    ///   50-1500 ms (a crash by a restart, a disconnection by a reconnection, a partition or
    ///   cut by a heal, a network mode by switching it off): crashes, power failures and
    ///   reboots, disconnections, partitions and one-way cuts (half of them aimed at the
    ///   leader), spells of loss, long reordering and duplication.
    /// - Churn (15%), the pattern of the paper's Figure 8 as the labs test it: 3 to 6 seconds on
    ///   the unreliable network, in rounds mostly a few milliseconds apart; each round offers a
    ///   command, half of the rounds then cut off (or, in a quarter of the seeds, crash) the
    ///   leader before it could replicate it, and a tenth bring one peer back.
    /// - Storm (15%): tight election timeouts (pre-vote off in half), replies delayed for
    ///   seconds and duplicated so that they arrive in later terms, and rounds that cut every
    ///   peer off at once and bring them back together (every timer runs out at once), depose
    ///   or reboot the leader.
    /// - Tails (12%): one entry per append or a pipeline of one or two; rounds in which the
    ///   leader, alone or with one follower, accepts hundreds of commands it cannot commit, the
    ///   others elect a leader that commits its own, and the two sides meet again.
    /// - Election crash (10%): the leader crashes, and peers crash, lose power or reboot around
    ///   the time the election that follows runs.
    /// - Figure 8 (8%): the leader is cut off with one follower, offered commands that reach
    ///   that follower only, then crashes or loses power; the rest elect a leader while the
    ///   follower holds the only copies of an earlier term's entries.
    /// - Snapshots (8%): the service snapshots every 2 to 5 entries, sent in chunks of 1 to 16
    ///   bytes or whole; rounds cut a follower off or crash it while the leader, offered tens of
    ///   commands, compacts past it, then bring it back; while its snapshot is in flight, it
    ///   crashes, loses power or reboots, the leader is cut off, or the chunks are reordered or
    ///   duplicated.
    pub fn generate(seed: u64) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_SCHEDULE, 0));
        let mut swarm_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_SCHEDULE, 3));
        let nodes = [3, 3, 4, 5, 5, 6, 7][swarm_rng.gen_range(0..7)];
        let mut swarm =
            if swarm_rng.gen_bool(0.25) { Swarm::LAB } else { Swarm::draw(&mut swarm_rng) };
        // Which crashes are power failures comes from a stream of its own, and so do the
        // snapshot settings and the log's memory budget.
        let mut power = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_SCHEDULE, 1));
        let mut snapshots = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_SCHEDULE, 4));
        let mut memory = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_SCHEDULE, 5));
        if swarm != Swarm::LAB {
            swarm.draw_snapshots(&mut snapshots);
            swarm.draw_log_memory(&mut memory);
        }
        match Family::of_seed(seed) {
            Family::Mixed => Schedule::mixed(nodes, swarm, &mut rng, &mut power),
            Family::Churn => Schedule::churn(nodes, swarm, &mut rng),
            Family::Storm => {
                swarm.election_tick = [5, 10, 20][swarm_rng.gen_range(0..3)];
                swarm.heartbeat_tick = swarm.heartbeat_tick.clamp(1, swarm.election_tick / 3);
                swarm.pre_vote = swarm_rng.gen_bool(0.5);
                Schedule::storm(nodes, swarm, &mut rng)
            }
            Family::Tails => {
                swarm.max_append_entries = [1, 1, 2, 4][swarm_rng.gen_range(0..4)];
                swarm.max_inflight = [1, 2, 16][swarm_rng.gen_range(0..3)];
                Schedule::tails(nodes, swarm, &mut rng)
            }
            Family::ElectionCrash => Schedule::election_crash(nodes, swarm, &mut rng, &mut power),
            Family::Figure8 => Schedule::figure8(nodes, swarm, &mut rng, &mut power),
            Family::Snapshots => {
                swarm.snapshot_every = snapshots.gen_range(2..=5);
                swarm.snapshot_chunk_bytes = [1, 4, 16, 1 << 20][snapshots.gen_range(0..4)];
                Schedule::snapshots(nodes, swarm, &mut rng, &mut power)
            }
        }
    }

    fn churn(nodes: usize, swarm: Swarm, rng: &mut ChaCha8Rng) -> Schedule {
        let mut s = Steps::new(rng.gen_range(3_000..=6_000u64));
        let crash = rng.gen_bool(0.25);
        s.push(0, Action::Unreliable(true));
        let mut t = 0;
        while t < s.end_ms {
            s.push(t, Action::Propose(1));
            t += if rng.gen_bool(0.1) { rng.gen_range(0..500) } else { rng.gen_range(0..13) };
            if rng.gen_bool(0.5) {
                s.push(
                    t,
                    if crash {
                        Action::Crash(Target::Leader)
                    } else {
                        Action::Isolate(Target::Leader)
                    },
                );
            }
            if rng.gen_bool(0.1) {
                let who = random_node(rng, nodes);
                s.push(t, if crash { Action::Restart(who) } else { Action::Connect(who) });
            }
        }
        s.done(nodes, swarm)
    }

    fn mixed(nodes: usize, swarm: Swarm, rng: &mut ChaCha8Rng, power: &mut ChaCha8Rng) -> Schedule {
        let mut s = Steps::new(rng.gen_range(2_000..=4_000u64));
        if rng.gen_bool(0.25) {
            s.push(0, Action::Unreliable(true));
        }
        s.clients(rng, 3, 5, 150);
        let node_or_leader = |rng: &mut ChaCha8Rng| {
            if rng.gen_bool(0.5) {
                Target::Leader
            } else {
                random_node(rng, nodes)
            }
        };
        let mut t = rng.gen_range(100..600);
        while t < s.end_ms {
            let undo_at = t + duration(rng, 50, 1_500);
            match rng.gen_range(0..100) {
                0..=21 => {
                    let who = node_or_leader(rng);
                    s.push(t, crash_or_power_failure(who, power));
                    let back = if let Target::Node(_) = who { who } else { Target::All };
                    s.push(undo_at, Action::Restart(back));
                }
                22..=33 => s.push(t, Action::Restart(node_or_leader(rng))),
                34..=51 => {
                    let who = node_or_leader(rng);
                    s.push(t, Action::Isolate(who));
                    let back = if let Target::Node(_) = who { who } else { Target::All };
                    s.push(undo_at, Action::Connect(back));
                }
                52..=67 => {
                    let mut side = Vec::new();
                    if rng.gen_bool(0.5) {
                        side.push(Target::Leader);
                    }
                    let size = rng.gen_range(1..=nodes / 2);
                    while side.len() < size {
                        let n = random_node(rng, nodes);
                        if !side.contains(&n) {
                            side.push(n);
                        }
                    }
                    s.push(t, Action::Partition(side));
                    s.push(undo_at, Action::Heal);
                }
                68..=79 => {
                    for _ in 0..rng.gen_range(1..=3) {
                        let from = node_or_leader(rng);
                        let to = node_or_leader(rng);
                        if from != to {
                            s.push(t, Action::Cut(from, to));
                        }
                    }
                    s.push(undo_at, Action::Heal);
                }
                80..=87 => {
                    s.push(t, Action::Unreliable(true));
                    s.push(undo_at, Action::Unreliable(false));
                }
                88..=94 => {
                    s.push(t, Action::LongReordering(true));
                    s.push(undo_at, Action::LongReordering(false));
                }
                _ => {
                    s.push(t, Action::Duplicate(rng.gen_range(1..=5) * 50));
                    s.push(undo_at, Action::Duplicate(0));
                }
            }
            t += duration(rng, 30, 500);
        }
        s.done(nodes, swarm)
    }

    fn storm(nodes: usize, swarm: Swarm, rng: &mut ChaCha8Rng) -> Schedule {
        let mut s = Steps::new(rng.gen_range(2_000..=4_000u64));
        if rng.gen_bool(0.5) {
            s.push(0, Action::LongReordering(true));
        } else {
            s.push(0, Action::SlowReplies(true));
        }
        s.push(0, Action::Duplicate(rng.gen_range(1..=6) * 50));
        if rng.gen_bool(0.5) {
            s.push(0, Action::Unreliable(true));
        }
        s.clients(rng, 2, 10, 150);
        let timeout_ms = swarm.election_timeout_ms();
        let mut t = rng.gen_range(100..400);
        while t < s.end_ms {
            match rng.gen_range(0..4) {
                // Everyone alone for longer than a timeout, then back at once: every timer has
                // run out, and each peer campaigns in the same instant.
                0 | 1 => {
                    s.push(t, Action::Isolate(Target::All));
                    s.push(t + timeout_ms * rng.gen_range(1..=3), Action::Connect(Target::All));
                }
                2 => {
                    s.push(t, Action::Isolate(Target::Leader));
                    s.push(
                        t + duration(rng, timeout_ms, 4 * timeout_ms),
                        Action::Connect(Target::All),
                    );
                }
                _ => s.push(t, Action::Restart(Target::Leader)),
            }
            t += duration(rng, 2 * timeout_ms, 600.max(6 * timeout_ms));
        }
        s.done(nodes, swarm)
    }

    fn tails(nodes: usize, swarm: Swarm, rng: &mut ChaCha8Rng) -> Schedule {
        let mut s = Steps::new(rng.gen_range(3_000..=5_000u64));
        let timeout_ms = swarm.election_timeout_ms();
        s.clients(rng, 2, 20, 200);
        let mut t = rng.gen_range(200..600);
        while t < s.end_ms {
            // The leader is cut off, alone or with one follower, and takes commands that it
            // cannot commit, until check-quorum (if on) makes it step down.
            if nodes >= 5 && rng.gen_bool(0.5) {
                s.push(t, Action::Partition(vec![Target::Leader, random_node(rng, nodes)]));
            } else {
                s.push(t, Action::Partition(vec![Target::Leader]));
            }
            let mut u = t + 1;
            while u < t + timeout_ms {
                s.push(u, Action::Propose(rng.gen_range(20..=120)));
                u += rng.gen_range(5..=30);
            }
            // The majority elects a leader of its own, which commits entries of a newer term.
            let elected = t + 3 * timeout_ms + 200;
            s.push(elected, Action::Propose(rng.gen_range(5..=60)));
            let healed = elected + rng.gen_range(20..=400);
            s.push(healed, Action::Heal);
            t = healed + duration(rng, 100, 900);
        }
        s.done(nodes, swarm)
    }

    fn election_crash(
        nodes: usize,
        swarm: Swarm,
        rng: &mut ChaCha8Rng,
        power: &mut ChaCha8Rng,
    ) -> Schedule {
        let mut s = Steps::new(rng.gen_range(2_500..=5_000u64));
        let timeout_ms = swarm.election_timeout_ms();
        s.clients(rng, 2, 10, 120);
        let mut t = rng.gen_range(200..600);
        while t < s.end_ms {
            s.push(t, crash_or_power_failure(Target::Leader, power));
            // The election runs between one and two timeouts later: strike inside it.
            for _ in 0..rng.gen_range(1..=3) {
                let at = t + rng.gen_range(timeout_ms..=2 * timeout_ms + 30);
                let who = random_node(rng, nodes);
                match rng.gen_range(0..3) {
                    0 => s.push(at, Action::Restart(who)),
                    1 => s.push(at, crash_or_power_failure(who, power)),
                    _ => s.push(at, Action::Restart(Target::Leader)),
                }
            }
            let back = t + 2 * timeout_ms + rng.gen_range(50..=600);
            s.push(back, Action::Restart(Target::All));
            t = back + duration(rng, 50, 800);
        }
        s.done(nodes, swarm)
    }

    fn figure8(
        nodes: usize,
        swarm: Swarm,
        rng: &mut ChaCha8Rng,
        power: &mut ChaCha8Rng,
    ) -> Schedule {
        let mut s = Steps::new(rng.gen_range(3_000..=6_000u64));
        let timeout_ms = swarm.election_timeout_ms();
        s.clients(rng, 1, 50, 400);
        let mut t = rng.gen_range(200..600);
        while t < s.end_ms {
            let follower = random_node(rng, nodes);
            s.push(t, Action::Partition(vec![Target::Leader, follower]));
            s.push(t + 1, Action::Propose(rng.gen_range(1..=3)));
            let down = t + rng.gen_range(2..=40);
            s.push(down, crash_or_power_failure(Target::Leader, power));
            let healed = down + rng.gen_range(timeout_ms..=3 * timeout_ms);
            s.push(healed, Action::Heal);
            if rng.gen_bool(0.5) {
                // The new leader too is cut off before it replicates, as in the figure's (d).
                s.push(healed + 1, Action::Propose(1));
                s.push(healed + rng.gen_range(1..=5), Action::Isolate(Target::Leader));
            }
            let back = healed + rng.gen_range(0..=timeout_ms);
            s.push(back, Action::Restart(Target::All));
            s.push(back + rng.gen_range(0..=2 * timeout_ms), Action::Connect(Target::All));
            t = back + duration(rng, 2 * timeout_ms, 1_000.max(4 * timeout_ms));
        }
        s.done(nodes, swarm)
    }

    fn snapshots(
        nodes: usize,
        swarm: Swarm,
        rng: &mut ChaCha8Rng,
        power: &mut ChaCha8Rng,
    ) -> Schedule {
        let mut s = Steps::new(rng.gen_range(3_000..=5_000u64));
        let timeout_ms = swarm.election_timeout_ms();
        s.clients(rng, 3, 10, 100);
        let mut t = rng.gen_range(200..600);
        while t < s.end_ms {
            let victim = random_node(rng, nodes);
            let crashed = rng.gen_bool(0.5);
            s.push(
                t,
                if crashed {
                    crash_or_power_failure(victim, power)
                } else {
                    Action::Isolate(victim)
                },
            );
            // Enough commands for the leader to compact past the victim several times.
            s.push(t + 1, Action::Propose(rng.gen_range(10..=40)));
            let back = t + rng.gen_range(timeout_ms..=3 * timeout_ms) + 200;
            s.push(back, if crashed { Action::Restart(victim) } else { Action::Connect(victim) });
            // The victim now needs the leader's snapshot: strike while it is in flight.
            let during = back + rng.gen_range(1..=60);
            let over = during + rng.gen_range(timeout_ms..=2 * timeout_ms);
            match rng.gen_range(0..6) {
                0 => s.push(during, crash_or_power_failure(victim, power)),
                1 => s.push(during, Action::Restart(victim)),
                2 => s.push(during, Action::Isolate(Target::Leader)),
                3 => {
                    s.push(during, Action::LongReordering(true));
                    s.push(over, Action::LongReordering(false));
                }
                4 => {
                    s.push(during, Action::Duplicate(rng.gen_range(1..=4) * 100));
                    s.push(over, Action::Duplicate(0));
                }
                _ => s.push(during, Action::Propose(rng.gen_range(1..=5))),
            }
            s.push(over, Action::Heal);
            s.push(over, Action::Restart(Target::All));
            t = over + duration(rng, 50, 600);
        }
        s.done(nodes, swarm)
    }

    /// The events a run of this schedule may take before it counts as a runaway: one per peer
    /// and virtual millisecond of the fault phase and of ten seconds more for the final phase,
    /// plus 10,000. Correct runs of generated schedules take at most about 0.2 per peer and
    /// millisecond (a tick every few milliseconds, a heartbeat and its answer), so the budget
    /// leaves five times that, and grows with the schedule: a quiet schedule of five virtual
    /// minutes is not a storm.
    ///
    /// Commands cost events of their own when appends carry few entries (every command is an
    /// append and an acknowledgement per follower, and a repaired divergent tail costs as much
    /// again): four per peer and command proposed; and as many times more as a pipeline holds
    /// appends, since a network that reorders a pipeline of single entries makes the follower
    /// reject most of it, and the leader resend it, again and again.
    pub fn event_budget(&self) -> u64 {
        let ms = self.end_ms.saturating_add(10_000);
        let resends = (self.swarm.max_inflight / self.swarm.max_append_entries).max(1) as u64;
        let commands = self.proposals().saturating_mul(4 * resends);
        (self.nodes as u64).saturating_mul(ms.saturating_add(commands)).saturating_add(10_000)
    }

    /// Checks the schedule's shape: 1 to 10 peers, steps in time order and within the fault
    /// phase, targets that exist.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10).contains(&self.nodes) {
            return Err(format!("a schedule needs 1 to 10 peers, not {}", self.nodes));
        }
        self.swarm.validate()?;
        let mut last = 0;
        for s in &self.steps {
            if s.at_ms < last {
                return Err(format!("steps out of time order: {} ms after {last} ms", s.at_ms));
            }
            if s.at_ms > self.end_ms {
                return Err(format!(
                    "a step at {} ms is after the end, {} ms",
                    s.at_ms, self.end_ms
                ));
            }
            last = s.at_ms;
            let targets: Vec<Target> = match &s.action {
                Action::Crash(t)
                | Action::PowerFail(t, _)
                | Action::Restart(t)
                | Action::Isolate(t)
                | Action::Connect(t) => {
                    vec![*t]
                }
                Action::Partition(side) => side.clone(),
                Action::Cut(a, b) => vec![*a, *b],
                _ => vec![],
            };
            for t in targets {
                if let Target::Node(i) = t {
                    if i as usize >= self.nodes {
                        return Err(format!(
                            "a step names n{i} in a cluster of {} peers",
                            self.nodes
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The one-line encoding: `nodes=N`, `swarm=...` unless it is the lab profile (see
    /// [`Swarm::to_compact`]), `end=MS`, then one `MS:ACTION` token per step, separated
    /// by spaces. Actions: `crash:T`, `restart:T`, `isolate:T`, `connect:T` (T a peer number,
    /// `L` for the leader or `*` for all), `partition:SIDE` (peers and `L`, e.g. `L02`),
    /// `cut:A>B`, `heal`, `unreliable:on|off`, `reorder:on|off`, `slow:on|off`, `dup:N`, `propose:K`.
    pub fn to_compact(&self) -> String {
        let mut out = format!("nodes={}", self.nodes);
        if self.swarm != Swarm::LAB {
            out.push_str(&format!(" swarm={}", self.swarm.to_compact()));
        }
        out.push_str(&format!(" end={}", self.end_ms));
        for s in &self.steps {
            out.push_str(&format!(" {}:{}", s.at_ms, s.action.compact()));
        }
        out
    }

    /// Parses [`Schedule::to_compact`]'s encoding (and validates the result).
    pub fn parse_compact(text: &str) -> Result<Schedule, String> {
        let mut tokens = text.split_whitespace().peekable();
        let header = |key: &str,
                      tokens: &mut std::iter::Peekable<std::str::SplitWhitespace>|
         -> Result<u64, String> {
            let tok = tokens.next().ok_or_else(|| format!("the schedule lacks {key}=..."))?;
            tok.strip_prefix(key)
                .and_then(|r| r.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("expected {key}=<number>, found {tok:?}"))
        };
        let nodes = header("nodes", &mut tokens)? as usize;
        let swarm = match tokens.next_if(|t| t.starts_with("swarm=")) {
            Some(tok) => Swarm::parse_compact(&tok["swarm=".len()..])?,
            None => Swarm::LAB,
        };
        let end_ms = header("end", &mut tokens)?;
        if !(1..=10).contains(&nodes) {
            return Err(format!("a schedule needs 1 to 10 peers, not {nodes}"));
        }
        let mut steps = Vec::new();
        for tok in tokens {
            let (at, action) =
                tok.split_once(':').ok_or_else(|| format!("expected MS:ACTION, found {tok:?}"))?;
            let at_ms =
                at.parse::<u64>().map_err(|_| format!("{tok:?}: {at:?} is not a time in ms"))?;
            steps.push(Step { at_ms, action: Action::parse(action, nodes)? });
        }
        let schedule = Schedule { nodes, swarm, end_ms, steps };
        schedule.validate()?;
        Ok(schedule)
    }

    /// A readable listing, one step per line, each line starting with `indent`.
    pub fn describe(&self, indent: &str) -> String {
        let mut out = format!(
            "{indent}{} peers, {}; faults until {} ms, then heal and the final checks\n",
            self.nodes, self.swarm, self.end_ms
        );
        for s in &self.steps {
            out.push_str(&format!("{indent}{:>6} ms  {}\n", s.at_ms, s.action));
        }
        out
    }

    /// How many commands the schedule proposes.
    pub fn proposals(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| if let Action::Propose(k) = s.action { k as u64 } else { 0 })
            .sum()
    }
}

/// How to run a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The seed of the cluster's own randomness.
    pub seed: u64,
    /// The bug of the catalogue every peer runs with (builds with the cargo feature `bugs`).
    pub bug: Option<Bug>,
    /// How many recent events the simulator keeps for failure reports (0 is fastest; a failure
    /// then shows no events).
    pub trace_len: usize,
    /// Whether to return the kept trace of a passing run as well.
    pub keep_trace: bool,
    /// The most simulator events (ticks and deliveries) a run may take before it fails as a
    /// runaway (a message storm or livelock), see [`Sim::set_max_events`](super::Sim::set_max_events);
    /// `None` for the schedule's own [`Schedule::event_budget`].
    pub max_events: Option<u64>,
}

impl RunOptions {
    /// Seed `seed`, no bug, a trace of the last 100 events for failures.
    pub fn new(seed: u64) -> RunOptions {
        RunOptions { seed, bug: None, trace_len: 100, keep_trace: false, max_events: None }
    }
}

/// What a passing run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passed {
    /// Virtual milliseconds the run lasted, final phase included.
    pub virtual_ms: u64,
    /// Proposals a leader accepted.
    pub accepted: u64,
    /// Commands a client saw committed.
    pub seen_committed: u64,
    /// Simulator events (ticks and deliveries) the run took.
    pub events: u64,
    /// The index of the final command every peer agreed on.
    pub final_index: Index,
    /// The kept trace, when asked for.
    pub trace: Option<String>,
    /// The protocol decisions every peer took.
    pub coverage: Coverage,
}

/// In which phase a run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// During the steps.
    Faults,
    /// After the heal, in the final checks.
    Final,
}

/// How a run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The broken property, e.g. `leader completeness` or `final: lost a committed command`
    /// (see [`classify`]).
    pub kind: String,
    /// The whole report: what broke, the seed, every peer's state and the recent events.
    pub message: String,
    /// Virtual time of the failure, in microseconds.
    pub at_us: u64,
    /// The phase it failed in.
    pub phase: Phase,
    /// The protocol decisions every peer took up to the failure.
    pub coverage: Coverage,
}

impl Failure {
    /// Whether the run ran out of its event budget ([`RunOptions::max_events`]) rather than
    /// breaking a property: not a verdict on the core (a message storm and a long quiet
    /// schedule look the same from here).
    pub fn is_runaway(&self) -> bool {
        self.kind == "runaway"
    }

    /// The first line of the report.
    pub fn headline(&self) -> &str {
        self.message.lines().next().unwrap_or("")
    }
}

/// What a failure that is not a violation of the simulator's invariants (those are classified
/// by their [`Property`](super::invariants::Property)) broke, from its report: `final: ...` for
/// the final checks, `runaway` for a run over its budget of events, or `panic: <first line>`
/// for anything else.
pub fn classify(message: &str) -> String {
    let head = message.lines().next().unwrap_or("");
    let kinds: [(&str, &str); 3] = [
        ("has two leaders", "final: two leaders in a term"),
        ("expected one leader", "final: no leader"),
        ("failed to reach agreement", "final: no agreement"),
    ];
    for (needle, kind) in kinds {
        if head.contains(needle) {
            return kind.to_string();
        }
    }
    if head.starts_with("runaway: ") {
        return "runaway".to_string();
    }
    if let Some(rest) = head.strip_prefix("final check: ") {
        let what = rest.split(':').next().unwrap_or(rest);
        return format!("final: {what}");
    }
    let short: String = head.chars().take(80).collect();
    format!("panic: {short}")
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Makes panics inside [`run`] silent on this process's standard error (their reports are
/// returned as [`Failure`]s instead); other panics still go to the previous hook. Idempotent.
pub fn silence_run_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

struct Watch {
    index: Index,
    value: u64,
    accepted_us: u64,
    next: usize,
}

struct Driver {
    c: Cluster,
    n: usize,
    cut: Vec<bool>,
    next_value: u64,
    watches: Vec<Watch>,
    /// (index, command value) of every command a client saw committed.
    seen: Vec<(Index, u64)>,
    accepted: u64,
}

impl Driver {
    fn leader(&self) -> Option<usize> {
        let sim = self.c.sim();
        (0..self.n)
            .filter_map(|i| sim.status(i).filter(|s| s.role == Role::Leader).map(|s| (s.term, i)))
            .max()
            .map(|(_, i)| i)
    }

    /// The peers a target names now.
    fn resolve(&self, t: Target) -> Vec<usize> {
        match t {
            Target::Node(i) => vec![i as usize],
            Target::Leader => self.leader().into_iter().collect(),
            Target::All => (0..self.n).collect(),
        }
    }

    fn set_link(&mut self, from: usize, to: usize, up: bool) {
        if from != to && self.cut[from * self.n + to] == up {
            self.cut[from * self.n + to] = !up;
            self.c.sim().set_link(from, to, up);
        }
    }

    fn heal_links(&mut self) {
        for a in 0..self.n {
            for b in 0..self.n {
                self.set_link(a, b, true);
            }
        }
        let mut sim = self.c.sim();
        for i in 0..self.n {
            sim.connect(i);
        }
    }

    fn apply(&mut self, action: &Action) {
        self.c.sim().note(format!("step: {action}"));
        match action {
            Action::Crash(t) => {
                for i in self.resolve(*t) {
                    self.c.sim().crash(i);
                }
            }
            Action::PowerFail(t, family) => {
                for i in self.resolve(*t) {
                    self.c.sim().power_fail(i, *family);
                }
            }
            Action::Restart(Target::All) => {
                let mut sim = self.c.sim();
                for i in 0..self.n {
                    if !sim.is_alive(i) {
                        sim.restart(i);
                    }
                }
            }
            Action::Restart(t) => {
                for i in self.resolve(*t) {
                    self.c.sim().restart(i);
                }
            }
            Action::Isolate(t) => {
                for i in self.resolve(*t) {
                    self.c.sim().disconnect(i);
                }
            }
            Action::Connect(t) => {
                for i in self.resolve(*t) {
                    self.c.sim().connect(i);
                }
            }
            Action::Partition(side) => {
                let mut inside = vec![false; self.n];
                for t in side {
                    for i in self.resolve(*t) {
                        inside[i] = true;
                    }
                }
                for a in 0..self.n {
                    for b in 0..self.n {
                        if inside[a] != inside[b] {
                            self.set_link(a, b, false);
                        }
                    }
                }
            }
            Action::Cut(a, b) => {
                for from in self.resolve(*a) {
                    for to in self.resolve(*b) {
                        self.set_link(from, to, false);
                    }
                }
            }
            Action::Heal => self.heal_links(),
            Action::Unreliable(on) => self.c.sim().set_reliable(!on),
            Action::LongReordering(on) => self.c.sim().set_long_reordering(*on),
            Action::SlowReplies(on) => {
                self.c.sim().note(format!("slow replies {}", if *on { "on" } else { "off" }));
                self.c.sim().network().set_slow_replies(*on)
            }
            Action::Duplicate(p) => self.c.sim().network().set_duplicate_per_mille(*p as u32),
            Action::Propose(k) => {
                for _ in 0..*k {
                    let value = self.next_value;
                    self.next_value += 1;
                    for i in 0..self.n {
                        let accepted = self.c.sim().propose(i, num(value));
                        if let Some((index, _)) = accepted {
                            self.accepted += 1;
                            let accepted_us = self.c.sim().now_us();
                            self.watches.push(Watch { index, value, accepted_us, next: 0 });
                        }
                    }
                }
                // Clients read as they write: every running peer is asked for a read.
                for i in 0..self.n {
                    self.c.sim().read(i);
                }
            }
        }
    }

    fn next_watch_us(&self) -> Option<u64> {
        self.watches.iter().map(|w| w.accepted_us + WATCH_OFFSETS_MS[w.next] * 1000).min()
    }

    /// Lets every client whose look is due (or every client, with `all`) look.
    fn look(&mut self, now_us: u64, all: bool) {
        let c = &self.c;
        let seen = &mut self.seen;
        self.watches.retain_mut(|w| {
            if !all && w.accepted_us + WATCH_OFFSETS_MS[w.next] * 1000 > now_us {
                return true;
            }
            let (count, cmd) = c.n_committed(w.index);
            if count > 0 {
                if cmd.is_some_and(|cmd| cmd[..] == num(w.value)[..]) {
                    seen.push((w.index, w.value));
                }
                return false;
            }
            w.next += 1;
            w.next < WATCH_OFFSETS_MS.len()
        });
    }

    fn fault_phase(&mut self, schedule: &Schedule) {
        let end_us = schedule.end_ms * 1000;
        let mut steps = schedule.steps.iter().peekable();
        loop {
            let next_step = steps.peek().map(|s| s.at_ms * 1000);
            let t = [next_step, self.next_watch_us(), Some(end_us)]
                .into_iter()
                .flatten()
                .min()
                .expect("the end is always there");
            self.c.sim().run_until_us(t);
            self.look(t, false);
            while let Some(s) = steps.next_if(|s| s.at_ms * 1000 <= t) {
                self.apply(&s.action);
            }
            if t >= end_us && steps.peek().is_none() {
                break;
            }
        }
        self.look(end_us, true);
    }

    fn heal_all(&mut self) {
        self.c.sim().note("the end of the faults: heal everything".to_string());
        self.heal_links();
        let mut sim = self.c.sim();
        for i in 0..self.n {
            // The faults are over: a power failure still waiting for a sync does not strike.
            sim.cancel_power_failure(i);
            if !sim.is_alive(i) {
                sim.restart(i);
            }
        }
        sim.set_reliable(true);
        sim.set_long_reordering(false);
        sim.network().set_duplicate_per_mille(0);
        sim.network().set_noise(0, 0, 0);
        sim.network().set_slow_replies(false);
    }

    /// Every command a client saw committed is at its index in every peer's log (in memory or,
    /// once evicted, in its storage; once compacted, in the committed entries its snapshot
    /// agrees with), and every peer applied up
    /// to the final command and holds the committed entries up to it.
    fn final_logs(&self, final_index: Index) -> Result<(), String> {
        let sim = self.c.sim();
        let committed = sim.committed();
        for &(index, v) in &self.seen {
            for i in 0..self.n {
                let node = sim.node(i);
                let raw = node.raw().expect("every peer runs after the heal");
                // An entry evicted from memory is read from the peer's storage.
                let held = raw.entry(index).or_else(|| node.image().view().entry(index));
                let entry = match held {
                    Some(e) => Some((e.kind, &e.data[..])),
                    // The invariants checked the snapshot against the committed entries.
                    None if index <= raw.status().snapshot_index => {
                        committed.get(index as usize - 1).map(|c| (c.kind, &c.data[..]))
                    }
                    None => None,
                };
                if !entry.is_some_and(|(kind, data)| kind == EntryKind::Normal && data == num(v)) {
                    let held = entry.map_or("nothing".to_string(), |(k, d)| describe(k, d));
                    return Err(format!(
                        "lost a committed command: a client saw cmd {v} committed at index {index}, but n{i}'s log holds {held} there"
                    ));
                }
            }
        }
        for i in 0..self.n {
            let raw = sim.node(i).raw().expect("every peer runs after the heal");
            if raw.status().applied_index < final_index {
                return Err(format!(
                    "not applied: n{i} did not apply up to the final command at {final_index}"
                ));
            }
            for e in raw.entries().iter().take_while(|e| e.index <= final_index) {
                let same = committed.get(e.index as usize - 1).is_some_and(|ce| {
                    ce.term == e.term && ce.kind == e.kind && ce.data[..] == e.data[..]
                });
                if !same {
                    return Err(format!(
                        "logs disagree: n{i}'s entry {} (term {}) is not the committed one",
                        e.index, e.term
                    ));
                }
            }
        }
        Ok(())
    }

    fn final_phase(&mut self) -> Index {
        let c = self.c.clone();
        let value = self.next_value;
        self.next_value += 1;
        let n = self.n;
        let final_index = c.block_on(async {
            c.check_one_leader().await;
            c.one(num(value), n, true).await
        });
        if let Err(e) = self.final_logs(final_index) {
            c.fail(&format!("final check: {e}"));
        }
        final_index
    }
}

/// Runs `schedule` under `opts`: its faults, then the heal and the final checks, with the
/// simulator's invariants checked after every step. Panics of the run are caught and returned
/// as a [`Failure`] (call [`silence_run_panics`] first to keep them off standard error).
///
/// # Panics
///
/// If the schedule is not [valid](Schedule::validate), or a bug is asked for in a build without
/// the cargo feature `bugs`.
pub fn run(opts: &RunOptions, schedule: &Schedule) -> Result<Passed, Failure> {
    if let Err(e) = schedule.validate() {
        panic!("invalid schedule: {e}");
    }
    #[cfg(not(feature = "bugs"))]
    assert!(opts.bug.is_none(), "a bug can only be switched on with the cargo feature `bugs`");
    let cfg = SimConfig {
        bug: opts.bug,
        trace_len: opts.trace_len,
        swarm: Some(schedule.swarm),
        ..SimConfig::new(schedule.nodes, opts.seed)
    };
    let n = schedule.nodes;
    let mut d = Driver {
        c: Cluster::with_config(cfg),
        n,
        cut: vec![false; n * n],
        next_value: 1,
        watches: Vec::new(),
        seen: Vec::new(),
        accepted: 0,
    };
    d.c.sim().set_max_events(opts.max_events.unwrap_or_else(|| schedule.event_budget()));
    let phase = Cell::new(Phase::Faults);
    let was_quiet = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(|| {
        d.fault_phase(schedule);
        phase.set(Phase::Final);
        d.heal_all();
        d.final_phase()
    }));
    QUIET.with(|q| q.set(was_quiet));
    let at_us = d.c.sim().now_us();
    match result {
        Ok(final_index) => {
            let sim = d.c.sim();
            Ok(Passed {
                virtual_ms: at_us / 1000,
                accepted: d.accepted,
                seen_committed: d.seen.len() as u64,
                events: sim.events(),
                final_index,
                trace: opts.keep_trace.then(|| sim.trace().to_string()),
                coverage: sim.coverage(),
            })
        }
        Err(payload) => {
            // The simulator's hint to replay with `RAFT_SEED` is for the lab scenarios; a
            // torture run replays from its seed and schedule.
            let hint = format!(" (replay with RAFT_SEED={})", opts.seed);
            let message = super::seeds::panic_message(payload.as_ref()).replacen(&hint, "", 1);
            let coverage = d.c.sim().coverage();
            let kind = match d.c.sim().broken() {
                Some(property) => property.name().to_string(),
                None => classify(&message),
            };
            Err(Failure { kind, message, at_us, phase: phase.get(), coverage })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_generates_the_same_schedule() {
        for seed in 0..50 {
            assert_eq!(Schedule::generate(seed), Schedule::generate(seed));
        }
        let distinct: std::collections::HashSet<Schedule> =
            (0..50).map(Schedule::generate).collect();
        assert_eq!(distinct.len(), 50, "seeds should give different schedules");
    }

    #[test]
    fn generated_schedules_are_valid_and_varied() {
        let mut sizes = std::collections::BTreeSet::new();
        let mut kinds = std::collections::HashSet::new();
        let mut families = std::collections::BTreeSet::new();
        let (mut lab, mut single_entry, mut no_pre_vote) = (0, 0, 0);
        for seed in 0..400 {
            let s = Schedule::generate(seed);
            s.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!((2_000..=6_000).contains(&s.end_ms));
            assert!(s.proposals() > 0);
            sizes.insert(s.nodes);
            families.insert(Family::of_seed(seed));
            lab += usize::from(s.swarm == Swarm::LAB);
            single_entry += usize::from(s.swarm.max_append_entries == 1);
            no_pre_vote += usize::from(!s.swarm.pre_vote);
            for step in &s.steps {
                kinds.insert(std::mem::discriminant(&step.action));
            }
        }
        assert_eq!(sizes, (3..=7).collect());
        assert_eq!(families.len(), Family::ALL.len(), "every family in 400 seeds");
        assert!((60..140).contains(&lab), "{lab} of 400 seeds on the lab profile");
        assert!(single_entry >= 40 && no_pre_vote >= 40, "{single_entry}, {no_pre_vote}");
        assert_eq!(kinds.len(), 13, "every kind of step should occur in 400 schedules");
    }

    /// The first seed at or after `from` whose schedule is of `family`.
    fn seed_of(family: Family, from: u64) -> u64 {
        (from..).find(|&s| Family::of_seed(s) == family).unwrap()
    }

    #[test]
    fn each_family_lays_out_its_pattern() {
        let s = Schedule::generate(seed_of(Family::Storm, 0));
        assert!(s.swarm.election_tick <= 20, "storms have tight timeouts");
        assert!(s.steps.iter().any(|st| st.action == Action::Isolate(Target::All)));
        assert!(s.steps.iter().any(|st| matches!(
            st.action,
            Action::LongReordering(true) | Action::SlowReplies(true)
        )));

        let s = Schedule::generate(seed_of(Family::Tails, 0));
        assert!(s.swarm.max_append_entries <= 4, "tails are repaired in small batches");
        let cut = s
            .steps
            .iter()
            .position(
                |st| matches!(&st.action, Action::Partition(side) if side[0] == Target::Leader),
            )
            .unwrap();
        let alone: u64 = s.steps[cut..]
            .iter()
            .take_while(|st| st.at_ms < s.steps[cut].at_ms + s.swarm.election_timeout_ms())
            .map(|st| if let Action::Propose(k) = st.action { k as u64 } else { 0 })
            .sum();
        assert!(alone >= 20, "a cut-off leader is offered {alone} commands");

        let s = Schedule::generate(seed_of(Family::Figure8, 0));
        let cut = s.steps.iter().position(|st| matches!(&st.action, Action::Partition(side) if side.len() == 2 && side[0] == Target::Leader)).unwrap();
        assert!(matches!(s.steps[cut + 1].action, Action::Propose(_)));
        assert!(s.steps[cut + 2..].iter().take(2).any(|st| matches!(
            st.action,
            Action::Crash(Target::Leader) | Action::PowerFail(Target::Leader, _)
        )));

        let s = Schedule::generate(seed_of(Family::ElectionCrash, 0));
        assert!(matches!(
            s.steps.iter().find(|st| !matches!(st.action, Action::Propose(_))).unwrap().action,
            Action::Crash(Target::Leader) | Action::PowerFail(Target::Leader, _)
        ));

        let s = Schedule::generate(seed_of(Family::Snapshots, 0));
        assert!((2..=5).contains(&s.swarm.snapshot_every), "{}", s.swarm);
        let away = s.steps.iter().position(|st| !matches!(st.action, Action::Propose(_))).unwrap();
        assert!(matches!(
            s.steps[away].action,
            Action::Isolate(Target::Node(_))
                | Action::Crash(Target::Node(_))
                | Action::PowerFail(Target::Node(_), _)
        ));
        assert!(matches!(s.steps[away + 1].action, Action::Propose(k) if k >= 10));
    }

    #[test]
    fn snapshot_schedules_compact_and_install() {
        use crate::core::Decision;
        silence_run_panics();
        let mut all = Coverage::default();
        for k in 0..10 {
            let seed = seed_of(Family::Snapshots, k * 100);
            match run(&RunOptions::new(seed), &Schedule::generate(seed)) {
                Ok(p) => all.merge(&p.coverage),
                Err(f) => panic!("seed {seed}: {}", f.message),
            }
        }
        for d in [
            Decision::SnapshotTaken,
            Decision::SnapshotSendStarted,
            Decision::SnapshotChunkReceived,
            Decision::SnapshotInstalled,
            Decision::SnapshotToReplicate,
        ] {
            assert!(all.count(d) > 0, "{d} never taken in 10 snapshot schedules: {all:?}");
        }
    }

    #[test]
    fn every_family_passes_on_a_correct_core() {
        silence_run_panics();
        for family in Family::ALL {
            for k in 0..5 {
                let seed = seed_of(family, k * 1_000);
                if let Err(f) = run(&RunOptions::new(seed), &Schedule::generate(seed)) {
                    panic!("{family} seed {seed} failed: {}", f.message);
                }
            }
        }
    }

    #[test]
    fn a_run_reports_the_decisions_its_peers_took() {
        use crate::core::Decision;
        let s = Schedule::parse_compact("nodes=3 end=1500 900:propose:3 1000:propose:2").unwrap();
        let p = run(&RunOptions::new(1), &s).unwrap();
        for d in [
            Decision::ElectionWon,
            Decision::VoteGranted,
            Decision::AppendAccepted,
            Decision::CommitAdvanced,
            Decision::ProposalAccepted,
        ] {
            assert!(p.coverage.count(d) > 0, "{d} not taken: {:?}", p.coverage);
        }
        assert_eq!(p.coverage.count(Decision::ElectionWon), 1, "one election on a quiet network");
        assert_eq!(p.coverage.count(Decision::AppendTruncated), 0);
        // Over many seeds of the generated families, the rare decisions show up too.
        let mut all = Coverage::default();
        for seed in 0..300 {
            match run(&RunOptions::new(seed), &Schedule::generate(seed)) {
                Ok(p) => all.merge(&p.coverage),
                Err(f) => panic!("seed {seed}: {}", f.message),
            }
        }
        for d in [
            Decision::AppendTruncated,
            Decision::RejectionSkippedTerm,
            Decision::CommitWithheldOldTerm,
            Decision::PreVoteRefusedLease,
            Decision::VoteReplyDuplicate,
            Decision::BatchCutByCount,
            Decision::PipelineStalled,
        ] {
            assert!(all.count(d) > 0, "{d} never taken in 300 seeds");
        }
    }

    #[test]
    fn a_swarm_travels_with_its_schedule() {
        let seed = (0..).find(|&s| Schedule::generate(s).swarm != Swarm::LAB).unwrap();
        let s = Schedule::generate(seed);
        let compact = s.to_compact();
        assert!(compact.contains(" swarm=et"), "{compact}");
        assert_eq!(Schedule::parse_compact(&compact).unwrap(), s);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
        // Schedules written before swarms existed are lab schedules.
        let old = Schedule::parse_compact("nodes=3 end=500 100:propose:1").unwrap();
        assert_eq!(old.swarm, Swarm::LAB);
        let json = r#"{"nodes":3,"end_ms":500,"steps":[]}"#;
        assert_eq!(serde_json::from_str::<Schedule>(json).unwrap().swarm, Swarm::LAB);
        assert!(Schedule::parse_compact("nodes=3 swarm=et3,hb5 end=500")
            .unwrap_err()
            .contains("heartbeat"));
    }

    #[test]
    fn the_compact_encoding_round_trips() {
        for seed in 0..100 {
            let s = Schedule::generate(seed);
            assert_eq!(Schedule::parse_compact(&s.to_compact()).unwrap(), s);
        }
        let s = Schedule::parse_compact(
            "nodes=5 end=900 0:unreliable:on 5:partition:L3 7:cut:1>L 9:crash:* 9:restart:2 \
             10:dup:250 11:reorder:off 12:heal 800:propose:3",
        )
        .unwrap();
        assert_eq!(s.steps.len(), 9);
        assert_eq!(s.steps[1].action, Action::Partition(vec![Target::Leader, Target::Node(3)]));
        assert_eq!(s.steps[2].action, Action::Cut(Target::Node(1), Target::Leader));
    }

    #[test]
    fn bad_encodings_are_refused_with_a_reason() {
        let bad = [
            ("end=9 nodes=3", "nodes"),
            ("nodes=3 end=100 5:crash:7", "peer 7"),
            ("nodes=3 end=100 50:crash:1 20:restart:1", "time order"),
            ("nodes=3 end=100 200:heal", "after the end"),
            ("nodes=3 end=100 5:explode", "unknown step"),
            ("nodes=3 end=100 5:propose:0", "propose:K"),
            ("nodes=3 end=100 5:cut:1", "cut:A>B"),
            ("nodes=0 end=100", "1 to 10"),
        ];
        for (text, reason) in bad {
            let err = Schedule::parse_compact(text).unwrap_err();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_run_is_a_function_of_seed_and_schedule() {
        let s = Schedule::generate(3);
        let a = run(&RunOptions::new(3), &s).unwrap();
        let b = run(&RunOptions::new(3), &s).unwrap();
        assert_eq!(a, b);
        assert!(a.final_index > 0 && a.accepted > 0);
        assert!(a.virtual_ms >= s.end_ms);
    }

    #[test]
    fn a_kept_trace_shows_the_whole_run_without_changing_it() {
        let s = Schedule::generate(8);
        let plain = run(&RunOptions::new(8), &s).unwrap();
        let opts = RunOptions { trace_len: 1 << 20, keep_trace: true, ..RunOptions::new(8) };
        let traced = run(&opts, &s).unwrap();
        let trace = traced.trace.clone().unwrap();
        assert!(!trace.contains("earlier events"), "the whole run is kept");
        assert!(trace.contains("-- step: ") && trace.contains("heal everything"));
        assert_eq!(Passed { trace: None, ..traced }, plain);
    }

    #[test]
    fn a_run_over_its_budget_of_events_fails_as_a_runaway() {
        silence_run_panics();
        let s = Schedule::generate(6);
        let passed = run(&RunOptions::new(6), &s).unwrap();
        let opts = RunOptions { max_events: Some(passed.events / 2), ..RunOptions::new(6) };
        let f = run(&opts, &s).unwrap_err();
        assert_eq!(f.kind, "runaway");
        assert!(f.headline().contains("over the budget"), "{}", f.message);
        let opts = RunOptions { max_events: Some(passed.events), ..RunOptions::new(6) };
        assert_eq!(run(&opts, &s).unwrap(), passed, "a budget that suffices changes nothing");
    }

    #[test]
    fn clients_see_commands_committed_and_the_final_checks_pass() {
        let s = Schedule::parse_compact("nodes=3 end=1500 900:propose:3 1000:propose:2").unwrap();
        let p = run(&RunOptions::new(1), &s).unwrap();
        assert_eq!(p.accepted, 5);
        assert_eq!(p.seen_committed, 5);
        assert_eq!(p.final_index, 6);
    }

    #[test]
    fn a_correct_core_survives_many_seeds() {
        silence_run_panics();
        // More for mutation testing (scripts/mutants core).
        let seeds =
            std::env::var("RAFT_TORTURE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
        for seed in 0..seeds {
            if let Err(f) = run(&RunOptions::new(seed), &Schedule::generate(seed)) {
                panic!("seed {seed} failed: {}", f.message);
            }
        }
    }

    #[test]
    fn failures_other_than_invariants_are_classified_by_their_report() {
        let cases = [
            (
                "final check: lost a committed command: a client saw",
                "final: lost a committed command",
            ),
            ("expected one leader, got none", "final: no leader"),
            ("runaway: 100 events", "runaway"),
            ("index out of bounds", "panic: index out of bounds"),
        ];
        for (msg, kind) in cases {
            assert_eq!(classify(msg), kind, "{msg}");
        }
    }

    #[cfg(feature = "bugs")]
    #[test]
    fn a_violation_is_classified_by_its_property_not_its_text() {
        silence_run_panics();
        let found = (0..300).find_map(|seed| {
            let opts =
                RunOptions { bug: Some(Bug::ReadIndexWithoutQuorum), ..RunOptions::new(seed) };
            run(&opts, &Schedule::generate(seed)).err()
        });
        let failure = found.expect("read-index-without-quorum is found within 300 seeds");
        assert_eq!(failure.kind, "read safety");
        assert!(
            failure.message.starts_with("safety violation: read safety: "),
            "{}",
            failure.message
        );
    }

    #[test]
    fn a_power_failure_step_parses_replays_and_is_recovered_from() {
        let text = "nodes=3 end=800 300:propose:2 400:power:L:torn-prefix 600:restart:*";
        let s = Schedule::parse_compact(text).unwrap();
        assert_eq!(s.steps[1].action, Action::PowerFail(Target::Leader, CrashFamily::TornPrefix));
        assert_eq!(s.to_compact(), text);
        assert!(Schedule::parse_compact("nodes=3 end=800 400:power:L:melted").is_err());
        for seed in 0..20 {
            run(&RunOptions::new(seed), &s).unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
        }
    }

    #[test]
    fn a_one_peer_cluster_commits_through_its_own_crash() {
        let s = Schedule::parse_compact("nodes=1 end=1000 700:propose:2 800:crash:0").unwrap();
        let p = run(&RunOptions::new(9), &s).unwrap();
        assert_eq!(p.seen_committed, 2);
        assert_eq!(p.final_index, 3);
    }

    #[cfg(feature = "bugs")]
    #[test]
    fn every_bug_the_simulator_runs_is_found_within_a_few_hundred_seeds() {
        silence_run_panics();
        for bug in Bug::ALL.into_iter().filter(|b| !b.in_file_storage()) {
            let found = (0..300).find(|&seed| {
                let opts = RunOptions { bug: Some(bug), trace_len: 0, ..RunOptions::new(seed) };
                run(&opts, &Schedule::generate(seed)).is_err_and(|f| !f.is_runaway())
            });
            assert!(found.is_some(), "{bug} survived 300 seeds");
        }
    }

    #[cfg(feature = "bugs")]
    #[test]
    fn a_bug_fails_the_run_with_its_kind_phase_and_report() {
        silence_run_panics();
        let s = Schedule::parse_compact("nodes=3 end=1000 500:propose:1").unwrap();
        let opts = RunOptions { bug: Some(Bug::ForgetVote), ..RunOptions::new(4) };
        let f = run(&opts, &s).unwrap_err();
        assert_eq!(f.kind, "durability before sending");
        assert_eq!(f.phase, Phase::Faults);
        assert!(f.message.contains("seed 4") && f.message.contains("peers:"), "{}", f.message);
        assert_eq!(run(&opts, &s).unwrap_err(), f, "a failure replays exactly");
    }
}
