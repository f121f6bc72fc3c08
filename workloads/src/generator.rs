//! Seeded generators of client operations, one stream per client worker.
//!
//! A worker asks its generator for the next operation; the same seed gives the same stream, so
//! a run's operations replay from its seed (their outcomes depend on timing, of course).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// Which operations a workload issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `read`, `write` v and `cas` [from, to] on integer registers.
    CasRegister,
    /// `get`, `put` and `append` on string values.
    Kv,
}

impl Workload {
    /// The workload's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::CasRegister => "cas-register",
            Workload::Kv => "kv",
        }
    }
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cas-register" | "register" => Ok(Workload::CasRegister),
            "kv" => Ok(Workload::Kv),
            _ => Err(format!("unknown workload {s:?}: expected cas-register or kv")),
        }
    }
}

/// One operation to invoke: the `f`, `key` and invocation `value` of a history event.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The function: read, write, cas, get, put or append.
    pub f: &'static str,
    /// The key.
    pub key: String,
    /// The invocation's value (null for reads, [from, to] for cas).
    pub value: Value,
}

/// The operation stream of one worker.
pub struct Generator {
    workload: Workload,
    keys: usize,
    rng: ChaCha8Rng,
    worker: u64,
    counter: u64,
    /// The last value this worker saw each register hold, for its next cas.
    seen: std::collections::HashMap<String, Value>,
}

impl Generator {
    /// The stream of worker `worker` in a run seeded with `seed`, over `keys` keys.
    pub fn new(workload: Workload, keys: usize, seed: u64, worker: u64) -> Generator {
        let stream = seed ^ worker.wrapping_add(1).wrapping_mul(0xA24B_AED4_963E_E407);
        Generator {
            workload,
            keys: keys.max(1),
            rng: ChaCha8Rng::seed_from_u64(stream),
            worker,
            counter: 0,
            seen: Default::default(),
        }
    }

    /// Tells the generator what an operation that succeeded saw: a read's result, or the value a
    /// write or cas left. A later cas on that key starts from it.
    pub fn observe(&mut self, f: &str, key: &str, result: &Value) {
        let held = match f {
            "read" | "write" => result.clone(),
            "cas" => result.get(1).cloned().unwrap_or(Value::Null),
            _ => return,
        };
        self.seen.insert(key.to_string(), held);
    }

    /// A value no other write of the run uses.
    fn unique_value(&self) -> Value {
        json!((self.worker + 1) * 1_000_000 + self.counter)
    }

    /// The key name of key number `i`.
    pub fn key_name(i: usize) -> String {
        format!("k{i}")
    }

    /// The next operation of this worker.
    pub fn next_op(&mut self) -> Op {
        let key = Self::key_name(self.rng.gen_range(0..self.keys));
        self.counter += 1;
        match self.workload {
            // Every write is of a value no other write uses, so a read names the one write it
            // saw and a stale read cannot hide behind a later write of the same value. A cas
            // starts from the value this worker last saw, so it succeeds whenever nobody wrote
            // in between.
            Workload::CasRegister => match self.rng.gen_range(0..10) {
                0..=3 => Op { f: "read", key, value: Value::Null },
                4..=6 => Op { f: "write", key, value: self.unique_value() },
                _ => {
                    let from = self.seen.get(&key).cloned().unwrap_or(Value::Null);
                    Op { f: "cas", key, value: json!([from, self.unique_value()]) }
                }
            },
            // Appended strings are unique per worker and operation, so a get reveals exactly
            // which appends took effect and in which order.
            Workload::Kv => match self.rng.gen_range(0..10) {
                0..=3 => Op { f: "get", key, value: Value::Null },
                4 => Op {
                    f: "put",
                    key,
                    value: json!(format!("p{}.{} ", self.worker, self.counter)),
                },
                _ => Op {
                    f: "append",
                    key,
                    value: json!(format!("a{}.{} ", self.worker, self.counter)),
                },
            },
        }
    }

    /// The operation that reads key number `i` at the end of a run.
    pub fn final_read(workload: Workload, i: usize) -> Op {
        let f = match workload {
            Workload::CasRegister => "read",
            Workload::Kv => "get",
        };
        Op { f, key: Self::key_name(i), value: Value::Null }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_workers_differ() {
        let ops = |seed, worker| {
            let mut g = Generator::new(Workload::CasRegister, 3, seed, worker);
            (0..50).map(|_| g.next_op()).collect::<Vec<_>>()
        };
        assert_eq!(ops(9, 1), ops(9, 1));
        assert_ne!(ops(9, 1), ops(9, 2));
        assert_ne!(ops(9, 1), ops(10, 1));
    }

    #[test]
    fn register_writes_are_unique_and_cas_starts_from_what_was_seen() {
        let mut g = Generator::new(Workload::CasRegister, 1, 5, 3);
        let mut written = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let op = g.next_op();
            match op.f {
                "write" => assert!(written.insert(op.value.as_u64().unwrap())),
                "cas" => assert!(written.insert(op.value[1].as_u64().unwrap())),
                _ => {}
            }
        }
        g.observe("read", "k0", &json!(77));
        let cas = std::iter::repeat_with(|| g.next_op()).find(|o| o.f == "cas").unwrap();
        assert_eq!(cas.value[0], json!(77));
        g.observe("cas", "k0", &cas.value);
        let next = std::iter::repeat_with(|| g.next_op()).find(|o| o.f == "cas").unwrap();
        assert_eq!(next.value[0], cas.value[1], "a successful cas leaves its `to`");
    }

    #[test]
    fn register_ops_have_the_history_shapes() {
        let mut g = Generator::new(Workload::CasRegister, 2, 1, 0);
        let ops: Vec<Op> = (0..200).map(|_| g.next_op()).collect();
        for f in ["read", "write", "cas"] {
            assert!(ops.iter().any(|o| o.f == f), "{f} never generated");
        }
        for op in &ops {
            assert!(op.key == "k0" || op.key == "k1");
            match op.f {
                "read" => assert!(op.value.is_null()),
                "write" => assert!(op.value.is_u64()),
                _ => assert_eq!(op.value.as_array().map(Vec::len), Some(2)),
            }
        }
    }

    #[test]
    fn kv_appends_are_unique() {
        let mut g = Generator::new(Workload::Kv, 4, 3, 7);
        let appends: Vec<String> = (0..500)
            .map(|_| g.next_op())
            .filter(|o| o.f == "append")
            .map(|o| o.value.as_str().unwrap().to_string())
            .collect();
        let unique: std::collections::BTreeSet<_> = appends.iter().collect();
        assert_eq!(unique.len(), appends.len());
    }
}
