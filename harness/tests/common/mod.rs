//! What the command-line tests that run clusters share: the binary, a failed command's whole
//! output, and the processes a run may have left behind.

#![allow(dead_code)] // Each test file uses its own part.

use std::process::{Command, Output};

/// The `gauntlet` binary built for these tests.
pub fn gauntlet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
}

/// A command's exit code and both its streams, for an assertion's message.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Processes whose command line mentions `needle` (a run's directory, say).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

/// Runs `run` with each seed in turn until one ends invalid (exit 1), and returns that run's
/// standard output; panics with every run's output, saying `what` survived, if none does.
pub fn first_invalid(seeds: &[&str], what: &str, run: impl Fn(&str) -> Output) -> String {
    let mut outputs = Vec::new();
    for seed in seeds {
        let out = run(seed);
        if out.status.code() == Some(1) {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        outputs.push(text(&out));
    }
    panic!("{} runs with {what} all passed:\n{}", seeds.len(), outputs.join("\n"));
}
