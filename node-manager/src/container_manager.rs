//! The `ContainerManager` gRPC service: how the RM and application masters start, stop and query
//! containers on this node and read their logs. Every call first shows an NM token for this node
//! (`auth`), which confines it to one application's containers; then every id and name from the
//! wire is checked here; a bad entry in a batch fails alone, with a message naming what was
//! wrong.

use std::pin::Pin;
use std::sync::Arc;

use futures::future::join_all;
use futures::{Stream, StreamExt};
use spindle_containers::{ApplicationId, ContainerId, exit_status};
use spindle_protocol as proto;
use spindle_protocol::container_manager_server::ContainerManager;
use spindle_security::{KeyRing, NM_TOKEN_HEADER, presented_token};
use tonic::{Request, Response, Status};

use crate::auth::{self, AccessError, Scope};
use crate::follow::{self, FOLLOW_POLL, Followed};
use crate::launch::{self, Allowed};
use crate::logs::{self, LogError};
use crate::node::Node;
use crate::state_store::StopReason;

pub struct ContainerManagerService {
    node: Arc<Node>,
}

impl ContainerManagerService {
    pub fn new(node: Arc<Node>) -> Self {
        ContainerManagerService { node }
    }

    /// What the call's NM token allows, and the keys it was checked with.
    fn access<T>(&self, request: &Request<T>) -> Result<(Scope, KeyRing), Status> {
        let ring = self.node.keys.ring().ok_or(AccessError::NoKeysYet)?;
        let token = presented_token(request.metadata(), NM_TOKEN_HEADER, "NM token").ok();
        let scope = auth::check_nm_token(
            Some(&ring),
            &self.node.node_id,
            token,
            spindle_security::now_ms(),
        )
        .inspect_err(|e| tracing::debug!("refused a container manager call: {e}"))?;
        Ok((scope, ring))
    }
}

/// Parses a container id of a batch and checks that the call may touch it.
fn own_container(scope: &Scope, raw: &str) -> Result<ContainerId, String> {
    let id: ContainerId = raw.parse().map_err(|e| format!("container_id: {e}"))?;
    scope
        .allows(id.application(), || format!("container {id}"))
        .map_err(|e| e.to_string())?;
    Ok(id)
}

fn container_error(container_id: &str, message: impl ToString) -> proto::ContainerError {
    proto::ContainerError {
        container_id: container_id.to_string(),
        message: message.to_string(),
    }
}

