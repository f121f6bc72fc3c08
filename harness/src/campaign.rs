//! `gauntlet campaign`: many runs from one master seed, for nightly torture and the CI gate.
//!
//! Run `i` of a campaign has a seed and a mix (workload, fault kinds, cluster size, intervals,
//! load) derived from the master seed and `i` alone, so that any shard of a campaign, on any
//! machine, plans exactly the runs the whole campaign would, and each run's replay command
//! reproduces it. Every run is a `gauntlet run` child process, so a crash of one run is just a
//! verdict of that run.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::exit;
use crate::nemesis::FaultKind;
pub use crate::shard::{in_shard, parse_shard};
use crate::system::SystemArgs;

/// Options of a campaign.
#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct CampaignArgs {
    /// The system under test (as `gauntlet run --system`, with its options); the campaign
    /// draws its faults from those the system supports.
    #[command(flatten)]
    #[serde(flatten)]
    pub target: SystemArgs,
    /// Number of runs (of the whole campaign, before sharding).
    #[arg(long, conflicts_with = "duration")]
    pub runs: Option<u64>,
    /// Keep starting runs until this much time has passed: `90s`, `45m`, `8h`.
    #[arg(long)]
    pub duration: Option<String>,
    /// The master seed; random when absent, always printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds of load and faults per run.
    #[arg(long, default_value_t = 30)]
    pub time_limit: u64,
    /// Run only the i-th of n disjoint slices of the campaign (`1/2`, `2/2`). Default: from
    /// GAUNTLET_SHARD=i/n, or a batch engine's index variables (a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX with GAUNTLET_SHARD_COUNT, GitLab's CI_NODE_INDEX/CI_NODE_TOTAL,
    /// CircleCI's and Buildkite's), else 1/1.
    #[arg(long)]
    pub shard: Option<String>,
    /// Which run directories to keep: `all`, or only `failed` ones (passing runs keep their line
    /// in the summary).
    #[arg(long, default_value = "failed")]
    pub keep: String,
    /// Write a JUnit XML report for CI systems here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Where campaigns are stored.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Fix the cluster size instead of varying it over 3, 5 and 7.
    #[arg(long)]
    pub nodes: Option<u64>,
    /// Fix the workload (cas-register or kv) instead of varying it.
    #[arg(long)]
    pub workload: Option<String>,
    /// Fix the fault kinds (as `gauntlet run --nemesis`) instead of varying them.
    #[arg(long)]
    pub nemesis: Option<String>,
    /// Run every run with this bug of the catalogue.
    #[arg(long, value_parser = crate::node::bug_values(true))]
    pub bug: Option<String>,
    /// Print the plan (each run's seed, mix and command) as JSON lines and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// What one run of a campaign varies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mix {
    pub nodes: u64,
    pub workload: String,
    pub nemesis: String,
    pub nemesis_interval: f64,
    pub concurrency: u64,
    pub keys: usize,
    pub rate: f64,
    /// `--client-retries`: how often the retrying workers resend a request whose answer was
    /// lost.
    pub client_retries: u32,
}

/// One planned run.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedRun {
    pub index: u64,
    pub seed: u64,
    pub mix: Mix,
    /// The `gauntlet` arguments that run (and replay) it, without the results directory.
    pub args: Vec<String>,
}

/// One finished run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    #[serde(flatten)]
    pub plan: PlannedRun,
    pub verdict: String,
    pub exit_code: i32,
    pub failed_checks: Vec<String>,
    pub seconds: f64,
    pub replay: String,
    /// The run's directory, when it was kept.
    pub dir: Option<PathBuf>,
    /// Why a run that crashed or was interrupted ended so (the end of its stderr, or the
    /// signal that killed it).
    pub error: Option<String>,
}

