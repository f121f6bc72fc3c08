//! Checking a whole history: parse, partition, search partitions in parallel.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::explain::{OpSummary, Step, Violation};
use crate::history::{History, Process};
use crate::model::Model;
use crate::ops::{pair, Operation};
use crate::search::{search, Limits, SearchOutcome, Stats};

/// How to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Stop after this long and answer [`Verdict::Unknown`]. `None`: no limit.
    pub time_limit: Option<Duration>,
    /// How many threads search partitions; 0 means one per available core.
    pub threads: usize,
}

/// The verdict on a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Linearizable.
    Valid,
    /// Not linearizable.
    Invalid,
    /// The search was stopped before an answer (time limit).
    Unknown,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        })
    }
}

/// The result of checking one history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The verdict.
    pub verdict: Verdict,
    /// A short reason for the verdict, one line.
    pub reason: String,
    /// Operations searched (`fail` operations and reads with unknown results excluded).
    pub operations: usize,
    /// Partitions (keys) searched.
    pub partitions: usize,
    /// Nemesis events in the history (not searched).
    pub nemesis_events: usize,
    /// Configurations the search visited, over all partitions.
    pub configurations: usize,
    /// The explanation, when the verdict is [`Verdict::Invalid`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<Violation>,
}

struct Partition<'a, O> {
    key: Option<String>,
    ops: Vec<&'a Operation>,
    model_ops: Vec<&'a O>,
}

/// Checks a history for linearizability against `model`.
///
/// Semantics: an `ok` operation took effect between its invocation and completion; a
/// `fail` operation had no effect and is ignored; an `info` operation, or an invocation
/// that never completes, may take effect at any point after its invocation, or never.
/// Nemesis events are ignored. Real time comes from `time` when every client event has
/// one, from the order of the lines otherwise.
///
/// Errors (naming the line) come from the pairing of events and from operations that
/// do not fit the model.
pub fn check<M: Model>(
    model: &M,
    history: &History,
    options: &CheckOptions,
) -> Result<CheckResult, Error> {
    let start = Instant::now();
    let ops = pair(history)?;
    let mut parsed: Vec<(usize, M::Op)> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        match model.parse(op) {
            Ok(Some(m)) => parsed.push((i, m)),
            Ok(None) => {}
            Err(e) => {
                let at = match (e.in_completion, op.complete) {
                    (true, Some(c)) => c,
                    _ => op.invoke,
                };
                return Err(Error::line(history.name(), history.line_of(at), e.message));
            }
        }
    }

    // Partitions, in order of first appearance.
    let mut partitions: Vec<Partition<'_, M::Op>> = Vec::new();
    let mut index: std::collections::HashMap<Option<String>, usize> = Default::default();
    for (i, m) in &parsed {
        let op = &ops[*i];
        let key = model.partition(op);
        let p = *index.entry(key.clone()).or_insert_with(|| {
            partitions.push(Partition { key, ops: Vec::new(), model_ops: Vec::new() });
            partitions.len() - 1
        });
        partitions[p].ops.push(op);
        partitions[p].model_ops.push(m);
    }

    let nemesis_events = history.events().iter().filter(|e| e.process == Process::Nemesis).count();
    let deadline = options.time_limit.map(|d| start + d);
    let cancel = AtomicBool::new(false);
    let limits = Limits { deadline, cancel: &cancel };
    let run = |p: &Partition<'_, M::Op>| {
        let calls: Vec<u64> = p.ops.iter().map(|o| o.call).collect();
        let rets: Vec<Option<u64>> = p.ops.iter().map(|o| o.ret).collect();
        let out = search(model, &p.model_ops, &calls, &rets, &limits);
        if matches!(out.0, SearchOutcome::Illegal(_)) {
            cancel.store(true, Ordering::Relaxed);
        }
        out
    };

    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .min(partitions.len());
    let mut outcomes: Vec<Option<(SearchOutcome<M::State>, Stats)>> = Vec::new();
    if threads <= 1 {
        for p in &partitions {
            if cancel.load(Ordering::Relaxed) {
                outcomes.push(None);
            } else {
                outcomes.push(Some(run(p)));
            }
        }
    } else {
        // Largest partitions first, so that the slowest one starts early.
        let mut order: Vec<usize> = (0..partitions.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(partitions[i].ops.len()));
        let slots: Vec<Mutex<Option<(SearchOutcome<M::State>, Stats)>>> =
            partitions.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let out = run(&partitions[i]);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
                });
            }
        });
        outcomes =
            slots.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
    }

    let configurations = outcomes.iter().flatten().map(|(_, s)| s.configurations).sum();
    let mut result = CheckResult {
        verdict: Verdict::Valid,
        reason: String::new(),
        operations: parsed.len(),
        partitions: partitions.len(),
        nemesis_events,
        configurations,
        violation: None,
    };
    let illegal = outcomes.iter().enumerate().find_map(|(i, o)| match o {
        Some((SearchOutcome::Illegal(f), _)) => Some((i, f)),
        _ => None,
    });
    if let Some((i, failure)) = illegal {
        let p = &partitions[i];
        let summary = |k: usize| OpSummary::new(history, p.ops[k]);
        let violation = Violation {
            model: model.name().to_string(),
            key: p.key.clone(),
            partition_operations: p.ops.len(),
            initial_state: model.describe_state(&model.init()),
            prefix: failure
                .prefix
                .iter()
                .map(|(k, st)| Step {
                    operation: summary(*k),
                    state_after: model.describe_state(st),
                })
                .collect(),
            operation: summary(failure.blocked),
            state: model.describe_state(&failure.state),
            reason: model.refusal(&failure.state, p.model_ops[failure.blocked]),
            pending: failure.pending.iter().map(|&k| summary(k)).collect(),
        };
        result.verdict = Verdict::Invalid;
        result.reason = violation.summary();
        result.violation = Some(violation);
    } else if outcomes.iter().any(|o| !matches!(o, Some((SearchOutcome::Linearizable, _)))) {
        result.verdict = Verdict::Unknown;
        result.reason = match options.time_limit {
            Some(d) => format!("time limit of {} s reached", d.as_secs_f64()),
            None => "search stopped".into(),
        };
    } else {
        result.reason = format!(
            "{} operations in {} partition{}",
            parsed.len(),
            partitions.len(),
            if partitions.len() == 1 { "" } else { "s" }
        );
    }
    Ok(result)
}
