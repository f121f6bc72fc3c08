//! The overview: one SVG figure whose panels share a time axis, so that a fault can be
//! followed down through everything it touched.
//!
//! From top to bottom: the faults (one lane per kind, labelled), throughput, latency, the
//! operations of every client worker (ok, fail and info coloured), and the nodes (leadership
//! with its term, down while killed, paused, cut off by a partition, restarts). Every fault
//! period is shaded in its colour across all panels; `heal` and a linearizability violation
//! are marked by vertical lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::data::{FaultKind, Lane, Outcome, RunData};
use super::plots::{latency, panel_frame, throughput};
use super::svg::{duration, esc, num, secs, TimeScale};

/// The width of the figure (its viewBox; the page scales it).
pub const WIDTH: f64 = 1240.0;
const LEFT: f64 = 128.0;
const RIGHT: f64 = 14.0;
const GAP: f64 = 26.0;
/// Above this many lanes, the timeline folds processes together.
const MAX_LANES: usize = 100;
/// At most this many fail and info operations are drawn one by one with a hover text.
const MAX_TITLED: usize = 2000;
/// Roughly the width of one character of a label, in viewBox units.
const CHAR_W: f64 = 6.0;

/// A time to mark with a red line across the figure, with its label.
pub struct Marker {
    /// Nanoseconds since the run started.
    pub time: u64,
    /// The label at the top.
    pub label: String,
}

