//! A history as the checker holds it: its operations paired, one small record each, and
//! every distinct value once.
//!
//! [`History`] keeps each event as it was written (for reports and exports); checking
//! needs less. A [`CompactHistory`] is built as the events arrive (read straight from a
//! file by [`CompactHistory::read_file`], or from a [`History`]): each invocation opens an
//! operation of its process, each completion closes it, and what is kept per operation is
//! 72 bytes: numbers, the id of its function and of its key (keys are interned: partitions
//! are told apart by them), and where the text of its argument and result lies in an
//! arena of value texts. Values are parsed when the check turns each operation into the
//! model's terms, on the thread that checks its partition; nothing of an event outlives
//! its line.

use std::path::Path;

use serde_json::Value;

use crate::error::Error;
use crate::fasthash::FastMap;
use crate::history::{EventType, Format, History, Process};
use crate::intern::{ValueId, Values};
use crate::ops::{Operation, Outcome};

/// No key.
pub(crate) const NONE: ValueId = ValueId::MAX;
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
    /// The invocation's value.
    value: Text,
    /// The result of an `ok` completion; [`Text::UNKNOWN`] when the outcome is unknown.
    result: Text,
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
/// assert_eq!(history.operation(0)?.f, "put");
/// # Ok::<(), checker::Error>(())
/// ```
#[derive(Debug)]
pub struct CompactHistory {
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(crate) torn_line: Option<usize>,
    /// The keys.
    pub(crate) values: Values,
    texts: Arena,
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

    /// The `i`-th operation, in order of invocation, its values parsed. A value that does
    /// not parse is an error naming its line (the streaming reader leaves the parsing of
    /// values to here).
    pub fn operation(&self, i: usize) -> Result<Operation<'_>, Error> {
        let op = &self.ops[i];
        let value = |t: Text, line: u32| {
            self.texts.value(t).map_err(|m| {
                Error::line(&self.name, line as usize, format!("invalid event: bad value: {m}"))
            })
        };
        Ok(Operation {
            process: op.process,
            f: &self.functions[op.f as usize],
            key: (op.key != NONE).then(|| self.values.get(op.key)),
            value: value(op.value, op.invoke_line)?,
            outcome: match op.result {
                Text::UNKNOWN => Outcome::Unknown,
                r => Outcome::Ok(value(r, op.complete_line)?),
            },
            invoke_line: op.invoke_line as usize,
            complete_line: (op.complete_line != 0).then_some(op.complete_line as usize),
        })
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
        let known = op.result != Text::UNKNOWN;
        if self.use_time {
            (op.call_time, known.then_some(op.ret_time))
        } else {
            (op.invoke_line as u64, known.then_some(op.complete_line as u64))
        }
    }

    /// The bytes the history holds, roughly.
    pub fn bytes(&self) -> usize {
        self.ops.capacity() * std::mem::size_of::<Op>() + self.values.bytes() + self.texts.bytes()
    }
}

/// Where a value's text lies in the [`Arena`]: its offset (42 bits), its length (21 bits:
/// a line is at most 1 MiB) and its format (the top bit: JSON, or EDN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Text(u64);

impl Text {
    /// The result of an operation whose outcome is unknown.
    const UNKNOWN: Text = Text(u64::MAX);
    /// The result of an operation that completed with `fail` (dropped when pairing ends).
    const FAILED: Text = Text(u64::MAX - 1);
    const EDN: u64 = 1 << 63;
    const LEN_BITS: u32 = 21;
    const OFFSET_BITS: u32 = 42;
}

/// Value texts, one after another in blocks that never move (a growing vector would copy
/// everything at each doubling).
#[derive(Debug, Default)]
struct Arena {
    blocks: Vec<Vec<u8>>,
}

/// The size of an arena block: a value (at most a line, 1 MiB) always fits in one.
const BLOCK: usize = 1 << 24;

impl Arena {
    fn push(&mut self, text: &[u8], edn: bool) -> Text {
        debug_assert!(text.len() < 1 << Text::LEN_BITS);
        let fits = self.blocks.last().is_some_and(|b| b.len() + text.len() <= BLOCK);
        if !fits {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        let block = self.blocks.len() - 1;
        let b = &mut self.blocks[block];
        let offset = (block * BLOCK + b.len()) as u64;
        b.extend_from_slice(text);
        assert!(offset < 1 << Text::OFFSET_BITS, "more than 4 TiB of values in one history");
        Text(offset | (text.len() as u64) << Text::OFFSET_BITS | if edn { Text::EDN } else { 0 })
    }

    fn get(&self, t: Text) -> &[u8] {
        let offset = (t.0 & ((1 << Text::OFFSET_BITS) - 1)) as usize;
        let len = ((t.0 >> Text::OFFSET_BITS) & ((1 << Text::LEN_BITS) - 1)) as usize;
        let block = &self.blocks[offset / BLOCK];
        &block[offset % BLOCK..offset % BLOCK + len]
    }

    fn value(&self, t: Text) -> Result<Value, String> {
        let text = self.get(t);
        // Most values are strings without escapes (or nothing), spelled alike in both
        // formats: read those without a parser.
        if let [b'"', inner @ .., b'"'] = text {
            if !inner.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
                if let Ok(s) = std::str::from_utf8(inner) {
                    return Ok(Value::String(s.to_string()));
                }
            }
        }
        if t.0 & Text::EDN != 0 {
            parse_edn(text)
        } else {
            parse_json(text)
        }
    }

