//! The linearizability search for one partition: Wing and Gong's algorithm with
//! Lowe's refinements.
//!
//! The calls and returns of the operations form a doubly linked list in real-time
//! order. The search repeatedly picks a call that precedes the first remaining return
//! (every such operation was pending at that point), applies it to the model, lifts
//! it out of the list and starts again from the head; when it reaches a return it has
//! not linearized, it backtracks. A cache of visited configurations (set of linearized
//! operations, model state) cuts off repeated work.
//!
//! Beyond the textbook algorithm (each step keeps the search exact):
//! - Operations whose outcome is unknown (`info`, or never completed) have no return
//!   entry: they may be linearized at any point after their call, or never. The search
//!   succeeds once every operation with a known outcome is linearized.
//! - Candidates are tried in order of return (earliest deadline first), optional ones
//!   last.
//! - Reads commit: a required candidate that is legal and never changes the state is
//!   linearized at once, without branching (doing it later is never better).
//! - Dead ends are found early: a pending operation refused in the current state, that
//!   no order of the operations that may still precede it can make legal (the model's
//!   [`Model::may_enable`]), ends the configuration.
//! - The cache prunes by subsumption: a configuration is skipped when a visited one has
//!   the same linearized required operations, the same state, and a subset of its
//!   linearized optional operations (whatever the larger one can still do, the smaller
//!   one can too). This merges the many orders in which optional operations can happen.
//! - The set hash is incremental (Zobrist), so each step costs O(1) hashing; bit sets
//!   are compared in full only on a hash match.
//! - Model states are interned to integers and transitions memoised per (state,
//!   operation), so the model's `step` runs once per distinct pair.
//! - The search is resumable, so that partitions can share threads in time slices.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use crate::fasthash::hash_of;
use crate::model::Model;

const UNKNOWN: u32 = u32::MAX;
const ILLEGAL: u32 = u32::MAX - 1;
/// The largest memo table, in entries (4 bytes each). Models with few states (a
/// register) fit whole; models with very many (strings built by appends) memoise their
/// first states only, where the revisits are.
const MEMO_BUDGET: usize = 1 << 20;

/// How a partition's search ended.
pub(crate) enum SearchOutcome<S> {
    /// A linearization exists.
    Linearizable,
    /// None exists; the deepest dead end reached.
    Illegal(Failure<S>),
    /// Stopped by the deadline or by cancellation.
    Aborted,
    /// Stopped because the searches together held more memory than their budget; the bytes
    /// this one held.
    OutOfMemory(usize),
}

/// The deepest dead end of a failed search: the configuration with the most
/// required operations linearized from which nothing could continue.
pub(crate) struct Failure<S> {
    /// The linearization up to the dead end: (operation, state after it).
    pub prefix: Vec<(usize, S)>,
    /// The state at the dead end.
    pub state: S,
    /// The first operation that had to be linearized next (its return is the next
    /// entry) and that the model refuses in `state`.
    pub blocked: usize,
    /// The other operations that were pending at that point.
    pub pending: Vec<usize>,
}

/// Model states interned to integers, with memoised transitions.
struct States<'m, M: Model> {
    model: &'m M,
    list: Vec<M::State>,
    hashes: Vec<u64>,
    slots: Vec<u32>,
    shift: u32,
    /// Memoised transitions, a row of `n` per state that has one.
    memo: Vec<u32>,
    /// Where each state's row starts in `memo`, or [`UNKNOWN`] if it has none yet.
    row: Vec<u32>,
    /// How many transitions from each state were computed without a row.
    misses: Vec<u8>,
    n: usize,
}

impl<'m, M: Model> States<'m, M> {
    fn new(model: &'m M, n: usize) -> Self {
        let cap_log = 6;
        let mut s = States {
            model,
            list: Vec::new(),
            hashes: Vec::new(),
            slots: vec![0; 1 << cap_log],
            shift: 64 - cap_log,
            memo: Vec::new(),
            row: Vec::new(),
            misses: Vec::new(),
            n,
        };
        s.intern(model.init());
        s
    }

