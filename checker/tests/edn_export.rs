//! Histories written as Jepsen's EDN (`EdnWriter`) read back as the same events, with the
//! same verdicts.

use std::path::PathBuf;

use checker::{check, CheckOptions, EdnWriter, Event, Format, History, Process};
use workloads::{CasRegister, Kv};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/porcupine")).join(rel)
}

fn round_trip(history: &History) -> History {
    let mut out = EdnWriter::new(Vec::new());
    for event in history.events() {
        out.write(event).unwrap();
    }
    let text = String::from_utf8(out.into_inner()).unwrap();
    History::parse_str("exported", &text, Format::Edn).unwrap()
}

#[test]
fn jepsen_logs_and_kv_histories_read_back_the_same() {
    let mut files: Vec<PathBuf> =
        (0..12).map(|n| data(&format!("jepsen/etcd_{n:03}.log"))).collect();
    files.extend(["c10-ok", "c10-bad", "c50-bad"].map(|n| data(&format!("kv/{n}.txt"))));
    for path in files {
        let history = History::read_file(&path, Format::Auto).unwrap();
        let back = round_trip(&history);
        assert_eq!(back.events(), history.events(), "{}", path.display());
        let verdict = |h: &History| match history.format() {
            Format::JepsenLog => check(&CasRegister, h, &CheckOptions::default()),
            _ => check(&Kv, h, &CheckOptions::default()),
        };
        assert_eq!(verdict(&back).unwrap().verdict, verdict(&history).unwrap().verdict);
    }
}

#[test]
fn every_kind_of_value_and_name_survives() {
    let event = |index, f: &str, value: serde_json::Value| Event {
        index,
        time: Some(10 * index),
        process: if f == "start partition" { Process::Nemesis } else { Process::Client(3) },
        kind: checker::EventType::Info,
        f: f.into(),
        key: Some(serde_json::json!("k \"1\"")),
        value,
        error: Some(serde_json::json!({"reason": "timed\nout", "odd key": [1.5, -2, true, null]})),
    };
    let events = vec![
        event(0, "cas", serde_json::json!([1, 2])),
        event(1, "start partition", serde_json::json!({"kind": "majority", "cut": [[1, 2], [3]]})),
        event(2, "txn", serde_json::json!([["r", 1, null], ["append", 1, "x\u{1}y"]])),
    ];
    let history = History::from_events("made", events);
    assert_eq!(round_trip(&history).events(), history.events());
}
