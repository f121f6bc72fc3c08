//! The partial linearization of a violation, drawn as Porcupine draws it: the operations of
//! the failing key as bars per process on an ordinal time axis (every invocation and
//! completion a step, so that short and long operations stay readable), the longest
//! linearizable prefix found numbered in its linearization order and joined by a line through
//! its linearization points, the operation that cannot follow in red, and the operations that
//! were still pending. Hovering an operation shows the model state before and after it.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use checker::{OpSummary, Violation};

use super::data::RunData;
use super::svg::{esc, num, secs};
use super::timeline::Marker;

/// How many steps of the prefix, the last ones, are drawn.
pub const SHOWN_STEPS: usize = 40;
const WIDTH: f64 = 1240.0;
const LEFT: f64 = 96.0;
const RIGHT: f64 = 14.0;
/// Lane heights: roomy for a few processes, tighter for many.
const LANE: f64 = 34.0;
const LANE_TIGHT: f64 = 24.0;
/// How many steps of the prefix the table lists (the drawing has more, on hover).
const TABLE_STEPS: usize = 10;
const TOP: f64 = 30.0;

/// The role of an operation in the drawing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// Step `n` (1-based) of the linearizable prefix.
    Step(usize),
    /// The operation that cannot follow.
    Blocked,
    /// Pending when the search got stuck.
    Pending,
}

struct Drawn<'a> {
    op: &'a OpSummary,
    role: Role,
    call: u64,
    /// The return, for operations with a known outcome; `None` for indeterminate ones, which
    /// may take effect any time after their call.
    ret: Option<u64>,
    /// When an indeterminate operation's `info` completion came.
    info_at: Option<u64>,
    before: String,
    after: String,
}

/// The time (ns since the start) of a history event, or its line (as ms) for untimed runs.
fn time_of(times: &HashMap<u64, u64>, index: u64) -> Option<u64> {
    times.get(&index).copied()
}

/// Where the overview marks the violation: when the blocked operation returned.
pub fn marker(run: &RunData, v: &Violation) -> Option<Marker> {
    let op = &v.operation;
    let t = op
        .complete_index
        .and_then(|i| time_of(&run.event_times, i))
        .or_else(|| time_of(&run.event_times, op.invoke_index))?;
    let key =
        v.key.as_deref().map(|k| format!(" (key {})", k.trim_matches('"'))).unwrap_or_default();
    Some(Marker { time: t, label: format!("✗ not linearizable{key}") })
}

/// The section's HTML: the drawing, the state read-out, the table of the last steps, the
/// explanation in words. `times` gives each history event's time by its index (see
/// [`super::data::event_times`]).
pub fn section(times: &HashMap<u64, u64>, v: &Violation) -> String {
    let skip = v.prefix.len().saturating_sub(SHOWN_STEPS);
    let mut drawn: Vec<Drawn<'_>> = Vec::new();
    for (k, step) in v.prefix.iter().enumerate().skip(skip) {
        let before =
            if k == 0 { v.initial_state.clone() } else { v.prefix[k - 1].state_after.clone() };
        drawn.push(Drawn {
            op: &step.operation,
            role: Role::Step(k + 1),
            call: 0,
            ret: None,
            info_at: None,
            before,
            after: step.state_after.clone(),
        });
    }
    drawn.push(Drawn {
        op: &v.operation,
        role: Role::Blocked,
        call: 0,
        ret: None,
        info_at: None,
        before: v.state.clone(),
        after: format!("none: {}", v.reason),
    });
    for p in &v.pending {
        drawn.push(Drawn {
            op: p,
            role: Role::Pending,
            call: 0,
            ret: None,
            info_at: None,
            before: String::new(),
            after: String::new(),
        });
    }
    // Times: from the history when it has them, else the event indexes (still in order).
    for d in &mut drawn {
        d.call = time_of(times, d.op.invoke_index).unwrap_or(d.op.invoke_index);
        let done = d.op.complete_index.map(|i| time_of(times, i).unwrap_or(i));
        if d.op.result.is_some() {
            d.ret = done;
        } else {
            d.info_at = done;
        }
    }

    let key = v.key.as_deref().map(|k| k.trim_matches('"').to_string());
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<p>Key <b>{key}</b>, model <b>{model}</b>: {n} operations in this key. The search found a linearizable prefix of <b>{len}</b> operations from the initial state <code>{init}</code>; then <b class="fail-text">{op}</b> by process {p} must take effect before it returned, but in state <code>{state}</code> it cannot: {reason}.</p>"#,
        key = esc(key.as_deref().unwrap_or("(single register)")),
        model = esc(&v.model),
        n = v.partition_operations,
        len = v.prefix.len(),
        init = esc(&v.initial_state),
        op = esc(&v.operation.description),
        p = v.operation.process,
        state = esc(&v.state),
        reason = esc(&v.reason),
    );
    if skip > 0 {
        let _ = write!(
            html,
            r#"<p class="note">The drawing shows the last {SHOWN_STEPS} steps of the prefix; {skip} earlier ones are left out.</p>"#
        );
    }
    html.push_str(&drawing(&drawn));
    html.push_str(
        r#"<div id="lin-state" class="lin-state">Hover an operation to see the model state before and after it.</div>"#,
    );
    html.push_str(&table(&drawn, v));
    let _ = write!(
        html,
        r#"<details><summary>The explanation in words</summary><pre>{}</pre></details>"#,
        esc(&v.render())
    );
    html
}

