//! The core's records in the JSON shapes of YARN's ResourceManager REST API (`app`,
//! `appAttempt`, `node`, `clusterMetrics`, `schedulerInfo`), field for field where Spindle has
//! the value, so that tools written for YARN read them. The UI shows the same values.

use serde::Serialize;
use spindle_containers::{ContainerId, Resource};

use super::summary::Summary;
use crate::core::{App, AppState, Attempt, Core, NodeIdx, NodeState};

/// Where an NM serves a container's log file.
pub fn log_url(node_http_address: &str, container: ContainerId, file: &str) -> String {
    format!("http://{node_http_address}/node/containerlogs/{container}/{file}")
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub id: String,
    pub user: String,
    pub name: String,
    pub queue: String,
    pub state: String,
    pub final_status: String,
    /// Percent, as YARN reports it.
    pub progress: f32,
    #[serde(rename = "trackingUI")]
    pub tracking_ui: &'static str,
    pub tracking_url: String,
    pub diagnostics: String,
    pub cluster_id: u64,
    pub application_type: String,
    pub application_tags: String,
    pub priority: i32,
    pub started_time: u64,
    pub launch_time: u64,
    pub finished_time: u64,
    pub elapsed_time: u64,
    pub am_container_logs: String,
    pub am_host_http_address: String,
    #[serde(rename = "amRPCAddress")]
    pub am_rpc_address: String,
    #[serde(rename = "allocatedMB")]
    pub allocated_mb: u64,
    #[serde(rename = "allocatedVCores")]
    pub allocated_vcores: u32,
    pub running_containers: u32,
    pub memory_seconds: u64,
    pub vcore_seconds: u64,
    pub queue_usage_percentage: f64,
    pub cluster_usage_percentage: f64,
    #[serde(rename = "preemptedResourceMB")]
    pub preempted_resource_mb: u64,
    #[serde(rename = "preemptedResourceVCores")]
    pub preempted_resource_vcores: u32,
    #[serde(rename = "numNonAMContainerPreempted")]
    pub num_non_am_container_preempted: u32,
    #[serde(rename = "numAMContainerPreempted")]
    pub num_am_container_preempted: u32,
    pub log_aggregation_status: &'static str,
    pub unmanaged_application: bool,
    pub max_app_attempts: u32,
    pub current_app_attempt_id: String,
}

pub fn app_info(core: &Core, app: &App, now: u64, cluster_total_mb: u64) -> AppInfo {
    let attempt = app.current_attempt();
    let am = attempt
        .and_then(|a| a.am_container)
        .and_then(|c| core.container(c));
    let am_node = am.map(|c| core.node(c.node));
    let progress = if app.state == AppState::Finished {
        100.0
    } else {
        attempt.map_or(0.0, |a| a.progress * 100.0)
    };
    let tracking_url = attempt.map(|a| a.tracking_url.clone()).unwrap_or_default();
    let tracking_ui = if app.state.is_final() {
        "History"
    } else if tracking_url.is_empty() {
        "UNASSIGNED"
    } else {
        "ApplicationMaster"
    };
    let (memory_seconds, vcore_seconds) = usage_seconds(core, app, now);
    let usage = if cluster_total_mb == 0 {
        0.0
    } else {
        app.allocated.memory_mb as f64 * 100.0 / cluster_total_mb as f64
    };
    AppInfo {
        id: app.id.to_string(),
        user: app.user.clone(),
        name: app.name.clone(),
        queue: app.queue.clone(),
        state: app.state.to_string(),
        final_status: app.final_status.to_string(),
        progress,
        tracking_ui,
        tracking_url,
        diagnostics: app.diagnostics.clone(),
        cluster_id: core.config().cluster_timestamp,
        application_type: app.application_type.clone(),
        application_tags: app.tags.join(","),
        priority: 0,
        started_time: app.submit_ms,
        launch_time: am.map_or(0, |c| c.allocated_ms),
        finished_time: app.finish_ms.unwrap_or(0),
        elapsed_time: app.finish_ms.unwrap_or(now).saturating_sub(app.submit_ms),
        am_container_logs: match (am, am_node) {
            (Some(c), Some(n)) if !n.http_address.is_empty() => {
                log_url(&n.http_address, c.id, "stderr")
            }
            _ => String::new(),
        },
        am_host_http_address: am_node.map(|n| n.http_address.clone()).unwrap_or_default(),
        am_rpc_address: attempt
            .filter(|a| !a.host.is_empty())
            .map(|a| format!("{}:{}", a.host, a.rpc_port))
            .unwrap_or_default(),
        allocated_mb: app.allocated.memory_mb,
        allocated_vcores: app.allocated.vcores,
        running_containers: app.live_containers,
        memory_seconds,
        vcore_seconds,
        queue_usage_percentage: usage,
        cluster_usage_percentage: usage,
        preempted_resource_mb: 0,
        preempted_resource_vcores: 0,
        num_non_am_container_preempted: 0,
        num_am_container_preempted: 0,
        log_aggregation_status: "DISABLED",
        unmanaged_application: app.unmanaged,
        max_app_attempts: app.max_attempts,
        current_app_attempt_id: attempt.map(|a| a.id.to_string()).unwrap_or_default(),
    }
}

