//! A small reader for the EDN values that appear in Jepsen histories, producing JSON
//! values: keywords become strings without their colon, `nil` becomes `null`, vectors,
//! lists and sets become arrays, maps become objects (keys as strings).

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use crate::history::{EventType, Process, RawEvent};

/// Parses exactly one EDN value from `text` (surrounding white space allowed).
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser { t: text, s: text.as_bytes(), pos: 0, depth: 0 };
    let v = p.value()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!("unexpected text after the value at column {}", p.pos + 1));
    }
    Ok(v)
}

/// Parses one Jepsen op map (`{:process 0, :type :invoke, :f :read, :value nil}`)
/// straight into an event; unknown keys are skipped.
pub(crate) fn parse_event(text: &str) -> Result<RawEvent, String> {
    let e = op_map(text, Parser::value)?;
    Ok(RawEvent {
        index: e.index,
        time: e.time,
        process: e.process,
        kind: e.kind,
        f: e.f.into_owned(),
        key: e.key,
        value: e.value.unwrap_or(Value::Null),
        error: e.error,
    })
}

/// An op map's fields, its key, value and error as `V`.
pub(crate) struct OpMap<'a, V> {
    pub(crate) index: Option<u64>,
    pub(crate) time: Option<u64>,
    pub(crate) process: Process,
    pub(crate) kind: EventType,
    pub(crate) f: Cow<'a, str>,
    pub(crate) key: Option<V>,
    pub(crate) value: Option<V>,
    pub(crate) error: Option<V>,
}

/// Reads an op map's fields without parsing its key, value and error: their text, for
/// the checker's value table to parse once per distinct spelling. `None` when the line
/// needs the whole reader ([`parse_event`]): it is malformed, or uses what the quick
/// reading leaves to it (comments, `#` forms, map keys that are not keywords).
pub(crate) fn op_map_spans(text: &str) -> Option<OpMap<'_, &str>> {
    jepsen_op_map(text).or_else(|| op_map(text, Parser::span).ok())
}

/// The op map of a line laid out as Jepsen writes them (`{:process 0, :type :invoke, :f :get,
/// :key "9", :value nil}`: keyword keys; a number or `:nemesis`; keywords for the type and
/// the function; strings, tokens or brackets for the rest), read in one pass over its bytes;
/// `None` for anything else, which [`op_map`] then reads. Most of a large history's reading
/// is here.
fn jepsen_op_map(text: &str) -> Option<OpMap<'_, &str>> {
    let s = text.as_bytes();
    let mut i = 0;
    let gap = |i: &mut usize| {
        while matches!(s.get(*i), Some(b' ' | b',' | b'\t')) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while s.get(*i).is_some_and(|&b| !is_delim(b)) {
            *i += 1;
        }
        text.get(start..*i)
    };
    let number = |t: &str| -> Option<u64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    gap(&mut i);
    if s.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let (mut index, mut time, mut process, mut kind, mut f) = (None, None, None, None, None);
    let (mut key, mut value, mut error) = (None, None, None);
    loop {
        gap(&mut i);
        match s.get(i)? {
            b'}' => {
                i += 1;
                break;
            }
            b':' => i += 1,
            _ => return None,
        }
        let name = token(&mut i)?;
        gap(&mut i);
        let keyword = |i: &mut usize| {
            if s.get(*i) != Some(&b':') {
                return None;
            }
            *i += 1;
            token(i).filter(|t| !t.is_empty())
        };
        let slot = match name {
            "process" => {
                process = Some(match s.get(i)? {
                    b':' => match keyword(&mut i)? {
                        "nemesis" => Process::Nemesis,
                        _ => return None,
                    },
                    _ => Process::Client(number(token(&mut i)?)?),
                });
                continue;
            }
            "type" => {
                kind = Some(match keyword(&mut i)? {
                    "invoke" => EventType::Invoke,
                    "ok" => EventType::Ok,
                    "fail" => EventType::Fail,
                    "info" => EventType::Info,
                    _ => return None,
                });
                continue;
            }
            "f" => {
                f = Some(Cow::Borrowed(keyword(&mut i)?));
                continue;
            }
            "index" => {
                index = Some(number(token(&mut i)?)?);
                continue;
            }
            "time" => {
                time = Some(number(token(&mut i)?)?);
                continue;
            }
            "key" => &mut key,
            "value" => &mut value,
            "error" => &mut error,
            _ => return None,
        };
        if slot.is_some() {
            return None; // a repeated key: the whole reader decides
        }
        let start = i;
        let mut depth = 0usize;
        loop {
            match *s.get(i)? {
                b'"' => {
                    i += 1;
                    loop {
                        match *s.get(i)? {
                            b'"' => break,
                            b'\\' => match s.get(i + 1)? {
                                b'n' | b't' | b'r' | b'b' | b'f' | b'"' | b'\\' => i += 2,
                                _ => return None,
                            },
                            _ => i += 1,
                        }
                    }
                    i += 1;
                }
                b'[' | b'(' | b'{' if depth < MAX_DEPTH - 1 => {
                    depth += 1;
                    i += 1;
                }
                b']' | b')' | b'}' if depth > 0 => {
                    depth -= 1;
                    i += 1;
                }
                b' ' | b',' | b'\t' if depth > 0 => i += 1,
                b'#' | b';' | b'[' | b'(' | b'{' | b']' | b')' | b'}' | b'\\' => return None,
                _ => {
                    if token(&mut i)?.is_empty() {
                        return None;
                    }
                }
            }
            if depth == 0 {
                break;
            }
        }
        *slot = Some(text.get(start..i)?);
    }
    gap(&mut i);
    if i != s.len() {
        return None;
    }
    Some(OpMap { index, time, process: process?, kind: kind?, f: f?, key, value, error })
}

