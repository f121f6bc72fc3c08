//! Writing events as Jepsen's EDN op maps, one a line, for tools that read Jepsen histories
//! (Knossos, Elle): keywords where Jepsen has them (`:type`, `:f`, map keys), `nil` for null,
//! vectors for arrays. [`crate::Format::Edn`] reads them back.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::Value;

use crate::history::{Event, Process};

/// Writes events as EDN op maps, one per line.
///
/// ```
/// use checker::{EdnWriter, Format, History};
///
/// let text = r#"{"index":0,"process":0,"type":"invoke","f":"write","value":1}"#;
/// let history = History::parse_str("h", text, Format::Jsonl).unwrap();
/// let mut out = EdnWriter::new(Vec::new());
/// out.write(&history.events()[0]).unwrap();
/// let line = String::from_utf8(out.into_inner()).unwrap();
/// assert_eq!(line, "{:index 0, :type :invoke, :f :write, :process 0, :value 1}\n");
/// ```
pub struct EdnWriter<W: Write> {
    out: W,
    line: String,
}

impl<W: Write> EdnWriter<W> {
    /// Wraps a writer (wrap files in a `BufWriter`).
    pub fn new(out: W) -> Self {
        EdnWriter { out, line: String::new() }
    }

    /// Writes one event and its newline.
    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        let _ = write!(line, "{{:index {}", event.index);
        if let Some(time) = event.time {
            let _ = write!(line, ", :time {time}");
        }
        line.push_str(", :type :");
        line.push_str(&event.kind.to_string());
        line.push_str(", :f ");
        keyword_or_string(line, &event.f);
        match event.process {
            Process::Client(p) => {
                let _ = write!(line, ", :process {p}");
            }
            Process::Nemesis => line.push_str(", :process :nemesis"),
        }
        if let Some(key) = &event.key {
            line.push_str(", :key ");
            value(line, key);
        }
        line.push_str(", :value ");
        value(line, &event.value);
        if let Some(error) = &event.error {
            line.push_str(", :error ");
            value(line, error);
        }
        line.push_str("}\n");
        self.out.write_all(line.as_bytes())
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

/// Whether `s` can be written as a keyword (`:write`, `:start-partition`).
fn keyword_like(s: &str) -> bool {
    let mut chars = s.chars();
    let symbolic = |c: char| "*+!-_?<>=".contains(c);
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || symbolic(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || symbolic(c) || c == '.' || c == '\'')
}

fn keyword_or_string(out: &mut String, s: &str) {
    if keyword_like(s) {
        out.push(':');
        out.push_str(s);
    } else {
        string(out, s);
    }
}

/// EDN strings take JSON's escapes (`\"`, `\\`, `\n`, `\uXXXX`).
fn string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                keyword_or_string(out, k);
                out.push(' ');
                value(out, item);
            }
            out.push('}');
        }
    }
}
