//! Times reading and checking one history file apart: `cargo run --release -p checker
//! --example phases -- FILE [kv|cas-register]`.

use std::time::Instant;

use checker::{check_compact, CheckOptions, CompactHistory, Format};
use workloads::{CasRegister, Kv};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: phases FILE [kv|cas-register]");
    let model = args.next().unwrap_or_else(|| "kv".into());
    let t = Instant::now();
    let history =
        CompactHistory::read_file(path.as_ref(), Format::Auto).expect("a readable history");
    let read = t.elapsed();
    let after_read = resident();
    let t = Instant::now();
    let options = CheckOptions::default();
    let result = match model.as_str() {
        "kv" => check_compact(&Kv, &history, &options),
        _ => check_compact(&CasRegister, &history, &options),
    }
    .expect("a checkable history");
    println!(
        "{}: read {:.3} s ({} MiB held, {after_read} resident), check {:.3} s ({} at the peak), \
         {} configurations",
        result.verdict,
        read.as_secs_f64(),
        history.bytes() >> 20,
        t.elapsed().as_secs_f64(),
        peak(),
        result.configurations
    );
}

/// A line of `/proc/self/status`, such as the resident memory.
fn status(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_default();
    line.trim_start_matches(field).trim().to_string()
}

fn resident() -> String {
    status("VmRSS:")
}

fn peak() -> String {
    status("VmHWM:")
}
