//! Histories of any size with a known verdict, for benchmarks and tests.
//!
//! [`write_kv_history`] writes a key/value history in Porcupine's EDN log format (one op map
//! a line, the order of the lines is real time), linearizable by construction: each
//! operation takes effect at a point between the lines of its invocation and its completion,
//! against one store that every client shares. With [`SynthOptions::violation`], one read in
//! the middle of the history returns a value that was never written, and nothing else
//! changes: the history is then certainly not linearizable.
//!
//! ```
//! use checker::synth::{write_kv_history, SynthOptions};
//!
//! let mut out = Vec::new();
//! let options = SynthOptions { operations: 1_000, keys: 10, clients: 8, ..Default::default() };
//! let summary = write_kv_history(&options, &mut out).unwrap();
//! assert_eq!(summary.operations, 1_000);
//! assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2_000);
//! ```

use std::io::{self, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Operations in all (each an invocation and a completion line).
    pub operations: u64,
    /// Keys the operations spread over, uniformly.
    pub keys: u64,
    /// Client processes running at once: how many operations may overlap.
    pub clients: u64,
    /// Per thousand operations, how many end `info` (outcome unknown; half of them take
    /// effect). The client then continues under a new process number, as in Jepsen.
    pub info_per_mille: u32,
    /// One read in the middle returns a value never written.
    pub violation: bool,
    /// The seed of every choice.
    pub seed: u64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            operations: 100_000,
            keys: 1_000,
            clients: 64,
            info_per_mille: 0,
            violation: false,
            seed: 0,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// Operations invoked.
    pub operations: u64,
    /// Lines written.
    pub lines: u64,
    /// Operations that ended `info`.
    pub info: u64,
    /// The process of the impossible read, when a violation was asked for.
    pub violating_process: Option<u64>,
}

enum Client {
    Idle,
    /// Invoked, not yet taken effect.
    Invoked {
        key: u64,
        put: Option<String>,
    },
    /// Taken effect (or, for an `info` operation, maybe not): the completion to write.
    Applied {
        key: u64,
        put: bool,
        value: String,
        info: bool,
    },
}

/// Writes a key/value history (see the [module](self)) to `out`.
pub fn write_kv_history(options: &SynthOptions, out: &mut impl Write) -> io::Result<SynthSummary> {
    let clients = options.clients.max(1);
    let keys = options.keys.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut store: Vec<String> = vec![String::new(); keys as usize];
    let mut state: Vec<Client> = (0..clients).map(|_| Client::Idle).collect();
    // The process number each client slot runs under now.
    let mut process: Vec<u64> = (0..clients).collect();
    let mut next_process = clients;
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut summary = SynthSummary { operations: 0, lines: 0, info: 0, violating_process: None };
    let violate_at = options.violation.then_some(options.operations / 2);
    let mut busy = 0u64;
    while summary.operations < options.operations || busy > 0 {
        let c = rng.gen_range(0..clients) as usize;
        let p = process[c];
        match std::mem::replace(&mut state[c], Client::Idle) {
            Client::Idle if summary.operations < options.operations => {
                let key = rng.gen_range(0..keys);
                let put = rng.gen_bool(0.5).then(|| format!("x {p} {} y", summary.operations));
                match &put {
                    Some(v) => writeln!(
                        out,
                        "{{:process {p}, :type :invoke, :f :put, :key \"{key}\", :value \"{v}\"}}"
                    )?,
                    None => writeln!(
                        out,
                        "{{:process {p}, :type :invoke, :f :get, :key \"{key}\", :value nil}}"
                    )?,
                }
                summary.operations += 1;
                summary.lines += 1;
                busy += 1;
                state[c] = Client::Invoked { key, put };
            }
            Client::Idle => {}
            Client::Invoked { key, put } => {
                let info = rng.gen_range(0..1000) < options.info_per_mille;
                let slot = &mut store[key as usize];
                state[c] = match put {
                    Some(v) => {
                        // An `info` put takes effect half the time.
                        if !info || rng.gen_bool(0.5) {
                            slot.clone_from(&v);
                        }
                        Client::Applied { key, put: true, value: v, info }
                    }
                    None => Client::Applied { key, put: false, value: slot.clone(), info },
                };
            }
            Client::Applied { key, put, mut value, info } => {
                let f = if put { "put" } else { "get" };
                if info {
                    writeln!(
                        out,
                        "{{:process {p}, :type :info, :f :{f}, :key \"{key}\", :value nil}}"
                    )?;
                    summary.info += 1;
                    process[c] = next_process;
                    next_process += 1;
                } else {
                    if !put
                        && violate_at.is_some_and(|at| summary.operations > at)
                        && summary.violating_process.is_none()
                    {
                        value = format!("x never written by {p} y");
                        summary.violating_process = Some(p);
                    }
                    writeln!(
                        out,
                        "{{:process {p}, :type :ok, :f :{f}, :key \"{key}\", :value \"{value}\"}}"
                    )?;
                }
                summary.lines += 1;
                busy -= 1;
            }
        }
    }
    out.flush()?;
    Ok(summary)
}
