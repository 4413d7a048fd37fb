//! The results: a table for people (each figure next to its target) and one JSON line
//! with every figure for scripts.
//!
//! Two kinds of rows are judged. Timing rows (latencies, rates, durations) are judged in
//! full runs only: a smoke run (`--quick`) on a shared CI machine proves the command
//! works, not the speed. Correctness rows (every answer the expected one, every
//! acknowledged write read back) are judged in every run, and a failure fails the command.

use serde_json::{Map, Value, json};

/// A target a figure must meet.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// At most this many milliseconds.
    MaxMs(f64),
    /// At least this many per second.
    MinPerSec(f64),
    /// Under this many seconds.
    MaxSeconds(f64),
    /// Every one of this many (the figure counts those that succeeded): a correctness
    /// row, judged in every run.
    All(u64),
    /// At least this many times the peer's figure (the value is the ratio).
    MinTimes(f64),
    /// At most this many times a reference figure (the value is the ratio).
    MaxTimes(f64),
    /// Under this many MiB (memory).
    MaxMiB(f64),
    /// Exactly this many: a correctness row, judged in every run.
    Exactly(u64),
}

impl Target {
    fn is_correctness(self) -> bool {
        matches!(self, Target::All(_) | Target::Exactly(_))
    }

    fn met(self, value: f64) -> bool {
        match self {
            Target::MaxMs(max) => value < max,
            Target::MinPerSec(min) => value >= min,
            Target::MaxSeconds(max) => value < max,
            Target::All(n) => value >= n as f64,
            Target::MinTimes(min) => value >= min,
            Target::MaxTimes(max) => value <= max,
            Target::MaxMiB(max) => value < max,
            Target::Exactly(n) => value == n as f64,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::MaxMs(max) => format!("< {max} ms"),
            Target::MinPerSec(min) => format!(">= {} /s", thousands(min as u64)),
            Target::MaxSeconds(max) => format!("< {max} s"),
            Target::All(n) => format!("all {}", thousands(n)),
            Target::MinTimes(min) => format!(">= {min}x"),
            Target::MaxTimes(max) => format!("<= {max}x"),
            Target::MaxMiB(max) => format!("< {max} MiB"),
            Target::Exactly(n) => format!("= {}", thousands(n)),
        }
    }
}

struct Row {
    label: String,
    figure: String,
    target: Option<(Target, f64)>,
    /// Shown instead of a verdict: a target not judged here, or not measured.
    note: Option<String>,
}

/// What a smoke run prints in place of a timing row's verdict.
pub const NOT_JUDGED: &str = "not judged in a smoke run";

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    figures: Map<String, Value>,
    /// A smoke run (`--quick`): timing rows are shown, not judged.
    smoke: bool,
    /// Timing rows that missed their target (full runs only).
    misses: Vec<String>,
    /// Correctness rows that failed (every run).
    failures: Vec<String>,
    /// Timing rows that could not be measured (e.g. without the peer), full runs only.
    unmeasured: Vec<String>,
    /// Why the run stopped before measuring everything.
    error: Option<String>,
}

impl Report {
    /// A report whose timing rows are judged unless `smoke`.
    pub fn new(smoke: bool) -> Self {
        Report { smoke, ..Report::default() }
    }

    /// An informational row.
    pub fn info(&mut self, label: impl Into<String>, figure: impl Into<String>) {
        self.rows.push(Row { label: label.into(), figure: figure.into(), target: None, note: None });
    }

    /// A row whose `value` is checked against `target`; `key` names it in the JSON
    /// misses (a timing target, unless in a smoke run) or failures (`Target::All`).
    pub fn checked(
        &mut self,
        key: &str,
        label: impl Into<String>,
        figure: impl Into<String>,
        value: f64,
        target: Target,
    ) {
        if !target.met(value) {
            if target.is_correctness() {
                self.failures.push(key.to_string());
            } else if !self.smoke {
                self.misses.push(key.to_string());
            }
        }
        self.rows.push(Row { label: label.into(), figure: figure.into(), target: Some((target, value)), note: None });
    }

    /// A correctness row: `ok` of `total` things were right, and all must be.
    pub fn all_of(&mut self, key: &str, label: impl Into<String>, ok: u64, total: u64) {
        self.checked(key, label, format!("{} of {}", thousands(ok), thousands(total)), ok as f64, Target::All(total));
    }

    /// A correctness row: the figure must be exactly `want`.
    pub fn exactly(&mut self, key: &str, label: impl Into<String>, got: u64, want: u64) {
        self.checked(key, label, thousands(got), got as f64, Target::Exactly(want));
    }

    /// A timing row shown next to its target but not judged here (`why`, e.g. a target
    /// set for SQLite, in a run on PostgreSQL).
    pub fn shown(&mut self, label: impl Into<String>, figure: impl Into<String>, target: Target, why: &str) {
        let note = if self.smoke { NOT_JUDGED.to_string() } else { why.to_string() };
        self.rows.push(Row {
            label: label.into(),
            figure: figure.into(),
            target: Some((target, 0.0)),
            note: Some(note),
        });
    }

