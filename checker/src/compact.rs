//! A history as the checker holds it: its operations paired, one small record each, and
//! every distinct value once.
//!
//! [`History`] keeps each event as it was written (for reports and exports); checking
//! needs less. A [`CompactHistory`] is built as the events arrive (read straight from a
//! file by [`CompactHistory::read_file`], or from a [`History`]): each invocation opens an
//! operation of its process, each completion closes it, and what is kept per operation is
//! 64 bytes and ids into a table of distinct values (`intern`). Nothing of an event
//! outlives its line.

use std::path::Path;

use serde_json::Value;

use crate::error::Error;
use crate::fasthash::FastMap;
use crate::history::{EventType, Format, History, Process};
use crate::intern::{ValueId, Values};
use crate::ops::{Operation, Outcome};

/// No value: an absent key, or the result of an operation whose outcome is unknown.
pub(crate) const NONE: ValueId = ValueId::MAX;
/// The result of an operation that completed with `fail` (dropped when pairing ends).
const FAILED: ValueId = ValueId::MAX - 1;
/// No time, or no completion.
const NEVER: u64 = u64::MAX;

/// One operation, paired.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) process: u64,
    /// The `index` of the invocation and of the completion ([`NEVER`]: none).
    pub(crate) invoke_index: u64,
    pub(crate) complete_index: u64,
    /// The `time` of the invocation and of an `ok` completion ([`NEVER`]: none).
    call_time: u64,
    ret_time: u64,
    /// The 1-based lines of the invocation and of the completion (0: none).
    pub(crate) invoke_line: u32,
    pub(crate) complete_line: u32,
    pub(crate) f: u32,
    pub(crate) key: ValueId,
    pub(crate) value: ValueId,
    /// The result of an `ok` completion; [`NONE`] when the outcome is unknown.
    pub(crate) result: ValueId,
}

/// A history read for checking: its operations (invocations paired with completions,
/// `fail`ed ones left out) in the order of their invocations, each distinct value held once.
///
/// ```
/// use checker::{check_compact, CompactHistory, Format};
/// let text = "{:process 0, :type :invoke, :f :put, :key \"a\", :value \"x\"}\n\
///             {:process 0, :type :ok, :f :put, :key \"a\", :value \"x\"}\n";
/// let history = CompactHistory::read("example", text.as_bytes(), Format::Auto)?;
/// assert_eq!(history.len(), 1);
/// assert_eq!(history.operation(0).f, "put");
/// # Ok::<(), checker::Error>(())
/// ```
#[derive(Debug)]
pub struct CompactHistory {
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(crate) torn_line: Option<usize>,
    pub(crate) values: Values,
    functions: Vec<Box<str>>,
    pub(crate) ops: Vec<Op>,
    pub(crate) nemesis_events: usize,
    /// Real time is the events' `time` (every client event has one), else their lines.
    use_time: bool,
}

impl CompactHistory {
    /// Reads a history file in `format` (or detects it), streaming: the file is never held
    /// whole. Devices (`/dev/zero`, a terminal) are refused, as by [`History::read_file`];
    /// a torn last line is left out ([`CompactHistory::torn_line`]).
    pub fn read_file(path: &Path, format: Format) -> Result<Self, Error> {
        let name = path.display().to_string();
        let file = crate::history::open_history_file(path, &name)?;
        Self::read(&name, file, format)
    }

    /// Reads a history from any reader, streaming; `name` is used in error messages.
    pub fn read(name: &str, reader: impl std::io::Read, format: Format) -> Result<Self, Error> {
        crate::stream::read(name, reader, format)
    }

    /// The history of recorded events, paired.
    pub fn from_history(history: &History) -> Result<Self, Error> {
        let mut pairing = Pairing::new(history.name(), history.format());
        for (i, e) in history.events().iter().enumerate() {
            pairing.event(
                history.line_of(i),
                LineEvent {
                    index: Some(e.index),
                    time: e.time,
                    process: e.process,
                    kind: e.kind,
                    f: &e.f,
                    key: e.key.as_ref().map(Spelled::Value),
                    value: Spelled::Value(&e.value),
                },
            )?;
        }
        pairing.finish(history.torn_line())
    }

    /// The history's name (the path it was read from).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format it was read in (never [`Format::Auto`]).
    pub fn format(&self) -> Format {
        self.format
    }

    /// The last line, if it was cut short and left out (see [`History::torn_line`]).
    pub fn torn_line(&self) -> Option<usize> {
        self.torn_line
    }