fn parse_container(field: &str, value: &str) -> Result<ContainerId, Status> {
    value
        .parse()
        .map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

impl From<LogError> for Status {
    fn from(e: LogError) -> Status {
        match e {
            LogError::BadFileName(_) | LogError::WrongApplication { .. } => {
                Status::invalid_argument(e.to_string())
            }
            LogError::NoApplication(_) | LogError::NoContainer(_) | LogError::NoFile { .. } => {
                Status::not_found(e.to_string())
            }
            LogError::Io { .. } => Status::internal(e.to_string()),
        }
    }
}

/// Counts an open follower in the node's metrics for as long as its stream exists.
struct Attached(Arc<Node>);

impl Attached {
    fn new(node: Arc<Node>) -> Attached {
        node.metrics.follower_attached();
        Attached(node)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.0.metrics.follower_detached();
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<proto::LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl ContainerManager for ContainerManagerService {
    async fn start_containers(
        &self,
        request: Request<proto::StartContainersRequest>,
    ) -> Result<Response<proto::StartContainersResponse>, Status> {
        let (scope, ring) = self.access(&request)?;
        let requests = request.into_inner().requests;
        let outcomes = join_all(requests.into_iter().map(|r| {
            let raw_id = r.container_id.clone();
            let allowed = Allowed {
                scope: &scope,
                ring: &ring,
            };
            async move { (raw_id, launch::start(&self.node, r, allowed).await) }
        }))
        .await;
        let mut response = proto::StartContainersResponse::default();
        for (raw_id, outcome) in outcomes {
            match outcome {
                Ok(id) => response.started.push(id.to_string()),
                Err(e) => response.failed.push(container_error(&raw_id, e)),
            }
        }
        Ok(Response::new(response))
    }

    async fn stop_containers(
        &self,
        request: Request<proto::StopContainersRequest>,
    ) -> Result<Response<proto::StopContainersResponse>, Status> {
        let (scope, _) = self.access(&request)?;
        let request = request.into_inner();
        // proto3 cannot tell 0 from unset, and a stop never means success: 0 is the AM's stop.
        let status = match request.exit_status {
            0 => exit_status::KILLED_BY_APPMASTER,
            s => s,
        };
        let scope = &scope;
        let outcomes = join_all(request.container_ids.iter().map(|raw| async move {
            let outcome = match own_container(scope, raw) {
                Err(message) => Err(message),
                Ok(id) if launch::stop(&self.node, id, StopReason::status(status)).await => Ok(()),
                Ok(id) => Err(format!("container {id} is not known on this node")),
            };
            (raw, outcome)
        }))
        .await;
        let mut response = proto::StopContainersResponse::default();
        for (raw, outcome) in outcomes {
            match outcome {
                Ok(()) => response.stopped.push(raw.clone()),
                Err(message) => response.failed.push(container_error(raw, message)),
            }
        }
        Ok(Response::new(response))
    }

    async fn get_container_statuses(
        &self,
        request: Request<proto::GetContainerStatusesRequest>,
    ) -> Result<Response<proto::GetContainerStatusesResponse>, Status> {
        let (scope, _) = self.access(&request)?;
        let mut response = proto::GetContainerStatusesResponse::default();
        for raw in request.into_inner().container_ids {
            match own_container(&scope, &raw) {
                Err(message) => response.failed.push(container_error(&raw, message)),
                Ok(id) => match self.node.containers.status(id) {
                    Some(status) => response.statuses.push(status),
                    None => response.failed.push(container_error(
                        &raw,
                        format!("container {id} is not known on this node"),
                    )),
                },
            }
        }
        Ok(Response::new(response))
    }

    async fn list_container_logs(
        &self,
        request: Request<proto::ListContainerLogsRequest>,
    ) -> Result<Response<proto::ListContainerLogsResponse>, Status> {
        let (scope, _) = self.access(&request)?;
        let request = request.into_inner();
        let app: ApplicationId = request
            .application_id
            .parse()
            .map_err(|e| Status::invalid_argument(format!("application_id: {e}")))?;
        scope.allows(app, || format!("application_id {app}"))?;
        let container = match request.container_id.as_str() {
            "" => None,
            raw => Some(parse_container("container_id", raw)?),
        };
        let listed = logs::list(&self.node.layout, app, container).await?;
        let containers = listed
            .into_iter()
            .map(|c| proto::ContainerLogFiles {
                container_id: c.container.to_string(),
                files: c
                    .files
                    .into_iter()
                    .map(|(name, size)| proto::LogFile { name, size })
                    .collect(),
                node_id: self.node.node_id.to_string(),
            })
            .collect();
        Ok(Response::new(proto::ListContainerLogsResponse {
            containers,
        }))
    }

    type ReadContainerLogStream = LogStream;

    async fn read_container_log(
        &self,
        request: Request<proto::ReadContainerLogRequest>,
    ) -> Result<Response<LogStream>, Status> {
        let (scope, _) = self.access(&request)?;
        let request = request.into_inner();
        let id = parse_container("container_id", &request.container_id)?;
        scope.allows(id.application(), || format!("container_id {id}"))?;
        let path = logs::log_file(&self.node.layout, id, &request.file).await?;
        let chunks = if request.follow {
            let node = Arc::clone(&self.node);
            let followed = Followed {
                ended: self.node.containers.ended(),
                live: Box::new(move || node.containers.is_live(id)),
                stopping: self.node.stopping.clone(),
                poll: FOLLOW_POLL,
            };
            let chunks = follow::follow(path, request.offset, followed).await?;
            let attached = Attached::new(Arc::clone(&self.node));
            chunks
                .map(move |chunk| {
                    let _counted_while_open = &attached;
                    chunk
                })
                .boxed()
        } else {
            logs::read_from(path, request.offset).await?
        };
        let stream = chunks.map(|chunk| {
            chunk
                .map(|data| proto::LogChunk { data })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
