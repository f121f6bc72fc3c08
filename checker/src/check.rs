//! Checking a whole history: parse, partition, search partitions in parallel.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::compact::CompactHistory;
use crate::error::Error;
use crate::explain::{OpSummary, Step, Violation};
use crate::history::History;
use crate::model::Model;
use crate::search::{Limits, MemoryBudget, Search, SearchOutcome};

/// How to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Stop after this long and answer [`Verdict::Unknown`]. `None`: no limit.
    pub time_limit: Option<Duration>,
    /// How many threads search partitions; 0 means one per available core.
    pub threads: usize,
    /// The bytes the searches may hold together (their visited configurations and
    /// memoised transitions; the history itself is not counted). A partition whose search
    /// would pass it ends, and the verdict is [`Verdict::Unknown`] unless another partition
    /// is illegal. `None`: no limit.
    pub memory_limit: Option<usize>,
}

impl CheckOptions {
    /// Half of the machine's memory (from `/proc/meminfo`), the memory limit `gauntlet
    /// check` and `gauntlet run` use unless told otherwise; `None` where the machine does not
    /// say.
    pub fn machine_memory_limit() -> Option<usize> {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let total = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
        let kib: usize = total.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / 2 * 1024)
    }
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

struct Partition<O> {
    /// The key's place in the history.
    place: u32,
    /// The partition's operations (positions among its key's), in order of invocation.
    ops: Vec<u32>,
    model_ops: Vec<O>,
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
/// do not fit the model. [`check_compact`] checks a history read for checking alone.
pub fn check<M: Model>(
    model: &M,
    history: &History,
    options: &CheckOptions,
) -> Result<CheckResult, Error> {
    check_compact(model, &CompactHistory::from_history(history)?, options)
}

/// Checks a [`CompactHistory`] (read with [`CompactHistory::read_file`], which streams),
/// as [`check`] does.
///
/// Operations are partitioned by key (operations on different keys are independent: the
/// models are of one object per key, and linearizability is local, Herlihy and Wing §3.3).
/// Each partition's operations are turned into the model's terms on the thread that takes
/// it; the error of the earliest operation that does not fit the model is the result.
pub fn check_compact<M: Model>(
    model: &M,
    history: &CompactHistory,
    options: &CheckOptions,
) -> Result<CheckResult, Error> {
    let start = Instant::now();
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    };

