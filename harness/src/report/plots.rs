//! The two measurement panels of the overview, drawn as SVG by hand: throughput over time
//! (completions per second, stacked by outcome) and latency over time (every completed
//! operation a point at its invocation time, on a log scale, by outcome).
//!
//! Both stay small for long runs: throughput is aggregated into about 150 buckets, and the
//! latency points are one path per outcome with one move-to per distinct pixel, so that tens
//! of thousands of operations cost tens to hundreds of kilobytes.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::data::{Outcome, RunData};
use super::svg::{duration, esc, nice_step, num, TimeScale};

/// The outcomes that complete, in drawing order (the rarer and worse ones on top).
const DRAWN: [Outcome; 4] = [Outcome::Refused, Outcome::Ok, Outcome::Info, Outcome::Fail];
/// The layers of the throughput plot, bottom up: the cluster served `ok` and `refused`.
const LAYERS: [Outcome; 4] = [Outcome::Ok, Outcome::Refused, Outcome::Info, Outcome::Fail];

/// Writes a panel's frame and its title, above the frame's left corner.
pub fn panel_frame(out: &mut String, scale: &TimeScale, y: f64, h: f64, title: &str, sub: &str) {
    let _ = write!(
        out,
        r#"<rect class="frame" x="{}" y="{}" width="{}" height="{}"/>"#,
        num(scale.left),
        num(y),
        num(scale.width),
        num(h),
    );
    if !title.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}"><tspan class="ptitle">{}</tspan><tspan class="psub" dx="8">{}</tspan></text>"#,
            num(scale.left),
            num(y - 6.0),
            esc(title),
            esc(sub)
        );
    }
}

/// The label of a power of ten of nanoseconds: `10 us`, `1 ms`, `100 ms`, `10 s`.
fn decade(exp: i32) -> String {
    match exp {
        e if e < 3 => format!("{} ns", 10u64.pow(e.max(0) as u32)),
        e if e < 6 => format!("{} us", 10u64.pow((e - 3) as u32)),
        e if e < 9 => format!("{} ms", 10u64.pow((e - 6) as u32)),
        e => format!("{} s", 10u64.pow((e - 9) as u32)),
    }
}

/// The bucket width for throughput, in nanoseconds: a round number of milliseconds giving
/// about 150 buckets (at least 10 ms).
pub fn bucket_ns(end: u64) -> u64 {
    let step_s = nice_step(end as f64 / 1e9, 150.0).max(0.01);
    (step_s * 1e9).round() as u64
}

/// Completions per bucket, counted by outcome in the order of `LAYERS`.
pub fn throughput_buckets(run: &RunData, bucket: u64) -> Vec<[u32; 4]> {
    let n = (run.end / bucket + 1) as usize;
    let mut buckets = vec![[0u32; 4]; n];
    for op in &run.ops {
        let Some(end) = op.end else { continue };
        let b = ((end / bucket) as usize).min(n - 1);
        if let Some(layer) = LAYERS.iter().position(|&o| o == op.outcome) {
            buckets[b][layer] += 1;
        }
    }
    buckets
}

/// Throughput over time: completions per second in each bucket, stacked ok, info, fail.
pub fn throughput(out: &mut String, run: &RunData, scale: &TimeScale, y: f64, h: f64) {
    let bucket = bucket_ns(run.end);
    let buckets = throughput_buckets(run, bucket);
    let per_s = 1e9 / bucket as f64;
    let max = buckets.iter().map(|b| b.iter().sum::<u32>()).max().unwrap_or(0) as f64 * per_s;
    let step = nice_step(max.max(1.0), 4.0);
    let top = (max / step).ceil().max(1.0) * step;
    panel_frame(
        out,
        scale,
        y,
        h,
        "throughput",
        &format!("completions per second (buckets of {}), stacked by outcome", duration(bucket)),
    );
    let yv = |v: f64| y + h - (v / top) * h;
    // Horizontal grid and labels.
    let mut grid = String::new();
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let yy = yv(v);
        y_tick(out, &mut grid, scale, yy, v);
        v += step;
    }
    let _ = write!(out, r#"<path class="grid" d="{grid}"/>"#);
    let mut paths = [String::new(), String::new(), String::new(), String::new()];
    for (i, b) in buckets.iter().enumerate() {
        let t0 = i as u64 * bucket;
        if t0 >= run.end {
            break;
        }
        let x0 = scale.x(t0);
        let x1 = scale.x((t0 + bucket).min(run.end));
        let mut base = 0.0;
        for (layer, path) in paths.iter_mut().enumerate() {
            let v = b[layer] as f64 * per_s;
            if v > 0.0 {
                let (ya, yb) = (yv(base), yv(base + v));
                let _ =
                    write!(path, "M{} {}H{}V{}H{}Z", num(x0), num(ya), num(x1), num(yb), num(x0));
            }
            base += v;
        }
    }
    for (layer, path) in paths.iter().enumerate() {
        let class = LAYERS[layer].name();
        if !path.is_empty() {
            let _ = write!(out, r#"<path class="area {class}" d="{path}"/>"#);
        }
    }
}

/// The latency axis: decades from below the fastest to above the slowest operation.
fn latency_range(run: &RunData) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for l in run.ops.iter().filter_map(|o| o.latency()) {
        let l = l.max(1_000) as f64;
        lo = lo.min(l);
        hi = hi.max(l);
    }
    if hi == 0.0 {
        return (5.0, 10.0); // 100 us .. 10 s
    }
    let lo = lo.log10().floor();
    let hi = hi.log10().ceil().max(lo + 1.0);
    (lo, hi)
}

