//! The semantics of histories in the project's JSON Lines format: `ok`, `fail`,
//! `info`, invocations that never complete, nemesis events, keys and time.

use checker::{check, CheckOptions, Format, History, Verdict};
use workloads::{CasRegister, Kv};

fn verdict_register(text: &str) -> Verdict {
    let h = History::parse_str("t", text, Format::Auto).expect("well-formed history");
    check(&CasRegister, &h, &CheckOptions::default()).expect("fits the model").verdict
}

fn verdict_kv(text: &str) -> Verdict {
    let h = History::parse_str("t", text, Format::Auto).expect("well-formed history");
    check(&Kv, &h, &CheckOptions::default()).expect("fits the model").verdict
}

#[test]
fn sequential_reads_must_see_the_last_write() {
    let base = r#"{"index":0,"process":0,"type":"invoke","f":"write","value":1}
{"index":1,"process":0,"type":"ok","f":"write","value":1}
{"index":2,"process":0,"type":"invoke","f":"read","value":null}
"#;
    assert_eq!(
        verdict_register(&format!(
            "{base}{}",
            r#"{"index":3,"process":0,"type":"ok","f":"read","value":1}"#
        )),
        Verdict::Valid
    );
    assert_eq!(
        verdict_register(&format!(
            "{base}{}",
            r#"{"index":3,"process":0,"type":"ok","f":"read","value":2}"#
        )),
        Verdict::Invalid
    );
    // the register starts absent: a read of null before any write is fine, after is not
    assert_eq!(
        verdict_register(&format!(
            "{base}{}",
            r#"{"index":3,"process":0,"type":"ok","f":"read","value":null}"#
        )),
        Verdict::Invalid
    );
}

#[test]
fn a_failed_operation_has_no_effect() {
    let h = |read: u32| {
        format!(
            r#"{{"process":0,"type":"invoke","f":"write","value":1}}
{{"process":0,"type":"ok","f":"write","value":1}}
{{"process":0,"type":"invoke","f":"write","value":2}}
{{"process":0,"type":"fail","f":"write","value":2,"error":"not leader"}}
{{"process":0,"type":"invoke","f":"cas","value":[1,3]}}
{{"process":0,"type":"fail","f":"cas","value":[1,3]}}
{{"process":0,"type":"invoke","f":"read","value":null}}
{{"process":0,"type":"ok","f":"read","value":{read}}}"#
        )
    };
    assert_eq!(verdict_register(&h(1)), Verdict::Valid);
    assert_eq!(verdict_register(&h(2)), Verdict::Invalid);
    assert_eq!(verdict_register(&h(3)), Verdict::Invalid);
}

#[test]
fn a_failed_read_says_nothing() {
    let text = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"fail","f":"read","value":7,"error":"timeout"}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":1}"#;
    assert_eq!(verdict_register(text), Verdict::Valid);
}

#[test]
fn an_info_operation_may_take_effect_later_or_never() {
    let h = |reads: &[&str]| {
        let mut s = String::from(
            r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"invoke","f":"write","value":2}
{"process":1,"type":"info","f":"write","value":2,"error":"timeout"}
"#,
        );
        for r in reads {
            s.push_str(&format!(
                "{{\"process\":5,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}}\n\
                 {{\"process\":5,\"type\":\"ok\",\"f\":\"read\",\"value\":{r}}}\n"
            ));
        }
        s
    };
    // never took effect
    assert_eq!(verdict_register(&h(&["1", "1"])), Verdict::Valid);
    // took effect after its completion was recorded
    assert_eq!(verdict_register(&h(&["1", "2", "2"])), Verdict::Valid);
    // but only once: it cannot be undone
    assert_eq!(verdict_register(&h(&["2", "1"])), Verdict::Invalid);
    // nothing else writes 3
    assert_eq!(verdict_register(&h(&["3"])), Verdict::Invalid);
}

#[test]
fn an_invocation_that_never_completes_is_like_info() {
    let h = |reads: &str| {
        format!(
            r#"{{"process":1,"type":"invoke","f":"cas","value":[null,5]}}
{{"process":0,"type":"invoke","f":"read","value":null}}
{{"process":0,"type":"ok","f":"read","value":null}}
{reads}"#
        )
    };
    let read = |v: &str| {
        format!(
            "{{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}}\n\
             {{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":{v}}}\n"
        )
    };
    assert_eq!(verdict_register(&h(&read("null"))), Verdict::Valid);
    assert_eq!(verdict_register(&h(&(read("5") + &read("5")))), Verdict::Valid);
    assert_eq!(verdict_register(&h(&(read("5") + &read("null")))), Verdict::Invalid);
}

#[test]
fn nemesis_events_are_ignored_by_the_search() {
    let text = r#"{"index":0,"process":"nemesis","type":"info","f":"start-partition","value":{"kind":"majority"}}
{"index":1,"process":0,"type":"invoke","f":"write","value":1}
{"index":2,"process":"nemesis","type":"info","f":"stop-partition","value":null}
{"index":3,"process":0,"type":"ok","f":"write","value":1}
{"index":4,"process":0,"type":"invoke","f":"read","value":null}
{"index":5,"process":0,"type":"ok","f":"read","value":1}"#;
    let h = History::parse_str("t", text, Format::Auto).unwrap();
    let r = check(&CasRegister, &h, &CheckOptions::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Valid);
    assert_eq!(r.nemesis_events, 2);
    assert_eq!(r.operations, 2);
}

