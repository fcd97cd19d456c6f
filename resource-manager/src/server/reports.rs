//! The core's records as wire reports: application, attempt, container and node reports, and
//! Allocate answers (with the tokens for what they allocate). Read-only; the core task builds
//! them when asked or when something changed.

use std::collections::BTreeSet;

use spindle_containers::NodeId;
use spindle_protocol as proto;

use super::tokens::Grant;
use crate::core::{
    AllocateNews, AmCommand, App, AppState, Attempt, AttemptState, ContainerState, Core,
    FinalStatus, NodeIdx, NodeState,
};

pub fn app_state(s: AppState) -> proto::ApplicationState {
    match s {
        AppState::Submitted => proto::ApplicationState::Submitted,
        AppState::Accepted => proto::ApplicationState::Accepted,
        AppState::Running => proto::ApplicationState::Running,
        AppState::Finished => proto::ApplicationState::Finished,
        AppState::Failed => proto::ApplicationState::Failed,
        AppState::Killed => proto::ApplicationState::Killed,
    }
}

fn final_status(s: FinalStatus) -> proto::FinalStatus {
    match s {
        FinalStatus::Undefined => proto::FinalStatus::Undefined,
        FinalStatus::Succeeded => proto::FinalStatus::Succeeded,
        FinalStatus::Failed => proto::FinalStatus::Failed,
        FinalStatus::Killed => proto::FinalStatus::Killed,
    }
}

fn attempt_state(s: AttemptState) -> proto::AttemptState {
    match s {
        AttemptState::New => proto::AttemptState::New,
        AttemptState::Allocated => proto::AttemptState::Allocated,
        AttemptState::Launched => proto::AttemptState::Launched,
        AttemptState::Running => proto::AttemptState::Running,
        AttemptState::Finished => proto::AttemptState::Finished,
        AttemptState::Failed => proto::AttemptState::Failed,
        AttemptState::Killed => proto::AttemptState::Killed,
    }
}

fn container_state(s: ContainerState) -> proto::ContainerState {
    match s {
        ContainerState::Allocated => proto::ContainerState::New,
        ContainerState::Running => proto::ContainerState::Running,
        ContainerState::Completed | ContainerState::Released => proto::ContainerState::Complete,
    }
}

fn node_state(s: NodeState) -> proto::NodeState {
    match s {
        NodeState::Running => proto::NodeState::Running,
        NodeState::Unhealthy => proto::NodeState::Unhealthy,
        NodeState::Lost => proto::NodeState::Lost,
    }
}

pub fn node_report(core: &Core, idx: NodeIdx) -> proto::NodeReport {
    let n = core.node(idx);
    proto::NodeReport {
        node_id: n.id.to_string(),
        hostname: n.hostname.clone(),
        http_address: n.http_address.clone(),
        state: node_state(n.state) as i32,
        capability: Some(n.capability.to_proto()),
        used: Some(n.used.to_proto()),
        num_containers: n.live.len() as u32,
        last_heartbeat_ms: n.last_heartbeat_ms,
        health_report: n.health_report.clone(),
    }
}

fn attempt_report(core: &Core, a: &Attempt) -> proto::AttemptReport {
    let am_node = a
        .am_container
        .and_then(|c| core.container(c))
        .map(|c| core.node(c.node));
    proto::AttemptReport {
        attempt_id: a.id.to_string(),
        state: attempt_state(a.state) as i32,
        am_container_id: a.am_container.map(|c| c.to_string()).unwrap_or_default(),
        node_id: am_node.map(|n| n.id.to_string()).unwrap_or_default(),
        node_http_address: am_node.map(|n| n.http_address.clone()).unwrap_or_default(),
        diagnostics: a.diagnostics.clone(),
        start_time_ms: a.start_ms,
        finish_time_ms: a.finish_ms.unwrap_or(0),
        tracking_url: a.tracking_url.clone(),
        host: a.host.clone(),
        rpc_port: a.rpc_port,
    }
}

