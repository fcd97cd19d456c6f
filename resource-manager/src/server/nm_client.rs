//! How the RM reaches node managers: one lazily connected, cached tonic channel per node, the AM
//! launcher (StartContainers in a spawned task, its result fed back to the core task), and
//! StopContainers. Nothing here waits on the core task's path: every RPC runs in its own task.

use std::collections::HashMap;
use std::time::Duration;

use spindle_containers::{ContainerId, LaunchContext, NodeId, Resource};
use spindle_protocol as proto;
use spindle_protocol::container_manager_client::ContainerManagerClient;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use super::handle::Command;

/// Hang guards: an NM that does not answer must not hold a launch forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RPC_TIMEOUT: Duration = Duration::from_secs(60);

pub struct AmLaunch {
    pub container: ContainerId,
    pub node: NodeId,
    pub resource: Resource,
    pub launch: LaunchContext,
    pub user: String,
}

pub struct NmClients {
    channels: HashMap<NodeId, Channel>,
    /// In-flight RPCs; dropping the set (at shutdown) aborts them.
    tasks: JoinSet<()>,
    results: mpsc::Sender<Command>,
}

impl NmClients {
    pub fn new(results: mpsc::Sender<Command>) -> Self {
        NmClients {
            channels: HashMap::new(),
            tasks: JoinSet::new(),
            results,
        }
    }

    fn client(&mut self, node: &NodeId) -> Result<ContainerManagerClient<Channel>, String> {
        if let Some(channel) = self.channels.get(node) {
            return Ok(ContainerManagerClient::new(channel.clone()));
        }
        let endpoint = Endpoint::from_shared(format!("http://{node}"))
            .map_err(|e| format!("node address {node} is not a usable URI: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        self.channels.insert(node.clone(), channel.clone());
        Ok(ContainerManagerClient::new(channel))
    }

    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        while self.tasks.try_join_next().is_some() {}
        self.tasks.spawn(task);
    }

    /// Starts an AM container; the outcome comes back as `Command::AmLaunched`.
    pub fn launch_am(&mut self, am: AmLaunch) {
        let span = tracing::info_span!("launch_am", app = %am.container.application(),
            container = %am.container, node = %am.node);
        let client = self.client(&am.node);
        let results = self.results.clone();
        let container = am.container;
        self.spawn(
            async move {
                let result = match client {
                    Ok(client) => start(client, am).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "AM container launch failed");
                }
                // The core task may be gone (shutdown); then nobody needs the result.
                let _ = results
                    .send(Command::AmLaunched { container, result })
                    .await;
            }
            .instrument(span),
        );
    }

    /// Stops containers on a node. Best effort: if the NM cannot be reached, its next heartbeat
    /// reports them still running and is told to clean them up.
    pub fn stop(&mut self, node: NodeId, containers: Vec<ContainerId>, exit_status: i32) {
        let span =
            tracing::info_span!("stop_containers", %node, count = containers.len(), exit_status);
        let Ok(mut client) = self.client(&node) else {
            return;
        };
        let request = proto::StopContainersRequest {
            container_ids: containers.iter().map(|c| c.to_string()).collect(),
            exit_status,
        };
        self.spawn(
            async move {
                match client.stop_containers(request).await {
                    Ok(resp) => {
                        for failed in resp.into_inner().failed {
                            tracing::debug!(container = %failed.container_id,
                                reason = %failed.message, "container not stopped");
                        }
                    }
                    Err(status) => tracing::warn!(error = %status.message(),
                        "StopContainers failed; the next heartbeat will clean up"),
                }
            }
            .instrument(span),
        );
    }
}

async fn start(mut client: ContainerManagerClient<Channel>, am: AmLaunch) -> Result<(), String> {
    let id = am.container.to_string();
    let request = proto::StartContainersRequest {
        requests: vec![proto::StartContainerRequest {
            container_id: id.clone(),
            resource: Some(am.resource.to_proto()),
            launch_context: Some(am.launch.to_proto()),
            container_token: String::new(),
        }],
    };
    let response = client
        .start_containers(request)
        .await
        .map_err(|status| format!("StartContainers failed: {}", status.message()))?
        .into_inner();
    if response.started.contains(&id) {
        return Ok(());
    }
    Err(response
        .failed
        .into_iter()
        .find(|f| f.container_id == id)
        .map(|f| f.message)
        .unwrap_or_else(|| "the node manager did not report it started".into()))
}
