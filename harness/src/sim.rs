//! `gauntlet sim`: randomized torture of the protocol core on the deterministic simulator.
//!
//! Each seed gives a cluster (3 or 5 peers) and a fault schedule
//! ([`Schedule::generate`](raft::sim::Schedule::generate)); the run checks the safety invariants
//! after every step and the seed labs' tester checks at the end (see [`raft::sim::torture`]).
//! Seeds run on `--jobs` threads. The first failing seed (the lowest) is shrunk to a short
//! schedule that still fails the same way, printed step by step and as a replay command:
//! `gauntlet sim --seed S [--bug B] --steps "<schedule>"`.
//!
//! Every run reports the protocol decisions its peers took; the range prints how many of the
//! core's decisions its runs took, the rarest, and those never taken (`--coverage`: all of
//! them, by family). After the seeds, `--hunt N` mutants (a tenth of the seeds by default) of
//! the schedules that reached the rarest decisions run too ([`crate::hunt`]); a failing
//! mutant replays and shrinks like a seed, from its printed `--steps`.
//!
//! Exit codes as [`crate::exit`]: 0 no violation, 1 a violation, 2 no violation but a schedule
//! that ran out of its event budget, 3 bad options, 255 the tool failed (a violation that
//! passed when run again, a schedule that cannot be printed).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use raft::sim::torture::{run, silence_run_panics, Failure, Passed, RunOptions, Schedule};
use raft::sim::Family;
use raft::sim::{shrink_failure, Shrunk};
use raft::Bug;

use crate::exit;
use crate::hunt::{hunt_rng, next_mutants, Origin, RunRef, Tally};

/// How many events `--trace` keeps: enough for any run of a generated schedule.
const FULL_TRACE: usize = 500_000;

/// Options of `gauntlet sim`.
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// The seeds to run, `A..B` (B excluded) [default: 0..1000].
    #[arg(long)]
    pub seeds: Option<String>,
    /// Run this one seed (to replay a failure); with `--steps` or `--schedule`, under that
    /// schedule instead of the seed's own.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Every peer runs this deliberately broken variant of the catalogue.
    #[arg(long, value_parser = crate::node::bug_values(false))]
    pub bug: Option<String>,
    /// With `--seed`: print the run's whole trace.
    #[arg(long)]
    pub trace: bool,
    /// Threads [default: all cores].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Shrink the first failure (the default, except when the schedule is given).
    #[arg(long)]
    pub shrink: bool,
    /// Do not shrink.
    #[arg(long)]
    pub no_shrink: bool,
    /// Most candidate schedules a shrink runs.
    #[arg(long, default_value_t = 3_000)]
    pub shrink_budget: usize,
    /// With `--seed`: the schedule in its one-line encoding (as replay commands print it).
    #[arg(long)]
    pub steps: Option<String>,
    /// With `--seed`: the schedule as a JSON file (as `--print-schedule` writes it).
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    /// With `--seed`: print the schedule as JSON and run nothing.
    #[arg(long)]
    pub print_schedule: bool,
    /// After the seeds, this many mutants of the schedules that reached the rarest protocol
    /// decisions [default: a tenth of the seeds; 0: none].
    #[arg(long)]
    pub hunt: Option<u64>,
    /// Print every protocol decision with the runs that took it, by family.
    #[arg(long)]
    pub coverage: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What to do, once the options are checked.
enum Plan {
    /// Many seeds.
    Range { from: u64, to: u64, jobs: usize },
    /// One seed, under its own schedule or a given one.
    One { seed: u64, schedule: Schedule, given: bool },
}

struct Checked {
    plan: Plan,
    bug: Option<Bug>,
    shrink: Option<bool>,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("--seeds {text:?}: expected A..B, e.g. 0..1000"))?;
    let a: u64 = a.trim().parse().map_err(|_| format!("--seeds {text:?}: {a:?} is not a seed"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("--seeds {text:?}: {b:?} is not a seed"))?;
    if a >= b {
        return Err(format!("--seeds {text:?}: the range is empty"));
    }
    Ok((a, b))
}

