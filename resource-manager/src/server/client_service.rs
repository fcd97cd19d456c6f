//! The ApplicationClient service: what `spindle submit`, `spindle application` and `spindle node`
//! speak. Requests are checked at the edge, then handed to the core task.

use spindle_containers::Resource;
use spindle_protocol as proto;
use spindle_protocol::application_client_server::ApplicationClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};

use super::convert;
use super::handle::{Command, CoreHandle};
use super::reports;
use crate::core::CoreError;

pub struct ClientService {
    core: CoreHandle,
    minimum: Resource,
    maximum: Resource,
}

impl ClientService {
    pub fn new(core: CoreHandle, minimum: Resource, maximum: Resource) -> Self {
        ClientService {
            core,
            minimum,
            maximum,
        }
    }
}

#[tonic::async_trait]
impl ApplicationClient for ClientService {
    async fn get_new_application(
        &self,
        _request: Request<proto::GetNewApplicationRequest>,
    ) -> Result<Response<proto::GetNewApplicationResponse>, Status> {
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
        let submission = convert::submission(request.into_inner(), self.minimum)?;
        let attempt = self
            .core
            .call(|reply| Command::Submit(submission, reply))
            .await?;
        Ok(Response::new(proto::SubmitApplicationResponse {
            attempt_id: attempt.map(|a| a.to_string()).unwrap_or_default(),
            am_token: String::new(),
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
        let proto::KillApplicationRequest {
            application_id,
            diagnostics,
        } = request.into_inner();
        let id = convert::application_id(&application_id)?;
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
        _request: Request<proto::GetLogTokensRequest>,
    ) -> Result<Response<proto::GetLogTokensResponse>, Status> {
        // Until node keys exist no NM checks tokens, so there is nothing to hand out yet.
        Ok(Response::new(proto::GetLogTokensResponse::default()))
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
