//! Generated histories keep the verdict they are built with, at sizes that span many words
//! of call positions per partition, and a search that would pass its memory budget ends
//! unknown with the reason.

use checker::synth::{write_kv_history, SynthOptions};
use checker::{check, CheckOptions, Format, History, Verdict};
use workloads::Kv;

fn generated(options: &SynthOptions) -> History {
    let mut text = Vec::new();
    write_kv_history(options, &mut text).unwrap();
    History::parse_str("synth", &String::from_utf8(text).unwrap(), Format::Auto).unwrap()
}

#[test]
fn generated_histories_have_the_verdict_they_are_built_with() {
    for (seed, keys, info_per_mille) in [(1, 10, 0), (2, 3, 20), (3, 50, 5), (4, 1, 0)] {
        for violation in [false, true] {
            let options = SynthOptions {
                operations: 20_000,
                keys,
                clients: 16,
                info_per_mille,
                violation,
                seed,
            };
            let r = check(&Kv, &generated(&options), &CheckOptions::default()).unwrap();
            let expected = if violation { Verdict::Invalid } else { Verdict::Valid };
            assert_eq!(r.verdict, expected, "seed {seed}, {keys} keys: {}", r.reason);
            if violation {
                // the read never written is blamed, or pending beside the operation blamed
                let v = r.violation.unwrap();
                let near = std::iter::once(&v.operation).chain(&v.pending);
                let named = near
                    .filter_map(|o| o.result.as_ref())
                    .any(|r| r.as_str().is_some_and(|s| s.contains("never written")));
                assert!(named, "seed {seed}: {}", v.summary());
            }
        }
    }
}

#[test]
fn the_same_seed_writes_the_same_history() {
    let options = SynthOptions { operations: 5_000, seed: 9, ..Default::default() };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    write_kv_history(&options, &mut a).unwrap();
    write_kv_history(&options, &mut b).unwrap();
    assert_eq!(a, b);
    let other = SynthOptions { seed: 10, ..options };
    let mut c = Vec::new();
    write_kv_history(&other, &mut c).unwrap();
    assert_ne!(a, c);
}

#[test]
fn a_search_past_its_memory_limit_ends_unknown_naming_the_partition() {
    // One key, many clients, a third of the outcomes unknown and an impossible read: the
    // search has to visit a great many configurations before it can say "invalid".
    let options = SynthOptions {
        operations: 3_000,
        keys: 1,
        clients: 64,
        info_per_mille: 300,
        violation: true,
        seed: 3,
    };
    let history = generated(&options);
    let limited = CheckOptions { memory_limit: Some(8 << 20), threads: 1, ..Default::default() };
    let r = check(&Kv, &history, &limited).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.reason);
    assert!(r.reason.contains("memory limit of 8 MiB") && r.reason.contains("key"), "{}", r.reason);
}
