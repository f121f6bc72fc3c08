//! Bad input is an error that names the history and the line, never a panic; and
//! the writer's output reads back.

use checker::{
    check, CheckOptions, Error, Event, EventType, Format, History, JsonlWriter, Process,
};
use serde_json::json;
use workloads::{CasRegister, Kv};

const WRITE: &str = r#"{"index":0,"process":0,"type":"invoke","f":"write","value":1}
{"index":1,"process":0,"type":"ok","f":"write","value":1}
"#;

/// The line of a line error, or a panic with the error.
fn line_of(e: Error) -> usize {
    match e {
        Error::Line { line, .. } => line,
        other => panic!("expected an error naming a line, got {other}"),
    }
}

fn parse(text: &str, format: Format) -> Result<History, Error> {
    History::parse_str("h.jsonl", text, format)
}

/// A line cut short but written whole (a newline follows it, or it is not the last) is an
/// error; only the torn tail of a killed writer is left out (`tests/reading.rs`).
#[test]
fn a_truncated_line() {
    let text = format!("{WRITE}{}\n", r#"{"index":2,"process":0,"type":"inv"#);
    let e = parse(&text, Format::Auto).unwrap_err();
    assert!(e.to_string().starts_with("h.jsonl:3: "), "{e}");
    assert_eq!(line_of(e), 3);
    let e = parse(
        "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f\n",
        Format::Edn,
    )
    .unwrap_err();
    assert_eq!(line_of(e), 2);
    let e = parse(
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok",
        Format::JepsenLog,
    )
    .unwrap_err();
    assert_eq!(line_of(e), 2);
}

#[test]
fn an_unknown_type() {
    let text =
        format!("{WRITE}{}", r#"{"index":2,"process":0,"type":"begin","f":"read","value":null}"#);
    let e = parse(&text, Format::Auto).unwrap_err();
    assert!(e.to_string().contains("unknown variant `begin`"), "{e}");
    assert_eq!(line_of(e), 3);
    let e = parse("{:process 0, :type :begin, :f :read, :value nil}", Format::Edn).unwrap_err();
    assert!(e.to_string().contains("unknown type :begin"), "{e}");
    let e = parse("INFO  jepsen.util - 0\t:begin\t:read\tnil", Format::JepsenLog).unwrap_err();
    assert_eq!(line_of(e), 1);
}

#[test]
fn a_completion_without_an_invocation() {
    let text =
        format!("{WRITE}\n{}", r#"{"index":2,"process":7,"type":"ok","f":"read","value":1}"#);
    let h = parse(&text, Format::Auto).unwrap();
    let e = check(&CasRegister, &h, &CheckOptions::default()).unwrap_err();
    assert!(e.to_string().contains("without an invocation"), "{e}");
    assert_eq!(line_of(e), 4);
}

#[test]
fn an_empty_file() {
    for text in ["", "\n\n  \n"] {
        for format in [Format::Auto, Format::Jsonl, Format::Edn, Format::JepsenLog] {
            let e = parse(text, format).unwrap_err();
            assert!(matches!(e, Error::Input { .. }), "{e}");
            assert!(e.to_string().starts_with("h.jsonl: empty history"), "{e}");
        }
    }
}

#[test]
fn a_bad_value() {
    // the argument of a cas is not a pair: the invocation's line
    let text = format!(
        "{WRITE}{}\n{}",
        r#"{"index":2,"process":0,"type":"invoke","f":"cas","value":7}"#,
        r#"{"index":3,"process":0,"type":"ok","f":"cas","value":7}"#
    );
    let e = check(&CasRegister, &parse(&text, Format::Auto).unwrap(), &CheckOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("bad value for cas"), "{e}");
    assert_eq!(line_of(e), 3);
    // a get that returned a number: the completion's line
    let text = r#"{"process":0,"type":"invoke","f":"get","key":"k","value":null}
{"process":0,"type":"ok","f":"get","key":"k","value":5}"#;
    let e = check(&Kv, &parse(text, Format::Auto).unwrap(), &CheckOptions::default()).unwrap_err();
    assert!(e.to_string().contains("expected a string"), "{e}");
    assert_eq!(line_of(e), 2);
    // a function the model does not have
    let text = r#"{"process":0,"type":"invoke","f":"increment","value":1}"#;
    let e = check(&CasRegister, &parse(text, Format::Auto).unwrap(), &CheckOptions::default())
        .unwrap_err();
    assert_eq!(line_of(e), 1);
    // a process that is neither a number nor the nemesis
    let e = parse(r#"{"process":"alice","type":"invoke","f":"read","value":null}"#, Format::Auto)
        .unwrap_err();
    assert_eq!(line_of(e), 1);
    // a negative time
    let e =
        parse(r#"{"time":-5,"process":0,"type":"invoke","f":"read","value":null}"#, Format::Auto)
            .unwrap_err();
    assert_eq!(line_of(e), 1);
}

#[test]
fn another_invocation_while_one_is_open() {
    let text = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"invoke","f":"write","value":2}"#;
    let e = check(&CasRegister, &parse(text, Format::Auto).unwrap(), &CheckOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("still in progress"), "{e}");
    assert_eq!(line_of(e), 2);
}

#[test]
fn not_a_history() {
    let e = parse("hello world\n", Format::Auto).unwrap_err();
    assert_eq!(line_of(e), 1);
    let e = History::read("bytes", &[b'{', 0xff, 0xfe, b'\n'][..], Format::Auto).unwrap_err();
    assert!(e.to_string().contains("UTF-8"), "{e}");
    let e = History::read_file("/nonexistent/history.jsonl".as_ref(), Format::Auto).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    // the wrong format, given explicitly
    let e = parse("{:process 0, :type :invoke, :f :read, :value nil}", Format::Jsonl).unwrap_err();
    assert_eq!(line_of(e), 1);
}

#[test]
fn written_histories_read_back() {
    let events = vec![
        Event {
            index: 0,
            time: Some(1_520_331),
            process: Process::Client(0),
            kind: EventType::Invoke,
            f: "write".into(),
            key: Some(json!("k3")),
            value: json!(4),
            error: None,
        },
        Event {
            index: 1,
            time: Some(9_600_000),
            process: Process::Client(0),
            kind: EventType::Info,
            f: "write".into(),
            key: Some(json!("k3")),
            value: json!(4),
            error: Some(json!("timeout")),
        },
        Event {
            index: 2,
            time: Some(9_700_000),
            process: Process::Nemesis,
            kind: EventType::Info,
            f: "start-partition".into(),
            key: None,
            value: json!({"kind": "majority", "groups": [[1, 2], [3, 4, 5]]}),
            error: None,
        },
    ];
    let mut w = JsonlWriter::new(Vec::new());
    for e in &events {
        w.write(e).unwrap();
    }
    let bytes = w.into_inner();
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        r#"{"index":0,"time":1520331,"process":0,"type":"invoke","f":"write","key":"k3","value":4}"#
    );
    assert!(text.contains(r#""process":"nemesis""#));
    let h = History::parse_str("w", &text, Format::Auto).unwrap();
    assert_eq!(h.format(), Format::Jsonl);
    assert_eq!(h.events(), &events[..]);
}
