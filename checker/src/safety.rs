//! Raft's safety properties, checked offline over what every node wrote while it ran:
//! `applied.jsonl` (what it applied, in order) and `events.jsonl` (its role changes).
//!
//! - **State machine safety**: no two nodes applied different entries at one index.
//! - **In-order application**: each node applied indexes 1, 2, 3, ... without gaps, across
//!   restarts (a node re-applying its log after a restart does not log an index twice).
//! - **Election safety**: at most one node became leader in any term.
//! - **Durability of acknowledged writes**: every write a client saw acknowledged is in every
//!   node's final log.
//!
//! The files' formats are those of the `gauntlet node` process; see `docs/node.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::history::{EventType, History, Process};

/// One line of `applied.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedEntry {
    /// The log index.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
    /// A digest of the command's bytes.
    pub digest: String,
    /// The client that proposed the command (absent for a leader's no-op entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<u64>,
    /// The client's sequence number of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// One line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// Wall-clock time of the event, milliseconds since the Unix epoch.
    #[serde(default)]
    pub time_ms: Option<u64>,
    /// The node.
    pub node: u64,
    /// `started`, `restarted`, `became-leader` or `stepped-down`.
    pub event: String,
    /// The term the event happened in.
    #[serde(default)]
    pub term: Option<u64>,
    /// The node's last log index (on start and restart).
    #[serde(default)]
    pub last_index: Option<u64>,
}

/// What one node left behind.
#[derive(Clone, Debug, Default)]
pub struct NodeRecord {
    /// The node's id.
    pub node: u64,
    /// Its `applied.jsonl`, in file order.
    pub applied: Vec<AppliedEntry>,
    /// Its `events.jsonl`, in file order.
    pub events: Vec<NodeEvent>,
}

impl NodeRecord {
    /// Reads `applied.jsonl` and `events.jsonl` from a node's directory; a missing file counts as
    /// empty (a node that never applied anything), a malformed line is an error naming it.
    pub fn read_dir(node: u64, dir: &Path) -> Result<NodeRecord, Error> {
        Ok(NodeRecord {
            node,
            applied: read_jsonl(&dir.join("applied.jsonl"))?,
            events: read_jsonl(&dir.join("events.jsonl"))?,
        })
    }
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, Error> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::Io { name, error }),
    };
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            // A node killed in the middle of a write leaves a torn last line: not an error.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(Error::line(&name, i + 1, e)),
        }
    }
    Ok(out)
}

/// The outcome of one safety check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyCheck {
    /// The check's name.
    pub name: String,
    /// Whether it held.
    pub valid: bool,
    /// The first violations found, in words (at most ten).
    pub violations: Vec<String>,
    /// How many violations there were in all.
    pub violation_count: usize,
}

impl SafetyCheck {
    fn new(name: &str, violations: Vec<String>) -> SafetyCheck {
        let violation_count = violations.len();
        SafetyCheck {
            name: name.to_string(),
            valid: violations.is_empty(),
            violations: violations.into_iter().take(10).collect(),
            violation_count,
        }
    }
}

/// The (client, sequence number) of every write that a client saw acknowledged (`ok`).
///
/// A client process numbers its operations 1, 2, 3, ... in invocation order and the node records
/// that number with the entry, so the history alone names each write's log entry. Reads are not
/// writes; a `fail` write never took effect; an `info` write may or may not have.
pub fn acknowledged_writes(history: &History) -> BTreeSet<(u64, u64)> {
    let mut seq: HashMap<u64, u64> = HashMap::new();
    let mut open: HashMap<u64, u64> = HashMap::new();
    let mut acked = BTreeSet::new();
    for e in history.events() {
        let Process::Client(p) = e.process else { continue };
        match e.kind {
            EventType::Invoke => {
                let s = seq.entry(p).or_insert(0);
                *s += 1;
                open.insert(p, *s);
            }
            EventType::Ok if matches!(e.f.as_str(), "write" | "cas" | "put" | "append") => {
                if let Some(s) = open.remove(&p) {
                    acked.insert((p, s));
                }
            }
            _ => {
                open.remove(&p);
            }
        }
    }
    acked
}

/// Runs every safety check over the nodes' records. `acknowledged` comes from
/// [`acknowledged_writes`].
pub fn check_safety(nodes: &[NodeRecord], acknowledged: &BTreeSet<(u64, u64)>) -> Vec<SafetyCheck> {
    vec![
        check_state_machine_safety(nodes),
        check_in_order(nodes),
        check_one_leader_per_term(nodes),
        check_acknowledged_writes(nodes, acknowledged),
    ]
}

fn check_state_machine_safety(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut first: BTreeMap<u64, (u64, &AppliedEntry)> = BTreeMap::new();
    let mut violations = Vec::new();
    for n in nodes {
        for e in &n.applied {
            match first.get(&e.index) {
                None => {
                    first.insert(e.index, (n.node, e));
                }
                Some((other, o)) if o.term != e.term || o.digest != e.digest => {
                    violations.push(format!(
                        "index {}: node {} applied term {} digest {}, node {} applied term {} digest {}",
                        e.index, other, o.term, o.digest, n.node, e.term, e.digest
                    ));
                }
                Some(_) => {}
            }
        }
    }
    SafetyCheck::new("state-machine-safety", violations)
}

fn check_in_order(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut violations = Vec::new();
    for n in nodes {
        let out_of_place = n.applied.iter().zip(1u64..).find(|(e, expected)| e.index != *expected);
        if let Some((e, expected)) = out_of_place {
            violations.push(format!(
                "node {} applied index {} where index {} was due",
                n.node, e.index, expected
            ));
        }
    }
    SafetyCheck::new("applied-in-order", violations)
}

