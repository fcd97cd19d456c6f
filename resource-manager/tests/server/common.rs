//! Test fixtures: a resource manager on a loopback port with its state in a temporary directory,
//! gRPC clients for it that prove its secrets (or carry an AM token) as real callers do, and a
//! fake node manager that registers like a real one, checks the NM and container tokens of every
//! call as a real one does, serves a ContainerManager that records StartContainers/StopContainers,
//! and heartbeats when told to.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spindle_containers::{ApplicationId, ContainerId, NodeId, Resource};
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_protocol::application_master_client::ApplicationMasterClient;
use spindle_protocol::container_manager_server::{ContainerManager, ContainerManagerServer};
use spindle_protocol::log_store_client::LogStoreClient;
use spindle_protocol::resource_tracker_client::ResourceTrackerClient;
use spindle_protocol::staging_store_client::StagingStoreClient;
use spindle_resource_manager::{ResourceManager, RmConfig};
use spindle_security::{
    AM_TOKEN_HEADER, CallCredentials, NM_TOKEN_HEADER, Secret, SecretKind, node_key_ring,
    presented_token, verify,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Generous: only a guard against hanging forever, never a measure of speed.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// The user the test clients act for. Not an admin (the RM's own OS user is).
pub const USER: &str = "tester";
/// The environment variable that hands an AM its token.
pub const AM_TOKEN_ENV: &str = "SPINDLE_AM_TOKEN";

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A channel to the RM whose calls carry credentials.
pub type Authed = InterceptedService<Channel, CallCredentials>;
pub type Client = ApplicationClientClient<Authed>;
pub type Am = ApplicationMasterClient<Authed>;
pub type Tracker = ResourceTrackerClient<Authed>;
pub type Staging = StagingStoreClient<Authed>;
pub type Logs = LogStoreClient<Authed>;

/// The AM tokens the tests have seen, by attempt: in the environment of AM containers the RM
/// started on a fake NM, or handed to an unmanaged AM's submitter.
#[derive(Clone, Default)]
pub struct AmTokens(Arc<Mutex<HashMap<String, String>>>);

impl AmTokens {
    pub fn insert(&self, attempt: String, token: String) {
        self.0.lock().unwrap().insert(attempt, token);
    }

    pub fn get(&self, attempt: &str) -> Option<String> {
        self.0.lock().unwrap().get(attempt).cloned()
    }

    /// Some attempt's token, if any was seen.
    pub fn any(&self) -> Option<String> {
        self.0.lock().unwrap().values().next().cloned()
    }
}

pub struct Rm {
    pub rm: Option<ResourceManager>,
    /// As `USER`, with the client secret.
    pub client: Client,
    /// With the daemon secret, as an NM.
    pub tracker: Tracker,
    /// As `USER`, with the client secret.
    pub staging: Staging,
    /// As `USER`, with the client secret: reads.
    pub logs: Logs,
    /// With the daemon secret, as an NM: uploads.
    pub log_uploads: Logs,
    pub am_tokens: AmTokens,
    channel: Channel,
    config: RmConfig,
    state: tempfile::TempDir,
}

pub fn test_config(state: &std::path::Path) -> RmConfig {
    RmConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        web_bind: Some("127.0.0.1:0".parse().unwrap()),
        state_dir: state.to_path_buf(),
        minimum_allocation: Resource::new(256, 1),
        ..RmConfig::default()
    }
}

