//! The history format: one event per line (JSON Lines, Jepsen's op model), its
//! reader and writer, and the [`History`] container that the importers also produce.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::Error;
use crate::import;

/// Who performed an event: a client process (by number) or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client process. After an `info` completion a client continues under a new number.
    Client(u64),
    /// The fault injector. Its events are kept for reports and ignored by the search.
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a process number or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process number {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                match v {
                    "nemesis" | ":nemesis" => Ok(Process::Nemesis),
                    _ => Err(E::custom(format!(
                        "process must be a number or \"nemesis\", not {v:?}"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The kind of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// An operation begins.
    Invoke,
    /// The operation took effect; its value is the result.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// The operation may or may not have taken effect (timeout, lost connection).
    Info,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        })
    }
}

/// One line of a history.
///
/// ```json
/// {"index":2,"time":1600000,"process":1,"type":"invoke","f":"cas","key":"k3","value":[4,1]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position of the event in the history, from 0.
    pub index: u64,
    /// Nanoseconds since the run started, from one monotonic clock. When absent, the
    /// order of the lines is the real-time order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// Who performed it.
    pub process: Process,
    /// `invoke`, `ok`, `fail` or `info`.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The function: `read`, `write`, `cas`, `get`, `put`, `append`, or a nemesis action.
    pub f: String,
    /// The key, absent for a single-register history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The argument (on `invoke`) or the result (on `ok`).
    #[serde(default)]
    pub value: Value,
    /// Why an operation failed or is indeterminate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// An event as read from a line, before its index is filled in.
#[derive(Deserialize)]
pub(crate) struct RawEvent {
    #[serde(default)]
    pub(crate) index: Option<u64>,
    #[serde(default)]
    pub(crate) time: Option<u64>,
    pub(crate) process: Process,
    #[serde(rename = "type")]
    pub(crate) kind: EventType,
    pub(crate) f: String,
    #[serde(default)]
    pub(crate) key: Option<Value>,
    #[serde(default)]
    pub(crate) value: Value,
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

impl RawEvent {
    pub(crate) fn into_event(self, position: usize) -> Event {
        Event {
            index: self.index.unwrap_or(position as u64),
            time: self.time,
            process: self.process,
            kind: self.kind,
            f: self.f,
            key: self.key,
            value: self.value,
            error: self.error,
        }
    }
}

/// The formats a history can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Detect the format from the first non-blank line.
    Auto,
    /// The project's JSON Lines format.
    Jsonl,
    /// Jepsen console log lines (`INFO  jepsen.util - 2 :invoke :cas [3 0]`).
    JepsenLog,
    /// One EDN op map per line (`{:process 0, :type :invoke, :f :get, :key "9", :value nil}`).
    Edn,
}

/// A history: its events in file order, with the line each came from.
#[derive(Debug, Clone)]
pub struct History {
    name: String,
    format: Format,
    events: Vec<Event>,
    lines: Vec<usize>,
    /// The last line, when it was cut short and left out (see [`History::torn_line`]).
    torn_line: Option<usize>,
}

/// The longest line a history may have, in bytes: a longer one is an error naming it (the
/// file is most likely not a history), found before the rest is read.
pub const MAX_LINE_BYTES: usize = 1 << 20;

impl History {
    /// Makes a history from events (for instance, recorded by a harness). Lines are
    /// numbered as if the events were written one per line.
    pub fn from_events(name: impl Into<String>, events: Vec<Event>) -> Self {
        let lines = (1..=events.len()).collect();
        History { name: name.into(), format: Format::Jsonl, events, lines, torn_line: None }
    }

    /// A history read from text; `torn_line` is its last line when that was cut short and
    /// left out (see [`torn_tail`]).
    pub(crate) fn from_parts(
        name: &str,
        format: Format,
        events: Vec<Event>,
        lines: Vec<usize>,
        torn_line: Option<usize>,
    ) -> Result<Self, Error> {
        if events.is_empty() {
            return Err(Error::input(name, "empty history: no events"));
        }
        Ok(History { name: name.to_string(), format, events, lines, torn_line })
    }

    /// Reads a history file in `format` (or detects it, with [`Format::Auto`]). Devices
    /// (`/dev/zero`, a terminal) are refused: they have no end.
    pub fn read_file(path: &Path, format: Format) -> Result<Self, Error> {
        let name = path.display().to_string();
        Self::read(&name, open_history_file(path, &name)?, format)
    }

    /// Reads a history from any reader; `name` is used in error messages. A line longer than
    /// [`MAX_LINE_BYTES`] ends the reading with an error naming it.
    pub fn read(name: &str, reader: impl Read, format: Format) -> Result<Self, Error> {
        let mut reader = io::BufReader::with_capacity(1 << 16, reader);
        let mut text = Vec::new();
        let mut line = 0;
        loop {
            let limit = MAX_LINE_BYTES as u64 + 1;
            let n = io::BufRead::read_until(&mut (&mut reader).take(limit), b'\n', &mut text)
                .map_err(|error| Error::Io { name: name.to_string(), error })?;
            if n == 0 {
                break;
            }
            line += 1;
            if n > MAX_LINE_BYTES {
                return Err(Error::line(
                    name,
                    line,
                    format!("a line longer than {} MiB: not a history", MAX_LINE_BYTES >> 20),
                ));
            }
        }
        Self::parse_bytes(name, &text, format)
    }

    /// Parses a history held in memory; `name` is used in error messages.
    pub fn parse_str(name: &str, text: &str, format: Format) -> Result<Self, Error> {
        let format = match format {
            Format::Auto => import::detect(name, text)?,
            f => f,
        };
        match format {
            Format::Jsonl => parse_jsonl(name, text),
            Format::JepsenLog => import::parse_jepsen_log(name, text),
            Format::Edn => import::parse_edn_lines(name, text),
            Format::Auto => unreachable!("format detected above"),
        }
    }

    fn parse_bytes(name: &str, bytes: &[u8], format: Format) -> Result<Self, Error> {
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
                return Err(Error::line(name, line, "not valid UTF-8"));
            }
        };
        Self::parse_str(name, text, format)
    }

    /// The history's name (the path it was read from).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format it was read in (never [`Format::Auto`]).
    pub fn format(&self) -> Format {
        self.format
    }

    /// The events, in file order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The last line, if it was cut short (no newline, and it does not parse) and left
    /// out: what a writer killed in the middle of a line leaves. The rest is checked.
    pub fn torn_line(&self) -> Option<usize> {
        self.torn_line
    }

    /// The 1-based line of the `i`-th event.
    pub fn line_of(&self, i: usize) -> usize {
        self.lines[i]
    }
}

