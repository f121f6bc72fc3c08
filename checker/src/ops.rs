//! An operation as models see it: an invocation paired with its completion.

use serde_json::Value;

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
///
/// It borrows its function and key from the [`CompactHistory`](crate::CompactHistory) it
/// belongs to; its values are parsed for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation<'h> {
    /// The client process.
    pub process: u64,
    /// The function (`read`, `write`, `cas`, `get`, `put`, `append`, ...).
    pub f: &'h str,
    /// The key, if any.
    pub key: Option<&'h Value>,
    /// The invocation's value (the argument).
    pub value: Value,
    /// What the completion says.
    pub outcome: Outcome,
    /// The 1-based line of the invocation.
    pub invoke_line: usize,
    /// The 1-based line of the completion (`ok` or `info`), if any.
    pub complete_line: Option<usize>,
}
