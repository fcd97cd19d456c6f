//! `/metrics` is Prometheus' text format, read by a strict parser here (every family with
//! `# HELP` then `# TYPE` before its samples, declared once, samples only of their family,
//! well-formed labels and values, histogram buckets cumulative up to `+Inf` = `_count`), and
//! its numbers say what the cluster holds.

use std::collections::{BTreeMap, HashSet};

use crate::common::*;
use crate::http::get;
use crate::web::busy_cluster;

#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
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
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// `{a="x",b="y"}` (the braces already removed) into labels; escapes \\ \" \n only.
fn parse_labels(mut s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"").ok_or(format!("bad labels at {s:?}"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {rest:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {rest:?}")),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        s = &rest[end + 1..];
        if let Some(more) = s.strip_prefix(',') {
            s = more;
        } else if !s.is_empty() {
            return Err(format!("junk after a label: {s:?}"));
        }
    }
    Ok(labels)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line:?}"))?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .ok_or(format!("unclosed labels: {line:?}"))?;
            (name, parse_labels(inner)?)
        }
        None => (series, BTreeMap::new()),
    };
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

/// The whole exposition, strictly.
fn parse_exposition(text: &str) -> Result<Vec<Family>, String> {
    let mut families: Vec<Family> = Vec::new();
    let mut seen = HashSet::new();
    let mut help: Option<String> = None;
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .ok_or("no final newline")?
        .split('\n')
        .collect();
    for line in lines {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest
                .split_once(' ')
                .ok_or(format!("HELP without text: {line}"))?;
            if !is_metric_name(name) || text.trim().is_empty() {
                return Err(format!("bad HELP line {line:?}"));
            }
            help = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or(format!("bad TYPE line {line:?}"))?;
            if help.as_deref() != Some(name) {
                return Err(format!("TYPE of {name} without its HELP just before"));
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("unknown type {kind:?}"));
            }
            if !seen.insert(name.to_string()) {
                return Err(format!("{name} declared twice"));
            }
            families.push(Family {
                name: name.to_string(),
                kind: kind.to_string(),
                samples: Vec::new(),
            });
            help = None;
        } else if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line {line:?}"));
        } else {
            let sample = parse_sample(line)?;
            let family = families
                .last_mut()
                .ok_or(format!("sample before any TYPE: {line}"))?;
            let allowed: Vec<String> = if family.kind == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{}{s}", family.name))
                    .collect()
            } else {
                vec![family.name.clone()]
            };
            if !allowed.contains(&sample.name) {
                return Err(format!("{} is not of family {}", sample.name, family.name));
            }
            family.samples.push(sample);
        }
    }
    for family in families.iter().filter(|f| f.kind == "histogram") {
        check_histogram(family)?;
    }
    Ok(families)
}

/// Per label set: `le` increasing, counts never falling, the last bucket `+Inf` equal to
/// `_count`, and a `_sum`.
fn check_histogram(family: &Family) -> Result<(), String> {
    let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    for s in family
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket"))
    {
        let mut labels = s.labels.clone();
        let le = labels.remove("le").ok_or("a bucket without le")?;
        series
            .entry(labels)
            .or_default()
            .push((parse_value(&le)?, s.value));
    }
    for (labels, buckets) in series {
        for pair in buckets.windows(2) {
            if pair[1].0 <= pair[0].0 || pair[1].1 < pair[0].1 {
                return Err(format!("{} {labels:?}: buckets out of order", family.name));
            }
        }
        let last = buckets.last().ok_or("no buckets")?;
        let find = |suffix: &str| {
            family
                .samples
                .iter()
                .find(|s| s.name == format!("{}{suffix}", family.name) && s.labels == labels)
                .map(|s| s.value)
        };
        let count = find("_count").ok_or(format!("{} {labels:?}: no _count", family.name))?;
        find("_sum").ok_or(format!("{} {labels:?}: no _sum", family.name))?;
        if !last.0.is_infinite() || last.1 != count {
            return Err(format!(
                "{} {labels:?}: +Inf bucket is not _count",
                family.name
            ));
        }
    }
    Ok(())
}

fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    families
        .iter()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == name && s.labels == wanted)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
        .value
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let ok = "# HELP a_total Things.\n# TYPE a_total counter\na_total{k=\"v\\\"\"} 3\n";
    assert_eq!(
        parse_exposition(ok).unwrap()[0].samples[0].labels["k"],
        "v\""
    );
    for bad in [
        "a 1\n",
        "# TYPE a gauge\na 1\n",
        "# HELP a x\n# TYPE a gauge\nb 1\n",
        "# HELP a x\n# TYPE a gauge\na{k=v} 1\n",
        "# HELP a x\n# TYPE a gauge\na one\n",
        "# HELP a x\n# TYPE a gauge\na 1",
        "# HELP a x\n# TYPE a gauge\n# HELP a x\n# TYPE a gauge\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_count_the_cluster() {
    let mut rm = Rm::start().await;
    let web = rm.web_addr();
    let (app, attempt, mut nm) = busy_cluster(&mut rm).await;

    let answer = get(web, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let families =
        parse_exposition(&answer.body).unwrap_or_else(|e| panic!("{e}\n{}", answer.body));
    let v = |name: &str, labels: &[(&str, &str)]| value(&families, name, labels);
    assert_eq!(v("spindle_rm_applications", &[("state", "RUNNING")]), 1.0);
    assert_eq!(v("spindle_rm_applications", &[("state", "FINISHED")]), 0.0);
    assert_eq!(v("spindle_rm_nodes", &[("state", "RUNNING")]), 1.0);
    assert_eq!(v("spindle_rm_nodes", &[("state", "LOST")]), 0.0);
    assert_eq!(v("spindle_rm_containers", &[("state", "running")]), 3.0);
    assert_eq!(v("spindle_rm_containers", &[("state", "allocated")]), 0.0);
    assert_eq!(
        v("spindle_rm_containers_allocated_total", &[("kind", "am")]),
        1.0
    );
    assert_eq!(
        v("spindle_rm_containers_allocated_total", &[("kind", "task")]),
        2.0
    );
    assert_eq!(v("spindle_rm_containers_completed_total", &[]), 0.0);
    let mb = 1024.0 * 1024.0;
    assert_eq!(v("spindle_rm_memory_used_bytes", &[]), 1024.0 * mb);
    assert_eq!(v("spindle_rm_memory_available_bytes", &[]), 3072.0 * mb);
    assert_eq!(
        v(
            "spindle_rm_allocation_latency_seconds_count",
            &[("kind", "task")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "spindle_rm_allocation_latency_seconds_count",
            &[("kind", "am")]
        ),
        1.0
    );

    // A waiting ask is counted as pending; a completion as completed.
    rm.allocate(&attempt, vec![ask(4096, 1, 1)], 0)
        .await
        .unwrap();
    let got = rm.allocate(&attempt, vec![], 0).await.unwrap();
    assert!(got.allocated.is_empty());
    let report = rm.report(&app).await;
    let task = report
        .containers
        .iter()
        .find(|c| !c.container_id.ends_with("_000001"))
        .unwrap()
        .container_id
        .clone();
    nm.heartbeat(vec![completed(&task, 0)]).await;
    let families = parse_exposition(&get(web, "/metrics").await.body).unwrap();
    let v = |name: &str, labels: &[(&str, &str)]| value(&families, name, labels);
    assert_eq!(v("spindle_rm_containers_pending", &[]), 1.0);
    assert_eq!(v("spindle_rm_containers_completed_total", &[]), 1.0);
    assert_eq!(v("spindle_rm_containers", &[("state", "running")]), 2.0);
    rm.shutdown().await;
}
