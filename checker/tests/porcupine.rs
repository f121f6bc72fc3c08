//! Every verdict of the bundled Porcupine test data (see its README).

use std::path::PathBuf;

use checker::{check, CheckOptions, Format, History, Verdict};
use workloads::{CasRegister, Kv};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/porcupine")).join(rel)
}

/// The linearizable etcd histories, according to the README.
const ETCD_VALID: [u32; 23] =
    [2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102];

#[test]
fn etcd_histories_reach_every_verdict() {
    let mut valid = 0;
    let mut invalid = 0;
    for n in (0..=102).filter(|&n| n != 95) {
        let path = data(&format!("jepsen/etcd_{n:03}.log"));
        let history = History::read_file(&path, Format::Auto).unwrap();
        assert_eq!(history.format(), Format::JepsenLog);
        let r = check(&CasRegister, &history, &CheckOptions::default()).unwrap();
        let expected = if ETCD_VALID.contains(&n) { Verdict::Valid } else { Verdict::Invalid };
        assert_eq!(r.verdict, expected, "etcd_{n:03}: {}", r.reason);
        match r.verdict {
            Verdict::Valid => {
                valid += 1;
                assert!(r.violation.is_none());
            }
            _ => {
                invalid += 1;
                let v = r.violation.expect("an invalid verdict carries its explanation");
                assert!(!v.reason.is_empty());
            }
        }
    }
    assert_eq!((valid, invalid), (23, 79));
}

#[test]
fn kv_histories_reach_every_verdict() {
    for clients in ["c01", "c10", "c50"] {
        for (suffix, expected) in [("ok", Verdict::Valid), ("bad", Verdict::Invalid)] {
            let path = data(&format!("kv/{clients}-{suffix}.txt"));
            let history = History::read_file(&path, Format::Auto).unwrap();
            assert_eq!(history.format(), Format::Edn);
            let r = check(&Kv, &history, &CheckOptions::default()).unwrap();
            assert_eq!(r.verdict, expected, "{clients}-{suffix}: {}", r.reason);
            assert!(r.partitions > 1, "{clients}-{suffix}: partitioned by key");
            assert_eq!(r.violation.is_some(), expected == Verdict::Invalid);
        }
    }
}
