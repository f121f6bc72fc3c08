//! The `cas-register` model: a register with read, write and compare-and-set.

use std::borrow::Cow;

use checker::{Model, OpError, Operation, Outcome};
use serde_json::Value;

/// A register per key that starts absent. `read` returns its value (`null` when
/// absent), `write v` sets it, `cas [from, to]` sets it to `to` only when it holds
/// `from`. Values are compared as JSON values.
///
/// A `cas` whose outcome is unknown is modelled as taking effect (the checker already
/// allows it to never take effect); a read whose result is unknown is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct CasRegister;

/// A register operation in model terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned this value (`null`: absent).
    Read(Value),
    /// A write of this value.
    Write(Value),
    /// A compare-and-set; `known` is false when its outcome is unknown.
    Cas {
        /// The expected value.
        from: Value,
        /// The new value.
        to: Value,
        /// Whether the cas is known to have succeeded (`ok`).
        known: bool,
    },
}

fn show(v: &Value) -> String {
    if v.is_null() {
        "absent".to_string()
    } else {
        v.to_string()
    }
}

impl Model for CasRegister {
    type State = Value;
    type Op = RegisterOp;

    fn name(&self) -> &str {
        "cas-register"
    }

    fn parse(&self, op: &Operation<'_>) -> Result<Option<RegisterOp>, OpError> {
        match op.f {
            "read" => Ok(match &op.outcome {
                Outcome::Ok(v) => Some(RegisterOp::Read(v.clone())),
                Outcome::Unknown => None,
            }),
            "write" => Ok(Some(RegisterOp::Write(op.value.clone()))),
            "cas" => match op.value.as_array().map(Vec::as_slice) {
                Some([from, to]) => Ok(Some(RegisterOp::Cas {
                    from: from.clone(),
                    to: to.clone(),
                    known: matches!(op.outcome, Outcome::Ok(_)),
                })),
                _ => Err(OpError::invocation(format!(
                    "bad value for cas: expected [from, to], got {}",
                    op.value
                ))),
            },
            f => Err(OpError::invocation(format!(
                "the cas-register model has no function {f:?} (expected read, write or cas)"
            ))),
        }
    }

    fn init(&self) -> Value {
        Value::Null
    }

    fn step<'a>(&self, state: &'a Value, op: &'a RegisterOp) -> Option<Cow<'a, Value>> {
        match op {
            RegisterOp::Read(v) => (v == state).then_some(Cow::Borrowed(state)),
            RegisterOp::Write(v) => Some(Cow::Borrowed(v)),
            RegisterOp::Cas { from, to, .. } => (from == state).then_some(Cow::Borrowed(to)),
        }
    }

    fn read_only(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_))
    }

    /// A read of `v`, or a cas from `v`, can become legal only when the register holds
    /// `v` or a pending write or cas can put `v` there.
    fn may_enable<'o>(
        &self,
        state: &Value,
        goal: &RegisterOp,
        mut pending: impl Iterator<Item = &'o RegisterOp>,
    ) -> bool {
        let needed = match goal {
            RegisterOp::Read(v) => v,
            RegisterOp::Cas { from, .. } => from,
            RegisterOp::Write(_) => return true,
        };
        needed == state
            || pending.any(|p| match p {
                RegisterOp::Write(w) => w == needed,
                RegisterOp::Cas { to, .. } => to == needed,
                RegisterOp::Read(_) => false,
            })
    }

    /// A write (or cas) of a value that no read returns and no cas starts from was seen by
    /// nobody; a cas from a value to itself changes nothing.
    fn unobservable(&self, op: &RegisterOp, others: &[&RegisterOp]) -> bool {
        let written = match op {
            RegisterOp::Write(v) => v,
            RegisterOp::Cas { from, to, .. } if from == to => return true,
            RegisterOp::Cas { to, .. } => to,
            RegisterOp::Read(_) => return false,
        };
        !others.iter().any(|o| match o {
            RegisterOp::Read(v) => v == written,
            RegisterOp::Cas { from, .. } => from == written,
            RegisterOp::Write(_) => false,
        })
    }

    fn refusal(&self, state: &Value, op: &RegisterOp) -> String {
        match op {
            RegisterOp::Read(v) if v.is_null() => {
                format!("the read returned null (absent), but the register held {state}")
            }
            RegisterOp::Read(v) => {
                format!("the read returned {v}, but the register held {}", show(state))
            }
            RegisterOp::Write(_) => "a write is always allowed".to_string(),
            RegisterOp::Cas { from, to, known } => format!(
                "cas from {from} to {to} {} only if the register held {from}, but it held {}",
                if *known { "succeeded, which is possible" } else { "could take effect" },
                show(state)
            ),
        }
    }

    fn describe_state(&self, state: &Value) -> String {
        show(state)
    }
}
