//! The exit codes of every `gauntlet` subcommand: one table, so that a script or a CI job can
//! tell a bug found (1) from a harness that could not decide (2), a mistyped command (3) and a
//! harness that broke (255), whatever the subcommand.

use std::fmt;

/// The run, check or command succeeded: every history valid, no violation.
pub const VALID: i32 = 0;
/// A check failed: a history is not linearizable, a safety or liveness check failed, the
/// simulator found a violation of the core.
pub const INVALID: i32 = 1;
/// Nothing was invalid, but something could not be decided: the linearizability search ran
/// out of time, a simulated schedule ran out of its event budget.
pub const UNKNOWN: i32 = 2;
/// Usage or bad input: a wrong flag or value, a file that cannot be read or does not parse.
pub const BAD_INPUT: i32 = 3;
/// Interrupted by SIGINT or SIGTERM (after cleaning up).
pub const INTERRUPTED: i32 = 130;
/// The tool itself failed (it could not start a process, write its results, ...).
pub const FAILED: i32 = 255;

/// The table, as every `--help` ends.
pub const TABLE: &str = "\
Exit codes (the same for every subcommand):
  0    valid, or success
  1    invalid: a check failed, or the simulator found a violation
  2    unknown: nothing invalid, but not everything could be decided
  3    usage or bad input: a wrong option or value, an unreadable or malformed file
  130  interrupted (SIGINT or SIGTERM), after cleaning up
  255  the tool itself failed";

/// The exit code of a verdict.
pub fn of_verdict(verdict: checker::Verdict) -> i32 {
    match verdict {
        checker::Verdict::Valid => VALID,
        checker::Verdict::Invalid => INVALID,
        checker::Verdict::Unknown => UNKNOWN,
    }
}

/// An error that is the user's input's fault (a flag, a value, a file named on the command
/// line): it exits [`BAD_INPUT`], where any other error exits [`FAILED`].
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// The command was interrupted (SIGINT or SIGTERM) and cleaned up: it exits [`INTERRUPTED`].
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// A [`BadInput`] error, for `anyhow` results.
pub fn bad_input(message: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.to_string()))
}

/// The exit code of an error: [`BAD_INPUT`] if a [`BadInput`] is anywhere in its chain,
/// [`INTERRUPTED`] for an [`Interrupted`], [`FAILED`] otherwise.
pub fn code_of(error: &anyhow::Error) -> i32 {
    if error.chain().any(|e| e.is::<BadInput>()) {
        BAD_INPUT
    } else if error.chain().any(|e| e.is::<Interrupted>()) {
        INTERRUPTED
    } else {
        FAILED
    }
}

/// Prints the error (with its causes) and returns its exit code.
pub fn report(error: &anyhow::Error) -> i32 {
    eprintln!("error: {error:#}");
    code_of(error)
}

/// The longest duration an option takes: ten years. Anything longer is a typo, and keeping
/// below it leaves every `Instant + duration` in the harness far from overflowing.
pub const MAX_SECONDS: f64 = 10.0 * 365.0 * 24.0 * 3600.0;

/// A duration option given in seconds: positive, finite, and at most [`MAX_SECONDS`]; the
/// error names the option and the value.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(harness::exit::seconds("--x", 1.5), Ok(Duration::from_millis(1500)));
/// assert!(harness::exit::seconds("--x", 0.0).unwrap_err().contains("--x 0"));
/// assert!(harness::exit::seconds("--x", 1e30).is_err());
/// ```
pub fn seconds(option: &str, value: f64) -> Result<std::time::Duration, String> {
    if !(value.is_finite() && value > 0.0 && value <= MAX_SECONDS) {
        return Err(format!(
            "{option} {value}: expected a positive number of seconds, at most {MAX_SECONDS}"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn bad_input_is_found_under_context_and_anything_else_is_a_failure() {
        let e = Err::<(), _>(bad_input("--nodes 0: at least 1")).context("checking the options");
        assert_eq!(code_of(&e.unwrap_err()), BAD_INPUT);
        let e = Err::<(), _>(std::io::Error::other("disk full")).context("writing history.jsonl");
        assert_eq!(code_of(&e.unwrap_err()), FAILED);
    }

    #[test]
    fn the_table_lists_every_code() {
        for code in [VALID, INVALID, UNKNOWN, BAD_INPUT, INTERRUPTED, FAILED] {
            assert!(TABLE.lines().any(|l| l.trim_start().starts_with(&code.to_string())));
        }
    }
}
