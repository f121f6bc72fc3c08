//! Importers for histories in Jepsen's formats, and format detection.

use crate::edn;
use crate::error::Error;
use crate::history::{self, Event, EventType, Format, History, Process};

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Detects the format of `text` from its first non-blank line.
pub(crate) fn detect(name: &str, text: &str) -> Result<Format, Error> {
    let Some((i, line)) = text.lines().enumerate().find(|(_, l)| !l.trim().is_empty()) else {
        return Err(Error::input(name, "empty history: no events"));
    };
    detect_line(line).map_err(|m| Error::line(name, i + 1, m))
}

/// Detects the format of a history from its first non-blank line.
pub(crate) fn detect_line(line: &str) -> Result<Format, &'static str> {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('{') {
        return match rest.trim_start().as_bytes().first() {
            Some(b':') => Ok(Format::Edn),
            Some(b'"') | Some(b'}') | None => Ok(Format::Jsonl),
            Some(_) => Err("cannot detect the format: a map that is neither JSON nor EDN"),
        };
    }
    if let Some((head, _)) = t.split_once(" - ") {
        if head.split_whitespace().any(|w| LEVELS.contains(&w)) {
            return Ok(Format::JepsenLog);
        }
    }
    Err("cannot detect the format (expected JSON Lines, EDN op maps or Jepsen log lines)")
}

/// Parses Jepsen console log lines, one operation per `jepsen.util` line:
///
/// ```text
/// INFO  jepsen.util - 2 :invoke :cas [3 0]
/// INFO  jepsen.util - 4 :info :write :timed-out
/// ```
///
/// Fields after ` - ` are separated by white space; the value is the EDN rest of the
/// line. Lines of other loggers are skipped; anything else that is not such a line is
/// an error. The file order is the real-time order.
pub(crate) fn parse_jepsen_log(name: &str, text: &str) -> Result<History, Error> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        match jepsen_log_line(line).map_err(|m| Error::line(name, lineno, m))? {
            Some(mut event) => {
                event.index = events.len() as u64;
                events.push(event);
                lines.push(lineno);
            }
            None => continue,
        }
    }
    History::from_parts(name, Format::JepsenLog, events, lines, None)
}

/// One line of a Jepsen console log: its event (`index` 0, for the caller to number),
/// `None` for a blank line or another logger's, or what is wrong with it.
pub(crate) fn jepsen_log_line(line: &str) -> Result<Option<Event>, String> {
    let t = line.trim_ascii();
    if t.is_empty() {
        return Ok(None);
    }
    let Some((head, payload)) = split_dash(t) else {
        return Err(
            "not a Jepsen log line (expected `INFO  jepsen.util - <process> :<type> :<f> <value>`)"
                .into(),
        );
    };
    if !head.trim_ascii_end().ends_with("jepsen.util") {
        if head.split_ascii_whitespace().any(|w| LEVELS.contains(&w)) {
            return Ok(None); // another logger's line
        }
        return Err(format!("not a Jepsen log line: {t:?}"));
    }
    let mut rest = payload.trim_ascii_start();
    let mut fields = [""; 3];
    for field in fields.iter_mut() {
        let end = rest.bytes().position(|b| b.is_ascii_whitespace()).unwrap_or(rest.len());
        *field = &rest[..end];
        rest = rest[end..].trim_ascii_start();
    }
    let [process, kind, f] = fields;
    if f.is_empty() || rest.is_empty() {
        return Err("truncated line: expected `<process> :<type> :<f> <value>` after ` - `".into());
    }
    let process = match process {
        ":nemesis" | "nemesis" => Process::Nemesis,
        p => {
            Process::Client(p.parse().map_err(|_| format!("bad process {p:?}: expected a number"))?)
        }
    };
    let kind = match kind {
        ":invoke" => EventType::Invoke,
        ":ok" => EventType::Ok,
        ":fail" => EventType::Fail,
        ":info" => EventType::Info,
        other => {
            return Err(format!("unknown type {other:?}: expected :invoke, :ok, :fail or :info"))
        }
    };
    let f = f.strip_prefix(':').unwrap_or(f).to_string();
    let value = edn::parse(rest).map_err(|m| format!("bad value: {m}"))?;
    Ok(Some(Event { index: 0, time: None, process, kind, f, key: None, value, error: None }))
}