    fn bytes(&self) -> usize {
        self.blocks.iter().map(Vec::capacity).sum()
    }
}

/// A value as a line spelled it, or as already parsed.
pub(crate) enum Spelled<'a> {
    /// Text in the history's format.
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
    /// Whether the history's own spelling of values is EDN.
    edn: bool,
    /// The keys.
    values: Values,
    texts: Arena,
    /// Scratch for a parsed value's JSON text.
    json: Vec<u8>,
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
            edn: format != Format::Jsonl,
            values: Values::default(),
            texts: Arena::default(),
            json: Vec::new(),
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

    /// The id of a key.
    fn key(&mut self, v: &Spelled<'_>) -> Result<ValueId, String> {
        match *v {
            Spelled::Value(v) => Ok(self.values.intern_value(v)),
            Spelled::Text(t) => self.values.intern_text(t, self.parse),
        }
    }

    /// A value's text in the arena; the invocation's own when a completion repeats it.
    fn text(&mut self, v: &Spelled<'_>, same_as: Option<Text>) -> Text {
        let (text, edn) = match *v {
            Spelled::Text(t) => (t, self.edn),
            Spelled::Value(v) => {
                self.json.clear();
                let _ = serde_json::to_writer(&mut self.json, v);
                (&self.json[..], false)
            }
        };
        match same_as {
            Some(t) if (t.0 & Text::EDN != 0) == edn && self.texts.get(t) == text => t,
            _ => self.texts.push(text, edn),
        }
    }

    /// The id of a client event's key (`None` for the nemesis's, [`NONE`] for no key), or
    /// why it cannot be read.
    pub(crate) fn key_of(&mut self, e: &LineEvent<'_>) -> Result<Option<ValueId>, String> {
        if e.process == Process::Nemesis {
            return Ok(None);
        }
        match &e.key {
            Some(k) => self.key(k).map(Some).map_err(|m| format!("bad key: {m}")),
            None => Ok(Some(NONE)),
        }
    }

    /// Takes the event on 1-based `line`.
    pub(crate) fn event(&mut self, line: usize, e: LineEvent<'_>) -> Result<(), Error> {
        let key = self
            .key_of(&e)
            .map_err(|m| Error::line(&self.name, line, format!("invalid event: {m}")))?;
        self.take(line, &e, key)
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

    /// Takes the event on 1-based `line`, its key interned by [`Pairing::key_of`].
    pub(crate) fn take(
        &mut self,
        line: usize,
        e: &LineEvent<'_>,
        key: Option<ValueId>,
    ) -> Result<(), Error> {
        let position = self.events;
        self.events += 1;
        let (Process::Client(p), Some(key)) = (e.process, key) else {
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
            let value = self.text(&e.value, None);
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
                result: Text::UNKNOWN,
            });
            return Ok(());
        }
        let Some(o) = self.open.remove(&p) else {
            return Err(err(format!(
                "completion ({}) without an invocation: process {p} has no operation in progress",
                e.kind
            )));
        };
        let op = &self.ops[o as usize];
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
        if time != NEVER && op.call_time != NEVER && time < op.call_time {
            self.backwards.get_or_insert((line, op.invoke_line as usize));
        }
        let invoked = op.value;
        let result = match e.kind {
            EventType::Ok => Some(self.text(&e.value, Some(invoked))),
            _ => None,
        };
        let op = &mut self.ops[o as usize];
        if key != NONE {
            op.key = key;
        }
        op.complete_index = index;
        op.complete_line = line32;
        match e.kind {
            EventType::Ok => {
                op.result = result.unwrap_or(Text::UNKNOWN);
                op.ret_time = time;
            }
            EventType::Fail => {
                op.result = Text::FAILED;
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
            self.ops.retain(|op| op.result != Text::FAILED);
        }
        self.ops.shrink_to_fit();
        Ok(CompactHistory {
            name: self.name,
            format: self.format,
            torn_line,
            values: self.values,
            texts: self.texts,
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
        let op = |i| h.operation(i).unwrap();
        let (a, b, c) = (op(0), op(1), op(2));
        assert_eq!((a.process, a.invoke_line, a.complete_line), (0, 1, Some(4)));
        assert_eq!(a.outcome, Outcome::Ok(json!(1)));
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
