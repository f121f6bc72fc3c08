//! What each fault did, in numbers: the rate of served operations (`ok`, or refused by the
//! state machine, like a cas whose precondition failed) during the fault against the
//! fault-free rate, errors, latency of the operations invoked during it, and the longest
//! stretch without any served operation (unavailability) that the fault overlaps.

use std::fmt::Write as _;

use super::data::{Outcome, RunData, CUT_LINKS};
use super::svg::{duration, esc, secs};

/// The measured effect of one fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    /// Served operations (`ok`, or refused by the state machine) per second during the fault.
    pub ok_rate: f64,
    /// `fail` and `info` completions during the fault.
    pub errors: usize,
    /// Median latency of the operations invoked during the fault that completed.
    pub p50: Option<u64>,
    /// Their highest latency.
    pub max: Option<u64>,
    /// The longest time without a served operation that overlaps the fault, ns.
    pub longest_without_ok: u64,
}

/// Served operations per second outside every fault period (before the end).
pub fn baseline_ok_rate(run: &RunData) -> Option<f64> {
    let mut periods: Vec<(u64, u64)> =
        run.faults.iter().map(|f| (f.start, f.end.unwrap_or(run.end))).collect();
    periods.sort_unstable();
    let mut covered = 0u64;
    let mut reach = 0u64;
    for (s, e) in periods {
        let s = s.max(reach);
        if e > s {
            covered += e - s;
            reach = e;
        }
    }
    let free = run.end.saturating_sub(covered);
    if free == 0 {
        return None;
    }
    let in_fault = |t: u64| run.faults.iter().any(|f| t >= f.start && t < f.end.unwrap_or(run.end));
    let ok =
        run.ops.iter().filter(|o| served(o.outcome) && o.end.is_some_and(|t| !in_fault(t))).count();
    Some(ok as f64 / (free as f64 / 1e9))
}

/// Whether the cluster served the operation: it took effect, or the state machine refused it.
fn served(o: Outcome) -> bool {
    matches!(o, Outcome::Ok | Outcome::Refused)
}

/// The effect of every fault of the run, in the order of `run.faults`.
pub fn effects(run: &RunData) -> Vec<Effect> {
    let mut oks: Vec<u64> =
        run.ops.iter().filter(|o| served(o.outcome)).filter_map(|o| o.end).collect();
    oks.sort_unstable();
    run.faults
        .iter()
        .map(|f| {
            let (s, e) = (f.start, f.end.unwrap_or(run.end));
            let len = e.saturating_sub(s).max(1);
            let during = |t: u64| t >= s && t < e;
            let ok = oks.iter().filter(|&&t| during(t)).count();
            let errors = run
                .ops
                .iter()
                .filter(|o| matches!(o.outcome, Outcome::Fail | Outcome::Info))
                .filter(|o| o.end.is_some_and(during))
                .count();
            let mut lat: Vec<u64> =
                run.ops.iter().filter(|o| during(o.start)).filter_map(|o| o.latency()).collect();
            lat.sort_unstable();
            // Gaps between successive served completions that overlap [s, e).
            let first = oks.partition_point(|&t| t <= s);
            let mut prev = if first == 0 { 0 } else { oks[first - 1] };
            let mut longest = 0;
            for &t in &oks[first..] {
                longest = longest.max(t - prev);
                prev = t;
                if t >= e {
                    break;
                }
            }
            if prev < e {
                longest = longest.max(run.end - prev);
            }
            Effect {
                ok_rate: ok as f64 / (len as f64 / 1e9),
                errors,
                p50: lat.get(lat.len() / 2).copied(),
                max: lat.last().copied(),
                longest_without_ok: longest,
            }
        })
        .collect()
}

/// The faults table.
pub fn section(run: &RunData) -> String {
    let mut out = String::from(r#"<section id="faults"><h2>Faults and what they did</h2>"#);
    if run.faults.is_empty() {
        out.push_str(r#"<p class="note">No faults were injected in this run.</p></section>"#);
        return out;
    }
    let baseline = baseline_ok_rate(run);
    let _ = write!(
        out,
        r#"<p class="note">Without faults, the cluster served {} operations per second (ok, or refused by a cas precondition). Errors are fail (not refusals) and info completions during the fault; latency is that of the operations invoked during it; the longest stretch without a served operation is any that overlaps the fault.</p>"#,
        baseline.map_or("(no fault-free time)".to_string(), |b| format!("{b:.0}"))
    );
    out.push_str(r#"<table><thead><tr><th>#</th><th>fault</th><th>from</th><th>to</th><th>for</th><th>served/s</th><th>errors</th><th>latency p50 / max</th><th>longest unserved</th></tr></thead><tbody>"#);
    for (i, (f, e)) in run.faults.iter().zip(effects(run)).enumerate() {
        let drop = match baseline {
            Some(b) if b > 0.0 && e.ok_rate < 0.5 * b => {
                " style=\"color:var(--fail);font-weight:600\""
            }
            _ => "",
        };
        let _ = write!(
            out,
            r#"<tr id="fault-{i}"><td>{n}</td><td><span class="chip" style="background:var(--{k})"></span>{d}</td><td class="num">{from}</td><td class="num">{to}</td><td class="num">{len}</td><td class="num"{drop}>{ok:.0}</td><td class="num">{err}</td><td class="num">{p50} / {max}</td><td class="num">{gap}</td></tr>"#,
            n = i + 1,
            k = f.kind.name(),
            d = esc(f.detail.split(CUT_LINKS).next().unwrap_or_default()),
            from = secs(f.start),
            to = f.end.map_or("the end".into(), secs),
            len = duration(f.end.unwrap_or(run.end).saturating_sub(f.start)),
            ok = e.ok_rate,
            err = e.errors,
            p50 = e.p50.map_or("—".into(), duration),
            max = e.max.map_or("—".into(), duration),
            gap = duration(e.longest_without_ok),
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::{Fault, FaultKind, Op};

    fn op(start: u64, end: u64, outcome: Outcome) -> Op {
        Op::completed("write", start, end, outcome)
    }

    #[test]
    fn a_fault_that_stops_service_shows_it() {
        const S: u64 = 1_000_000_000;
        let mut run = RunData { end: 10 * S, ..RunData::default() };
        // One ok per 100 ms, except from 4 s to 7 s; one fail at 5 s taking 1 s.
        for k in 0..100u64 {
            let t = k * S / 10;
            if !(4 * S..7 * S).contains(&t) {
                run.ops.push(op(t, t + S / 100, Outcome::Ok));
            }
        }
        run.ops.push(op(5 * S, 6 * S, Outcome::Fail));
        run.faults.push(Fault {
            kind: FaultKind::Kill,
            name: "kill".into(),
            start: 4 * S,
            end: Some(6 * S),
            label: String::new(),
            detail: String::new(),
            nodes: vec![1],
            isolated: Vec::new(),
        });
        let e = &effects(&run)[0];
        assert_eq!(e.ok_rate, 0.0, "no operation completes between 4 s and 6 s");
        assert_eq!(e.errors, 0, "the fail completes at 6 s, when the fault is over");
        assert_eq!(e.max, Some(S));
        assert_eq!(e.longest_without_ok, 3_100_000_000, "from 3.91 s to 7.01 s");
        let b = baseline_ok_rate(&run).unwrap();
        assert!((b - 70.0 / 8.0).abs() < 1e-9, "{b}");
        assert!(section(&run).contains(r#"<tr id="fault-0">"#));
    }
}
