//! `LocalCluster`: a whole cluster inside this process — an embedded resource manager and N node
//! managers on 127.0.0.1 ephemeral ports, each NM with its own temporary work dir — launching
//! real container processes. It backs `local-cluster[N,C,M]` masters and integration tests.
//! Each run makes its own client and daemon secrets in its temporary dir, so it is as closed
//! to strangers as a real cluster, and its own clients use them without being told.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spindle_containers::{NodeId, Resource};
use spindle_node_manager::{NmConfig, NmError, NodeManager};
use spindle_protocol::NodeState;
use spindle_resource_manager::{ResourceManager, RmConfig, RmError};
use spindle_security::{CallCredentials, Secret, SecretError, SecretKind};

use crate::credentials::{SecretSource, credentials_from};
use crate::error::ClientError;
use crate::rm_client::RmClient;

/// `local-cluster` sets the minimum allocation this low so that small nodes hold an AM and a
/// few executors (Spark's `local-cluster[2,2,2048]` holds an AM and 4 executors of 512 MB).
pub const LOCAL_MINIMUM_ALLOCATION_MB: u64 = 128;
/// A hang guard only: registration normally takes milliseconds.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error(
        "a local cluster needs at least 1 node of at least 1 vcore and 1 MB; \
         got nodes={nodes}, vcores={vcores}, memory_mb={memory_mb}"
    )]
    BadShape {
        nodes: usize,
        vcores: u32,
        memory_mb: u64,
    },
    #[error("cannot create the local cluster's temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("cannot make the local cluster's secrets: {0}")]
    Secret(#[source] SecretError),
    #[error("cannot start the local resource manager: {0}")]
    ResourceManager(#[source] RmError),
    #[error("cannot start local node manager {index}: {source}")]
    NodeManager {
        index: usize,
        #[source]
        source: NmError,
    },
    #[error("the local resource manager does not answer: {0}")]
    Client(#[from] ClientError),
    #[error("only {running} of {expected} local node managers registered within {timeout:?}")]
    NotRegistered {
        running: usize,
        expected: usize,
        timeout: Duration,
    },
}

pub struct LocalCluster {
    rm: Option<ResourceManager>,
    nms: Vec<NodeManager>,
    /// Holds the RM's state dir and every NM's work dir; removed on drop.
    dir: tempfile::TempDir,
}

impl LocalCluster {
    /// Starts an RM and `nodes` NMs of `vcores` and `memory_mb` each, and returns once every NM
    /// has registered with the RM.
    pub async fn start(
        nodes: usize,
        vcores: u32,
        memory_mb: u64,
    ) -> Result<LocalCluster, LocalClusterError> {
        if nodes == 0 || vcores == 0 || memory_mb == 0 {
            return Err(LocalClusterError::BadShape {
                nodes,
                vcores,
                memory_mb,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("spindle-local-cluster-")
            .tempdir()
            .map_err(LocalClusterError::TempDir)?;
        // The NMs' work dirs hang under it, and their containers may run as another user
        // (nobody, or the submitter), who must be able to reach them; what is private inside
        // (the secrets, the RM's state) has modes of its own.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(LocalClusterError::TempDir)?;
        for kind in [SecretKind::Client, SecretKind::Daemon] {
            Secret::generate(&dir.path().join(kind.file_name()))
                .map_err(LocalClusterError::Secret)?;
        }
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));

        let defaults = RmConfig::default();
        let rm_config = RmConfig {
            bind: loopback(0),
            web_bind: Some(loopback(0)),
            state_dir: dir.path().join("rm"),
            secret_file: Some(dir.path().join(SecretKind::Client.file_name())),
            daemon_secret_file: Some(dir.path().join(SecretKind::Daemon.file_name())),
            minimum_allocation: Resource::new(LOCAL_MINIMUM_ALLOCATION_MB, 1),
            // Nothing larger than a node could ever run here: refuse it instead of waiting.
            maximum_allocation: Resource::new(
                defaults.maximum_allocation.memory_mb.min(memory_mb),
                defaults.maximum_allocation.vcores,
            ),
            ..defaults
        };
        let rm = ResourceManager::start(rm_config)
            .await
            .map_err(LocalClusterError::ResourceManager)?;
        let mut cluster = LocalCluster {
            rm: Some(rm),
            nms: Vec::with_capacity(nodes),
            dir,
        };
        let rm_addr = cluster.rm_addr();
        for index in 0..nodes {
            let nm_config = NmConfig {
                rm: rm_addr.to_string(),
                bind: loopback(0),
                web_bind: Some(loopback(0)),
                work_dir: cluster.dir.path().join(format!("nm-{index}")),
                memory_mb: Some(memory_mb),
                vcores: Some(vcores),
                daemon_secret_file: Some(cluster.daemon_secret_file()),
                ..NmConfig::default()
            };
            match NodeManager::start(nm_config).await {
                Ok(nm) => cluster.nms.push(nm),
                Err(source) => {
                    cluster.stop().await;
                    return Err(LocalClusterError::NodeManager { index, source });
                }
            }
        }
        if let Err(e) = cluster.wait_for_nodes().await {
            cluster.stop().await;
            return Err(e);
        }
        tracing::info!(rm = %rm_addr, nodes, vcores, memory_mb, "local cluster running");
        Ok(cluster)
    }

    /// Waits until every NM has registered (each says so; one the RM refused says why).
    async fn wait_for_nodes(&self) -> Result<(), LocalClusterError> {
        let each = self.nms.iter().enumerate().map(|(index, nm)| async move {
            tokio::select! {
                () = nm.registered() => Ok(()),
                source = nm.failed() => Err(LocalClusterError::NodeManager { index, source }),
            }
        });
        match tokio::time::timeout(REGISTRATION_TIMEOUT, futures::future::try_join_all(each)).await
        {
            Ok(outcome) => outcome.map(|_| ()),
            Err(_) => {
                let nodes = self.client().await?.list_nodes().await?;
                let running = self
                    .nms
                    .iter()
                    .filter(|nm| {
                        nodes.iter().any(|n| {
                            n.node_id == nm.node_id().as_str() && n.state() == NodeState::Running
                        })
                    })
                    .count();
                Err(LocalClusterError::NotRegistered {
                    running,
                    expected: self.nms.len(),
                    timeout: REGISTRATION_TIMEOUT,
                })
            }
        }
    }

    /// The RM's gRPC address, for `RmClient::connect` or `spindle --rm`.
    pub fn rm_addr(&self) -> SocketAddr {
        self.rm.as_ref().map_or(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            ResourceManager::rpc_addr,
        )
    }

    /// The RM's web address (REST API, UI).
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.rm.as_ref().and_then(ResourceManager::web_addr)
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nms.iter().map(|nm| nm.node_id().clone()).collect()
    }

    /// Each NM's work dir (containers' dirs under `appcache/`, logs under `logs/`).
    pub fn work_dirs(&self) -> Vec<PathBuf> {
        (0..self.nms.len())
            .map(|index| self.dir.path().join(format!("nm-{index}")))
            .collect()
    }

    /// The client secret of this run (`SPINDLE_SECRET_FILE` for a client of this cluster).
    pub fn client_secret_file(&self) -> PathBuf {
        self.dir.path().join(SecretKind::Client.file_name())
    }

    /// The daemon secret of this run (what a node manager joining it would need).
    pub fn daemon_secret_file(&self) -> PathBuf {
        self.dir.path().join(SecretKind::Daemon.file_name())
    }

    /// The credentials of a client of this cluster: its client secret, for the client's user.
    pub fn credentials(&self) -> Result<CallCredentials, ClientError> {
        let file = self.client_secret_file();
        credentials_from(Some((Path::new(&file), SecretSource::LocalCluster)))
    }

    /// A client connected to the RM, with this cluster's client secret.
    pub async fn client(&self) -> Result<RmClient, ClientError> {
        RmClient::connect(&self.rm_addr().to_string(), self.credentials()?).await
    }

    /// Stops every NM (and so every container) and then the RM; the temp dirs go with `self`.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        // NMs first: they stop their containers, and the RM is still there to hear about it.
        futures::future::join_all(self.nms.drain(..).map(NodeManager::shutdown)).await;
        if let Some(rm) = self.rm.take() {
            rm.shutdown().await;
        }
    }
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("rm", &self.rm_addr())
            .field("nodes", &self.node_ids())
            .field("dir", &self.dir.path())
            .finish()
    }
}
