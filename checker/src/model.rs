//! The sequential specification a history is checked against.

use std::borrow::Cow;
use std::hash::Hash;

use crate::ops::{Operation, Outcome};

/// A sequential model, as pure functions. Implementations live outside this crate
/// (the `workloads` crate has `cas-register` and `kv`).
///
/// The checker partitions the operations by key (a model describes one object; objects
/// are independent), calls [`Model::parse`] once per operation, and searches each
/// partition for a linearization with [`Model::step`], starting from [`Model::init`].
/// States are interned and transitions memoised by the checker, so `step` is called once
/// per distinct (state, operation).
pub trait Model: Sync {
    /// The state of one partition.
    type State: Clone + Eq + Hash + Send;
    /// An operation in the model's own terms: the input, and the output if known.
    type Op: Send + Sync;

    /// The model's name, as given on the command line.
    fn name(&self) -> &str;

    /// Turns an operation into the model's terms. Returns `Ok(None)` for an operation
    /// that can be dropped because it neither changes the state nor observes anything
    /// (for instance, a read whose result is unknown). An error message says what is
    /// wrong with the operation's function or values, and on which of its events.
    ///
    /// When `op.outcome` is [`Outcome::Unknown`] the operation may or may not have
    /// taken effect; the checker already allows it to never take effect, so `step` only
    /// needs to describe the case where it does.
    fn parse(&self, op: &Operation<'_>) -> Result<Option<Self::Op>, OpError>;

    /// The initial state of every partition.
    fn init(&self) -> Self::State;

    /// Applies `op` in `state`: the new state, or `None` if the model refuses it
    /// (its output cannot be produced in this state). Return a borrowed state when it
    /// already exists (the same `state` for a read, a value held by `op` for a write):
    /// the checker then avoids a copy.
    fn step<'a>(&self, state: &'a Self::State, op: &'a Self::Op) -> Option<Cow<'a, Self::State>>;

    /// Whether `op` never changes the state: wherever `step` accepts it, it returns the
    /// same state (a read). The search linearizes such an operation as soon as it is
    /// legal, without trying other orders. Answering `false` is always safe.
    fn read_only(&self, op: &Self::Op) -> bool {
        let _ = op;
        false
    }

    /// Whether some sequence of `pending` operations (each at most once, in any order,
    /// possibly none), applied from `state`, could make `goal` legal. The search asks
    /// this when `goal` must take effect next and is refused in `state`, and abandons the
    /// configuration on `false`. It must never answer `false` when such a sequence
    /// exists; answering `true` is always safe. The default prunes nothing.
    fn may_enable<'o>(
        &self,
        state: &Self::State,
        goal: &Self::Op,
        pending: impl Iterator<Item = &'o Self::Op>,
    ) -> bool
    where
        Self::Op: 'o,
    {
        let _ = (state, goal, pending);
        true
    }

    /// Whether `op`, whose outcome is unknown, can be left out of the search because no
    /// operation in `others` (the rest of its partition) could observe its effect: no read
    /// can return what it wrote, no other operation can depend on it. Such an operation may
    /// be taken to have had no effect — always one of its allowed outcomes — without
    /// changing the verdict: had it taken effect somewhere, nothing could have seen it before
    /// its effect was overwritten. Leaving such operations out keeps the search from trying
    /// every place and order for them. Answering `false` is always safe.
    fn unobservable(&self, op: &Self::Op, others: &[&Self::Op]) -> bool {
        let _ = (op, others);
        false
    }

    /// Why `step(state, op)` refuses the operation, in words.
    fn refusal(&self, state: &Self::State, op: &Self::Op) -> String;

    /// The state, in words or as a short value.
    fn describe_state(&self, state: &Self::State) -> String;
}

/// Why an operation does not fit a model: which of its events is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// True when the completion's value is at fault, false for the invocation.
    pub in_completion: bool,
    /// What is wrong.
    pub message: String,
}

impl OpError {
    /// A problem with the invocation (its function or argument).
    pub fn invocation(message: impl Into<String>) -> Self {
        OpError { in_completion: false, message: message.into() }
    }

    /// A problem with the completion's value.
    pub fn completion(message: impl Into<String>) -> Self {
        OpError { in_completion: true, message: message.into() }
    }
}

/// A short generic description of an operation: `read -> 3`, `write 4 -> ok`,
/// `cas [4,1] -> unknown`.
pub fn describe_operation(op: &Operation<'_>) -> String {
    let mut s = op.f.to_string();
    if !op.value.is_null() {
        s.push(' ');
        s.push_str(&op.value.to_string());
    }
    s.push_str(" -> ");
    match &op.outcome {
        Outcome::Ok(v) if !op.value.is_null() && (v.is_null() || *v == op.value) => {
            s.push_str("ok")
        }
        Outcome::Ok(v) => s.push_str(&v.to_string()),
        Outcome::Unknown if op.complete_line.is_some() => s.push_str("unknown (info)"),
        Outcome::Unknown => s.push_str("unknown (never completed)"),
    }
    s
}
