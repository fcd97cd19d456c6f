//! A strict reader of Prometheus' text format (0.0.4), enough to hold `/metrics` to it: every
//! family has `# HELP` then `# TYPE` before its samples and is declared once; samples belong to
//! the family declared last (histograms: `_bucket`, `_sum`, `_count`); names, labels, escapes
//! and values are well-formed; counters are not negative; histogram buckets ascend, are
//! cumulative, and end at `+Inf` equal to `_count`. Anything else is an error naming the line.

use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Default)]
pub struct Exposition {
    pub families: Vec<Family>,
}

impl Exposition {
    pub fn family(&self, name: &str) -> &Family {
        self.families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no metric family {name}"))
    }

    /// The value of the sample `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .find(|s| s.name == name && s.labels == wanted)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
            .value
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

fn value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s.is_empty() || s.contains(|c: char| c.is_whitespace()) => {
            Err(format!("bad value {s:?}"))
        }
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// The inside of `{…}`: `a="x",b="y"`, with only `\\`, `\"` and `\n` as escapes.
fn labels(mut s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (name, rest) = s
            .split_once("=\"")
            .ok_or_else(|| format!("bad label at {s:?}"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut text = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => text.push('\\'),
                    Some((_, '"')) => text.push('"'),
                    Some((_, 'n')) => text.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {rest:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => text.push(c),
                None => return Err(format!("unterminated label value in {rest:?}")),
            }
        };
        if labels.insert(name.to_string(), text).is_some() {
            return Err(format!("label {name} given twice"));
        }
        s = &rest[end + 1..];
        match s.strip_prefix(',') {
            Some(more) if !more.is_empty() => s = more,
            Some(_) => return Err("a trailing comma after the labels".into()),
            None if s.is_empty() => {}
            None => return Err(format!("junk after a label: {s:?}")),
        }
    }
    Ok(labels)
}

fn sample(line: &str) -> Result<Sample, String> {
    let (series, raw_value) = match line.find('}') {
        Some(close) => {
            let rest = &line[close + 1..];
            let raw = rest
                .strip_prefix(' ')
                .ok_or_else(|| format!("no value after the labels: {line:?}"))?;
            (&line[..=close], raw)
        }
        None => line
            .split_once(' ')
            .ok_or_else(|| format!("no value: {line:?}"))?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, labels(&rest[..rest.len() - 1])?),
        None => (series, BTreeMap::new()),
    };
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: value(raw_value)?,
    })
}

/// Whether `sample` may appear in a family named `family` of type `kind`.
fn belongs(sample: &str, family: &str, kind: &str) -> bool {
    match kind {
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| sample.strip_suffix(suffix) == Some(family)),
        _ => sample == family,
    }
}

/// A series' labels other than `le`, which tell a histogram's series apart.
type SeriesKey = Vec<(String, String)>;

fn check_histogram(f: &Family) -> Result<(), String> {
    let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for s in &f.samples {
        let mut key: Vec<(String, String)> = s.labels.clone().into_iter().collect();
        if s.name.ends_with("_bucket") {
            let le = s
                .labels
                .get("le")
                .ok_or_else(|| format!("{}: a bucket without le", f.name))?;
            key.retain(|(k, _)| k != "le");
            series.entry(key).or_default().push((value(le)?, s.value));
        } else if s.name.ends_with("_count") {
            counts.insert(key, s.value);
        }
    }
    if series.is_empty() {
        return Err(format!("{}: a histogram without buckets", f.name));
    }
    for (key, buckets) in series {
        for pair in buckets.windows(2) {
            if pair[0].0 >= pair[1].0 || pair[0].1 > pair[1].1 {
                return Err(format!("{}: buckets not ascending and cumulative", f.name));
            }
        }
        let (last_le, last) = *buckets.last().expect("at least one bucket");
        if last_le != f64::INFINITY {
            return Err(format!("{}: the last bucket is not +Inf", f.name));
        }
        if counts.get(&key) != Some(&last) {
            return Err(format!("{}: the +Inf bucket is not _count", f.name));
        }
    }
    Ok(())
}

/// Reads a whole exposition, strictly.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let body = text.strip_suffix('\n').ok_or("no final newline")?;
    let mut exposition = Exposition::default();
    let mut declared = HashSet::new();
    let mut help: Option<(String, String)> = None;
    for (n, line) in body.split('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest
                .split_once(' ')
                .ok_or_else(|| at(format!("HELP without text: {line:?}")))?;
            if !is_metric_name(name) || text.trim().is_empty() {
                return Err(at(format!("bad HELP line {line:?}")));
            }
            help = Some((name.to_string(), text.to_string()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at(format!("TYPE without a type: {line:?}")))?;
            let Some((help_name, help_text)) = help.take().filter(|(h, _)| h == name) else {
                return Err(at(format!("TYPE of {name} without its HELP just before")));
            };
            if !["counter", "gauge", "histogram"].contains(&kind) {
                return Err(at(format!("unknown type {kind:?}")));
            }
            if !declared.insert(name.to_string()) {
                return Err(at(format!("{name} declared twice")));
            }
            exposition.families.push(Family {
                name: help_name,
                kind: kind.to_string(),
                help: help_text,
                samples: Vec::new(),
            });
        } else if line.starts_with('#') || line.trim().is_empty() {
            return Err(at(format!("a stray line {line:?}")));
        } else {
            let s = sample(line).map_err(at)?;
            let family = exposition
                .families
                .last_mut()
                .ok_or_else(|| at("a sample before any TYPE".into()))?;
            if help.is_some() || !belongs(&s.name, &family.name, &family.kind) {
                return Err(at(format!("{} is not of family {}", s.name, family.name)));
            }
            if family.kind == "counter" && (s.value.is_nan() || s.value < 0.0) {
                return Err(at(format!("counter {} is {}", s.name, s.value)));
            }
            if family
                .samples
                .iter()
                .any(|o| o.name == s.name && o.labels == s.labels)
            {
                return Err(at(format!("{} {:?} given twice", s.name, s.labels)));
            }
            family.samples.push(s);
        }
    }
    if let Some((name, _)) = help {
        return Err(format!("HELP of {name} without its TYPE"));
    }
    for f in &exposition.families {
        if f.samples.is_empty() {
            return Err(format!("{} has no samples", f.name));
        }
        if f.kind == "histogram" {
            check_histogram(f)?;
        }
    }
    Ok(exposition)
}
