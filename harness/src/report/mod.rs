//! `gauntlet report`: the HTML pages people look at instead of reading logs.
//!
//! - [`write_report`] turns a run directory (`history.jsonl`, `test.json`, `verdict.json`,
//!   `nodes/n<i>/`) into `report.html`: the verdict and every check; one figure whose panels
//!   share a time axis (faults, throughput, latency, the operations of every client worker,
//!   the nodes' leadership, downtime and restarts) with every fault period shaded through
//!   all of them; for a linearizability violation, the partial linearization as Porcupine
//!   draws it; a table of the nodes. `gauntlet run` calls it when a run ends.
//! - [`write_campaign_index`] writes a campaign's `index.html`: its runs coloured by verdict,
//!   each linking to its report.
//!
//! The pages are self-contained (inline CSS, SVG and one small script) and stay small for
//! long runs: see `docs/report.md`.

mod data;
mod faults;
mod html;
pub use html::history_page;
mod linearization;
mod plots;
mod svg;
mod timeline;

use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use checker::Verdict;
use serde_json::Value;

pub use data::RunData;

/// Arguments of `gauntlet report`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Write the HTML report of a run, or the index of a directory of runs",
    long_about = "Write the HTML report of a run, or the index of a directory of runs.\n\n\
        For a run directory (one holding history.jsonl), writes DIR/report.html. For a \
        directory whose subdirectories are runs (a campaign, or results/), writes every run's \
        report.html and DIR/index.html, which lists the runs coloured by verdict and links \
        to their reports. The pages need no network."
)]
pub struct ReportArgs {
    /// A run directory, or a directory of run directories.
    pub dir: PathBuf,
}

/// Runs `gauntlet report`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    if !dir.is_dir() {
        return Err(crate::exit::bad_input(format!("{} is not a directory", dir.display())));
    }
    if dir.join("history.jsonl").is_file() {
        let path = write_report(dir)?;
        println!("{}", path.display());
        return Ok(());
    }
    let (runs, title) = match shard_campaigns(dir)? {
        Some((runs, title)) => (runs, Some(title)),
        None => (campaign_runs(dir)?, None),
    };
    if runs.is_empty() {
        return Err(crate::exit::bad_input(format!(
            "{} is neither a run directory (it has no history.jsonl) nor a directory of runs",
            dir.display()
        )));
    }
    for run_dir in runs.iter().filter_map(|r| r.dir.as_ref()) {
        if run_dir.join("history.jsonl").is_file() {
            if let Err(e) = write_report(run_dir) {
                eprintln!("warning: no report for {}: {e:#}", run_dir.display());
            }
        }
    }
    let index = write_campaign_index_titled(dir, &runs, title.as_deref())?;
    match &title {
        Some(title) => println!("{} ({} runs; {title})", index.display(), runs.len()),
        None => println!("{} ({} runs)", index.display(), runs.len()),
    }
    Ok(())
}

