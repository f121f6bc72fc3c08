//! `gauntlet check`: checks stored histories for linearizability, offline.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use checker::{check_compact, CheckOptions, CheckResult, CompactHistory, Format, History};
use workloads::{CasRegister, Kv};

use crate::exit;

/// Arguments of `gauntlet check`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Check histories for linearizability, offline",
    long_about = "Check histories for linearizability, offline.\n\n\
        Prints one line per history, `<path>: valid|invalid|unknown (<reason>)`, then \
        an explanation of each violation: the longest linearizable prefix found, the \
        operation that cannot follow it, the model state there and why the model refuses it.\n\n\
        Semantics: an `ok` operation took effect between its invocation and completion; a \
        `fail` operation had no effect; an `info` operation, or an invocation that never \
        completes, may take effect at any point after its invocation, or never. Nemesis \
        events are ignored. Real time comes from `time` when every client event has one, \
        from the order of the lines otherwise.",
    after_help = "Exit codes:\n  \
        0  every history is valid (linearizable)\n  \
        1  some history is invalid\n  \
        2  none is invalid, but some is unknown (time limit reached)\n  \
        3  bad input: a file cannot be read or is malformed (the message names the file and line)"
)]
pub struct CheckArgs {
    /// The model to check against. `auto`: cas-register for Jepsen log files; for other
    /// formats, kv when the history uses get, put or append, cas-register otherwise.
    #[arg(long, value_enum, default_value_t = ModelArg::Auto)]
    model: ModelArg,

    /// The format of the files. `auto` detects it from the first line: `{"` is JSON Lines,
    /// `{:` is EDN op maps, `LEVEL logger - ...` is Jepsen log lines.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,

    /// Give up on a history after this many seconds (fractions allowed), and call it
    /// unknown. No limit by default.
    #[arg(long, value_name = "SECS")]
    time_limit: Option<f64>,

    /// The memory the search may hold, in MiB (its visited configurations and memoised
    /// transitions; the history itself is not counted). A history whose search would pass it
    /// is unknown, with the partition that did. Default: half of the machine's memory.
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<usize>,

    /// Also write the history, as read, to FILE as Jepsen's EDN op maps (one a line, for
    /// Knossos and Elle; `--format edn` reads it back). Takes one PATH.
    #[arg(long, value_name = "FILE")]
    export_edn: Option<PathBuf>,

    /// Also write a self-contained HTML page of the history to FILE: the verdict, the
    /// operations over time and, when it is not linearizable, the partial linearization of
    /// the failing key (states on hover). Takes one PATH.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,

    /// Print one JSON object per history (path, model, result with the explanation, or
    /// error) instead of text.
    #[arg(long)]
    json: bool,

    /// History files, or run directories (their `history.jsonl` is checked).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ModelArg {
    Auto,
    CasRegister,
    Kv,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FormatArg {
    Auto,
    Jsonl,
    JepsenLog,
    Edn,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Auto => Format::Auto,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::JepsenLog => Format::JepsenLog,
            FormatArg::Edn => Format::Edn,
        }
    }
}

/// The outcome for one path.
struct Checked {
    model: &'static str,
    result: CheckResult,
}

