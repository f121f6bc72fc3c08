//! Large generated key/value histories (`checker::synth`, 64 clients), reading (the
//! streaming reader `gauntlet check` uses, into a `CompactHistory`) and checking (the
//! operations into the model's terms, and the search) measured apart: 100,000 and
//! 1,000,000 operations over 1,000 keys, the second also with one impossible read, and
//! 1,000,000 over 10,000 keys; with `LARGE=1` also 10,000,000 over 1,000 and 10,000 keys.
//!
//! `cargo bench -p checker --bench large`

use checker::synth::{write_kv_history, SynthOptions};
use checker::{check_compact, CheckOptions, CompactHistory, Format, Verdict};
use criterion::{criterion_group, criterion_main, Criterion};
use workloads::Kv;

fn text(operations: u64, keys: u64, violation: bool) -> Vec<u8> {
    let options = SynthOptions { operations, keys, violation, seed: 1, ..Default::default() };
    let mut out = Vec::new();
    write_kv_history(&options, &mut out).expect("writing to memory");
    out
}

fn large(c: &mut Criterion) {
    let mut sizes = vec![
        (100_000, 1_000, false),
        (1_000_000, 1_000, false),
        (1_000_000, 1_000, true),
        (1_000_000, 10_000, false),
    ];
    if std::env::var_os("LARGE").is_some() {
        sizes.extend([(10_000_000, 1_000, false), (10_000_000, 10_000, false)]);
    }
    let mut group = c.benchmark_group("large");
    group.sample_size(10);
    for (ops, keys, violation) in sizes {
        let name = format!("{ops}-ops-{keys}-keys{}", if violation { "-violation" } else { "" });
        let text = text(ops, keys, violation);
        let read = || CompactHistory::read("synth", &text[..], Format::Edn);
        group.bench_function(format!("{name}/read"), |b| b.iter(|| read().expect("it reads")));
        let history = read().expect("it reads");
        let expected = if violation { Verdict::Invalid } else { Verdict::Valid };
        group.bench_function(format!("{name}/check"), |b| {
            b.iter(|| {
                let r = check_compact(&Kv, &history, &CheckOptions::default()).expect("it checks");
                assert_eq!(r.verdict, expected);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, large);
criterion_main!(benches);
