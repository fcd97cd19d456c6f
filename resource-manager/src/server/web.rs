//! The RM's HTTP surface, modeled on YARN's REST API: `GET /ws/v1/cluster/info` and
//! `GET /ws/v1/cluster/apps` (optionally `?states=RUNNING,FINISHED&queue=default`), in YARN's
//! JSON shapes so that tools written for YARN can read them.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::handle::CoreHandle;
use crate::core::{App, Core};

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone)]
struct WebState {
    core: CoreHandle,
    /// The timestamp ids carry: the first start's, kept across restarts.
    cluster_id: u64,
    /// This start's.
    started_on: u64,
}

pub fn router(core: CoreHandle, cluster_id: u64, started_on: u64) -> Router {
    Router::new()
        .route("/ws/v1/cluster", get(cluster_info))
        .route("/ws/v1/cluster/info", get(cluster_info))
        .route("/ws/v1/cluster/apps", get(apps))
        .with_state(WebState {
            core,
            cluster_id,
            started_on,
        })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterInfo {
    id: u64,
    started_on: u64,
    state: &'static str,
    ha_state: &'static str,
    resource_manager_version: &'static str,
    resource_manager_build_version: &'static str,
}

async fn cluster_info(State(web): State<WebState>) -> Json<serde_json::Value> {
    let info = ClusterInfo {
        id: web.cluster_id,
        started_on: web.started_on,
        state: "STARTED",
        ha_state: "ACTIVE",
        resource_manager_version: VERSION,
        resource_manager_build_version: VERSION,
    };
    Json(serde_json::json!({ "clusterInfo": info }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppInfo {
    id: String,
    user: String,
    name: String,
    queue: String,
    state: String,
    final_status: String,
    /// Percent, as YARN reports it.
    progress: f32,
    tracking_url: String,
    diagnostics: String,
    cluster_id: u64,
    application_type: String,
    application_tags: String,
    started_time: u64,
    finished_time: u64,
    elapsed_time: u64,
    am_host_http_address: String,
    #[serde(rename = "allocatedMB")]
    allocated_mb: u64,
    allocated_v_cores: u32,
    running_containers: u32,
    unmanaged_application: bool,
}

fn app_info(core: &Core, app: &App, now: u64) -> AppInfo {
    let attempt = app.current_attempt();
    let am_node = attempt
        .and_then(|a| a.am_container)
        .and_then(|c| core.container(c))
        .map(|c| core.node(c.node).http_address.clone());
    let progress = if app.state == crate::core::AppState::Finished {
        100.0
    } else {
        attempt.map_or(0.0, |a| a.progress * 100.0)
    };
    AppInfo {
        id: app.id.to_string(),
        user: app.user.clone(),
        name: app.name.clone(),
        queue: app.queue.clone(),
        state: app.state.to_string(),
        final_status: app.final_status.to_string(),
        progress,
        tracking_url: attempt.map(|a| a.tracking_url.clone()).unwrap_or_default(),
        diagnostics: app.diagnostics.clone(),
        cluster_id: core.config().cluster_timestamp,
        application_type: app.application_type.clone(),
        application_tags: app.tags.join(","),
        started_time: app.submit_ms,
        finished_time: app.finish_ms.unwrap_or(0),
        elapsed_time: app.finish_ms.unwrap_or(now).saturating_sub(app.submit_ms),
        am_host_http_address: am_node.unwrap_or_default(),
        allocated_mb: app.allocated.memory_mb,
        allocated_v_cores: app.allocated.vcores,
        running_containers: app.live_containers,
        unmanaged_application: app.unmanaged,
    }
}

async fn apps(
    State(web): State<WebState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let states: Vec<String> = query
        .get("states")
        .or_else(|| query.get("state"))
        .map(|s| {
            s.split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let queue = query.get("queue").cloned().unwrap_or_default();
    let apps = web
        .core
        .read(move |core, now| {
            core.apps()
                .filter(|a| states.is_empty() || states.contains(&a.state.to_string()))
                .filter(|a| queue.is_empty() || a.queue == queue)
                .map(|a| app_info(core, a, now))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|status| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                status.message().to_string(),
            )
        })?;
    Ok(Json(serde_json::json!({ "apps": { "app": apps } })))
}