    #[inline]
    fn slot_of(&self, h: u64) -> usize {
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Finds a state: its id, or the hash and the free slot where it would go.
    fn lookup(&self, st: &M::State) -> Result<u32, (u64, usize)> {
        let h = hash_of(st);
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(h);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Err((h, i));
            }
            let id = slot - 1;
            if self.hashes[id as usize] == h && self.list[id as usize] == *st {
                return Ok(id);
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, st: M::State, (h, slot): (u64, usize)) -> u32 {
        let id = self.list.len() as u32;
        self.list.push(st);
        self.hashes.push(h);
        self.slots[slot] = id + 1;
        if 2 * self.list.len() > self.slots.len() {
            let cap = self.slots.len() * 2;
            self.slots = vec![0; cap];
            self.shift -= 1;
            for (k, &h) in self.hashes.iter().enumerate() {
                let mut i = self.slot_of(h);
                while self.slots[i] != 0 {
                    i = (i + 1) & (cap - 1);
                }
                self.slots[i] = k as u32 + 1;
            }
        }
        self.row.push(UNKNOWN);
        self.misses.push(0);
        id
    }

    fn bytes(&self) -> usize {
        self.list.capacity() * std::mem::size_of::<M::State>()
            + self.hashes.capacity() * 8
            + self.slots.capacity() * 4
            + (self.memo.capacity() + self.row.capacity()) * 4
            + self.misses.capacity()
    }

    fn intern(&mut self, st: M::State) -> u32 {
        match self.lookup(&st) {
            Ok(id) => id,
            Err(at) => self.insert(st, at),
        }
    }

    /// The state after operation `o` in state `s`, or [`ILLEGAL`]. A state gets its
    /// row of memoised transitions once it is left a second time (most states of a
    /// string model are left once; a register's few states are left constantly).
    #[inline]
    fn step(&mut self, ops: &[M::Op], s: u32, o: usize) -> u32 {
        let row = self.row[s as usize];
        if row != UNKNOWN {
            let r = self.memo[row as usize + o];
            if r != UNKNOWN {
                return r;
            }
        }
        let state = &self.list[s as usize];
        let r = match self.model.step(state, &ops[o]) {
            None => ILLEGAL,
            Some(Cow::Borrowed(b)) if std::ptr::eq(b, state) => s,
            Some(Cow::Borrowed(b)) => match self.lookup(b) {
                Ok(id) => id,
                Err(at) => {
                    let owned = b.clone();
                    self.insert(owned, at)
                }
            },
            Some(Cow::Owned(owned)) => self.intern(owned),
        };
        if row != UNKNOWN {
            self.memo[row as usize + o] = r;
        } else {
            let misses = &mut self.misses[s as usize];
            *misses = misses.saturating_add(1);
            if *misses >= 2 && self.memo.len() + self.n <= MEMO_BUDGET {
                let row = self.memo.len();
                self.memo.resize(row + self.n, UNKNOWN);
                self.memo[row + o] = r;
                self.row[s as usize] = row as u32;
            }
        }
        r
    }
}

/// Visited configurations, with subsumption on optional operations, each stored in
/// space that grows with the operations open around it, not with the partition's length.
///
/// A configuration's linearized set is written relative to its *frontier* `f`, the call
/// position (the rank of an operation's call among all calls) of the earliest required
/// operation not yet linearized: every required operation called before `f` is linearized,
/// so the set is `f` and its *exceptions*, the positions whose membership differs from "below
/// the frontier": optional operations below `f` left out, and operations at or above `f`
/// taken in. Those above are few: an operation is only ever linearized while it is pending
/// before the earliest remaining return, which is at most the return of the operation at `f`,
/// so they lie between `f` and the calls before that return (the concurrency there), and are
/// kept as a list. Those below are optional operations still pending, which an exact search
/// has to remember; they are kept as a bit set over the optional operations called before `f`
/// (one bit each, so a history with many unknown outcomes costs at most what a bit set over
/// its optional operations costs, and one without costs nothing).
///
/// The representation is exact (two configurations with the same frontier and exceptions
/// have the same set), so the pruning is what it was with a bit set per configuration.
struct Cache {
    slots: Vec<u32>,
    shift: u32,
    keys: Vec<u64>,
    states: Vec<u32>,
    /// Where each entry's frontier and exceptions start in `arena`; one more at the end.
    starts: Vec<usize>,
    /// Per entry: its frontier, how many exceptions lie above it, those in ascending order,
    /// then the words of its left-out bit set (each as two halves).
    arena: Vec<u32>,
}

impl Cache {
    fn new() -> Self {
        let cap_log = 10;
        Cache {
            slots: vec![0; 1 << cap_log],
            shift: 64 - cap_log,
            keys: Vec::new(),
            states: Vec::new(),
            starts: vec![0],
            arena: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    /// The bytes the cache holds.
    fn bytes(&self) -> usize {
        self.slots.capacity() * 4
            + self.keys.capacity() * 8
            + self.states.capacity() * 4
            + self.starts.capacity() * 8
            + self.arena.capacity() * 4
    }

    #[inline]
    fn slot_of(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Records the configuration unless a visited one subsumes it: the same state, the same
    /// required operations linearized, and a subset of its optional ones. The configuration is
    /// its `frontier`, the operations at or above it taken in (`above`, ascending), and the
    /// optional operations below it left out (`left_out`, a bit per optional operation called
    /// before the frontier); `required` tells, by call position, which operations are
    /// required. Returns whether it is new.
    #[inline]
    fn visit(&mut self, key: u64, state: u32, config: Config<'_>, required: &[u64]) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(key);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            let e = (slot - 1) as usize;
            if self.keys[e] == key && self.states[e] == state {
                let stored = &self.arena[self.starts[e]..self.starts[e + 1]];
                if stored[0] == config.frontier {
                    let n_above = stored[1] as usize;
                    let above = &stored[2..2 + n_above];
                    let words = stored[2 + n_above..].chunks_exact(2);
                    let left_out = words.map(|w| u64::from(w[0]) | u64::from(w[1]) << 32);
                    if subsumes(above, left_out, config, required) {
                        return false;
                    }
                }
            }
            i = (i + 1) & mask;
        }
        let e = self.keys.len();
        self.keys.push(key);
        self.states.push(state);
        self.arena.push(config.frontier);
        self.arena.push(config.above.len() as u32);
        self.arena.extend_from_slice(config.above);
        for &w in config.left_out {
            self.arena.extend([w as u32, (w >> 32) as u32]);
        }
        self.starts.push(self.arena.len());
        self.slots[i] = e as u32 + 1;
        if 2 * self.keys.len() > self.slots.len() {
            self.grow();
        }
        true
    }

    fn grow(&mut self) {
        let cap = self.slots.len() * 2;
        self.slots = vec![0; cap];
        self.shift -= 1;
        let mask = cap - 1;
        for e in 0..self.keys.len() {
            let mut i = self.slot_of(self.keys[e]);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = e as u32 + 1;
        }
    }
}

/// A configuration's linearized set as the [`Cache`] keeps it.
#[derive(Clone, Copy)]
struct Config<'a> {
    frontier: u32,
    /// The operations at or above the frontier that are linearized, by call position,
    /// ascending.
    above: &'a [u32],
    /// A bit per optional operation called before the frontier (in call order): set when it
    /// is left out.
    left_out: &'a [u64],
}

/// Whether a stored configuration (`above`, `left_out`) subsumes the current one `c`, both
/// with the same frontier: below it the stored one must leave out at least the optional
/// operations the current one leaves out; at or above, required operations must agree, and
/// the stored one may take in only optional ones the current one takes in too.
fn subsumes(
    above: &[u32],
    left_out: impl Iterator<Item = u64>,
    c: Config<'_>,
    required: &[u64],
) -> bool {
    if left_out.zip(c.left_out).any(|(s, &c)| c & !s != 0) {
        return false;
    }
    let is_required = |p: u32| required[p as usize / 64] >> (p % 64) & 1 == 1;
    let (mut i, mut j) = (0, 0);
    loop {
        // positions are below u32::MAX, which stands for "past the end"
        let p = above.get(i).copied().unwrap_or(u32::MAX);
        let q = c.above.get(j).copied().unwrap_or(u32::MAX);
        if p == q {
            if p == u32::MAX {
                return true;
            }
            i += 1;
            j += 1;
        } else if p < q {
            // only the stored configuration takes in `p`
            return false;
        } else {
            // only the current one takes in `q`: fine for an optional operation
            if is_required(q) {
                return false;
            }
            j += 1;
        }
    }
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn state_mix(s: u32) -> u64 {
    (s as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(32)
}

/// The candidates of one configuration on the search path: `cands[start..end]`, the
/// next to try at `pos`.
struct Level {
    start: usize,
    end: usize,
    pos: usize,
    /// The operation to blame if this configuration is a dead end.
    blocked: u32,
}

/// A dead end in ids: the prefix as (operation, state after it).
struct DeadEnd {
    prefix: Vec<(u32, u32)>,
    state: u32,
    blocked: usize,
    pending: Vec<usize>,
}

/// A linearized operation on the search path, with the state before it.
struct Frame {
    op: u32,
    state: u32,
}

/// Where to stop early.
pub(crate) struct Limits<'a> {
    pub deadline: Option<Instant>,
    pub cancel: &'a AtomicBool,
    pub memory: Option<&'a MemoryBudget>,
}

/// The memory that the searches of one check may hold together (their configurations and
/// memoised transitions), and what they hold now.
pub(crate) struct MemoryBudget {
    pub limit: usize,
    pub held: AtomicUsize,
}

impl MemoryBudget {
    /// Updates what `search` holds; whether the searches are still within the budget.
    fn account<M: Model>(&self, search: &mut Search<'_, M>) -> bool {
        let now = search.bytes();
        let before = std::mem::replace(&mut search.reported, now);
        let held = if now >= before {
            self.held.fetch_add(now - before, Ordering::Relaxed) + (now - before)
        } else {
            self.held.fetch_sub(before - now, Ordering::Relaxed) - (before - now)
        };
        held <= self.limit
    }

    /// Gives back what a finished search held.
    pub(crate) fn release<M: Model>(&self, search: &Search<'_, M>) {
        self.held.fetch_sub(search.reported, Ordering::Relaxed);
    }
}

/// The search for a linearization of one partition's operations, resumable.
pub(crate) struct Search<'a, M: Model> {
    model: &'a M,
    ops: Vec<M::Op>,
    states: States<'a, M>,
    cache: Cache,
    // The list: entry 0 is the head sentinel; entries 1.. are calls and returns sorted
    // by time, calls before returns at equal times (equal times are concurrent).
    next: Vec<u32>,
    prev: Vec<u32>,
    entry_op: Vec<u32>,
    entry_ret: Vec<bool>,
    call_entry: Vec<u32>,
    ret_entry: Vec<u32>,
    /// Whether each operation is optional (its outcome is unknown).
    optional: Vec<bool>,
    /// The operations in order of their calls.
    by_call: Vec<u32>,
    /// For each required operation, how many calls precede its return: the operations
    /// `by_call[..before_ret[o]]` are all that can be linearized before `o`.
    before_ret: Vec<u32>,
    /// Zobrist keys of the required operations (0 for optional ones).
    zob: Vec<u64>,
    /// Each operation's call position: its rank in `by_call`.
    position: Vec<u32>,
    /// The required operations, as a bit set over call positions.
    required: Vec<u64>,
    /// The call positions of the optional operations, ascending.
    optional_positions: Vec<u32>,
    n_req: usize,
    // The configuration.
    /// The linearized operations, as a bit set over call positions.
    lin: Vec<u64>,
    /// The call position of the earliest required operation not linearized (see [`Cache`]).
    frontier: u32,
    /// Scratch: the current configuration's operations taken in above the frontier, and its
    /// optional operations left out below it, for the cache (see [`Config`]).
    above: Vec<u32>,
    left_out: Vec<u64>,
    hash: u64,
    state: u32,
    req_left: usize,
    stack: Vec<Frame>,
    levels: Vec<Level>,
    cands: Vec<u32>,
    /// The state after each candidate, when already computed (else [`UNKNOWN`]).
    after: Vec<u32>,
    best_depth: isize,
    failure: Option<DeadEnd>,
    done: bool,
    /// The bytes last counted against the [`MemoryBudget`].
    reported: usize,
}

impl<'a, M: Model> Search<'a, M> {
    /// Prepares the search. `calls[i]` is the real time of operation `i`'s invocation
    /// and `rets[i]` that of its return, `None` when its outcome is unknown (it may take
    /// effect at any point after its call, or never).
    pub(crate) fn new(model: &'a M, ops: Vec<M::Op>, calls: &[u64], rets: &[Option<u64>]) -> Self {
        let n = ops.len();
        let optional: Vec<bool> = rets.iter().map(Option::is_none).collect();
        let n_req = optional.iter().filter(|o| !**o).count();
        let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(n + n_req);
        for i in 0..n {
            order.push((calls[i], false, i as u32));
            if let Some(r) = rets[i] {
                order.push((r, true, i as u32));
            }
        }
        order.sort_unstable();
        let m = order.len();
        let next: Vec<u32> = (1..=m as u32).chain([0]).collect();
        let prev: Vec<u32> = [m as u32].into_iter().chain(0..m as u32).collect();
        let mut entry_op = vec![0u32; m + 1];
        let mut entry_ret = vec![false; m + 1];
        let mut call_entry = vec![0u32; n];
        let mut ret_entry = vec![0u32; n];
        let mut by_call = Vec::with_capacity(n);
        let mut before_ret = vec![0u32; n];
        for (k, &(_, is_ret, op)) in order.iter().enumerate() {
            let e = k + 1;
            entry_op[e] = op;
            entry_ret[e] = is_ret;
            if is_ret {
                ret_entry[op as usize] = e as u32;
                before_ret[op as usize] = by_call.len() as u32;
            } else {
                call_entry[op as usize] = e as u32;
                by_call.push(op);
            }
        }
        let words = n.div_ceil(64).max(1);
        let mut position = vec![0u32; n];
        let mut required = vec![0u64; words];
        let mut optional_positions = Vec::new();
        for (k, &o) in by_call.iter().enumerate() {
            position[o as usize] = k as u32;
            if optional[o as usize] {
                optional_positions.push(k as u32);
            } else {
                required[k / 64] |= 1 << (k % 64);
            }
        }
        let mut seed = 0x5EED_u64;
        let mut zob = vec![0u64; n];
        for i in 0..n {
            if !optional[i] {
                zob[i] = splitmix(&mut seed);
            }
        }
        let mut search = Search {
            model,
            ops,
            states: States::new(model, n),
            cache: Cache::new(),
            next,
            prev,
            entry_op,
            entry_ret,
            call_entry,
            ret_entry,
            optional,
            by_call,
            before_ret,
            zob,
            position,
            required,
            optional_positions,
            n_req,
            lin: vec![0u64; words],
            frontier: 0,
            above: Vec::new(),
            left_out: Vec::new(),
            hash: 0,
            state: 0,
            req_left: n_req,
            stack: Vec::with_capacity(n),
            levels: Vec::with_capacity(n + 1),
            cands: Vec::new(),
            after: Vec::new(),
            best_depth: -1,
            failure: None,
            done: n_req == 0,
            reported: 0,
        };
        if !search.done {
            search.frontier = search.next_frontier(0);
            search.visit(state_mix(0), 0);
            search.push_level();
        }
        search
    }

