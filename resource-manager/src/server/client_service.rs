//! The ApplicationClient service: what `spindle submit`, `spindle application` and `spindle node`
//! speak. Requests are checked at the edge, then handed to the core task. Every call proved a
//! secret (`guards`); the calls that create or end something, and the log tokens, need the
//! client secret and the ACLs' leave (`acl`); reads are open to any caller.

use std::collections::BTreeSet;
use std::sync::Arc;

use spindle_containers::{ApplicationId, NodeId, Resource};
use spindle_protocol as proto;
use spindle_protocol::application_client_server::ApplicationClient;
use spindle_security::{AuthError, validate_user};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};

use super::acl::Acl;
use super::convert;
use super::guards::client_caller;
use super::handle::{Command, CoreHandle};
use super::reports;
use super::status::shorten;
use super::tokens::KeysHandle;
use crate::core::CoreError;

pub struct ClientService {
    core: CoreHandle,
    minimum: Resource,
    maximum: Resource,
    keys: KeysHandle,
    acl: Arc<Acl>,
}

impl ClientService {
    pub fn new(
        core: CoreHandle,
        minimum: Resource,
        maximum: Resource,
        keys: KeysHandle,
        acl: Arc<Acl>,
    ) -> Self {
        ClientService {
            core,
            minimum,
            maximum,
            keys,
            acl,
        }
    }

    /// The application's owner, or NotFound.
    async fn owner(&self, app: ApplicationId) -> Result<String, Status> {
        self.core
            .read(move |core, _| core.app(app).map(|a| a.user.clone()))
            .await?
            .ok_or_else(|| CoreError::UnknownApplication(app).into())
    }
}

/// The `user` a submission names, if any, checked for shape.
fn requested_user(user: &str) -> Result<(), Status> {
    if user.is_empty() {
        return Ok(());
    }
    validate_user(user).map_err(|e| {
        let problem = match e {
            AuthError::BadUser(problem) => problem,
            other => other.to_string(),
        };
        Status::invalid_argument(format!("user={}: {problem}", shorten(user)))
    })
}

#[tonic::async_trait]
impl ApplicationClient for ClientService {
    async fn get_new_application(
        &self,
        request: Request<proto::GetNewApplicationRequest>,
    ) -> Result<Response<proto::GetNewApplicationResponse>, Status> {
        client_caller(&request, "GetNewApplication")?;
        let id = self.core.call(Command::NewApplication).await?;
        Ok(Response::new(proto::GetNewApplicationResponse {
            application_id: id.to_string(),
            maximum_resource: Some(self.maximum.to_proto()),
            minimum_resource: Some(self.minimum.to_proto()),
        }))
    }

    async fn submit_application(
        &self,
        request: Request<proto::SubmitApplicationRequest>,
    ) -> Result<Response<proto::SubmitApplicationResponse>, Status> {
        let caller = client_caller(&request, "SubmitApplication")?;
        let request = request.into_inner();
        requested_user(&request.user)?;
        let mut submission = convert::submission(request, self.minimum)?;
        submission.user = self.acl.submission_owner(
            &caller.user,
            &submission.user,
            &submission.queue,
            submission.id,
        )?;
        let attempt = self
            .core
            .call(|reply| Command::Submit(submission, reply))
            .await?;
        // An unmanaged AM is its submitter: it gets its attempt's token here.
        let am_token = attempt
            .map(|a| self.keys.get().am_token(a, spindle_security::now_ms()))
            .unwrap_or_default();
        Ok(Response::new(proto::SubmitApplicationResponse {
            attempt_id: attempt.map(|a| a.to_string()).unwrap_or_default(),
            am_token,
        }))
    }

    async fn get_application_report(
        &self,
        request: Request<proto::GetApplicationReportRequest>,
    ) -> Result<Response<proto::ApplicationReport>, Status> {
        let id = convert::application_id(&request.get_ref().application_id)?;
        let report = self
            .core
            .read(move |core, _| core.app(id).map(|a| reports::app_report(core, a)))
            .await?
            .ok_or(CoreError::UnknownApplication(id))?;
        Ok(Response::new(report))
    }

