//! The node manager: the daemon on every host that launches, watches and stops containers.
//!
//! `NodeManager::start` takes back the containers an earlier run left on its work dir, binds the
//! container-manager (gRPC) and web ports, then registers with the RM in the background;
//! `shutdown` stops serving, stops every container and waits for its tasks. When an application
//! is over, its logs go to the RM's log store (`app_end`, `aggregation`).
//!
//! Every call to the RM proves the cluster's daemon secret; every call to this node carries a
//! token the RM signed (`auth`); a node manager running as root runs each container as its
//! application's owner (`users`).

mod aggregation;
mod app_end;
mod auth;
mod capacity;
pub mod config;
mod container_manager;
mod containers;
mod diagnostics;
mod error;
mod exposition;
mod follow;
mod launch;
mod layout;
mod logs;
mod metrics;
mod monitor;
mod node;
mod recovery;
mod rm_client;
mod state_store;
mod status_updater;
mod tasks;
mod users;
mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use spindle_containers::cgroup::{CgroupVersion, NodeCgroups};
use spindle_containers::localize::Localizer;
use spindle_containers::{NodeId, exit_status};
use spindle_protocol::container_manager_server::ContainerManagerServer;
use spindle_security::Secret;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

pub use capacity::node_capacity;
pub use config::{CgroupMode, NmConfig};
pub use error::{LaunchError, NmError};
pub use node::INHERITED_ENV;

use crate::auth::NodeKeys;
use crate::container_manager::ContainerManagerService;
use crate::containers::ContainerTable;
use crate::layout::Layout;
use crate::metrics::NodeMetrics;
use crate::node::Node;
use crate::rm_client::Rm;
use crate::state_store::{Journal, StateStore};
use crate::tasks::Tasks;
use crate::users::UserPolicy;

/// A running node manager.
pub struct NodeManager {
    node: Arc<Node>,
    rpc_addr: SocketAddr,
    web_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    fatal: watch::Receiver<Option<String>>,
    servers: Vec<JoinHandle<()>>,
    /// Set by `shutdown`; without it, `Drop` kills the containers so none outlives its owner.
    shut_down: bool,
}

async fn bind(field: &'static str, addr: SocketAddr) -> Result<TcpListener, NmError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NmError::Bind {
            field,
            addr,
            source,
        })
}

