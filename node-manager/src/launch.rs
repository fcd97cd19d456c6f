//! Starting, watching and stopping one container: check the request, localize its files, write
//! `launch_container.sh`, spawn it, and record how it ended with diagnostics a user can act on.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;

use spindle_containers::launch_script::{self, SCRIPT_FILE};
use spindle_containers::process::{self, ContainerProcess, Exit, ProcessSpec};
use spindle_containers::{ContainerId, LaunchContext, Resource, exit_status, localize};
use spindle_protocol as proto;
use tracing::Instrument;

use crate::containers::StopTarget;
use crate::error::LaunchError;
use crate::node::Node;

/// How much of stderr a failed container's diagnostics quote.
const STDERR_TAIL_LINES: usize = 10;
const STDERR_TAIL_BYTES: u64 = 4096;

/// Starts one container; returns once its process runs (or says why it will not).
pub async fn start(
    node: &Arc<Node>,
    request: proto::StartContainerRequest,
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
        let env = container_env(node, id, &request.user, &launch);
        let script = launch_script::render(&launch.command, &env)?;
        node.containers.admit(id, resource)?;
        match prepare_and_spawn(node, id, &launch, &script).await {
            Ok(process) => {
                tracing::info!(pid = process.pid(), ?resource, "container started");
                if let Some(status) = node.containers.running(id, process.clone()) {
                    // A stop came while it was being localized: carry it out now.
                    let (stopper, process) = (Arc::clone(node), process.clone());
                    node.tasks.spawn(
                        async move {
                            let exit = process.stop(stopper.kill_grace).await;
                            record_exit(&stopper, id, exit).await;
                            tracing::debug!(status, "stopped right after its launch");
                        }
                        .instrument(tracing::Span::current()),
                    );
                }
                let watcher = Arc::clone(node);
                node.tasks.spawn(
                    async move {
                        let exit = process.wait().await;
                        record_exit(&watcher, id, exit).await;
                    }
                    .instrument(tracing::Span::current()),
                );
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

async fn prepare_and_spawn(
    node: &Node,
    id: ContainerId,
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
        .localize(&launch.local_resources, &dir)
        .await?;
    let script_path = dir.join(SCRIPT_FILE);
    tokio::fs::write(&script_path, script)
        .await
        .map_err(|source| LaunchError::Io {
            path: script_path.clone(),
            source,
        })?;
    let process = process::spawn(&ProcessSpec {
        script: script_path,
        working_dir: dir,
        stdout: log_dir.join("stdout"),
        stderr: log_dir.join("stderr"),
        inherited_env: node.inherited_env.clone(),
    })?;
    Ok(process)
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

/// Stops `id`, recording `exit_status`; `false` if this node does not know it. Returns once the
/// process group is gone and the completion is recorded.
pub async fn stop(node: &Arc<Node>, id: ContainerId, exit_status: i32) -> bool {
    match node.containers.request_stop(id, exit_status) {
        StopTarget::Unknown => false,
        StopTarget::Complete | StopTarget::Launching => true,
        StopTarget::Running(process) => {
            let span =
                tracing::info_span!("container", container_id = %id, app = %id.application());
            async {
                let exit = process.stop(node.kill_grace).await;
                record_exit(node, id, exit).await;
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
    join_all(live.into_iter().map(|id| stop(node, id, status))).await;
}

/// Records how the container ended (the first record wins: the watcher and a stopper may both
/// get here).
async fn record_exit(node: &Node, id: ContainerId, exit: Exit) {
    let (status, diagnostics) = match exit {
        Exit::Exited { exit_code } => {
            let stderr = node.layout.log_dir(id).join("stderr");
            let tail = if exit_code == exit_status::SUCCESS {
                String::new()
            } else {
                crate::logs::tail(&stderr, STDERR_TAIL_LINES, STDERR_TAIL_BYTES).await
            };
            (exit_code, exited_diagnostics(id, exit_code, &tail))
        }
        Exit::Stopped => {
            let status = node
                .containers
                .stop_status(id)
                .unwrap_or(exit_status::ABORTED);
            (status, stopped_diagnostics(id, status))
        }
    };
    if node.containers.complete(id, status, diagnostics) {
        tracing::info!(exit_status = status, "container completed");
    }
}

fn exited_diagnostics(id: ContainerId, exit_code: i32, stderr_tail: &str) -> String {
    let mut text = format!(
        "Container {id} exited with {}",
        exit_status::describe(exit_code)
    );
    if !stderr_tail.is_empty() {
        text.push_str(&format!(".\nLast lines of stderr:\n{stderr_tail}"));
    }
    text
}

fn stopped_diagnostics(id: ContainerId, status: i32) -> String {
    let by = match status {
        exit_status::KILLED_BY_APPMASTER => " by the application master",
        exit_status::KILLED_BY_RESOURCEMANAGER => " by the resource manager",
        exit_status::KILLED_AFTER_APP_COMPLETION => " because its application completed",
        _ => "",
    };
    format!(
        "Container {id} was stopped{by}: {}",
        exit_status::describe(status)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid() -> ContainerId {
        "container_1700000000000_0001_01_000002".parse().unwrap()
    }

    #[test]
    fn diagnostics_name_the_container_the_status_and_quote_stderr() {
        assert_eq!(
            exited_diagnostics(cid(), 3, "boom\nbad input"),
            "Container container_1700000000000_0001_01_000002 exited with exit status 3.\n\
             Last lines of stderr:\nboom\nbad input"
        );
        assert_eq!(
            exited_diagnostics(cid(), 0, ""),
            "Container container_1700000000000_0001_01_000002 exited with exit status 0"
        );
        assert_eq!(
            stopped_diagnostics(cid(), exit_status::KILLED_BY_APPMASTER),
            "Container container_1700000000000_0001_01_000002 was stopped by the application \
             master: exit status -105 (KILLED_BY_APPMASTER)"
        );
    }
}