    /// The `i`-th operation searched.
    pub(crate) fn op(&self, i: usize) -> &M::Op {
        &self.ops[i]
    }

    /// Configurations visited so far.
    pub(crate) fn configurations(&self) -> usize {
        self.cache.len()
    }

    /// Runs for at most `budget` steps: the outcome, or `None` to be resumed later.
    pub(crate) fn run(
        &mut self,
        budget: u64,
        limits: &Limits<'_>,
    ) -> Option<SearchOutcome<M::State>> {
        if self.done {
            return Some(SearchOutcome::Linearizable);
        }
        for step in 0..budget {
            if step & 0xFFF == 0
                && (limits.cancel.load(Ordering::Relaxed)
                    || limits.deadline.is_some_and(|d| Instant::now() >= d))
            {
                return Some(SearchOutcome::Aborted);
            }
            if step & 0xFFFF == 0xFFFF && limits.memory.is_some_and(|m| !m.account(self)) {
                self.done = true;
                return Some(SearchOutcome::OutOfMemory(self.reported));
            }
            let level = self.levels.last_mut().expect("the search path has a level");
            if level.pos < level.end {
                let o = self.cands[level.pos] as usize;
                let after = self.after[level.pos];
                level.pos += 1;
                if self.try_linearize(o, after) {
                    self.done = true;
                    return Some(SearchOutcome::Linearizable);
                }
            } else if !self.backtrack() {
                self.done = true;
                let dead_end = self.failure.take().expect("a failed search records a dead end");
                return Some(SearchOutcome::Illegal(self.materialise(dead_end)));
            }
        }
        None
    }