/// Splits a log line at its first ` - ` (between the logger and the message).
fn split_dash(t: &str) -> Option<(&str, &str)> {
    let b = t.as_bytes();
    let mut from = 0;
    while let Some(k) = b[from..].iter().position(|&c| c == b'-') {
        let i = from + k;
        if i > 0 && b[i - 1] == b' ' && b.get(i + 1) == Some(&b' ') {
            return Some((&t[..i - 1], &t[i + 2..]));
        }
        from = i + 1;
    }
    None
}

/// Parses one EDN op map per line, as Jepsen writes them:
///
/// ```text
/// {:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}
/// ```
pub(crate) fn parse_edn_lines(name: &str, text: &str) -> Result<History, Error> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    let mut torn = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match edn::parse_event(line) {
            Ok(raw) => {
                events.push(raw.into_event(events.len()));
                lines.push(i + 1);
            }
            Err(m) => {
                let cut_short = m.starts_with("unexpected end of line");
                let error = Error::line(name, i + 1, format!("invalid event: {m}"));
                torn = Some(history::torn_tail(text, i, cut_short, error)?);
            }
        }
    }
    History::from_parts(name, Format::Edn, events, lines, torn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detects_formats() {
        assert_eq!(detect("t", "\n{\"index\":0}").unwrap(), Format::Jsonl);
        assert_eq!(detect("t", "{:process 0}").unwrap(), Format::Edn);
        assert_eq!(
            detect("t", "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]").unwrap(),
            Format::JepsenLog
        );
        assert!(matches!(detect("t", "hello"), Err(Error::Line { line: 1, .. })));
        assert!(matches!(detect("t", "  \n"), Err(Error::Input { .. })));
    }

    #[test]
    fn reads_jepsen_log_lines() {
        let h = parse_jepsen_log(
            "t",
            "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\n\
             INFO  jepsen.core - Worker 2 starting\n\
             INFO  jepsen.util - 8   :fail   :read   :timed-out\n\
             INFO  jepsen.util - :nemesis :info :start nil\n",
        )
        .unwrap();
        let e = h.events();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].process, Process::Client(2));
        assert_eq!(e[0].kind, EventType::Invoke);
        assert_eq!(e[0].f, "cas");
        assert_eq!(e[0].value, json!([3, 0]));
        assert_eq!(e[1].value, json!("timed-out"));
        assert_eq!(h.line_of(1), 3);
        assert_eq!(e[2].process, Process::Nemesis);
    }

    #[test]
    fn jepsen_log_errors_name_the_line() {
        let r = parse_jepsen_log(
            "t",
            "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\nINFO  jepsen.util - 2\t:ok",
        );
        assert!(matches!(r, Err(Error::Line { line: 2, .. })), "{r:?}");
        let r = parse_jepsen_log("t", "INFO  jepsen.util - 2\t:done\t:cas\t[3 0]");
        assert!(matches!(r, Err(Error::Line { line: 1, .. })), "{r:?}");
        let r = parse_jepsen_log("t", "INFO  jepsen.util - 2\t:ok\t:cas\t[3 0");
        assert!(matches!(r, Err(Error::Line { line: 1, .. })), "{r:?}");
    }

    #[test]
    fn reads_edn_lines() {
        let h = parse_edn_lines(
            "t",
            "{:process 0, :type :invoke, :f :get, :key \"9\", :value nil}\n\
             {:process 0, :type :ok, :f :get, :key \"9\", :value \"x 6 0 y\"}",
        )
        .unwrap();
        assert_eq!(h.events()[1].key, Some(json!("9")));
        assert_eq!(h.events()[1].value, json!("x 6 0 y"));
        assert_eq!(h.events()[1].index, 1);
        let r = parse_edn_lines("t", "{:process 0, :type :invoke, :f :get, :key \"9\", :value nil}\n{:process 0, :type :ok, :f");
        assert!(matches!(r, Err(Error::Line { line: 2, .. })), "{r:?}");
        let r = parse_edn_lines("t", "{:process 0, :type :begin, :f :get, :value nil}");
        assert!(matches!(r, Err(Error::Line { line: 1, .. })), "{r:?}");
    }
}