fn op_map<'a, V>(
    text: &'a str,
    mut read: impl FnMut(&mut Parser<'a>) -> Result<V, String>,
) -> Result<OpMap<'a, V>, String> {
    let mut p = Parser { t: text, s: text.as_bytes(), pos: 0, depth: 0 };
    p.skip_ws();
    if p.s.get(p.pos) != Some(&b'{') {
        return Err("expected an op map `{:process .., :type .., :f .., :value ..}`".into());
    }
    p.pos += 1;
    let (mut index, mut time, mut process, mut kind, mut f) = (None, None, None, None, None);
    let (mut key, mut value, mut error) = (None, None, None);
    loop {
        p.skip_ws();
        match p.s.get(p.pos) {
            None => return Err("unexpected end of line: missing '}'".into()),
            Some(b'}') => {
                p.pos += 1;
                break;
            }
            Some(_) => {}
        }
        let owned;
        let k = match p.word() {
            Some(k) => k,
            None => match p.value()? {
                Value::String(s) => {
                    owned = s;
                    owned.as_str()
                }
                other => return Err(format!("unexpected map key {other}")),
            },
        };
        p.skip_ws();
        if matches!(p.s.get(p.pos), None | Some(b'}')) {
            return Err(format!("the key :{k} has no value"));
        }
        match k {
            "process" => {
                process =
                    Some(match p.word() {
                        Some("nemesis") => Process::Nemesis,
                        Some(w) => Process::Client(w.parse().map_err(|_| {
                            format!("bad process {w}: expected a number or :nemesis")
                        })?),
                        None => {
                            return Err(format!(
                                "bad process {}: expected a number or :nemesis",
                                p.value()?
                            ))
                        }
                    })
            }
            "type" => {
                kind = Some(match p.word() {
                    Some("invoke") => EventType::Invoke,
                    Some("ok") => EventType::Ok,
                    Some("fail") => EventType::Fail,
                    Some("info") => EventType::Info,
                    Some(t) => {
                        return Err(format!(
                            "unknown type :{t}: expected :invoke, :ok, :fail or :info"
                        ))
                    }
                    None => return Err(format!("bad type {}", p.value()?)),
                })
            }
            "f" => {
                f = Some(match p.word() {
                    Some(w) => Cow::Borrowed(w),
                    None => Cow::Owned(match p.value()? {
                        Value::String(f) => f,
                        other => other.to_string(),
                    }),
                })
            }
            "index" | "time" => {
                let n = match p.word().map(str::parse::<u64>) {
                    Some(Ok(n)) => Some(n),
                    _ => return Err(format!("bad :{k}: expected a non-negative integer")),
                };
                if k == "index" {
                    index = n;
                } else {
                    time = n;
                }
            }
            "key" => key = Some(read(&mut p)?),
            "value" => value = Some(read(&mut p)?),
            "error" => error = Some(read(&mut p)?),
            _ => {
                read(&mut p)?;
            }
        }
    }
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!("unexpected text after the map at column {}", p.pos + 1));
    }
    Ok(OpMap {
        index,
        time,
        process: process.ok_or("missing :process")?,
        kind: kind.ok_or("missing :type")?,
        f: f.ok_or("missing :f")?,
        key,
        value,
        error,
    })
}

