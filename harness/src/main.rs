//! `gauntlet`: the torture harness.

use clap::{Parser, Subcommand};
use harness::{bench, campaign, check, exit, node, report, run, sim, synth};

#[derive(Parser)]
#[command(
    name = "gauntlet",
    version,
    about = "A Jepsen-style torture harness for the raft crate",
    after_help = exit::TABLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One torture test of a cluster of node processes: clients, faults, then a verdict.
    #[command(after_help = exit::TABLE)]
    Run(run::RunArgs),
    /// Many runs from one master seed: the nightly torture job and the CI gate.
    #[command(after_help = exit::TABLE)]
    Campaign(campaign::CampaignArgs),
    #[command(after_help = exit::TABLE)]
    Check(check::CheckArgs),
    /// Write the HTML report of a run, or the index of a directory of runs (a campaign).
    #[command(after_help = exit::TABLE)]
    Report(report::ReportArgs),
    /// Run one Raft node serving the replicated key/value store (JSON Lines over TCP).
    #[command(after_help = exit::TABLE)]
    Node(node::NodeArgs),
    /// Measure write throughput and latency of a 3-node cluster of real node processes.
    #[command(after_help = exit::TABLE)]
    Bench(bench::BenchArgs),
    /// Randomized torture of the protocol core on the deterministic simulator, over many seeds.
    #[command(after_help = exit::TABLE)]
    Sim(sim::SimArgs),
    /// Write a key/value history of any size whose verdict is known, to measure the checker.
    #[command(after_help = exit::TABLE)]
    Synth(synth::SynthArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version exit 0; a wrong flag is usage (3), never the 2 that means an
            // `unknown` verdict.
            let code = if e.use_stderr() { exit::BAD_INPUT } else { exit::VALID };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if matches!(cli.command, Command::Check(_) | Command::Synth(_)) {
        // Commands that only print: piped into `head`, they end quietly when it stops
        // reading, as Unix tools do (Rust ignores SIGPIPE, and `println!` would panic). The
        // others keep ignoring it: their sockets report a closed peer as an error.
        use nix::sys::signal::{signal, SigHandler, Signal};
        // SAFETY: restores the default disposition before any thread is started.
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    }
    let done = |r: anyhow::Result<()>| r.map_or_else(|e| exit::report(&e), |()| exit::VALID);
    let code = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Campaign(args) => campaign::run(args),
        Command::Check(args) => check::run(args),
        Command::Report(args) => done(report::run(args)),
        Command::Node(args) => done(node::run(args)),
        Command::Bench(args) => done(bench::run(args)),
        Command::Sim(args) => sim::run_sim(args),
        Command::Synth(args) => done(synth::run(args)),
    };
    std::process::exit(code);
}
