//! Prometheus' text exposition format (version 0.0.4), written by hand: the RM's and every
//! NM's `/metrics` use this one writer, so both follow the same rules — `# HELP` and `# TYPE`
//! once per family, escaped label values, cumulative histogram buckets in seconds.

use std::fmt::{Display, Write};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text of one scrape, built family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its help and type lines, before its samples.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.single(name, "gauge", help, value);
    }

    /// One histogram's samples under `labels` (its family is started once by the caller, as
    /// several label sets may share it): `buckets` are (upper bound in seconds, cumulative count).
    pub fn histogram_samples(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: impl IntoIterator<Item = (f64, u64)>,
        count: u64,
        sum_seconds: f64,
    ) {
        let bucket = format!("{name}_bucket");
        for (bound, cumulative) in buckets {
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        let mut with_inf = labels.to_vec();
        with_inf.push(("le", "+Inf"));
        self.sample(&bucket, &with_inf, count);
        self.sample(&format!("{name}_sum"), labels, sum_seconds);
        self.sample(&format!("{name}_count"), labels, count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_histogram_ends_with_inf_sum_and_count() {
        let mut e = Exposition::new();
        e.family("x_seconds", "histogram", "X.");
        e.histogram_samples("x_seconds", &[("kind", "a")], [(0.5, 1), (1.0, 2)], 3, 2.5);
        let text = e.finish();
        assert!(
            text.contains("x_seconds_bucket{kind=\"a\",le=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{kind=\"a\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_sum{kind=\"a\"} 2.5\n"), "{text}");
        assert!(text.contains("x_seconds_count{kind=\"a\"} 3\n"), "{text}");
    }
}
