//! The explanation of a violation, for people ([`Violation::render`]) and for tools
//! (its JSON form).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compact::{CompactHistory, OpRef};
use crate::model::describe_operation;
use crate::ops::Outcome;

/// An operation as shown in an explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    /// The client process.
    pub process: u64,
    /// A one-line description: `read -> 3`, `cas [4,1] -> ok`, `write 2 -> unknown (info)`.
    pub description: String,
    /// The function.
    pub f: String,
    /// The key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The invocation's value.
    pub value: Value,
    /// The result of an `ok` completion; absent when the outcome is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The `index` of the invocation event.
    pub invoke_index: u64,
    /// The 1-based line of the invocation.
    pub invoke_line: usize,
    /// The `index` of the completion event, if it completed with `ok` or `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_index: Option<u64>,
    /// The 1-based line of the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_line: Option<usize>,
}

impl OpSummary {
    /// The summary of the `i`-th operation of `history`.
    /// (Its values parsed when the check took it into the model's terms.)
    pub(crate) fn new(history: &CompactHistory, at: OpRef) -> Self {
        let op = history.operation(at).expect("the check parsed this operation's values");
        let record = history.op(at);
        OpSummary {
            process: op.process,
            description: describe_operation(&op),
            f: op.f.to_string(),
            key: op.key.cloned(),
            result: match &op.outcome {
                Outcome::Ok(v) => Some(v.clone()),
                Outcome::Unknown => None,
            },
            value: op.value,
            invoke_index: record.invoke_index,
            invoke_line: op.invoke_line,
            complete_index: op.complete_line.map(|_| record.complete_index),
            complete_line: op.complete_line,
        }
    }

    fn lines(&self) -> String {
        match self.complete_line {
            Some(c) => format!("lines {}-{}", self.invoke_line, c),
            None => format!("line {}, never completed", self.invoke_line),
        }
    }
}

/// One operation of the linearizable prefix, with the model state after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The operation.
    pub operation: OpSummary,
    /// The model state after it took effect.
    pub state_after: String,
}

/// Why a history is not linearizable: the longest linearizable prefix the search
/// found, the operation that cannot be linearized after it, the state there, and why
/// the model refuses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The model's name.
    pub model: String,
    /// The partition (the key, as JSON text), if the history is partitioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How many operations the partition has.
    pub partition_operations: usize,
    /// The initial state of the model.
    pub initial_state: String,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<Step>,
    /// The operation that must take effect next (before it returned) but cannot.
    pub operation: OpSummary,
    /// The model state at that point.
    pub state: String,
    /// Why the model refuses the operation in that state.
    pub reason: String,
    /// The other operations pending at that point; every order of them was tried too.
    pub pending: Vec<OpSummary>,
}

/// How many steps of the prefix [`Violation::render`] shows.
const SHOWN_STEPS: usize = 20;

impl Violation {
    /// A one-line summary: the operation, where it is, and why it is refused.
    pub fn summary(&self) -> String {
        let key = self.key.as_ref().map_or(String::new(), |k| format!("key {k}: "));
        format!(
            "{key}{} by process {} (line {}) cannot be linearized: {}",
            self.operation.description,
            self.operation.process,
            self.operation.complete_line.unwrap_or(self.operation.invoke_line),
            self.reason
        )
    }

    /// The explanation in words, over several lines.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let key = self.key.as_ref().map_or(String::new(), |k| format!(" for key {k}"));
        let _ = writeln!(
            s,
            "Not linearizable{key} (model {}, {} operations in this partition).",
            self.model, self.partition_operations
        );
        let _ = writeln!(
            s,
            "Longest linearizable prefix found: {} operations, from the initial state {}:",
            self.prefix.len(),
            self.initial_state
        );
        let skip = self.prefix.len().saturating_sub(SHOWN_STEPS);
        if skip > 0 {
            let _ = writeln!(s, "  ... {skip} earlier operations");
        }
        for (k, step) in self.prefix.iter().enumerate().skip(skip) {
            let op = &step.operation;
            let _ = writeln!(
                s,
                "  {:>4}. process {:<4} {:<32} ({})  => {}",
                k + 1,
                op.process,
                op.description,
                op.lines(),
                step.state_after
            );
        }
        let op = &self.operation;
        let _ = writeln!(
            s,
            "Then process {} {} ({}) must take effect before it returned, but in state {} it cannot: {}.",
            op.process,
            op.description,
            op.lines(),
            self.state,
            self.reason
        );
        if self.pending.is_empty() {
            let _ = writeln!(s, "No other operation was pending at that point.");
        } else {
            let _ = writeln!(
                s,
                "Placing any of the {} other pending operations first does not help either:",
                self.pending.len()
            );
            for p in &self.pending {
                let _ = writeln!(
                    s,
                    "        process {:<4} {:<32} ({})",
                    p.process,
                    p.description,
                    p.lines()
                );
            }
        }
        s
    }
}