    /// A timing row that could not be measured, and why. A full run lists it under
    /// `unmeasured`: its target is neither met nor missed, so not every target was met.
    pub fn unmeasured(&mut self, key: &str, label: impl Into<String>, target: Target, why: impl Into<String>) {
        if !self.smoke {
            self.unmeasured.push(key.to_string());
        }
        let note = Some(format!("not measured: {}", why.into()));
        self.rows.push(Row { label: label.into(), figure: "-".into(), target: Some((target, 0.0)), note });
    }

    /// A line of text under the row above (a reason, a detail), which does not widen
    /// the columns.
    pub fn note(&mut self, text: impl Into<String>) {
        self.section(format!("      {}", text.into()));
    }

    /// A section heading in the table.
    pub fn section(&mut self, title: impl Into<String>) {
        self.rows.push(Row { label: title.into(), figure: String::new(), target: None, note: None });
    }

    /// A figure for the JSON line; floats are rounded to 3 decimals.
    pub fn figure(&mut self, key: &str, value: impl Into<Value>) {
        let value = match value.into() {
            Value::Number(n) if n.is_f64() => n
                .as_f64()
                .and_then(|f| serde_json::Number::from_f64((f * 1000.0).round() / 1000.0))
                .map_or(Value::Null, Value::Number),
            other => other,
        };
        self.figures.insert(key.to_string(), value);
    }

    /// Records that the run stopped early: the figures are partial.
    pub fn fail(&mut self, error: String) {
        self.error = Some(error);
    }

    /// Every correctness row passed (timing aside).
    pub fn correct(&self) -> bool {
        self.failures.is_empty()
    }

    /// Every target measured and met (in a smoke run, the timing targets are not judged).
    pub fn all_met(&self) -> bool {
        self.misses.is_empty() && self.unmeasured.is_empty() && self.failures.is_empty() && self.error.is_none()
    }

    pub fn table(&self) -> String {
        // Section headings stand on their own line and do not widen the columns.
        let measured = self.rows.iter().filter(|r| !r.figure.is_empty() || r.target.is_some());
        let width = measured.clone().map(|r| r.label.chars().count() + 2).max().unwrap_or(10).max(10);
        let fig_width = measured.map(|r| r.figure.chars().count()).max().unwrap_or(6).max(6);
        let mut out = String::new();
        let rule = "-".repeat(width + fig_width + 26);
        out.push_str(&format!("{:<width$}  {:>fig_width$}  {:<14}  {}\n", "measure", "figure", "target", "result"));
        out.push_str(&rule);
        out.push('\n');
        for row in &self.rows {
            if row.figure.is_empty() && row.target.is_none() {
                out.push_str(&format!("{}\n", row.label));
                continue;
            }
            let (target, verdict) = match (row.target, &row.note) {
                (Some((t, _)), Some(note)) => (t.describe(), note.as_str()),
                (Some((t, v)), None) if t.is_correctness() => (t.describe(), if t.met(v) { "PASS" } else { "FAIL" }),
                (Some((t, _)), None) if self.smoke => (t.describe(), NOT_JUDGED),
                (Some((t, v)), None) => (t.describe(), if t.met(v) { "PASS" } else { "MISS" }),
                (None, _) => ("-".to_string(), "info"),
            };
            out.push_str(&format!(
                "  {:<w$}  {:>fig_width$}  {:<14}  {}\n",
                row.label,
                row.figure,
                target,
                verdict,
                w = width - 2
            ));
        }
        out.push_str(&rule);
        out.push('\n');
        if !self.failures.is_empty() {
            out.push_str(&format!("CORRECTNESS FAILED: {}\n", self.failures.join(", ")));
        }
        if !self.misses.is_empty() {
            out.push_str(&format!("Targets missed: {}\n", self.misses.join(", ")));
        }
        if !self.unmeasured.is_empty() {
            out.push_str(&format!("Targets not measured: {}\n", self.unmeasured.join(", ")));
        }
        match &self.error {
            Some(e) => out.push_str(&format!("INCOMPLETE: the run stopped early ({e}); the figures are partial.\n")),
            None if !self.failures.is_empty() => {}
            None if self.smoke => {
                out.push_str("Every correctness check passed; timing is not judged in a smoke run (--quick).\n")
            }
            None if self.misses.is_empty() && self.unmeasured.is_empty() => out.push_str("All targets met.\n"),
            None => out.push_str("Every correctness check passed.\n"),
        }
        out
    }

