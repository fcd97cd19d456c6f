//! The node manager's HTTP surface, after YARN's NM web app: containers' log files as plain text
//! (`GET /node/containerlogs/<container_id>/<file>`), the node's description as JSON
//! (`GET /ws/v1/node/info`), and its metrics for Prometheus (`GET /metrics`).
//!
//! A log is served only to a caller with an NM token for its application (`Authorization:
//! Bearer <token>`, or `?nm.token=<token>` for a browser's link), as `ReadContainerLog` is; the
//! node's description and its metrics stay open. A log that was aggregated is no longer here:
//! the answer says to read it from the RM (`spindle logs`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use spindle_containers::ContainerId;

use crate::auth::{self, AccessError, Scope};
use crate::exposition;
use crate::logs::{self, LogError};
use crate::node::Node;

/// The query parameter that may carry the NM token (where a link cannot set a header).
const TOKEN_PARAM: &str = "nm.token";

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route(
            "/node/containerlogs/{container_id}/{file}",
            get(container_log),
        )
        .route("/ws/v1/node/info", get(node_info))
        .route("/metrics", get(metrics))
        .with_state(node)
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

/// The NM token the request carries, from its `Authorization: Bearer` header or its query.
fn presented<'a>(headers: &'a HeaderMap, query: &'a HashMap<String, String>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| query.get(TOKEN_PARAM).map(String::as_str))
}

fn check(node: &Node, token: Option<&str>) -> Result<Scope, AccessError> {
    let ring = node.keys.ring();
    auth::check_nm_token(
        ring.as_ref(),
        &node.node_id,
        token,
        spindle_security::now_ms(),
    )
}

fn refused(e: AccessError) -> Response {
    let status = match e {
        AccessError::NoKeysYet => StatusCode::SERVICE_UNAVAILABLE,
        AccessError::OtherApplication { .. } => StatusCode::FORBIDDEN,
        AccessError::Auth(_) | AccessError::WrongNode { .. } | AccessError::BadApplication(_) => {
            StatusCode::UNAUTHORIZED
        }
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED => format!(
            " (send an NM token for the container's application: Authorization: Bearer <token> \
             or ?{TOKEN_PARAM}=<token>)"
        ),
        _ => String::new(),
    };
    text(status, format!("{e}{hint}"))
}

async fn container_log(
    State(node): State<Arc<Node>>,
    Path((container_id, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let scope = match check(&node, presented(&headers, &query)) {
        Ok(scope) => scope,
        Err(e) => return refused(e),
    };
    let id: ContainerId = match container_id.parse() {
        Ok(id) => id,
        Err(e) => return text(StatusCode::NOT_FOUND, format!("container_id: {e}")),
    };
    if let Err(e) = scope.allows(id.application(), || format!("container {id}")) {
        return refused(e);
    }
    let opened = match logs::log_file(&node.layout, id, &file).await {
        Ok(path) => logs::read_from(path, 0).await,
        Err(e) => Err(e),
    };
    match opened {
        Ok(chunks) => {
            let body = Body::from_stream(chunks.map(|chunk| chunk.map(Bytes::from)));
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
        }
        Err(e @ LogError::BadFileName(_)) => text(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ LogError::Io { .. }) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => text(StatusCode::NOT_FOUND, e.to_string()),
    }
}

/// YARN's `nodeInfo` shape, with the fields Spindle has.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfo {
    id: String,
    node_host_name: String,
    node_http_address: String,
    node_manager_version: &'static str,
    rm_address: String,
    node_healthy: bool,
    health_report: String,
    /// The node's capacity (YARN's name for it).
    #[serde(rename = "totalPmemAllocatedContainersMB")]
    total_pmem_allocated_containers_mb: u64,
    total_v_cores_allocated_containers: u32,
    /// What the containers that are not complete hold.
    #[serde(rename = "allocatedMemoryMB")]
    allocated_memory_mb: u64,
    allocated_v_cores: u32,
    num_containers: usize,
}

async fn node_info(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let (allocated, num_containers) = node.containers.allocated();
    Json(serde_json::json!({
        "nodeInfo": NodeInfo {
            id: node.node_id.to_string(),
            node_host_name: node.hostname.clone(),
            node_http_address: node.http_address.clone(),
            node_manager_version: env!("CARGO_PKG_VERSION"),
            rm_address: node.rm_address.clone(),
            node_healthy: true,
            health_report: String::new(),
            total_pmem_allocated_containers_mb: node.capability.memory_mb,
            total_v_cores_allocated_containers: node.capability.vcores,
            allocated_memory_mb: allocated.memory_mb,
            allocated_v_cores: allocated.vcores,
            num_containers,
        }
    }))
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        exposition::render_node(&node),
    )
}
