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
use crate::search::{Failure, Limits, MemoryBudget, Search, SearchOutcome};

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
/// Each partition's operations are turned into the model's terms by the thread that takes
/// it first, and freed when its search ends; the error of the earliest operation that does
/// not fit the model is the result, whatever the searches found.
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
    let deadline = options.time_limit.map(|d| start + d);
    let budget = options.memory_limit.map(|limit| MemoryBudget { limit, held: 0.into() });
    let mut runs = schedule(model, history, threads, deadline, budget.as_ref());

    // Partitions a cancellation left unread are read now: their errors come first.
    let unread: Vec<u32> =
        (0..runs.len() as u32).filter(|&k| runs[k as usize].read.is_none()).collect();
    let late = parallel_map(unread.clone(), threads, |k| {
        parse_partition(model, history, k).map(|p| (p.ops.len(), p.parsed))
    });
    for (k, r) in unread.into_iter().zip(late) {
        runs[k as usize].read = Some(r);
    }
    // the error of the earliest operation that does not fit, whatever the searches found
    let earliest = runs
        .iter()
        .enumerate()
        .filter_map(|(k, r)| match &r.read {
            Some(Err((at, _))) => Some((*at, k)),
            _ => None,
        })
        .min();
    if let Some((_, k)) = earliest {
        if let Some(Err((_, e))) = runs.swap_remove(k).read {
            return Err(e);
        }
    }
    let (mut operations, mut partitions) = (0, 0);
    for (kept, parsed) in runs.iter().filter_map(|r| r.read.as_ref()?.as_ref().ok()) {
        operations += parsed;
        partitions += usize::from(*kept > 0);
    }

    let configurations = runs.iter().map(|r| r.configurations).sum();
    let mut result = CheckResult {
        verdict: Verdict::Valid,
        reason: String::new(),
        operations,
        partitions,
        nemesis_events: history.nemesis_events(),
        configurations,
        violation: None,
    };
    let illegal = runs.iter().enumerate().find_map(|(k, r)| Some((k as u32, r.illegal.as_ref()?)));
    if let Some((place, illegal)) = illegal {
        let (failure, positions, reason) = illegal;
        let summary = |i: usize| OpSummary::new(history, (place, positions[i]));
        let violation = Violation {
            model: model.name().to_string(),
            key: key_text(history, place),
            partition_operations: positions.len(),
            initial_state: model.describe_state(&model.init()),
            prefix: failure
                .prefix
                .iter()
                .map(|(i, st)| Step {
                    operation: summary(*i),
                    state_after: model.describe_state(st),
                })
                .collect(),
            operation: summary(failure.blocked),
            state: model.describe_state(&failure.state),
            reason: reason.clone(),
            pending: failure.pending.iter().map(|&i| summary(i)).collect(),
        };
        result.verdict = Verdict::Invalid;
        result.reason = violation.summary();
        result.violation = Some(violation);
    } else if runs.iter().any(|r| !matches!(r.outcome, Some(SearchOutcome::Linearizable))) {
        result.verdict = Verdict::Unknown;
        let out_of_memory = runs.iter().enumerate().find_map(|(k, r)| match r.outcome {
            Some(SearchOutcome::OutOfMemory(bytes)) => Some((k as u32, r, bytes)),
            _ => None,
        });
        result.reason = match (out_of_memory, options.time_limit) {
            (Some((place, run, bytes)), _) => format!(
                "memory limit of {} MiB reached: the search of {} ({} operations) held {} MiB \
                 after {} configurations",
                options.memory_limit.unwrap_or(0) >> 20,
                key_text(history, place).map_or("the history".into(), |k| format!("key {k}")),
                run.read.as_ref().map_or(0, |r| r.as_ref().map_or(0, |r| r.0)),
                bytes >> 20,
                run.configurations,
            ),
            (None, Some(d)) => format!("time limit of {} s reached", d.as_secs_f64()),
            (None, None) => "search stopped".into(),
        };
    } else {
        result.reason = format!(
            "{operations} operations in {partitions} partition{}",
            if partitions == 1 { "" } else { "s" }
        );
    }
    Ok(result)
}