/// Opens a history file, refusing what has no end (devices, sockets) or is no file.
pub(crate) fn open_history_file(path: &Path, name: &str) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::FileTypeExt;
    let io = |error| Error::Io { name: name.to_string(), error };
    let kind = std::fs::metadata(path).map_err(io)?.file_type();
    if kind.is_char_device() || kind.is_block_device() || kind.is_socket() {
        return Err(Error::input(name, "a device, not a history file: refusing to read it"));
    }
    if kind.is_dir() {
        return Err(Error::input(name, "a directory, not a history file"));
    }
    std::fs::File::open(path).map_err(io)
}

fn parse_jsonl(name: &str, text: &str) -> Result<History, Error> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    let mut torn = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RawEvent>(line) {
            Ok(raw) => {
                events.push(raw.into_event(events.len()));
                lines.push(i + 1);
            }
            Err(e) => {
                let error = Error::line(name, i + 1, format!("invalid event: {e}"));
                torn = Some(torn_tail(text, i, e.is_eof(), error)?);
            }
        }
    }
    History::from_parts(name, Format::Jsonl, events, lines, torn)
}

/// Leaves out a torn last line: `Ok` (with its 1-based number) when line `i` (0-based) of
/// `text` is the last, has no newline, and ended before it was whole (`cut_short`: the parser
/// ran out of text), which is what a writer killed in the middle of a line leaves; `error`
/// otherwise, as for any line written whole.
pub(crate) fn torn_tail(
    text: &str,
    i: usize,
    cut_short: bool,
    error: Error,
) -> Result<usize, Error> {
    if cut_short && !text.ends_with('\n') && text.lines().count() == i + 1 {
        Ok(i + 1)
    } else {
        Err(error)
    }
}

/// Writes events as JSON Lines, one event per line, in the project's history format.
pub struct JsonlWriter<W: Write> {
    out: W,
}

impl<W: Write> JsonlWriter<W> {
    /// Wraps a writer (wrap files in a `BufWriter`).
    pub fn new(out: W) -> Self {
        JsonlWriter { out }
    }

    /// Writes one event and its newline.
    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}
