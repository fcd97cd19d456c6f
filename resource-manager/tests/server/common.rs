//! Test fixtures: a resource manager on a loopback port with its state in a temporary directory,
//! gRPC clients for it, and a fake node manager that registers like a real one, serves a
//! ContainerManager that records StartContainers/StopContainers, and heartbeats when told to.

use std::future::Future;
use std::time::Duration;

use spindle_containers::Resource;
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_protocol::application_master_client::ApplicationMasterClient;
use spindle_protocol::container_manager_server::{ContainerManager, ContainerManagerServer};
use spindle_protocol::log_store_client::LogStoreClient;
use spindle_protocol::resource_tracker_client::ResourceTrackerClient;
use spindle_protocol::staging_store_client::StagingStoreClient;
use spindle_resource_manager::{ResourceManager, RmConfig};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Generous: only a guard against hanging forever, never a measure of speed.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub struct Rm {
    pub rm: Option<ResourceManager>,
    pub client: ApplicationClientClient<Channel>,
    pub am: ApplicationMasterClient<Channel>,
    pub tracker: ResourceTrackerClient<Channel>,
    pub staging: StagingStoreClient<Channel>,
    pub logs: LogStoreClient<Channel>,
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
        Self::start_on(config, state).await
    }

    async fn start_on(config: RmConfig, state: tempfile::TempDir) -> Rm {
        let rm = ResourceManager::start(config.clone())
            .await
            .expect("the RM starts");
        let addr = rm.rpc_addr();
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("the RM accepts connections");
        Rm {
            rm: Some(rm),
            client: ApplicationClientClient::new(channel.clone()),
            am: ApplicationMasterClient::new(channel.clone()),
            tracker: ResourceTrackerClient::new(channel.clone()),
            staging: StagingStoreClient::new(channel.clone()),
            logs: LogStoreClient::new(channel),
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

    async fn restart(mut self, graceful: bool) -> Rm {
        let rm = self.rm.take().expect("running");
        let mut config = self.config.clone();
        config.bind = rm.rpc_addr();
        config.web_bind = rm.web_addr();
        if graceful {
            within("the RM to shut down", rm.shutdown()).await;
        } else {
            within("the RM to abort", rm.abort()).await;
        }
        Self::start_on(config, self.state).await
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
        self.am
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
        self.am
            .allocate(allocate_request(attempt, asks, wait_ms))
            .await
            .map(Response::into_inner)
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
        user: "tester".into(),
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
}

struct Recorder {
    events: mpsc::UnboundedSender<NmEvent>,
}

#[tonic::async_trait]
impl ContainerManager for Recorder {
    async fn start_containers(
        &self,
        request: Request<proto::StartContainersRequest>,
    ) -> Result<Response<proto::StartContainersResponse>, Status> {
        let mut started = vec![];
        for r in request.into_inner().requests {
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
        let r = request.into_inner();
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

/// A node manager that registers with the RM and records what it is told to do.
pub struct FakeNm {
    pub node_id: String,
    pub events: mpsc::UnboundedReceiver<NmEvent>,
    memory_mb: i64,
    tracker: ResourceTrackerClient<Channel>,
    server: JoinHandle<()>,
}

impl FakeNm {
    pub async fn register(rm: &Rm, memory_mb: i64) -> FakeNm {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_id = listener.local_addr().unwrap().to_string();
        let (tx, events) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(ContainerManagerServer::new(Recorder { events: tx }))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        let mut nm = FakeNm {
            node_id,
            events,
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
        self.tracker
            .node_heartbeat(proto::NodeHeartbeatRequest {
                node_id: self.node_id.clone(),
                containers,
                healthy: true,
                health_report: String::new(),
            })
            .await
            .expect("heartbeat answered")
            .into_inner()
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