/// A partition's key as text (`None`: the operations without a key).
fn key_text(history: &CompactHistory, place: u32) -> Option<String> {
    history.keys[place as usize].key.map(|k| history.values.get(k).to_string())
}

/// A partition in the model's terms.
struct Partition<O> {
    /// Its operations the search takes (positions among its key's), in order of invocation.
    ops: Vec<u32>,
    model_ops: Vec<O>,
    /// Their real-time points: calls, and returns where the outcome is known.
    calls: Vec<u64>,
    rets: Vec<Option<u64>>,
    /// How many of its operations the model kept (before those nothing could observe were
    /// left out).
    parsed: usize,
}

/// A partition in the model's terms, or the earliest operation that does not fit (its
/// place among all invocations) and the error.
type Parsed<O> = Result<Partition<O>, (u64, Error)>;

fn parse_partition<M: Model>(model: &M, history: &CompactHistory, place: u32) -> Parsed<M::Op> {
    let records = &history.keys[place as usize].ops;
    let mut ops = Vec::with_capacity(records.len());
    let mut model_ops = Vec::with_capacity(records.len());
    let (mut calls, mut rets) = (Vec::new(), Vec::new());
    for (i, &seq) in records.iter().enumerate() {
        history.prefetch(records.get(i + 8).copied(), records.get(i + 4).copied());
        let i = i as u32;
        let seq = u64::from(seq);
        let op = history.operation((place, i)).map_err(|e| (seq, e))?;
        match model.parse(&op) {
            Ok(Some(m)) => {
                ops.push(i);
                model_ops.push(m);
                let (call, ret) = history.points((place, i));
                calls.push(call);
                rets.push(ret);
            }
            Ok(None) => {}
            Err(e) => {
                let line = match (e.in_completion, op.complete_line) {
                    (true, Some(c)) => c,
                    _ => op.invoke_line,
                };
                return Err((seq, Error::line(history.name(), line, e.message)));
            }
        }
    }
    let parsed = ops.len();
    // Indeterminate operations that nothing could observe are taken to have had no effect.
    let unknown: Vec<usize> = (0..ops.len()).filter(|&j| rets[j].is_none()).collect();
    if !unknown.is_empty() {
        let mut dropped = vec![false; ops.len()];
        for j in unknown {
            let others: Vec<&M::Op> =
                model_ops.iter().enumerate().filter(|&(k, _)| k != j).map(|(_, m)| m).collect();
            dropped[j] = model.unobservable(&model_ops[j], &others);
        }
        retain_kept(&mut ops, &dropped);
        retain_kept(&mut model_ops, &dropped);
        retain_kept(&mut calls, &dropped);
        retain_kept(&mut rets, &dropped);
    }
    Ok(Partition { ops, model_ops, calls, rets, parsed })
}

/// Leaves out of `items` those whose place is marked in `dropped`.
fn retain_kept<T>(items: &mut Vec<T>, dropped: &[bool]) {
    let mut drop = dropped.iter();
    items.retain(|_| !drop.next().copied().unwrap_or(false));
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

/// What became of one partition.
struct Run<S> {
    /// Its reading into the model's terms: the operations searched and those the model kept,
    /// or the error. `None`: never read (a cancellation came first).
    read: Option<Result<(usize, usize), (u64, Error)>>,
    /// How its search ended; `None`: cancelled, or never started.
    outcome: Option<SearchOutcome<S>>,
    configurations: usize,
    /// For an illegal partition: the dead end, the positions of the operations searched,
    /// and why the model refuses the blocked one.
    illegal: Option<(Failure<S>, Vec<u32>, String)>,
}

/// A partition's search in progress, with the positions of the operations it searches.
type Searching<'m, M> = (Search<'m, M>, Vec<u32>);

