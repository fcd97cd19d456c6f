//! `GET /metrics`: the RM in Prometheus' text format (version 0.0.4). Gauges come from one look
//! at the core (`Summary`); counters and the allocation-latency histograms from what the core
//! counted since this start (`core::Metrics`, in the core's time). Memory is in bytes, as
//! Prometheus names units; the node manager's own `/metrics` is separate.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use spindle_containers::exposition::{CONTENT_TYPE, Exposition};

use super::WebState;
use super::error::WebError;
use super::summary::{APP_STATES, NODE_STATES, Summary};
use crate::core::{Histogram, Metrics};

const MB: u64 = 1024 * 1024;

pub async fn metrics(State(web): State<WebState>) -> Result<impl IntoResponse, WebError> {
    // Only the counting happens on the core task; the text is written here.
    let (summary, counted) = web
        .core
        .read(|core, _| (Summary::of(core), core.metrics().clone()))
        .await?;
    let text = render(&summary, &counted, web.started_on);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}

fn latency_samples(e: &mut Exposition, kind: &str, h: &Histogram) {
    e.histogram_samples(
        "spindle_rm_allocation_latency_seconds",
        &[("kind", kind)],
        h.cumulative()
            .map(|(bound_ms, count)| (seconds(bound_ms), count)),
        h.count(),
        seconds(h.sum_ms()),
    );
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn render(s: &Summary, m: &Metrics, started_on_ms: u64) -> String {
    let mut e = Exposition::new();

    e.family(
        "spindle_rm_info",
        "gauge",
        "The resource manager's version; always 1.",
    );
    e.sample(
        "spindle_rm_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    e.gauge(
        "spindle_rm_start_time_seconds",
        "When this resource manager started, in seconds since the epoch.",
        seconds(started_on_ms),
    );

    e.family(
        "spindle_rm_applications",
        "gauge",
        "Applications the resource manager knows, by state (finished ones until retention drops them).",
    );
    for state in APP_STATES {
        let name = state.to_string();
        e.sample(
            "spindle_rm_applications",
            &[("state", &name)],
            s.apps_in(state),
        );
    }

    e.family("spindle_rm_nodes", "gauge", "Node managers by state.");
    for state in NODE_STATES {
        let name = state.to_string();
        e.sample("spindle_rm_nodes", &[("state", &name)], s.nodes_in(state));
    }

    e.family(
        "spindle_rm_containers",
        "gauge",
        "Live containers: allocated (not yet reported running by their node) and running.",
    );
    e.sample(
        "spindle_rm_containers",
        &[("state", "allocated")],
        s.containers_allocated,
    );
    e.sample(
        "spindle_rm_containers",
        &[("state", "running")],
        s.containers_running,
    );
    e.gauge(
        "spindle_rm_containers_pending",
        "Containers asked for and not yet allocated (AM containers included).",
        s.containers_pending,
    );
    e.family(
        "spindle_rm_containers_allocated_total",
        "counter",
        "Containers allocated since the resource manager started, AM containers apart.",
    );
    e.sample(
        "spindle_rm_containers_allocated_total",
        &[("kind", "am")],
        m.am_containers_allocated,
    );
    e.sample(
        "spindle_rm_containers_allocated_total",
        &[("kind", "task")],
        m.containers_allocated,
    );
    e.family(
        "spindle_rm_containers_completed_total",
        "counter",
        "Containers that ended (completed, released, stopped or lost) since the resource manager started.",
    );
    e.sample(
        "spindle_rm_containers_completed_total",
        &[],
        m.containers_ended,
    );

    e.family(
        "spindle_rm_allocation_latency_seconds",
        "histogram",
        "Time from request to allocation: from an attempt's start to its AM container (kind=am), from an AM's ask to the container that served it (kind=task).",
    );
    latency_samples(&mut e, "am", &m.am_allocation_latency);
    latency_samples(&mut e, "task", &m.allocation_latency);

    let total = s.total();
    e.gauge(
        "spindle_rm_memory_used_bytes",
        "Memory held by live containers.",
        s.used.memory_mb * MB,
    );
    e.gauge(
        "spindle_rm_memory_available_bytes",
        "Memory free on the nodes that take new containers.",
        s.available.memory_mb * MB,
    );
    e.gauge(
        "spindle_rm_memory_capacity_bytes",
        "Memory in use plus memory available.",
        total.memory_mb * MB,
    );
    e.gauge(
        "spindle_rm_vcores_used",
        "Virtual cores held by live containers.",
        s.used.vcores,
    );
    e.gauge(
        "spindle_rm_vcores_available",
        "Virtual cores free on the nodes that take new containers.",
        s.available.vcores,
    );
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testkit::*;

    #[test]
    fn families_are_declared_once_and_samples_carry_the_state() {
        let mut t = Harness::new();
        t.node("n:1", 4096);
        let attempt = t.running_app(1024);
        t.ask(attempt, 1, 1024, 2);
        let text = render(&Summary::of(&t.core), t.core.metrics(), 1_500);
        let lines: Vec<&str> = text.lines().collect();
        let declared = |name: &str| {
            lines
                .iter()
                .filter(|l| **l == format!("# TYPE {name} gauge"))
                .count()
        };
        assert_eq!(declared("spindle_rm_applications"), 1);
        assert!(lines.contains(&"spindle_rm_applications{state=\"RUNNING\"} 1"));
        assert!(lines.contains(&"spindle_rm_nodes{state=\"RUNNING\"} 1"));
        assert!(lines.contains(&"spindle_rm_containers{state=\"allocated\"} 2"));
        assert!(lines.contains(&"spindle_rm_containers_allocated_total{kind=\"task\"} 2"));
        assert!(lines.contains(&"spindle_rm_memory_used_bytes 3221225472"));
        assert!(lines.contains(&"spindle_rm_memory_capacity_bytes 4294967296"));
        assert!(lines.contains(&"spindle_rm_start_time_seconds 1.5"));
        assert!(lines.contains(
            &"spindle_rm_allocation_latency_seconds_bucket{kind=\"task\",le=\"0.001\"} 2"
        ));
        assert!(lines.contains(
            &"spindle_rm_allocation_latency_seconds_bucket{kind=\"task\",le=\"+Inf\"} 2"
        ));
        assert!(lines.contains(&"spindle_rm_allocation_latency_seconds_count{kind=\"am\"} 1"));
    }
}
