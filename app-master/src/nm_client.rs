//! `NmClient`: starts, stops and asks about containers on the node managers that hold them
//! (YARN's ContainerManagementProtocol, spoken by the AM directly). It keeps one channel per
//! node, and turns a list of containers into one batched call per node, all nodes in parallel.
//!
//! A node lets the AM in only with the NM token the RM issued for that node and application:
//! every call to a node carries the newest one in `NmTokens` (which the `AmRmClient` fills), and
//! each start carries the container's own container token from its allocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use spindle_containers::{ContainerId, LaunchContext, LaunchContextError, exit_status};
use spindle_protocol as proto;
use spindle_security::{CallCredentials, NM_TOKEN_HEADER, current_user};
use tonic::transport::Channel;
use tracing::{debug, warn};

use crate::container::{Container, ContainerStatus};
use crate::endpoint::{self, AddressError};
use crate::tokens::NmTokens;

type Rpc = proto::container_manager_client::ContainerManagerClient<Channel>;

/// Each container's own outcome of a batched call.
pub type Outcomes<T> = Vec<(ContainerId, Result<T, NmError>)>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum NmError {
    #[error("cannot reach the node manager: {0}")]
    Address(#[from] AddressError),
    #[error("{call} on node {node} failed: {code:?}: {message}")]
    Rpc {
        call: &'static str,
        node: String,
        code: tonic::Code,
        message: String,
    },
    #[error("node {node} refused container {container}: {message}")]
    Refused {
        container: ContainerId,
        node: String,
        message: String,
    },
    #[error("node {node} did not answer for container {container} in {call}")]
    NoAnswer {
        call: &'static str,
        container: ContainerId,
        node: String,
    },
    #[error("container {container} has a bad launch context: {source}")]
    BadLaunchContext {
        container: ContainerId,
        source: LaunchContextError,
    },
}

#[derive(Clone)]
pub struct NmClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The NM token of each node, as the RM issued them to this attempt.
    tokens: NmTokens,
    /// The user the calls name (this process's).
    user: String,
    channels: Mutex<HashMap<String, Rpc>>,
}