/// Runs `gauntlet check` and returns the process exit code.
pub fn run(args: CheckArgs) -> i32 {
    let time_limit = match args.time_limit {
        Some(s) => match exit::seconds("--time-limit", s) {
            Ok(limit) => Some(limit),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        },
        None => None,
    };
    let paths = &args.paths;
    for (given, flag) in
        [(args.export_edn.is_some(), "--export-edn"), (args.html.is_some(), "--html")]
    {
        if given && paths.len() != 1 {
            eprintln!("error: {flag} writes one history: give one PATH, not {}", paths.len());
            return exit::BAD_INPUT;
        }
    }
    // Several files: one file per thread. One file: its partitions in parallel.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(paths.len());
    let memory_limit = match args.memory_limit {
        Some(0) => {
            eprintln!("error: --memory-limit must be at least 1 MiB");
            return exit::BAD_INPUT;
        }
        Some(mib) => Some(mib.saturating_mul(1 << 20)),
        None => CheckOptions::machine_memory_limit(),
    };
    let options = CheckOptions {
        time_limit,
        threads: if workers > 1 { 1 } else { 0 },
        // the files checked at once share it
        memory_limit: memory_limit.map(|m| m / workers.max(1)),
    };
    let results: Vec<Mutex<Option<Result<Checked>>>> =
        paths.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = paths.get(i) else { break };
        let outputs = Outputs { edn: args.export_edn.as_deref(), html: args.html.as_deref() };
        let r = check_path(path, args.model, args.format.into(), &options, outputs);
        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    };
    if workers > 1 {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(work);
            }
        });
    } else {
        work();
    }

    let mut code = exit::VALID;
    let mut explanations = Vec::new();
    for (path, r) in paths.iter().zip(results) {
        let r = r
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(|| Err(anyhow::anyhow!("not checked")));
        let shown = path.display();
        match r {
            Err(e) => {
                if args.json {
                    let line = serde_json::json!({"path": path, "error": format!("{e:#}")});
                    println!("{line}");
                }
                eprintln!("error: {e:#}");
                code = exit::BAD_INPUT;
            }
            Ok(c) => {
                let verdict = c.result.verdict;
                if args.json {
                    let line =
                        serde_json::json!({"path": path, "model": c.model, "result": c.result});
                    println!("{line}");
                } else {
                    println!("{shown}: {verdict} ({})", c.result.reason);
                    if let Some(v) = &c.result.violation {
                        explanations.push(format!("== {shown} ==\n{}", v.render()));
                    }
                }
                let rank = |c: i32| match c {
                    exit::BAD_INPUT => 3,
                    exit::INVALID => 2,
                    exit::UNKNOWN => 1,
                    _ => 0,
                };
                let this = exit::of_verdict(verdict);
                if rank(this) > rank(code) {
                    code = this;
                }
            }
        }
    }
    for e in explanations {
        println!("\n{e}");
    }
    code
}

/// What `gauntlet check` writes besides its verdicts (for one history).
#[derive(Clone, Copy)]
struct Outputs<'a> {
    edn: Option<&'a Path>,
    html: Option<&'a Path>,
}

fn check_path(
    path: &Path,
    model: ModelArg,
    format: Format,
    options: &CheckOptions,
    outputs: Outputs<'_>,
) -> Result<Checked> {
    let file = if path.is_dir() { path.join("history.jsonl") } else { path.to_path_buf() };
    if !file.exists() {
        bail!("{}: no such file", file.display());
    }
    let history = CompactHistory::read_file(&file, format).context("bad input")?;
    if let Some(line) = history.torn_line() {
        eprintln!(
            "warning: {}: line {line}, the last, is cut short (its writer was stopped in the \
             middle of it); checked without it",
            file.display()
        );
    }
    // The export and the page show every event as written: those read the file again, whole.
    let events = match outputs.edn.is_some() || outputs.html.is_some() {
        true => Some(History::read_file(&file, history.format()).context("bad input")?),
        false => None,
    };
    if let (Some(out), Some(events)) = (outputs.edn, &events) {
        let io = |e| anyhow::anyhow!("writing {}: {e}", out.display());
        let file = std::fs::File::create(out).map_err(io)?;
        let mut edn = checker::EdnWriter::new(std::io::BufWriter::new(file));
        for event in events.events() {
            edn.write(event).map_err(io)?;
        }
        edn.flush().map_err(io)?;
    }
    let model = match model {
        ModelArg::Auto => auto_model(&history),
        m => m,
    };
    let (name, result) = match model {
        ModelArg::Kv => ("kv", check_compact(&Kv, &history, options)),
        _ => ("cas-register", check_compact(&CasRegister, &history, options)),
    };
    let result = result.with_context(|| format!("bad input for the {name} model"))?;
    if let (Some(out), Some(events)) = (outputs.html, &events) {
        let shown = file.display().to_string();
        let page = crate::report::history_page(&shown, name, events.events(), &result);
        std::fs::write(out, page).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(Checked { model: name, result })
}

/// cas-register for Jepsen log files (single-register etcd tests); otherwise kv when
/// the history uses a kv-only function, cas-register if not.
fn auto_model(history: &CompactHistory) -> ModelArg {
    if history.format() == Format::JepsenLog {
        return ModelArg::CasRegister;
    }
    if history.functions().any(|f| matches!(f, "get" | "put" | "append")) {
        ModelArg::Kv
    } else {
        ModelArg::CasRegister
    }
}
