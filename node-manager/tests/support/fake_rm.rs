//! A tiny resource manager for the node manager's tests: it records registrations and heartbeats
//! (each on a channel the test reads), answers heartbeats with what the test queued, serves the
//! files it holds from its staging store, keeps the logs nodes upload (each finished upload on a
//! channel), and answers application watches: RUNNING until the test ends the application.
//! Like the real RM, it believes only callers that prove the daemon secret (`SecretGuard`), and
//! announces its node keys at registration and in every heartbeat answer.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use sha2::{Digest, Sha256};
use spindle_protocol as proto;
use spindle_protocol::application_client_server::{ApplicationClient, ApplicationClientServer};
use spindle_protocol::log_store_server::{LogStore, LogStoreServer};
use spindle_protocol::resource_tracker_server::{ResourceTracker, ResourceTrackerServer};
use spindle_protocol::staging_store_server::{StagingStore, StagingStoreServer};
use spindle_security::{SecretGuard, SecretKind};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Request, Response, Status, Streaming};

#[derive(Default)]
struct State {
    /// Content served for a digest (a test may store content that does not match it).
    files: HashMap<String, Vec<u8>>,
    answers: VecDeque<proto::NodeHeartbeatResponse>,
    /// Every file of every finished upload, as the log store keeps them.
    logs: BTreeMap<(String, String), Vec<u8>>,
    /// Announced in every answer, newest first.
    node_keys: Vec<proto::NodeKey>,
    /// Bumped at every change of `node_keys`.
    key_generation: u64,
}

/// One finished `UploadLogs`: (container id, file) → content, and the node that sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upload {
    pub node_id: String,
    pub files: BTreeMap<(String, String), Vec<u8>>,
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
    heartbeat_interval_ms: u32,
    registrations: mpsc::UnboundedSender<proto::RegisterNodeRequest>,
    heartbeats: mpsc::UnboundedSender<proto::NodeHeartbeatRequest>,
    uploads: mpsc::UnboundedSender<Upload>,
    ended_apps: watch::Sender<HashSet<String>>,
    /// (heartbeats answered, the key generation the last answer carried).
    answered: watch::Sender<(u64, u64)>,
}

pub struct FakeRm {
    pub addr: SocketAddr,
    pub registrations: mpsc::UnboundedReceiver<proto::RegisterNodeRequest>,
    pub heartbeats: mpsc::UnboundedReceiver<proto::NodeHeartbeatRequest>,
    /// Every upload that ended with its `end` message.
    pub uploads: mpsc::UnboundedReceiver<Upload>,
    ended_apps: watch::Sender<HashSet<String>>,
    answered: watch::Sender<(u64, u64)>,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
}

