//! Reading what a killed run or a wrong path leaves: a torn last line is left out and named,
//! a torn line elsewhere is an error naming it, devices and endless lines are refused.

use checker::{Error, Format, History, MAX_LINE_BYTES};

const TWO: &str = r#"{"index":0,"process":0,"type":"invoke","f":"write","value":1}
{"index":1,"process":0,"type":"ok","f":"write","value":1}
"#;

#[test]
fn a_torn_last_line_is_left_out_and_named() {
    let torn = format!("{TWO}{{\"index\":2,\"process\":1,\"type\":\"inv");
    let h = History::parse_str("run", &torn, Format::Jsonl).unwrap();
    assert_eq!(h.events().len(), 2);
    assert_eq!(h.torn_line(), Some(3));
    let edn = "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :re";
    let h = History::parse_str("run", edn, Format::Auto).unwrap();
    assert_eq!((h.events().len(), h.torn_line()), (1, Some(2)));
    // a whole history has none
    assert_eq!(History::parse_str("run", TWO, Format::Jsonl).unwrap().torn_line(), None);
}

#[test]
fn a_bad_line_that_is_not_the_torn_tail_is_an_error_naming_it() {
    // the same text, but followed by a newline: it was written whole, and is wrong
    let bad = format!("{TWO}{{\"index\":2,\"process\":1,\"type\":\"inv\n");
    match History::parse_str("run", &bad, Format::Jsonl) {
        Err(Error::Line { line: 3, .. }) => {}
        other => panic!("expected an error at line 3, got {other:?}"),
    }
    let middle = format!("{{\"index\":0,\"proc\n{TWO}");
    assert!(matches!(
        History::parse_str("run", &middle, Format::Jsonl),
        Err(Error::Line { line: 1, .. })
    ));
}

#[test]
fn devices_and_endless_lines_are_refused() {
    let err = History::read_file("/dev/zero".as_ref(), Format::Auto).unwrap_err();
    assert!(err.to_string().contains("a device"), "{err}");
    // an endless line from a stream ends the reading once it passes the bound
    let endless = std::io::Read::take(std::io::repeat(b'x'), 4 * MAX_LINE_BYTES as u64);
    let err = History::read("stdin", endless, Format::Auto).unwrap_err();
    assert!(matches!(err, Error::Line { line: 1, .. }), "{err}");
    assert!(err.to_string().contains("longer than 1 MiB"), "{err}");
}
