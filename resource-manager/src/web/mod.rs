//! The RM's HTTP port: YARN's ResourceManager REST API under `/ws/v1/cluster` (reads in
//! `rest`, submission and kill in `submit`, in YARN's JSON shapes from `yarn`), the web UI under
//! `/cluster` (`ui`), and Prometheus metrics at `/metrics` (`metrics`). Every call goes through
//! `auth` first, and every answer comes from the core task, through the same commands the gRPC
//! services send: there is no second path to the state.

mod auth;
mod error;
mod filters;
mod metrics;
mod rest;
mod submit;
mod summary;
mod ui;
mod yarn;

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use spindle_containers::Resource;
use spindle_security::Secret;

use error::WebError;

use crate::server::acl::Acl;
use crate::server::handle::CoreHandle;

/// What every handler needs: the way to the core and the RM's fixed facts.
#[derive(Clone)]
pub struct WebState {
    pub core: CoreHandle,
    /// The timestamp ids carry: the first start's, kept across restarts.
    pub cluster_id: u64,
    /// This start's time, ms since the epoch.
    pub started_on: u64,
    pub minimum: Resource,
    pub maximum: Resource,
    /// The client secret, which changing calls present as their bearer.
    pub secret: Arc<Secret>,
    pub acl: Arc<Acl>,
    pub anonymous_reads: bool,
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/ws/v1/cluster", get(rest::cluster_info))
        .route("/ws/v1/cluster/info", get(rest::cluster_info))
        .route("/ws/v1/cluster/metrics", get(rest::cluster_metrics))
        .route("/ws/v1/cluster/scheduler", get(rest::scheduler))
        .route("/ws/v1/cluster/apps", get(rest::apps).post(submit::submit))
        .route(
            "/ws/v1/cluster/apps/new-application",
            post(submit::new_application),
        )
        .route("/ws/v1/cluster/apps/{appid}", get(rest::app))
        .route(
            "/ws/v1/cluster/apps/{appid}/appattempts",
            get(rest::attempts),
        )
        .route(
            "/ws/v1/cluster/apps/{appid}/state",
            get(rest::app_state).put(submit::kill),
        )
        .route("/ws/v1/cluster/nodes", get(rest::nodes))
        .route("/ws/v1/cluster/nodes/{nodeid}", get(rest::node))
        .route("/metrics", get(metrics::metrics))
        .merge(ui::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .with_state(state)
}

/// Unknown paths: YARN's NotFoundException under the REST API, a page elsewhere.
async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/ws/") {
        WebError::NotFound(format!("no such resource: {path}")).into_response()
    } else {
        ui::not_found(&path)
    }
}
