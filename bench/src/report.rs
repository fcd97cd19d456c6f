//! What a scenario prints: a table for people (the workload, each run's figures, their median)
//! and, with `--json`, one JSON object on the last line of stdout for scripts. Every scenario
//! fills a `Report` the same way, so the two outputs always agree.

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::stats;

/// The figures of one run, by metric name.
pub type RunFigures = Vec<(&'static str, f64)>;

pub struct Report {
    scenario: &'static str,
    /// The workload as it ran (sizes, counts): the table's heading and JSON fields.
    setup: Vec<(&'static str, Value)>,
    /// Each metric's value in every run, in the order the runs finished.
    metrics: Vec<(&'static str, Vec<f64>)>,
    /// Figures of all the runs together (a percentile across runs, a total per run).
    summary: Vec<(&'static str, f64)>,
    runs: usize,
}

impl Report {
    pub fn new(scenario: &'static str) -> Self {
        Report {
            scenario,
            setup: Vec::new(),
            metrics: Vec::new(),
            summary: Vec::new(),
            runs: 0,
        }
    }

    /// Records a figure of all the runs together; printed under the table, and in the JSON
    /// beside the medians.
    pub fn summary(&mut self, name: &'static str, value: f64) {
        self.summary.push((name, value));
    }

    /// Records a fact about the workload (printed once, copied into the JSON as it is).
    pub fn setup(&mut self, key: &'static str, value: impl Into<Value>) {
        self.setup.push((key, value.into()));
    }

    /// Adds one run's figures; a metric a run lacks is simply not counted for that run.
    pub fn add_run(&mut self, figures: RunFigures) {
        self.runs += 1;
        for (name, value) in figures {
            match self.metrics.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => self.metrics.push((name, vec![value])),
            }
        }
    }

    /// Each metric's median over the runs.
    pub fn medians(&self) -> Vec<(&'static str, f64)> {
        self.metrics
            .iter()
            .filter_map(|(name, values)| Some((*name, stats::median(values)?)))
            .collect()
    }

    /// The one-line JSON object: the scenario, the workload, each metric's median, the
    /// figures of all runs together, and every run's figures under `per_run`.
    pub fn json(&self) -> String {
        let mut object = Map::new();
        object.insert("scenario".into(), self.scenario.into());
        object.insert("runs".into(), self.runs.into());
        for (key, value) in &self.setup {
            object.insert((*key).into(), value.clone());
        }
        for (name, median) in self.medians() {
            object.insert(name.into(), rounded(median));
        }
        for (name, value) in &self.summary {
            object.insert((*name).into(), rounded(*value));
        }
        let per_run: Map<String, Value> = self
            .metrics
            .iter()
            .map(|(name, values)| {
                let values = values.iter().map(|v| rounded(*v)).collect();
                ((*name).to_string(), Value::Array(values))
            })
            .collect();
        object.insert("per_run".into(), Value::Object(per_run));
        Value::Object(object).to_string()
    }

    /// The table: a heading with the workload, then one row per metric with every run and the
    /// median, then the figures of all runs together.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let setup: Vec<String> = self
            .setup
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let _ = writeln!(out, "{}: {}", self.scenario, setup.join(" "));
        let width = self
            .metrics
            .iter()
            .map(|(name, _)| name.len())
            .chain(self.summary.iter().map(|(name, _)| name.len()))
            .max()
            .unwrap_or(6)
            .max("metric".len());
        let _ = write!(out, "{:<width$}", "metric");
        for run in 1..=self.runs {
            let _ = write!(out, " {:>12}", format!("run {run}"));
        }
        let _ = writeln!(out, " {:>12}", "median");
        let medians = self.medians();
        for (name, values) in &self.metrics {
            let _ = write!(out, "{name:<width$}");
            for v in values {
                let _ = write!(out, " {:>12}", readable(*v));
            }
            for _ in values.len()..self.runs {
                let _ = write!(out, " {:>12}", "-");
            }
            let median = medians.iter().find(|(n, _)| n == name).map(|(_, m)| *m);
            let _ = writeln!(out, " {:>12}", median.map_or("-".into(), readable));
        }
        if !self.summary.is_empty() {
            let _ = writeln!(out, "over all runs:");
            for (name, value) in &self.summary {
                let _ = writeln!(out, "{name:<width$} {:>12}", readable(*value));
            }
        }
        out
    }
}

/// Three decimals are below any clock's honesty here; more is noise in the JSON.
fn rounded(v: f64) -> Value {
    let r = (v * 1000.0).round() / 1000.0;
    serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
}

/// Big numbers without decimals, small ones with enough to tell them apart.
fn readable(v: f64) -> String {
    let magnitude = v.abs();
    if magnitude >= 1000.0 {
        format!("{v:.0}")
    } else if magnitude >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::new("scheduler");
        r.setup("nodes", 5000);
        r.add_run(vec![("allocations_per_s", 300_000.0), ("p50_ms", 2.0)]);
        r.add_run(vec![("allocations_per_s", 100_000.0), ("p50_ms", 4.0)]);
        r.add_run(vec![("allocations_per_s", 200_000.0)]);
        r.summary("p95_ms", 4.0);
        r
    }

    #[test]
    fn json_holds_medians_setup_and_every_run() {
        let json: Value = serde_json::from_str(&report().json()).unwrap();
        assert_eq!(json["scenario"], "scheduler");
        assert_eq!(json["runs"], 3);
        assert_eq!(json["nodes"], 5000);
        assert_eq!(json["allocations_per_s"], 200_000.0);
        assert_eq!(json["p50_ms"], 3.0);
        assert_eq!(json["per_run"]["p50_ms"], serde_json::json!([2.0, 4.0]));
        assert_eq!(json["p95_ms"], 4.0);
        assert!(!report().json().contains('\n'), "one line");
    }

    #[test]
    fn table_shows_each_run_and_the_median() {
        let table = report().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "scheduler: nodes=5000");
        assert!(lines[1].starts_with("metric") && lines[1].ends_with("median"));
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row,
            ["allocations_per_s", "300000", "100000", "200000", "200000"]
        );
        let row: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(row, ["p50_ms", "2.000", "4.000", "-", "3.000"]);
        assert_eq!(lines[4], "over all runs:");
        let row: Vec<&str> = lines[5].split_whitespace().collect();
        assert_eq!(row, ["p95_ms", "4.000"]);
    }
}
