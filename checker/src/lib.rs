//! A fast linearizability checker for Jepsen-shaped histories.
//!
//! - [`History`] reads the project's JSON Lines format ([`Event`], one per line), and
//!   imports Jepsen console logs and EDN op maps ([`Format`]); [`JsonlWriter`] writes it.
//! - [`CompactHistory`] is what checking needs of a history: its invocations paired with
//!   their completions, kept by key, each operation a small record. It streams a file of
//!   any size in every format, on every core ([`CompactHistory::read_file`]), or takes a
//!   [`History`].
//! - [`check_compact`] (and [`check`], for a [`History`]) searches each key's operations in
//!   parallel for a linearization against a [`Model`]; the first illegal partition cancels
//!   the rest, and a time or memory limit yields [`Verdict::Unknown`].
//! - On a violation, [`Violation`] explains it: the longest linearizable prefix found,
//!   the operation that cannot follow, the state there and why the model refuses it.
//!
//! Models are written outside this crate (see the `workloads` crate).
//!
//! ```
//! use checker::{check, CheckOptions, Format, History, Verdict};
//! # use checker::{Model, OpError, Operation, Outcome};
//! # struct Register;
//! # impl Model for Register {
//! #     type State = i64;
//! #     type Op = (bool, i64);
//! #     fn name(&self) -> &str { "register" }
//! #     fn parse(&self, op: &Operation) -> Result<Option<(bool, i64)>, OpError> {
//! #         match (op.f, &op.outcome) {
//! #             ("write", _) => Ok(Some((true, op.value.as_i64().unwrap()))),
//! #             ("read", Outcome::Ok(v)) => Ok(Some((false, v.as_i64().unwrap()))),
//! #             _ => Ok(None),
//! #         }
//! #     }
//! #     fn init(&self) -> i64 { 0 }
//! #     fn step<'a>(&self, s: &'a i64, op: &'a (bool, i64)) -> Option<std::borrow::Cow<'a, i64>> {
//! #         if op.0 { Some(std::borrow::Cow::Owned(op.1)) } else if *s == op.1 { Some(std::borrow::Cow::Borrowed(s)) } else { None }
//! #     }
//! #     fn refusal(&self, s: &i64, op: &(bool, i64)) -> String { format!("read {} but held {s}", op.1) }
//! #     fn describe_state(&self, s: &i64) -> String { s.to_string() }
//! # }
//! let text = r#"{"index":0,"process":0,"type":"invoke","f":"write","value":1}
//! {"index":1,"process":1,"type":"invoke","f":"read","value":null}
//! {"index":2,"process":1,"type":"ok","f":"read","value":1}
//! {"index":3,"process":0,"type":"ok","f":"write","value":1}"#;
//! let history = History::parse_str("example", text, Format::Auto)?;
//! let result = check(&Register, &history, &CheckOptions::default())?;
//! assert_eq!(result.verdict, Verdict::Valid);
//! # Ok::<(), checker::Error>(())
//! ```

#![warn(missing_docs)]

mod check;
mod compact;
mod edn;
mod edn_out;
mod error;
mod explain;
mod fasthash;
mod history;
mod import;
mod intern;
mod json_line;
mod model;
mod ops;
pub mod safety;
mod search;
mod stream;
pub mod synth;

pub use check::{check, check_compact, CheckOptions, CheckResult, Verdict};
pub use compact::CompactHistory;
pub use edn_out::EdnWriter;
pub use error::Error;
pub use explain::{OpSummary, Step, Violation};
pub use history::{Event, EventType, Format, History, JsonlWriter, Process, MAX_LINE_BYTES};
pub use model::{describe_operation, Model, OpError};
pub use ops::{Operation, Outcome};
