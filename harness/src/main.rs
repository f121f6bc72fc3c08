//! `gauntlet`: the torture harness.

use clap::{Parser, Subcommand};
use harness::{bench, campaign, check, node, report, run, sim};

#[derive(Parser)]
#[command(name = "gauntlet", version, about = "A Jepsen-style torture harness for the raft crate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One torture test of a cluster of node processes: clients, faults, then a verdict.
    Run(run::RunArgs),
    /// Many runs from one master seed: the nightly torture job and the CI gate.
    Campaign(campaign::CampaignArgs),
    Check(check::CheckArgs),
    /// Write the HTML report of a run, or the index of a directory of runs (a campaign).
    Report(report::ReportArgs),
    /// Run one Raft node serving the replicated key/value store (JSON Lines over TCP).
    Node(node::NodeArgs),
    /// Measure write throughput and latency of a 3-node cluster of real node processes.
    Bench(bench::BenchArgs),
    /// Randomized torture of the protocol core on the deterministic simulator, over many seeds.
    Sim(sim::SimArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version exit 0; a wrong flag is bad input (3), never the 2 that means
            // an `unknown` verdict.
            let code = if e.use_stderr() { 3 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    match cli.command {
        Command::Run(args) => std::process::exit(run::run(args)),
        Command::Campaign(args) => std::process::exit(campaign::run(args)),
        Command::Check(args) => std::process::exit(check::run(args)),
        Command::Report(args) => report::run(args),
        Command::Node(args) => node::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Sim(args) => std::process::exit(sim::run_sim(args)),
    }
}
