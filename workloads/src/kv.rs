//! The `kv` model: a string key/value store with get, put and append.

use std::borrow::Cow;

use checker::{Model, OpError, Operation, Outcome};
use serde_json::Value;

/// A string per key that starts empty. `get` returns it (`null` counts as the empty
/// string), `put v` sets it, `append v` concatenates `v` to it. `read` and `write` are
/// accepted as other names of `get` and `put`. A get whose result is unknown is
/// dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

/// A kv operation in model terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// A get that returned this string.
    Get(String),
    /// A put of this string.
    Put(String),
    /// An append of this string.
    Append(String),
}

fn string(v: &Value, what: &str, completion: bool) -> Result<String, OpError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null if completion => Ok(String::new()),
        other => {
            let m = format!("bad value for {what}: expected a string, got {other}");
            Err(if completion { OpError::completion(m) } else { OpError::invocation(m) })
        }
    }
}

impl Model for Kv {
    type State = String;
    type Op = KvOp;

    fn name(&self) -> &str {
        "kv"
    }

    fn parse(&self, op: &Operation<'_>) -> Result<Option<KvOp>, OpError> {
        match op.f {
            "get" | "read" => match &op.outcome {
                Outcome::Ok(v) => Ok(Some(KvOp::Get(string(v, op.f, true)?))),
                Outcome::Unknown => Ok(None),
            },
            "put" | "write" => Ok(Some(KvOp::Put(string(&op.value, op.f, false)?))),
            "append" => Ok(Some(KvOp::Append(string(&op.value, op.f, false)?))),
            f => Err(OpError::invocation(format!(
                "the kv model has no function {f:?} (expected get, put or append)"
            ))),
        }
    }

    fn init(&self) -> String {
        String::new()
    }

    fn step<'a>(&self, state: &'a String, op: &'a KvOp) -> Option<Cow<'a, String>> {
        match op {
            KvOp::Get(v) => (v == state).then_some(Cow::Borrowed(state)),
            KvOp::Put(v) => Some(Cow::Borrowed(v)),
            KvOp::Append(v) => {
                let mut s = String::with_capacity(state.len() + v.len());
                s.push_str(state);
                s.push_str(v);
                Some(Cow::Owned(s))
            }
        }
    }

    fn read_only(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(_))
    }

    /// Before a get of `v` takes effect, the string is a base (the current string, or
    /// the value of a pending put) followed by appends, which only extend it. So some
    /// base must be a prefix of `v`.
    fn may_enable<'o>(
        &self,
        state: &String,
        goal: &KvOp,
        mut pending: impl Iterator<Item = &'o KvOp>,
    ) -> bool {
        let KvOp::Get(v) = goal else {
            return true;
        };
        v.starts_with(state.as_str())
            || pending.any(|p| matches!(p, KvOp::Put(w) if v.starts_with(w.as_str())))
    }

    /// An append or put of a string that no get's result contains was seen by nobody.
    fn unobservable(&self, op: &KvOp, others: &[&KvOp]) -> bool {
        match op {
            KvOp::Append(v) | KvOp::Put(v) if !v.is_empty() => {
                !others.iter().any(|o| matches!(o, KvOp::Get(s) if s.contains(v.as_str())))
            }
            _ => false,
        }
    }

    fn refusal(&self, state: &String, op: &KvOp) -> String {
        match op {
            KvOp::Get(v) => format!("the get returned {v:?}, but the value was {state:?}"),
            KvOp::Put(_) | KvOp::Append(_) => "a put or append is always allowed".to_string(),
        }
    }

    fn describe_state(&self, state: &String) -> String {
        format!("{state:?}")
    }
}