    /// Linearizes `o` if the model allows it and the configuration is new; returns
    /// whether every required operation is now linearized.
    fn try_linearize(&mut self, o: usize, after: u32) -> bool {
        let ns = match after {
            UNKNOWN => self.states.step(&self.ops, self.state, o),
            known => known,
        };
        if ns == ILLEGAL {
            return false;
        }
        let p = self.position[o];
        let (w, b) = (p as usize / 64, 1u64 << (p % 64));
        self.lin[w] |= b;
        let frontier = self.frontier;
        if p == frontier {
            self.frontier = self.next_frontier(p + 1);
        }
        let h = self.hash ^ self.zob[o];
        if !self.visit(h ^ state_mix(ns), ns) {
            self.lin[w] &= !b;
            self.frontier = frontier;
            return false;
        }
        self.stack.push(Frame { op: o as u32, state: self.state });
        self.hash = h;
        self.state = ns;
        let (next, prev) = (&mut self.next, &mut self.prev);
        let c = self.call_entry[o] as usize;
        next[prev[c] as usize] = next[c];
        prev[next[c] as usize] = prev[c];
        if !self.optional[o] {
            let r = self.ret_entry[o] as usize;
            next[prev[r] as usize] = next[r];
            prev[next[r] as usize] = prev[r];
            self.req_left -= 1;
            if self.req_left == 0 {
                return true;
            }
        }
        self.push_level();
        false
    }