/// The runs of the shard campaigns directly under `dir` (each a directory with the
/// `summary.json` of `gauntlet campaign --shard i/n`, gathered from several machines), in the
/// campaign's run order, and a title that names the shards found and missing. None when `dir`
/// is itself a campaign, or holds no shard.
fn shard_campaigns(dir: &Path) -> anyhow::Result<Option<(Vec<CampaignRun>, String)>> {
    if dir.join("summary.json").is_file() {
        return Ok(None);
    }
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let Ok(text) = std::fs::read_to_string(path.join("summary.json")) else { continue };
        let summary: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", path.join("summary.json").display()))?;
        let shard = summary.get("shard").and_then(Value::as_str).unwrap_or("1/1");
        let shard = crate::shard::parse_shard(shard)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.join("summary.json").display()))?;
        shards.push((shard, summary.get("master_seed").and_then(Value::as_u64), path, summary));
    }
    if shards.is_empty() {
        return Ok(None);
    }
    shards.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let masters: std::collections::BTreeSet<Option<u64>> = shards.iter().map(|s| s.1).collect();
    let counts: std::collections::BTreeSet<u64> = shards.iter().map(|s| s.0 .1).collect();
    if masters.len() > 1 || counts.len() > 1 {
        return Err(crate::exit::bad_input(format!(
            "{} holds shards of different campaigns (master seeds {masters:?}, shard counts \
             {counts:?}): give a directory of one campaign's shards",
            dir.display()
        )));
    }
    // A shard given twice (a retried job's results beside the first ones) would count its
    // runs twice: which copy stands is for the user to say.
    for pair in shards.windows(2) {
        if pair[0].0 == pair[1].0 {
            let (i, n) = pair[0].0;
            return Err(crate::exit::bad_input(format!(
                "shard {i}/{n} appears twice, in {} and {}: keep one",
                pair[0].2.display(),
                pair[1].2.display()
            )));
        }
    }
    let n = shards[0].0 .1;
    let mut runs: Vec<(u64, CampaignRun)> = Vec::new();
    for (_, _, path, summary) in &shards {
        let indexes = summary.get("runs").and_then(Value::as_array).into_iter().flatten();
        let indexes = indexes.map(|r| r.get("index").and_then(Value::as_u64).unwrap_or(0));
        runs.extend(indexes.zip(CampaignRun::from_summary(path, summary)));
    }
    runs.sort_by_key(|(index, _)| *index);
    let found: Vec<u64> = shards.iter().map(|s| s.0 .0).collect();
    let missing: Vec<String> =
        (1..=n).filter(|i| !found.contains(i)).map(|i| format!("{i}/{n}")).collect();
    let master = masters.into_iter().next().flatten().map_or("?".into(), |m| m.to_string());
    let mut title = format!("campaign s{master}: {} of {n} shards", found.len());
    if !missing.is_empty() {
        title.push_str(&format!(", missing {}", missing.join(", ")));
    }
    Ok(Some((runs.into_iter().map(|(_, r)| r).collect(), title)))
}

/// Writes `dir/report.html` for the run stored in `dir` and returns its path.
pub fn write_report(dir: &Path) -> anyhow::Result<PathBuf> {
    let run = RunData::load(dir)?;
    let path = dir.join("report.html");
    write_atomically(&path, &html::run_page(&run))?;
    Ok(path)
}

/// One run of a campaign, as its index shows it.
#[derive(Clone, Debug, Default)]
pub struct CampaignRun {
    /// The run's directory; `None` when it was not kept (a campaign keeps failed runs only,
    /// unless told otherwise): the index then lists it without a link.
    pub dir: Option<PathBuf>,
    /// Its name (the directory's name, or its number in the campaign).
    pub name: String,
    /// Its verdict; `None` when it has none (interrupted, or the harness failed).
    pub verdict: Option<Verdict>,
    /// What the index says instead of a verdict when there is none (`crashed`,
    /// `interrupted`); empty: "no verdict".
    pub outcome: String,
    /// The checks that failed.
    pub failed_checks: Vec<String>,
    /// The run's seed.
    pub seed: Option<u64>,
    /// The fault kinds (`--nemesis`).
    pub nemesis: Option<String>,
    /// The workload.
    pub workload: Option<String>,
    /// The bug the nodes ran with, if any.
    pub bug: Option<String>,
    /// Operations invoked.
    pub operations: Option<u64>,
    /// The command that replays the run.
    pub replay: Option<String>,
}