    // The partitions are the history's keys, in order of first appearance.
    let parse_threads = if history.len() < PARALLEL_FROM { 1 } else { threads };
    let places: Vec<u32> = (0..history.keys.len() as u32).collect();
    let parsed = parallel_map(places, parse_threads, |k| parse_partition(model, history, k));
    let mut partitions = Vec::with_capacity(parsed.len());
    let mut first_error: Option<(u64, Error)> = None;
    let mut operations = 0;
    for p in parsed {
        match p {
            Ok((p, parsed)) => {
                operations += parsed;
                partitions.push(p);
            }
            Err((at, e)) => {
                if first_error.as_ref().is_none_or(|(first, _)| at < *first) {
                    first_error = Some((at, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    partitions.retain(|p| !p.ops.is_empty());

    let nemesis_events = history.nemesis_events();
    let deadline = options.time_limit.map(|d| start + d);
    let budget = options.memory_limit.map(|limit| MemoryBudget { limit, held: 0.into() });
    let outcomes = schedule(model, history, &partitions, threads, deadline, budget.as_ref());
    let configurations = outcomes.iter().map(|(_, c)| c).sum();

    let mut result = CheckResult {
        verdict: Verdict::Valid,
        reason: String::new(),
        operations,
        partitions: partitions.len(),
        nemesis_events,
        configurations,
        violation: None,
    };
    let illegal = outcomes.iter().enumerate().find_map(|(i, o)| match o {
        (Some(SearchOutcome::Illegal(f)), _) => Some((i, f)),
        _ => None,
    });
    if let Some((i, failure)) = illegal {
        let p = &partitions[i];
        let summary = |k: usize| OpSummary::new(history, (p.place, p.ops[k]));
        let violation = Violation {
            model: model.name().to_string(),
            key: key_text(history, p.place),
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
            reason: model.refusal(&failure.state, &p.model_ops[failure.blocked]),
            pending: failure.pending.iter().map(|&k| summary(k)).collect(),
        };
        result.verdict = Verdict::Invalid;
        result.reason = violation.summary();
        result.violation = Some(violation);
    } else if outcomes.iter().any(|o| !matches!(o, (Some(SearchOutcome::Linearizable), _))) {
        result.verdict = Verdict::Unknown;
        let out_of_memory = outcomes.iter().enumerate().find_map(|(i, o)| match o {
            (Some(SearchOutcome::OutOfMemory(bytes)), configurations) => {
                Some((i, *bytes, *configurations))
            }
            _ => None,
        });
        result.reason = match (out_of_memory, options.time_limit) {
            (Some((i, bytes, configurations)), _) => format!(
                "memory limit of {} MiB reached: the search of {} ({} operations) held {} MiB \
                 after {configurations} configurations",
                options.memory_limit.unwrap_or(0) >> 20,
                key_text(history, partitions[i].place)
                    .map_or("the history".into(), |k| format!("key {k}")),
                partitions[i].ops.len(),
                bytes >> 20,
            ),
            (None, Some(d)) => format!("time limit of {} s reached", d.as_secs_f64()),
            (None, None) => "search stopped".into(),
        };
    } else {
        result.reason = format!(
            "{} operations in {} partition{}",
            operations,
            partitions.len(),
            if partitions.len() == 1 { "" } else { "s" }
        );
    }
    Ok(result)
}

/// A partition's key as text (`None`: the operations without a key).
fn key_text(history: &CompactHistory, place: u32) -> Option<String> {
    history.keys[place as usize].key.map(|k| history.values.get(k).to_string())
}

/// A partition in the model's terms, and how many of its operations the model kept, or
/// the earliest operation that does not fit (its place among all invocations) and the
/// error.
type Parsed<O> = Result<(Partition<O>, usize), (u64, Error)>;

fn parse_partition<M: Model>(model: &M, history: &CompactHistory, place: u32) -> Parsed<M::Op> {
    let records = &history.keys[place as usize].ops;
    let mut ops = Vec::with_capacity(records.len());
    let mut model_ops = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let i = i as u32;
        let op = history.operation((place, i)).map_err(|e| (record.seq, e))?;
        match model.parse(&op) {
            Ok(Some(m)) => {
                ops.push(i);
                model_ops.push(m);
            }
            Ok(None) => {}
            Err(e) => {
                let line = match (e.in_completion, op.complete_line) {
                    (true, Some(c)) => c,
                    _ => op.invoke_line,
                };
                return Err((record.seq, Error::line(history.name(), line, e.message)));
            }
        }
    }
    let parsed = ops.len();
    // Indeterminate operations that nothing could observe are taken to have had no effect.
    let unknown: Vec<usize> =
        (0..ops.len()).filter(|&j| history.points((place, ops[j])).1.is_none()).collect();
    if !unknown.is_empty() {
        let mut dropped = vec![false; ops.len()];
        for j in unknown {
            let others: Vec<&M::Op> =
                model_ops.iter().enumerate().filter(|&(k, _)| k != j).map(|(_, m)| m).collect();
            dropped[j] = model.unobservable(&model_ops[j], &others);
        }
        let mut keep = dropped.iter().map(|&d| !d);
        ops.retain(|_| keep.next().unwrap_or(true));
        let mut keep = dropped.iter().map(|&d| !d);
        model_ops.retain(|_| keep.next().unwrap_or(true));
    }
    Ok((Partition { place, ops, model_ops }, parsed))
}

/// `f` over `items` on `threads` threads (the calling one among them), results in order.
fn parallel_map<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else { break };
        let Some(item) = item.lock().unwrap_or_else(|e| e.into_inner()).take() else { continue };
        let r = f(item);
        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(n) {
            s.spawn(work);
        }
        work();
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every item was mapped"))
        .collect()
}

/// The smallest time slice of a partition's search, in steps.
const MIN_SLICE: u64 = 1 << 12;

/// A partition's first time slice is at least this many steps per operation: a search that
/// never backtracks takes about one or two per operation.
const FIRST_SLICE_PER_OP: u64 = 8;

/// Histories with fewer operations than this start on the calling thread alone.
const PARALLEL_FROM: usize = 1024;

type Outcome<S> = (Option<SearchOutcome<S>>, usize);

/// Searches the partitions on `threads` threads, in time slices (for a small history,
/// the first slice of each partition on the calling thread): each thread takes
/// the partition that has had the least work so far (the smaller on a tie) and runs it
/// for as long as it has already run (at least [`MIN_SLICE`] steps, and
/// [`FIRST_SLICE_PER_OP`] per operation). A partition that is hard to decide thus
/// cannot hold up an easy illegal one, which cancels everything when found.
/// Returns, per partition, its outcome (`None`: cancelled) and configurations visited.
fn schedule<M: Model>(
    model: &M,
    history: &CompactHistory,
    partitions: &[Partition<M::Op>],
    threads: usize,
    deadline: Option<std::time::Instant>,
    memory: Option<&MemoryBudget>,
) -> Vec<Outcome<M::State>> {
    struct Queue<'a, M: Model> {
        /// (work so far, operations, partition) of the partitions waiting for a thread,
        /// least work first
        ready: BinaryHeap<std::cmp::Reverse<(u64, usize, usize)>>,
        searches: Vec<Option<Search<'a, M>>>,
        outcomes: Vec<Outcome<M::State>>,
        running: usize,
    }
    let cancel = AtomicBool::new(false);
    let limits = Limits { deadline, cancel: &cancel, memory };
    // per partition: its calls, returns and operations, as the search takes them
    type Input<'p, O> = (Vec<u64>, Vec<Option<u64>>, Vec<&'p O>);
    let inputs: Vec<Input<'_, M::Op>> = partitions
        .iter()
        .map(|p| {
            let (calls, rets) = p.ops.iter().map(|&o| history.points((p.place, o))).unzip();
            (calls, rets, p.model_ops.iter().collect())
        })
        .collect();
    let queue = Mutex::new(Queue::<M> {
        ready: (0..partitions.len())
            .map(|i| std::cmp::Reverse((0, partitions[i].ops.len(), i)))
            .collect(),
        searches: partitions.iter().map(|_| None).collect(),
        outcomes: partitions.iter().map(|_| (None, 0)).collect(),
        running: 0,
    });
    let wake = Condvar::new();
    // `first_round`: only give each partition its first slice, then stop.
    let work = |first_round: bool| {
        let lock = || queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut q = lock();
        loop {
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            if first_round && q.ready.peek().is_some_and(|r| r.0 .0 > 0) {
                return;
            }
            let Some(std::cmp::Reverse((done, size, i))) = q.ready.pop() else {
                if q.running == 0 {
                    return;
                }
                // another thread may put its partition back
                q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            q.running += 1;
            let search = q.searches[i].take();
            drop(q);
            let (calls, rets, model_ops) = &inputs[i];
            let mut search = search.unwrap_or_else(|| Search::new(model, model_ops, calls, rets));
            // A first slice long enough for an easy partition to finish in it, so that its
            // search is freed at once: partitions left waiting keep their memory.
            let slice = done.max(MIN_SLICE).max(FIRST_SLICE_PER_OP * size as u64);
            let outcome = search.run(slice, &limits);
            q = lock();
            q.running -= 1;
            match outcome {
                None => {
                    q.searches[i] = Some(search);
                    q.ready.push(std::cmp::Reverse((done + slice, size, i)));
                }
                Some(o) => {
                    if let Some(budget) = memory {
                        budget.release(&search);
                    }
                    if matches!(o, SearchOutcome::Illegal(_)) {
                        cancel.store(true, Ordering::Relaxed);
                    }
                    q.outcomes[i] = (Some(o), search.configurations());
                }
            }
            wake.notify_all();
        }
    };
    // Small histories are mostly decided within the first slices, where starting threads
    // would cost more than it saves: those run on the calling thread first.
    let total: usize = partitions.iter().map(|p| p.ops.len()).sum();
    if total < PARALLEL_FROM {
        work(true);
    }
    let unfinished = {
        let q = queue.lock().unwrap_or_else(|e| e.into_inner());
        !q.ready.is_empty() && !cancel.load(Ordering::Relaxed)
    };
    let threads = threads.clamp(1, partitions.len().max(1));
    if unfinished && threads > 1 {
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(|| work(false));
            }
            work(false);
        });
    } else if unfinished {
        work(false);
    }
    let q = queue.into_inner().unwrap_or_else(|e| e.into_inner());
    q.outcomes
}