    pub fn json_line(&self) -> String {
        let mut all = self.figures.clone();
        all.insert("complete".into(), json!(self.error.is_none()));
        if let Some(e) = &self.error {
            all.insert("error".into(), json!(e));
        }
        all.insert("smoke".into(), json!(self.smoke));
        all.insert("correct".into(), json!(self.correct() && self.error.is_none()));
        all.insert("failures".into(), json!(self.failures));
        all.insert("all_targets_met".into(), json!(self.all_met()));
        all.insert("misses".into(), json!(self.misses));
        all.insert("unmeasured".into(), json!(self.unmeasured));
        Value::Object(all).to_string()
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `p50 / p95` in milliseconds.
pub fn p50_p95(p50: f64, p95: f64) -> String {
    format!("{} / {} ms", short(p50), short(p95))
}

/// A millisecond figure with sensible precision.
pub fn short(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_checks() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let mut r = Report::default();
        r.checked("a", "fast", "1 ms", 1.0, Target::MaxMs(5.0));
        assert!(r.all_met());
        r.checked("b", "slow", "9 ms", 9.0, Target::MaxMs(5.0));
        r.checked("c", "rate", "10 /s", 10.0, Target::MinPerSec(2000.0));
        assert!(!r.all_met());
        assert!(r.correct());
        assert!(Target::MaxSeconds(20.0).met(19.9) && !Target::MaxSeconds(20.0).met(20.0));
        assert!(Target::All(100).met(100.0) && !Target::All(100).met(99.0));
        assert_eq!(Target::All(100_000).describe(), "all 100,000");
        assert!(Target::Exactly(0).met(0.0) && !Target::Exactly(0).met(1.0) && !Target::Exactly(5).met(6.0));
        assert_eq!(Target::Exactly(1_000).describe(), "= 1,000");
        assert!(Target::MaxMiB(512.0).met(511.9) && !Target::MaxMiB(512.0).met(512.0));
        let mut exact = Report::new(true);
        exact.exactly("zero", "nothing created", 0, 0);
        assert!(exact.correct());
        exact.exactly("pages", "pages read", 11, 10);
        assert!(!exact.correct());
        r.figure("x", 1.23456);
        let line: Value = serde_json::from_str(&r.json_line()).unwrap_or(Value::Null);
        assert_eq!(line["x"], json!(1.235));
        assert_eq!(line["misses"], json!(["b", "c"]));
        assert!(r.table().contains("MISS"));
        r.fail("interrupted".into());
        assert!(r.table().contains("INCOMPLETE"));
        let line: Value = serde_json::from_str(&r.json_line()).unwrap_or(Value::Null);
        assert_eq!(line["complete"], json!(false));
    }

    #[test]
    fn a_smoke_run_judges_correctness_but_not_timing() {
        let mut r = Report::new(true);
        r.checked("slow", "slow", "9 ms", 9.0, Target::MaxMs(5.0));
        assert!(r.all_met() && r.correct());
        let table = r.table();
        assert!(table.contains(NOT_JUDGED) && !table.contains("MISS") && !table.contains("PASS"), "{table}");
        r.checked("answered", "answered as expected", "9 of 10", 9.0, Target::All(10));
        assert!(!r.correct() && !r.all_met());
        let table = r.table();
        assert!(table.contains("FAIL") && table.contains("CORRECTNESS FAILED: answered"), "{table}");
        let line: Value = serde_json::from_str(&r.json_line()).unwrap_or(Value::Null);
        assert_eq!(line["failures"], json!(["answered"]));
        assert_eq!(line["misses"], json!([]));
        assert_eq!(line["correct"], json!(false));

        // A target not judged here, one not measured, and a note: shown, not judged.
        r.shown("pg", "9 ms", Target::MaxMs(5.0), "not judged on PostgreSQL");
        r.unmeasured("ratio", "ratio", Target::MinTimes(6.0), "--no-peer");
        r.note("a long reason that does not widen the columns");
        let line: Value = serde_json::from_str(&r.json_line()).unwrap_or(Value::Null);
        assert_eq!(line["unmeasured"], json!([]), "a smoke run lists no unmeasured target");

        // A full run judges both.
        let mut r = Report::new(false);
        r.checked("answered", "answered as expected", "10 of 10", 10.0, Target::All(10));
        r.checked("slow", "slow", "9 ms", 9.0, Target::MaxMs(5.0));
        assert!(r.correct() && !r.all_met());
        assert!(r.table().contains("MISS"));

        // Shown and unmeasured rows in a full run: not misses, but not every target met.
        let mut r = Report::new(false);
        r.shown("on pg", "9 ms", Target::MaxMs(5.0), "not judged on PostgreSQL");
        assert!(r.all_met());
        r.unmeasured("create_times_peer", "Custodian / peer", Target::MinTimes(6.0), "--no-peer");
        r.checked("x", "ratio", "7.00x", 7.0, Target::MinTimes(6.0));
        r.checked("y", "ratio", "2.50x", 2.5, Target::MaxTimes(2.0));
        r.note("a note far longer than any figure in the table, which must not widen the columns at all");
        assert!(r.correct() && !r.all_met());
        let table = r.table();
        assert!(table.contains("not judged on PostgreSQL") && table.contains("not measured: --no-peer"), "{table}");
        assert!(table.contains("Targets not measured: create_times_peer"), "{table}");
        assert!(table.contains(">= 6x") && table.contains("<= 2x"), "{table}");
        assert!(table.lines().all(|l| l.len() < 140), "{table}");
        let line: Value = serde_json::from_str(&r.json_line()).unwrap_or(Value::Null);
        assert_eq!(line["unmeasured"], json!(["create_times_peer"]));
        assert_eq!(line["misses"], json!(["y"]));
    }
}