    /// How many operations there are (`fail`ed ones left out).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there is no operation (every event was the nemesis's, or failed).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The `i`-th operation, in order of invocation.
    pub fn operation(&self, i: usize) -> Operation<'_> {
        let op = &self.ops[i];
        Operation {
            process: op.process,
            f: &self.functions[op.f as usize],
            key: (op.key != NONE).then(|| self.values.get(op.key)),
            value: self.values.get(op.value),
            outcome: match op.result {
                NONE => Outcome::Unknown,
                r => Outcome::Ok(self.values.get(r)),
            },
            invoke_line: op.invoke_line as usize,
            complete_line: (op.complete_line != 0).then_some(op.complete_line as usize),
        }
    }

    /// The functions the operations use (`read`, `put`, ...), each once.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|f| &**f)
    }

    /// Nemesis events in the history (kept out of the operations).
    pub fn nemesis_events(&self) -> usize {
        self.nemesis_events
    }

    /// The real-time points of operation `i`'s call and, when its outcome is known, its
    /// return.
    pub(crate) fn points(&self, i: usize) -> (u64, Option<u64>) {
        let op = &self.ops[i];
        if self.use_time {
            (op.call_time, (op.result != NONE).then_some(op.ret_time))
        } else {
            (op.invoke_line as u64, (op.result != NONE).then_some(op.complete_line as u64))
        }
    }

    /// The bytes the history holds, roughly.
    pub fn bytes(&self) -> usize {
        self.ops.capacity() * std::mem::size_of::<Op>() + self.values.bytes()
    }
}

/// A value as a line spelled it, or as already parsed.
pub(crate) enum Spelled<'a> {
    /// Text in the history's format, parsed by the [`Pairing`]'s parser when new.
    Text(&'a [u8]),
    /// A parsed value.
    Value(&'a Value),
}

/// An event as read from a line, its values not yet interned.
pub(crate) struct LineEvent<'a> {
    pub(crate) index: Option<u64>,
    pub(crate) time: Option<u64>,
    pub(crate) process: Process,
    pub(crate) kind: EventType,
    pub(crate) f: &'a str,
    pub(crate) key: Option<Spelled<'a>>,
    pub(crate) value: Spelled<'a>,
}

/// Reads a value spelled in a history's format.
pub(crate) type ParseValue = fn(&[u8]) -> Result<Value, String>;

/// Pairs events into operations as they arrive, in file order.
pub(crate) struct Pairing {
    name: String,
    format: Format,
    parse: ParseValue,
    values: Values,
    functions: Vec<Box<str>>,
    function_ids: FastMap<Box<str>, u32>,
    ops: Vec<Op>,
    /// Each process's operation in progress (its position in `ops`).
    open: FastMap<u64, u32>,
    events: u64,
    nemesis_events: usize,
    failed: usize,
    all_timed: bool,
    /// The first completion timed before its invocation: (its line, the invocation's). An
    /// error only when real time is the events' times.
    backwards: Option<(usize, usize)>,
}

fn parse_json(text: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(text).map_err(|e| e.to_string())
}

fn parse_edn(text: &[u8]) -> Result<Value, String> {
    crate::edn::parse(std::str::from_utf8(text).map_err(|e| e.to_string())?)
}

impl Pairing {
    pub(crate) fn new(name: &str, format: Format) -> Self {
        Pairing {
            name: name.to_string(),
            format,
            parse: match format {
                Format::Jsonl => parse_json,
                _ => parse_edn,
            },
            values: Values::default(),
            functions: Vec::new(),
            function_ids: FastMap::default(),
            ops: Vec::new(),
            open: FastMap::default(),
            events: 0,
            nemesis_events: 0,
            failed: 0,
            all_timed: true,
            backwards: None,
        }
    }

    fn intern(&mut self, v: &Spelled<'_>) -> Result<ValueId, String> {
        match *v {
            Spelled::Value(v) => Ok(self.values.intern_value(v)),
            Spelled::Text(t) => self.values.intern_text(t, self.parse),
        }
    }

    /// The ids of a client event's key and value (`None` for the nemesis's), or why one
    /// of them cannot be read.
    pub(crate) fn values_of(
        &mut self,
        e: &LineEvent<'_>,
    ) -> Result<Option<(ValueId, ValueId)>, String> {
        if e.process == Process::Nemesis {
            return Ok(None);
        }
        let key = match &e.key {
            Some(k) => self.intern(k).map_err(|m| format!("bad key: {m}"))?,
            None => NONE,
        };
        let value = self.intern(&e.value).map_err(|m| format!("bad value: {m}"))?;
        Ok(Some((key, value)))
    }

    /// Takes the event on 1-based `line`.
    pub(crate) fn event(&mut self, line: usize, e: LineEvent<'_>) -> Result<(), Error> {
        let ids = self
            .values_of(&e)
            .map_err(|m| Error::line(&self.name, line, format!("invalid event: {m}")))?;
        self.take(line, &e, ids)
    }

    fn function(&mut self, f: &str) -> u32 {
        if let Some(&id) = self.function_ids.get(f) {
            return id;
        }
        let id = self.functions.len() as u32;
        self.functions.push(f.into());
        self.function_ids.insert(f.into(), id);
        id
    }