pub fn app_report(core: &Core, app: &App) -> proto::ApplicationReport {
    let current = app.current_attempt();
    let containers = app
        .containers
        .iter()
        .filter_map(|id| core.container(*id))
        .map(|c| {
            let node = core.node(c.node);
            proto::ContainerReport {
                container_id: c.id.to_string(),
                node_id: node.id.to_string(),
                node_http_address: node.http_address.clone(),
                resource: Some(c.resource.to_proto()),
                state: container_state(c.state) as i32,
                exit_status: c.exit_status.unwrap_or(0),
                diagnostics: c.diagnostics.clone(),
            }
        })
        .collect();
    let progress = match app.state {
        AppState::Finished => 1.0,
        _ => current.map_or(0.0, |a| a.progress),
    };
    proto::ApplicationReport {
        application_id: app.id.to_string(),
        name: app.name.clone(),
        queue: app.queue.clone(),
        user: app.user.clone(),
        application_type: app.application_type.clone(),
        tags: app.tags.clone(),
        state: app_state(app.state) as i32,
        final_status: final_status(app.final_status) as i32,
        diagnostics: app.diagnostics.clone(),
        start_time_ms: app.submit_ms,
        finish_time_ms: app.finish_ms.unwrap_or(0),
        progress,
        tracking_url: current.map(|a| a.tracking_url.clone()).unwrap_or_default(),
        host: current.map(|a| a.host.clone()).unwrap_or_default(),
        current_attempt_id: current.map(|a| a.id.to_string()).unwrap_or_default(),
        attempts: app
            .attempts
            .iter()
            .map(|a| attempt_report(core, a))
            .collect(),
        containers,
        allocated: Some(app.allocated.to_proto()),
        running_containers: app.live_containers,
        unmanaged: app.unmanaged,
        submit_time_ms: app.submit_ms,
    }
}

/// An Allocate answer of `grant`'s application: each allocated container with its container
/// token, and an NM token for each node they are on.
pub fn allocate_response(
    core: &Core,
    news: AllocateNews,
    grant: &Grant,
) -> proto::AllocateResponse {
    let nodes: BTreeSet<&NodeId> = news.allocated.iter().map(|c| &c.node).collect();
    let nm_tokens = nodes
        .into_iter()
        .map(|node| {
            grant
                .keys
                .nm_token(grant.app, node, grant.owner, grant.now_ms)
        })
        .collect();
    proto::AllocateResponse {
        nm_tokens,
        am_token: String::new(),
        allocated: news
            .allocated
            .into_iter()
            .map(|c| proto::Container {
                container_token: grant.keys.container_token(
                    c.id,
                    &c.node,
                    c.resource,
                    grant.owner,
                    grant.now_ms,
                ),
                container_id: c.id.to_string(),
                node_id: c.node.to_string(),
                node_address: c.node.to_string(),
                node_http_address: c.node_http_address,
                resource: Some(c.resource.to_proto()),
                priority: c.priority,
            })
            .collect(),
        completed: news
            .completed
            .into_iter()
            .map(|c| proto::ContainerStatus {
                container_id: c.id.to_string(),
                state: proto::ContainerState::Complete as i32,
                exit_status: c.exit_status,
                diagnostics: c.diagnostics,
            })
            .collect(),
        updated_nodes: news
            .updated_nodes
            .into_iter()
            .map(|idx| node_report(core, idx))
            .collect(),
        num_cluster_nodes: news.num_cluster_nodes,
        available: Some(news.available.to_proto()),
        command: match news.command {
            Some(AmCommand::Shutdown) => proto::AmCommand::Shutdown as i32,
            Some(AmCommand::Resync) => proto::AmCommand::Resync as i32,
            None => proto::AmCommand::None as i32,
        },
    }
}

/// The answer to a poll that is superseded by a newer one from the same attempt: no news (the
/// newer poll gets it), just the cluster's size.
pub fn empty_allocate_response(core: &Core) -> proto::AllocateResponse {
    proto::AllocateResponse {
        num_cluster_nodes: core.nodes().schedulable_count() as u32,
        available: Some(core.nodes().available().to_proto()),
        ..Default::default()
    }
}
