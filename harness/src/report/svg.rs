//! Small helpers for writing SVG and HTML by hand: escaping, number formatting, the time
//! scale shared by the panels of the overview, and tick steps.

use std::fmt::Write as _;

/// Escapes text for HTML and SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate with at most one decimal, without a trailing `.0`.
pub fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Seconds from nanoseconds, for labels: `12.35 s`.
pub fn secs(ns: u64) -> String {
    format!("{:.2} s", ns as f64 / 1e9)
}

/// A duration in nanoseconds for people: `850 us`, `12.3 ms`, `1.52 s`.
pub fn duration(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e6 {
        format!("{:.0} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A step of 1, 2 or 5 times a power of ten that cuts `range` into about `target` pieces.
pub fn nice_step(range: f64, target: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / target.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let unit = raw / mag;
    let m = if unit <= 1.0 {
        1.0
    } else if unit <= 2.0 {
        2.0
    } else if unit <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// The horizontal time scale that every panel of the overview shares.
#[derive(Clone, Copy, Debug)]
pub struct TimeScale {
    /// The x of time 0.
    pub left: f64,
    /// The width of the plotting area.
    pub width: f64,
    /// The time at the right edge, nanoseconds.
    pub end: u64,
}

impl TimeScale {
    /// The x of a time in nanoseconds since the run started.
    pub fn x(&self, t: u64) -> f64 {
        self.left + (t.min(self.end) as f64 / self.end.max(1) as f64) * self.width
    }

    /// The right edge.
    pub fn right(&self) -> f64 {
        self.left + self.width
    }

    /// Tick times in nanoseconds with their labels.
    pub fn ticks(&self) -> Vec<(u64, String)> {
        let end_s = self.end as f64 / 1e9;
        let step = nice_step(end_s, 12.0);
        let mut out = Vec::new();
        let mut k = 0.0;
        while k * step <= end_s + 1e-9 {
            let s = k * step;
            let label = if step < 1.0 { format!("{s:.1} s") } else { format!("{s:.0} s") };
            out.push(((s * 1e9) as u64, label));
            k += 1.0;
        }
        out
    }

    /// Vertical grid lines from `y0` to `y1` at every tick.
    pub fn grid(&self, out: &mut String, y0: f64, y1: f64) {
        let mut d = String::new();
        for (t, _) in self.ticks() {
            let _ = write!(d, "M{} {}V{}", num(self.x(t)), num(y0), num(y1));
        }
        let _ = write!(out, r#"<path class="grid" d="{d}"/>"#);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn formats_numbers_and_durations() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.04), "12");
        assert_eq!(num(12.36), "12.4");
        assert_eq!(duration(850_000), "850 us");
        assert_eq!(duration(12_300_000), "12.3 ms");
        assert_eq!(duration(1_520_000_000), "1.52 s");
    }

    #[test]
    fn nice_steps_are_one_two_five() {
        assert_eq!(nice_step(60.0, 12.0), 5.0);
        assert_eq!(nice_step(30.0, 12.0), 5.0);
        assert_eq!(nice_step(10.0, 12.0), 1.0);
        assert_eq!(nice_step(1000.0, 5.0), 200.0);
        let s = TimeScale { left: 100.0, width: 1000.0, end: 30_000_000_000 };
        assert_eq!(s.x(15_000_000_000), 600.0);
        assert_eq!(s.x(u64::MAX), 1100.0);
        let ticks = s.ticks();
        assert_eq!(ticks.len(), 7);
        assert_eq!(ticks[6].1, "30 s");
    }
}