/// One horizontal grid line at `yy` (drawn into `grid`) and its label at the left axis.
fn y_tick(
    out: &mut String,
    grid: &mut String,
    scale: &TimeScale,
    yy: f64,
    label: impl std::fmt::Display,
) {
    let _ = write!(grid, "M{} {}H{}", num(scale.left), num(yy), num(scale.right()));
    let _ = write!(
        out,
        r#"<text class="ylab" x="{}" y="{}">{}</text>"#,
        num(scale.left - 4.0),
        num(yy + 3.5),
        label
    );
}

/// Latency over time: every completed operation is a dot at (invocation time, latency).
pub fn latency(out: &mut String, run: &RunData, scale: &TimeScale, y: f64, h: f64) {
    let (lo, hi) = latency_range(run);
    panel_frame(
        out,
        scale,
        y,
        h,
        "latency",
        "every completed operation at its invocation time, log scale",
    );
    let yv = |ns: f64| y + h - ((ns.max(1.0).log10() - lo) / (hi - lo)) * h;
    let mut grid = String::new();
    let mut d = lo;
    while d <= hi + 1e-9 {
        let yy = yv(10f64.powf(d));
        y_tick(out, &mut grid, scale, yy, decade(d as i32));
        d += 1.0;
    }
    let _ = write!(out, r#"<path class="grid" d="{grid}"/>"#);
    for outcome in DRAWN {
        let mut seen = HashSet::new();
        let mut path = String::new();
        for op in run.ops.iter().filter(|o| o.outcome == outcome) {
            let Some(l) = op.latency() else { continue };
            let px = scale.x(op.start).round() as i64;
            let py = yv(l.max(1_000) as f64).round() as i64;
            if seen.insert((px, py)) {
                let _ = write!(path, "M{px} {py}h0");
            }
        }
        if !path.is_empty() {
            let _ = write!(out, r#"<path class="dots {}" d="{path}"/>"#, outcome.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::Op;

    fn op(start: u64, end: u64, outcome: Outcome) -> Op {
        Op::completed("read", start, end, outcome)
    }

    #[test]
    fn buckets_count_completions_by_outcome() {
        let run = RunData {
            ops: vec![
                op(0, 5_000_000, Outcome::Ok),
                op(0, 15_000_000, Outcome::Fail),
                op(10, 19_000_000, Outcome::Info),
                op(10, 11_000_000, Outcome::Refused),
            ],
            end: 20_000_000,
            ..RunData::default()
        };
        let b = bucket_ns(run.end);
        assert_eq!(b, 10_000_000);
        let buckets = throughput_buckets(&run, b);
        assert_eq!(buckets[0], [1, 0, 0, 0]);
        assert_eq!(buckets[1], [0, 1, 1, 1]);
    }

    #[test]
    fn decades_read_well() {
        assert_eq!(decade(4), "10 us");
        assert_eq!(decade(6), "1 ms");
        assert_eq!(decade(8), "100 ms");
        assert_eq!(decade(10), "10 s");
    }

    #[test]
    fn latency_dots_are_one_per_pixel() {
        let run = RunData {
            ops: (0..1000).map(|_| op(1_000_000, 3_000_000, Outcome::Ok)).collect(),
            end: 10_000_000_000,
            ..RunData::default()
        };
        let scale = TimeScale { left: 100.0, width: 1000.0, end: run.end };
        let mut out = String::new();
        latency(&mut out, &run, &scale, 0.0, 100.0);
        assert_eq!(out.matches("h0").count(), 1, "identical points are drawn once");
        assert!(out.contains(r#"class="dots ok""#));
    }
}
