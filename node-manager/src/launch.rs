//! Starting, watching and stopping one container: check the request, localize its files, write
//! `launch_container.sh`, give it a cgroup with its memory limit (where the node has cgroups),
//! spawn it, and record how it ended with diagnostics a user can act on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;

use spindle_containers::launch_script::{self, SCRIPT_FILE};
use spindle_containers::process::{self, ContainerProcess, Exit, ProcessSpec};
use spindle_containers::{ContainerId, LaunchContext, Resource, exit_status, localize};
use spindle_protocol as proto;
use tracing::Instrument;

use crate::containers::StopTarget;
use crate::diagnostics;
use crate::error::LaunchError;
use crate::node::Node;
use crate::state_store::StopReason;

/// How much of stderr a failed container's diagnostics quote.
const STDERR_TAIL_LINES: usize = 10;
const STDERR_TAIL_BYTES: u64 = 4096;

/// Starts one container; returns once its process runs (or says why it will not).
pub async fn start(
    node: &Arc<Node>,
    request: proto::StartContainerRequest,
) -> Result<ContainerId, LaunchError> {
    let requested = Instant::now();
    let started = start_timed(node, request, requested).await;
    if started.is_err() {
        node.metrics.launch_failed();
    }
    started
}

async fn start_timed(
    node: &Arc<Node>,
    request: proto::StartContainerRequest,
    requested: Instant,
) -> Result<ContainerId, LaunchError> {
    let id: ContainerId = request
        .container_id
        .parse()
        .map_err(LaunchError::ContainerId)?;
    let span = tracing::info_span!("container", container_id = %id, app = %id.application());
    async {
        let resource = Resource::from_proto("resource", request.resource.as_ref())?;
        let launch = LaunchContext::from_proto(request.launch_context.as_ref())?;
        localize::validate(&launch.local_resources)?;
        // The user comes from the container token (security work in progress).
        let env = container_env(node, id, "", &launch);
        let script = launch_script::render(&launch.command, &env)?;
        node.containers.admit(id, resource)?;
        crate::app_end::watch(node, id.application());
        match prepare_and_spawn(node, id, resource, &launch, &script).await {
            Ok(process) => {
                node.metrics.launched(requested.elapsed());
                tracing::info!(pid = process.pid(), ?resource, "container started");
                let stop = node.containers.running(id, process.clone());
                watch(node, id, resource, process.clone());
                if let Some(reason) = stop {
                    // A stop came while it was being localized: carry it out now.
                    let stopper = Arc::clone(node);
                    node.tasks.spawn(
                        async move {
                            tracing::debug!(?reason, "stopping right after its launch");
                            process.stop(stopper.kill_grace).await;
                        }
                        .instrument(tracing::Span::current()),
                    );
                }
                // Answered once a restarted node manager would find it again.
                node.containers.journal_handle().synced().await;
                Ok(id)
            }
            Err(e) => {
                node.containers.forget(id);
                let _ = tokio::fs::remove_dir_all(node.layout.container_dir(id)).await;
                let _ = tokio::fs::remove_dir_all(node.layout.log_dir(id)).await;
                tracing::warn!("container not started: {e}");
                Err(e)
            }
        }
    }
    .instrument(span)
    .await
}

/// Records how `process` ends, whenever it does (it was just started, or taken back).
pub fn watch(node: &Arc<Node>, id: ContainerId, resource: Resource, process: ContainerProcess) {
    let watcher = Arc::clone(node);
    let span = tracing::info_span!("container", container_id = %id, app = %id.application());
    node.tasks.spawn(
        async move {
            let exit = process.wait().await;
            record_exit(&watcher, id, resource, exit).await;
        }
        .instrument(span),
    );
}

async fn prepare_and_spawn(
    node: &Node,
    id: ContainerId,
    resource: Resource,
    launch: &LaunchContext,
    script: &str,
) -> Result<ContainerProcess, LaunchError> {
    let dir = node.layout.container_dir(id);
    let log_dir = node.layout.log_dir(id);
    for d in [&dir, &log_dir] {
        tokio::fs::create_dir_all(d)
            .await
            .map_err(|source| LaunchError::Io {
                path: d.clone(),
                source,
            })?;
    }
    node.localizer
        .localize(
            &launch.local_resources,
            &node.layout.file_cache(),
            &dir,
            None,
        )
        .await?;
    let script_path = dir.join(SCRIPT_FILE);
    tokio::fs::write(&script_path, script)
        .await
        .map_err(|source| LaunchError::Io {
            path: script_path.clone(),
            source,
        })?;
    let cgroup = match &node.cgroups {
        Some(cgroups) => {
            let limit_bytes = resource.memory_mb.saturating_mul(1 << 20);
            Some(cgroups.container(&id.to_string(), limit_bytes)?)
        }
        None => None,
    };
    let spawned = process::spawn(&ProcessSpec {
        script: script_path,
        working_dir: dir,
        stdout: log_dir.join("stdout"),
        stderr: log_dir.join("stderr"),
        inherited_env: node.inherited_env.clone(),
        cgroup: cgroup.clone(),
        run_as: None,
    });
    if spawned.is_err()
        && let Some(cgroup) = cgroup
    {
        cgroup.remove().await;
    }
    Ok(spawned?)
}

