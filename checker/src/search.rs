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
//! Beyond the textbook algorithm:
//! - Operations whose outcome is unknown (`info`, or never completed) have no return
//!   entry: they may be linearized at any point after their call, or never. The search
//!   succeeds once every operation with a known outcome is linearized.
//! - Required operations are tried before optional ones at each point.
//! - The cache prunes by subsumption: a configuration is skipped when a visited one has
//!   the same linearized required operations, the same state, and a subset of its
//!   linearized optional operations (whatever the larger one can still do, the smaller
//!   one can too). This merges the many orders in which optional operations can happen.
//! - The set hash is incremental (Zobrist), so each step costs O(1) hashing; bit sets
//!   are compared in full only on a hash match.
//! - Model states are interned to integers and transitions memoised per (state,
//!   operation), so the model's `step` runs once per distinct pair.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::model::Model;

const UNKNOWN: u32 = u32::MAX;
const ILLEGAL: u32 = u32::MAX - 1;
/// The largest memo table, in entries (4 bytes each).
const MEMO_BUDGET: usize = 1 << 24;

/// How a partition's search ended.
pub(crate) enum SearchOutcome<S> {
    /// A linearization exists.
    Linearizable,
    /// None exists; the deepest dead end reached.
    Illegal(Failure<S>),
    /// Stopped by the deadline or by cancellation.
    Aborted,
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

/// Counters of one search, for benchmarks and tuning.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub configurations: usize,
}

struct States<'m, M: Model> {
    model: &'m M,
    list: Vec<M::State>,
    ids: HashMap<M::State, u32>,
    memo: Vec<u32>,
    n: usize,
}

impl<'m, M: Model> States<'m, M> {
    fn new(model: &'m M, n: usize) -> Self {
        let mut s = States { model, list: Vec::new(), ids: HashMap::new(), memo: Vec::new(), n };
        s.intern(model.init());
        s
    }

    fn intern(&mut self, st: M::State) -> u32 {
        if let Some(&id) = self.ids.get(&st) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(st.clone());
        self.ids.insert(st, id);
        if self.memo.len() + self.n <= MEMO_BUDGET && self.memo.len() == id as usize * self.n {
            self.memo.resize(self.memo.len() + self.n, UNKNOWN);
        }
        id
    }

    #[inline]
    fn step(&mut self, ops: &[&M::Op], s: u32, o: usize) -> u32 {
        let idx = s as usize * self.n + o;
        if let Some(&r) = self.memo.get(idx) {
            if r != UNKNOWN {
                return r;
            }
        }
        let r = match self.model.step(&self.list[s as usize], ops[o]) {
            None => ILLEGAL,
            Some(ns) => self.intern(ns),
        };
        if let Some(m) = self.memo.get_mut(idx) {
            *m = r;
        }
        r
    }
}

/// Visited configurations, with subsumption on optional operations.
struct Cache {
    words: usize,
    slots: Vec<u32>,
    shift: u32,
    keys: Vec<u64>,
    states: Vec<u32>,
    bits: Vec<u64>,
}

