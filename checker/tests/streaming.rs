//! The streaming reader (`CompactHistory::read`, what `gauntlet check` uses) reads every
//! history as the whole reader (`History`) does: the same results on the bundled and
//! generated histories, the same errors on bad input, the same torn tails.

use std::path::PathBuf;

use checker::synth::{write_kv_history, SynthOptions};
use checker::{
    check, check_compact, CheckOptions, CheckResult, CompactHistory, Error, Format, History, Model,
};
use workloads::{CasRegister, Kv};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/porcupine")).join(rel)
}

/// Both readers' results for `text`, which must agree (a result, or an error). One thread:
/// with more, which partitions finish before an illegal one cancels them (the configurations
/// counted) and which of several illegal ones is reported vary from run to run.
fn both<M: Model>(model: &M, text: &str, format: Format) -> Result<CheckResult, String> {
    let options = CheckOptions { threads: 1, ..CheckOptions::default() };
    let whole = History::parse_str("h", text, format)
        .and_then(|h| check(model, &h, &options).map(|r| (h.torn_line(), r)));
    let streamed = CompactHistory::read("h", text.as_bytes(), format)
        .and_then(|h| check_compact(model, &h, &options).map(|r| (h.torn_line(), r)));
    match (whole, streamed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the readers disagree on\n{text}");
            Ok(a.1)
        }
        (Err(a), Err(b)) => {
            // the streaming reader parses values when the check takes them: it names the
            // same line, in words of its own
            let deferred = b.to_string().contains("invalid event: bad value: ");
            match (&a, &b) {
                (Error::Line { line: x, .. }, Error::Line { line: y, .. }) if deferred => {
                    assert_eq!(x, y, "the readers' errors differ on\n{text}\n{a}\n{b}")
                }
                _ => assert_eq!(
                    a.to_string(),
                    b.to_string(),
                    "the readers' errors differ on\n{text}"
                ),
            }
            Err(a.to_string())
        }
        (a, b) => panic!("one reader failed: whole {a:?}, streamed {b:?}, on\n{text}"),
    }
}

#[test]
fn every_bundled_history_reads_the_same_both_ways() {
    let mut files: Vec<PathBuf> =
        (0..=102).filter(|&n| n != 95).map(|n| data(&format!("jepsen/etcd_{n:03}.log"))).collect();
    for clients in ["c01", "c10", "c50"] {
        for suffix in ["ok", "bad"] {
            files.push(data(&format!("kv/{clients}-{suffix}.txt")));
        }
    }
    let mut invalid = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let r = if path.extension().is_some_and(|e| e == "log") {
            both(&CasRegister, &text, Format::Auto)
        } else {
            both(&Kv, &text, Format::Auto)
        };
        let r = r.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        invalid += usize::from(r.violation.is_some());
        // and from the file itself, as `gauntlet check` reads it
        let from_file = CompactHistory::read_file(&path, Format::Auto).unwrap();
        let from_text = CompactHistory::read("h", text.as_bytes(), Format::Auto).unwrap();
        assert_eq!(
            (from_file.len(), from_file.nemesis_events(), from_file.format()),
            (from_text.len(), from_text.nemesis_events(), from_text.format()),
            "{}",
            path.display()
        );
    }
    assert_eq!(invalid, 79 + 3);
}