fn check(args: &SimArgs) -> Result<Checked, String> {
    let bug = match &args.bug {
        None => None,
        Some(name) => match name.parse::<Bug>().map_err(|e| format!("--bug: {e}"))? {
            bug if bug.in_file_storage() => {
                return Err(format!(
                    "--bug {bug}: a bug of FileStorage, which the simulator does not run (its \
                     peers' storage is a model); run it on real processes with a crash disk: \
                     gauntlet run --bug {bug} --nemesis crash,disk-error"
                ))
            }
            bug => Some(bug),
        },
    };
    if args.shrink && args.no_shrink {
        return Err("--shrink and --no-shrink contradict each other".to_string());
    }
    let shrink = if args.shrink {
        Some(true)
    } else if args.no_shrink {
        Some(false)
    } else {
        None
    };
    let plan = match args.seed {
        Some(seed) => {
            if args.seeds.is_some() {
                return Err("--seed runs one seed: leave out --seeds".to_string());
            }
            for (set, flag) in [
                (args.jobs.is_some(), "--jobs"),
                (args.hunt.is_some(), "--hunt"),
                (args.coverage, "--coverage"),
            ] {
                if set {
                    return Err(format!("{flag} is for --seeds ranges"));
                }
            }
            let (schedule, given) = match (&args.steps, &args.schedule) {
                (Some(_), Some(_)) => {
                    return Err("give the schedule by --steps or by --schedule, not both".into())
                }
                (Some(steps), None) => {
                    (Schedule::parse_compact(steps).map_err(|e| format!("--steps: {e}"))?, true)
                }
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("--schedule {}: {e}", path.display()))?;
                    let s: Schedule = serde_json::from_str(&text)
                        .map_err(|e| format!("--schedule {}: {e}", path.display()))?;
                    s.validate().map_err(|e| format!("--schedule {}: {e}", path.display()))?;
                    (s, true)
                }
                (None, None) => (Schedule::generate(seed), false),
            };
            Plan::One { seed, schedule, given }
        }
        None => {
            for (set, flag) in [
                (args.trace, "--trace"),
                (args.steps.is_some(), "--steps"),
                (args.schedule.is_some(), "--schedule"),
                (args.print_schedule, "--print-schedule"),
            ] {
                if set {
                    return Err(format!("{flag} needs --seed S (one run)"));
                }
            }
            let (from, to) = parse_range(args.seeds.as_deref().unwrap_or("0..1000"))?;
            let jobs = match args.jobs {
                Some(0) => return Err("--jobs 0: at least one thread".to_string()),
                Some(j) => j,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            Plan::Range { from, to, jobs }
        }
    };
    if args.shrink_budget == 0 {
        return Err("--shrink-budget 0: shrinking needs at least one run".to_string());
    }
    Ok(Checked { plan, bug, shrink })
}