    /// Leaves a dead end: records it if it is the deepest so far, and undoes the last
    /// linearization. Returns false when there is nothing left to undo.
    fn backtrack(&mut self) -> bool {
        let level = self.levels.pop().expect("the search path has a level");
        let depth = (self.n_req - self.req_left) as isize;
        if depth > self.best_depth {
            self.best_depth = depth;
            let blocked = level.blocked as usize;
            let pending = self.cands[level.start..level.end]
                .iter()
                .map(|&o| o as usize)
                .filter(|&o| o != blocked)
                .collect();
            self.failure = Some(self.record_failure(blocked, pending));
        }
        self.cands.truncate(level.start);
        self.after.truncate(level.start);
        let Some(f) = self.stack.pop() else {
            return false;
        };
        let o = f.op as usize;
        let (next, prev) = (&mut self.next, &mut self.prev);
        let c = self.call_entry[o] as usize;
        if !self.optional[o] {
            let r = self.ret_entry[o] as usize;
            next[prev[r] as usize] = r as u32;
            prev[next[r] as usize] = r as u32;
            self.req_left += 1;
        }
        next[prev[c] as usize] = c as u32;
        prev[next[c] as usize] = c as u32;
        let p = self.position[o];
        self.lin[p as usize / 64] &= !(1u64 << (p % 64));
        if !self.optional[o] {
            self.frontier = self.frontier.min(p);
        }
        self.hash ^= self.zob[o];
        self.state = f.state;
        true
    }

