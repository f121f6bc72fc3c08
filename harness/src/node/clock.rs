//! Clock faults: the harness writes a [`ClockRequest`] to [`REQUEST_FILE`] in the node's data
//! directory and sends SIGHUP; the node makes each of its ticks last `slower` times its
//! `--tick-ms` ([`raft::Node::set_tick`]). Every timer of the protocol counts ticks, so the
//! node's clock runs slow: its elections, heartbeats, check-quorum and leases all stretch, as
//! on a machine whose clock drifts. `slower: 1` puts the clock right.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The request the harness leaves before its SIGHUP.
pub const REQUEST_FILE: &str = "clock-request.json";

/// How slow the node's clock is to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockRequest {
    /// Each tick lasts this many times `--tick-ms` (at least 1).
    pub slower: u32,
}

/// Asks the node in `dir` for a clock rate (the caller then sends SIGHUP).
pub fn write_request(dir: &Path, request: ClockRequest) -> anyhow::Result<()> {
    let path = dir.join(REQUEST_FILE);
    let json = serde_json::to_vec(&request).expect("a request serializes");
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
}

/// The request the harness left in `dir`.
pub fn read_request(dir: &Path) -> anyhow::Result<ClockRequest> {
    let path = dir.join(REQUEST_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let request: ClockRequest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a clock request", path.display()))?;
    anyhow::ensure!(request.slower >= 1, "{}: slower must be at least 1", path.display());
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_request(dir.path(), ClockRequest { slower: 6 }).unwrap();
        assert_eq!(read_request(dir.path()).unwrap(), ClockRequest { slower: 6 });
        std::fs::write(dir.path().join(REQUEST_FILE), br#"{"slower":0}"#).unwrap();
        let e = format!("{:#}", read_request(dir.path()).unwrap_err());
        assert!(e.contains("slower must be at least 1"), "{e}");
    }
}