fn check_one_leader_per_term(nodes: &[NodeRecord]) -> SafetyCheck {
    let mut leaders: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for n in nodes {
        for e in n.events.iter().filter(|e| e.event == "became-leader") {
            if let Some(term) = e.term {
                leaders.entry(term).or_default().insert(n.node);
            }
        }
    }
    let violations = leaders
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(term, ids)| format!("term {term} had leaders {ids:?}"))
        .collect();
    SafetyCheck::new("one-leader-per-term", violations)
}

fn check_acknowledged_writes(
    nodes: &[NodeRecord],
    acknowledged: &BTreeSet<(u64, u64)>,
) -> SafetyCheck {
    let mut violations = Vec::new();
    for n in nodes {
        let held: BTreeSet<(u64, u64)> =
            n.applied.iter().filter_map(|e| Some((e.client?, e.seq?))).collect();
        let missing: Vec<_> = acknowledged.difference(&held).collect();
        if let Some(first) = missing.first() {
            violations.push(format!(
                "node {} lacks {} acknowledged write(s), first: client {} seq {}",
                n.node,
                missing.len(),
                first.0,
                first.1
            ));
        }
    }
    SafetyCheck::new("acknowledged-writes-durable", violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn entry(index: u64, term: u64, digest: &str, cs: Option<(u64, u64)>) -> AppliedEntry {
        AppliedEntry {
            index,
            term,
            digest: digest.into(),
            client: cs.map(|c| c.0),
            seq: cs.map(|c| c.1),
        }
    }

    fn leader(node: u64, term: u64) -> NodeEvent {
        NodeEvent {
            time_ms: None,
            node,
            event: "became-leader".into(),
            term: Some(term),
            last_index: None,
        }
    }

    fn node(id: u64, applied: Vec<AppliedEntry>, events: Vec<NodeEvent>) -> NodeRecord {
        NodeRecord { node: id, applied, events }
    }

    fn by_name<'a>(checks: &'a [SafetyCheck], name: &str) -> &'a SafetyCheck {
        checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn agreeing_nodes_pass_every_check() {
        let log = vec![entry(1, 1, "aa", None), entry(2, 1, "bb", Some((0, 1)))];
        let nodes = [node(1, log.clone(), vec![leader(1, 1)]), node(2, log, vec![])];
        let checks = check_safety(&nodes, &BTreeSet::from([(0, 1)]));
        assert!(checks.iter().all(|c| c.valid), "{checks:?}");
    }

    #[test]
    fn each_violation_is_found_and_named() {
        let nodes = [
            node(
                1,
                vec![entry(1, 1, "aa", None), entry(2, 1, "bb", Some((0, 1)))],
                vec![leader(1, 2)],
            ),
            node(2, vec![entry(1, 1, "aa", None), entry(2, 2, "cc", None)], vec![leader(2, 2)]),
            node(3, vec![entry(2, 1, "bb", Some((0, 1)))], vec![]),
        ];
        let checks = check_safety(&nodes, &BTreeSet::from([(0, 1), (5, 5)]));
        let smr = by_name(&checks, "state-machine-safety");
        assert!(!smr.valid);
        assert!(smr.violations[0].contains("index 2"), "{smr:?}");
        let order = by_name(&checks, "applied-in-order");
        assert_eq!(order.violation_count, 1);
        assert!(order.violations[0].contains("node 3"));
        assert!(!by_name(&checks, "one-leader-per-term").valid);
        let acked = by_name(&checks, "acknowledged-writes-durable");
        assert_eq!(acked.violation_count, 3, "every node lacks (5, 5); node 2 also lacks (0, 1)");
    }

    #[test]
    fn acknowledged_writes_follow_each_process_numbering() {
        let text = r#"{"process":0,"type":"invoke","f":"read","key":"k","value":null}
{"process":0,"type":"ok","f":"read","key":"k","value":null}
{"process":0,"type":"invoke","f":"write","key":"k","value":3}
{"process":1,"type":"invoke","f":"cas","key":"k","value":[3,4]}
{"process":0,"type":"ok","f":"write","key":"k","value":3}
{"process":1,"type":"fail","f":"cas","key":"k","value":[3,4]}
{"process":1,"type":"invoke","f":"append","key":"k","value":"x"}
{"process":1,"type":"info","f":"append","key":"k","value":"x"}"#;
        let h = History::parse_str("t", text, Format::Jsonl).unwrap();
        assert_eq!(acknowledged_writes(&h), BTreeSet::from([(0, 2)]));
    }

    #[test]
    fn a_torn_last_line_is_tolerated_but_a_bad_middle_line_is_not() {
        let dir = std::env::temp_dir().join(format!("safety-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("applied.jsonl"),
            "{\"index\":1,\"term\":1,\"digest\":\"a\"}\n{\"index\":2,\"te",
        )
        .unwrap();
        let rec = NodeRecord::read_dir(1, &dir).unwrap();
        assert_eq!(rec.applied.len(), 1);
        std::fs::write(
            dir.join("applied.jsonl"),
            "{\"index\":1}\n{\"index\":1,\"term\":1,\"digest\":\"a\"}\n",
        )
        .unwrap();
        let err = NodeRecord::read_dir(1, &dir).unwrap_err().to_string();
        assert!(err.contains("applied.jsonl:1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