/// The seed of run `index` of the campaign with `master` seed (splitmix64).
pub fn derive_seed(master: u64, index: u64) -> u64 {
    let mut z = master.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Plans run `index`: its seed and its mix, with the options the user fixed.
pub fn plan_run(args: &CampaignArgs, master: u64, index: u64) -> PlannedRun {
    let seed = derive_seed(master, index);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Even sizes too: a quorum of 3 of 4 or 4 of 6 is where off-by-one majorities show.
    let nodes = args.nodes.unwrap_or(*[3, 4, 5, 5, 6, 7].choose(&mut rng).unwrap());
    let workload = args
        .workload
        .clone()
        .unwrap_or_else(|| ["cas-register", "kv"].choose(&mut rng).unwrap().to_string());
    let nemesis = args.nemesis.clone().unwrap_or_else(|| {
        // A non-empty subset of the fault kinds the system takes; all of them half of the time.
        let all: Vec<FaultKind> =
            FaultKind::ALL.into_iter().filter(|k| args.target.takes_in_all(*k)).collect();
        let kinds: Vec<&str> = if rng.gen_bool(0.5) {
            all.iter().map(|k| k.name()).collect()
        } else {
            let picked: Vec<&str> =
                all.iter().filter(|_| rng.gen_bool(0.5)).map(|k| k.name()).collect();
            if picked.is_empty() {
                vec![all.choose(&mut rng).unwrap().name()]
            } else {
                picked
            }
        };
        kinds.join(",")
    });
    let mix = Mix {
        nodes,
        workload: workload.clone(),
        nemesis,
        nemesis_interval: [1.5, 2.0, 3.0, 5.0][rng.gen_range(0..4)],
        concurrency: [5, 10, 20][rng.gen_range(0..3)],
        keys: match [1, 3, 5, 10][rng.gen_range(0..4)] {
            // Appends to one key by many clients make a history whose linearizability no
            // search can decide in time (every interleaving of concurrent appends is its own
            // state); Jepsen bounds the operations per key for the same reason.
            1 if workload == "kv" => 3,
            k => k,
        },
        rate: [100.0, 200.0, 400.0][rng.gen_range(0..3)],
        client_retries: [0, 2, 2][rng.gen_range(0..3)],
    };
    // A system without client sessions may rightly apply a resent write twice.
    let mix =
        Mix { client_retries: mix.client_retries * u32::from(args.target.has_sessions()), ..mix };
    let mut cmd: Vec<String> = vec![
        "run".into(),
        "--seed".into(),
        seed.to_string(),
        "--time-limit".into(),
        args.time_limit.to_string(),
        "--nodes".into(),
        mix.nodes.to_string(),
        "--workload".into(),
        mix.workload.clone(),
        "--nemesis".into(),
        mix.nemesis.clone(),
        "--nemesis-interval".into(),
        mix.nemesis_interval.to_string(),
        "--concurrency".into(),
        mix.concurrency.to_string(),
        "--keys".into(),
        mix.keys.to_string(),
        "--rate".into(),
        mix.rate.to_string(),
        "--client-retries".into(),
        mix.client_retries.to_string(),
    ];
    if let Some(bug) = &args.bug {
        cmd.extend(["--bug".into(), bug.clone()]);
    }
    cmd.extend(args.target.replay_args());
    PlannedRun { index, seed, mix, args: cmd }
}

/// Parses `90s`, `45m`, `8h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("--duration takes a number with s, m or h (90s, 45m, 8h), not {s:?}");
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let value: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => value,
        'm' => value * 60.0,
        'h' => value * 3600.0,
        _ => return Err(bad()),
    };
    crate::exit::seconds("--duration", secs).map_err(|_| bad())
}