    /// The call position of the first required operation at or after `from` that is not
    /// linearized (the number of calls if there is none).
    fn next_frontier(&self, from: u32) -> u32 {
        let n = self.by_call.len();
        let mut k = from as usize;
        while k < n {
            let (w, bit) = (k / 64, k % 64);
            let open = self.required[w] & !self.lin[w] & (!0u64 << bit);
            if open != 0 {
                return (w * 64 + open.trailing_zeros() as usize).min(n) as u32;
            }
            k = (w + 1) * 64;
        }
        n as u32
    }

    /// Visits the current linearized set with `state` under `key` (see [`Cache`]): whether
    /// it is new.
    fn visit(&mut self, key: u64, state: u32) -> bool {
        let f = self.frontier as usize;
        let lin = &self.lin;
        let is_lin = |p: usize| lin[p / 64] >> (p % 64) & 1 == 1;
        // optional operations below the frontier, left out
        let below = self.optional_positions.partition_point(|&p| (p as usize) < f);
        self.left_out.clear();
        self.left_out.resize(below.div_ceil(64), 0);
        for (r, &p) in self.optional_positions[..below].iter().enumerate() {
            if !is_lin(p as usize) {
                self.left_out[r / 64] |= 1 << (r % 64);
            }
        }
        // operations at or above it, taken in: all called before the frontier's return
        self.above.clear();
        if f < self.by_call.len() {
            let end = self.before_ret[self.by_call[f] as usize] as usize;
            let mut k = f;
            while k < end {
                let (w, bit) = (k / 64, k % 64);
                let mut taken = self.lin[w] & (!0u64 << bit);
                while taken != 0 {
                    let p = w * 64 + taken.trailing_zeros() as usize;
                    if p >= end {
                        break;
                    }
                    self.above.push(p as u32);
                    taken &= taken - 1;
                }
                k = (w + 1) * 64;
            }
        }
        let config =
            Config { frontier: self.frontier, above: &self.above, left_out: &self.left_out };
        #[cfg(test)]
        assert_eq!(
            decode(config, self.by_call.len(), &self.optional_positions),
            self.lin,
            "the frontier and exceptions stand for the linearized set"
        );
        self.cache.visit(key, state, config, &self.required)
    }

    /// The bytes the search holds that grow as it runs: its configurations and its states
    /// with their memoised transitions (a state's own heap data not counted).
    fn bytes(&self) -> usize {
        self.cache.bytes() + self.states.bytes() + self.stack.capacity() * 8
    }

    /// Enters a new configuration: its candidates are the calls before the first
    /// remaining return (those operations were all pending together). Required ones
    /// come first, by return (earliest deadline first: the operation whose return is
    /// first must be linearized before anything after it), then optional ones.
    fn push_level(&mut self) {
        let start = self.cands.len();
        let mut e = self.next[0] as usize;
        while !self.entry_ret[e] {
            let o = self.entry_op[e];
            if !self.optional[o as usize] {
                self.cands.push(o);
            }
            e = self.next[e] as usize;
        }
        let ret_entry = &self.ret_entry;
        self.cands[start..].sort_unstable_by_key(|&o| ret_entry[o as usize]);
        let mut e = self.next[0] as usize;
        while !self.entry_ret[e] {
            let o = self.entry_op[e];
            if self.optional[o as usize] {
                self.cands.push(o);
            }
            e = self.next[e] as usize;
        }
        self.after.resize(self.cands.len(), UNKNOWN);
        let mut level =
            Level { start, end: self.cands.len(), pos: start, blocked: self.cands[start] };
        self.narrow(&mut level);
        self.levels.push(level);
    }

    /// Narrows the candidates of a new configuration, soundly:
    /// - every required candidate must still take effect before its return, after
    ///   some of the operations that may precede it: the other candidates, and the
    ///   operations called before its return. If one is refused here and the model
    ///   says no order of those can make it legal, the configuration is a dead end;
    /// - if a required candidate is legal here and never changes the state (a read, see
    ///   [`Model::read_only`]), linearizing it now is never worse than later: moving it
    ///   earlier changes no state and loosens no real-time constraint. It becomes the
    ///   only candidate, which collapses the orders of concurrent reads into one.
    fn narrow(&mut self, level: &mut Level) {
        let (start, end) = (level.start, level.end);
        let (ops, state) = (&self.ops, self.state);
        let urgent = self.cands[start] as usize;
        // the first candidate has the first return: the calls before it are the window
        let called = self.before_ret[urgent] as usize;
        let mut read = None;
        for k in start..end {
            let g = self.cands[k] as usize;
            if self.optional[g] {
                continue;
            }
            let after = self.states.step(ops, state, g);
            self.after[k] = after;
            if after != ILLEGAL {
                if read.is_none() && self.model.read_only(&ops[g]) {
                    read = Some(k);
                }
                continue;
            }
            let others = self.cands[start..end].iter().filter(|&&o| o as usize != g);
            let later = &self.by_call[called..self.before_ret[g] as usize];
            let window = others.chain(later).map(|&o| &ops[o as usize]);
            let current = &self.states.list[state as usize];
            if !self.model.may_enable(current, &ops[g], window) {
                level.pos = end;
                level.blocked = g as u32;
                return;
            }
        }
        if let Some(k) = read {
            // keep the first candidate in place: it is the one blamed at a dead end
            let slot = if k == start { start } else { start + 1 };
            self.cands.swap(slot, k);
            self.after.swap(slot, k);
            level.pos = slot;
            level.end = slot + 1;
        }
    }