impl Rm {
    pub async fn start() -> Rm {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut RmConfig)) -> Rm {
        let state = tempfile::tempdir().unwrap();
        let mut config = test_config(state.path());
        change(&mut config);
        Self::start_on(config, state, AmTokens::default()).await
    }

    async fn start_on(config: RmConfig, state: tempfile::TempDir, am_tokens: AmTokens) -> Rm {
        let rm = ResourceManager::start(config.clone())
            .await
            .expect("the RM starts");
        let addr = rm.rpc_addr();
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("the RM accepts connections");
        let client_secret = Secret::read(rm.client_secret_file()).expect("the client secret");
        let daemon_secret = Secret::read(rm.daemon_secret_file()).expect("the daemon secret");
        let client = CallCredentials::with_secret(SecretKind::Client, client_secret, USER.into());
        let daemon = CallCredentials::with_secret(
            SecretKind::Daemon,
            daemon_secret,
            spindle_security::current_user(),
        );
        Rm {
            rm: Some(rm),
            client: ApplicationClientClient::with_interceptor(channel.clone(), client.clone()),
            tracker: ResourceTrackerClient::with_interceptor(channel.clone(), daemon.clone()),
            staging: StagingStoreClient::with_interceptor(channel.clone(), client.clone()),
            logs: LogStoreClient::with_interceptor(channel.clone(), client),
            log_uploads: LogStoreClient::with_interceptor(channel.clone(), daemon),
            am_tokens,
            channel,
            config,
            state,
        }
    }

    /// Cuts the RM off as a crash would (no graceful end), then starts a new one on the same
    /// state directory and the same ports, as an operator restarting it would.
    pub async fn crash_and_restart(self) -> Rm {
        self.restart(false).await
    }

    /// Shuts the RM down, then starts a new one on the same state directory and ports.
    pub async fn shutdown_and_restart(self) -> Rm {
        self.restart(true).await
    }

    async fn restart(self, graceful: bool) -> Rm {
        self.restart_after(graceful, |_| {}).await
    }

    /// Stops the RM (gracefully or as a crash), runs `between` on the state directory while no
    /// RM has it open, and starts a new RM on it and the same ports.
    pub async fn restart_after(
        mut self,
        graceful: bool,
        between: impl FnOnce(&std::path::Path),
    ) -> Rm {
        let rm = self.rm.take().expect("running");
        let mut config = self.config.clone();
        config.bind = rm.rpc_addr();
        config.web_bind = rm.web_addr();
        if graceful {
            within("the RM to shut down", rm.shutdown()).await;
        } else {
            within("the RM to abort", rm.abort()).await;
        }
        between(&config.state_dir);
        Self::start_on(config, self.state, self.am_tokens).await
    }

    pub fn web_addr(&self) -> std::net::SocketAddr {
        self.rm
            .as_ref()
            .unwrap()
            .web_addr()
            .expect("web port configured")
    }

    pub fn state_dir(&self) -> &std::path::Path {
        &self.config.state_dir
    }

    /// The secret of `kind`, as the RM reads it.
    pub fn secret(&self, kind: SecretKind) -> Secret {
        let rm = self.rm.as_ref().expect("running");
        let file = match kind {
            SecretKind::Client => rm.client_secret_file(),
            SecretKind::Daemon => rm.daemon_secret_file(),
        };
        Secret::read(file).expect("the secret file")
    }

    /// The client secret the web port's changing calls must present: the configured file's,
    /// or the one the RM generated in its state directory.
    pub fn client_secret(&self) -> String {
        let path = self.config.secret_file.clone().unwrap_or_else(|| {
            self.config
                .state_dir
                .join(spindle_resource_manager::SECRET_FILE)
        });
        std::fs::read_to_string(path)
            .expect("the client secret file")
            .trim()
            .to_string()
    }

    /// A channel to the RM whose calls carry `credentials`.
    pub fn with(&self, credentials: CallCredentials) -> Authed {
        InterceptedService::new(self.channel.clone(), credentials)
    }

    /// The ApplicationClient service, called as `user` with the client secret.
    pub fn client_as(&self, user: &str) -> Client {
        let secret = self.secret(SecretKind::Client);
        ApplicationClientClient::new(self.with(CallCredentials::with_secret(
            SecretKind::Client,
            secret,
            user.into(),
        )))
    }

    /// The ApplicationMaster service, called with `token`.
    pub fn am_with_token(&self, token: &str) -> Am {
        ApplicationMasterClient::new(self.with(CallCredentials::with_token(
            AM_TOKEN_HEADER,
            token.into(),
            USER.into(),
        )))
    }

    /// The ApplicationMaster service as `attempt`'s AM, with the token the RM gave it.
    pub fn am_for(&self, attempt: &str) -> Am {
        let token = self
            .am_tokens
            .get(attempt)
            .unwrap_or_else(|| panic!("no AM token seen for {attempt}"));
        self.am_with_token(&token)
    }

    pub async fn new_app(&mut self) -> String {
        self.client
            .get_new_application(proto::GetNewApplicationRequest {})
            .await
            .unwrap()
            .into_inner()
            .application_id
    }

    /// Submits an application with an AM of `am_memory_mb` running `./am`.
    pub async fn submit(&mut self, am_memory_mb: i64) -> String {
        let id = self.new_app().await;
        self.client
            .submit_application(submission(&id, am_memory_mb))
            .await
            .expect("submission accepted");
        id
    }

    pub async fn report(&mut self, app: &str) -> proto::ApplicationReport {
        self.client
            .get_application_report(proto::GetApplicationReportRequest {
                application_id: app.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn register_am(&mut self, attempt: &str) {
        self.am_for(attempt)
            .register_application_master(proto::RegisterApplicationMasterRequest {
                attempt_id: attempt.into(),
                host: "127.0.0.1".into(),
                rpc_port: 0,
                tracking_url: "http://127.0.0.1/ui".into(),
            })
            .await
            .expect("AM registers");
    }

    pub async fn allocate(
        &mut self,
        attempt: &str,
        asks: Vec<proto::ResourceRequest>,
        wait_ms: u32,
    ) -> Result<proto::AllocateResponse, Status> {
        self.am_for(attempt)
            .allocate(allocate_request(attempt, asks, wait_ms))
            .await
            .map(Response::into_inner)
    }

    pub async fn finish(&mut self, attempt: &str, status: proto::FinalStatus, diagnostics: &str) {
        self.am_for(attempt)
            .finish_application_master(proto::FinishApplicationMasterRequest {
                attempt_id: attempt.into(),
                final_status: status as i32,
                diagnostics: diagnostics.into(),
                tracking_url: String::new(),
            })
            .await
            .expect("the AM unregisters");
    }

    pub async fn shutdown(mut self) {
        if let Some(rm) = self.rm.take() {
            within("the RM to shut down", rm.shutdown()).await;
        }
    }
}

pub fn submission(id: &str, am_memory_mb: i64) -> proto::SubmitApplicationRequest {
    proto::SubmitApplicationRequest {
        application_id: id.into(),
        name: "story".into(),
        queue: "default".into(),
        application_type: "SPINDLE".into(),
        tags: vec![],
        am_resource: Some(proto::Resource {
            memory_mb: am_memory_mb,
            vcores: 1,
        }),
        am_container: Some(proto::ContainerLaunchContext {
            command: vec!["./am".into(), "--flag".into()],
            environment: [("ROLE".to_string(), "am".to_string())].into(),
            local_resources: vec![],
        }),
        max_attempts: 0,
        user: USER.into(),
        unmanaged: false,
    }
}

pub fn ask(memory_mb: i64, vcores: i32, n: i32) -> proto::ResourceRequest {
    proto::ResourceRequest {
        priority: 1,
        capability: Some(proto::Resource { memory_mb, vcores }),
        num_containers: n,
        nodes: vec![],
        relax_locality: true,
    }
}

pub fn allocate_request(
    attempt: &str,
    asks: Vec<proto::ResourceRequest>,
    wait_ms: u32,
) -> proto::AllocateRequest {
    proto::AllocateRequest {
        attempt_id: attempt.into(),
        asks,
        cancels: vec![],
        release: vec![],
        progress: 0.1,
        wait_ms,
    }
}

/// The attempt a container belongs to, as the AM finds it from `CONTAINER_ID`.
pub fn attempt_of(container: &str) -> String {
    let id: spindle_containers::ContainerId = container.parse().unwrap();
    id.attempt.to_string()
}

#[derive(Debug)]
pub enum NmEvent {
    Started(proto::StartContainerRequest),
    Stopped {
        containers: Vec<String>,
        exit_status: i32,
    },
    /// A call whose tokens a real NM would have refused, and why.
    Refused(String),
}

/// What a fake node knows to check tokens with: its id, the daemon secret, and the node keys the
/// RM announced last.
#[derive(Clone)]
pub struct NodeKeys {
    node: NodeId,
    daemon: Secret,
    announced: Arc<Mutex<Vec<proto::NodeKey>>>,
}

impl NodeKeys {
    fn announce(&self, keys: &[proto::NodeKey]) {
        if !keys.is_empty() {
            *self.announced.lock().unwrap() = keys.to_vec();
        }
    }

    /// The node keys announced last.
    pub fn announced(&self) -> Vec<proto::NodeKey> {
        self.announced.lock().unwrap().clone()
    }

    /// Checks an NM token for this node, as an NM does; returns its application.
    pub fn check_nm_token<T>(&self, request: &Request<T>) -> Result<ApplicationId, String> {
        let announced = self.announced();
        if announced.is_empty() {
            return Err("no keys yet".into());
        }
        let token = presented_token(request.metadata(), NM_TOKEN_HEADER, "NM token")
            .map_err(|e| e.to_string())?;
        let ring = node_key_ring(&self.daemon, &announced);
        let said: proto::NmTokenIdentifier =
            verify(token, &ring, spindle_security::now_ms()).map_err(|e| e.to_string())?;
        if said.node_id != self.node.as_str() {
            return Err(format!("NM token for node {}", said.node_id));
        }
        said.application_id.parse().map_err(|e| format!("{e}"))
    }

    /// Checks a container token for this node, as an NM does; returns what it says.
    pub fn check_container_token(
        &self,
        token: &str,
    ) -> Result<proto::ContainerTokenIdentifier, String> {
        let ring = node_key_ring(&self.daemon, &self.announced());
        let said: proto::ContainerTokenIdentifier =
            verify(token, &ring, spindle_security::now_ms()).map_err(|e| e.to_string())?;
        if said.node_id != self.node.as_str() {
            return Err(format!("container token for node {}", said.node_id));
        }
        Ok(said)
    }
}

struct Recorder {
    events: mpsc::UnboundedSender<NmEvent>,
    keys: NodeKeys,
    am_tokens: AmTokens,
}

impl Recorder {
    /// The refusal a real NM would give, recorded.
    fn refuse(&self, why: String) -> Status {
        let _ = self.events.send(NmEvent::Refused(why.clone()));
        Status::unauthenticated(why)
    }

    /// Checks one start as an NM does: a container token for this node, this container, this
    /// resource, and the NM token's application.
    fn check_start(
        &self,
        app: ApplicationId,
        r: &proto::StartContainerRequest,
    ) -> Result<(), String> {
        let said = self.keys.check_container_token(&r.container_token)?;
        let id: ContainerId = r.container_id.parse().map_err(|e| format!("{e}"))?;
        if said.container_id != r.container_id || said.resource != r.resource {
            return Err(format!(
                "container token for {} {:?}",
                said.container_id, said.resource
            ));
        }
        if id.application() != app || said.application_id != app.to_string() {
            return Err(format!(
                "container {id} is not of the NM token's application {app}"
            ));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl ContainerManager for Recorder {
    async fn start_containers(
        &self,
        request: Request<proto::StartContainersRequest>,
    ) -> Result<Response<proto::StartContainersResponse>, Status> {
        if self.keys.announced().is_empty() {
            // As a real NM that has not heard from the RM yet: try again shortly.
            return Err(Status::unavailable("no keys yet"));
        }
        let app = self
            .keys
            .check_nm_token(&request)
            .map_err(|why| self.refuse(why))?;
        let mut started = vec![];
        for r in request.into_inner().requests {
            self.check_start(app, &r).map_err(|why| self.refuse(why))?;
            if let Some(token) = r
                .launch_context
                .as_ref()
                .and_then(|l| l.environment.get(AM_TOKEN_ENV))
            {
                let id: ContainerId = r.container_id.parse().expect("checked");
                self.am_tokens.insert(id.attempt.to_string(), token.clone());
            }
            started.push(r.container_id.clone());
            let _ = self.events.send(NmEvent::Started(r));
        }
        Ok(Response::new(proto::StartContainersResponse {
            started,
            failed: vec![],
        }))
    }

    async fn stop_containers(
        &self,
        request: Request<proto::StopContainersRequest>,
    ) -> Result<Response<proto::StopContainersResponse>, Status> {
        let app = self
            .keys
            .check_nm_token(&request)
            .map_err(|why| self.refuse(why))?;
        let r = request.into_inner();
        for id in &r.container_ids {
            let container: ContainerId = id.parse().map_err(|e| self.refuse(format!("{e}")))?;
            if container.application() != app {
                return Err(self.refuse(format!("{id} is not of application {app}")));
            }
        }
        let _ = self.events.send(NmEvent::Stopped {
            containers: r.container_ids.clone(),
            exit_status: r.exit_status,
        });
        Ok(Response::new(proto::StopContainersResponse {
            stopped: r.container_ids,
            failed: vec![],
        }))
    }

    async fn get_container_statuses(
        &self,
        _: Request<proto::GetContainerStatusesRequest>,
    ) -> Result<Response<proto::GetContainerStatusesResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn list_container_logs(
        &self,
        _: Request<proto::ListContainerLogsRequest>,
    ) -> Result<Response<proto::ListContainerLogsResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    type ReadContainerLogStream = tokio_stream::Empty<Result<proto::LogChunk, Status>>;

    async fn read_container_log(
        &self,
        _: Request<proto::ReadContainerLogRequest>,
    ) -> Result<Response<Self::ReadContainerLogStream>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}

/// A node manager that registers with the RM, checks tokens as a real one does, and records
/// what it is told to do.
pub struct FakeNm {
    pub node_id: String,
    pub events: mpsc::UnboundedReceiver<NmEvent>,
    pub keys: NodeKeys,
    memory_mb: i64,
    tracker: Tracker,
    server: JoinHandle<()>,
}

impl FakeNm {
    pub async fn register(rm: &Rm, memory_mb: i64) -> FakeNm {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_id = listener.local_addr().unwrap().to_string();
        let keys = NodeKeys {
            node: node_id.parse().unwrap(),
            daemon: rm.secret(SecretKind::Daemon),
            announced: Arc::default(),
        };
        let (tx, events) = mpsc::unbounded_channel();
        let recorder = Recorder {
            events: tx,
            keys: keys.clone(),
            am_tokens: rm.am_tokens.clone(),
        };
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(ContainerManagerServer::new(recorder))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        let mut nm = FakeNm {
            node_id,
            events,
            keys,
            memory_mb,
            tracker: rm.tracker.clone(),
            server,
        };
        nm.register_again(vec![]).await;
        nm
    }

    /// Registers (again), reporting `containers` as a restarted RM's NM does.
    pub async fn register_again(
        &mut self,
        containers: Vec<proto::ContainerStatus>,
    ) -> proto::RegisterNodeResponse {
        let response = self
            .tracker
            .register_node_manager(proto::RegisterNodeRequest {
                node_id: self.node_id.clone(),
                hostname: "fake-nm".into(),
                http_address: "127.0.0.1:1".into(),
                capability: Some(proto::Resource {
                    memory_mb: self.memory_mb,
                    vcores: 8,
                }),
                containers,
            })
            .await
            .expect("the node registers")
            .into_inner();
        assert!(response.heartbeat_interval_ms > 0);
        assert!(
            !response.node_keys.is_empty(),
            "the RM announces its node keys"
        );
        self.keys.announce(&response.node_keys);
        response
    }

    /// Talks to `rm` from now on (a restarted RM: the old connection went with the old one).
    pub fn reconnect(&mut self, rm: &Rm) {
        self.tracker = rm.tracker.clone();
    }

    pub async fn heartbeat(
        &mut self,
        containers: Vec<proto::ContainerStatus>,
    ) -> proto::NodeHeartbeatResponse {
        let response = self
            .tracker
            .node_heartbeat(proto::NodeHeartbeatRequest {
                node_id: self.node_id.clone(),
                containers,
                healthy: true,
                health_report: String::new(),
            })
            .await
            .expect("heartbeat answered")
            .into_inner();
        assert!(
            !response.node_keys.is_empty(),
            "every answer carries the node keys"
        );
        self.keys.announce(&response.node_keys);
        response
    }
    pub async fn next_event(&mut self) -> NmEvent {
        within("a call from the RM to the NM", self.events.recv())
            .await
            .expect("the fake NM is serving")
    }

    /// Waits for the RM to start a container here; returns its request.
    pub async fn started(&mut self) -> proto::StartContainerRequest {
        match self.next_event().await {
            NmEvent::Started(r) => r,
            NmEvent::Refused(why) => panic!("the node refused the RM's tokens: {why}"),
            other => panic!("expected StartContainers, got {other:?}"),
        }
    }
}

impl Drop for FakeNm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn completed(container: &str, exit_status: i32) -> proto::ContainerStatus {
    proto::ContainerStatus {
        container_id: container.into(),
        state: proto::ContainerState::Complete as i32,
        exit_status,
        diagnostics: String::new(),
    }
}

pub fn running(container: &str) -> proto::ContainerStatus {
    proto::ContainerStatus {
        container_id: container.into(),
        state: proto::ContainerState::Running as i32,
        exit_status: 0,
        diagnostics: String::new(),
    }
}