fn drawing(drawn: &[Drawn<'_>]) -> String {
    // The ordinal axis: every distinct call and return time is one position.
    let mut times: BTreeSet<u64> = BTreeSet::new();
    for d in drawn {
        times.insert(d.call);
        times.extend(d.ret);
        times.extend(d.info_at);
    }
    let times: Vec<u64> = times.into_iter().collect();
    let pos = |t: u64| times.binary_search(&t).unwrap_or_else(|i| i) as f64;
    // Operations with an unknown outcome run off the right edge.
    let open_end = times.len() as f64;
    let span = open_end + 1.0;
    let pw = WIDTH - LEFT - RIGHT;
    let x = |p: f64| LEFT + (p + 0.5) / span * pw;

    let processes: BTreeSet<u64> = drawn.iter().map(|d| d.op.process).collect();
    let processes: Vec<u64> = processes.into_iter().collect();
    let lane = |p: u64| processes.binary_search(&p).unwrap_or(0) as f64;
    let lane_h = if processes.len() > 8 { LANE_TIGHT } else { LANE };
    let height = TOP + lane_h * processes.len() as f64 + 30.0;

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="linearization" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" aria-label="partial linearization">"#,
        num(WIDTH),
        num(height)
    );
    let t0 = times.first().copied().unwrap_or(0);
    let t1 = times.last().copied().unwrap_or(0);
    let _ = write!(
        out,
        r#"<text class="psub" x="{}" y="16">real time from {} to {} (each invocation and completion is one step to the right)</text>"#,
        num(LEFT),
        secs(t0),
        secs(t1)
    );
    for (i, p) in processes.iter().enumerate() {
        let ly = TOP + i as f64 * lane_h;
        let _ = write!(
            out,
            r#"<text class="lane" x="{}" y="{}">process {p}</text><path class="grid" d="M{} {}H{}"/>"#,
            num(LEFT - 6.0),
            num(ly + lane_h / 2.0 + 4.0),
            num(LEFT),
            num(ly + lane_h),
            num(WIDTH - RIGHT)
        );
    }

    // The linearization points: each step as early as its call and the previous point allow.
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut last = -1.0f64;
    for d in drawn {
        let Role::Step(_) = d.role else { continue };
        let c = pos(d.call);
        let r = d.ret.map_or(open_end, pos);
        let p = (last + 0.25).max(c + 0.35).min(r - 0.15);
        last = p;
        points.push((x(p), TOP + lane(d.op.process) * lane_h + lane_h / 2.0));
    }

    for d in drawn {
        let ly = TOP + lane(d.op.process) * lane_h;
        let x0 = x(pos(d.call));
        let x1 = d.ret.map_or(x(open_end), |r| x(pos(r)));
        let (class, head) = match d.role {
            Role::Step(n) => ("step", format!("step {n}")),
            Role::Blocked => ("blocked", "cannot follow".to_string()),
            Role::Pending => ("pending", "pending".to_string()),
        };
        let lines = match (d.op.complete_line, d.ret) {
            (Some(c), Some(_)) => format!("lines {}-{}", d.op.invoke_line, c),
            (Some(c), None) => format!(
                "lines {}-{}; outcome unknown, so it may take effect any time after its call",
                d.op.invoke_line, c
            ),
            (None, _) => format!("line {}, never completed", d.op.invoke_line),
        };
        let unknown = if d.ret.is_none() { " unknown" } else { "" };
        let states = match d.role {
            Role::Step(_) => {
                format!("&#10;state before: {}&#10;state after: {}", esc(&d.before), esc(&d.after))
            }
            Role::Blocked => {
                format!("&#10;state: {}&#10;refused: {}", esc(&d.before), esc(&d.after))
            }
            Role::Pending => String::new(),
        };
        let _ = write!(
            out,
            r#"<g class="lin-op {class}{unknown}" data-head="{h}" data-op="{desc}" data-before="{b}" data-after="{a}"><title>{h}: process {p} {desc} ({lines}){states}</title><rect x="{x}" y="{y}" width="{w}" height="{bh}" rx="3"/>"#,
            h = esc(&head),
            desc = esc(&d.op.description),
            b = esc(&d.before),
            a = esc(&d.after),
            p = d.op.process,
            x = num(x0),
            y = num(ly + 7.0),
            w = num((x1 - x0).max(3.0)),
            bh = num(lane_h - 14.0),
        );
        let room = x1 - x0 - 6.0;
        let text = &d.op.description;
        if room > 18.0 {
            let max_chars = (room / 6.0) as usize;
            let shown = if text.chars().count() > max_chars {
                let t: String = text.chars().take(max_chars.saturating_sub(1)).collect();
                format!("{t}…")
            } else {
                text.clone()
            };
            let _ = write!(
                out,
                r#"<text x="{}" y="{}">{}</text>"#,
                num(x0 + 4.0),
                num(ly + lane_h / 2.0 + 4.0),
                esc(&shown)
            );
        }
        if let Some(t) = d.info_at {
            // Where the client gave up on it (its `info` completion).
            let _ = write!(
                out,
                r#"<path class="info-tick" d="M{} {}V{}"/>"#,
                num(x(pos(t))),
                num(ly + 4.0),
                num(ly + lane_h - 4.0)
            );
        }
        out.push_str("</g>");
    }

    if !points.is_empty() {
        let mut d = String::new();
        for (i, (px, py)) in points.iter().enumerate() {
            let _ = write!(d, "{}{} {}", if i == 0 { "M" } else { "L" }, num(*px), num(*py));
        }
        let _ = write!(out, r#"<path class="lin-path" d="{d}"/>"#);
        let first = drawn.iter().find_map(|d| match d.role {
            Role::Step(n) => Some(n),
            _ => None,
        });
        for (i, (px, py)) in points.iter().enumerate() {
            let n = first.unwrap_or(1) + i;
            let _ = write!(
                out,
                r#"<circle class="lin-point" cx="{}" cy="{}" r="3.5"/><text class="lin-num" x="{}" y="{}">{n}</text>"#,
                num(*px),
                num(*py),
                num(*px),
                num(*py - 12.0)
            );
        }
    }
    // The blocked operation had to take effect before it returned: a cross just after its end.
    if let Some(b) = drawn.iter().find(|d| d.role == Role::Blocked) {
        let bx = (b.ret.map_or(x(open_end), |r| x(pos(r))) + 9.0).min(WIDTH - RIGHT - 5.0);
        let by = TOP + lane(b.op.process) * lane_h + lane_h / 2.0;
        let _ = write!(
            out,
            r#"<g class="lin-x"><path d="M{} {}l10 10M{} {}l-10 10"/></g>"#,
            num(bx - 5.0),
            num(by - 5.0),
            num(bx + 5.0),
            num(by - 5.0)
        );
        if let Some(&(px, py)) = points.last() {
            let _ = write!(
                out,
                r#"<path class="lin-path broken" d="M{} {}L{} {}"/>"#,
                num(px),
                num(py),
                num(bx),
                num(by)
            );
        }
    }
    let ly = height - 10.0;
    let _ = write!(
        out,
        r#"<g class="legend-svg"><rect class="lin-op-sw step" x="{}" y="{}" width="14" height="10"/><text x="{}" y="{}">linearized (numbered in order)</text><rect class="lin-op-sw blocked" x="{}" y="{}" width="14" height="10"/><text x="{}" y="{}">cannot follow</text><rect class="lin-op-sw pending" x="{}" y="{}" width="14" height="10"/><text x="{}" y="{}">pending (every order tried)</text></g>"#,
        num(LEFT),
        num(ly - 9.0),
        num(LEFT + 18.0),
        num(ly),
        num(LEFT + 230.0),
        num(ly - 9.0),
        num(LEFT + 248.0),
        num(ly),
        num(LEFT + 360.0),
        num(ly - 9.0),
        num(LEFT + 378.0),
        num(ly),
    );
    out.push_str("</svg>");
    out
}

fn table(drawn: &[Drawn<'_>], v: &Violation) -> String {
    let mut out = String::from(
        r#"<table class="lin-table"><thead><tr><th>step</th><th>process</th><th>operation</th><th>history lines</th><th>state before</th><th>state after</th></tr></thead><tbody>"#,
    );
    let steps = drawn.iter().filter(|d| matches!(d.role, Role::Step(_))).count();
    let hidden = steps.saturating_sub(TABLE_STEPS);
    if hidden > 0 {
        let _ = write!(
            out,
            r#"<tr class="pending-row"><td colspan="6">… {hidden} earlier steps of the drawing (hover them there)</td></tr>"#
        );
    }
    for d in drawn.iter().skip(hidden) {
        let lines = match d.op.complete_line {
            Some(c) => format!("{}-{}", d.op.invoke_line, c),
            None => format!("{}-", d.op.invoke_line),
        };
        let (class, step, after) = match d.role {
            Role::Step(n) => ("", n.to_string(), esc(&d.after)),
            Role::Blocked => {
                ("blocked-row", "✗".to_string(), format!("refused: {}", esc(&v.reason)))
            }
            Role::Pending => ("pending-row", "pending".to_string(), String::new()),
        };
        let _ = write!(
            out,
            r#"<tr class="{class}"><td>{step}</td><td>{}</td><td>{}</td><td>{lines}</td><td><code>{}</code></td><td>{after}</td></tr>"#,
            d.op.process,
            esc(&d.op.description),
            esc(&d.before),
        );
    }
    out.push_str("</tbody></table>");
    out
}
