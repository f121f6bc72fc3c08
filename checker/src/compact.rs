//! A history as the checker holds it: its operations paired, one small record each, kept
//! with the other operations on their key.
//!
//! [`History`] keeps each event as it was written (for reports and exports); checking
//! needs less. A [`CompactHistory`] is built as the events arrive (read straight from a
//! file by [`CompactHistory::read_file`], or from a [`History`]): each invocation opens an
//! operation of its process, each completion closes it. What is kept per operation is 80
//! bytes (numbers, the id of its function, and where the texts of its argument and result
//! lie), in the [`KeyOps`] of its key, beside the texts of that key's values: the check
//! takes a key's operations one after another, from memory that holds little else. Values
//! are parsed when the check turns each operation into the model's terms, on the thread
//! that checks the key; nothing of an event outlives its line.

use std::path::Path;

use serde_json::Value;

use crate::error::Error;
use crate::fasthash::FastMap;
use crate::history::{Event, EventType, Format, History, Process};
use crate::intern::{ValueId, Values};
use crate::ops::{Operation, Outcome};

/// No time, or no completion.
const NEVER: u64 = u64::MAX;

/// One operation, paired: 72 bytes.
#[derive(Debug, Clone, Copy)]
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
    /// The invocation's value, in the history's texts.
    value: Text,
    /// The result of an `ok` completion; [`Text::UNKNOWN`] when the outcome is unknown.
    result: Text,
    pub(crate) f: u32,
}

const _: () = assert!(std::mem::size_of::<Op>() == 72);

/// The operations of one key (or of none), in order of invocation, as their places in the
/// array of all operations ([`CompactHistory::ops`]).
#[derive(Debug, Default)]
pub(crate) struct KeyOps {
    /// The key's id; `None` for the operations without a key.
    pub(crate) key: Option<ValueId>,
    pub(crate) ops: Vec<u32>,
}

/// Where an operation is: its key's place in [`CompactHistory::keys`], and its own there.
pub(crate) type OpRef = (u32, u32);

