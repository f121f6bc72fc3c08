//! Benchmarks over the bundled Porcupine data: all etcd histories one after another,
//! the slowest ones alone, and the kv histories; the histories already read (the check:
//! the operations into the model's terms, and the search).

use std::path::PathBuf;

use checker::{check_compact, CheckOptions, CompactHistory, Format, Model};
use criterion::{criterion_group, criterion_main, Criterion};
use workloads::{CasRegister, Kv};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/porcupine")).join(rel)
}

fn load(rel: &str) -> CompactHistory {
    CompactHistory::read_file(&data(rel), Format::Auto).expect("bundled data reads")
}

fn run<M: Model>(model: &M, h: &CompactHistory, threads: usize) {
    let options = CheckOptions { threads, ..Default::default() };
    std::hint::black_box(check_compact(model, h, &options).expect("bundled data checks"));
}

fn etcd(c: &mut Criterion) {
    let all: Vec<CompactHistory> =
        (0..=102).filter(|&n| n != 95).map(|n| load(&format!("jepsen/etcd_{n:03}.log"))).collect();
    c.bench_function("etcd/all-102-sequential", |b| {
        b.iter(|| all.iter().for_each(|h| run(&CasRegister, h, 1)))
    });
    for n in [2, 7, 57, 99] {
        let h = load(&format!("jepsen/etcd_{n:03}.log"));
        c.bench_function(&format!("etcd/{n:03}"), |b| b.iter(|| run(&CasRegister, &h, 1)));
    }
}

fn kv(c: &mut Criterion) {
    for name in ["c10-ok", "c10-bad", "c50-ok", "c50-bad"] {
        let h = load(&format!("kv/{name}.txt"));
        c.bench_function(&format!("kv/{name}/1-thread"), |b| b.iter(|| run(&Kv, &h, 1)));
        c.bench_function(&format!("kv/{name}/parallel"), |b| b.iter(|| run(&Kv, &h, 0)));
    }
}

criterion_group!(benches, etcd, kv);
criterion_main!(benches);
