//! `gauntlet synth`: writes a key/value history of any size with a known verdict, for
//! measuring and testing the checker (`checker::synth`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use checker::synth::{write_kv_history, SynthOptions};

/// The options of `gauntlet synth`.
#[derive(Args, Debug, Clone)]
pub struct SynthArgs {
    /// Operations in all (each an invocation and a completion line).
    #[arg(long, default_value_t = 100_000)]
    pub ops: u64,
    /// Keys, chosen uniformly.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Client processes at once (how many operations may overlap).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub clients: u64,
    /// Per thousand operations, how many end `info` (outcome unknown).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub info_per_mille: u32,
    /// Make one read in the middle return a value never written: not linearizable.
    #[arg(long)]
    pub violation: bool,
    /// The seed of every choice (random when not given; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where to write the history (Porcupine's EDN log format); `-` for standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs `gauntlet synth`.
pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!("seed: {seed}");
    let options = SynthOptions {
        operations: args.ops,
        keys: args.keys,
        clients: args.clients,
        info_per_mille: args.info_per_mille,
        violation: args.violation,
        seed,
    };
    let summary = if args.output.as_os_str() == "-" {
        write_kv_history(&options, &mut std::io::stdout().lock())
    } else {
        let mut file = std::fs::File::create(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
        let summary = write_kv_history(&options, &mut file);
        file.flush().ok();
        summary
    }
    .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "{} operations ({} info) over {} keys by {} clients in {} lines: {}",
        summary.operations,
        summary.info,
        args.keys,
        args.clients,
        summary.lines,
        match summary.violating_process {
            Some(p) => format!("not linearizable (process {p} reads a value never written)"),
            None if args.violation => "linearizable (too few reads for a violation)".into(),
            None => "linearizable".into(),
        }
    );
    Ok(())
}
