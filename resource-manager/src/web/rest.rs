//! The read side of YARN's ResourceManager REST API: cluster info, metrics and scheduler,
//! applications (filtered), one application, its attempts and its state, the nodes and one
//! node. Every answer is computed by one look at the core, so it is consistent in itself.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use spindle_containers::{ApplicationId, NodeId};

use super::WebState;
use super::error::WebError;
use super::filters::AppFilter;
use super::summary::Summary;
use super::yarn::{self, YARN_NODE_STATES};
use crate::core::CoreError;

const VERSION: &str = env!("CARGO_PKG_VERSION");

type Answer = Result<Json<Value>, WebError>;

pub fn application_id(value: &str) -> Result<ApplicationId, WebError> {
    value.parse().map_err(|e: spindle_containers::IdError| {
        WebError::BadRequest(format!("Invalid ApplicationId {value:?}: {e}"))
    })
}

fn node_id(value: &str) -> Result<NodeId, WebError> {
    value.parse().map_err(|e: spindle_containers::IdError| {
        WebError::BadRequest(format!("Invalid NodeId {value:?}: {e}"))
    })
}

pub async fn cluster_info(State(web): State<WebState>) -> Json<Value> {
    Json(json!({
        "clusterInfo": {
            "id": web.cluster_id,
            "startedOn": web.started_on,
            "state": "STARTED",
            "haState": "ACTIVE",
            "rmStateStoreName": "spindle embedded state store (redb)",
            "resourceManagerVersion": VERSION,
            "resourceManagerBuildVersion": VERSION,
            "resourceManagerVersionBuiltOn": "",
            "hadoopVersion": "",
            "hadoopBuildVersion": "",
            "hadoopVersionBuiltOn": "",
        }
    }))
}

pub async fn cluster_metrics(State(web): State<WebState>) -> Answer {
    let metrics = web
        .core
        .read(|core, _| yarn::cluster_metrics(&Summary::of(core)))
        .await?;
    Ok(Json(json!({ "clusterMetrics": metrics })))
}

pub async fn scheduler(State(web): State<WebState>) -> Answer {
    let (min, max) = (web.minimum, web.maximum);
    let info = web
        .core
        .read(move |core, _| yarn::scheduler_info(min, max, &Summary::of(core)))
        .await?;
    Ok(Json(json!({ "scheduler": { "schedulerInfo": info } })))
}

pub async fn apps(
    State(web): State<WebState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let filter = AppFilter::parse(&query).map_err(WebError::BadRequest)?;
    let apps = web
        .core
        .read(move |core, now| {
            let total_mb = Summary::of(core).total().memory_mb;
            filter
                .select(core.apps())
                .into_iter()
                .map(|a| yarn::app_info(core, a, now, total_mb))
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(json!({ "apps": { "app": apps } })))
}

pub async fn app(State(web): State<WebState>, Path(app): Path<String>) -> Answer {
    let id = application_id(&app)?;
    let info = web
        .core
        .read(move |core, now| {
            let total_mb = Summary::of(core).total().memory_mb;
            core.app(id).map(|a| yarn::app_info(core, a, now, total_mb))
        })
        .await?
        .ok_or(CoreError::UnknownApplication(id))?;
    Ok(Json(json!({ "app": info })))
}

pub async fn attempts(State(web): State<WebState>, Path(app): Path<String>) -> Answer {
    let id = application_id(&app)?;
    let attempts = web
        .core
        .read(move |core, _| {
            core.app(id).map(|a| {
                a.attempts
                    .iter()
                    .map(|attempt| yarn::attempt_info(core, attempt))
                    .collect::<Vec<_>>()
            })
        })
        .await?
        .ok_or(CoreError::UnknownApplication(id))?;
    Ok(Json(json!({ "appAttempts": { "appAttempt": attempts } })))
}

pub async fn app_state(State(web): State<WebState>, Path(app): Path<String>) -> Answer {
    let id = application_id(&app)?;
    let state = web
        .core
        .read(move |core, _| core.app(id).map(|a| a.state.to_string()))
        .await?
        .ok_or(CoreError::UnknownApplication(id))?;
    Ok(Json(json!({ "state": state })))
}

pub async fn nodes(
    State(web): State<WebState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let mut states = Vec::new();
    for state in query
        .get("states")
        .map(|s| s.split(','))
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
    {
        if !YARN_NODE_STATES.contains(&state.as_str()) {
            return Err(WebError::BadRequest(format!(
                "Invalid node state {state} specified: it should be one of {}",
                YARN_NODE_STATES.join(", ")
            )));
        }
        states.push(state);
    }
    let nodes = web
        .core
        .read(move |core, _| {
            core.nodes()
                .iter()
                .filter(|(_, n)| states.is_empty() || states.contains(&n.state.to_string()))
                .map(|(idx, _)| yarn::node_info(core, idx))
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(json!({ "nodes": { "node": nodes } })))
}

pub async fn node(State(web): State<WebState>, Path(node): Path<String>) -> Answer {
    let id = node_id(&node)?;
    let lookup = id.clone();
    let info = web
        .core
        .read(move |core, _| {
            core.nodes()
                .lookup(&lookup)
                .map(|idx| yarn::node_info(core, idx))
        })
        .await?
        .ok_or(CoreError::UnknownNode(id))?;
    Ok(Json(json!({ "node": info })))
}