/// A history read for checking: its operations (invocations paired with completions,
/// `fail`ed ones left out), kept by key, each key's in order of invocation.
///
/// ```
/// use checker::{check_compact, CompactHistory, Format};
/// let text = "{:process 0, :type :invoke, :f :put, :key \"a\", :value \"x\"}\n\
///             {:process 0, :type :ok, :f :put, :key \"a\", :value \"x\"}\n";
/// let history = CompactHistory::read("example", text.as_bytes(), Format::Auto)?;
/// assert_eq!(history.len(), 1);
/// let op = history.operations().next().unwrap()?;
/// assert_eq!((op.f, op.key), ("put", Some(&"a".into())));
/// # Ok::<(), checker::Error>(())
/// ```
#[derive(Debug)]
pub struct CompactHistory {
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(crate) torn_line: Option<usize>,
    /// The keys.
    pub(crate) values: Values,
    /// Every operation in order of invocation (failed ones too, which no key lists), and
    /// their values' texts. One array written in order, not one per key: the pairing's
    /// stores stay sequential, where a thousand keys' arrays would each wait for memory.
    ops: Vec<Op>,
    texts: Vec<u8>,
    pub(crate) keys: Vec<KeyOps>,
    functions: Vec<Box<str>>,
    len: usize,
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
            pairing.event(history.line_of(i), e.as_line_event(Some(e.index)))?;
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
        self.len
    }

    /// Whether there is no operation (every event was the nemesis's, or failed).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The operations in order of invocation, their values parsed. A value that does not
    /// parse is an error naming its line (the streaming reader leaves the parsing of values
    /// to here).
    pub fn operations(&self) -> impl Iterator<Item = Result<Operation<'_>, Error>> + '_ {
        // a merge of the keys' operations, each key's in order of invocation already
        let mut next: std::collections::BinaryHeap<std::cmp::Reverse<(u32, u32, u32)>> = self
            .keys
            .iter()
            .enumerate()
            .filter_map(|(k, ops)| Some(std::cmp::Reverse((*ops.ops.first()?, k as u32, 0))))
            .collect();
        std::iter::from_fn(move || {
            let std::cmp::Reverse((_, k, pos)) = next.pop()?;
            if let Some(&op) = self.keys[k as usize].ops.get(pos as usize + 1) {
                next.push(std::cmp::Reverse((op, k, pos + 1)));
            }
            Some(self.operation((k, pos)))
        })
    }

    /// An operation as paired.
    pub(crate) fn op(&self, (k, pos): OpRef) -> &Op {
        &self.ops[self.keys[k as usize].ops[pos as usize] as usize]
    }

    /// Hints to the processor that the operation at `op` (a place in
    /// [`CompactHistory::ops`]) and the value texts of the one at `texts_of` are wanted
    /// soon: a key's operations are spread over the array, and read one after another each
    /// would wait for memory.
    pub(crate) fn prefetch(&self, op: Option<u32>, texts_of: Option<u32>) {
        if let Some(o) = op {
            prefetch(&self.ops[o as usize]);
        }
        if let Some(o) = texts_of {
            let op = &self.ops[o as usize];
            for t in [op.value, op.result] {
                if let Some(b) = t.first_byte(&self.texts) {
                    prefetch(b);
                }
            }
        }
    }

    /// An operation, its values parsed.
    pub(crate) fn operation(&self, at: OpRef) -> Result<Operation<'_>, Error> {
        let key = &self.keys[at.0 as usize];
        let op = self.op(at);
        let value = |t: Text, line: u32| {
            t.value(&self.texts).map_err(|m| {
                Error::line(&self.name, line as usize, format!("invalid event: bad value: {m}"))
            })
        };
        Ok(Operation {
            process: op.process,
            f: &self.functions[op.f as usize],
            key: key.key.map(|k| self.values.get(k)),
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

    /// The real-time points of an operation's call and, when its outcome is known, its
    /// return.
    pub(crate) fn points(&self, at: OpRef) -> (u64, Option<u64>) {
        let op = self.op(at);
        let known = op.result != Text::UNKNOWN;
        if self.use_time {
            (op.call_time, known.then_some(op.ret_time))
        } else {
            (op.invoke_line as u64, known.then_some(op.complete_line as u64))
        }
    }

    /// The bytes the history holds, roughly.
    pub fn bytes(&self) -> usize {
        let keys = self.keys.capacity() * std::mem::size_of::<KeyOps>();
        let ops = self.ops.capacity() * std::mem::size_of::<Op>();
        keys + ops + self.texts.capacity() + self.values.bytes()
    }
}

/// Where a value's text lies in the history's texts: its offset (42 bits), its length (21 bits:
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

    fn push(texts: &mut Vec<u8>, text: &[u8], edn: bool) -> Text {
        debug_assert!(text.len() < 1 << Text::LEN_BITS);
        let offset = texts.len() as u64;
        assert!(offset < 1 << Text::OFFSET_BITS, "more than 4 TiB of values");
        texts.extend_from_slice(text);
        Text(offset | (text.len() as u64) << Text::OFFSET_BITS | if edn { Text::EDN } else { 0 })
    }

    fn offset(self) -> usize {
        (self.0 & ((1 << Text::OFFSET_BITS) - 1)) as usize
    }

    fn get(self, texts: &[u8]) -> &[u8] {
        let offset = self.offset();
        let len = ((self.0 >> Text::OFFSET_BITS) & ((1 << Text::LEN_BITS) - 1)) as usize;
        &texts[offset..offset + len]
    }

    /// The first byte of the text, if it is one.
    fn first_byte(self, texts: &[u8]) -> Option<&u8> {
        match self {
            Text::UNKNOWN | Text::FAILED => None,
            t => texts.get(t.offset()),
        }
    }

    fn is_edn(self) -> bool {
        self.0 & Text::EDN != 0
    }

    fn value(self, texts: &[u8]) -> Result<Value, String> {
        let text = self.get(texts);
        // Most values are strings without escapes (or nothing), spelled alike in both
        // formats: read those without a parser.
        if let [b'"', inner @ .., b'"'] = text {
            if !inner.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
                if let Ok(s) = std::str::from_utf8(inner) {
                    return Ok(Value::String(s.to_string()));
                }
            }
        }
        if self.is_edn() {
            parse_edn(text)
        } else {
            parse_json(text)
        }
    }
}

