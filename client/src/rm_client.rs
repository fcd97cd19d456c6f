//! A connection to the resource manager's client services (`ApplicationClient`, `StagingStore`):
//! connects eagerly with a short timeout so that a missing RM is reported at once, attaches the
//! client's credentials (its user and a proof of the client secret) to every call, and turns each
//! call's failure into a `ClientError` that says which call failed and why.

use std::time::Duration;

use spindle_containers::ApplicationId;
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_protocol::staging_store_client::StagingStoreClient;
use spindle_security::CallCredentials;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::address::parse_host_port;
use crate::error::{ClientError, chain};

/// How long a client waits for the RM to accept a connection (`client.connect-timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a call that should answer at once may take: a peer that accepted the connection
/// but hangs is reported instead of hanging the command. Uploads and watches are exempt.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2 pings on idle connections, so a watch on a vanished RM ends instead of waiting.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A channel whose every call carries the client's credentials.
pub type Authenticated = InterceptedService<Channel, CallCredentials>;

#[derive(Debug, Clone)]
pub struct RmClient {
    addr: String,
    credentials: CallCredentials,
    apps: ApplicationClientClient<Authenticated>,
    staging: StagingStoreClient<Authenticated>,
}

/// What `GetNewApplication` hands out: an id to submit under and the scheduler's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApplication {
    pub id: ApplicationId,
    pub maximum: spindle_containers::Resource,
    pub minimum: spindle_containers::Resource,
}