struct Parser<'a> {
    t: &'a str,
    s: &'a [u8],
    pos: usize,
    /// How many values are open around the one being read: bounded, so that a line of
    /// nested brackets is an error, never a stack overflow.
    depth: usize,
}

/// The deepest nesting of values a line may have (Jepsen's ops nest two or three deep).
pub(crate) const MAX_DEPTH: usize = 128;

/// Bytes that end a token: white space, commas, brackets, quotes and comments.
const DELIM: [bool; 256] = {
    let mut t = [false; 256];
    let delims = b" \t\n\r\x0b\x0c,()[]{}\";";
    let mut i = 0;
    while i < delims.len() {
        t[delims[i] as usize] = true;
        i += 1;
    }
    t
};

#[inline]
fn is_delim(b: u8) -> bool {
    DELIM[b as usize]
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        if self.depth == MAX_DEPTH {
            return Err(format!(
                "values nested more than {MAX_DEPTH} deep at column {}",
                self.pos + 1
            ));
        }
        self.depth += 1;
        let value = self.value_here();
        self.depth -= 1;
        value
    }

    fn value_here(&mut self) -> Result<Value, String> {
        self.skip_ws();
        let Some(&b) = self.s.get(self.pos) else {
            return Err("unexpected end of line: a value is missing".into());
        };
        match b {
            b'{' => {
                self.pos += 1;
                self.map()
            }
            b'[' => {
                self.pos += 1;
                self.seq(b']').map(Value::Array)
            }
            b'(' => {
                self.pos += 1;
                self.seq(b')').map(Value::Array)
            }
            b'#' => {
                self.pos += 1;
                match self.s.get(self.pos) {
                    Some(b'{') => {
                        self.pos += 1;
                        self.seq(b'}').map(Value::Array)
                    }
                    Some(b'_') => {
                        // discard the next form
                        self.pos += 1;
                        self.value()?;
                        self.value()
                    }
                    _ => {
                        // a tagged literal such as #inst "..." or #uuid "...": keep the value
                        self.token();
                        self.value()
                    }
                }
            }
            b'"' => {
                self.pos += 1;
                self.string().map(Value::String)
            }
            b')' | b']' | b'}' => {
                Err(format!("unexpected '{}' at column {}", b as char, self.pos + 1))
            }
            _ => {
                let start = self.pos;
                let tok = self.token();
                atom(tok).ok_or_else(|| format!("cannot read {tok:?} at column {}", start + 1))
            }
        }
    }

    /// Skips one value and returns its text. Strings, brackets and tokens only: a comment
    /// or a `#` form is an error (the caller reads such a line with [`Parser::value`]).
    /// Nesting is bounded as for `value`.
    fn span(&mut self) -> Result<&'a str, String> {
        self.skip_ws();
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                return Err("unexpected end of line: a value is missing".into());
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    loop {
                        match self.s.get(self.pos) {
                            None => return Err("unexpected end of line inside a string".into()),
                            Some(b'"') => break,
                            Some(b'\\') => self.pos += 2,
                            Some(_) => self.pos += 1,
                        }
                    }
                    self.pos += 1;
                }
                b'[' | b'(' | b'{' => {
                    depth += 1;
                    if depth >= MAX_DEPTH {
                        return Err(format!("values nested more than {MAX_DEPTH} deep"));
                    }
                    self.pos += 1;
                }
                b']' | b')' | b'}' if depth > 0 => {
                    depth -= 1;
                    self.pos += 1;
                }
                b'#' | b';' | b']' | b')' | b'}' => return Err("left to the whole reader".into()),
                b' ' | b'\t' | b'\n' | b'\r' | b',' if depth > 0 => self.pos += 1,
                _ => {
                    if self.token().is_empty() {
                        return Err("left to the whole reader".into());
                    }
                }
            }
            if depth == 0 {
                // tokens and brackets end at ASCII delimiters: char boundaries
                return Ok(self.t.get(start..self.pos).unwrap_or(""));
            }
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.pos < self.s.len() && !is_delim(self.s[self.pos]) {
            self.pos += 1;
        }
        // tokens start and end at ASCII delimiters, so these are char boundaries
        self.t.get(start..self.pos).unwrap_or("")
    }

    /// A keyword's name or a bare token (a number, a symbol), without allocating; `None`
    /// (and nothing consumed) for anything else.
    fn word(&mut self) -> Option<&'a str> {
        self.skip_ws();
        match self.s.get(self.pos) {
            Some(b':') => {
                self.pos += 1;
                Some(self.token())
            }
            Some(&b) if !is_delim(b) && b != b'#' => Some(self.token()),
            _ => None,
        }
    }

    fn seq(&mut self, close: u8) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            match self.s.get(self.pos) {
                None => return Err(format!("unexpected end of line: missing '{}'", close as char)),
                Some(&b) if b == close => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(_) => out.push(self.value()?),
            }
        }
    }

    fn map(&mut self) -> Result<Value, String> {
        let items = self.seq(b'}')?;
        if items.len() % 2 != 0 {
            return Err("a map has a key without a value".into());
        }
        let mut m = Map::new();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let k = match k {
                Value::String(s) => s,
                other => other.to_string(),
            };
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        let mut end = start;
        while end < self.s.len() && self.s[end] != b'"' && self.s[end] != b'\\' {
            end += 1;
        }
        if self.s.get(end) == Some(&b'"') {
            // no escapes: one copy
            self.pos = end + 1;
            return Ok(self.t.get(start..end).unwrap_or_default().to_string());
        }
        let mut out = String::with_capacity(end - start + 16);
        loop {
            let start = self.pos;
            while self.pos < self.s.len() && self.s[self.pos] != b'"' && self.s[self.pos] != b'\\' {
                self.pos += 1;
            }
            out.push_str(self.t.get(start..self.pos).unwrap_or_default());
            match self.s.get(self.pos) {
                None => return Err("unexpected end of line inside a string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(_) => {
                    let esc = *self
                        .s
                        .get(self.pos + 1)
                        .ok_or("unexpected end of line inside a string")?;
                    self.pos += 2;
                    match esc {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'u' => {
                            let hex = self
                                .t
                                .get(self.pos..self.pos + 4)
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or("bad \\u escape in a string")?;
                            out.push(hex);
                            self.pos += 4;
                        }
                        other => {
                            return Err(format!("unknown escape \\{} in a string", other as char))
                        }
                    }
                }
            }
        }
    }
}

