//! Reading a history line by line into a [`CompactHistory`]: no line outlives its
//! reading, and no event is built as `serde_json` values unless its line needs it.
//!
//! Each format has a quick reading (the fields found, key and value kept as text for the
//! value table: `json_line`, `edn::op_map_spans`) and a whole one (`serde_json`, the EDN
//! reader, the Jepsen log line reader), which reads what the quick one leaves and whose
//! errors name the problem. A line is read the whole way only when the quick reading
//! declines it or one of its values does not parse.

use std::io::{self, BufRead, Read};

use serde_json::Value;

use crate::compact::{CompactHistory, LineEvent, Pairing, Spelled};
use crate::error::Error;
use crate::history::{Event, Format, RawEvent, MAX_LINE_BYTES};
use crate::{edn, import, json_line};

static NULL: Value = Value::Null;

/// Why the whole reading refused a line: its message, and whether the line ended before
/// it was whole (for a torn last line).
struct Refused {
    message: String,
    cut_short: bool,
}

pub(crate) fn read(name: &str, reader: impl Read, format: Format) -> Result<CompactHistory, Error> {
    let mut reader = io::BufReader::with_capacity(1 << 20, reader);
    let mut buf = Vec::with_capacity(1 << 10);
    let mut lineno = 0usize;
    let mut pairing: Option<(Format, Pairing)> = None;
    let mut torn = None;
    loop {
        buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|error| Error::Io { name: name.to_string(), error })?;
        if n == 0 {
            break;
        }
        lineno += 1;
        if n > MAX_LINE_BYTES {
            return Err(Error::line(
                name,
                lineno,
                format!("a line longer than {} MiB: not a history", MAX_LINE_BYTES >> 20),
            ));
        }
        let terminated = buf.last() == Some(&b'\n');
        let mut bytes = &buf[..];
        if terminated {
            bytes = &bytes[..bytes.len() - 1];
            bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        }
        let Ok(line) = std::str::from_utf8(bytes) else {
            return Err(Error::line(name, lineno, "not valid UTF-8"));
        };
        if line.trim().is_empty() {
            continue;
        }
        let (format, pairing) = match &mut pairing {
            Some((f, p)) => (*f, p),
            None => {
                let f = match format {
                    Format::Auto => {
                        import::detect_line(line).map_err(|m| Error::line(name, lineno, m))?
                    }
                    f => f,
                };
                let (f, p) = pairing.insert((f, Pairing::new(name, f)));
                (*f, p)
            }
        };
        if quick(pairing, format, lineno, line)? {
            continue;
        }
        match whole(format, line) {
            Ok(Some((event, index))) => pairing.event(lineno, event.as_line_event(index))?,
            Ok(None) => {}
            Err(r) if r.cut_short && !terminated && format != Format::JepsenLog => {
                torn = Some(lineno);
            }
            Err(r) => {
                let message = match format {
                    Format::JepsenLog => r.message,
                    _ => format!("invalid event: {}", r.message),
                };
                return Err(Error::line(name, lineno, message));
            }
        }
    }
    match pairing {
        Some((_, p)) => p.finish(torn),
        None => Err(Error::input(name, "empty history: no events")),
    }
}

/// Takes the line by its quick reading; `false` when the line needs the whole reading.
fn quick(pairing: &mut Pairing, format: Format, lineno: usize, line: &str) -> Result<bool, Error> {
    let event = match format {
        Format::Jsonl => match json_line::parse(line) {
            Some(e) => LineEvent {
                index: e.index,
                time: e.time,
                process: e.process,
                kind: e.kind,
                f: e.f,
                key: e.key.map(Spelled::Text),
                value: e.value.map_or(Spelled::Value(&NULL), Spelled::Text),
            },
            None => return Ok(false),
        },
        Format::Edn => match edn::op_map_spans(line) {
            Some(e) => {
                let f = match &e.f {
                    std::borrow::Cow::Borrowed(f) => *f,
                    std::borrow::Cow::Owned(_) => return Ok(false),
                };
                LineEvent {
                    index: e.index,
                    time: e.time,
                    process: e.process,
                    kind: e.kind,
                    f,
                    key: e.key.map(|k| Spelled::Text(k.as_bytes())),
                    value: e.value.map_or(Spelled::Value(&NULL), |v| Spelled::Text(v.as_bytes())),
                }
            }
            None => return Ok(false),
        },
        Format::JepsenLog | Format::Auto => return Ok(false),
    };
    match pairing.values_of(&event) {
        Ok(ids) => pairing.take(lineno, &event, ids).map(|()| true),
        // the whole reading says exactly what is wrong with the value
        Err(_) => Ok(false),
    }
}

/// A line read the whole way, as an event and the `index` it gave, if any (`None`: a
/// line that holds no event).
fn whole(format: Format, line: &str) -> Result<Option<(Event, Option<u64>)>, Refused> {
    let with_index = |raw: RawEvent| {
        let index = raw.index;
        Some((raw.into_event(0), index))
    };
    match format {
        Format::Jsonl => match serde_json::from_str::<RawEvent>(line) {
            Ok(raw) => Ok(with_index(raw)),
            Err(e) => Err(Refused { message: e.to_string(), cut_short: e.is_eof() }),
        },
        Format::Edn => match edn::parse_event(line) {
            Ok(raw) => Ok(with_index(raw)),
            Err(m) => {
                Err(Refused { cut_short: m.starts_with("unexpected end of line"), message: m })
            }
        },
        Format::JepsenLog | Format::Auto => match import::jepsen_log_line(line) {
            Ok(event) => Ok(event.map(|e| (e, None))),
            Err(message) => Err(Refused { message, cut_short: false }),
        },
    }
}

impl Event {
    /// The event as the pairing takes it, its values already parsed, with the `index` its
    /// line gave (`None`: the event's position in the history).
    fn as_line_event(&self, index: Option<u64>) -> LineEvent<'_> {
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
