//! Times each bundled history once and prints the search's counters (a tuning aid).

use std::time::Instant;

use checker::{check, CheckOptions, Format, History, Model};
use workloads::{CasRegister, Kv};

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/porcupine");
    let options = CheckOptions { threads: 1, ..Default::default() };
    let mut total = 0.0;
    for n in (0..=102).filter(|&n| n != 95) {
        let h = History::read_file(format!("{root}/jepsen/etcd_{n:03}.log").as_ref(), Format::Auto)
            .unwrap();
        total += time(&CasRegister, &h, &options, &format!("etcd_{n:03}"));
    }
    println!("etcd total {total:.2} ms");
    for name in ["c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad"] {
        let h = History::read_file(format!("{root}/kv/{name}.txt").as_ref(), Format::Auto).unwrap();
        time(&Kv, &h, &options, name);
    }
}

fn time<M: Model>(m: &M, h: &History, o: &CheckOptions, name: &str) -> f64 {
    let t = Instant::now();
    let r = check(m, h, o).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if ms > 0.5 || std::env::var_os("ALL").is_some() {
        println!("{name}: {} {ms:.3} ms, {} configurations", r.verdict, r.configurations);
    }
    ms
}
