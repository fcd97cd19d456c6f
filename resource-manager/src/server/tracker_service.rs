//! The ResourceTracker service: node registration and heartbeats, for holders of the daemon
//! secret only (`guards`). A heartbeat from a node the RM does not know (it restarted, or expired
//! the node) is answered RESYNC, not with an error, so the NM registers again. Every answer
//! carries the node keys in use, so that a node always checks tokens with the keys the RM signs
//! them with.

use std::time::Duration;

use spindle_protocol as proto;
use spindle_protocol::resource_tracker_server::ResourceTracker;
use tonic::{Request, Response, Status};

use super::convert;
use super::handle::{Command, CoreHandle};
use super::status::to_status;
use super::tokens::KeysHandle;
use crate::core::CoreError;

pub struct TrackerService {
    core: CoreHandle,
    heartbeat_interval: Duration,
    cluster_timestamp: u64,
    keys: KeysHandle,
}

impl TrackerService {
    pub fn new(
        core: CoreHandle,
        heartbeat_interval: Duration,
        cluster_timestamp: u64,
        keys: KeysHandle,
    ) -> Self {
        TrackerService {
            core,
            heartbeat_interval,
            cluster_timestamp,
            keys,
        }
    }

    fn node_keys(&self) -> Vec<proto::NodeKey> {
        self.keys.get().announced().to_vec()
    }

    fn interval_ms(&self) -> u32 {
        u32::try_from(self.heartbeat_interval.as_millis()).unwrap_or(u32::MAX)
    }
}

#[tonic::async_trait]
impl ResourceTracker for TrackerService {
    async fn register_node_manager(
        &self,
        request: Request<proto::RegisterNodeRequest>,
    ) -> Result<Response<proto::RegisterNodeResponse>, Status> {
        let request = request.into_inner();
        let info = convert::node_info(&request)?;
        let containers = convert::reported_containers(&request.containers)?;
        self.core
            .call(|reply| Command::RegisterNode(info, containers, reply))
            .await?;
        Ok(Response::new(proto::RegisterNodeResponse {
            heartbeat_interval_ms: self.interval_ms(),
            cluster_timestamp: self.cluster_timestamp,
            node_keys: self.node_keys(),
        }))
    }

    async fn node_heartbeat(
        &self,
        request: Request<proto::NodeHeartbeatRequest>,
    ) -> Result<Response<proto::NodeHeartbeatResponse>, Status> {
        let heartbeat = convert::heartbeat(request.into_inner())?;
        let outcome = self
            .core
            .request(|reply| Command::Heartbeat(heartbeat, reply))
            .await?;
        let response = match outcome {
            Ok(outcome) => proto::NodeHeartbeatResponse {
                action: proto::NodeAction::Normal as i32,
                heartbeat_interval_ms: self.interval_ms(),
                containers_to_cleanup: strings(&outcome.containers_to_cleanup),
                applications_to_cleanup: strings(&outcome.applications_to_cleanup),
                containers_acknowledged: strings(&outcome.acknowledged),
                node_keys: self.node_keys(),
            },
            Err(CoreError::UnknownNode(_)) => proto::NodeHeartbeatResponse {
                action: proto::NodeAction::Resync as i32,
                heartbeat_interval_ms: self.interval_ms(),
                node_keys: self.node_keys(),
                ..Default::default()
            },
            Err(other) => return Err(to_status(other)),
        };
        Ok(Response::new(response))
    }
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}