impl CampaignRun {
    /// Reads what the index shows from a run directory's `verdict.json` and `test.json`;
    /// missing or unreadable files leave the fields empty (the run shows without a verdict).
    pub fn from_dir(dir: &Path) -> CampaignRun {
        let read = |name: &str| -> Value {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null)
        };
        let verdict = read("verdict.json");
        let test = read("test.json");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        CampaignRun {
            dir: Some(dir.to_path_buf()),
            name: dir
                .file_name()
                .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()),
            verdict: verdict.get("verdict").and_then(|v| serde_json::from_value(v.clone()).ok()),
            failed_checks: verdict
                .get("failed_checks")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            seed: verdict
                .get("seed")
                .and_then(Value::as_u64)
                .or_else(|| test.get("seed").and_then(Value::as_u64)),
            nemesis: text(test.pointer("/options/nemesis")),
            workload: text(test.pointer("/options/workload")),
            bug: text(test.pointer("/options/bug")),
            operations: verdict.pointer("/stats/operations/invoked").and_then(Value::as_u64),
            replay: text(test.get("replay")),
            ..CampaignRun::default()
        }
    }

    /// The runs listed in a campaign's `summary.json` (written by `gauntlet campaign`), with
    /// their directories resolved under `campaign_dir` when they were kept.
    pub fn from_summary(campaign_dir: &Path, summary: &Value) -> Vec<CampaignRun> {
        let Some(runs) = summary.get("runs").and_then(Value::as_array) else {
            return Vec::new();
        };
        runs.iter()
            .map(|r| {
                let dir = r.get("dir").and_then(Value::as_str).and_then(|d| {
                    let d = Path::new(d);
                    let name = d.file_name()?;
                    [d.to_path_buf(), campaign_dir.join("runs").join(name), campaign_dir.join(name)]
                        .into_iter()
                        .find(|p| p.is_dir())
                });
                let mut run = match &dir {
                    Some(d) => CampaignRun::from_dir(d),
                    None => CampaignRun::default(),
                };
                let word = r.get("verdict").and_then(Value::as_str).unwrap_or("");
                if run.verdict.is_none() {
                    run.verdict = serde_json::from_value(Value::from(word)).ok();
                    run.outcome = word.to_string();
                }
                if let Some(replay) = r.get("replay").and_then(Value::as_str) {
                    run.replay = Some(replay.to_string());
                }
                if dir.is_none() {
                    let index = r.get("index").and_then(Value::as_u64).unwrap_or(0);
                    run.name = format!("run #{index} (not kept)");
                    run.seed = r.get("seed").and_then(Value::as_u64);
                    run.nemesis =
                        r.pointer("/mix/nemesis").and_then(Value::as_str).map(str::to_string);
                    run.workload =
                        r.pointer("/mix/workload").and_then(Value::as_str).map(str::to_string);
                    run.failed_checks = r
                        .get("failed_checks")
                        .and_then(|v| serde_json::from_value(v.clone()).ok())
                        .unwrap_or_default();
                }
                run
            })
            .collect()
    }
}

/// The runs of a campaign directory: those of its `summary.json` if it has one, then every run
/// directory under it (or under its `runs/`) that the summary does not list.
fn campaign_runs(dir: &Path) -> anyhow::Result<Vec<CampaignRun>> {
    let mut runs = match std::fs::read_to_string(dir.join("summary.json")) {
        Ok(text) => {
            let summary: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", dir.join("summary.json").display()))?;
            CampaignRun::from_summary(dir, &summary)
        }
        Err(_) => Vec::new(),
    };
    let known: Vec<PathBuf> =
        runs.iter().filter_map(|r| r.dir.as_ref()?.canonicalize().ok()).collect();
    let mut found = find_runs(dir)?;
    if dir.join("runs").is_dir() {
        found.extend(find_runs(&dir.join("runs"))?);
    }
    for d in found {
        if !d.canonicalize().is_ok_and(|c| known.contains(&c)) {
            runs.push(CampaignRun::from_dir(&d));
        }
    }
    Ok(runs)
}

/// Writes `dir/index.html` listing `runs` (in the order given), coloured by verdict, each
/// linking to its `report.html`; returns the index's path.
pub fn write_campaign_index(dir: &Path, runs: &[CampaignRun]) -> anyhow::Result<PathBuf> {
    write_campaign_index_titled(dir, runs, None)
}

/// [`write_campaign_index`] with a title of its own (else the directory's name).
fn write_campaign_index_titled(
    dir: &Path,
    runs: &[CampaignRun],
    title: Option<&str>,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let title = title.map(str::to_string).unwrap_or_else(|| {
        dir.canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map_or_else(|| "campaign".to_string(), |n| n.to_string_lossy().into_owned())
    });
    let linked: Vec<(CampaignRun, Option<String>)> = runs
        .iter()
        .map(|r| {
            let link = r.dir.as_ref().map(|d| relative_link(dir, &d.join("report.html")));
            (r.clone(), link)
        })
        .collect();
    let path = dir.join("index.html");
    write_atomically(&path, &html::campaign_page(&title, &linked))?;
    Ok(path)
}

/// The run directories under `dir`: subdirectories (not symbolic links, so `results/latest`
/// is not listed twice) holding `verdict.json` or `history.jsonl`, by name.
fn find_runs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let p = entry.path();
        if p.join("verdict.json").is_file() || p.join("history.jsonl").is_file() {
            runs.push(p);
        }
    }
    runs.sort();
    Ok(runs)
}

