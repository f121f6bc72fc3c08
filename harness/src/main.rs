//! `gauntlet`: the torture harness.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "gauntlet", version, about = "A Jepsen-style torture harness for the raft crate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