#[test]
fn keys_are_independent_registers() {
    let text = r#"{"process":0,"type":"invoke","f":"write","key":"a","value":1}
{"process":0,"type":"ok","f":"write","key":"a","value":1}
{"process":0,"type":"invoke","f":"read","key":"b","value":null}
{"process":0,"type":"ok","f":"read","key":"b","value":null}
{"process":0,"type":"invoke","f":"read","key":"a","value":null}
{"process":0,"type":"ok","f":"read","key":"a","value":1}"#;
    let h = History::parse_str("t", text, Format::Auto).unwrap();
    let r = check(&CasRegister, &h, &CheckOptions::default()).unwrap();
    assert_eq!((r.verdict, r.partitions), (Verdict::Valid, 2));
    // the key "1" and the key 1 are different keys
    let text = r#"{"process":0,"type":"invoke","f":"write","key":"1","value":1}
{"process":0,"type":"ok","f":"write","key":"1","value":1}
{"process":0,"type":"invoke","f":"read","key":1,"value":null}
{"process":0,"type":"ok","f":"read","key":1,"value":1}"#;
    assert_eq!(verdict_register(text), Verdict::Invalid);
}

#[test]
fn time_orders_events_when_every_event_has_one() {
    // write 1 returns at 10 and write 2 is invoked at 10: with times they overlap, so
    // write 2 may come first and a final read of 1 is fine; in file order it is not.
    let events = |with_time: bool| {
        let t = |n: u32| if with_time { format!("\"time\":{n},") } else { String::new() };
        format!(
            r#"{{{}"process":0,"type":"invoke","f":"write","value":1}}
{{{}"process":0,"type":"ok","f":"write","value":1}}
{{{}"process":1,"type":"invoke","f":"write","value":2}}
{{{}"process":1,"type":"ok","f":"write","value":2}}
{{{}"process":2,"type":"invoke","f":"read","value":null}}
{{{}"process":2,"type":"ok","f":"read","value":1}}"#,
            t(0),
            t(10),
            t(10),
            t(20),
            t(30),
            t(40)
        )
    };
    assert_eq!(verdict_register(&events(true)), Verdict::Valid);
    assert_eq!(verdict_register(&events(false)), Verdict::Invalid);
}

#[test]
fn kv_strings_grow_by_appends_and_reset_by_puts() {
    let text = r#"{:process 0, :type :invoke, :f :append, :key "k", :value "x"}
{:process 1, :type :invoke, :f :append, :key "k", :value "y"}
{:process 0, :type :ok, :f :append, :key "k", :value "x"}
{:process 1, :type :ok, :f :append, :key "k", :value "y"}
{:process 0, :type :invoke, :f :get, :key "k", :value nil}
{:process 0, :type :ok, :f :get, :key "k", :value "yx"}
{:process 0, :type :invoke, :f :put, :key "k", :value "z"}
{:process 0, :type :ok, :f :put, :key "k", :value "z"}
{:process 0, :type :invoke, :f :get, :key "k", :value nil}
{:process 0, :type :ok, :f :get, :key "k", :value "z"}
{:process 0, :type :invoke, :f :get, :key "other", :value nil}
{:process 0, :type :ok, :f :get, :key "other", :value ""}"#;
    assert_eq!(verdict_kv(text), Verdict::Valid);
    assert_eq!(verdict_kv(&text.replace("\"yx\"", "\"xyx\"")), Verdict::Invalid);
}

#[test]
fn the_explanation_names_the_operation_state_and_reason() {
    let text = r#"{"index":0,"process":0,"type":"invoke","f":"write","value":1}
{"index":1,"process":0,"type":"ok","f":"write","value":1}
{"index":2,"process":1,"type":"invoke","f":"write","value":2}
{"index":3,"process":1,"type":"ok","f":"write","value":2}
{"index":4,"process":0,"type":"invoke","f":"read","value":null}
{"index":5,"process":0,"type":"ok","f":"read","value":1}"#;
    let h = History::parse_str("t", text, Format::Auto).unwrap();
    let r = check(&CasRegister, &h, &CheckOptions::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Invalid);
    let v = r.violation.expect("explained");
    assert_eq!(v.prefix.len(), 2);
    assert_eq!(v.prefix[1].state_after, "2");
    assert_eq!(v.operation.description, "read -> 1");
    assert_eq!((v.operation.invoke_line, v.operation.complete_line), (5, Some(6)));
    assert_eq!(v.state, "2");
    assert_eq!(v.reason, "the read returned 1, but the register held 2");
    let text = v.render();
    assert!(text.contains("Longest linearizable prefix found: 2 operations"), "{text}");
    assert!(text.contains("in state 2 it cannot: the read returned 1"), "{text}");
    // and as JSON, for tools
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["operation"]["invoke_index"], 4);
    assert_eq!(json["state"], "2");
    let back: checker::Violation = serde_json::from_value(json).unwrap();
    assert_eq!(back, v);
}

#[test]
fn a_time_limit_yields_unknown() {
    let text = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}"#;
    let h = History::parse_str("t", text, Format::Auto).unwrap();
    let options = CheckOptions {
        time_limit: Some(std::time::Duration::ZERO),
        threads: 1,
        memory_limit: None,
    };
    let r = check(&CasRegister, &h, &options).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown);
}
