//! Large generated key/value histories (`checker::synth`, 64 clients), reading and search
//! measured apart: 100,000 and 1,000,000 operations over 1,000 keys, the second also with one
//! impossible read; with `LARGE=1` also 10,000,000 over 1,000 and 10,000 keys (minutes).
//!
//! `cargo bench -p checker --bench large`

use checker::synth::{write_kv_history, SynthOptions};
use checker::{check, CheckOptions, Format, History, Verdict};
use criterion::{criterion_group, criterion_main, Criterion};
use workloads::Kv;

fn text(operations: u64, keys: u64, violation: bool) -> String {
    let options = SynthOptions { operations, keys, violation, seed: 1, ..Default::default() };
    let mut out = Vec::new();
    write_kv_history(&options, &mut out).expect("writing to memory");
    String::from_utf8(out).expect("the generator writes UTF-8")
}

fn large(c: &mut Criterion) {
    let mut sizes =
        vec![(100_000, 1_000, false), (1_000_000, 1_000, false), (1_000_000, 1_000, true)];
    if std::env::var_os("LARGE").is_some() {
        sizes.extend([(10_000_000, 1_000, false), (10_000_000, 10_000, false)]);
    }
    let mut group = c.benchmark_group("large");
    group.sample_size(10);
    for (ops, keys, violation) in sizes {
        let name = format!("{ops}-ops-{keys}-keys{}", if violation { "-violation" } else { "" });
        let text = text(ops, keys, violation);
        group.bench_function(format!("{name}/read"), |b| {
            b.iter(|| History::parse_str("synth", &text, Format::Edn).expect("it parses"))
        });
        let history = History::parse_str("synth", &text, Format::Edn).expect("it parses");
        let expected = if violation { Verdict::Invalid } else { Verdict::Valid };
        group.bench_function(format!("{name}/check"), |b| {
            b.iter(|| {
                let r = check(&Kv, &history, &CheckOptions::default()).expect("it checks");
                assert_eq!(r.verdict, expected);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, large);
criterion_main!(benches);