    /// The dead end, in ids (states are materialised once the search has failed).
    fn record_failure(&self, blocked: usize, pending: Vec<usize>) -> DeadEnd {
        let prefix = self
            .stack
            .iter()
            .enumerate()
            .map(|(k, f)| (f.op, self.stack.get(k + 1).map_or(self.state, |g| g.state)))
            .collect();
        DeadEnd { prefix, state: self.state, blocked, pending }
    }

    fn materialise(&self, d: DeadEnd) -> Failure<M::State> {
        let list = &self.states.list;
        Failure {
            prefix: d
                .prefix
                .iter()
                .map(|&(op, st)| (op as usize, list[st as usize].clone()))
                .collect(),
            state: list[d.state as usize].clone(),
            blocked: d.blocked,
            pending: d.pending,
        }
    }
}

/// The linearized set, as a bit set over call positions, that a configuration stands for
/// (the reference the tests hold the encoding to).
#[cfg(test)]
fn decode(c: Config<'_>, n: usize, optional_positions: &[u32]) -> Vec<u64> {
    let mut lin = vec![0u64; n.div_ceil(64).max(1)];
    for p in (0..c.frontier as usize).chain(c.above.iter().map(|&p| p as usize)) {
        lin[p / 64] |= 1 << (p % 64);
    }
    for (r, &p) in optional_positions.iter().enumerate().take_while(|&(_, &p)| p < c.frontier) {
        if c.left_out.get(r / 64).is_some_and(|w| w >> (r % 64) & 1 == 1) {
            lin[p as usize / 64] &= !(1 << (p % 64));
        }
    }
    lin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OpError;
    use crate::ops::Operation;

    /// A register of integers: `(true, v)` writes v, `(false, v)` reads v.
    struct Register;

    impl Model for Register {
        type State = i64;
        type Op = (bool, i64);
        fn name(&self) -> &str {
            "register"
        }
        fn parse(&self, _: &Operation) -> Result<Option<(bool, i64)>, OpError> {
            Ok(None)
        }
        fn init(&self) -> i64 {
            0
        }
        fn step<'a>(&self, s: &'a i64, op: &'a (bool, i64)) -> Option<Cow<'a, i64>> {
            match op {
                (true, v) => Some(Cow::Borrowed(v)),
                (false, v) => (v == s).then_some(Cow::Borrowed(s)),
            }
        }
        fn read_only(&self, op: &(bool, i64)) -> bool {
            !op.0
        }
        fn refusal(&self, s: &i64, op: &(bool, i64)) -> String {
            format!("read {} but held {s}", op.1)
        }
        fn describe_state(&self, s: &i64) -> String {
            s.to_string()
        }
    }

    fn summary(o: &SearchOutcome<i64>) -> String {
        match o {
            SearchOutcome::Linearizable => "linearizable".into(),
            SearchOutcome::Aborted => "aborted".into(),
            SearchOutcome::OutOfMemory(_) => "out of memory".into(),
            SearchOutcome::Illegal(f) => format!(
                "illegal at {} in {} after {:?}",
                f.blocked,
                f.state,
                f.prefix.iter().map(|p| p.0).collect::<Vec<_>>()
            ),
        }
    }

    #[test]
    fn resuming_in_slices_gives_the_same_search() {
        let cancel = AtomicBool::new(false);
        let limits = Limits { deadline: None, cancel: &cancel, memory: None };
        let mut seed = 0x1234_5678_u64;
        let mut rand = |n: u64| splitmix(&mut seed) % n;
        let (mut illegal, mut legal) = (0, 0);
        for _ in 0..300 {
            let n = 3 + rand(10) as usize;
            let mut ops = Vec::new();
            let (mut calls, mut rets) = (Vec::new(), Vec::new());
            for _ in 0..n {
                ops.push((rand(2) == 0, rand(3) as i64));
                let call = rand(30);
                calls.push(call);
                rets.push((rand(6) != 0).then(|| call + rand(10)));
            }
            let mut whole = Search::new(&Register, ops.clone(), &calls, &rets);
            let a = whole.run(u64::MAX, &limits).expect("runs to the end");
            let mut sliced = Search::new(&Register, ops.clone(), &calls, &rets);
            let b = loop {
                if let Some(o) = sliced.run(1, &limits) {
                    break o;
                }
            };
            assert_eq!(summary(&a), summary(&b));
            assert_eq!(whole.configurations(), sliced.configurations());
            match a {
                SearchOutcome::Illegal(_) => illegal += 1,
                _ => legal += 1,
            }
        }
        assert!(illegal > 20 && legal > 20, "{illegal} illegal, {legal} legal");
    }

    #[test]
    fn subsumption_on_frontiers_agrees_with_bit_sets() {
        let mut seed = 0xABCD_u64;
        let mut rand = |n: u64| splitmix(&mut seed) % n;
        let (mut subsumed, mut kept) = (0, 0);
        for _ in 0..20_000 {
            let n = 1 + rand(300) as usize;
            let words = n.div_ceil(64);
            let mut required = vec![0u64; words];
            let is = |set: &[u64], p: usize| set[p / 64] >> (p % 64) & 1 == 1;
            for p in 0..n {
                if rand(4) != 0 {
                    required[p / 64] |= 1 << (p % 64);
                }
            }
            // two sets with the same required part, the optional parts drawn apart (and
            // often one inside the other)
            let f = rand(n as u64 + 1) as usize;
            let (mut s, mut c) = (vec![0u64; words], vec![0u64; words]);
            for p in 0..n {
                let set = |v: &mut Vec<u64>| v[p / 64] |= 1 << (p % 64);
                if is(&required, p) {
                    if p < f || (p > f && rand(3) == 0) {
                        set(&mut s);
                        set(&mut c);
                    }
                } else {
                    let (in_s, in_c) = match rand(4) {
                        0 => (true, true),
                        1 => (false, true),
                        2 => (false, false),
                        _ => (true, rand(8) == 0),
                    };
                    if in_s {
                        set(&mut s);
                    }
                    if in_c {
                        set(&mut c);
                    }
                }
            }
            let frontier = (0..n).find(|&p| is(&required, p) && !is(&s, p)).unwrap_or(n) as u32;
            let optional_positions: Vec<u32> =
                (0..n).filter(|&p| !is(&required, p)).map(|p| p as u32).collect();
            let encode = |set: &[u64]| -> (Vec<u32>, Vec<u64>) {
                let above = (frontier as usize..n).filter(|&p| is(set, p)).map(|p| p as u32);
                let below = optional_positions.iter().take_while(|&&p| p < frontier);
                let mut left_out = vec![0u64; below.clone().count().div_ceil(64)];
                for (r, &p) in below.enumerate() {
                    if !is(set, p as usize) {
                        left_out[r / 64] |= 1 << (r % 64);
                    }
                }
                (above.collect(), left_out)
            };
            let (es, ec) = (encode(&s), encode(&c));
            fn config(frontier: u32, e: &(Vec<u32>, Vec<u64>)) -> Config<'_> {
                Config { frontier, above: &e.0, left_out: &e.1 }
            }
            assert_eq!(decode(config(frontier, &es), n, &optional_positions), s);
            let reference = s
                .iter()
                .zip(&c)
                .zip(&required)
                .all(|((&s, &c), &r)| s & !c == 0 && (s ^ c) & r == 0);
            let got = subsumes(&es.0, es.1.iter().copied(), config(frontier, &ec), &required);
            assert_eq!(got, reference, "n {n} f {frontier}");
            if reference {
                subsumed += 1;
            } else {
                kept += 1;
            }
        }
        assert!(subsumed > 1000 && kept > 1000, "{subsumed} subsumed, {kept} kept");
    }