fn local_addr(
    field: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, NmError> {
    listener.local_addr().map_err(|source| NmError::Bind {
        field,
        addr,
        source,
    })
}

/// The absolute, UTF-8 work dir, created if missing.
fn prepare_work_dir(path: &PathBuf) -> Result<PathBuf, NmError> {
    let io = |source| NmError::WorkDir {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path).map_err(io)?;
    let absolute = std::fs::canonicalize(path).map_err(io)?;
    if absolute.to_str().is_none() {
        return Err(NmError::WorkDirNotUtf8(absolute));
    }
    Ok(absolute)
}

/// The address others reach `addr` at: itself, unless it is a wildcard, then this host's name.
fn reachable(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        let host = sysinfo::System::host_name().unwrap_or_else(|_| "localhost".to_string());
        format!("{host}:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// The node's cgroup name: the same for every run on one work dir (so a restarted node manager
/// finds its containers' cgroups), different for two node managers in one process.
fn cgroup_name(work_dir: &Path) -> String {
    let digest = Sha256::digest(work_dir.as_os_str().as_encoded_bytes());
    format!("nm-{}", &hex::encode(digest)[..16])
}

/// The node's cgroups as configured and as the host allows. Where it allows none, containers run
/// without, and the first node manager of the process says why.
fn node_cgroups(mode: CgroupMode, work_dir: &Path) -> Option<NodeCgroups> {
    static EXPLAINED: AtomicBool = AtomicBool::new(false);
    match mode {
        CgroupMode::Off => {
            tracing::info!("cgroups are off: the memory monitor alone enforces memory limits");
            None
        }
        CgroupMode::Auto => match NodeCgroups::create(&cgroup_name(work_dir)) {
            Ok(cgroups) => {
                tracing::info!(
                    cgroup = %cgroups.dir().display(),
                    "containers get {} memory limits",
                    cgroups.version()
                );
                Some(cgroups)
            }
            Err(e) => {
                if !EXPLAINED.swap(true, Ordering::SeqCst) {
                    tracing::warn!(
                        "containers run without cgroups, the memory monitor alone enforces                          memory limits: {e}"
                    );
                }
                None
            }
        },
    }
}

impl NodeManager {
    /// Binds its ports, starts registering with the RM (retrying with back-off until the RM is
    /// up), returns at once without waiting for registration.
    pub async fn start(config: NmConfig) -> Result<NodeManager, NmError> {
        let channel = rm_client::channel(&config.rm)?;
        if config.monitor_interval.is_zero() {
            return Err(NmError::MonitorInterval);
        }
        let secret_file = config
            .daemon_secret_file
            .as_ref()
            .ok_or(NmError::NoDaemonSecret)?;
        let daemon_secret = Secret::read(secret_file)?;
        let users = UserPolicy::new(&config, nix::unistd::geteuid().is_root())?;
        let work_dir = prepare_work_dir(&config.work_dir)?;
        users.check_reachable(&work_dir)?;
        let layout = Layout::new(work_dir);
        // First, so that a second node manager on this work dir is refused before it binds or
        // touches anything of the first.
        let store = StateStore::open(&layout.state_file())?;
        layout.prepare().map_err(|source| NmError::WorkDir {
            path: layout.root().to_path_buf(),
            source,
        })?;
        let records = store.load()?;
        let journal = Journal::start(store, layout.clone()).map_err(NmError::StateStoreThread)?;
        let rpc_listener = bind("bind", config.bind).await?;
        let rpc_addr = local_addr("bind", &rpc_listener, config.bind)?;
        let web_bind = config
            .web_bind
            .unwrap_or_else(|| SocketAddr::new(config.bind.ip(), 0));
        let web_listener = bind("web-bind", web_bind).await?;
        let web_addr = local_addr("web-bind", &web_listener, web_bind)?;

        let node_id = match &config.advertise {
            Some(advertised) => NodeId::new(advertised.clone()).map_err(NmError::Advertise)?,
            None => NodeId::new(reachable(rpc_addr)).map_err(NmError::Advertise)?,
        };
        // The web server is reached on the same host as the container manager.
        let http_address = if config.web_bind.is_some_and(|a| !a.ip().is_unspecified()) {
            web_addr.to_string()
        } else {
            format!("{}:{}", node_id.host(), web_addr.port())
        };
        let cgroups = node_cgroups(config.cgroups, layout.root());
        let (shutdown, stop_signal) = watch::channel(false);
        let (fatal, fatal_signal) = watch::channel(None);
        let rm = Rm::new(channel, daemon_secret.clone());
        let node = Arc::new(Node {
            hostname: config
                .hostname
                .clone()
                .or_else(|| sysinfo::System::host_name().ok())
                .unwrap_or_else(|| node_id.host().to_string()),
            node_id,
            http_address,
            capability: node_capacity(config.memory_mb, config.vcores),
            rm_address: config.rm.clone(),
            kill_grace: config.kill_grace,
            localizer: Localizer::new(Arc::new(rm_client::StagingFetch::new(&rm))),
            rm,
            keys: NodeKeys::new(daemon_secret),
            users,
            layout,
            cgroups,
            containers: ContainerTable::new(journal),
            tasks: Tasks::default(),
            metrics: NodeMetrics::default(),
            watched_apps: Default::default(),
            inherited_env: node::inherited_env(),
            stopping: stop_signal.clone(),
            fatal,
        });

        let recovered = recovery::recover(&node, records).await;
        if recovered != recovery::Recovered::default() {
            tracing::info!(
                running = recovered.running,
                ended_meanwhile = recovered.ended_meanwhile,
                complete = recovered.complete_before,
                "took back the containers of the node manager's previous run"
            );
        }
        app_end::watch_apps_with_logs(&node).await;

        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let grpc = tonic::transport::Server::builder()
            .add_service(ContainerManagerServer::new(ContainerManagerService::new(
                Arc::clone(&node),
            )))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(rpc_listener),
                signal(stop_signal.clone()),
            );
        let web = axum::serve(web_listener, web::router(Arc::clone(&node)))
            .with_graceful_shutdown(signal(stop_signal.clone()));
        let servers = vec![
            tokio::spawn(async move {
                if let Err(e) = grpc.await {
                    tracing::error!("the container manager's gRPC server failed: {e}");
                }
            }),
            tokio::spawn(async move {
                if let Err(e) = web.await {
                    tracing::error!("the node manager's web server failed: {e}");
                }
            }),
            tokio::spawn(monitor::run(
                Arc::clone(&node),
                config.monitor_interval,
                stop_signal.clone(),
            )),
            tokio::spawn(status_updater::run(Arc::clone(&node), stop_signal)),
        ];
        tracing::info!(
            node_id = %node.node_id,
            %rpc_addr,
            %web_addr,
            rm = %node.rm_address,
            capability = ?node.capability,
            containers_run_as = node.users.fallback().map_or("the node manager's user", |_| "their owners"),
            "node manager started"
        );
        Ok(NodeManager {
            node,
            rpc_addr,
            web_addr,
            shutdown,
            fatal: fatal_signal,
            servers,
            shut_down: false,
        })
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node.node_id
    }

    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    pub fn web_addr(&self) -> SocketAddr {
        self.web_addr
    }

    /// The work dir as the node uses it (absolute).
    pub fn work_dir(&self) -> &std::path::Path {
        self.node.layout.root()
    }

    /// The cgroup version containers are limited with; `None` when they run without cgroups.
    pub fn cgroup_version(&self) -> Option<CgroupVersion> {
        self.node.cgroups.as_ref().map(NodeCgroups::version)
    }

    /// The node's cgroup, parent of its containers' cgroups; `None` when they run without.
    pub fn cgroup_dir(&self) -> Option<&Path> {
        self.node.cgroups.as_ref().map(NodeCgroups::dir)
    }

    /// Resolves once the node has registered with the RM and holds the keys that check its
    /// tokens: from then on it can start containers. Start does not wait for this (the RM may
    /// come up later); an embedded cluster or a test that wants to use the node at once does.
    pub async fn registered(&self) {
        self.node.keys.announced().await;
    }

    /// Resolves when the node manager has given up by itself, with why: the RM refused to
    /// register it (a wrong daemon secret, say), which trying again cannot mend. It still serves
    /// until `shutdown`; a daemon waits on this beside its stop signal and exits with the error.
    /// Never resolves while all is well.
    pub async fn failed(&self) -> NmError {
        let mut fatal = self.fatal.clone();
        let message = match fatal.wait_for(Option::is_some).await {
            Ok(message) => message.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        };
        NmError::Refused {
            rm: self.node.rm_address.clone(),
            message,
        }
    }

    /// Stops serving, stops every running container (SIGTERM → grace → SIGKILL), waits.
    pub async fn shutdown(mut self) {
        self.shut_down = true;
        let _ = self.shutdown.send(true);
        for server in std::mem::take(&mut self.servers) {
            let _ = server.await;
        }
        // Nobody will hear of these completions: the node is going away with them.
        launch::stop_all(&self.node, exit_status::ABORTED).await;
        self.node.tasks.join_all().await;
        // The store is closed, so a node manager started next on this work dir can open it.
        self.node.containers.journal_handle().close().await;
        if let Some(cgroups) = &self.node.cgroups {
            cgroups.remove_if_empty();
        }
        tracing::info!(node_id = %self.node.node_id, "node manager stopped");
    }
}

impl Drop for NodeManager {
    /// A node manager dropped without `shutdown` (a panic, a test that failed) still takes its
    /// containers with it: SIGKILL to every process group, and its servers stop.
    fn drop(&mut self) {
        if self.shut_down {
            return;
        }
        let _ = self.shutdown.send(true);
        let processes = self.node.containers.running_processes();
        if !processes.is_empty() {
            tracing::warn!(
                node_id = %self.node.node_id,
                containers = processes.len(),
                "node manager dropped without shutdown: killing its containers"
            );
        }
        for process in processes {
            process.kill();
        }
        // The watchers remove the containers' cgroups as the kills land; then the node's own.
        if let Some(cgroups) = self.node.cgroups.clone()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let node = Arc::clone(&self.node);
            runtime.spawn(async move {
                node.tasks.join_all().await;
                cgroups.remove_if_empty();
            });
        }
    }
}