pub fn sha256(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

impl FakeRm {
    /// Serves on `addr` (port 0 for any) and asks nodes to beat every `heartbeat_interval_ms`.
    pub async fn start(addr: SocketAddr, heartbeat_interval_ms: u32) -> FakeRm {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("fake RM binds");
        let addr = listener.local_addr().unwrap();
        let (reg_tx, registrations) = mpsc::unbounded_channel();
        let (hb_tx, heartbeats) = mpsc::unbounded_channel();
        let (up_tx, uploads) = mpsc::unbounded_channel();
        let ended_apps = watch::Sender::new(HashSet::new());
        let answered = watch::Sender::new((0, 0));
        let state = Arc::new(Mutex::new(State {
            node_keys: vec![super::tokens::first_node_key()],
            ..State::default()
        }));
        let guard = SecretGuard::new(vec![(SecretKind::Daemon, super::tokens::daemon_secret())]);
        let service = Service {
            state: state.clone(),
            heartbeat_interval_ms,
            registrations: reg_tx,
            heartbeats: hb_tx,
            uploads: up_tx,
            ended_apps: ended_apps.clone(),
            answered: answered.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ResourceTrackerServer::with_interceptor(
                    service.clone(),
                    guard.clone(),
                ))
                .add_service(ApplicationClientServer::with_interceptor(
                    service.clone(),
                    guard.clone(),
                ))
                .add_service(LogStoreServer::with_interceptor(
                    service.clone(),
                    guard.clone(),
                ))
                .add_service(StagingStoreServer::with_interceptor(service, guard))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        FakeRm {
            addr,
            registrations,
            heartbeats,
            uploads,
            ended_apps,
            answered,
            state,
            stop: Some(stop),
        }
    }

    /// Holds `content` in the staging store; returns its digest.
    pub fn stage(&self, content: &[u8]) -> String {
        let digest = sha256(content);
        self.serve_as(&digest, content);
        digest
    }

    /// Serves `content` when `digest` is asked for, whether or not it matches.
    pub fn serve_as(&self, digest: &str, content: &[u8]) {
        let mut state = self.state.lock().unwrap();
        state.files.insert(digest.to_string(), content.to_vec());
    }

    /// From now on, watches of `app` hear that it FINISHED.
    pub fn end_app(&self, app: &str) {
        self.ended_apps.send_modify(|ended| {
            ended.insert(app.to_string());
        });
    }

    /// The answer to the next heartbeat (later ones answer NORMAL); it announces the node keys
    /// unless it names its own.
    pub fn answer_next(&self, answer: proto::NodeHeartbeatResponse) {
        self.state.lock().unwrap().answers.push_back(answer);
    }

    /// From now on, answers announce `keys` (newest first).
    pub fn announce(&self, keys: Vec<proto::NodeKey>) {
        let mut state = self.state.lock().unwrap();
        state.node_keys = keys;
        state.key_generation += 1;
    }

    /// Waits until the (one) node has taken in the keys announced last: a heartbeat answer
    /// carried them, and the node has sent its next heartbeat, which it does only after it has
    /// acted on that answer.
    pub async fn keys_heard(&self) {
        let generation = self.state.lock().unwrap().key_generation;
        let mut answered = self.answered.subscribe();
        let carried = answered
            .wait_for(|(_, g)| *g == generation)
            .await
            .unwrap()
            .0;
        answered.wait_for(|(n, _)| *n > carried).await.unwrap();
    }
}

impl Drop for FakeRm {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tonic::async_trait]
impl ResourceTracker for Service {
    async fn register_node_manager(
        &self,
        request: Request<proto::RegisterNodeRequest>,
    ) -> Result<Response<proto::RegisterNodeResponse>, Status> {
        let _ = self.registrations.send(request.into_inner());
        Ok(Response::new(proto::RegisterNodeResponse {
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            cluster_timestamp: 1_700_000_000_000,
            node_keys: self.state.lock().unwrap().node_keys.clone(),
        }))
    }

    async fn node_heartbeat(
        &self,
        request: Request<proto::NodeHeartbeatRequest>,
    ) -> Result<Response<proto::NodeHeartbeatResponse>, Status> {
        let _ = self.heartbeats.send(request.into_inner());
        let mut state = self.state.lock().unwrap();
        let mut answer = state
            .answers
            .pop_front()
            .unwrap_or(proto::NodeHeartbeatResponse {
                heartbeat_interval_ms: self.heartbeat_interval_ms,
                ..Default::default()
            });
        if answer.node_keys.is_empty() {
            answer.node_keys = state.node_keys.clone();
        }
        let generation = state.key_generation;
        self.answered
            .send_modify(|(n, g)| (*n, *g) = (*n + 1, generation));
        Ok(Response::new(answer))
    }
}

type Chunks = Pin<Box<dyn Stream<Item = Result<proto::FileChunk, Status>> + Send>>;

#[tonic::async_trait]
impl StagingStore for Service {
    async fn upload(
        &self,
        _request: Request<Streaming<proto::FileChunk>>,
    ) -> Result<Response<proto::UploadResponse>, Status> {
        Err(Status::unimplemented(
            "the test RM only serves the files a test gave it",
        ))
    }

    async fn stat(
        &self,
        request: Request<proto::StatRequest>,
    ) -> Result<Response<proto::StatResponse>, Status> {
        let state = self.state.lock().unwrap();
        let file = state.files.get(&request.into_inner().sha256);
        Ok(Response::new(proto::StatResponse {
            exists: file.is_some(),
            size: file.map_or(0, |f| f.len() as u64),
        }))
    }

    type FetchStream = Chunks;

    async fn fetch(
        &self,
        request: Request<proto::FetchRequest>,
    ) -> Result<Response<Chunks>, Status> {
        let sha256 = request.into_inner().sha256;
        let content = self.state.lock().unwrap().files.get(&sha256).cloned();
        let content = content.ok_or_else(|| Status::not_found(format!("no file {sha256}")))?;
        let size = content.len() as u64;
        // Small chunks, so that reassembly is exercised.
        let chunks: Vec<Result<proto::FileChunk, Status>> = content
            .chunks(7)
            .enumerate()
            .map(|(i, data)| {
                Ok(proto::FileChunk {
                    sha256: if i == 0 {
                        sha256.clone()
                    } else {
                        String::new()
                    },
                    size: if i == 0 { size } else { 0 },
                    data: data.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }
}

type Reports = Pin<Box<dyn Stream<Item = Result<proto::ApplicationReport, Status>> + Send>>;

fn report(app: &str, state: proto::ApplicationState) -> proto::ApplicationReport {
    proto::ApplicationReport {
        application_id: app.to_string(),
        state: state as i32,
        ..Default::default()
    }
}

fn only_watches() -> Status {
    Status::unimplemented("the test RM only answers application watches")
}

#[tonic::async_trait]
impl ApplicationClient for Service {
    async fn get_new_application(
        &self,
        _: Request<proto::GetNewApplicationRequest>,
    ) -> Result<Response<proto::GetNewApplicationResponse>, Status> {
        Err(only_watches())
    }

    async fn submit_application(
        &self,
        _: Request<proto::SubmitApplicationRequest>,
    ) -> Result<Response<proto::SubmitApplicationResponse>, Status> {
        Err(only_watches())
    }

    async fn get_application_report(
        &self,
        _: Request<proto::GetApplicationReportRequest>,
    ) -> Result<Response<proto::ApplicationReport>, Status> {
        Err(only_watches())
    }

    type WatchApplicationStream = Reports;

    /// RUNNING at once, then FINISHED (and the end) once the test ends the application.
    async fn watch_application(
        &self,
        request: Request<proto::GetApplicationReportRequest>,
    ) -> Result<Response<Reports>, Status> {
        let app = request.into_inner().application_id;
        let ended = self.ended_apps.subscribe();
        let reports = futures::stream::unfold(Some(false), move |sent| {
            let app = app.clone();
            let mut ended = ended.clone();
            async move {
                match sent? {
                    false => Some((
                        Ok(report(&app, proto::ApplicationState::Running)),
                        Some(true),
                    )),
                    true => {
                        ended.wait_for(|apps| apps.contains(&app)).await.ok()?;
                        Some((Ok(report(&app, proto::ApplicationState::Finished)), None))
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(reports)))
    }

    async fn list_applications(
        &self,
        _: Request<proto::ListApplicationsRequest>,
    ) -> Result<Response<proto::ListApplicationsResponse>, Status> {
        Err(only_watches())
    }

    async fn kill_application(
        &self,
        _: Request<proto::KillApplicationRequest>,
    ) -> Result<Response<proto::KillApplicationResponse>, Status> {
        Err(only_watches())
    }

    async fn list_nodes(
        &self,
        _: Request<proto::ListNodesRequest>,
    ) -> Result<Response<proto::ListNodesResponse>, Status> {
        Err(only_watches())
    }

    async fn get_log_tokens(
        &self,
        _: Request<proto::GetLogTokensRequest>,
    ) -> Result<Response<proto::GetLogTokensResponse>, Status> {
        Err(only_watches())
    }
}

type LogChunks = Pin<Box<dyn Stream<Item = Result<proto::LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl LogStore for Service {
    /// Keeps an upload only if it ends with its `end` message, as the real store does.
    async fn upload_logs(
        &self,
        request: Request<Streaming<proto::LogUploadChunk>>,
    ) -> Result<Response<proto::UploadLogsResponse>, Status> {
        let mut chunks = request.into_inner();
        let mut upload = Upload::default();
        let mut bytes = 0;
        while let Some(chunk) = chunks.message().await? {
            upload.node_id = chunk.node_id;
            if !chunk.container_id.is_empty() {
                bytes += chunk.data.len() as u64;
                upload
                    .files
                    .entry((chunk.container_id, chunk.file))
                    .or_default()
                    .extend(chunk.data);
            }
            if chunk.end {
                let files = upload.files.len() as u32;
                self.state.lock().unwrap().logs.extend(upload.files.clone());
                let _ = self.uploads.send(upload);
                return Ok(Response::new(proto::UploadLogsResponse { files, bytes }));
            }
        }
        Err(Status::invalid_argument(
            "the upload ended without its end message",
        ))
    }

    async fn list_logs(
        &self,
        _: Request<proto::ListLogsRequest>,
    ) -> Result<Response<proto::ListLogsResponse>, Status> {
        Err(Status::unimplemented(
            "the test RM only takes uploads and reads",
        ))
    }

    type ReadLogStream = LogChunks;

    async fn read_log(
        &self,
        request: Request<proto::ReadLogRequest>,
    ) -> Result<Response<LogChunks>, Status> {
        let request = request.into_inner();
        let key = (request.container_id, request.file);
        let data = self.state.lock().unwrap().logs.get(&key).cloned();
        let data = data.ok_or_else(|| Status::not_found(format!("no aggregated log {key:?}")))?;
        let chunk = Ok(proto::LogChunk { data });
        Ok(Response::new(Box::pin(futures::stream::iter([chunk]))))
    }
}
