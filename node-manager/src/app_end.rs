//! The end of an application on this node: stop what is left of it (-107), delete its working
//! dirs, and aggregate its logs to the RM's log store.
//!
//! Two things start it. The RM's heartbeat answers name an application to clean up, but only
//! while this node still runs one of its containers; so that every node that ran an application
//! hears of its end, the node also watches each application it has run (`WatchApplication`: one
//! stream per application, answered at each change, no polling). Once the watch says the
//! application is over and its last container here has completed (an application master that
//! has unregistered is given its time to exit), the same clean-up runs. Whichever comes first
//! does it; `ContainerTable::finish_app` makes sure it is done once.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures::future::join_all;
use spindle_containers::{ApplicationId, ContainerId, exit_status};
use spindle_protocol as proto;
use tracing::Instrument;

use crate::aggregation;
use crate::launch;
use crate::node::Node;
use crate::state_store::StopReason;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Cleans `app` up now, in the background, as the RM asked (unless that is done already).
pub fn clean_up(node: &Arc<Node>, app: ApplicationId) {
    let Some(containers) = node.containers.finish_app(app) else {
        return;
    };
    let node_ = Arc::clone(node);
    node.tasks.spawn(
        async move { clean_up_now(&node_, app, containers).await }
            .instrument(tracing::info_span!("application", %app)),
    );
}

/// Starts watching `app` at the RM, unless it is watched already.
pub fn watch(node: &Arc<Node>, app: ApplicationId) {
    let first = node
        .watched_apps
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(app);
    if !first {
        return;
    }
    let node_ = Arc::clone(node);
    node.tasks.spawn(
        async move {
            let mut stopping = node_.stopping.clone();
            tokio::select! {
                _ = stopping.wait_for(|stop| *stop) => {}
                () = watch_until_clean(&node_, app) => {}
            }
            node_
                .watched_apps
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&app);
        }
        .instrument(tracing::info_span!("application", %app)),
    );
}

/// Watches every application this node still holds logs of: after a restart, those whose end
/// it missed are cleaned up (and their logs aggregated) now.
pub async fn watch_apps_with_logs(node: &Arc<Node>) {
    let dir = node.layout.root().join("logs");
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Some(app) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            watch(node, app);
        }
    }
}

async fn watch_until_clean(node: &Arc<Node>, app: ApplicationId) {
    if !hear_end(node, app).await {
        return;
    }
    // The RM stops what is left of an application; an AM exits by itself after unregistering.
    let mut ended = node.containers.ended();
    loop {
        ended.borrow_and_update();
        if !node.containers.app_is_live(app) {
            break;
        }
        if ended.changed().await.is_err() {
            return;
        }
    }
    tracing::debug!("the application is over and none of its containers runs here");
    if let Some(containers) = node.containers.finish_app(app) {
        clean_up_now(node, app, containers).await;
    }
}

fn is_final(report: &proto::ApplicationReport) -> bool {
    matches!(
        report.state(),
        proto::ApplicationState::Finished
            | proto::ApplicationState::Failed
            | proto::ApplicationState::Killed
    )
}

/// Waits until the RM says `app` is over (or does not know it); `false` if the RM cannot say
/// (it has no such service), so the heartbeat answers alone will tell.
async fn hear_end(node: &Node, app: ApplicationId) -> bool {
    let mut client = node.rm.applications();
    let mut retry = FIRST_RETRY;
    loop {
        let request = proto::GetApplicationReportRequest {
            application_id: app.to_string(),
        };
        let status = match client.watch_application(request).await {
            Ok(reports) => {
                let mut reports = reports.into_inner();
                loop {
                    match reports.message().await {
                        Ok(Some(report)) if is_final(&report) => return true,
                        Ok(Some(_)) => retry = FIRST_RETRY,
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                    }
                }
            }
            Err(status) => Some(status),
        };
        match status {
            Some(s) if s.code() == tonic::Code::NotFound => {
                tracing::info!("the RM does not know the application: it is over");
                return true;
            }
            Some(s) if s.code() == tonic::Code::Unimplemented => {
                tracing::debug!("the RM cannot be watched: its heartbeat answers will tell");
                return false;
            }
            Some(s) => tracing::debug!(
                "watching the application at the RM failed ({:?}): {}; again in {retry:?}",
                s.code(),
                s.message()
            ),
            None => tracing::debug!("the RM ended the watch early; again in {retry:?}"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Stops an ended application's containers (-107), deletes its working dirs, and uploads its
/// logs to the RM's log store (deleting them here once the RM has them).
async fn clean_up_now(node: &Arc<Node>, app: ApplicationId, containers: Vec<ContainerId>) {
    let stops = containers.into_iter().map(|id| {
        launch::stop(
            node,
            id,
            StopReason::status(exit_status::KILLED_AFTER_APP_COMPLETION),
        )
    });
    join_all(stops).await;
    let dir = node.layout.app_dir(app);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => tracing::info!("cleaned up the application's working directories"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot delete {}: {e}", dir.display()),
    }
    match aggregation::aggregate(node, app).await {
        Ok(Some((files, bytes))) => {
            tracing::info!(files, bytes, "uploaded the application's logs to the RM")
        }
        Ok(None) => {}
        Err(aggregation::AggregationError::Stopping) => {
            tracing::info!("stopping: the application's logs stay here until the next start")
        }
        Err(e) => tracing::warn!("the application's logs stay on this node: {e}"),
    }
}