impl NmClient {
    /// A client whose calls to a node present that node's token from `tokens` (an AM passes
    /// `AmRmClient::nm_tokens`).
    pub fn new(tokens: NmTokens) -> NmClient {
        NmClient {
            inner: Arc::new(Inner {
                tokens,
                user: current_user(),
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// `message` as a request to the node `node_id`, carrying its NM token; without one the
    /// call goes out all the same and the node's refusal names what is missing.
    fn request<T>(&self, node_id: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let credentials = match self.inner.tokens.get(node_id) {
            Some(token) => {
                CallCredentials::with_token(NM_TOKEN_HEADER, token, self.inner.user.clone())
            }
            None => {
                warn!(
                    node = node_id,
                    "no NM token for this node: the RM sent none"
                );
                CallCredentials::user_only(self.inner.user.clone())
            }
        };
        if let Err(e) = credentials.attach(request.metadata_mut()) {
            warn!(node = node_id, "cannot attach the NM token: {e}");
        }
        request
    }

    /// Starts one container.
    pub async fn start_container(
        &self,
        container: &Container,
        launch: &LaunchContext,
    ) -> Result<(), NmError> {
        let mut outcomes = self
            .start_containers(vec![(container.clone(), launch.clone())])
            .await;
        match outcomes.pop() {
            Some((_, outcome)) => outcome,
            None => Err(NmError::NoAnswer {
                call: "StartContainers",
                container: container.id,
                node: container.node_address.clone(),
            }),
        }
    }

    /// Starts every container with its launch context: one `StartContainers` per node, the
    /// nodes in parallel. Returns each container's outcome; launch contexts that fail
    /// validation are refused here without a call.
    pub async fn start_containers(
        &self,
        launches: Vec<(Container, LaunchContext)>,
    ) -> Outcomes<()> {
        let mut outcomes = Vec::new();
        let mut valid = Vec::new();
        for (container, launch) in launches {
            match launch.validate() {
                Ok(()) => valid.push((container, launch)),
                Err(source) => outcomes.push((
                    container.id,
                    Err(NmError::BadLaunchContext {
                        container: container.id,
                        source,
                    }),
                )),
            }
        }
        let calls = group_by_node(valid, |(c, _)| c.node_address.as_str())
            .into_iter()
            .map(|(node, batch)| self.start_on_node(node, batch));
        outcomes.extend(join_all(calls).await.into_iter().flatten());
        outcomes
    }

    /// Stops containers (their exit status becomes -105 KILLED_BY_APPMASTER), one call per node.
    pub async fn stop_containers(&self, containers: &[Container]) -> Outcomes<()> {
        let calls = group_by_node(containers.iter(), |c| c.node_address.as_str())
            .into_iter()
            .map(|(node, batch)| self.stop_on_node(node, batch));
        join_all(calls).await.into_iter().flatten().collect()
    }

    /// Asks each container's node how it is doing, one call per node.
    pub async fn container_statuses(&self, containers: &[Container]) -> Outcomes<ContainerStatus> {
        let calls = group_by_node(containers.iter(), |c| c.node_address.as_str())
            .into_iter()
            .map(|(node, batch)| self.statuses_on_node(node, batch));
        join_all(calls).await.into_iter().flatten().collect()
    }

    #[tracing::instrument(skip(self, batch), fields(containers = batch.len()))]
    async fn start_on_node(
        &self,
        node: String,
        batch: Vec<(Container, LaunchContext)>,
    ) -> Outcomes<()> {
        const CALL: &str = "StartContainers";
        let ids: Vec<ContainerId> = batch.iter().map(|(c, _)| c.id).collect();
        let request = proto::StartContainersRequest {
            requests: batch
                .iter()
                .map(|(container, launch)| proto::StartContainerRequest {
                    container_id: container.id.to_string(),
                    resource: Some(container.resource.to_proto()),
                    launch_context: Some(launch.to_proto()),
                    container_token: container.token.clone(),
                })
                .collect(),
        };
        let request = self.request(&node_id_of(batch.iter().map(|(c, _)| c)), request);
        let response = match self.rpc(&node) {
            Ok(mut rpc) => rpc.start_containers(request).await,
            Err(e) => return fail_all(&ids, e),
        };
        match response {
            Ok(r) => {
                let r = r.into_inner();
                debug!(
                    started = r.started.len(),
                    failed = r.failed.len(),
                    "started containers"
                );
                collate(CALL, &node, &ids, &r.started, &r.failed, |_| Some(()))
            }
            Err(status) => fail_all(&ids, rpc_error(CALL, &node, status)),
        }
    }

    #[tracing::instrument(skip(self, batch), fields(containers = batch.len()))]
    async fn stop_on_node(&self, node: String, batch: Vec<&Container>) -> Outcomes<()> {
        const CALL: &str = "StopContainers";
        let ids: Vec<ContainerId> = batch.iter().map(|c| c.id).collect();
        let request = proto::StopContainersRequest {
            container_ids: ids.iter().map(ToString::to_string).collect(),
            exit_status: exit_status::KILLED_BY_APPMASTER,
        };
        let request = self.request(&node_id_of(batch.iter().copied()), request);
        let response = match self.rpc(&node) {
            Ok(mut rpc) => rpc.stop_containers(request).await,
            Err(e) => return fail_all(&ids, e),
        };
        match response {
            Ok(r) => {
                let r = r.into_inner();
                collate(CALL, &node, &ids, &r.stopped, &r.failed, |_| Some(()))
            }
            Err(status) => fail_all(&ids, rpc_error(CALL, &node, status)),
        }
    }

    #[tracing::instrument(skip(self, batch), fields(containers = batch.len()))]
    async fn statuses_on_node(
        &self,
        node: String,
        batch: Vec<&Container>,
    ) -> Outcomes<ContainerStatus> {
        const CALL: &str = "GetContainerStatuses";
        let ids: Vec<ContainerId> = batch.iter().map(|c| c.id).collect();
        let request = proto::GetContainerStatusesRequest {
            container_ids: ids.iter().map(ToString::to_string).collect(),
        };
        let request = self.request(&node_id_of(batch.iter().copied()), request);
        let response = match self.rpc(&node) {
            Ok(mut rpc) => rpc.get_container_statuses(request).await,
            Err(e) => return fail_all(&ids, e),
        };
        match response {
            Ok(r) => {
                let r = r.into_inner();
                let statuses: Vec<ContainerStatus> = r
                    .statuses
                    .iter()
                    .filter_map(|s| {
                        ContainerStatus::from_proto(s)
                            .inspect_err(|e| warn!("ignoring a container status from {node}: {e}"))
                            .ok()
                    })
                    .collect();
                let answered: Vec<String> = statuses.iter().map(|s| s.id.to_string()).collect();
                collate(CALL, &node, &ids, &answered, &r.failed, |id| {
                    statuses.iter().find(|s| s.id == id).cloned()
                })
            }
            Err(status) => fail_all(&ids, rpc_error(CALL, &node, status)),
        }
    }

    /// The cached client for `node`; a channel reconnects by itself after a failure, so it is
    /// kept for the life of the AM.
    fn rpc(&self, node: &str) -> Result<Rpc, NmError> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(rpc) = channels.get(node) {
            return Ok(rpc.clone());
        }
        let rpc = Rpc::new(endpoint::lazy_channel(node)?);
        channels.insert(node.to_string(), rpc.clone());
        Ok(rpc)
    }
}

/// The node id of a batch's containers (one node's, so all the same); tokens are issued by it.
fn node_id_of<'a>(mut batch: impl Iterator<Item = &'a Container>) -> String {
    batch
        .next()
        .map(|c| c.node_id.to_string())
        .unwrap_or_default()
}

/// Items by the node address `node_of` reads from each, in a stable order.
fn group_by_node<T>(
    items: impl IntoIterator<Item = T>,
    node_of: impl Fn(&T) -> &str,
) -> BTreeMap<String, Vec<T>> {
    let mut groups: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for item in items {
        groups
            .entry(node_of(&item).to_string())
            .or_default()
            .push(item);
    }
    groups
}

fn rpc_error(call: &'static str, node: &str, status: tonic::Status) -> NmError {
    NmError::Rpc {
        call,
        node: node.to_string(),
        code: status.code(),
        message: status.message().to_string(),
    }
}

fn fail_all<T>(ids: &[ContainerId], error: NmError) -> Outcomes<T> {
    ids.iter().map(|id| (*id, Err(error.clone()))).collect()
}

/// Each id's outcome from a node's answer: done (with `value`), refused with the node's
/// message, or — if the node named it nowhere — not answered.
fn collate<T>(
    call: &'static str,
    node: &str,
    ids: &[ContainerId],
    done: &[String],
    failed: &[proto::ContainerError],
    value: impl Fn(ContainerId) -> Option<T>,
) -> Outcomes<T> {
    let no_answer = |container| NmError::NoAnswer {
        call,
        container,
        node: node.to_string(),
    };
    ids.iter()
        .map(|&id| {
            let name = id.to_string();
            let outcome = if let Some(f) = failed.iter().find(|f| f.container_id == name) {
                Err(NmError::Refused {
                    container: id,
                    node: node.to_string(),
                    message: f.message.clone(),
                })
            } else if done.contains(&name) {
                value(id).ok_or_else(|| no_answer(id))
            } else {
                Err(no_answer(id))
            };
            (id, outcome)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use spindle_containers::{NodeId, Resource};

    use super::*;

    fn container(id: u64, node: &str) -> Container {
        Container {
            id: ContainerId::new(
                "appattempt_1700000000000_0001_000001".parse().unwrap(),
                0,
                id,
            ),
            node_id: NodeId::new(node).unwrap(),
            node_address: node.into(),
            node_http_address: String::new(),
            resource: Resource::new(1024, 1),
            priority: 0,
            token: String::new(),
        }
    }

    #[test]
    fn groups_one_batch_per_node() {
        let containers = [
            container(1, "a:1"),
            container(2, "b:1"),
            container(3, "a:1"),
        ];
        let groups = group_by_node(containers.iter(), |c| c.node_address.as_str());
        let ids: Vec<(String, Vec<u64>)> = groups
            .into_iter()
            .map(|(node, batch)| (node, batch.iter().map(|c| c.id.id).collect()))
            .collect();
        assert_eq!(
            ids,
            vec![("a:1".into(), vec![1, 3]), ("b:1".into(), vec![2])]
        );
    }

    #[test]
    fn collates_started_refused_and_unanswered() {
        let ids: Vec<ContainerId> = (1..=3).map(|i| container(i, "a:1").id).collect();
        let failed = vec![proto::ContainerError {
            container_id: ids[1].to_string(),
            message: "localization failed".into(),
        }];
        let outcomes = collate(
            "StartContainers",
            "a:1",
            &ids,
            &[ids[0].to_string()],
            &failed,
            |_| Some(()),
        );
        assert!(outcomes[0].1.is_ok());
        let refused = outcomes[1].1.as_ref().unwrap_err().to_string();
        assert_eq!(
            refused,
            format!("node a:1 refused container {}: localization failed", ids[1])
        );
        let unanswered = outcomes[2].1.as_ref().unwrap_err().to_string();
        assert!(unanswered.contains("did not answer"), "{unanswered}");
    }

    #[tokio::test]
    async fn every_container_of_an_unreachable_node_fails_naming_the_node() {
        let nm = NmClient::new(NmTokens::new());
        let launch = LaunchContext {
            command: vec!["true".into()],
            ..Default::default()
        };
        let bad = LaunchContext::default();
        let outcomes = nm
            .start_containers(vec![
                (container(1, "127.0.0.1:1"), launch.clone()),
                (container(2, "127.0.0.1:1"), launch),
                (container(3, "127.0.0.1:1"), bad),
            ])
            .await;
        assert_eq!(outcomes.len(), 3);
        for (id, outcome) in outcomes {
            let err = outcome.unwrap_err().to_string();
            if id.id == 3 {
                assert!(err.contains("command is empty"), "{err}");
            } else {
                assert!(
                    err.contains("StartContainers on node 127.0.0.1:1 failed"),
                    "{err}"
                );
            }
        }
    }
}
