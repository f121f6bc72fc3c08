//! Pairing of invocations with their completions, process by process.

use serde_json::Value;

use crate::error::Error;
use crate::fasthash::FastMap;
use crate::history::{EventType, History, Process};

/// What the completion of an operation says about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It took effect (`ok`), with this result value.
    Ok(Value),
    /// It may or may not have taken effect: completed with `info`, or never completed.
    Unknown,
}

/// An operation: an invocation paired with its completion. Operations that completed
/// with `fail` are not operations of the search (they had no effect) and never appear.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The client process.
    pub process: u64,
    /// The function (`read`, `write`, `cas`, `get`, `put`, `append`, ...).
    pub f: String,
    /// The key, if any.
    pub key: Option<Value>,
    /// The invocation's value (the argument).
    pub value: Value,
    /// What the completion says.
    pub outcome: Outcome,
    /// Position of the invocation in [`History::events`].
    pub invoke: usize,
    /// Position of the completion (`ok` or `info`) in [`History::events`], if any.
    pub complete: Option<usize>,
    /// Real-time point of the invocation (time, or file position when there is no time).
    pub(crate) call: u64,
    /// Real-time point of an `ok` completion; `None` when the outcome is unknown.
    pub(crate) ret: Option<u64>,
}

/// Pairs every invocation with its process's next completion. Fails, naming the line,
/// on a completion without an invocation, an invocation while the process still has
/// one open, or a completion that does not match its invocation.
pub(crate) fn pair(history: &History) -> Result<Vec<Operation>, Error> {
    let name = history.name();
    let events = history.events();
    let line = |i: usize| history.line_of(i);
    // Real time comes from the `time` field when every client event carries one;
    // otherwise the order of the lines is the real-time order.
    let use_time = events.iter().all(|e| e.process == Process::Nemesis || e.time.is_some());
    let point = |i: usize| -> u64 {
        if use_time {
            events[i].time.unwrap_or(0)
        } else {
            i as u64
        }
    };

    let mut open: FastMap<u64, usize> = FastMap::default(); // process -> position in ops
    let mut ops: Vec<Operation> = Vec::new();
    let mut failed: Vec<bool> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Process::Client(p) = e.process else {
            continue; // nemesis events are kept in the history for reports only
        };
        if e.kind == EventType::Invoke {
            if let Some(&o) = open.get(&p) {
                return Err(Error::line(
                    name,
                    line(i),
                    format!(
                        "process {p} invokes an operation while its operation from line {} is still in progress",
                        line(ops[o].invoke)
                    ),
                ));
            }
            open.insert(p, ops.len());
            ops.push(Operation {
                process: p,
                f: e.f.clone(),
                key: e.key.clone(),
                value: e.value.clone(),
                outcome: Outcome::Unknown,
                invoke: i,
                complete: None,
                call: point(i),
                ret: None,
            });
            failed.push(false);
            continue;
        }
        let Some(o) = open.remove(&p) else {
            return Err(Error::line(
                name,
                line(i),
                format!("completion ({}) without an invocation: process {p} has no operation in progress", e.kind),
            ));
        };
        let op = &mut ops[o];
        if e.f != op.f {
            return Err(Error::line(
                name,
                line(i),
                format!(
                    "completion of {:?} does not match the invocation of {:?} at line {}",
                    e.f,
                    op.f,
                    line(op.invoke)
                ),
            ));
        }
        match (&e.key, &op.key) {
            (Some(k), Some(ik)) if k != ik => {
                return Err(Error::line(
                    name,
                    line(i),
                    format!(
                    "completion for key {k} does not match the invocation for key {ik} at line {}",
                    line(op.invoke)
                ),
                ))
            }
            (Some(k), None) => op.key = Some(k.clone()),
            _ => {}
        }
        if use_time && point(i) < op.call {
            return Err(Error::line(
                name,
                line(i),
                format!(
                    "completion time is before its invocation's time (line {})",
                    line(op.invoke)
                ),
            ));
        }
        op.complete = Some(i);
        match e.kind {
            EventType::Ok => {
                op.outcome = Outcome::Ok(e.value.clone());
                op.ret = Some(point(i));
            }
            EventType::Fail => failed[o] = true,
            EventType::Info => {}
            EventType::Invoke => unreachable!("handled above"),
        }
    }
    let mut keep = failed.iter().map(|f| !f);
    ops.retain(|_| keep.next().unwrap_or(true));
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Format;

    fn h(text: &str) -> History {
        History::parse_str("t", text, Format::Jsonl).unwrap()
    }

    #[test]
    fn pairs_by_process_and_drops_failures() {
        let ops = pair(&h(r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":1,"type":"invoke","f":"cas","value":[1,2]}
{"process":"nemesis","type":"info","f":"start","value":null}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"fail","f":"cas","value":[1,2]}
{"process":2,"type":"invoke","f":"write","value":3}
{"process":2,"type":"info","f":"write","value":3}
{"process":3,"type":"invoke","f":"read","value":null}"#))
        .unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!((ops[0].process, ops[0].call, ops[0].ret), (0, 0, Some(3)));
        assert_eq!(ops[0].outcome, Outcome::Ok(1.into()));
        assert_eq!((ops[1].process, ops[1].ret), (2, None));
        assert_eq!(ops[1].outcome, Outcome::Unknown);
        assert_eq!((ops[2].process, ops[2].complete), (3, None));
    }

    #[test]
    fn uses_time_when_every_event_has_one() {
        let ops = pair(&h(r#"{"time":50,"process":0,"type":"invoke","f":"write","value":1}
{"time":40,"process":1,"type":"invoke","f":"write","value":2}
{"time":60,"process":0,"type":"ok","f":"write","value":1}
{"time":60,"process":1,"type":"ok","f":"write","value":2}"#))
        .unwrap();
        assert_eq!((ops[0].call, ops[0].ret), (50, Some(60)));
        assert_eq!((ops[1].call, ops[1].ret), (40, Some(60)));
    }

    #[test]
    fn bad_pairings_name_the_line() {
        let e = pair(&h(r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":1,"type":"ok","f":"write","value":1}"#))
        .unwrap_err();
        assert!(matches!(e, Error::Line { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("without an invocation"), "{e}");
        let e = pair(&h(r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"invoke","f":"write","value":2}"#))
        .unwrap_err();
        assert!(matches!(e, Error::Line { line: 2, .. }), "{e}");
        let e = pair(&h(r#"{"process":0,"type":"invoke","f":"write","value":1}

{"process":0,"type":"ok","f":"read","value":1}"#))
        .unwrap_err();
        assert!(matches!(e, Error::Line { line: 3, .. }), "{e}");
        let e = pair(&h(r#"{"time":9,"process":0,"type":"invoke","f":"write","value":1}
{"time":8,"process":0,"type":"ok","f":"write","value":1}"#))
        .unwrap_err();
        assert!(matches!(e, Error::Line { line: 2, .. }), "{e}");
    }
}