/// Runs the campaign; returns the worst run's exit code (invalid, then harness failures, then
/// unknown, then valid), 3 for bad options, 130 when interrupted.
pub fn run(args: CampaignArgs) -> i32 {
    let checked = (|| -> Result<_, String> {
        let shard = match &args.shard {
            Some(s) => parse_shard(s)?,
            None => match crate::shard::from_env(|v| std::env::var(v).ok())? {
                Some((shard, source)) => {
                    eprintln!("shard {}/{} (from {source})", shard.0, shard.1);
                    shard
                }
                None => (1, 1),
            },
        };
        let duration = args.duration.as_deref().map(parse_duration).transpose()?;
        if args.runs.is_none() && duration.is_none() {
            return Err("give --runs N or --duration D".into());
        }
        if args.runs == Some(0) {
            return Err("--runs 0: a campaign needs at least one run".into());
        }
        if args.time_limit == 0 {
            return Err("--time-limit 0: each run needs at least 1 second of load".into());
        }
        match args.nodes {
            Some(0) => return Err("--nodes 0: a cluster needs at least 1 node".into()),
            // The largest run a campaign may plan: its own size, or 7 nodes and 20 workers.
            nodes => crate::cluster::ensure_descriptors(nodes.unwrap_or(7), 20)?,
        }
        if !matches!(args.keep.as_str(), "all" | "failed") {
            return Err(format!("--keep takes all or failed, not {:?}", args.keep));
        }
        // The run options are checked by a dry plan of run 0.
        if let Some(w) = &args.workload {
            w.parse::<workloads::generator::Workload>()?;
        }
        if let Some(n) = &args.nemesis {
            args.target.system.check_faults(n, &mut FaultKind::parse_list(n)?)?;
        }
        if let Some(bug) = &args.bug {
            crate::run::check_bug(args.target.system, bug)?;
        }
        args.target.validate()?;
        Ok((shard, duration))
    })();
    let (shard, duration) = match checked {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let master = args.seed.unwrap_or_else(|| rand::thread_rng().gen());
    if args.dry_run {
        let limit = args.runs.unwrap_or(0);
        for index in (0..limit).filter(|&i| in_shard(i, shard)) {
            let plan = plan_run(&args, master, index);
            println!("{}", serde_json::to_string(&plan).unwrap_or_default());
        }
        return 0;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::FAILED;
        }
    };
    match runtime.block_on(run_campaign(args, master, shard, duration)) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}

