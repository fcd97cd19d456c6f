//! Starting, watching and stopping one container: check the request and its container token,
//! localize its files, write `launch_container.sh`, give it a cgroup with its memory limit (where
//! the node has cgroups), spawn it as its user, and record how it ended with diagnostics a user
//! can act on.
//!
//! A container's directory is prepared in `nmprivate/<container>` (the node manager's alone)
//! and moved into its application's directory only when complete: the application's directory
//! belongs to the container's user, and so nothing the node manager writes there can be
//! redirected by a link a running container of the same user planted.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;

use spindle_containers::launch_script::{self, SCRIPT_FILE};
use spindle_containers::process::{self, ContainerProcess, Exit, ProcessSpec};
use spindle_containers::{ContainerId, LaunchContext, Resource, RunAs, exit_status, localize};
use spindle_protocol as proto;
use spindle_security::KeyRing;
use tracing::Instrument;

use crate::auth::{self, Scope};
use crate::containers::StopTarget;
use crate::diagnostics;
use crate::error::LaunchError;
use crate::node::Node;
use crate::state_store::StopReason;
use crate::users::ContainerUser;

/// A container's working and log directories: its user's alone.
const CONTAINER_DIR_MODE: u32 = 0o700;
/// `logs/<app>`: passable, so each container reaches its own log dir, not listable.
const APP_LOG_DIR_MODE: u32 = 0o711;

/// How much of stderr a failed container's diagnostics quote.
const STDERR_TAIL_LINES: usize = 10;
const STDERR_TAIL_BYTES: u64 = 4096;

/// What a StartContainers call was allowed: its NM token's scope, and the keys its container
/// tokens are checked with.
pub struct Allowed<'a> {
    pub scope: &'a Scope,
    pub ring: &'a KeyRing,
}

/// Starts one container; returns once its process runs (or says why it will not).
pub async fn start(
    node: &Arc<Node>,
    request: proto::StartContainerRequest,
    allowed: Allowed<'_>,
) -> Result<ContainerId, LaunchError> {
    let requested = Instant::now();
    let started = start_timed(node, request, allowed, requested).await;
    if started.is_err() {
        node.metrics.launch_failed();
    }
    started
}

async fn start_timed(
    node: &Arc<Node>,
    request: proto::StartContainerRequest,
    allowed: Allowed<'_>,
    requested: Instant,
) -> Result<ContainerId, LaunchError> {
    let id: ContainerId = request
        .container_id
        .parse()
        .map_err(LaunchError::ContainerId)?;
    let span = tracing::info_span!(
        "container",
        container_id = %id,
        app = %id.application(),
        user = tracing::field::Empty
    );
    async {
        let resource = Resource::from_proto("resource", request.resource.as_ref())?;
        // The owner comes from the container token, and from nowhere else.
        let owner = auth::check_container_token(
            allowed.ring,
            &node.node_id,
            allowed.scope,
            &request.container_token,
            id,
            resource,
            spindle_security::now_ms(),
        )
        .map_err(LaunchError::ContainerToken)?;
        let launch = LaunchContext::from_proto(request.launch_context.as_ref())?;
        localize::validate(&launch.local_resources)?;
        let user = node.users.resolve(&owner)?;
        tracing::Span::current().record("user", user.name.as_str());
        let env = container_env(node, id, &user.env_user, &launch);
        let script = launch_script::render(&launch.command, &env)?;
        node.containers.admit(id, resource, &user.name)?;
        crate::app_end::watch(node, id.application());
        match prepare_and_spawn(node, id, resource, &launch, &script, &user).await {
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
                let _ = tokio::fs::remove_dir_all(node.layout.private_dir(id)).await;
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

/// `dir`, created with `mode` if missing (its parent must be the node manager's), checked to be
/// a directory (not a link), and given to `owner` when there is one.
fn own_dir(dir: &Path, mode: u32, owner: Option<&RunAs>) -> Result<(), LaunchError> {
    let io = |source| LaunchError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    if !std::fs::symlink_metadata(dir).map_err(io)?.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "something other than a directory is in its place",
        )));
    }
    match owner {
        Some(owner) => owner.own_dir(dir, mode).map_err(io),
        None => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io),
    }
}

/// Makes the container's working directory (in `nmprivate`, then moved into place) and its log
/// directory, everything its user's.
async fn prepare_dirs(
    node: &Node,
    id: ContainerId,
    launch: &LaunchContext,
    script: &str,
    user: &ContainerUser,
) -> Result<(), LaunchError> {
    let owner = user.run_as.as_ref();
    let app = id.application();
    // `appcache` is the node manager's, so the application's directory cannot be swapped.
    own_dir(&node.layout.app_dir(app), CONTAINER_DIR_MODE, owner)?;
    let private = node.layout.private_dir(id);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LaunchError::Io { path, source }
    };
    match std::fs::remove_dir_all(&private) {
        // A launch cut short by a crash of an earlier run.
        Ok(()) => tracing::debug!(
            "removed what an earlier launch left in {}",
            private.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&private)(e)),
    }
    std::fs::DirBuilder::new()
        .mode(CONTAINER_DIR_MODE)
        .create(&private)
        .map_err(io(&private))?;
    node.localizer
        .localize(
            &launch.local_resources,
            &node.layout.user_file_cache(&user.name),
            &private,
            owner,
        )
        .await?;
    let script_path = private.join(SCRIPT_FILE);
    tokio::fs::write(&script_path, script)
        .await
        .map_err(io(&script_path))?;
    if let Some(owner) = owner {
        owner.own(&script_path).map_err(io(&script_path))?;
    }
    own_dir(&private, CONTAINER_DIR_MODE, owner)?;
    let dir = node.layout.container_dir(id);
    // Fails rather than replace anything but an empty directory.
    std::fs::rename(&private, &dir).map_err(io(&dir))?;

    let app_logs = node.layout.app_log_dir(app);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(APP_LOG_DIR_MODE)
        .create(&app_logs)
        .map_err(io(&app_logs))?;
    own_dir(&node.layout.log_dir(id), CONTAINER_DIR_MODE, owner)
}

async fn prepare_and_spawn(
    node: &Node,
    id: ContainerId,
    resource: Resource,
    launch: &LaunchContext,
    script: &str,
    user: &ContainerUser,
) -> Result<ContainerProcess, LaunchError> {
    prepare_dirs(node, id, launch, script, user).await?;
    let dir = node.layout.container_dir(id);
    let log_dir = node.layout.log_dir(id);
    let script_path = dir.join(SCRIPT_FILE);
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
        run_as: user.run_as.clone(),
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