/// Opens a channel to `addr` (`HOST:PORT`), failing after `timeout` if nothing answers.
pub(crate) async fn connect_channel(addr: &str, timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| chain(&e))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    // The connect timeout covers the TCP handshake; the outer one also covers a name lookup
    // that hangs, so an unreachable RM is reported promptly whatever the cause.
    match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(chain(&e)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

impl RmClient {
    /// Connects to the RM at `addr` (`HOST:PORT`) within [`DEFAULT_CONNECT_TIMEOUT`]; every
    /// call carries `credentials` (see `crate::credentials`).
    pub async fn connect(
        addr: &str,
        credentials: CallCredentials,
    ) -> Result<RmClient, ClientError> {
        Self::connect_with_timeout(addr, DEFAULT_CONNECT_TIMEOUT, credentials).await
    }

    pub async fn connect_with_timeout(
        addr: &str,
        timeout: Duration,
        credentials: CallCredentials,
    ) -> Result<RmClient, ClientError> {
        let addr = parse_host_port("resource manager", addr)?;
        let channel =
            connect_channel(&addr, timeout)
                .await
                .map_err(|reason| ClientError::Unreachable {
                    addr: addr.clone(),
                    reason,
                })?;
        Ok(RmClient {
            apps: ApplicationClientClient::with_interceptor(channel.clone(), credentials.clone()),
            staging: StagingStoreClient::with_interceptor(channel, credentials.clone()),
            credentials,
            addr,
        })
    }

    /// The same RM, connected again (after a lost connection), with the same credentials.
    pub async fn reconnect(&self) -> Result<RmClient, ClientError> {
        Self::connect(&self.addr, self.credentials.clone()).await
    }

    /// The RM's address as given (`HOST:PORT`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What every call carries: the user it acts for and the proof of the client secret.
    pub fn credentials(&self) -> &CallCredentials {
        &self.credentials
    }

    /// The user the calls act for.
    pub fn user(&self) -> &str {
        self.credentials.user()
    }

    pub(crate) fn staging(&self) -> StagingStoreClient<Authenticated> {
        self.staging.clone()
    }

    pub(crate) fn fail(&self, call: &'static str) -> impl FnOnce(tonic::Status) -> ClientError {
        let addr = self.addr.clone();
        move |status| ClientError::from_status(call, &addr, status)
    }

    pub async fn new_application(&mut self) -> Result<NewApplication, ClientError> {
        let answer = self
            .apps
            .get_new_application(unary(proto::GetNewApplicationRequest {}))
            .await
            .map_err(self.fail("GetNewApplication"))?
            .into_inner();
        let id = parse_app_id(&answer.application_id)?;
        let resource = |field, r: Option<&proto::Resource>| {
            spindle_containers::Resource::from_proto(field, r).map_err(|e| ClientError::Protocol {
                what: "GetNewApplication answer",
                detail: e.to_string(),
            })
        };
        Ok(NewApplication {
            id,
            maximum: resource("maximum_resource", answer.maximum_resource.as_ref())?,
            minimum: resource("minimum_resource", answer.minimum_resource.as_ref())?,
        })
    }

    pub async fn submit_application(
        &mut self,
        request: proto::SubmitApplicationRequest,
    ) -> Result<proto::SubmitApplicationResponse, ClientError> {
        Ok(self
            .apps
            .submit_application(unary(request))
            .await
            .map_err(self.fail("SubmitApplication"))?
            .into_inner())
    }

    pub async fn application_report(
        &mut self,
        id: ApplicationId,
    ) -> Result<proto::ApplicationReport, ClientError> {
        Ok(self
            .apps
            .get_application_report(unary(report_request(id)))
            .await
            .map_err(self.fail("GetApplicationReport"))?
            .into_inner())
    }

    /// The app's current report, then one per change, ending after the final state.
    pub async fn watch_application(
        &mut self,
        id: ApplicationId,
    ) -> Result<tonic::Streaming<proto::ApplicationReport>, ClientError> {
        Ok(self
            .apps
            .watch_application(report_request(id))
            .await
            .map_err(self.fail("WatchApplication"))?
            .into_inner())
    }

    /// Every application in one of `states` (all of them when empty).
    pub async fn list_applications(
        &mut self,
        states: &[proto::ApplicationState],
    ) -> Result<Vec<proto::ApplicationReport>, ClientError> {
        let request = proto::ListApplicationsRequest {
            states: states.iter().map(|s| *s as i32).collect(),
            queue: String::new(),
        };
        Ok(self
            .apps
            .list_applications(unary(request))
            .await
            .map_err(self.fail("ListApplications"))?
            .into_inner()
            .applications)
    }

    /// Asks the RM to kill the app; true when it is already in a final state.
    pub async fn kill_application(
        &mut self,
        id: ApplicationId,
        diagnostics: &str,
    ) -> Result<bool, ClientError> {
        let request = proto::KillApplicationRequest {
            application_id: id.to_string(),
            diagnostics: diagnostics.to_string(),
        };
        Ok(self
            .apps
            .kill_application(unary(request))
            .await
            .map_err(self.fail("KillApplication"))?
            .into_inner()
            .killed)
    }

    /// NM tokens that let this user read `id`'s container logs on each node that ran it (for
    /// the application's owner and the cluster's admins).
    pub async fn log_tokens(
        &mut self,
        id: ApplicationId,
    ) -> Result<Vec<proto::NodeToken>, ClientError> {
        let request = proto::GetLogTokensRequest {
            application_id: id.to_string(),
        };
        Ok(self
            .apps
            .get_log_tokens(unary(request))
            .await
            .map_err(self.fail("GetLogTokens"))?
            .into_inner()
            .tokens)
    }

    pub async fn list_nodes(&mut self) -> Result<Vec<proto::NodeReport>, ClientError> {
        Ok(self
            .apps
            .list_nodes(unary(proto::ListNodesRequest {}))
            .await
            .map_err(self.fail("ListNodes"))?
            .into_inner()
            .nodes)
    }
}

/// A request that must be answered within [`CALL_TIMEOUT`].
pub(crate) fn unary<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

fn report_request(id: ApplicationId) -> proto::GetApplicationReportRequest {
    proto::GetApplicationReportRequest {
        application_id: id.to_string(),
    }
}

fn parse_app_id(value: &str) -> Result<ApplicationId, ClientError> {
    value
        .parse()
        .map_err(|e: spindle_containers::IdError| ClientError::Protocol {
            what: "application id",
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anyone() -> CallCredentials {
        CallCredentials::user_only("alice".into())
    }

    #[tokio::test]
    async fn an_absent_rm_is_reported_promptly_by_address() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let err = RmClient::connect(&addr, anyone()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot reach the resource manager at {addr}: ")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_malformed_address_is_refused_before_connecting() {
        let err = RmClient::connect("no-port", anyone()).await.unwrap_err();
        assert!(matches!(err, ClientError::BadAddress { .. }), "{err}");
    }
}
