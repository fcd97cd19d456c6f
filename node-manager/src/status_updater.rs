//! Registration with the RM and the heartbeats after it (YARN's NodeStatusUpdater). Registration
//! is retried with exponential back-off until the RM answers, so a node may start before its RM.
//! Heartbeats go at the interval the RM asks for, and at once (coalesced) whenever a container
//! completes, so completions reach application masters without waiting for the next beat. The
//! RM's answers are carried out here: acknowledgements, containers and applications to clean
//! up (see `app_end`), and re-registration when the RM no longer knows this node.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use spindle_containers::{ApplicationId, ContainerId, exit_status};
use spindle_protocol as proto;
use spindle_protocol::resource_tracker_client::ResourceTrackerClient;
use tokio::sync::watch;

use crate::app_end;
use crate::launch;
use crate::node::Node;
use crate::rm_client::RmChannel;
use crate::state_store::StopReason;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// A registration or heartbeat the RM has not answered in this long counts as failed, so a hung
/// RM cannot stall the node's updates.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// Used when the RM leaves the interval unset.
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs until `shutdown` turns true, the RM orders this node to shut down, or it refuses to
/// register it.
pub async fn run(node: Arc<Node>, mut shutdown: watch::Receiver<bool>) {
    let mut client = node.rm.resource_tracker();
    loop {
        let Some(registered) = until(&mut shutdown, register(&node, &mut client)).await else {
            return;
        };
        let mut interval = match registered {
            Ok(interval) => interval,
            Err(refusal) => {
                tracing::error!(
                    rm = %node.rm_address,
                    "the RM refused to register this node manager, giving up: {refusal}"
                );
                node.fatal.send_replace(Some(refusal));
                return;
            }
        };
        loop {
            let beat = async {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = node.containers.completed().notified() => {}
                }
            };
            if until(&mut shutdown, beat).await.is_none() {
                return;
            }
            let request = proto::NodeHeartbeatRequest {
                node_id: node.node_id.to_string(),
                containers: node.containers.statuses_to_report(),
                healthy: true,
                health_report: String::new(),
            };
            let call = tokio::time::timeout(RPC_TIMEOUT, client.node_heartbeat(request));
            let Some(answer) = until(&mut shutdown, call).await else {
                return;
            };
            let answer = match answer.unwrap_or_else(|_| Err(timed_out())) {
                Ok(answer) => answer.into_inner(),
                Err(status) => {
                    tracing::warn!(
                        rm = %node.rm_address,
                        "heartbeat to the RM failed ({:?}): {}; trying again in {interval:?}",
                        status.code(),
                        status.message()
                    );
                    continue;
                }
            };
            if answer.heartbeat_interval_ms > 0 {
                interval = Duration::from_millis(answer.heartbeat_interval_ms.into());
            }
            node.keys.announce(&answer.node_keys);
            carry_out(&node, &answer);
            match answer.action() {
                proto::NodeAction::Normal => {}
                proto::NodeAction::Resync => {
                    tracing::info!("the RM does not know this node any more: registering again");
                    break;
                }
                proto::NodeAction::Shutdown => {
                    tracing::warn!(
                        "the RM ordered this node to shut down: stopping its containers"
                    );
                    launch::stop_all(&node, exit_status::KILLED_BY_RESOURCEMANAGER).await;
                    return;
                }
            }
        }
    }
}

/// `f`'s output, or `None` if shutdown came first.
async fn until<T>(shutdown: &mut watch::Receiver<bool>, f: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        _ = shutdown.wait_for(|stop| *stop) => None,
        out = f => Some(out),
    }
}

fn timed_out() -> tonic::Status {
    tonic::Status::deadline_exceeded(format!("no answer from the RM within {RPC_TIMEOUT:?}"))
}

/// Whether the RM refused the node itself, so that asking again cannot help.
fn is_refusal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
}

/// Registers, retrying until the RM answers; returns the heartbeat interval it asked for, or the
/// RM's refusal.
async fn register(
    node: &Node,
    client: &mut ResourceTrackerClient<RmChannel>,
) -> Result<Duration, String> {
    let mut retry = FIRST_RETRY;
    let mut attempts: u32 = 0;
    loop {
        let request = proto::RegisterNodeRequest {
            node_id: node.node_id.to_string(),
            hostname: node.hostname.clone(),
            http_address: node.http_address.clone(),
            capability: Some(node.capability.to_proto()),
            containers: node.containers.statuses_to_report(),
        };
        let call = tokio::time::timeout(RPC_TIMEOUT, client.register_node_manager(request));
        match call.await.unwrap_or_else(|_| Err(timed_out())) {
            Ok(answer) => {
                let answer = answer.into_inner();
                node.keys.announce(&answer.node_keys);
                tracing::info!(
                    node_id = %node.node_id,
                    rm = %node.rm_address,
                    cluster_timestamp = answer.cluster_timestamp,
                    capability = ?node.capability,
                    node_keys = answer.node_keys.len(),
                    "registered with the RM"
                );
                return Ok(match answer.heartbeat_interval_ms {
                    0 => DEFAULT_HEARTBEAT_INTERVAL,
                    ms => Duration::from_millis(ms.into()),
                });
            }
            Err(status) if is_refusal(&status) => return Err(status.message().to_string()),
            Err(status) => {
                attempts += 1;
                // The RM not being up yet is normal at start: say so once, then quietly retry.
                let message = status.message();
                if attempts == 1 || attempts.is_multiple_of(20) {
                    tracing::warn!(rm = %node.rm_address, attempts, "cannot register with the RM yet: {message}");
                } else {
                    tracing::debug!(rm = %node.rm_address, attempts, "cannot register with the RM yet: {message}");
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// Acts on a heartbeat answer: forgets acknowledged completions, and starts (in the
/// background) the stops and clean-ups the RM asked for.
fn carry_out(node: &Arc<Node>, answer: &proto::NodeHeartbeatResponse) {
    node.containers
        .acknowledge(parse_all::<ContainerId>(&answer.containers_acknowledged));
    for id in parse_all::<ContainerId>(&answer.containers_to_cleanup) {
        let node_ = Arc::clone(node);
        node.tasks.spawn(async move {
            launch::stop(
                &node_,
                id,
                StopReason::status(exit_status::KILLED_BY_RESOURCEMANAGER),
            )
            .await;
        });
    }
    for app in parse_all::<ApplicationId>(&answer.applications_to_cleanup) {
        app_end::clean_up(node, app);
    }
}

/// The ids that parse; the RM sending a malformed one is logged and skipped.
fn parse_all<T: std::str::FromStr>(raw: &[String]) -> Vec<T>
where
    T::Err: std::fmt::Display,
{
    raw.iter()
        .filter_map(|s| match s.parse() {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!("ignoring an id in the RM's heartbeat answer: {e}");
                None
            }
        })
        .collect()
}
