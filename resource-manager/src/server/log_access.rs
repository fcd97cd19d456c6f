//! Who may use the log store: NMs upload (daemon secret); an application's owner and the admins
//! list and read its logs (client secret). This wraps `LogStoreService`, which knows files and
//! names, with the checks that need the caller and the application's owner.

use std::sync::Arc;

use spindle_containers::ApplicationId;
use spindle_protocol as proto;
use spindle_protocol::log_store_server::LogStore;
use tonic::{Request, Response, Status, Streaming};

use super::acl::Acl;
use super::guards::{client_caller, daemon_caller};
use super::handle::CoreHandle;
use super::log_store::{LogStoreService, parse_app, parse_container};

const READ: &str = "read the logs of";

pub struct GuardedLogStore {
    store: LogStoreService,
    core: CoreHandle,
    acl: Arc<Acl>,
}

impl GuardedLogStore {
    pub fn new(store: LogStoreService, core: CoreHandle, acl: Arc<Acl>) -> Self {
        GuardedLogStore { store, core, acl }
    }

    /// Whether `user` may read `app`'s logs. Logs can outlive the application's record (the
    /// RM keeps only so many finished ones): then its owner is unknown and only admins may.
    async fn may_read(&self, user: &str, app: ApplicationId) -> Result<(), Status> {
        if self.acl.is_admin(user) {
            return Ok(());
        }
        let owner = self
            .core
            .read(move |core, _| core.app(app).map(|a| a.user.clone()))
            .await?;
        if owner.is_none() && !self.store.has_logs(app).await {
            return Err(Status::not_found(format!(
                "application_id={app} has no aggregated logs"
            )));
        }
        Ok(self.acl.check_owner(user, READ, app, owner.as_deref())?)
    }
}

#[tonic::async_trait]
impl LogStore for GuardedLogStore {
    async fn upload_logs(
        &self,
        request: Request<Streaming<proto::LogUploadChunk>>,
    ) -> Result<Response<proto::UploadLogsResponse>, Status> {
        daemon_caller(&request, "UploadLogs")?;
        self.store.upload_logs(request).await
    }

    async fn list_logs(
        &self,
        request: Request<proto::ListLogsRequest>,
    ) -> Result<Response<proto::ListLogsResponse>, Status> {
        let caller = client_caller(&request, "ListLogs")?;
        let app = parse_app(&request.get_ref().application_id)?;
        self.may_read(&caller.user, app).await?;
        self.store.list_logs(request).await
    }

    type ReadLogStream = <LogStoreService as LogStore>::ReadLogStream;

    async fn read_log(
        &self,
        request: Request<proto::ReadLogRequest>,
    ) -> Result<Response<Self::ReadLogStream>, Status> {
        let caller = client_caller(&request, "ReadLog")?;
        let container = parse_container(&request.get_ref().container_id)?;
        self.may_read(&caller.user, container.application()).await?;
        self.store.read_log(request).await
    }
}