impl Cache {
    fn new(words: usize) -> Self {
        let cap_log = 10;
        Cache {
            words,
            slots: vec![0; 1 << cap_log],
            shift: 64 - cap_log,
            keys: Vec::new(),
            states: Vec::new(),
            bits: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    #[inline]
    fn slot_of(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Records the configuration unless a visited one subsumes it; returns whether it
    /// is new.
    #[inline]
    fn visit(&mut self, key: u64, state: u32, lin: &[u64], req: &[u64]) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(key);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            let e = (slot - 1) as usize;
            if self.keys[e] == key && self.states[e] == state {
                let stored = &self.bits[e * self.words..(e + 1) * self.words];
                let subsumed = stored
                    .iter()
                    .zip(lin)
                    .zip(req)
                    .all(|((&s, &c), &r)| s & !c == 0 && (s ^ c) & r == 0);
                if subsumed {
                    return false;
                }
            }
            i = (i + 1) & mask;
        }
        let e = self.keys.len();
        self.keys.push(key);
        self.states.push(state);
        self.bits.extend_from_slice(lin);
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

struct Frame {
    op: u32,
    optional_pass: bool,
    state: u32,
}

/// Where to stop early.
pub(crate) struct Limits<'a> {
    pub deadline: Option<Instant>,
    pub cancel: &'a AtomicBool,
}

/// Searches for a linearization of one partition's operations. `calls[i]` is the real
/// time of operation `i`'s invocation and `rets[i]` that of its return, `None` when its
/// outcome is unknown (it may take effect at any point after its call, or never).
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[&M::Op],
    calls: &[u64],
    rets: &[Option<u64>],
    limits: &Limits<'_>,
) -> (SearchOutcome<M::State>, Stats) {
    let n = ops.len();
    let optional: Vec<bool> = rets.iter().map(Option::is_none).collect();
    let n_req = optional.iter().filter(|o| !**o).count();
    let mut states = States::new(model, n);
    if n_req == 0 {
        return (SearchOutcome::Linearizable, Stats::default());
    }

    // The list: entry 0 is the head sentinel; entries 1.. are calls and returns sorted
    // by time, calls before returns at equal times (equal times are concurrent).
    let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(n + n_req);
    for i in 0..n {
        order.push((calls[i], false, i as u32));
        if let Some(r) = rets[i] {
            order.push((r, true, i as u32));
        }
    }
    order.sort_unstable_by_key(|&(t, is_ret, op)| (t, is_ret, op));
    let m = order.len();
    let mut next: Vec<u32> = (1..=m as u32).chain([0]).collect();
    let mut prev: Vec<u32> = [m as u32].into_iter().chain(0..m as u32).collect();
    let mut entry_op = vec![0u32; m + 1];
    let mut entry_ret = vec![false; m + 1];
    let mut call_entry = vec![0u32; n];
    let mut ret_entry = vec![0u32; n];
    for (k, &(_, is_ret, op)) in order.iter().enumerate() {
        let e = k + 1;
        entry_op[e] = op;
        entry_ret[e] = is_ret;
        if is_ret {
            ret_entry[op as usize] = e as u32;
        } else {
            call_entry[op as usize] = e as u32;
        }
    }

    let words = n.div_ceil(64);
    let mut req = vec![0u64; words];
    let mut seed = 0x5EED_u64;
    let mut zob = vec![0u64; n];
    for i in 0..n {
        if !optional[i] {
            req[i / 64] |= 1 << (i % 64);
            zob[i] = splitmix(&mut seed);
        }
    }
    let mut lin = vec![0u64; words];
    let mut hash = 0u64;
    let mut state = 0u32;
    let mut cache = Cache::new(words);
    cache.visit(hash ^ state_mix(state), state, &lin, &req);

    let mut stack: Vec<Frame> = Vec::with_capacity(n);
    let mut req_left = n_req;
    let mut best_depth: isize = -1;
    let mut failure: Option<Failure<M::State>> = None;
    let mut entry = next[0] as usize;
    let mut optional_pass = false;
    let mut iterations: u64 = 0;

    loop {
        iterations += 1;
        if iterations & 0xFFF == 0
            && (limits.cancel.load(Ordering::Relaxed)
                || limits.deadline.is_some_and(|d| Instant::now() >= d))
        {
            let stats = Stats { configurations: cache.len() };
            return (SearchOutcome::Aborted, stats);
        }
        if entry != 0 && !entry_ret[entry] {
            let o = entry_op[entry] as usize;
            if optional[o] == optional_pass {
                let ns = states.step(ops, state, o);
                if ns != ILLEGAL {
                    let (w, b) = (o / 64, 1u64 << (o % 64));
                    lin[w] |= b;
                    let h = hash ^ zob[o];
                    if cache.visit(h ^ state_mix(ns), ns, &lin, &req) {
                        stack.push(Frame { op: o as u32, optional_pass, state });
                        hash = h;
                        state = ns;
                        // lift the operation out of the list
                        let c = call_entry[o] as usize;
                        next[prev[c] as usize] = next[c];
                        prev[next[c] as usize] = prev[c];
                        if !optional[o] {
                            let r = ret_entry[o] as usize;
                            next[prev[r] as usize] = next[r];
                            prev[next[r] as usize] = prev[r];
                            req_left -= 1;
                            if req_left == 0 {
                                let stats = Stats { configurations: cache.len() };
                                return (SearchOutcome::Linearizable, stats);
                            }
                        }
                        entry = next[0] as usize;
                        optional_pass = false;
                        continue;
                    }
                    lin[w] &= !b;
                }
            }
            entry = next[entry] as usize;
            continue;
        }
        // The end of the window of pending calls.
        if !optional_pass {
            optional_pass = true;
            entry = next[0] as usize;
            continue;
        }
        // A dead end: nothing more can be linearized from this configuration.
        let depth = (n_req - req_left) as isize;
        if depth > best_depth {
            best_depth = depth;
            failure = Some(record_failure(&states, &stack, state, &next, &entry_op, &entry_ret));
        }
        let Some(f) = stack.pop() else {
            break;
        };
        let o = f.op as usize;
        let c = call_entry[o] as usize;
        if !optional[o] {
            let r = ret_entry[o] as usize;
            next[prev[r] as usize] = r as u32;
            prev[next[r] as usize] = r as u32;
            req_left += 1;
        }
        next[prev[c] as usize] = c as u32;
        prev[next[c] as usize] = c as u32;
        lin[o / 64] &= !(1u64 << (o % 64));
        hash ^= zob[o];
        state = f.state;
        optional_pass = f.optional_pass;
        entry = next[c] as usize;
    }
    let stats = Stats { configurations: cache.len() };
    let failure = failure.expect("a failed search records a dead end");
    (SearchOutcome::Illegal(failure), stats)
}

fn record_failure<M: Model>(
    states: &States<'_, M>,
    stack: &[Frame],
    state: u32,
    next: &[u32],
    entry_op: &[u32],
    entry_ret: &[bool],
) -> Failure<M::State> {
    let mut prefix = Vec::with_capacity(stack.len());
    for (k, f) in stack.iter().enumerate() {
        let after = stack.get(k + 1).map_or(state, |g| g.state);
        prefix.push((f.op as usize, states.list[after as usize].clone()));
    }
    let mut pending = Vec::new();
    let mut e = next[0] as usize;
    while e != 0 && !entry_ret[e] {
        pending.push(entry_op[e] as usize);
        e = next[e] as usize;
    }
    // Only a dead end with a return ahead is recorded deepest: a configuration with no
    // return left has every required operation linearized and is a success.
    let blocked = entry_op[e] as usize;
    pending.retain(|&p| p != blocked);
    Failure { prefix, state: states.list[state as usize].clone(), blocked, pending }
}