/// Searches the partitions on `threads` threads, in time slices (for a small history,
/// the first slice of each partition on the calling thread): each thread takes
/// the partition that has had the least work so far (the smaller on a tie), reads it into
/// the model's terms if it is new, and runs it for as long as it has already run (at least
/// [`MIN_SLICE`] steps, and [`FIRST_SLICE_PER_OP`] per operation). A partition that is hard
/// to decide thus cannot hold up an easy illegal one, which cancels everything when found;
/// so does an operation that does not fit the model.
fn schedule<M: Model>(
    model: &M,
    history: &CompactHistory,
    threads: usize,
    deadline: Option<std::time::Instant>,
    memory: Option<&MemoryBudget>,
) -> Vec<Run<M::State>> {
    struct Queue<'m, M: Model> {
        /// (work so far, operations, partition) of the partitions waiting for a thread,
        /// least work first
        ready: BinaryHeap<std::cmp::Reverse<(u64, usize, usize)>>,
        searches: Vec<Option<Searching<'m, M>>>,
        runs: Vec<Run<M::State>>,
        running: usize,
    }
    let cancel = AtomicBool::new(false);
    let limits = Limits { deadline, cancel: &cancel, memory };
    let keys = &history.keys;
    let queue = Mutex::new(Queue::<M> {
        ready: (0..keys.len()).map(|i| std::cmp::Reverse((0, keys[i].ops.len(), i))).collect(),
        searches: keys.iter().map(|_| None).collect(),
        runs: keys
            .iter()
            .map(|_| Run { read: None, outcome: None, configurations: 0, illegal: None })
            .collect(),
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
            let searching = q.searches[i].take();
            drop(q);
            let (mut search, positions) = match searching {
                Some(s) => s,
                None => match parse_partition(model, history, i as u32) {
                    Ok(p) => {
                        let read = Ok((p.ops.len(), p.parsed));
                        let search = Search::new(model, p.model_ops, &p.calls, &p.rets);
                        q = lock();
                        q.runs[i].read = Some(read);
                        drop(q);
                        (search, p.ops)
                    }
                    Err(e) => {
                        cancel.store(true, Ordering::Relaxed);
                        q = lock();
                        q.runs[i].read = Some(Err(e));
                        q.running -= 1;
                        wake.notify_all();
                        continue;
                    }
                },
            };
            // A first slice long enough for an easy partition to finish in it, so that its
            // search is freed at once: partitions left waiting keep their memory.
            let slice = done.max(MIN_SLICE).max(FIRST_SLICE_PER_OP * size as u64);
            let outcome = search.run(slice, &limits);
            let illegal = match &outcome {
                Some(SearchOutcome::Illegal(f)) => {
                    Some(model.refusal(&f.state, search.op(f.blocked)))
                }
                _ => None,
            };
            q = lock();
            q.running -= 1;
            match outcome {
                None => {
                    q.searches[i] = Some((search, positions));
                    q.ready.push(std::cmp::Reverse((done + slice, size, i)));
                }
                Some(o) => {
                    if let Some(budget) = memory {
                        budget.release(&search);
                    }
                    let run = &mut q.runs[i];
                    run.configurations = search.configurations();
                    match (o, illegal) {
                        (SearchOutcome::Illegal(f), Some(reason)) => {
                            cancel.store(true, Ordering::Relaxed);
                            run.illegal = Some((f, positions, reason));
                            run.outcome = Some(SearchOutcome::Aborted);
                        }
                        (o, _) => run.outcome = Some(o),
                    }
                }
            }
            wake.notify_all();
        }
    };
    // Small histories are mostly decided within the first slices, where starting threads
    // would cost more than it saves: those run on the calling thread first.
    if history.len() < PARALLEL_FROM {
        work(true);
    }
    let unfinished = {
        let q = queue.lock().unwrap_or_else(|e| e.into_inner());
        !q.ready.is_empty() && !cancel.load(Ordering::Relaxed)
    };
    let threads = threads.clamp(1, keys.len().max(1));
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
    q.runs
}
