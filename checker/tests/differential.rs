//! The search against a brute-force reference on thousands of small random histories:
//! every order of the operations that respects real time, with every subset of the
//! operations whose outcome is unknown. Both models, with `info`, `fail`, operations
//! that never complete, and equal timestamps.

use std::borrow::Cow;

use checker::{check, CheckOptions, Event, EventType, History, Model, Process, Verdict};
use serde_json::{json, Value};
use workloads::{CasRegister, Kv, KvOp, RegisterOp};

/// A small deterministic generator (xorshift), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One generated operation: its interval, and what the history says about it.
#[derive(Clone, Debug)]
struct GenOp {
    f: &'static str,
    input: Value,
    call: u64,
    ret: u64,
    kind: Completion,
    output: Value,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Completion {
    Ok,
    Fail,
    Info,
    Never,
}

trait Workload {
    type M: Model;
    fn model(&self) -> Self::M;
    fn random_op(&self, rng: &mut Rng) -> (&'static str, Value);
    fn init(&self) -> Value;
    /// Applies the operation: the new state and the output; `None` if it cannot
    /// succeed (a cas whose precondition is false).
    fn apply(&self, state: &Value, f: &str, input: &Value) -> Option<(Value, Value)>;
    fn perturb(&self, rng: &mut Rng, output: &Value) -> Value;
    /// The operation in model terms, as the reference understands the semantics;
    /// `None` for an operation without effect or observation.
    fn to_op(&self, op: &GenOp) -> Option<<Self::M as Model>::Op>;
}

struct Register;
impl Workload for Register {
    type M = CasRegister;
    fn model(&self) -> CasRegister {
        CasRegister
    }
    fn random_op(&self, rng: &mut Rng) -> (&'static str, Value) {
        match rng.below(3) {
            0 => ("read", Value::Null),
            1 => ("write", json!(rng.below(3))),
            _ => ("cas", json!([rng.below(3), rng.below(3)])),
        }
    }
    fn init(&self) -> Value {
        Value::Null
    }
    fn apply(&self, state: &Value, f: &str, input: &Value) -> Option<(Value, Value)> {
        match f {
            "read" => Some((state.clone(), state.clone())),
            "write" => Some((input.clone(), input.clone())),
            _ => (input[0] == *state).then(|| (input[1].clone(), input.clone())),
        }
    }
    fn perturb(&self, rng: &mut Rng, _: &Value) -> Value {
        if rng.chance(20) {
            Value::Null
        } else {
            json!(rng.below(3))
        }
    }
    fn to_op(&self, op: &GenOp) -> Option<RegisterOp> {
        let known = op.kind == Completion::Ok;
        match (op.f, op.kind) {
            (_, Completion::Fail) => None,
            ("read", Completion::Ok) => Some(RegisterOp::Read(op.output.clone())),
            ("read", _) => None,
            ("write", _) => Some(RegisterOp::Write(op.input.clone())),
            _ => {
                Some(RegisterOp::Cas { from: op.input[0].clone(), to: op.input[1].clone(), known })
            }
        }
    }
}

struct Strings;
impl Workload for Strings {
    type M = Kv;
    fn model(&self) -> Kv {
        Kv
    }
    fn random_op(&self, rng: &mut Rng) -> (&'static str, Value) {
        let v = ["a", "b", "ab", ""][rng.below(4) as usize];
        match rng.below(3) {
            0 => ("get", Value::Null),
            1 => ("put", json!(v)),
            _ => ("append", json!(v)),
        }
    }
    fn init(&self) -> Value {
        json!("")
    }
    fn apply(&self, state: &Value, f: &str, input: &Value) -> Option<(Value, Value)> {
        let s = state.as_str().unwrap_or_default();
        match f {
            "get" => Some((state.clone(), state.clone())),
            "put" => Some((input.clone(), input.clone())),
            _ => Some((json!(format!("{s}{}", input.as_str().unwrap_or_default())), input.clone())),
        }
    }
    fn perturb(&self, rng: &mut Rng, output: &Value) -> Value {
        let s = output.as_str().unwrap_or_default();
        match rng.below(3) {
            0 => json!(format!("{s}a")),
            1 => json!(s.chars().skip(1).collect::<String>()),
            _ => json!(["a", "b", "ba", ""][rng.below(4) as usize]),
        }
    }
    fn to_op(&self, op: &GenOp) -> Option<KvOp> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        match (op.f, op.kind) {
            (_, Completion::Fail) => None,
            ("get", Completion::Ok) => Some(KvOp::Get(s(&op.output))),
            ("get", _) => None,
            ("put", _) => Some(KvOp::Put(s(&op.input))),
            _ => Some(KvOp::Append(s(&op.input))),
        }
    }
}

/// Generates a history by running random operations at random points within their
/// intervals on a real object, then marking some as info, failed or never completed,
/// and sometimes corrupting an output.
fn generate<W: Workload>(w: &W, rng: &mut Rng, n: usize) -> Vec<GenOp> {
    let mut ops: Vec<(GenOp, u64, bool)> = Vec::new();
    for _ in 0..n {
        let (f, input) = w.random_op(rng);
        let call = rng.below(20);
        let ret = call + rng.below(8);
        let point = call + rng.below(ret - call + 1);
        let kind = match rng.below(10) {
            0 => Completion::Info,
            1 => Completion::Never,
            _ => Completion::Ok,
        };
        let takes_effect = kind == Completion::Ok || rng.chance(50);
        let op = GenOp { f, input, call, ret, kind, output: Value::Null };
        ops.push((op, point, takes_effect));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| ops[i].1);
    let mut state = w.init();
    for i in order {
        let (op, _, takes_effect) = &mut ops[i];
        if !*takes_effect {
            continue;
        }
        match w.apply(&state, op.f, &op.input) {
            Some((s, out)) => {
                state = s;
                op.output = out;
            }
            None if op.kind == Completion::Ok => {
                op.kind = Completion::Fail; // a cas whose precondition was false
            }
            None => {}
        }
    }
    let mut ops: Vec<GenOp> = ops.into_iter().map(|(op, _, _)| op).collect();
    for _ in 0..3 {
        let k = rng.below(n as u64) as usize;
        let read = ops[k].f == "read" || ops[k].f == "get";
        if ops[k].kind == Completion::Ok && read && rng.chance(50) {
            ops[k].output = w.perturb(rng, &ops[k].output);
        }
    }
    if rng.chance(10) {
        // a failed write had no effect, whatever its value
        let k = rng.below(n as u64) as usize;
        if ops[k].f != "read" && ops[k].f != "get" && ops[k].kind == Completion::Ok {
            ops[k].kind = Completion::Fail;
            ops[k].input = w.random_op(rng).1;
        }
    }
    ops
}

/// The events of a history, with times; process `i` runs operation `i`.
fn events(ops: &[GenOp]) -> Vec<Event> {
    let mut evs: Vec<(u64, u8, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        evs.push((op.call, 0, i));
        if op.kind != Completion::Never {
            evs.push((op.ret, 1, i));
        }
    }
    evs.sort();
    evs.iter()
        .enumerate()
        .map(|(index, &(t, is_ret, i))| {
            let op = &ops[i];
            let (kind, value) = match (is_ret, op.kind) {
                (0, _) => (EventType::Invoke, op.input.clone()),
                (_, Completion::Ok) => (
                    EventType::Ok,
                    if op.f == "read" || op.f == "get" {
                        op.output.clone()
                    } else {
                        op.input.clone()
                    },
                ),
                (_, Completion::Fail) => (EventType::Fail, op.input.clone()),
                _ => (EventType::Info, op.input.clone()),
            };
            Event {
                index: index as u64,
                time: Some(t),
                process: Process::Client(i as u64),
                kind,
                f: op.f.to_string(),
                key: None,
                value,
                error: None,
            }
        })
        .collect()
}

/// The reference: is there an order of the ok operations, plus any subset of the
/// unknown ones, that respects real time and that the model accepts?
fn brute_force<W: Workload>(w: &W, ops: &[GenOp]) -> bool {
    let model = w.model();
    let mut required = Vec::new();
    let mut optional = Vec::new();
    for op in ops {
        let Some(p) = w.to_op(op) else { continue };
        if op.kind == Completion::Ok {
            required.push((p, op.call, Some(op.ret)));
        } else {
            optional.push((p, op.call, None));
        }
    }
    let k = optional.len();
    for mask in 0u32..(1 << k) {
        let mut chosen: Vec<&(_, u64, Option<u64>)> = required.iter().collect();
        chosen.extend((0..k).filter(|j| mask & (1 << j) != 0).map(|j| &optional[j]));
        let mut used = vec![false; chosen.len()];
        if permute(&model, &chosen, &mut used, Cow::Owned(model.init()), 0) {
            return true;
        }
    }
    false
}

fn permute<M: Model>(
    model: &M,
    ops: &[&(M::Op, u64, Option<u64>)],
    used: &mut Vec<bool>,
    state: Cow<'_, M::State>,
    placed: usize,
) -> bool {
    if placed == ops.len() {
        return true;
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        // every unplaced operation that returned before this one was called must go first
        let blocked =
            (0..ops.len()).any(|j| j != i && !used[j] && ops[j].2.is_some_and(|r| r < ops[i].1));
        if blocked {
            continue;
        }
        if let Some(next) = model.step(state.as_ref(), &ops[i].0) {
            let next = Cow::Owned(next.into_owned());
            used[i] = true;
            let ok = permute(model, ops, used, next, placed + 1);
            used[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

fn differential<W: Workload>(w: &W, seed: u64, rounds: usize) {
    let model = w.model();
    let mut rng = Rng(seed);
    let (mut valid, mut invalid) = (0, 0);
    for round in 0..rounds {
        let n = 2 + rng.below(7) as usize;
        let ops = generate(w, &mut rng, n);
        let history = History::from_events("random", events(&ops));
        let expected = brute_force(w, &ops);
        let r = check(&model, &history, &CheckOptions::default())
            .expect("generated histories are well formed");
        let got = r.verdict == Verdict::Valid;
        assert_eq!(
            got, expected,
            "round {round}: checker says {}, brute force says {}: {ops:#?}",
            r.verdict, expected
        );
        if expected {
            valid += 1;
        } else {
            invalid += 1;
            let v = r.violation.expect("an invalid verdict is explained");
            assert!(!v.reason.is_empty());
        }
    }
    // the generator must exercise both verdicts
    assert!(valid > rounds / 5 && invalid > rounds / 8, "{valid} valid, {invalid} invalid");
}

#[test]
fn register_agrees_with_brute_force() {
    differential(&Register, 0x9E37_79B9_7F4A_7C15, 4000);
}

#[test]
fn kv_agrees_with_brute_force() {
    differential(&Strings, 0xD1B5_4A32_D192_ED03, 4000);
}
