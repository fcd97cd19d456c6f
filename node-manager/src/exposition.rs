//! `GET /metrics`: the node in Prometheus' text format (version 0.0.4). Counters come from
//! `NodeMetrics` and the localizer (since this start); gauges from one look at the container
//! table. Memory is in bytes and durations in seconds, as Prometheus names units.

use spindle_containers::exposition::Exposition;
use spindle_containers::localize::CacheStats;

use crate::metrics::Snapshot;
use crate::node::Node;

pub use spindle_containers::exposition::CONTENT_TYPE;
const MIB: u64 = 1024 * 1024;

/// What the table holds right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub localizing: usize,
    pub running: usize,
    pub allocated_memory_mb: u64,
    pub allocated_vcores: u32,
    pub capacity_memory_mb: u64,
    pub capacity_vcores: u32,
    pub log_followers: u64,
}

pub fn render_node(node: &Node) -> String {
    let (allocated, _) = node.containers.allocated();
    let (localizing, running) = node.containers.phase_counts();
    let gauges = Gauges {
        localizing,
        running,
        allocated_memory_mb: allocated.memory_mb,
        allocated_vcores: allocated.vcores,
        capacity_memory_mb: node.capability.memory_mb,
        capacity_vcores: node.capability.vcores,
        log_followers: node.metrics.log_followers(),
    };
    render(
        node.node_id.as_str(),
        &node.metrics.snapshot(),
        &gauges,
        &node.localizer.stats(),
    )
}

pub fn render(node_id: &str, m: &Snapshot, g: &Gauges, cache: &CacheStats) -> String {
    let mut e = Exposition::new();
    e.family(
        "spindle_nm_info",
        "gauge",
        "The node manager's version and node id; always 1.",
    );
    e.sample(
        "spindle_nm_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("node_id", node_id)],
        1,
    );

    e.single(
        "spindle_nm_containers_launched_total",
        "counter",
        "Containers whose process was spawned.",
        m.launched,
    );
    e.single(
        "spindle_nm_container_launch_failures_total",
        "counter",
        "Start requests that ended without a process (refused, or localization or spawn failed).",
        m.launch_failures,
    );
    e.family(
        "spindle_nm_containers_completed_total",
        "counter",
        "Containers completed, by exit-status class: success, failed (the process's own non-zero \
         code), or YARN's negative status (killed_by_appmaster, killed_exceeded_pmem, …).",
    );
    for (class, n) in &m.completed {
        e.sample(
            "spindle_nm_containers_completed_total",
            &[("exit_class", class)],
            n,
        );
    }
    e.family(
        "spindle_nm_containers",
        "gauge",
        "Containers on this node now that are not complete, by phase.",
    );
    e.sample(
        "spindle_nm_containers",
        &[("phase", "localizing")],
        g.localizing,
    );
    e.sample("spindle_nm_containers", &[("phase", "running")], g.running);
    let launch = &m.launch_latency;
    e.family(
        "spindle_nm_container_launch_seconds",
        "histogram",
        "From a container's start request to its process being spawned (localization included).",
    );
    e.histogram_samples(
        "spindle_nm_container_launch_seconds",
        &[],
        launch.cumulative(),
        launch.count(),
        launch.sum_seconds(),
    );

    e.single(
        "spindle_nm_memory_used_bytes",
        "gauge",
        "Resident memory of the running containers' processes, summed, at the monitor's last sample.",
        m.memory_used_bytes,
    );
    e.single(
        "spindle_nm_memory_allocated_bytes",
        "gauge",
        "Memory given to the containers that are not complete.",
        g.allocated_memory_mb.saturating_mul(MIB),
    );
    e.single(
        "spindle_nm_memory_capacity_bytes",
        "gauge",
        "Memory this node offers to containers.",
        g.capacity_memory_mb.saturating_mul(MIB),
    );
    e.single(
        "spindle_nm_vcores_allocated",
        "gauge",
        "Virtual cores given to the containers that are not complete.",
        g.allocated_vcores,
    );
    e.single(
        "spindle_nm_vcores_capacity",
        "gauge",
        "Virtual cores this node offers to containers.",
        g.capacity_vcores,
    );

    e.single(
        "spindle_nm_localization_cache_hits_total",
        "counter",
        "Local resources found in the node's file cache.",
        cache.hits,
    );
    e.single(
        "spindle_nm_localization_cache_misses_total",
        "counter",
        "Local resources the file cache did not have, so they were fetched from the RM.",
        cache.misses,
    );
    e.single(
        "spindle_nm_localization_downloaded_bytes_total",
        "counter",
        "Bytes fetched from the RM's staging store into the file cache (verified and kept).",
        cache.downloaded_bytes,
    );

    e.single(
        "spindle_nm_log_followers",
        "gauge",
        "Log streams open with follow (spindle logs --follow).",
        g.log_followers,
    );
    e.family(
        "spindle_nm_log_aggregations_total",
        "counter",
        "Applications whose logs this node uploaded to the RM's log store, by outcome.",
    );
    e.sample(
        "spindle_nm_log_aggregations_total",
        &[("outcome", "uploaded")],
        m.aggregations_uploaded,
    );
    e.sample(
        "spindle_nm_log_aggregations_total",
        &[("outcome", "failed")],
        m.aggregations_failed,
    );
    e.single(
        "spindle_nm_log_aggregated_files_total",
        "counter",
        "Log files uploaded to the RM's log store.",
        m.aggregated_files,
    );
    e.single(
        "spindle_nm_log_aggregated_bytes_total",
        "counter",
        "Bytes of log files uploaded to the RM's log store.",
        m.aggregated_bytes,
    );
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::NodeMetrics;
    use std::time::Duration;

    #[test]
    fn every_family_is_declared_once_before_its_samples() {
        let m = NodeMetrics::default();
        m.launched(Duration::from_millis(30));
        m.completed(0);
        let text = render(
            "host:1\"x",
            &m.snapshot(),
            &Gauges::default(),
            &CacheStats::default(),
        );
        assert!(text.ends_with('\n'));
        let mut declared = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(declared.insert(name.clone()), "{name} declared twice");
                current = name;
            } else if !line.starts_with('#') {
                let series = line.split([' ', '{']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| series.strip_suffix(s).filter(|b| *b == current))
                    .unwrap_or(series);
                assert_eq!(base, current, "{line}");
            }
        }
        assert!(text.contains(r#"node_id="host:1\"x""#), "labels escaped");
        assert!(text.contains("spindle_nm_container_launch_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("spindle_nm_container_launch_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("spindle_nm_containers_completed_total{exit_class=\"success\"} 1\n"));
    }
}