    /// Takes the event on 1-based `line`, its key and value interned by
    /// [`Pairing::values_of`].
    pub(crate) fn take(
        &mut self,
        line: usize,
        e: &LineEvent<'_>,
        ids: Option<(ValueId, ValueId)>,
    ) -> Result<(), Error> {
        let position = self.events;
        self.events += 1;
        let (Process::Client(p), Some((key, value))) = (e.process, ids) else {
            self.nemesis_events += 1;
            return Ok(()); // nemesis events are kept out of the search
        };
        let Ok(line32) = u32::try_from(line) else {
            return Err(Error::line(&self.name, line, "more than 2^32 lines: too long a history"));
        };
        let index = e.index.unwrap_or(position);
        self.all_timed &= e.time.is_some();
        let time = e.time.unwrap_or(NEVER);
        let err = |m: String| Error::line(&self.name, line, m);
        if e.kind == EventType::Invoke {
            if let Some(&o) = self.open.get(&p) {
                let from = self.ops[o as usize].invoke_line;
                return Err(err(format!(
                    "process {p} invokes an operation while its operation from line {from} is still in progress"
                )));
            }
            self.open.insert(p, self.ops.len() as u32);
            let f = self.function(e.f);
            self.ops.push(Op {
                process: p,
                invoke_index: index,
                complete_index: NEVER,
                call_time: time,
                ret_time: NEVER,
                invoke_line: line32,
                complete_line: 0,
                f,
                key,
                value,
                result: NONE,
            });
            return Ok(());
        }
        let Some(o) = self.open.remove(&p) else {
            return Err(err(format!(
                "completion ({}) without an invocation: process {p} has no operation in progress",
                e.kind
            )));
        };
        let op = &mut self.ops[o as usize];
        if *self.functions[op.f as usize] != *e.f {
            return Err(err(format!(
                "completion of {:?} does not match the invocation of {:?} at line {}",
                e.f, self.functions[op.f as usize], op.invoke_line
            )));
        }
        if key != NONE && op.key != NONE && key != op.key {
            return Err(err(format!(
                "completion for key {} does not match the invocation for key {} at line {}",
                self.values.get(key),
                self.values.get(op.key),
                op.invoke_line
            )));
        }
        if key != NONE {
            op.key = key;
        }
        if time != NEVER && op.call_time != NEVER && time < op.call_time {
            self.backwards.get_or_insert((line, op.invoke_line as usize));
        }
        op.complete_index = index;
        op.complete_line = line32;
        match e.kind {
            EventType::Ok => {
                op.result = value;
                op.ret_time = time;
            }
            EventType::Fail => {
                op.result = FAILED;
                self.failed += 1;
            }
            EventType::Info => {}
            EventType::Invoke => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Ends the pairing: operations still open never completed (their outcome is unknown).
    pub(crate) fn finish(mut self, torn_line: Option<usize>) -> Result<CompactHistory, Error> {
        if self.events == 0 {
            return Err(Error::input(&self.name, "empty history: no events"));
        }
        if let (true, Some((line, from))) = (self.all_timed, self.backwards) {
            return Err(Error::line(
                &self.name,
                line,
                format!("completion time is before its invocation's time (line {from})"),
            ));
        }
        if self.failed > 0 {
            self.ops.retain(|op| op.result != FAILED);
        }
        self.ops.shrink_to_fit();
        Ok(CompactHistory {
            name: self.name,
            format: self.format,
            torn_line,
            values: self.values,
            functions: self.functions,
            ops: self.ops,
            nemesis_events: self.nemesis_events,
            use_time: self.all_timed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(text: &str) -> CompactHistory {
        CompactHistory::read("t", text.as_bytes(), Format::Jsonl).unwrap()
    }

    #[test]
    fn pairs_by_process_and_drops_failures() {
        let h = h(r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":1,"type":"invoke","f":"cas","value":[1,2]}
{"process":"nemesis","type":"info","f":"start","value":null}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"fail","f":"cas","value":[1,2]}
{"process":2,"type":"invoke","f":"write","value":3}
{"process":2,"type":"info","f":"write","value":3}
{"process":3,"type":"invoke","f":"read","value":null}"#);
        assert_eq!((h.len(), h.nemesis_events()), (3, 1));
        let (a, b, c) = (h.operation(0), h.operation(1), h.operation(2));
        assert_eq!((a.process, a.invoke_line, a.complete_line), (0, 1, Some(4)));
        assert_eq!(a.outcome, Outcome::Ok(&json!(1)));
        assert_eq!(h.points(0), (1, Some(4)));
        assert_eq!((b.process, b.outcome, b.complete_line), (2, Outcome::Unknown, Some(7)));
        assert_eq!(h.points(1), (6, None));
        assert_eq!((c.process, c.complete_line), (3, None));
        assert_eq!(h.functions().collect::<Vec<_>>(), ["write", "cas", "read"]);
    }

    #[test]
    fn uses_time_when_every_client_event_has_one() {
        let h = h(r#"{"time":50,"process":0,"type":"invoke","f":"write","value":1}
{"time":40,"process":1,"type":"invoke","f":"write","value":2}
{"process":"nemesis","type":"info","f":"start","value":null}
{"time":60,"process":0,"type":"ok","f":"write","value":1}
{"time":60,"process":1,"type":"ok","f":"write","value":2}"#);
        assert_eq!((h.points(0), h.points(1)), ((50, Some(60)), (40, Some(60))));
    }
}