/// The whole overview figure, as an `<svg>` element.
pub fn overview(run: &RunData, marker: Option<&Marker>) -> String {
    let scale = TimeScale { left: LEFT, width: WIDTH - LEFT - RIGHT, end: run.end };
    let mut body = String::new();
    let top = 30.0;
    let mut y = top;

    // Faults, one lane per kind present.
    let kinds: Vec<FaultKind> =
        FaultKind::ALL.into_iter().filter(|k| run.faults.iter().any(|f| f.kind == *k)).collect();
    let lane_h = 20.0;
    let faults_h = lane_h * kinds.len().max(1) as f64;
    panel_frame(&mut body, &scale, y, faults_h, "", "");
    let _ = write!(body, r#"<text class="ptitle" x="8" y="{}">faults</text>"#, num(y + 14.0));
    if kinds.is_empty() {
        let _ = write!(
            body,
            r#"<text class="note" x="{}" y="{}">no faults in this run</text>"#,
            num(scale.left + 6.0),
            num(y + 14.0)
        );
    }
    for (row, kind) in kinds.iter().enumerate() {
        let ly = y + row as f64 * lane_h;
        let _ = write!(
            body,
            r#"<text class="lane" x="{}" y="{}">{}</text>"#,
            num(scale.left - 4.0),
            num(ly + 14.0),
            kind.name()
        );
        for f in run.faults.iter().filter(|f| f.kind == *kind) {
            let x0 = scale.x(f.start);
            let x1 = scale.x(f.end.unwrap_or(run.end)).max(x0 + 2.0);
            let until = f.end.map_or("the end".to_string(), secs);
            let _ = write!(
                body,
                r#"<g class="fault {k}"><title>{d}&#10;{s} to {u} ({len})</title><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="2"/>"#,
                k = kind.name(),
                d = esc(&f.detail),
                s = secs(f.start),
                u = until,
                len = duration(f.end.unwrap_or(run.end).saturating_sub(f.start)),
                x = num(x0),
                y = num(ly + 2.0),
                w = num(x1 - x0),
                h = num(lane_h - 4.0),
            );
            let w = x1 - x0 - 6.0;
            let label = if f.label.len() as f64 * CHAR_W <= w {
                Some(f.label.as_str())
            } else if f.name.len() as f64 * CHAR_W <= w {
                Some(f.name.as_str())
            } else {
                None
            };
            if let Some(label) = label {
                let _ = write!(
                    body,
                    r#"<text x="{}" y="{}">{}</text>"#,
                    num(x0 + 3.0),
                    num(ly + 14.0),
                    esc(label)
                );
            }
            body.push_str("</g>");
        }
    }
    y += faults_h + GAP;

    throughput(&mut body, run, &scale, y, 120.0);
    y += 120.0 + GAP;
    latency(&mut body, run, &scale, y, 190.0);
    y += 190.0 + GAP;
    y = operations(&mut body, run, &scale, y) + GAP;
    y = nodes(&mut body, run, &scale, y);
    let bottom = y;

    // Behind everything: the fault periods through every panel, and the time grid.
    let mut back = String::new();
    for f in &run.faults {
        let x0 = scale.x(f.start);
        let x1 = scale.x(f.end.unwrap_or(run.end)).max(x0 + 1.0);
        let _ = write!(
            back,
            r#"<rect class="shade {}" x="{}" y="{}" width="{}" height="{}"/><path class="edge {}" d="M{} {}V{}"/>"#,
            f.kind.name(),
            num(x0),
            num(top),
            num(x1 - x0),
            num(bottom - top),
            f.kind.name(),
            num(x0),
            num(top),
            num(bottom)
        );
    }
    scale.grid(&mut back, top, bottom);

    // In front: time axes, heal, the violation, the cursor.
    let mut front = String::new();
    for (t, label) in scale.ticks() {
        for ty in [top - 8.0, bottom + 16.0] {
            let _ = write!(
                front,
                r#"<text class="tick" x="{}" y="{}">{}</text>"#,
                num(scale.x(t)),
                num(ty),
                label
            );
        }
    }
    for m in &run.marks {
        let x = scale.x(m.time);
        let (anchor, tx) =
            if x > scale.right() - 60.0 { ("end", x - 3.0) } else { ("start", x + 3.0) };
        let _ = write!(
            front,
            r#"<g class="mark"><title>{f} at {t}</title><path d="M{x} {y0}V{y1}"/><text x="{tx}" y="{ty}" text-anchor="{anchor}">{f}</text></g>"#,
            f = esc(&m.f),
            t = secs(m.time),
            x = num(x),
            y0 = num(top),
            y1 = num(bottom),
            tx = num(tx),
            ty = num(top + faults_h + 12.0),
        );
    }
    if let Some(m) = marker {
        let x = scale.x(m.time);
        let anchor = if x > scale.right() - 200.0 { "end" } else { "start" };
        let tx = if anchor == "end" { x - 4.0 } else { x + 4.0 };
        let _ = write!(
            front,
            r#"<g class="violation" id="violation-mark"><title>{l} at {t}</title><path d="M{x} {y0}V{y1}"/><text x="{tx}" y="{ty}" text-anchor="{anchor}">{l}</text></g>"#,
            l = esc(&m.label),
            t = secs(m.time),
            x = num(x),
            y0 = num(top - 4.0),
            y1 = num(bottom),
            tx = num(tx),
            ty = num(top - 18.0),
        );
    }
    let _ = write!(
        front,
        r#"<g id="cursor" visibility="hidden"><path d="M0 {}V{}"/><text x="4" y="{}"></text></g>"#,
        num(top),
        num(bottom),
        num(top + 12.0)
    );

    let height = bottom + 26.0;
    format!(
        r#"<svg id="overview" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" data-left="{l}" data-width="{pw}" data-end="{end}" role="img" aria-label="run overview">{back}{body}{front}</svg>"#,
        w = num(WIDTH),
        h = num(height),
        l = num(scale.left),
        pw = num(scale.width),
        end = run.end,
    )
}

/// The lanes of the operations timeline, in order, and the lane of every operation.
fn lanes(run: &RunData) -> (Vec<String>, Vec<usize>) {
    let mut order: BTreeMap<Lane, usize> = BTreeMap::new();
    for op in &run.ops {
        order.entry(run.lane_of(op.process)).or_insert(0);
    }
    let folded = order.len() > MAX_LANES;
    let labels: Vec<String> = if folded {
        (0..MAX_LANES).map(|i| format!("lane {i}")).collect()
    } else {
        order.keys().map(|l| l.label()).collect()
    };
    for (i, v) in order.values_mut().enumerate() {
        *v = if folded { i % MAX_LANES } else { i };
    }
    let of_op = run.ops.iter().map(|op| order[&run.lane_of(op.process)]).collect();
    (labels, of_op)
}

/// The operations timeline: one lane per worker, every operation a bar from invocation to
/// completion. Returns the y below it.
fn operations(out: &mut String, run: &RunData, scale: &TimeScale, y: f64) -> f64 {
    let (labels, lane_of) = lanes(run);
    let n = labels.len().max(1);
    let lh = if n <= 16 {
        13.0
    } else if n <= 40 {
        8.0
    } else {
        (320.0 / n as f64).max(3.0)
    };
    let h = lh * n as f64;
    panel_frame(
        out,
        scale,
        y,
        h.max(30.0),
        "operations",
        "per client worker, each a bar from invocation to completion",
    );
    if lh >= 8.0 {
        for (i, label) in labels.iter().enumerate() {
            let _ = write!(
                out,
                r#"<text class="lane small" x="{}" y="{}">{}</text>"#,
                num(scale.left - 4.0),
                num(y + i as f64 * lh + lh * 0.75),
                esc(label)
            );
        }
    }
    let bar = (lh * 0.7).max(2.0);
    // Hover texts for the operations that went wrong (not for ok or refused ones).
    let bad = |o: Outcome| matches!(o, Outcome::Fail | Outcome::Info | Outcome::Open);
    let titled = run.ops.iter().filter(|o| bad(o.outcome)).count() <= MAX_TITLED;
    for outcome in [Outcome::Ok, Outcome::Refused, Outcome::Open, Outcome::Info, Outcome::Fail] {
        // Bars of one lane that touch (at this resolution) are merged into one segment.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new(); n];
        let mut single = String::new();
        for (op, &lane) in run.ops.iter().zip(&lane_of) {
            if op.outcome != outcome {
                continue;
            }
            let x0 = scale.x(op.start);
            let x1 = scale.x(op.end.unwrap_or(run.end)).max(x0 + 1.0);
            if titled && bad(outcome) {
                let ly = y + lane as f64 * lh + lh / 2.0;
                let _ = write!(
                    single,
                    r#"<path d="M{} {}H{}"><title>process {}: {}&#10;{} to {}</title></path>"#,
                    num(x0),
                    num(ly),
                    num(x1),
                    op.process,
                    esc(&op.describe()),
                    secs(op.start),
                    op.end.map_or("the end".into(), secs),
                );
                continue;
            }
            let segs = &mut segments[lane];
            match segs.last_mut() {
                Some(last) if x0 <= last.1 + 0.5 => last.1 = last.1.max(x1),
                _ => segs.push((x0, x1)),
            }
        }
        let mut d = String::new();
        for (lane, segs) in segments.iter().enumerate() {
            let ly = y + lane as f64 * lh + lh / 2.0;
            for &(x0, x1) in segs {
                let _ = write!(d, "M{} {}H{}", num(x0), num(ly), num(x1));
            }
        }
        let class = outcome.name();
        let _ = write!(
            out,
            r#"<g class="bars {class}" stroke-width="{}"><path d="{d}"/>{single}</g>"#,
            num(bar)
        );
    }
    y + h.max(30.0)
}

/// The node lanes: leadership (with its term), down while killed, paused, cut off, restarts.
/// Returns the y below them.
fn nodes(out: &mut String, run: &RunData, scale: &TimeScale, y: f64) -> f64 {
    let lh = 24.0;
    let n = run.nodes.len();
    let h = (lh * n as f64).max(30.0);
    panel_frame(
        out,
        scale,
        y,
        h,
        "nodes",
        "leader (term), down (killed), paused, without quorum (partition), ▲ restart",
    );
    if n == 0 {
        let _ = write!(
            out,
            r#"<text class="note" x="{}" y="{}">no node records</text>"#,
            num(scale.left + 6.0),
            num(y + 18.0)
        );
    }
    for (i, node) in run.nodes.iter().enumerate() {
        let ly = y + i as f64 * lh;
        let mid = ly + lh / 2.0;
        let _ = write!(
            out,
            r#"<g class="node" id="node-lane-{id}"><text class="lane" x="{}" y="{}">n{id}<title>n{id}: last applied index {}, {} restart(s), leader of {} term(s)</title></text><path class="alive" d="M{} {}H{}"/>"#,
            num(scale.left - 4.0),
            num(mid + 4.0),
            node.last_applied.map_or("none".into(), |a| a.to_string()),
            node.restarts.len(),
            node.leaderships.len(),
            num(scale.left),
            num(mid),
            num(scale.right()),
            id = node.id,
        );
        for f in run.faults.iter().filter(|f| f.nodes.contains(&node.id)) {
            let (class, what, band) = match f.kind {
                FaultKind::Kill => ("down", "down (killed)", (ly + 3.0, lh - 6.0)),
                FaultKind::Crash => ("down", "down (crashed)", (ly + 3.0, lh - 6.0)),
                FaultKind::DiskError => ("down", "down (disk error)", (ly + 3.0, lh - 6.0)),
                FaultKind::DiskDamage => ("down", "down (log damaged)", (ly + 3.0, lh - 6.0)),
                FaultKind::Pause => ("paused", "paused", (ly + 3.0, lh - 6.0)),
                FaultKind::Partition if f.isolated.contains(&node.id) => {
                    ("isolated", "without a quorum", (ly + 3.0, lh - 6.0))
                }
                FaultKind::Partition => ("cut", "cut off from some peers", (ly + lh - 5.0, 3.0)),
                _ => continue,
            };
            let x0 = scale.x(f.start);
            let x1 = scale.x(f.end.unwrap_or(run.end)).max(x0 + 1.0);
            let _ = write!(
                out,
                r#"<rect class="{class}" x="{}" y="{}" width="{}" height="{}"><title>n{} {what}: {}&#10;{} to {}</title></rect>"#,
                num(x0),
                num(band.0),
                num(x1 - x0),
                num(band.1),
                node.id,
                esc(&f.detail),
                secs(f.start),
                f.end.map_or("the end".into(), secs),
            );
        }
        for l in &node.leaderships {
            let x0 = scale.x(l.start);
            let x1 = scale.x(l.end.unwrap_or(run.end)).max(x0 + 1.5);
            let _ = write!(
                out,
                r#"<g class="leader"><title>n{} leader of term {}&#10;{} to {}</title><rect x="{}" y="{}" width="{}" height="{}" rx="2"/>"#,
                node.id,
                l.term,
                secs(l.start),
                l.end.map_or("the end".into(), secs),
                num(x0),
                num(mid - 6.0),
                num(x1 - x0),
                num(12.0),
            );
            let label = format!("term {}", l.term);
            let short = format!("t{}", l.term);
            let fit = if label.len() as f64 * CHAR_W < x1 - x0 - 4.0 {
                Some(label)
            } else if short.len() as f64 * CHAR_W < x1 - x0 - 2.0 {
                Some(short)
            } else {
                None
            };
            if let Some(text) = fit {
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{}">{}</text>"#,
                    num(x0 + 3.0),
                    num(mid + 3.5),
                    text
                );
            }
            out.push_str("</g>");
        }
        for &(t, term, last) in &node.restarts {
            let x = scale.x(t);
            let _ = write!(
                out,
                r#"<path class="restart" d="M{} {}l4.5 8h-9z"><title>n{} restarted at {} (term {}, last log index {})</title></path>"#,
                num(x),
                num(ly + 1.0),
                node.id,
                secs(t),
                term.map_or("?".into(), |t| t.to_string()),
                last.map_or("?".into(), |t| t.to_string()),
            );
        }
        out.push_str("</g>");
    }
    y + h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::{Fault, Leadership, NodeData, Op};
    use serde_json::Value;

    fn run() -> RunData {
        let mut run = RunData { end: 10_000_000_000, concurrency: Some(2), ..RunData::default() };
        for i in 0..20u64 {
            run.ops.push(Op {
                process: i % 3,
                f: "write".into(),
                key: "k1".into(),
                value: Value::from(i),
                result: Value::from(i),
                error: None,
                start: i * 400_000_000,
                end: Some(i * 400_000_000 + 10_000_000),
                outcome: if i == 7 { Outcome::Info } else { Outcome::Ok },
            });
        }
        run.faults.push(Fault {
            kind: FaultKind::Kill,
            name: "kill".into(),
            start: 2_000_000_000,
            end: Some(5_000_000_000),
            label: "kill n1".into(),
            detail: "kill n1 (target: one)".into(),
            nodes: vec![1],
            isolated: Vec::new(),
        });
        run.nodes.push(NodeData {
            id: 1,
            leaderships: vec![Leadership { term: 3, start: 0, end: Some(2_000_000_000) }],
            restarts: vec![(5_000_000_000, Some(3), Some(40))],
            last_applied: Some(99),
            ..NodeData::default()
        });
        run
    }

    #[test]
    fn draws_every_part_on_one_time_axis() {
        let svg = overview(&run(), Some(&Marker { time: 6_000_000_000, label: "x".into() }));
        assert!(svg.starts_with("<svg id=\"overview\""));
        // The kill: its lane label, a labelled bar, a shaded period and the node down.
        assert!(svg.contains(">kill n1</text>"));
        assert!(svg.contains(r#"class="shade kill""#));
        assert!(svg.contains(r#"<rect class="down""#));
        assert!(svg.contains("n1 leader of term 3"));
        assert!(svg.contains("n1 restarted at 5.00 s (term 3, last log index 40)"));
        assert!(svg.contains("n1: last applied index 99, 1 restart(s), leader of 1 term(s)"));
        // Two workers (processes 0 and 2 are worker 0).
        assert!(svg.contains(">worker 0</text>") && svg.contains(">worker 1</text>"));
        assert!(!svg.contains(">worker 2</text>"));
        // The info operation has its own bar with a hover text.
        assert!(svg.contains("process 1: k1 write 7 -&gt; info (no error given)"));
        assert!(svg.contains(r#"id="violation-mark""#));
    }
}
