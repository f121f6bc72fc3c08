//! The quick reading of a JSON Lines event: its fields found, its key and value left as
//! their text (the pairing interns keys by it; values are parsed when the check needs them).
//!
//! It reads the lines the project writes and most others; anything else (an escaped
//! field name, a duplicate field, a malformed line) is `None`, and the caller reads the
//! line with `serde_json`, whose errors name the problem exactly.

use crate::compact::{LineEvent, Spelled, NULL};
use crate::history::{EventType, Process};

/// The deepest nesting the quick reading follows (serde_json's own limit).
const MAX_DEPTH: usize = 128;

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.s.get(self.pos) == Some(&b)).then(|| self.pos += 1)
    }

    /// A string without escapes, its contents.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let len = self.s[start..].iter().position(|&b| b == b'"' || b == b'\\')?;
        if self.s[start + len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        std::str::from_utf8(&self.s[start..start + len]).ok()
    }

    fn number(&mut self) -> Option<u64> {
        self.ws();
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        let digits = &self.s[start..self.pos];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    fn null(&mut self) -> bool {
        self.ws();
        let null = self.s[self.pos..].starts_with(b"null");
        if null {
            self.pos += 4;
        }
        null
    }

    /// Skips one value and returns its text (checked only as far as its extent: the value
    /// table parses it).
    fn value(&mut self) -> Option<&'a [u8]> {
        self.ws();
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            match *self.s.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    loop {
                        match *self.s.get(self.pos)? {
                            b'"' => break,
                            b'\\' => self.pos += 2,
                            _ => self.pos += 1,
                        }
                    }
                    self.pos += 1;
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                    self.pos += 1;
                }
                b']' | b'}' if depth > 0 => {
                    depth -= 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' if depth > 0 => self.pos += 1,
                b']' | b'}' | b',' | b':' | b' ' | b'\t' | b'\r' | b'\n' => return None,
                _ => {
                    let from = self.pos;
                    while self.s.get(self.pos).is_some_and(|&b| {
                        !matches!(
                            b,
                            b',' | b']' | b'}' | b':' | b' ' | b'\t' | b'\r' | b'\n' | b'"'
                        )
                    }) {
                        self.pos += 1;
                    }
                    if self.pos == from {
                        return None;
                    }
                }
            }
            if depth == 0 {
                return Some(&self.s[start..self.pos]);
            }
        }
    }
}

/// Reads `line` quickly, or `None` (see the module's documentation). A `null` key is no key
/// (as serde reads an `Option`); an absent value is `null`.
pub(crate) fn parse(line: &str) -> Option<LineEvent<'_>> {
    let mut c = Cursor { s: line.as_bytes(), pos: 0 };
    c.eat(b'{')?;
    let (mut index, mut time, mut process, mut kind, mut f) = (None, None, None, None, None);
    let (mut key, mut value) = (None, None);
    let mut seen = 0u8;
    if c.eat(b'}').is_none() {
        loop {
            let name = c.plain_string()?;
            c.eat(b':')?;
            let bit = match name {
                "index" => {
                    index = Some(c.number()?);
                    1
                }
                "time" => {
                    time = if c.null() { None } else { Some(c.number()?) };
                    2
                }
                "process" => {
                    c.ws();
                    process = Some(if c.s.get(c.pos) == Some(&b'"') {
                        match c.plain_string()? {
                            "nemesis" | ":nemesis" => Process::Nemesis,
                            _ => return None,
                        }
                    } else {
                        Process::Client(c.number()?)
                    });
                    4
                }
                "type" => {
                    kind = Some(match c.plain_string()? {
                        "invoke" => EventType::Invoke,
                        "ok" => EventType::Ok,
                        "fail" => EventType::Fail,
                        "info" => EventType::Info,
                        _ => return None,
                    });
                    8
                }
                "f" => {
                    f = Some(c.plain_string()?);
                    16
                }
                "key" => {
                    key = if c.null() { None } else { Some(c.value()?) };
                    32
                }
                "value" => {
                    value = Some(c.value()?);
                    64
                }
                _ => {
                    c.value()?;
                    0
                }
            };
            if seen & bit != 0 {
                return None; // a duplicate field: serde names it
            }
            seen |= bit;
            c.ws();
            match c.s.get(c.pos)? {
                b',' => c.pos += 1,
                b'}' => {
                    c.pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    c.ws();
    if c.pos != c.s.len() {
        return None;
    }
    Some(LineEvent {
        index,
        time,
        process: process?,
        kind: kind?,
        f: f?,
        key: key.map(Spelled::Text),
        value: value.map_or(Spelled::Value(&NULL), Spelled::Text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_projects_events() {
        let e = parse(
            r#"{"index":2,"time":1600000,"process":1,"type":"invoke","f":"cas","key":"k3","value":[4, 1],"error":{"a":[1,"]"]}}"#,
        )
        .unwrap();
        assert_eq!(
            (e.index, e.time, e.process, e.kind, e.f),
            (Some(2), Some(1600000), Process::Client(1), EventType::Invoke, "cas")
        );
        assert_eq!(e.key, Some(Spelled::Text(b"\"k3\"")));
        assert_eq!(e.value, Spelled::Text(b"[4, 1]"));
        let e = parse(
            r#" { "process" : "nemesis", "type":"info", "f":"kill", "key": null, "time": null } "#,
        )
        .unwrap();
        assert_eq!((e.process, e.key, e.time), (Process::Nemesis, None, None));
        assert_eq!(e.value, Spelled::Value(&NULL));
        let e = parse(r#"{"process":0,"type":"ok","f":"get","value":"a \"quoted\" \\ value"}"#)
            .unwrap();
        assert_eq!(e.value, Spelled::Text(br#""a \"quoted\" \\ value""#));
    }

    #[test]
    fn leaves_the_rest_to_serde() {
        for line in [
            r#"{"process":0,"type":"ok","f":"get","value":1"#,
            r#"{"process":0,"type":"ok","f":"get","value":"x}"#,
            r#"{"process":0,"type":"ok","f":"get","value":[1,2}"#,
            r#"{"process":0,"type":"done","f":"get"}"#,
            r#"{"process":-1,"type":"ok","f":"get"}"#,
            r#"{"process":0,"process":1,"type":"ok","f":"get"}"#,
            r#"{"type":"ok","f":"get"}"#,
            r#"{"proc\u0065ss":0,"type":"ok","f":"get"}"#,
            r#"{"process":0,"type":"ok","f":"get"} trailing"#,
            r#"{"process":0,"type":"ok","f":"get","index":01}"#,
            "",
        ] {
            assert!(parse(line).is_none(), "{line}");
        }
        let deep = format!(
            r#"{{"process":0,"type":"ok","f":"get","value":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(parse(&deep).is_none());
    }
}
