//! The node manager's errors: `NmError` for starting the daemon, `LaunchError` for one container
//! that could not be started (answered to the caller, never fatal to the daemon).

use std::net::SocketAddr;
use std::path::PathBuf;

use spindle_containers::cgroup::CgroupError;
use spindle_containers::launch_script::LaunchScriptError;
use spindle_containers::localize::LocalizeError;
use spindle_containers::process::ProcessError;
use spindle_containers::run_as::LookupError;
use spindle_containers::{ApplicationId, ContainerId, IdError, LaunchContextError, ResourceError};
use spindle_security::{SecretError, SecretKind};

use crate::state_store::StoreError;

/// Why the node manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum NmError {
    #[error("cannot listen on {field} {addr}: {source}")]
    Bind {
        field: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use work-dir {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("work-dir {0} is not valid UTF-8: containers get it in their environment")]
    WorkDirNotUtf8(PathBuf),
    #[error("rm {value:?} is not a usable RM address: {reason}")]
    RmAddress { value: String, reason: String },
    #[error("advertise: {0}")]
    Advertise(IdError),
    #[error("monitor-interval must be more than 0 (e.g. 3s or 500ms)")]
    MonitorInterval,
    #[error(transparent)]
    StateStore(#[from] StoreError),
    #[error("cannot start the state store's writer thread: {0}")]
    StateStoreThread(std::io::Error),
    #[error(
        "the node manager needs the cluster's daemon secret: set {flag}, {env} or \
         `daemon-secret-file` (under node_manager in spindle.yaml) to the RM's {file} (the RM \
         generates <state-dir>/{file} at its first start and prints its path)",
        flag = SecretKind::Daemon.flag(),
        env = SecretKind::Daemon.env_var(),
        file = SecretKind::Daemon.file_name()
    )]
    NoDaemonSecret,
    #[error("daemon-secret-file: {0}")]
    DaemonSecret(#[from] SecretError),
    #[error("the RM at {rm} refused to register this node manager: {message}")]
    Refused { rm: String, message: String },
    #[error("fallback-user {user:?}: {problem}")]
    FallbackUser { user: String, problem: String },
    #[error(
        "work-dir {work_dir}: containers run as {user:?}, who cannot pass through {dir} (mode \
         {mode:04o}); give it o+x (chmod o+x {dir}) or choose a work dir every user can reach"
    )]
    WorkDirUnreachable {
        work_dir: PathBuf,
        user: String,
        dir: PathBuf,
        mode: u32,
    },
}

/// Why one container of a StartContainers batch was not started; the message goes back to the
/// caller as it is, so each names the field or the thing that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("container_id: {0}")]
    ContainerId(IdError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error("launch_context: {0}")]
    LaunchContext(#[from] LaunchContextError),
    #[error("launch_context: {0}")]
    Script(#[from] LaunchScriptError),
    #[error("container {0} is already known on this node: a container id is started once")]
    AlreadyKnown(ContainerId),
    #[error("application {0} has finished on this node: its containers cannot start any more")]
    ApplicationFinished(ApplicationId),
    #[error("cannot prepare container directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("launch_context.local_resources: {0}")]
    Localize(#[from] LocalizeError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot give the container its cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("the node manager is shutting down")]
    ShuttingDown,
    #[error("container_token: {0}")]
    ContainerToken(String),
    #[error(transparent)]
    UserLookup(#[from] LookupError),
}