async fn run_campaign(
    args: CampaignArgs,
    master: u64,
    shard: (u64, u64),
    duration: Option<Duration>,
) -> anyhow::Result<i32> {
    println!("master seed: {master}");
    let id = format!("campaign-{}-s{master}-{}of{}", crate::run::utc_now_stamp(), shard.0, shard.1);
    let dir = args.results.join(&id);
    let runs_dir = dir.join("runs");
    std::fs::create_dir_all(&runs_dir).map_err(|e| {
        exit::bad_input(format!(
            "--results {}: cannot create {}: {e}",
            args.results.display(),
            runs_dir.display()
        ))
    })?;
    println!("campaign: {}", dir.display());
    let exe = std::env::current_exe().context("finding the gauntlet binary")?;

    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let planned_total = args.runs.map(|r| (0..r).filter(|&i| in_shard(i, shard)).count() as u64);
    let bars = MultiProgress::new();
    if args.quiet {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let overall = bars.add(match planned_total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::new_spinner(),
    });
    overall.set_style(
        ProgressStyle::with_template("campaign {elapsed:>4} [{bar:30}] {pos}/{len} runs {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let current = bars.add(ProgressBar::new(args.time_limit));
    current.set_style(
        ProgressStyle::with_template("  run   {elapsed:>4} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );

    let mut summaries: Vec<RunSummary> = Vec::new();
    // Written before the first run, so that the summary it prints exists whatever happens
    // (a shard that gets no run, an interrupt).
    write_summary(&dir, master, shard, &summaries)?;
    let mut interrupted = false;
    let mut index = 0u64;
    loop {
        if let Some(runs) = args.runs {
            if index >= runs {
                break;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if !in_shard(index, shard) {
            index += 1;
            continue;
        }
        let plan = plan_run(&args, master, index);
        index += 1;
        current.reset();
        current.set_message(format!(
            "#{} seed {} {} nodes, {}, {}",
            plan.index, plan.seed, plan.mix.nodes, plan.mix.workload, plan.mix.nemesis
        ));
        let run_started = Instant::now();
        // What the run says on stderr (errors, panics) is kept beside the runs.
        let stderr_path = runs_dir.join(format!("run-{}.stderr", plan.index));
        let mut child = tokio::process::Command::new(&exe)
            .args(&plan.args)
            .arg("--results")
            .arg(&runs_dir)
            .arg("--quiet")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).context("creating a run's stderr file")?)
            .kill_on_drop(true)
            .spawn()
            .context("starting a run")?;
        let stdout = child.stdout.take();
        let output = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(mut out) = stdout {
                use tokio::io::AsyncReadExt;
                let _ = out.read_to_string(&mut text).await;
            }
            text
        });
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        let status: ExitStatus = loop {
            tokio::select! {
                s = child.wait() => break s.context("waiting for a run")?,
                _ = ticker.tick() => current.set_position(run_started.elapsed().as_secs().min(args.time_limit)),
                _ = crate::run::interrupted() => {
                    // The run cleans up its nodes on SIGTERM as on Ctrl-C.
                    if let Some(pid) = child.id() {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
                    }
                    interrupted = true;
                    break child.wait().await.context("waiting for an interrupted run")?;
                }
            }
        };
        let stdout = output.await.unwrap_or_default();
        let stderr_text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let seconds = run_started.elapsed().as_secs_f64();
        let summary = summarize(plan, status, &stdout, &stderr_text, seconds, &args.keep);
        if summary.error.is_none() {
            let _ = std::fs::remove_file(&stderr_path);
        }
        overall.inc(1);
        overall.set_message(tally(&summaries, Some(&summary)));
        if !args.quiet && summary.exit_code != 0 {
            bars.println(format!(
                "run #{} seed {}: {} {:?}",
                summary.plan.index, summary.plan.seed, summary.verdict, summary.failed_checks
            ))
            .ok();
        }
        summaries.push(summary);
        write_summary(&dir, master, shard, &summaries)?;
        if interrupted {
            break;
        }
    }
    overall.finish_and_clear();
    current.finish_and_clear();

    print_table(&summaries);
    if let Some(junit) = &args.junit {
        std::fs::write(junit, junit_xml(&id, &summaries))
            .with_context(|| format!("writing {}", junit.display()))?;
        println!("junit: {}", junit.display());
    }
    println!("summary: {}", dir.join("summary.json").display());
    // The index of the campaign's runs, linking to each kept run's report.
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
    match crate::report::write_campaign_index(
        &dir,
        &crate::report::CampaignRun::from_summary(&dir, &summary),
    ) {
        Ok(index) => println!("index: {}", index.display()),
        Err(e) => eprintln!("warning: could not write the campaign index: {e:#}"),
    }
    println!("{}", tally(&summaries, None));
    if interrupted {
        return Ok(exit::INTERRUPTED);
    }
    Ok(worst_exit_code(summaries.iter().map(|s| s.exit_code)))
}

fn summarize(
    plan: PlannedRun,
    status: ExitStatus,
    stdout: &str,
    stderr: &str,
    seconds: f64,
    keep: &str,
) -> RunSummary {
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status.code().unwrap_or(255);
    // A run that ended badly says why: the end of its stderr, or the signal that killed it.
    let error = match (status.code(), status.signal()) {
        (Some(0..=2), _) => None,
        (_, Some(signal)) => Some(format!("killed by signal {signal}")),
        _ => {
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            Some(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        }
    };
    let run_dir = stdout.lines().find_map(|l| l.strip_prefix("run: ")).map(PathBuf::from);
    let verdict_json: Option<Value> = run_dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("verdict.json")).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let verdict = match exit_code {
        0 => "valid",
        1 => "invalid",
        2 => "unknown",
        130 => "interrupted",
        _ => "crashed",
    }
    .to_string();
    let failed_checks = verdict_json
        .as_ref()
        .and_then(|v| v.get("failed_checks")?.as_array().cloned())
        .map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let keep_dir = keep == "all" || exit_code != 0;
    let dir = match run_dir {
        Some(d) if keep_dir => Some(d),
        Some(d) => {
            let _ = std::fs::remove_dir_all(&d);
            None
        }
        None => None,
    };
    let replay = format!("gauntlet {}", plan.args.join(" "));
    RunSummary { plan, verdict, exit_code, failed_checks, seconds, replay, dir, error }
}

/// Invalid beats a harness failure beats unknown beats valid.
pub fn worst_exit_code(codes: impl IntoIterator<Item = i32>) -> i32 {
    let rank = |c: i32| match c {
        1 => 4,
        0 => 0,
        2 => 1,
        _ => 3,
    };
    codes.into_iter().max_by_key(|&c| rank(c)).unwrap_or(0)
}

fn tally(done: &[RunSummary], extra: Option<&RunSummary>) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for s in done.iter().chain(extra) {
        *counts.entry(s.verdict.as_str()).or_insert(0) += 1;
    }
    counts.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
}

fn write_summary(
    dir: &Path,
    master: u64,
    shard: (u64, u64),
    runs: &[RunSummary],
) -> anyhow::Result<()> {
    let summary = serde_json::json!({
        "master_seed": master,
        "shard": format!("{}/{}", shard.0, shard.1),
        "runs": runs,
    });
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

fn print_table(runs: &[RunSummary]) {
    println!(
        "{:>4}  {:>20}  {:>5}  {:<12}  {:<26}  {:<8}  {:>6}  failed checks",
        "run", "seed", "nodes", "workload", "nemesis", "verdict", "secs"
    );
    for s in runs {
        println!(
            "{:>4}  {:>20}  {:>5}  {:<12}  {:<26}  {:<8}  {:>6.1}  {}",
            s.plan.index,
            s.plan.seed,
            s.plan.mix.nodes,
            s.plan.mix.workload,
            s.plan.mix.nemesis,
            s.verdict,
            s.seconds,
            s.failed_checks.join(",")
        );
    }
}

/// JUnit XML: one test case per run; invalid runs are failures, crashed or unknown ones errors.
pub fn junit_xml(name: &str, runs: &[RunSummary]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    };
    let failures = runs.iter().filter(|r| r.exit_code == 1).count();
    let errors = runs.iter().filter(|r| r.exit_code != 0 && r.exit_code != 1).count();
    let time: f64 = runs.iter().map(|r| r.seconds).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.1}\">\n",
        esc(name),
        runs.len()
    );
    for r in runs {
        xml.push_str(&format!(
            "  <testcase classname=\"gauntlet.campaign\" name=\"run {} seed {}\" time=\"{:.1}\">\n",
            r.plan.index, r.plan.seed, r.seconds
        ));
        let detail = format!("{}\nreplay: {}", r.failed_checks.join(", "), r.replay);
        match r.exit_code {
            0 => {}
            1 => xml.push_str(&format!(
                "    <failure message=\"invalid: {}\">{}</failure>\n",
                esc(&r.failed_checks.join(", ")),
                esc(&detail)
            )),
            _ => xml.push_str(&format!(
                "    <error message=\"{}\">{}</error>\n",
                esc(&r.verdict),
                esc(&detail)
            )),
        }
        xml.push_str(&format!("    <system-out>{}</system-out>\n  </testcase>\n", esc(&r.replay)));
    }
    xml.push_str("</testsuite>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: CampaignArgs,
    }

    fn args(extra: &[&str]) -> CampaignArgs {
        Wrapper::parse_from(std::iter::once("campaign").chain(extra.iter().copied())).args
    }

    #[test]
    fn shards_partition_the_campaign_exactly() {
        let a = args(&["--runs", "25"]);
        let whole: Vec<u64> = (0..25).map(|i| plan_run(&a, 9, i).seed).collect();
        let mut sharded: Vec<u64> = Vec::new();
        for i in 1..=3 {
            sharded
                .extend((0..25).filter(|&x| in_shard(x, (i, 3))).map(|x| plan_run(&a, 9, x).seed));
        }
        sharded.sort_unstable();
        let mut whole_sorted = whole.clone();
        whole_sorted.sort_unstable();
        assert_eq!(sharded, whole_sorted);
        let unique: std::collections::BTreeSet<_> = whole.iter().collect();
        assert_eq!(unique.len(), whole.len(), "every run has its own seed");
    }

    #[test]
    fn plans_vary_unless_fixed_and_replay_the_same() {
        let free = args(&["--runs", "40"]);
        let plans: Vec<PlannedRun> = (0..40).map(|i| plan_run(&free, 1, i)).collect();
        let sizes: std::collections::BTreeSet<u64> = plans.iter().map(|p| p.mix.nodes).collect();
        assert_eq!(sizes, [3, 4, 5, 6, 7].into(), "even sizes too");
        let resends: std::collections::BTreeSet<u32> =
            plans.iter().map(|p| p.mix.client_retries).collect();
        assert_eq!(resends, [0, 2].into());
        assert!(plans[0].args.windows(2).any(|w| w[0] == "--client-retries"));
        assert!(
            plans.iter().any(|p| p.mix.workload == "kv")
                && plans.iter().any(|p| p.mix.workload == "cas-register")
        );
        assert_eq!(
            plan_run(&free, 1, 7).args,
            plans[7].args,
            "a plan depends on the seed and index alone"
        );
        assert!(
            plans.iter().all(|p| p.mix.workload != "kv" || p.mix.keys >= 3),
            "kv spreads over several keys"
        );

        let fixed = args(&[
            "--runs",
            "40",
            "--nodes",
            "5",
            "--workload",
            "kv",
            "--nemesis",
            "kill",
            "--bug",
            "stale-read",
        ]);
        for i in 0..40 {
            let p = plan_run(&fixed, 1, i);
            assert_eq!(
                (p.mix.nodes, p.mix.workload.as_str(), p.mix.nemesis.as_str()),
                (5, "kv", "kill")
            );
            assert!(p.args.windows(2).any(|w| w == ["--bug", "stale-read"]));
        }
    }

    #[test]
    fn options_parse_and_bad_ones_are_named() {
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        assert!(parse_shard("4/3").unwrap_err().contains("4/3"));
        assert!(parse_shard("0/1").is_err());
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("3 weeks").unwrap_err().contains("3 weeks"));
    }

    #[test]
    fn the_worst_run_decides_the_exit_code() {
        assert_eq!(worst_exit_code([0, 2, 0]), 2);
        assert_eq!(worst_exit_code([0, 255, 2]), 255);
        assert_eq!(worst_exit_code([255, 1, 2]), 1);
        assert_eq!(worst_exit_code([]), 0);
    }

    #[test]
    fn junit_names_failures_and_errors() {
        let a = args(&["--runs", "3"]);
        let run = |i: u64, code: i32, checks: &[&str]| RunSummary {
            plan: plan_run(&a, 4, i),
            verdict: ["valid", "invalid", "crashed"][i as usize].into(),
            exit_code: code,
            failed_checks: checks.iter().map(|s| s.to_string()).collect(),
            seconds: 1.0,
            replay: "gauntlet run --seed 1 <x>".into(),
            dir: None,
            error: None,
        };
        let xml =
            junit_xml("c", &[run(0, 0, &[]), run(1, 1, &["linearizability"]), run(2, 255, &[])]);
        assert!(xml.contains("tests=\"3\" failures=\"1\" errors=\"1\""), "{xml}");
        assert!(xml.contains("<failure message=\"invalid: linearizability\">"));
        assert!(xml.contains("&lt;x&gt;"), "text is escaped");
    }
}