fn atom(tok: &str) -> Option<Value> {
    match tok {
        "" => None,
        "nil" => Some(Value::Null),
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ if tok.starts_with(':') && tok.len() > 1 => Some(Value::String(tok[1..].to_string())),
        _ => {
            let first = tok.as_bytes()[0];
            let numeric = first.is_ascii_digit()
                || ((first == b'-' || first == b'+')
                    && tok.len() > 1
                    && tok.as_bytes()[1].is_ascii_digit());
            if numeric {
                let t = tok.strip_suffix('N').unwrap_or(tok);
                if let Ok(i) = t.parse::<i64>() {
                    return Some(Value::Number(i.into()));
                }
                if let Ok(u) = t.parse::<u64>() {
                    return Some(Value::Number(u.into()));
                }
                let t = tok.strip_suffix('M').unwrap_or(tok);
                return t.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number);
            }
            // a symbol: keep its name
            Some(Value::String(tok.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_jepsen_op_maps() {
        let v = parse(r#"{:process 0, :type :ok, :f :get, :key "9", :value "x 6 0 yx \"2\" 0 y"}"#)
            .unwrap();
        assert_eq!(
            v,
            json!({"process":0,"type":"ok","f":"get","key":"9","value":"x 6 0 yx \"2\" 0 y"})
        );
        assert_eq!(parse("[3 0]").unwrap(), json!([3, 0]));
        assert_eq!(parse("nil").unwrap(), Value::Null);
        assert_eq!(parse(":timed-out").unwrap(), json!("timed-out"));
        assert_eq!(parse("#{1 2} ").unwrap(), json!([1, 2]));
        assert_eq!(parse("-3").unwrap(), json!(-3));
    }

    #[test]
    fn the_jepsen_layout_reads_as_the_general_op_map_reader_reads_it() {
        let lines = [
            r#"{:process 5, :type :invoke, :f :put, :key "596", :value "x 5 0 y"}"#,
            r#"{:type :ok, :process 12, :f :cas, :key [1 "a"], :value [3 (4 5)], :index 9, :time 77}"#,
            r#"{:process :nemesis, :type :info, :f :start, :value nil, :error :timed-out}"#,
            r#"  {:process 0 :type :fail :f :read :value "a \"q\" \\ b"}  "#,
            r#"{:process 0, :type :ok, :f :read, :value {:a [1 2], "b" #{3}}}"#,
            r#"{:process 0, :type :ok, :f :read, :value "\u0041"}"#,
            r#"{:process +5, :type :ok, :f :read, :value 1}"#,
            r#"{:process 5, :type ok, :f read, :value 1}"#,
            r#"{:process 5, :type :ok, :f "read", :value 1, :extra 2}"#,
            r#"{:process 5, :type :ok, :f :read, :value 1 ; a comment"#,
            r#"{:process 5, :type :ok, :f :read, :key 1, :key 2}"#,
            r#"{:process 5, :type :ok, :f :read, :value [1 2}"#,
            r#"{:process 5, :type :ok, :f :read, :value}"#,
            r#"{:process 5, :type :ok, :f :read, :value "x"} tail"#,
            r#"{"process" 5, :type :ok, :f :read}"#,
        ];
        for line in lines {
            let general = op_map(line, Parser::span).ok();
            let Some(quick) = jepsen_op_map(line) else { continue };
            let general = general.unwrap_or_else(|| panic!("only the quick reading reads {line}"));
            fn fields<'a>(m: &OpMap<'a, &'a str>) -> impl PartialEq + std::fmt::Debug + 'a {
                (m.index, m.time, m.process, m.kind, m.f.to_string(), m.key, m.value, m.error)
            }
            assert_eq!(fields(&quick), fields(&general), "{line}");
        }
        // the common layout takes the quick path
        assert!(jepsen_op_map(lines[0]).is_some() && jepsen_op_map(lines[1]).is_some());
        assert!(jepsen_op_map(lines[2]).is_some() && jepsen_op_map(lines[3]).is_some());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(200_000);
        assert!(parse(&deep).unwrap_err().contains("nested more than 128 deep"));
        let op = format!("{{:process 0, :type :invoke, :f :read, :value {deep}}}");
        assert!(parse_event(&op).err().unwrap().contains("nested"));
        let fine = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn rejects_truncated_values() {
        assert!(parse("{:process 0, :type").is_err());
        assert!(parse("[3 0").is_err());
        assert!(parse("\"abc").is_err());
        assert!(parse("").is_err());
        assert!(parse("1 2").is_err());
        assert!(parse("{:a}").is_err());
    }
}