#[test]
fn generated_histories_read_the_same_both_ways() {
    for (seed, keys, info_per_mille, violation) in
        [(1, 10, 0, false), (2, 3, 20, true), (3, 50, 5, false), (4, 1, 50, true)]
    {
        let options =
            SynthOptions { operations: 5_000, keys, clients: 16, info_per_mille, violation, seed };
        let mut text = Vec::new();
        write_kv_history(&options, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let r = both(&Kv, &text, Format::Auto).unwrap();
        assert_eq!(r.violation.is_some(), violation, "seed {seed}: {}", r.reason);
        // the same history as JSON Lines, through the JSON reader
        let h = History::parse_str("h", &text, Format::Auto).unwrap();
        let mut jsonl = Vec::new();
        let mut w = checker::JsonlWriter::new(&mut jsonl);
        for e in h.events() {
            w.write(e).unwrap();
        }
        let r2 = both(&Kv, std::str::from_utf8(&jsonl).unwrap(), Format::Jsonl).unwrap();
        assert_eq!((r2.verdict, r2.operations, r2.reason), (r.verdict, r.operations, r.reason));
    }
}

#[test]
fn values_spelled_differently_are_one_value() {
    // one key spelled three ways is one partition; a read of [1, 2] sees the write of [1,2]
    let text = r#"{"process":0,"type":"invoke","f":"write","key":"k1","value":[1,2]}
{"process":0,"type":"ok","f":"write","key":"k\u0031","value":[1, 2]}
{"process":1,"type":"invoke","f":"read","key":  "k1" ,"value":null}
{"process":1,"type":"ok","f":"read","key":"k1","value":[ 1 , 2 ]}
"#;
    let r = both(&CasRegister, text, Format::Auto).unwrap();
    assert_eq!((r.partitions, r.operations), (1, 2));
    assert!(r.violation.is_none(), "{}", r.reason);
    let edn = "{:process 0, :type :invoke, :f :write, :key :k1, :value [1 2]}\n\
               {:process 0, :type :ok, :f :write, :key \"k1\", :value [1, 2]}\n\
               {:process 1, :type :invoke, :f :read, :key \"k1\", :value nil}\n\
               {:process 1, :type :ok, :f :read, :key :k1, :value (1 2)}\n";
    let r = both(&CasRegister, edn, Format::Auto).unwrap();
    assert_eq!((r.partitions, r.operations), (1, 2));
    assert!(r.violation.is_none(), "{}", r.reason);
}

#[test]
fn bad_input_is_the_same_error_both_ways() {
    let write = "{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
                 {\"index\":1,\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n";
    let cases: Vec<(String, Format)> = vec![
        (format!("{write}{{\"index\":2,\"process\":0,\"type\":\"inv\n"), Format::Auto),
        (format!("{write}{{\"process\":0,\"type\":\"begin\",\"f\":\"read\"}}"), Format::Auto),
        (
            format!("{write}{{\"process\":7,\"type\":\"ok\",\"f\":\"read\",\"value\":1}}"),
            Format::Auto,
        ),
        (
            format!("{write}{{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":[1,}}\n"),
            Format::Auto,
        ),
        (
            format!("{write}{{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":tru}}\n"),
            Format::Auto,
        ),
        (
            format!("{write}{{\"process\":0,\"type\":\"invoke\",\"f\":\"cas\",\"value\":7}}\n"),
            Format::Auto,
        ),
        (
            format!("{write}{{\"process\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}}\n"),
            Format::Auto,
        ),
        (r#"{"process":"alice","type":"invoke","f":"read","value":null}"#.into(), Format::Auto),
        (r#"{"time":-5,"process":0,"type":"invoke","f":"read","value":null}"#.into(), Format::Auto),
        (
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
          {\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":2}"
                .into(),
            Format::Auto,
        ),
        (
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"a\",\"value\":1}\n\
          {\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"key\":\"b\",\"value\":1}"
                .into(),
            Format::Auto,
        ),
        (
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
          {\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1}"
                .into(),
            Format::Auto,
        ),
        (
            "{\"time\":9,\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
          {\"time\":8,\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}"
                .into(),
            Format::Auto,
        ),
        (
            "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f\n"
                .into(),
            Format::Edn,
        ),
        ("{:process 0, :type :begin, :f :read, :value nil}".into(), Format::Edn),
        ("{:process 0, :type :invoke, :f :read, :value [1 2}}\n".into(), Format::Edn),
        ("{:process 0, :type :invoke, :f :read, :value \"a\\qb\"}\n".into(), Format::Edn),
        (
            format!("{{:process 0, :type :invoke, :f :read, :value {}}}\n", "[".repeat(300)),
            Format::Edn,
        ),
        (
            format!(
                "{{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":{}}}\n",
                "[".repeat(300)
            ),
            Format::Jsonl,
        ),
        (
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok".into(),
            Format::JepsenLog,
        ),
        ("INFO  jepsen.util - 0\t:begin\t:read\tnil".into(), Format::JepsenLog),
        ("hello\n".into(), Format::Auto),
        ("".into(), Format::Auto),
        ("\n  \n".into(), Format::Edn),
        (
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":\"\u{0}\"}".into(),
            Format::Auto,
        ),
    ];
    for (text, format) in cases {
        let e = both(&CasRegister, &text, format).expect_err(&text);
        assert!(e.starts_with("h:") || e.starts_with("h "), "{e}");
    }
}

#[test]
fn torn_tails_are_left_out_both_ways() {
    let write = "{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
                 {\"index\":1,\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n";
    for (text, format) in [
        (format!("{write}{{\"index\":2,\"process\":1,\"type\":\"inv"), Format::Jsonl),
        (format!("{write}{{\"index\":2,\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":[1"), Format::Jsonl),
        ("{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :re".into(), Format::Auto),
        ("{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :read, :value \"x".into(), Format::Auto),
    ] {
        let options = CheckOptions { threads: 1, ..CheckOptions::default() };
        let h = CompactHistory::read("h", text.as_bytes(), format).unwrap();
        let whole = History::parse_str("h", &text, format).unwrap();
        assert_eq!(h.torn_line(), whole.torn_line());
        assert!(h.torn_line().is_some(), "{text}");
        let (a, b) = (check_compact(&CasRegister, &h, &options), check(&CasRegister, &whole, &options));
        assert_eq!(a.unwrap(), b.unwrap());
    }
}

#[test]
fn devices_and_endless_lines_are_refused() {
    let err = CompactHistory::read_file("/dev/zero".as_ref(), Format::Auto).unwrap_err();
    assert!(err.to_string().contains("a device"), "{err}");
    let endless = std::io::Read::take(std::io::repeat(b'x'), 4 * checker::MAX_LINE_BYTES as u64);
    let err = CompactHistory::read("stdin", endless, Format::Auto).unwrap_err();
    assert!(matches!(err, Error::Line { line: 1, .. }), "{err}");
    assert!(err.to_string().contains("longer than 1 MiB"), "{err}");
}

#[test]
fn the_earliest_operation_that_does_not_fit_is_the_error_even_beside_a_violation() {
    // key "b" is not linearizable; keys "c" and "a" each have a cas that is not a pair
    let text = r#"{"process":0,"type":"invoke","f":"write","key":"b","value":1}
{"process":0,"type":"ok","f":"write","key":"b","value":1}
{"process":1,"type":"invoke","f":"read","key":"b","value":null}
{"process":1,"type":"ok","f":"read","key":"b","value":2}
{"process":4,"type":"invoke","f":"write","key":"c","value":1}
{"process":4,"type":"ok","f":"write","key":"c","value":1}
{"process":2,"type":"invoke","f":"cas","key":"c","value":7}
{"process":2,"type":"ok","f":"cas","key":"c","value":7}
{"process":3,"type":"invoke","f":"cas","key":"a","value":8}
{"process":3,"type":"ok","f":"cas","key":"a","value":8}
"#;
    let h = CompactHistory::read("h", text.as_bytes(), Format::Jsonl).unwrap();
    for threads in [1, 2] {
        let options = CheckOptions { threads, ..CheckOptions::default() };
        match check_compact(&CasRegister, &h, &options) {
            Err(Error::Line { line: 7, message, .. }) => {
                assert!(message.contains("cas"), "{message}")
            }
            other => panic!("expected the error of line 7, got {other:?}"),
        }
    }
}