/// Runs `gauntlet sim` and returns its exit code.
pub fn run_sim(args: SimArgs) -> i32 {
    let checked = match check(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    silence_run_panics();
    match checked.plan {
        Plan::One { seed, schedule, given } => {
            if args.print_schedule {
                match serde_json::to_string_pretty(&schedule) {
                    Ok(json) => {
                        println!("{json}");
                        return exit::VALID;
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return exit::FAILED;
                    }
                }
            }
            let shrink = checked.shrink.unwrap_or(!given);
            one(seed, checked.bug, &schedule, args.trace, shrink, args.shrink_budget)
        }
        Plan::Range { from, to, jobs } => {
            let options = RangeOptions {
                jobs,
                bug: checked.bug,
                shrink: checked.shrink.unwrap_or(true),
                budget: args.shrink_budget,
                quiet: args.quiet,
                hunt: args.hunt.unwrap_or((to - from) / 10),
                coverage_table: args.coverage,
            };
            range(from, to, options)
        }
    }
}

fn bug_text(bug: Option<Bug>) -> String {
    bug.map_or("no bug".to_string(), |b| format!("bug {b}"))
}

/// The command that replays `schedule` under `seed` and `bug`.
pub fn replay_command(seed: u64, bug: Option<Bug>, schedule: &Schedule) -> String {
    let bug = bug.map(|b| format!(" --bug {b}")).unwrap_or_default();
    format!("gauntlet sim --seed {seed}{bug} --steps \"{}\"", schedule.to_compact())
}

/// Shrinks a failure and prints the result and its replay command.
fn report_failure(
    seed: u64,
    bug: Option<Bug>,
    schedule: &Schedule,
    failure: &Failure,
    shrink: bool,
    budget: usize,
) {
    let opts = RunOptions { bug, ..RunOptions::new(seed) };
    let started = Instant::now();
    let (schedule, report) = if shrink {
        let Shrunk { schedule: small, runs } = shrink_failure(&opts, schedule, failure, budget);
        let commands = match small.proposals() {
            1 => "1 command".to_string(),
            k => format!("{k} commands"),
        };
        println!(
            "shrunk from {} to {} steps ({commands} proposed) in {runs} runs, {:.2} s:",
            schedule.steps.len(),
            small.steps.len(),
            started.elapsed().as_secs_f64()
        );
        print!("{}", small.describe("  "));
        let report = match run(&opts, &small) {
            Err(f) => f.message,
            Ok(_) => "(the replay passed: this run is not deterministic, which is a bug of the simulator)".to_string(),
        };
        (small, report)
    } else {
        println!("schedule ({} steps):", schedule.steps.len());
        print!("{}", schedule.describe("  "));
        (schedule.clone(), failure.message.clone())
    };
    println!("report of the replay:");
    for line in report.lines() {
        println!("  {line}");
    }
    println!("replay: {}", replay_command(seed, bug, &schedule));
}

fn one(
    seed: u64,
    bug: Option<Bug>,
    schedule: &Schedule,
    trace: bool,
    shrink: bool,
    budget: usize,
) -> i32 {
    println!("gauntlet sim: seed {seed}, {}, {} steps", bug_text(bug), schedule.steps.len());
    let opts = RunOptions {
        bug,
        trace_len: if trace { FULL_TRACE } else { 100 },
        keep_trace: trace,
        ..RunOptions::new(seed)
    };
    match run(&opts, schedule) {
        Ok(passed) => {
            if let Some(t) = &passed.trace {
                print!("{t}");
            }
            println!(
                "no violation: {} ms of virtual time, {} proposals accepted, {} seen committed, final command at index {}",
                passed.virtual_ms, passed.accepted, passed.seen_committed, passed.final_index
            );
            exit::VALID
        }
        Err(failure) if failure.is_runaway() => {
            if trace {
                println!("{}", failure.message);
            }
            println!("undecided: {}", failure.headline());
            println!(
                "  not a violation: the schedule ran out of its budget of {} events before its \
                 end; a message storm or livelock would look the same (replay with --trace to \
                 see which)",
                schedule.event_budget()
            );
            exit::UNKNOWN
        }
        Err(failure) => {
            if trace {
                println!("{}", failure.message);
            }
            println!("violation ({}): {}", failure.kind, failure.headline());
            report_failure(seed, bug, schedule, &failure, shrink, budget);
            exit::INVALID
        }
    }
}

/// What a seed range is asked to do besides its seeds.
struct RangeOptions {
    jobs: usize,
    bug: Option<Bug>,
    shrink: bool,
    budget: usize,
    quiet: bool,
    hunt: u64,
    coverage_table: bool,
}

/// Runs `runs` on `jobs` threads; returns each one's outcome, in the order of `runs`.
fn run_all(
    runs: &[RunRef],
    bug: Option<Bug>,
    jobs: usize,
    bar: &ProgressBar,
) -> Vec<Result<Passed, Failure>> {
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<Option<Result<Passed, Failure>>>> = Mutex::new(vec![None; runs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(runs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(r) = runs.get(i) else { break };
                let opts = RunOptions { bug, trace_len: 0, ..RunOptions::new(r.seed) };
                let outcome = match &r.schedule {
                    Some(s) => run(&opts, s),
                    None => run(&opts, &Schedule::generate(r.seed)),
                };
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
                bar.inc(1);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every run ran"))
        .collect()
}

fn range(from: u64, to: u64, o: RangeOptions) -> i32 {
    let count = to - from;
    let hunt = if o.hunt > 0 {
        format!(", then {} mutants hunting rare decisions", o.hunt)
    } else {
        String::new()
    };
    println!("gauntlet sim: seeds {from}..{to}{hunt}, {}, {} jobs", bug_text(o.bug), o.jobs);
    let bar = ProgressBar::new(count);
    if o.quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg} {per_sec:>12}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("seeds");
    let started = Instant::now();
    let mut tally = Tally::new();
    let mut failures: Vec<(RunRef, Failure)> = Vec::new();
    let mut virtual_ms = 0;
    let mut tally_all = |runs: Vec<RunRef>,
                         origin: &dyn Fn(&RunRef) -> Origin,
                         tally: &mut Tally,
                         failures: &mut Vec<(RunRef, Failure)>| {
        for (r, outcome) in runs.iter().zip(run_all(&runs, o.bug, o.jobs, &bar)) {
            let coverage = match outcome {
                Ok(p) => {
                    virtual_ms += p.virtual_ms;
                    p.coverage
                }
                Err(f) => {
                    virtual_ms += f.at_us / 1000;
                    let c = f.coverage.clone();
                    failures.push((r.clone(), f));
                    c
                }
            };
            tally.add(r, origin(r), &coverage);
        }
    };
    let seeds: Vec<RunRef> = (from..to).map(|seed| RunRef { seed, schedule: None }).collect();
    tally_all(seeds, &|r| Origin::Seed(Family::of_seed(r.seed)), &mut tally, &mut failures);
    let seed_secs = started.elapsed().as_secs_f64();
    if o.hunt > 0 {
        bar.set_length(count + o.hunt);
        bar.set_message("seeds and mutants");
        let mut rng = hunt_rng(from);
        let batch = (o.jobs * 16) as u64;
        let mut done = 0;
        while done < o.hunt {
            let mutants = next_mutants(&tally, &mut rng, batch.min(o.hunt - done) as usize);
            if mutants.is_empty() {
                break;
            }
            done += mutants.len() as u64;
            tally_all(mutants, &|_| Origin::Mutant, &mut tally, &mut failures);
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeds run: {count} in {seed_secs:.1} s ({:.0} seeds/s); {} runs in all, {secs:.1} s, {:.0} s of virtual time",
        count as f64 / seed_secs.max(1e-9),
        tally.runs,
        virtual_ms as f64 / 1000.0
    );
    print!("{}", tally.summary());
    if o.hunt > 0 {
        print!("{}", tally.hunt_summary());
    }
    if o.coverage_table {
        print!("{}", tally.table());
    }
    failures.sort_by_key(|(r, _)| (r.schedule.is_some(), r.seed));
    let (runaways, failures): (Vec<_>, Vec<_>) =
        failures.into_iter().partition(|(_, f)| f.is_runaway());
    let names = |list: &[(RunRef, Failure)]| {
        let mut names: Vec<String> = list
            .iter()
            .take(20)
            .map(|(r, _)| {
                if r.schedule.is_some() {
                    format!("a mutant of {}", r.seed)
                } else {
                    r.seed.to_string()
                }
            })
            .collect();
        if list.len() > 20 {
            names.push("...".to_string());
        }
        names.join(", ")
    };
    if !runaways.is_empty() {
        println!(
            "undecided: {} of {} runs ran out of their event budget ({}): not \
             violations; replay one with --seed S --trace to see whether it is a message storm",
            runaways.len(),
            tally.runs,
            names(&runaways)
        );
    }
    let Some((first, _)) = failures.first() else {
        println!("violations: none");
        return if runaways.is_empty() { exit::VALID } else { exit::UNKNOWN };
    };
    let first = first.clone();
    println!("violations: {} of {} runs ({})", failures.len(), tally.runs, names(&failures));
    // By kind, with the first run of each.
    let mut kinds: Vec<(String, usize, String)> = Vec::new();
    for (r, f) in &failures {
        match kinds.iter_mut().find(|(k, _, _)| *k == f.kind) {
            Some((_, n, _)) => *n += 1,
            None => kinds.push((f.kind.clone(), 1, names(&[(r.clone(), f.clone())]))),
        }
    }
    for (kind, n, first) in &kinds {
        println!("  {n:>6} {kind} (first: seed {first})");
    }
    // Replay the first failure with a trace, for its report.
    let seed = first.seed;
    let schedule = first.schedule();
    let opts = RunOptions { bug: o.bug, ..RunOptions::new(seed) };
    let failure = match run(&opts, &schedule) {
        Err(f) => f,
        Ok(_) => {
            println!("first failing seed: {seed}, but it passed when run again: this run is not deterministic, which is a bug of the simulator");
            return exit::FAILED;
        }
    };
    match first.schedule {
        None => println!("first failing seed: {seed}"),
        Some(_) => println!("first failure: a mutant, under seed {seed}"),
    }
    println!("  violation ({}): {}", failure.kind, failure.headline());
    report_failure(seed, o.bug, &schedule, &failure, o.shrink, o.budget);
    exit::INVALID
}