    #[test]
    fn long_partitions_keep_their_frontier_and_exceptions_exact() {
        // Hundreds of operations (several words of positions), a few open at a time, some
        // never completing: every visit checks its encoding against the linearized set.
        let cancel = AtomicBool::new(false);
        let limits = Limits { deadline: None, cancel: &cancel, memory: None };
        let mut seed = 0x7777_u64;
        let mut rand = |n: u64| splitmix(&mut seed) % n;
        let mut outcomes = [0; 3];
        for _ in 0..40 {
            let n = 64 + rand(400) as usize;
            let (mut ops, mut calls, mut rets) = (Vec::new(), Vec::new(), Vec::new());
            let mut value = 0i64;
            for i in 0..n as u64 {
                let write = rand(2) == 0;
                if write {
                    value = rand(4) as i64;
                }
                ops.push((write, if write { value } else { value + i64::from(rand(40) == 0) }));
                let call = 10 * i + rand(10);
                calls.push(call);
                rets.push((rand(16) != 0).then(|| call + 5 + rand(30)));
            }
            let mut search = Search::new(&Register, ops.clone(), &calls, &rets);
            // a bounded slice: an illegal history with many unknown outcomes may take long
            // to refute, and what is checked here is every visit on the way
            match search.run(200_000, &limits) {
                Some(SearchOutcome::Linearizable) => outcomes[0] += 1,
                Some(SearchOutcome::Illegal(_)) => outcomes[1] += 1,
                Some(SearchOutcome::Aborted | SearchOutcome::OutOfMemory(_)) => {
                    unreachable!("no deadline, no memory limit")
                }
                None => outcomes[2] += 1,
            }
        }
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    }
}