/// A link from a page in `from_dir` to `target`: relative when possible, else a `file:` URL.
fn relative_link(from_dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map(|c| c.join(p)).unwrap_or_else(|_| p.to_path_buf())
        };
        // Normalise `.` and `..` without touching the file system (the target may not exist).
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                c => out.push(c),
            }
        }
        out
    };
    let (from, to) = (abs(from_dir), abs(target));
    let common = from.components().zip(to.components()).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return format!("file://{}", to.display());
    }
    let mut parts: Vec<String> = from.components().skip(common).map(|_| "..".to_string()).collect();
    parts
        .extend(to.components().skip(common).map(|c| c.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::{check, CheckOptions, Format, History};
    use workloads::CasRegister;

    #[test]
    fn a_shard_given_twice_is_refused_naming_both_copies() {
        let dir = tempfile::tempdir().unwrap();
        for (name, shard) in [("first", "1/2"), ("retried", "1/2"), ("other", "2/2")] {
            let shard_dir = dir.path().join(name);
            std::fs::create_dir(&shard_dir).unwrap();
            let summary = serde_json::json!({"shard": shard, "master_seed": 7, "runs": []});
            std::fs::write(shard_dir.join("summary.json"), summary.to_string()).unwrap();
        }
        let err = shard_campaigns(dir.path()).unwrap_err().to_string();
        assert!(err.contains("shard 1/2 appears twice"), "{err}");
        assert!(err.contains("first") && err.contains("retried"), "{err}");
        // with one copy kept, the shards join
        std::fs::remove_dir_all(dir.path().join("retried")).unwrap();
        let (runs, title) = shard_campaigns(dir.path()).unwrap().unwrap();
        assert!(runs.is_empty());
        assert_eq!(title, "campaign s7: 2 of 2 shards");
    }

    #[test]
    fn a_campaign_index_lists_its_summary_and_links_the_kept_runs() {
        let campaign = tempfile::tempdir().unwrap();
        let kept = campaign.path().join("runs").join("20260101-000000-s7");
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::write(
            kept.join("verdict.json"),
            r#"{"verdict":"invalid","seed":7,"failed_checks":["linearizability"]}"#,
        )
        .unwrap();
        let summary = serde_json::json!({"runs": [
            {"index": 0, "seed": 5, "mix": {"nemesis": "kill", "workload": "kv"}, "verdict": "valid",
             "failed_checks": [], "replay": "gauntlet run --seed 5", "dir": null},
            {"index": 1, "seed": 7, "mix": {"nemesis": "pause", "workload": "cas-register"},
             "verdict": "invalid", "failed_checks": ["linearizability"],
             "replay": "gauntlet run --seed 7", "dir": "elsewhere/runs/20260101-000000-s7"},
            {"index": 2, "seed": 9, "mix": {"nemesis": "net", "workload": "kv"}, "verdict": "crashed",
             "failed_checks": [], "replay": "gauntlet run --seed 9", "dir": null},
        ]});
        std::fs::write(campaign.path().join("summary.json"), summary.to_string()).unwrap();

        let runs = campaign_runs(campaign.path()).unwrap();
        assert_eq!(runs.len(), 3, "the kept run is not listed twice");
        assert_eq!(runs[0].name, "run #0 (not kept)");
        assert_eq!((runs[0].verdict, runs[0].dir.as_ref()), (Some(Verdict::Valid), None));
        assert_eq!(runs[1].dir.as_deref(), Some(kept.as_path()));
        assert_eq!(runs[1].verdict, Some(Verdict::Invalid));
        assert_eq!(runs[1].replay.as_deref(), Some("gauntlet run --seed 7"));
        assert_eq!((runs[2].verdict, runs[2].outcome.as_str()), (None, "crashed"));

        let index =
            std::fs::read_to_string(write_campaign_index(campaign.path(), &runs).unwrap()).unwrap();
        assert!(index.contains(r#"<a href="runs/20260101-000000-s7/report.html">"#));
        assert!(index.contains("<td>run #0 (not kept)</td>"));
        assert!(index.contains(r#"<span class="pill none">crashed</span>"#));
        assert!(index.contains(r#"<span class="badge invalid" id="verdict">"#));
    }

    #[test]
    fn links_are_relative_to_the_index() {
        assert_eq!(
            relative_link(Path::new("/r/c"), Path::new("/r/c/run1/report.html")),
            "run1/report.html"
        );
        assert_eq!(
            relative_link(Path::new("/r/c"), Path::new("/r/other/run1/report.html")),
            "../other/run1/report.html"
        );
    }

    /// A long synthetic run: the page must stay small (issue 7: tens of thousands of
    /// operations) and keep all its parts.
    #[test]
    fn a_report_of_fifty_thousand_operations_stays_small() {
        let mut lines = Vec::new();
        let mut index = 0u64;
        let mut push = |lines: &mut Vec<String>, t: u64, p: &str, ty: &str, f: &str, v: &str| {
            lines.push(format!(
                r#"{{"index":{index},"time":{t},"process":{p},"type":"{ty}","f":"{f}","value":{v}}}"#
            ));
            index += 1;
        };
        let ops = 50_000u64;
        let period = 60_000_000_000 / ops * 10; // 60 s, 10 workers
        for i in 0..ops {
            let w = i % 10;
            let t = (i / 10) * period + w * 1_000_000;
            let lat = 1_000_000 + (i * 7919 % 40) * 1_000_000;
            let ty = match i % 50 {
                0 => "fail",
                1 => "info",
                _ => "ok",
            };
            let p = w.to_string();
            push(&mut lines, t, &p, "invoke", "write", &(i % 7).to_string());
            push(&mut lines, t + lat, &p, ty, "write", &(i % 7).to_string());
            if i % 5000 == 0 {
                let v = r#"{"nodes":[1,2],"target":"minority"}"#;
                push(&mut lines, t, r#""nemesis""#, "info", "start-kill", v);
                push(&mut lines, t + 2_000_000_000, r#""nemesis""#, "info", "stop-kill", v);
            }
        }
        let history = History::parse_str("big", &lines.join("\n"), Format::Jsonl).unwrap();
        let test = serde_json::json!({"options": {"concurrency": 10}, "seed": 1});
        let run = RunData::from_history(history.events(), test, None);
        assert_eq!(run.ops.len(), 50_000);
        let page = html::run_page(&run);
        assert!(page.len() < 5_000_000, "the page is {} bytes", page.len());
        assert!(page.contains(r#"id="overview""#));
        assert_eq!(page.matches(r#"class="shade kill""#).count(), 10);
        // Each of the 1000 info operations has its own bar and hover text.
        assert_eq!(page.matches("-&gt; info (no error given)").count(), 1000);
    }

    #[test]
    fn a_violation_is_drawn_with_its_prefix_and_states() {
        let text = r#"{"index":0,"time":1000,"process":0,"type":"invoke","f":"write","key":"k1","value":1}
{"index":1,"time":2000,"process":0,"type":"ok","f":"write","key":"k1","value":1}
{"index":2,"time":3000,"process":1,"type":"invoke","f":"write","key":"k1","value":2}
{"index":3,"time":4000,"process":1,"type":"ok","f":"write","key":"k1","value":2}
{"index":4,"time":5000,"process":2,"type":"invoke","f":"read","key":"k1","value":null}
{"index":5,"time":6000,"process":2,"type":"ok","f":"read","key":"k1","value":1}"#;
        let history = History::parse_str("h", text, Format::Jsonl).unwrap();
        let result = check(&CasRegister, &history, &CheckOptions::default()).unwrap();
        assert_eq!(result.verdict, Verdict::Invalid);
        let verdict: data::VerdictFile = serde_json::from_value(serde_json::json!({
            "verdict": "invalid", "failed_checks": ["linearizability"], "linearizability": result,
        }))
        .unwrap();
        let run = RunData::from_history(history.events(), Value::Null, Some(verdict));
        let page = html::run_page(&run);
        assert!(page.contains(r#"id="linearization""#));
        assert!(page.contains(r#"class="lin-op step""#));
        assert!(page.contains(r#"class="lin-op blocked""#));
        // The read of 1 after the write of 2 cannot follow: the state before it is 2.
        let v = run.verdict.as_ref().unwrap().linearizability.as_ref().unwrap();
        let v = v.violation.as_ref().unwrap();
        assert_eq!(v.prefix.len(), 2);
        assert!(page.contains(&format!(r#"data-before="{}""#, svg::esc(&v.state))));
        assert!(page.contains(r#"id="violation-mark""#));
        assert!(page.contains("lin-x"));
    }
}