/// `null`, for an event without a value.
pub(crate) static NULL: Value = Value::Null;

/// A value as a line spelled it, or as already parsed.
#[derive(Debug, PartialEq)]
pub(crate) enum Spelled<'a> {
    /// Text in the history's format.
    Text(&'a [u8]),
    /// A parsed value.
    Value(&'a Value),
}

/// An event as read from a line, its key not yet interned.
#[derive(Debug)]
pub(crate) struct LineEvent<'a> {
    pub(crate) index: Option<u64>,
    pub(crate) time: Option<u64>,
    pub(crate) process: Process,
    pub(crate) kind: EventType,
    pub(crate) f: &'a str,
    pub(crate) key: Option<Spelled<'a>>,
    pub(crate) value: Spelled<'a>,
}

/// The operation in progress of each process (its key's place, its own in
/// [`CompactHistory::ops`]): a table for process numbers below
/// [`Open::DIRECT`] (Jepsen numbers its clients from 0, a new number after each `info`), a
/// map for the rest.
#[derive(Default)]
struct Open {
    direct: Vec<Option<OpRef>>,
    others: FastMap<u64, OpRef>,
}

impl Open {
    const DIRECT: u64 = 1 << 20;

    fn get(&self, p: u64) -> Option<OpRef> {
        match p < Self::DIRECT {
            true => self.direct.get(p as usize).copied().flatten(),
            false => self.others.get(&p).copied(),
        }
    }

    fn insert(&mut self, p: u64, at: OpRef) {
        if p < Self::DIRECT {
            if self.direct.len() <= p as usize {
                self.direct.resize(p as usize + 1, None);
            }
            self.direct[p as usize] = Some(at);
        } else {
            self.others.insert(p, at);
        }
    }

    fn remove(&mut self, p: u64) -> Option<OpRef> {
        match p < Self::DIRECT {
            true => self.direct.get_mut(p as usize).and_then(Option::take),
            false => self.others.remove(&p),
        }
    }
}

impl Event {
    /// The event as the pairing takes it, its values already parsed, with the `index` its
    /// line gave (`None`: the event's position in the history).
    pub(crate) fn as_line_event(&self, index: Option<u64>) -> LineEvent<'_> {
        LineEvent {
            index,
            time: self.time,
            process: self.process,
            kind: self.kind,
            f: &self.f,
            key: self.key.as_ref().map(Spelled::Value),
            value: Spelled::Value(&self.value),
        }
    }
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
    ops: Vec<Op>,
    texts: Vec<u8>,
    keys: Vec<KeyOps>,
    /// Each key id's place in `keys`.
    key_place: Vec<u32>,
    /// The place of the operations without a key, once there is one.
    no_key: Option<u32>,
    /// Scratch for a parsed value's JSON text.
    json: Vec<u8>,
    functions: Vec<Box<str>>,
    function_ids: FastMap<Box<str>, u32>,
    /// Each process's operation in progress.
    open: Open,
    events: u64,
    nemesis_events: usize,
    /// Operations failed, to drop at the end.
    dropped: usize,
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

