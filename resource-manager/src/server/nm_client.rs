//! How the RM reaches node managers: one lazily connected, cached tonic channel per node, the AM
//! launcher (StartContainers in a spawned task, its result fed back to the core task), and
//! StopContainers. Nothing here waits on the core task's path: every RPC runs in its own task.
//! Like any AM, the RM presents an NM token for the application on every call, and the AM
//! container's container token to start it; the core task signs them.

use std::collections::HashMap;
use std::time::Duration;

use spindle_containers::{ContainerId, LaunchContext, NodeId, Resource};
use spindle_protocol as proto;
use spindle_protocol::container_manager_client::ContainerManagerClient;
use spindle_security::{CallCredentials, NM_TOKEN_HEADER};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use super::handle::Command;

/// Hang guards: an NM that does not answer must not hold a launch forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// A node that has just registered may not have taken in the node keys of its registration's
/// answer when the RM starts an AM on it at once: it answers Unavailable. The start is tried
/// again, this many times in all, backing off from `FIRST_BACK_OFF` (about 1.5 s altogether).
const START_TRIES: u32 = 6;
const FIRST_BACK_OFF: Duration = Duration::from_millis(50);

pub struct AmLaunch {
    pub container: ContainerId,
    pub node: NodeId,
    pub resource: Resource,
    /// With the AM token in its environment.
    pub launch: LaunchContext,
    pub container_token: String,
    pub nm_token: String,
}

pub struct NmClients {
    channels: HashMap<NodeId, Channel>,
    /// In-flight RPCs; dropping the set (at shutdown) aborts them.
    tasks: JoinSet<()>,
    results: mpsc::Sender<Command>,
    /// The RM's own OS user, which its calls name.
    user: String,
}

/// `message` with `nm_token` and the caller's `user` in its metadata.
fn with_token<T>(message: T, nm_token: String, user: &str) -> Result<tonic::Request<T>, String> {
    let mut request = tonic::Request::new(message);
    CallCredentials::with_token(NM_TOKEN_HEADER, nm_token, user.to_string())
        .attach(request.metadata_mut())
        .map_err(|status| status.message().to_string())?;
    Ok(request)
}

impl NmClients {
    pub fn new(results: mpsc::Sender<Command>, user: String) -> Self {
        NmClients {
            channels: HashMap::new(),
            tasks: JoinSet::new(),
            results,
            user,
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
        let user = self.user.clone();
        self.spawn(
            async move {
                let result = match client {
                    Ok(client) => start(client, am, &user).await,
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

    /// Stops containers of one application on a node, presenting `nm_token` (the application's
    /// on that node). Best effort: if the NM cannot be reached, its next heartbeat reports them
    /// still running and is told to clean them up.
    pub fn stop(
        &mut self,
        node: NodeId,
        containers: Vec<ContainerId>,
        exit_status: i32,
        nm_token: String,
    ) {
        let app = containers.first().map(|c| c.application());
        let span = tracing::info_span!("stop_containers", app = ?app, %node,
            count = containers.len(), exit_status);
        let Ok(mut client) = self.client(&node) else {
            return;
        };
        let message = proto::StopContainersRequest {
            container_ids: containers.iter().map(|c| c.to_string()).collect(),
            exit_status,
        };
        let request = match with_token(message, nm_token, &self.user) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(parent: &span, error = %e, "cannot send StopContainers");
                return;
            }
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

async fn start(
    mut client: ContainerManagerClient<Channel>,
    am: AmLaunch,
    user: &str,
) -> Result<(), String> {
    let id = am.container.to_string();
    let message = proto::StartContainersRequest {
        requests: vec![proto::StartContainerRequest {
            container_id: id.clone(),
            resource: Some(am.resource.to_proto()),
            launch_context: Some(am.launch.to_proto()),
            container_token: am.container_token,
        }],
    };
    let mut back_off = FIRST_BACK_OFF;
    let mut tries = 1;
    let response = loop {
        let request = with_token(message.clone(), am.nm_token.clone(), user)?;
        match client.start_containers(request).await {
            Ok(response) => break response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable && tries < START_TRIES => {
                tracing::debug!(error = %status.message(), tries, "the node cannot start it yet");
                tokio::time::sleep(back_off).await;
                back_off *= 2;
                tries += 1;
            }
            Err(status) => return Err(format!("StartContainers failed: {}", status.message())),
        }
    };
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