/// YARN's aggregate usage: MB·seconds and vcore·seconds over every container the application
/// held, until it ended or until now.
fn usage_seconds(core: &Core, app: &App, now: u64) -> (u64, u64) {
    let (memory_ms, vcore_ms) = app
        .containers
        .iter()
        .filter_map(|id| core.container(*id))
        .map(|c| {
            let held_ms = c.finished_ms.unwrap_or(now).saturating_sub(c.allocated_ms);
            (
                c.resource.memory_mb.saturating_mul(held_ms),
                u64::from(c.resource.vcores).saturating_mul(held_ms),
            )
        })
        .fold((0u64, 0u64), |(m, v), (dm, dv)| {
            (m.saturating_add(dm), v.saturating_add(dv))
        });
    (memory_ms / 1000, vcore_ms / 1000)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptInfo {
    /// The attempt's number, as YARN gives it.
    pub id: u32,
    pub app_attempt_id: String,
    pub app_attempt_state: String,
    pub start_time: u64,
    pub finished_time: u64,
    pub container_id: String,
    pub node_id: String,
    pub node_http_address: String,
    pub logs_link: String,
    pub blacklisted_nodes: String,
    pub diagnostics_info: String,
    /// Where the AM said it serves its own UI.
    pub tracking_url: String,
}

pub fn attempt_info(core: &Core, a: &Attempt) -> AttemptInfo {
    let am = a.am_container.and_then(|c| core.container(c));
    let node = am.map(|c| core.node(c.node));
    let http = node.map(|n| n.http_address.clone()).unwrap_or_default();
    AttemptInfo {
        id: a.id.attempt,
        app_attempt_id: a.id.to_string(),
        app_attempt_state: a.state.to_string(),
        start_time: a.start_ms,
        finished_time: a.finish_ms.unwrap_or(0),
        container_id: a.am_container.map(|c| c.to_string()).unwrap_or_default(),
        node_id: node.map(|n| n.id.to_string()).unwrap_or_default(),
        logs_link: match a.am_container {
            Some(c) if !http.is_empty() => log_url(&http, c, "stderr"),
            _ => String::new(),
        },
        node_http_address: http,
        blacklisted_nodes: String::new(),
        diagnostics_info: a.diagnostics.clone(),
        tracking_url: a.tracking_url.clone(),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub rack: &'static str,
    pub state: String,
    pub id: String,
    pub node_host_name: String,
    #[serde(rename = "nodeHTTPAddress")]
    pub node_http_address: String,
    pub last_health_update: u64,
    pub version: &'static str,
    pub health_report: String,
    pub num_containers: usize,
    #[serde(rename = "usedMemoryMB")]
    pub used_memory_mb: u64,
    #[serde(rename = "availMemoryMB")]
    pub avail_memory_mb: u64,
    pub used_virtual_cores: u32,
    pub available_virtual_cores: u32,
}

pub fn node_info(core: &Core, idx: NodeIdx) -> NodeInfo {
    let n = core.node(idx);
    let free = n.capability.saturating_sub(&n.used);
    NodeInfo {
        rack: "/default-rack",
        state: n.state.to_string(),
        id: n.id.to_string(),
        node_host_name: n.hostname.clone(),
        node_http_address: n.http_address.clone(),
        last_health_update: n.last_heartbeat_ms,
        version: "",
        health_report: n.health_report.clone(),
        num_containers: n.live.len(),
        used_memory_mb: n.used.memory_mb,
        avail_memory_mb: free.memory_mb,
        used_virtual_cores: n.used.vcores,
        available_virtual_cores: free.vcores,
    }
}

/// The node states YARN's `states` filter may name; Spindle's nodes are only ever in the
/// first three, the rest match nothing.
pub const YARN_NODE_STATES: [&str; 8] = [
    "NEW",
    "RUNNING",
    "UNHEALTHY",
    "DECOMMISSIONING",
    "DECOMMISSIONED",
    "LOST",
    "REBOOTED",
    "SHUTDOWN",
];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMetrics {
    pub apps_submitted: u64,
    pub apps_completed: u64,
    pub apps_pending: u64,
    pub apps_running: u64,
    pub apps_failed: u64,
    pub apps_killed: u64,
    #[serde(rename = "reservedMB")]
    pub reserved_mb: u64,
    #[serde(rename = "availableMB")]
    pub available_mb: u64,
    #[serde(rename = "allocatedMB")]
    pub allocated_mb: u64,
    #[serde(rename = "pendingMB")]
    pub pending_mb: u64,
    pub reserved_virtual_cores: u32,
    pub available_virtual_cores: u32,
    pub allocated_virtual_cores: u32,
    pub containers_allocated: u64,
    pub containers_reserved: u64,
    pub containers_pending: u64,
    #[serde(rename = "totalMB")]
    pub total_mb: u64,
    pub total_virtual_cores: u32,
    pub total_nodes: u64,
    pub lost_nodes: u64,
    pub unhealthy_nodes: u64,
    pub decommissioning_nodes: u64,
    pub decommissioned_nodes: u64,
    pub rebooted_nodes: u64,
    pub active_nodes: u64,
    pub shutdown_nodes: u64,
}

pub fn cluster_metrics(s: &Summary) -> ClusterMetrics {
    let total = s.total();
    ClusterMetrics {
        apps_submitted: s.total_apps(),
        apps_completed: s.apps_in(AppState::Finished)
            + s.apps_in(AppState::Failed)
            + s.apps_in(AppState::Killed),
        apps_pending: s.apps_in(AppState::Submitted) + s.apps_in(AppState::Accepted),
        apps_running: s.apps_in(AppState::Running),
        apps_failed: s.apps_in(AppState::Failed),
        apps_killed: s.apps_in(AppState::Killed),
        reserved_mb: 0,
        available_mb: s.available.memory_mb,
        allocated_mb: s.used.memory_mb,
        pending_mb: s.pending_memory_mb,
        reserved_virtual_cores: 0,
        available_virtual_cores: s.available.vcores,
        allocated_virtual_cores: s.used.vcores,
        containers_allocated: s.containers_allocated + s.containers_running,
        containers_reserved: 0,
        containers_pending: s.containers_pending,
        total_mb: total.memory_mb,
        total_virtual_cores: total.vcores,
        total_nodes: s.total_nodes(),
        lost_nodes: s.nodes_in(NodeState::Lost),
        unhealthy_nodes: s.nodes_in(NodeState::Unhealthy),
        decommissioning_nodes: 0,
        decommissioned_nodes: 0,
        rebooted_nodes: 0,
        active_nodes: s.nodes_in(NodeState::Running),
        shutdown_nodes: 0,
    }
}

/// YARN's FIFO scheduler description: one queue holding the whole cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerInfo {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub capacity: f64,
    pub used_capacity: f64,
    pub qstate: &'static str,
    pub min_queue_memory_capacity: u64,
    pub max_queue_memory_capacity: u64,
    pub num_nodes: u64,
    pub used_node_capacity: u64,
    pub avail_node_capacity: u64,
    pub total_node_capacity: u64,
    pub num_containers: u64,
}

pub fn scheduler_info(min: Resource, max: Resource, s: &Summary) -> SchedulerInfo {
    let total = s.total().memory_mb;
    SchedulerInfo {
        kind: "fifoScheduler",
        capacity: 1.0,
        used_capacity: if total == 0 {
            0.0
        } else {
            s.used.memory_mb as f64 / total as f64
        },
        qstate: "RUNNING",
        min_queue_memory_capacity: min.memory_mb,
        max_queue_memory_capacity: max.memory_mb,
        num_nodes: s.total_nodes() - s.nodes_in(NodeState::Lost),
        used_node_capacity: s.used.memory_mb,
        avail_node_capacity: s.available.memory_mb,
        total_node_capacity: total,
        num_containers: s.containers_allocated + s.containers_running,
    }
}
