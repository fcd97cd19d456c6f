//! The ApplicationMaster service: register, the Allocate long poll, and finish. The long poll
//! itself is held by the core task (see `polls`); this side only waits for its answer.

use std::time::Duration;

use spindle_containers::Resource;
use spindle_protocol as proto;
use spindle_protocol::application_master_server::ApplicationMaster;
use tonic::{Request, Response, Status};

use super::convert;
use super::handle::{Command, CoreHandle};

pub struct AmService {
    core: CoreHandle,
    minimum: Resource,
    maximum: Resource,
    max_allocate_wait: Duration,
}

impl AmService {
    pub fn new(
        core: CoreHandle,
        minimum: Resource,
        maximum: Resource,
        max_allocate_wait: Duration,
    ) -> Self {
        AmService {
            core,
            minimum,
            maximum,
            max_allocate_wait,
        }
    }
}

#[tonic::async_trait]
impl ApplicationMaster for AmService {
    async fn register_application_master(
        &self,
        request: Request<proto::RegisterApplicationMasterRequest>,
    ) -> Result<Response<proto::RegisterApplicationMasterResponse>, Status> {
        let call = convert::register_call(request.into_inner())?;
        let queue = self
            .core
            .call(|reply| Command::RegisterAm(call, reply))
            .await?;
        Ok(Response::new(proto::RegisterApplicationMasterResponse {
            maximum_resource: Some(self.maximum.to_proto()),
            minimum_resource: Some(self.minimum.to_proto()),
            queue,
            max_allocate_wait_ms: u32::try_from(self.max_allocate_wait.as_millis())
                .unwrap_or(u32::MAX),
            containers_from_previous_attempts: Vec::new(),
            nm_tokens: Vec::new(),
        }))
    }

    async fn allocate(
        &self,
        request: Request<proto::AllocateRequest>,
    ) -> Result<Response<proto::AllocateResponse>, Status> {
        let request = request.into_inner();
        let call = convert::allocate_call(&request)?;
        let wait = Duration::from_millis(u64::from(request.wait_ms));
        let response = self
            .core
            .call(|reply| Command::Allocate { call, wait, reply })
            .await?;
        Ok(Response::new(response))
    }

    async fn finish_application_master(
        &self,
        request: Request<proto::FinishApplicationMasterRequest>,
    ) -> Result<Response<proto::FinishApplicationMasterResponse>, Status> {
        let call = convert::finish_call(request.into_inner())?;
        self.core
            .call(|reply| Command::FinishAm(call, reply))
            .await?;
        Ok(Response::new(proto::FinishApplicationMasterResponse {
            unregistered: true,
        }))
    }
}