/// The launch context's environment with the node manager's variables on top (the contract).
fn container_env(
    node: &Node,
    id: ContainerId,
    user: &str,
    launch: &LaunchContext,
) -> BTreeMap<String, String> {
    let dir = node.layout.container_dir(id).to_string_lossy().into_owned();
    let log_dir = node.layout.log_dir(id).to_string_lossy().into_owned();
    let port = node
        .node_id
        .as_str()
        .rsplit_once(':')
        .map_or("", |(_, port)| port);
    let user = if user.is_empty() {
        node.default_user.as_str()
    } else {
        user
    };
    let mut env = launch.env.clone();
    for (name, value) in [
        ("CONTAINER_ID", id.to_string()),
        ("APPLICATION_ID", id.application().to_string()),
        ("NM_HOST", node.node_id.host().to_string()),
        ("NM_PORT", port.to_string()),
        ("NM_ADDRESS", node.node_id.to_string()),
        ("NM_HTTP_ADDRESS", node.http_address.clone()),
        ("SPINDLE_RM_ADDRESS", node.rm_address.clone()),
        ("LOG_DIRS", log_dir),
        ("PWD", dir.clone()),
        ("HOME", dir),
        ("USER", user.to_string()),
    ] {
        env.insert(name.to_string(), value);
    }
    env
}

/// Stops `id` for `reason`; `false` if this node does not know it. Returns once the whole
/// container is gone and its completion is recorded.
pub async fn stop(node: &Arc<Node>, id: ContainerId, reason: StopReason) -> bool {
    match node.containers.request_stop(id, reason) {
        StopTarget::Unknown => false,
        StopTarget::Complete | StopTarget::Launching => true,
        StopTarget::Running(process, resource) => {
            let span =
                tracing::info_span!("container", container_id = %id, app = %id.application());
            async {
                let exit = process.stop(node.kill_grace).await;
                record_exit(node, id, resource, exit).await;
            }
            .instrument(span)
            .await;
            true
        }
    }
}

/// Stops every container that is not complete, in parallel, recording `status`.
pub async fn stop_all(node: &Arc<Node>, status: i32) {
    let live = node.containers.live();
    join_all(
        live.into_iter()
            .map(|id| stop(node, id, StopReason::status(status))),
    )
    .await;
}

/// Records how the container ended (the first record wins: the watcher and a stopper may both
/// get here).
async fn record_exit(node: &Node, id: ContainerId, resource: Resource, exit: Exit) {
    let stop = node.containers.stop_reason(id);
    let (status, diagnostics) = outcome(node, id, resource, exit, stop).await;
    if node.containers.complete(id, status, diagnostics) {
        node.metrics.completed(status);
        tracing::info!(exit_status = status, "container completed");
    }
}

/// The exit status and diagnostics to report for `exit`, given the stop asked of it, if any.
pub async fn outcome(
    node: &Node,
    id: ContainerId,
    resource: Resource,
    exit: Exit,
    stop: Option<StopReason>,
) -> (i32, String) {
    match exit {
        Exit::Exited { exit_code } => {
            let stderr = node.layout.log_dir(id).join("stderr");
            let tail = if exit_code == exit_status::SUCCESS {
                String::new()
            } else {
                crate::logs::tail(&stderr, STDERR_TAIL_LINES, STDERR_TAIL_BYTES).await
            };
            (exit_code, diagnostics::exited(id, exit_code, &tail))
        }
        Exit::OutOfMemory {
            exit_code,
            oom_kills,
            peak_bytes,
        } => (
            exit_status::KILLED_EXCEEDED_PMEM,
            diagnostics::oom_killed(id, exit_code, oom_kills, peak_bytes, resource.memory_mb),
        ),
        Exit::Stopped => {
            let reason = stop.unwrap_or(StopReason::status(exit_status::ABORTED));
            let text = reason
                .diagnostics
                .unwrap_or_else(|| diagnostics::stopped(id, reason.exit_status));
            (reason.exit_status, text)
        }
        Exit::Lost => (exit_status::ABORTED, diagnostics::lost(id)),
    }
}
