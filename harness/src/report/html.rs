//! The pages: a run's `report.html` and a campaign's `index.html`. Everything is inline (CSS,
//! SVG, one small script), so a page opens from disk with no network.

use std::fmt::Write as _;

use checker::{CheckResult, Verdict};
use serde_json::Value;

use super::data::{sorted_stats, FaultKind, Outcome, RunData};
use super::faults;
use super::linearization;
use super::svg::{duration, esc, secs};
use super::timeline::overview;
use super::CampaignRun;

const STYLE: &str = r#"
:root{--ok:#2ca02c;--refused:#a9d18e;--fail:#d62728;--info:#ff7f0e;--open:#999;--kill:#3a3a3a;--crash:#e6550d;--disk-error:#bcbd22;--disk-damage:#7f7f00;--pause:#1f77b4;--partition:#9467bd;--net:#17becf;--clock:#e377c2;--other:#8c564b;--leader:#1f3b73}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
main{max-width:1320px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0 10px;display:flex;align-items:center;gap:14px;flex-wrap:wrap}
h2{font-size:17px;margin:0 0 10px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:14px 18px;margin:14px 0}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f3f4f6;padding:10px;border-radius:6px;overflow:auto;white-space:pre-wrap}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef1;vertical-align:top}
th{font-weight:600;color:#555;font-size:12.5px}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:3px 12px;border-radius:999px;color:#fff;font-weight:700;font-size:14px;letter-spacing:.04em;text-transform:uppercase}
.badge.valid{background:var(--ok)}.badge.invalid{background:var(--fail)}.badge.unknown{background:#e6a100}.badge.none{background:#777}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;color:#fff;font-weight:600;font-size:12px}
.pill.valid{background:var(--ok)}.pill.invalid{background:var(--fail)}.pill.unknown{background:#e6a100}.pill.none{background:#777}
.facts{display:flex;flex-wrap:wrap;gap:6px 22px;margin:4px 0 8px}
.facts b{font-weight:600}
.chip{display:inline-block;width:11px;height:11px;border-radius:2px;margin:0 4px 0 0;vertical-align:-1px}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:12.5px;color:#333;margin:2px 0 8px}
.note{color:#666;font-size:12.5px}
.fail-text{color:var(--fail)}
.failed-list{color:var(--fail);font-weight:600}
.problems{margin:4px 0 0 18px;padding:0;color:#a01010}
svg{width:100%;height:auto;display:block;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
svg text{font-size:10.5px;fill:#333}
svg .ptitle{font-size:12px;font-weight:600;fill:#222}
svg .psub{font-size:9.5px;fill:#777}
svg .lane{text-anchor:end;font-size:10.5px}
svg .lane.small{font-size:8.5px;fill:#666}
svg .ylab{text-anchor:end;font-size:9.5px;fill:#666}
svg .tick{text-anchor:middle;font-size:10px;fill:#555}
svg .frame{fill:none;stroke:#d0d4da}
svg .grid{stroke:#eceef1;fill:none}
svg .shade{opacity:.13}
svg .shade.kill{fill:var(--kill);opacity:.16}svg .shade.crash{fill:var(--crash);opacity:.16}svg .shade.disk-error{fill:var(--disk-error);opacity:.16}svg .shade.disk-damage{fill:var(--disk-damage);opacity:.16}svg .shade.pause{fill:var(--pause)}svg .shade.partition{fill:var(--partition)}svg .shade.net{fill:var(--net);opacity:.16}svg .shade.clock{fill:var(--clock)}svg .shade.other{fill:var(--other)}
svg .edge{stroke-width:1.2;opacity:.6}
svg .edge.kill{stroke:var(--kill)}svg .edge.crash{stroke:var(--crash)}svg .edge.disk-error{stroke:var(--disk-error)}svg .edge.disk-damage{stroke:var(--disk-damage)}svg .edge.pause{stroke:var(--pause)}svg .edge.partition{stroke:var(--partition)}svg .edge.net{stroke:var(--net)}svg .edge.clock{stroke:var(--clock)}svg .edge.other{stroke:var(--other)}
svg .fault rect{stroke:none}
svg .fault.kill rect{fill:var(--kill)}svg .fault.crash rect{fill:var(--crash)}svg .fault.disk-error rect{fill:var(--disk-error)}svg .fault.disk-damage rect{fill:var(--disk-damage)}svg .fault.pause rect{fill:var(--pause)}svg .fault.partition rect{fill:var(--partition)}svg .fault.net rect{fill:var(--net)}svg .fault.clock rect{fill:var(--clock)}svg .fault.other rect{fill:var(--other)}
svg .fault text{fill:#fff;font-weight:600;pointer-events:none}
svg .area{stroke:none}svg .area.ok{fill:var(--ok);opacity:.85}svg .area.refused{fill:var(--refused)}svg .area.info{fill:var(--info)}svg .area.fail{fill:var(--fail)}
svg .dots path,svg path.dots{fill:none;stroke-width:3;stroke-linecap:round;opacity:.5}
svg .dots.ok{stroke:var(--ok)}svg .dots.refused{stroke:var(--refused);opacity:.7}svg .dots.info{stroke:var(--info);opacity:.9}svg .dots.fail{stroke:var(--fail);opacity:.8}
svg .bars path{fill:none}
svg .bars.ok path{stroke:var(--ok)}svg .bars.refused path{stroke:var(--refused)}svg .bars.fail path{stroke:var(--fail)}svg .bars.info path{stroke:var(--info)}svg .bars.open path{stroke:var(--open)}
svg .alive{stroke:#c7ccd3;stroke-width:1.5}
svg .leader rect{fill:var(--leader)}svg .leader text{fill:#fff;font-size:9.5px;font-weight:600;pointer-events:none}
svg .down{fill:var(--kill);opacity:.55}
svg .paused{fill:var(--pause);opacity:.45}
svg .cut{fill:var(--partition);opacity:.8}
svg .isolated{fill:var(--partition);opacity:.5}
svg .restart{fill:#111}
svg .mark path{stroke:#222;stroke-dasharray:4 3;stroke-width:1.2}
svg .mark text{font-weight:600}
svg .violation path{stroke:var(--fail);stroke-width:2}
svg .violation text{fill:var(--fail);font-weight:700;font-size:11.5px}
svg #cursor path{stroke:#000;stroke-width:.8;opacity:.6}
svg #cursor text{font-size:10px;font-weight:600}
svg .lin-op rect{stroke-width:1.3}
svg .lin-op.step rect,.lin-op-sw.step{fill:#dce8f7;stroke:#4a78b5}
svg .lin-op.blocked rect,.lin-op-sw.blocked{fill:#fbdada;stroke:var(--fail);stroke-width:2}
svg .lin-op.pending rect,.lin-op-sw.pending{fill:#f1f1f1;stroke:#999;stroke-dasharray:4 2}
svg .lin-op.hot rect{stroke-width:2.6}
svg .lin-op.unknown rect{fill-opacity:.55}
svg .info-tick{stroke:var(--info);stroke-width:2}
svg .lin-op text{font-size:10px;pointer-events:none}
svg .lin-path{fill:none;stroke:#1f3b73;stroke-width:1.4}
svg .lin-path.broken{stroke:var(--fail);stroke-dasharray:3 3}
svg .lin-point{fill:#1f3b73}
svg .lin-num{text-anchor:middle;font-size:9px;font-weight:700;fill:#1f3b73}
svg .lin-x path{stroke:var(--fail);stroke-width:3}
.lin-state{margin:8px 0;padding:8px 10px;background:#f3f6fb;border-radius:6px;font:12.5px ui-monospace,Menlo,Consolas,monospace;min-height:2.4em}
.lin-table td{font-size:12.5px}
.lin-table .blocked-row td{background:#fdecec;color:#8a1010;font-weight:600}
.lin-table .pending-row td{color:#777}
.tiles{display:flex;flex-wrap:wrap;gap:4px;margin:8px 0 12px}
.tiles a{display:block;width:22px;height:22px;border-radius:3px}
.tiles a.valid,.row-valid td:first-child{background:var(--ok)}
.tiles a.invalid,.row-invalid td:first-child{background:var(--fail)}
.tiles a.unknown,.row-unknown td:first-child{background:#e6a100}
.tiles a.none,.row-none td:first-child{background:#777}
tr[class^=row-] td:first-child{width:6px;padding:0}
a{color:#1f5fae}
"#;

const SCRIPT: &str = r#"
(function(){
  var svg=document.getElementById('overview');
  if(svg){
    var cur=document.getElementById('cursor'),txt=cur.querySelector('text');
    var left=+svg.dataset.left,width=+svg.dataset.width,end=+svg.dataset.end;
    svg.addEventListener('mousemove',function(ev){
      var pt=svg.createSVGPoint();pt.x=ev.clientX;pt.y=ev.clientY;
      var p=pt.matrixTransform(svg.getScreenCTM().inverse());
      if(p.x<left||p.x>left+width){cur.setAttribute('visibility','hidden');return;}
      cur.setAttribute('visibility','visible');
      cur.setAttribute('transform','translate('+p.x+',0)');
      txt.textContent=((p.x-left)/width*end/1e9).toFixed(2)+' s';
    });
    svg.addEventListener('mouseleave',function(){cur.setAttribute('visibility','hidden');});
  }
  var box=document.getElementById('lin-state');
  var ops=document.querySelectorAll('.lin-op');
  for(var i=0;i<ops.length;i++){(function(g){
    g.addEventListener('mouseenter',function(){
      g.classList.add('hot');
      if(!box)return;
      var d=g.dataset,s=d.head+': '+d.op;
      if(d.before)s+='   state before: '+d.before;
      if(d.after)s+='   after: '+d.after;
      box.textContent=s;
    });
    g.addEventListener('mouseleave',function(){g.classList.remove('hot');});
  })(ops[i]);}
  document.body.dataset.ready='1';
})();
"#;

fn verdict_class(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Valid) => "valid",
        Some(Verdict::Invalid) => "invalid",
        Some(Verdict::Unknown) => "unknown",
        None => "none",
    }
}

fn verdict_word(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Valid) => "valid",
        Some(Verdict::Invalid) => "invalid",
        Some(Verdict::Unknown) => "unknown",
        None => "not checked",
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><main>{body}</main><script>{SCRIPT}</script></body></html>\n",
        esc(title)
    )
}

fn opt_str<'a>(test: &'a Value, key: &str) -> Option<&'a Value> {
    test.pointer(&format!("/options/{key}")).filter(|v| !v.is_null())
}

/// A run's report page.
pub fn run_page(run: &RunData) -> String {
    let mut b = String::new();
    let overall = run.overall();
    let _ = write!(
        b,
        r#"<h1>Run {}<span class="badge {}" id="verdict">{}</span></h1>"#,
        esc(&run.id),
        verdict_class(overall),
        verdict_word(overall)
    );
    summary(&mut b, run);
    checks(&mut b, run);

    let violation = run
        .verdict
        .as_ref()
        .and_then(|v| v.linearizability.as_ref())
        .and_then(|l| l.violation.as_ref());
    let marker = violation.and_then(|v| linearization::marker(run, v));
    b.push_str(r#"<section id="timeline"><h2>Faults, throughput, latency, operations and nodes over time</h2>"#);
    b.push_str(LEGEND);
    b.push_str(&overview(run, marker.as_ref()));
    b.push_str(r#"<p class="note">Shaded columns are fault periods (hover a fault for its details). Throughput counts completions per bucket; latency plots every completed operation at its invocation time. Hover to read the time.</p></section>"#);

    b.push_str(&faults::section(run));
    if let Some(v) = violation {
        b.push_str(r#"<section id="linearization"><h2>Linearizability violation: the partial linearization</h2>"#);
        b.push_str(&linearization::section(&run.event_times, v));
        b.push_str("</section>");
    }
    nodes_table(&mut b, run);
    files(&mut b, run);
    page(&format!("{} · {}", run.id, verdict_word(overall)), &b)
}

/// The page of any history checked by `gauntlet check --html`: the verdict, the operations
/// over time, and, when it is not linearizable, the partial linearization of the failing key.
pub fn history_page(
    name: &str,
    model: &str,
    events: &[checker::Event],
    result: &CheckResult,
) -> String {
    let run = RunData::from_history(events, Value::Null, None);
    let verdict = Some(result.verdict);
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<h1>{}<span class="badge {}" id="verdict">{}</span></h1>"#,
        esc(name),
        verdict_class(verdict),
        verdict_word(verdict)
    );
    let _ = write!(
        b,
        r#"<section id="summary"><p>Model <b>{}</b>: {} operations in {} partition{}, {} configurations visited. {}</p></section>"#,
        esc(model),
        result.operations,
        result.partitions,
        if result.partitions == 1 { "" } else { "s" },
        result.configurations,
        if result.verdict == Verdict::Valid { String::new() } else { esc(&result.reason) },
    );
    if events.iter().any(|e| e.time.is_none()) {
        b.push_str(r#"<p class="note">This history has no times: the order of its lines is its real-time order, drawn as 1 ms a line.</p>"#);
    }
    let marker = result.violation.as_ref().and_then(|v| linearization::marker(&run, v));
    b.push_str(r#"<section id="timeline"><h2>Operations over time</h2>"#);
    b.push_str(&overview(&run, marker.as_ref()));
    b.push_str("</section>");
    if let Some(v) = &result.violation {
        b.push_str(r#"<section id="linearization"><h2>Linearizability violation: the partial linearization</h2>"#);
        b.push_str(&linearization::section(&run.event_times, v));
        b.push_str("</section>");
    }
    page(&format!("{name} · {}", verdict_word(verdict)), &b)
}

const LEGEND: &str = r#"<div class="legend"><span><span class="chip" style="background:var(--ok)"></span>ok</span><span><span class="chip" style="background:var(--refused)"></span>fail: refused by a cas precondition (served)</span><span><span class="chip" style="background:var(--fail)"></span>fail: error</span><span><span class="chip" style="background:var(--info)"></span>info (indeterminate)</span><span><span class="chip" style="background:var(--open)"></span>never completed</span><span>|</span><span><span class="chip" style="background:var(--kill)"></span>kill</span><span><span class="chip" style="background:var(--crash)"></span>crash (power failure)</span><span><span class="chip" style="background:var(--disk-error)"></span>disk error</span><span><span class="chip" style="background:var(--disk-damage)"></span>disk damage</span><span><span class="chip" style="background:var(--pause)"></span>pause</span><span><span class="chip" style="background:var(--partition)"></span>partition</span><span><span class="chip" style="background:var(--net)"></span>net (loss, delay, duplication, reordering)</span><span><span class="chip" style="background:var(--clock)"></span>clock (slow, cut off)</span><span>|</span><span><span class="chip" style="background:var(--leader)"></span>leader (term)</span><span><span class="chip" style="background:var(--kill);opacity:.55"></span>down</span><span><span class="chip" style="background:var(--pause);opacity:.45"></span>paused</span><span><span class="chip" style="background:var(--partition);opacity:.5"></span>without quorum</span><span>▲ restart</span></div>"#;

fn summary(b: &mut String, run: &RunData) {
    let count = |o: Outcome| run.count(o);
    let (ok, fail, info, open) =
        (count(Outcome::Ok), count(Outcome::Fail), count(Outcome::Info), count(Outcome::Open));
    let refused = count(Outcome::Refused);
    let test = &run.test;
    b.push_str(r#"<section id="summary"><div class="facts">"#);
    let mut fact = |k: &str, v: String| {
        let _ = write!(b, "<span>{k} <b>{}</b></span>", esc(&v));
    };
    let seed = test
        .get("seed")
        .and_then(Value::as_u64)
        .or_else(|| run.verdict.as_ref().and_then(|v| v.seed));
    if let Some(s) = seed {
        fact("seed", s.to_string());
    }
    fact("duration", secs(run.end));
    let system = opt_str(test, "system").and_then(|v| v.as_str().map(str::to_string));
    if let Some(system) = system {
        let takes = <crate::system::System as clap::ValueEnum>::from_str(&system, false)
            .map(|s| s.supported_faults());
        fact("system", system);
        if let Ok(takes) = takes {
            fact("faults it takes", takes);
        }
    }
    for (key, label) in [
        ("workload", "workload"),
        ("nodes", "nodes"),
        ("keys", "keys"),
        ("concurrency", "workers"),
        ("nemesis", "nemesis"),
        ("bug", "bug"),
    ] {
        if let Some(v) = opt_str(test, key) {
            fact(label, v.as_str().map_or_else(|| v.to_string(), str::to_string));
        }
    }
    b.push_str("</div>");
    let _ = write!(
        b,
        r#"<div class="facts"><span><b>{}</b> operations:</span><span><span class="chip" style="background:var(--ok)"></span>{ok} ok</span><span><span class="chip" style="background:var(--refused)"></span>{refused} refused (cas precondition)</span><span><span class="chip" style="background:var(--fail)"></span>{fail} failed</span><span><span class="chip" style="background:var(--info)"></span>{info} info</span>"#,
        run.ops.len()
    );
    if open > 0 {
        let _ = write!(
            b,
            r#"<span><span class="chip" style="background:var(--open)"></span>{open} never completed</span>"#
        );
    }
    let kinds: Vec<String> = FaultKind::ALL
        .iter()
        .filter_map(|k| {
            let n = run.faults.iter().filter(|f| f.kind == *k).count();
            (n > 0).then(|| format!("{n} {}", k.name()))
        })
        .collect();
    let kinds = if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) };
    let _ = write!(
        b,
        r##"<span><a href="#faults"><b>{}</b> faults</a>{}</span></div>"##,
        run.faults.len(),
        esc(&kinds)
    );
    if let Some(replay) = test.get("replay").and_then(Value::as_str) {
        let _ = write!(b, r#"<div>replay: <code id="replay">{}</code></div>"#, esc(replay));
    }
    b.push_str("</section>");
}

fn pill(valid: Option<bool>) -> &'static str {
    match valid {
        Some(true) => r#"<span class="pill valid">valid</span>"#,
        Some(false) => r#"<span class="pill invalid">invalid</span>"#,
        None => r#"<span class="pill unknown">unknown</span>"#,
    }
}

fn checks(b: &mut String, run: &RunData) {
    b.push_str(r#"<section id="checks"><h2>Checks</h2>"#);
    let Some(v) = &run.verdict else {
        let why = match &run.verdict_error {
            Some(e) => esc(e),
            None => "This run has no verdict.json: it was interrupted or not checked yet; <code>gauntlet check</code> checks its history.".into(),
        };
        let _ = write!(b, r#"<p class="note">{why}</p></section>"#);
        return;
    };
    if !v.failed_checks.is_empty() {
        let _ = write!(
            b,
            r#"<p>Failed: <span class="failed-list">{}</span></p>"#,
            esc(&v.failed_checks.join(", "))
        );
    }
    b.push_str(
        "<table><thead><tr><th>check</th><th>verdict</th><th>details</th></tr></thead><tbody>",
    );
    if let Some(l) = &v.linearizability {
        let valid = match l.verdict {
            Verdict::Valid => Some(true),
            Verdict::Invalid => Some(false),
            Verdict::Unknown => None,
        };
        let mut detail = format!(
            "{} ({} operations searched in {} partitions, {} configurations)",
            esc(&l.reason),
            l.operations,
            l.partitions,
            l.configurations
        );
        if l.violation.is_some() {
            detail.push_str(r##" — <a href="#linearization">see the partial linearization</a>"##);
        }
        let _ = write!(
            b,
            r#"<tr id="check-linearizability"><td>linearizability</td><td>{}</td><td>{detail}</td></tr>"#,
            pill(valid)
        );
    }
    for what in &v.unavailable_checks {
        let (name, why) = what.split_once(' ').unwrap_or((what, ""));
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td><span class="pill none">not available</span></td><td>{}</td></tr>"#,
            esc(name),
            esc(why)
        );
    }
    for c in &v.safety {
        let mut detail = if c.valid {
            "held".to_string()
        } else {
            format!("{} violation(s)", c.violation_count)
        };
        if !c.violations.is_empty() {
            detail.push_str(r#"<ul class="problems">"#);
            for what in &c.violations {
                let _ = write!(detail, "<li>{}</li>", esc(what));
            }
            detail.push_str("</ul>");
        }
        let _ = write!(
            b,
            r#"<tr id="check-{n}"><td>{n}</td><td>{}</td><td>{detail}</td></tr>"#,
            pill(Some(c.valid)),
            n = esc(&c.name),
        );
    }
    if let Some(l) = &v.liveness {
        let detail = match l.recovered_after_s {
            Some(s) => format!(
                "served {} after healing; {} of {} final reads succeeded",
                duration((s * 1e9) as u64),
                l.final_reads_ok,
                l.keys
            ),
            None => format!(
                "never served after healing; {} of {} final reads succeeded",
                l.final_reads_ok, l.keys
            ),
        };
        let _ = write!(
            b,
            r#"<tr id="check-liveness"><td>liveness</td><td>{}</td><td>{detail}</td></tr>"#,
            pill(Some(l.valid))
        );
    }
    let crashes = if v.node_crashes.is_empty() {
        "no node exited by itself".to_string()
    } else {
        let mut s = String::from(r#"<ul class="problems">"#);
        for c in &v.node_crashes {
            let _ = write!(s, "<li>{}</li>", esc(c));
        }
        s + "</ul>"
    };
    let _ = write!(
        b,
        r#"<tr id="check-node-crashes"><td>node crashes</td><td>{}</td><td>{crashes}</td></tr>"#,
        pill(Some(v.node_crashes.is_empty()))
    );
    b.push_str("</tbody></table>");
    let stats = sorted_stats(&v.stats);
    if !stats.is_empty() {
        b.push_str(r#"<details><summary>Statistics</summary><table>"#);
        for (k, val) in stats {
            let _ = write!(b, "<tr><td>{}</td><td><code>{}</code></td></tr>", esc(&k), esc(&val));
        }
        b.push_str("</table></details>");
    }
    b.push_str("</section>");
}

fn nodes_table(b: &mut String, run: &RunData) {
    b.push_str(r#"<section id="nodes"><h2>Nodes</h2>"#);
    if run.nodes.is_empty() {
        b.push_str(r#"<p class="note">No node records (nodes/n&lt;i&gt;/).</p></section>"#);
        return;
    }
    b.push_str("<table><thead><tr><th>node</th><th>leader of terms</th><th>restarts</th><th>last applied index (term)</th><th>entries applied</th><th>highest term seen</th><th>log</th></tr></thead><tbody>");
    for n in &run.nodes {
        let terms: Vec<String> = n.leaderships.iter().map(|l| l.term.to_string()).collect();
        let terms = if terms.is_empty() { "—".to_string() } else { terms.join(", ") };
        let restarts: Vec<String> = n.restarts.iter().map(|r| secs(r.0)).collect();
        let restarts = if restarts.is_empty() {
            "0".to_string()
        } else {
            format!("{} (at {})", restarts.len(), restarts.join(", "))
        };
        let applied = match (n.last_applied, n.last_applied_term) {
            (Some(i), Some(t)) => format!("{i} ({t})"),
            (Some(i), None) => i.to_string(),
            _ => "nothing".into(),
        };
        let error = n
            .error
            .as_ref()
            .map(|e| format!(r#"<div class="fail-text">{}</div>"#, esc(e)))
            .unwrap_or_default();
        let _ = write!(
            b,
            r#"<tr id="node-{id}"><td>n{id}{error}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href="nodes/n{id}/node.log">node.log</a></td></tr>"#,
            esc(&terms),
            esc(&restarts),
            applied,
            n.applied_entries,
            n.last_term.map_or("—".into(), |t| t.to_string()),
            id = n.id,
        );
    }
    b.push_str("</tbody></table></section>");
}

fn files(b: &mut String, run: &RunData) {
    b.push_str(r#"<section id="files"><h2>Files</h2><p>"#);
    for f in ["test.json", "history.jsonl", "verdict.json"] {
        if run.dir.join(f).is_file() {
            let _ = write!(b, r#"<a href="{f}">{f}</a> · "#);
        }
    }
    b.push_str(r#"nodes/n&lt;i&gt;/ (node.log, events.jsonl, applied.jsonl)</p></section>"#);
}

/// The word for a campaign run's outcome: its verdict, or why it has none.
fn run_word(r: &CampaignRun) -> String {
    match r.verdict {
        Some(v) => verdict_word(Some(v)).to_string(),
        None if r.outcome.is_empty() => "no verdict".to_string(),
        None => r.outcome.clone(),
    }
}

/// A campaign's index page: a tile per run coloured by verdict, then a table; both link to
/// the runs' reports (each run's link to its report, relative to the index; `None` for a run
/// whose directory was not kept).
pub fn campaign_page(title: &str, runs: &[(CampaignRun, Option<String>)]) -> String {
    let mut b = String::new();
    let count = |v: Option<Verdict>| runs.iter().filter(|(r, _)| r.verdict == v).count();
    // As the campaign's exit code: invalid, then runs without a verdict, unknown, valid.
    let (class, word) = if count(Some(Verdict::Invalid)) > 0 {
        ("invalid", "invalid")
    } else if count(None) > 0 {
        ("none", "runs failed")
    } else if count(Some(Verdict::Unknown)) > 0 {
        ("unknown", "unknown")
    } else if runs.is_empty() {
        ("none", "no runs")
    } else {
        ("valid", "valid")
    };
    let _ = write!(
        b,
        r#"<h1>{}<span class="badge {class}" id="verdict">{word}</span></h1>"#,
        esc(title),
    );
    let _ = write!(
        b,
        r#"<section id="summary"><div class="facts"><span><b>{}</b> runs</span><span><span class="chip" style="background:var(--ok)"></span>{} valid</span><span><span class="chip" style="background:var(--fail)"></span>{} invalid</span><span><span class="chip" style="background:#e6a100"></span>{} unknown</span><span><span class="chip" style="background:#777"></span>{} without a verdict</span></div><div class="tiles" id="tiles">"#,
        runs.len(),
        count(Some(Verdict::Valid)),
        count(Some(Verdict::Invalid)),
        count(Some(Verdict::Unknown)),
        count(None)
    );
    for (r, href) in runs {
        let href = href.as_deref().map_or(String::new(), |h| format!(r#" href="{}""#, esc(h)));
        let _ = write!(
            b,
            r#"<a class="{}"{href} title="{} · {}"></a>"#,
            verdict_class(r.verdict),
            esc(&r.name),
            esc(&run_word(r))
        );
    }
    b.push_str(r#"</div></section><section><table id="runs"><thead><tr><th></th><th>run</th><th>verdict</th><th>failed checks</th><th>seed</th><th>nemesis</th><th>workload</th><th>bug</th><th>operations</th><th>replay</th></tr></thead><tbody>"#);
    for (r, href) in runs {
        let name = match href {
            Some(h) => format!(r#"<a href="{}">{}</a>"#, esc(h), esc(&r.name)),
            None => esc(&r.name),
        };
        let _ = write!(
            b,
            r#"<tr class="row-{c}"><td></td><td>{name}</td><td><span class="pill {c}">{w}</span></td><td>{failed}</td><td>{seed}</td><td>{nem}</td><td>{wl}</td><td>{bug}</td><td>{ops}</td><td><code>{replay}</code></td></tr>"#,
            c = verdict_class(r.verdict),
            w = esc(&run_word(r)),
            failed = esc(&r.failed_checks.join(", ")),
            seed = r.seed.map_or(String::new(), |s| s.to_string()),
            nem = esc(r.nemesis.as_deref().unwrap_or("")),
            wl = esc(r.workload.as_deref().unwrap_or("")),
            bug = esc(r.bug.as_deref().unwrap_or("")),
            ops = r.operations.map_or(String::new(), |o| o.to_string()),
            replay = esc(r.replay.as_deref().unwrap_or("")),
        );
    }
    b.push_str("</tbody></table></section>");
    page(title, &b)
}
