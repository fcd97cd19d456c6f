//! The ApplicationMaster service: register, the Allocate long poll, and finish. The long poll
//! itself is held by the core task (see `polls`); this side only waits for its answer. Every call
//! carries an AM token (`guards::AmGuard`) and may act for that token's attempt only. When the
//! token was signed by an older master key or is past half its life, the Allocate answer brings
//! a fresh one, and fresh NM tokens for every node the application holds containers on.

use std::collections::BTreeSet;
use std::time::Duration;

use spindle_containers::{AttemptId, NodeId, Resource};
use spindle_protocol as proto;
use spindle_protocol::application_master_server::ApplicationMaster;
use tonic::{Request, Response, Status};

use super::convert;
use super::guards::{am_identity, own_attempt};
use super::handle::{Command, CoreHandle};
use super::tokens::KeysHandle;

pub struct AmService {
    core: CoreHandle,
    minimum: Resource,
    maximum: Resource,
    max_allocate_wait: Duration,
    keys: KeysHandle,
}

impl AmService {
    pub fn new(
        core: CoreHandle,
        minimum: Resource,
        maximum: Resource,
        max_allocate_wait: Duration,
        keys: KeysHandle,
    ) -> Self {
        AmService {
            core,
            minimum,
            maximum,
            max_allocate_wait,
            keys,
        }
    }

    /// Puts a new AM token into `response`, and NM tokens for every node the application holds
    /// live containers on (besides those it already carries).
    async fn renew(
        &self,
        attempt: AttemptId,
        response: &mut proto::AllocateResponse,
    ) -> Result<(), Status> {
        let app = attempt.application;
        let held = self
            .core
            .read(move |core, _| {
                core.app(app).map(|a| {
                    let nodes: BTreeSet<NodeId> = a
                        .containers
                        .iter()
                        .filter_map(|c| core.container(*c))
                        .filter(|c| c.is_live())
                        .map(|c| core.node(c.node).id.clone())
                        .collect();
                    (a.user.clone(), nodes)
                })
            })
            .await?;
        let keys = self.keys.get();
        let now = spindle_security::now_ms();
        response.am_token = keys.am_token(attempt, now);
        if let Some((owner, nodes)) = held {
            for node in nodes {
                if !response
                    .nm_tokens
                    .iter()
                    .any(|t| t.node_id == node.as_str())
                {
                    response
                        .nm_tokens
                        .push(keys.nm_token(app, &node, &owner, now));
                }
            }
        }
        tracing::info!(app = %app, %attempt, "handed the AM a renewed AM token and NM tokens");
        Ok(())
    }
}

#[tonic::async_trait]
impl ApplicationMaster for AmService {
    async fn register_application_master(
        &self,
        request: Request<proto::RegisterApplicationMasterRequest>,
    ) -> Result<Response<proto::RegisterApplicationMasterResponse>, Status> {
        let identity = am_identity(&request)?;
        own_attempt(&identity, &request.get_ref().attempt_id)?;
        let call = convert::register_call(request.into_inner())?;
        let queue = self
            .core
            .call(|reply| Command::RegisterAm(call, reply))
            .await?;
        // Containers kept from earlier attempts are not handed over (yet), so there are no
        // nodes to give NM tokens for.
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
        let identity = am_identity(&request)?;
        let attempt = own_attempt(&identity, &request.get_ref().attempt_id)?;
        let request = request.into_inner();
        let call = convert::allocate_call(&request)?;
        let wait = Duration::from_millis(u64::from(request.wait_ms));
        let mut response = self
            .core
            .call(|reply| Command::Allocate { call, wait, reply })
            .await?;
        if identity.renew {
            self.renew(attempt, &mut response).await?;
        }
        Ok(Response::new(response))
    }

    async fn finish_application_master(
        &self,
        request: Request<proto::FinishApplicationMasterRequest>,
    ) -> Result<Response<proto::FinishApplicationMasterResponse>, Status> {
        let identity = am_identity(&request)?;
        own_attempt(&identity, &request.get_ref().attempt_id)?;
        let call = convert::finish_call(request.into_inner())?;
        self.core
            .call(|reply| Command::FinishAm(call, reply))
            .await?;
        Ok(Response::new(proto::FinishApplicationMasterResponse {
            unregistered: true,
        }))
    }
}