    type WatchApplicationStream = UnboundedReceiverStream<Result<proto::ApplicationReport, Status>>;

    async fn watch_application(
        &self,
        request: Request<proto::GetApplicationReportRequest>,
    ) -> Result<Response<Self::WatchApplicationStream>, Status> {
        let id = convert::application_id(&request.get_ref().application_id)?;
        let (watcher, reports) = mpsc::unbounded_channel();
        self.core
            .call(|reply| Command::Watch(id, watcher, reply))
            .await?;
        Ok(Response::new(UnboundedReceiverStream::new(reports)))
    }

    async fn list_applications(
        &self,
        request: Request<proto::ListApplicationsRequest>,
    ) -> Result<Response<proto::ListApplicationsResponse>, Status> {
        let proto::ListApplicationsRequest { states, queue } = request.into_inner();
        convert::app_states(&states)?;
        let applications = self
            .core
            .read(move |core, _| {
                core.apps()
                    .filter(|a| {
                        states.is_empty() || states.contains(&(reports::app_state(a.state) as i32))
                    })
                    .filter(|a| queue.is_empty() || a.queue == queue)
                    .map(|a| reports::app_report(core, a))
                    .collect()
            })
            .await?;
        Ok(Response::new(proto::ListApplicationsResponse {
            applications,
        }))
    }

    async fn kill_application(
        &self,
        request: Request<proto::KillApplicationRequest>,
    ) -> Result<Response<proto::KillApplicationResponse>, Status> {
        let caller = client_caller(&request, "KillApplication")?;
        let proto::KillApplicationRequest {
            application_id,
            diagnostics,
        } = request.into_inner();
        let id = convert::application_id(&application_id)?;
        let owner = self.owner(id).await?;
        self.acl
            .check_owner(&caller.user, "kill", id, Some(&owner))?;
        // The core ends a killed application at once, so once this returns it is final.
        self.core
            .call(|reply| Command::Kill(id, diagnostics, reply))
            .await?;
        Ok(Response::new(proto::KillApplicationResponse {
            killed: true,
        }))
    }

    async fn get_log_tokens(
        &self,
        request: Request<proto::GetLogTokensRequest>,
    ) -> Result<Response<proto::GetLogTokensResponse>, Status> {
        let caller = client_caller(&request, "GetLogTokens")?;
        let id = convert::application_id(&request.get_ref().application_id)?;
        // Every node any of its containers ran on keeps (or kept) logs of it.
        let (owner, nodes) = self
            .core
            .read(move |core, _| {
                core.app(id).map(|a| {
                    let nodes: BTreeSet<NodeId> = a
                        .containers
                        .iter()
                        .filter_map(|c| core.container(*c))
                        .map(|c| core.node(c.node).id.clone())
                        .collect();
                    (a.user.clone(), nodes)
                })
            })
            .await?
            .ok_or(CoreError::UnknownApplication(id))?;
        self.acl
            .check_owner(&caller.user, "get the log tokens of", id, Some(&owner))?;
        let keys = self.keys.get();
        let now = spindle_security::now_ms();
        let tokens = nodes
            .iter()
            .map(|node| keys.nm_token(id, node, &owner, now))
            .collect();
        Ok(Response::new(proto::GetLogTokensResponse { tokens }))
    }

    async fn list_nodes(
        &self,
        _request: Request<proto::ListNodesRequest>,
    ) -> Result<Response<proto::ListNodesResponse>, Status> {
        let nodes = self
            .core
            .read(|core, _| {
                core.nodes()
                    .iter()
                    .map(|(idx, _)| reports::node_report(core, idx))
                    .collect()
            })
            .await?;
        Ok(Response::new(proto::ListNodesResponse { nodes }))
    }
}