/// No key: the operations of a history without keys.
pub(crate) const NO_KEY: ValueId = ValueId::MAX;

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
            ops: Vec::new(),
            texts: Vec::new(),
            keys: Vec::new(),
            key_place: Vec::new(),
            no_key: None,
            json: Vec::new(),
            functions: Vec::new(),
            function_ids: FastMap::default(),
            open: Open::default(),
            events: 0,
            nemesis_events: 0,
            dropped: 0,
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

    /// The place in `keys` of a key id (or of [`NO_KEY`]).
    fn place(&mut self, key: ValueId) -> u32 {
        let slot = match key {
            NO_KEY => &mut self.no_key,
            k => {
                let k = k as usize;
                if self.key_place.len() <= k {
                    self.key_place.resize(k + 1, u32::MAX);
                }
                if self.key_place[k] == u32::MAX {
                    self.key_place[k] = self.keys.len() as u32;
                    self.keys.push(KeyOps { key: Some(k as ValueId), ..KeyOps::default() });
                }
                return self.key_place[k];
            }
        };
        *slot.get_or_insert_with(|| {
            self.keys.push(KeyOps::default());
            self.keys.len() as u32 - 1
        })
    }

    /// A value's text in the texts; the invocation's own when a completion repeats it.
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
            Some(t) if t.is_edn() == edn && t.get(&self.texts) == text => t,
            _ => Text::push(&mut self.texts, text, edn),
        }
    }

    /// The id of a function.
    pub(crate) fn function(&mut self, f: &str) -> u32 {
        if let Some(&id) = self.function_ids.get(f) {
            return id;
        }
        let id = self.functions.len() as u32;
        self.functions.push(f.into());
        self.function_ids.insert(f.into(), id);
        id
    }

    /// The id of a key spelled in the history's format, or why it cannot be read.
    pub(crate) fn key_text(&mut self, text: &[u8]) -> Result<ValueId, String> {
        self.key(&Spelled::Text(text))
    }

    /// The id of a client event's key (`None` for the nemesis's, [`NO_KEY`] for no key),
    /// or why it cannot be read.
    pub(crate) fn key_of(&mut self, e: &LineEvent<'_>) -> Result<Option<ValueId>, String> {
        if e.process == Process::Nemesis {
            return Ok(None);
        }
        match &e.key {
            Some(k) => self.key(k).map(Some).map_err(|m| format!("bad key: {m}")),
            None => Ok(Some(NO_KEY)),
        }
    }

    /// Takes the event on 1-based `line`.
    pub(crate) fn event(&mut self, line: usize, e: LineEvent<'_>) -> Result<(), Error> {
        let key = self
            .key_of(&e)
            .map_err(|m| Error::line(&self.name, line, format!("invalid event: {m}")))?;
        let f = self.function(e.f);
        self.take(line, &e, key, f)
    }

    /// Takes the event on 1-based `line`, its key interned by [`Pairing::key_of`] and its
    /// function by [`Pairing::function`].
    pub(crate) fn take(
        &mut self,
        line: usize,
        e: &LineEvent<'_>,
        key: Option<ValueId>,
        f: u32,
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
            if let Some((_, o)) = self.open.get(p) {
                let from = self.ops[o as usize].invoke_line;
                return Err(err(format!(
                    "process {p} invokes an operation while its operation from line {from} is still in progress"
                )));
            }
            let Ok(seq) = u32::try_from(self.ops.len()) else {
                return Err(err("more than 2^32 operations: too long a history".into()));
            };
            let place = self.place(key);
            let value = self.text(&e.value, None);
            self.keys[place as usize].ops.push(seq);
            self.open.insert(p, (place, seq));
            self.ops.push(Op {
                process: p,
                invoke_index: index,
                complete_index: NEVER,
                call_time: time,
                ret_time: NEVER,
                invoke_line: line32,
                complete_line: 0,
                value,
                result: Text::UNKNOWN,
                f,
            });
            return Ok(());
        }
        let Some((place, o)) = self.open.remove(p) else {
            return Err(err(format!(
                "completion ({}) without an invocation: process {p} has no operation in progress",
                e.kind
            )));
        };
        let op = &self.ops[o as usize];
        if op.f != f {
            return Err(err(format!(
                "completion of {:?} does not match the invocation of {:?} at line {}",
                e.f, self.functions[op.f as usize], op.invoke_line
            )));
        }
        let invoked_key = self.keys[place as usize].key;
        match invoked_key {
            Some(k) if key != NO_KEY && key != k => {
                return Err(err(format!(
                    "completion for key {} does not match the invocation for key {} at line {}",
                    self.values.get(key),
                    self.values.get(k),
                    op.invoke_line
                )))
            }
            // the key comes with the completion: the operation moves to that key
            None if key != NO_KEY => self.move_to(place, o, key),
            _ => {}
        }
        let op = &self.ops[o as usize];
        if time != NEVER && op.call_time != NEVER && time < op.call_time {
            self.backwards.get_or_insert((line, op.invoke_line as usize));
        }
        let invoked = op.value;
        let result = match e.kind {
            EventType::Ok => Some(self.text(&e.value, Some(invoked))),
            _ => None,
        };
        let op = &mut self.ops[o as usize];
        op.complete_index = index;
        op.complete_line = line32;
        match e.kind {
            EventType::Ok => {
                op.result = result.unwrap_or(Text::UNKNOWN);
                op.ret_time = time;
            }
            EventType::Fail => {
                op.result = Text::FAILED;
                self.dropped += 1;
            }
            EventType::Info => {}
            EventType::Invoke => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Moves operation `o`, invoked without a key, from `place` to `key` (its completion
    /// named it), where it keeps its order of invocation.
    fn move_to(&mut self, place: u32, o: u32, key: ValueId) {
        let from = &mut self.keys[place as usize].ops;
        // it was invoked lately: look from the end
        if let Some(at) = from.iter().rposition(|&other| other == o) {
            from.remove(at);
        }
        let to = self.place(key);
        let to_key = &mut self.keys[to as usize].ops;
        let at = to_key.partition_point(|&other| other < o);
        to_key.insert(at, o);
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
        if self.dropped > 0 {
            for k in &mut self.keys {
                k.ops.retain(|&o| self.ops[o as usize].result != Text::FAILED);
            }
        }
        self.keys.retain(|k| !k.ops.is_empty());
        let len = self.keys.iter().map(|k| k.ops.len()).sum();
        // the arrays grew by doubling: give back what they will never use
        self.ops.shrink_to_fit();
        self.texts.shrink_to_fit();
        Ok(CompactHistory {
            name: self.name,
            format: self.format,
            torn_line,
            values: self.values,
            ops: self.ops,
            texts: self.texts,
            keys: self.keys,
            functions: self.functions,
            len,
            nemesis_events: self.nemesis_events,
            use_time: self.all_timed,
        })
    }
}

/// Asks the processor to bring `t` into its cache (a hint: nothing is read or written).
#[inline]
fn prefetch<T>(t: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault, and SSE is part of x86-64.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((t as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = t;
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
        let ops: Vec<_> = h.operations().map(Result::unwrap).collect();
        let (a, b, c) = (&ops[0], &ops[1], &ops[2]);
        assert_eq!((a.process, a.invoke_line, a.complete_line), (0, 1, Some(4)));
        assert_eq!(a.outcome, Outcome::Ok(json!(1)));
        assert_eq!(h.points((0, 0)), (1, Some(4)));
        assert_eq!((b.process, &b.outcome, b.complete_line), (2, &Outcome::Unknown, Some(7)));
        assert_eq!(h.points((0, 1)), (6, None));
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
        assert_eq!((h.points((0, 0)), h.points((0, 1))), ((50, Some(60)), (40, Some(60))));
    }

    #[test]
    fn an_operation_whose_key_comes_with_its_completion_joins_that_key_in_order() {
        let h = h(r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":1,"type":"invoke","f":"write","key":"a","value":2}
{"process":2,"type":"invoke","f":"write","key":"a","value":3}
{"process":0,"type":"ok","f":"write","key":"a","value":1}
{"process":2,"type":"ok","f":"write","key":"a","value":3}
{"process":1,"type":"ok","f":"write","key":"a","value":2}"#);
        assert_eq!((h.len(), h.keys.len()), (3, 1));
        let lines: Vec<_> =
            (0..3).map(|i| h.op((0, i))).map(|op| (op.invoke_line, op.complete_line)).collect();
        assert_eq!(lines, [(1, 4), (2, 6), (3, 5)]);
        let values: Vec<_> = h.operations().map(|op| op.unwrap().value).collect();
        assert_eq!(values, [json!(1), json!(2), json!(3)]);
    }
}
